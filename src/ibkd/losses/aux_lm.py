"""The auxiliary language-modelling objective of a classification model (`--aux-lm WEIGHT`).

Enguehard et al. (2017, "Exploring the syntactic abilities of RNNs with multi-task learning")
train Linzen et al.'s (2016) number-prediction LSTM to also predict the next word at every
position of the prefix; the total loss is CE(number) + WEIGHT x the mean next-word CE. Here the
next word is predicted from the model's top-layer state at each position (`model.states`,
which must read only the words up to that position: `model.causal_states`) through an extra
linear output layer trained beside the model (`train.Run.companions`, not part of the model:
predictions and metrics are those of the classifier alone). The classification models do not
tie their output to the input embedding, so this layer is not tied either.
"""

from __future__ import annotations

import torch
from torch import nn

from ibkd.data.vocab import PAD
from ibkd.errors import IbkdError
from ibkd.losses import masked_cross_entropy

COMPANION = "aux_lm"  # the output layer's name among a run's companions


def check_model(model: nn.Module, name: str) -> None:
    """Refuse (IbkdError, one line) a model whose states cannot predict the next word: one
    without per-position states, or one that reads the whole prefix at once (no causal mask,
    such as the bidirectional `transformer`)."""
    if not getattr(model, "causal_states", False):
        raise IbkdError(
            f"--aux-lm: model {name!r} reads the whole prefix at once (or has no per-word "
            "states), so it cannot predict each next word; use lstm, transformer-seq or "
            "utransformer-seq"
        )


def output_layer(model: nn.Module, vocab_size: int) -> nn.Linear:
    """The extra output layer: the width of `model`'s states -> `vocab_size` logits, on the
    model's device. The width is read from a one-token forward pass in eval mode."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        one = torch.ones(1, 1, dtype=torch.long, device=device)
        width = model.states(one, torch.ones(1, dtype=torch.long, device=device)).shape[-1]
    model.train(was_training)
    return nn.Linear(width, vocab_size).to(device)


def next_word_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The mean next-word cross-entropy (nats) over a batch's prefixes: `logits` [B, L, V] are
    the predictions made at each position of `tokens` [B, L] (right-padded with `<pad>` = 0),
    scored against the word that follows (positions 0..L-2 against tokens 1..L-1), padding
    ignored. 0 when no prefix has a second word."""
    targets = tokens[:, 1:]
    mask = targets != PAD
    if not mask.any():
        return logits.sum() * 0.0  # keeps the graph
    return masked_cross_entropy(logits[:, :-1], targets, mask)
