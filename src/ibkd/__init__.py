"""ibkd: transferring inductive biases through knowledge distillation (Abnar et al., 2020)."""

__version__ = "0.1.0"
