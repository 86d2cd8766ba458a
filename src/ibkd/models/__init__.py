"""Model registry: architecture name -> builder. Every model is a plain `nn.Module` with
`forward(tokens, lengths) -> logits` and `features(tokens, lengths)`, its penultimate
representation (`head(features)` gives the logits)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ibkd.config import ModelConfig
from ibkd.errors import IbkdError
from ibkd.models.lstm import LSTM
from ibkd.models.transformer import Transformer
from ibkd.models.vision import CNN, MLP

Builder = Callable[[ModelConfig, int, str], nn.Module]
REGISTRY: dict[str, Builder] = {
    "lstm": LSTM,
    "transformer": Transformer,
    "mlp": MLP,
    "cnn": CNN,
}


def register(arch: str, builder: Builder) -> None:
    """Add an architecture (a new student or teacher) under `arch`."""
    REGISTRY[arch] = builder


def build_model(cfg: ModelConfig, vocab_size: int, setup: str) -> nn.Module:
    if cfg.arch not in REGISTRY:
        raise IbkdError(
            f"model {cfg.name!r}: unknown architecture {cfg.arch!r}; expected one of "
            f"{', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[cfg.arch](cfg, vocab_size, setup)
