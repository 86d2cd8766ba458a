"""A language model's output layer: the full softmax (its matrix tied to the input embedding
or not) or the adaptive softmax (`lm_softmax: adaptive`).

The adaptive softmax (Grave, Joulin, Cissé, Grangier & Jégou 2017, "Efficient softmax
approximation for GPUs"; PyTorch's `nn.AdaptiveLogSoftmaxWithLoss`) splits the vocabulary by
frequency rank at `cutoffs`: a head holds the most frequent words and one entry per tail
cluster; each cluster's words are predicted from a projection of the state `div_value` times
narrower per cluster (4, 16, ...). A word's probability is its head probability, or its
cluster's head probability times its probability within the cluster. ibkd's vocabularies list
the specials, then the training words by descending frequency (`ibkd.data.vocab`), so a
cutoff at id c puts the c - 4 most frequent words (and the specials) in the head.

It is a different model, not an approximation of the full softmax's loss: another
factorisation of the next-word distribution, with its own (untied) parameters. Its training
loss (`AdaptiveHead.loss`) is the exact negative log-likelihood of that model's distribution
and computes a cluster's words only at the positions whose target is in it; everything that
needs the whole distribution (distillation's KL, perplexity, suite scoring) gets it from
`AdaptiveHead.forward`, its log-probabilities over the whole vocabulary (`log_prob`: the head
and every cluster at every position).
"""

from __future__ import annotations

import torch
from torch import nn

from ibkd.errors import IbkdError
from ibkd.models import LM_SOFTMAXES

DEFAULT_SHARES = (0.2, 0.6)  # default cutoffs: 20% and 60% of the vocabulary, by rank
DIV_VALUE = 4.0  # each tail cluster's projection is 4x narrower than the previous one


def default_cutoffs(vocab_size: int) -> list[int]:
    """The cutoffs used when none are given: `DEFAULT_SHARES` of the vocabulary by frequency
    rank (10,000 words: [2000, 6000]; a head of 2,000 ids, clusters of 4,000 and 4,000)."""
    return sorted({c for c in (round(vocab_size * s) for s in DEFAULT_SHARES)
                   if 0 < c < vocab_size})  # fmt: skip


def check_cutoffs(cutoffs: list[int], vocab_size: int, dim: int) -> list[int]:
    """`cutoffs` (ids, strictly increasing, each in [1, vocab_size - 1], and few enough that
    the last tail cluster's projection, dim // 4^clusters, has a unit); IbkdError naming
    `model.adaptive_cutoffs` otherwise."""
    ok = all(0 < c < vocab_size for c in cutoffs) and all(
        a < b for a, b in zip(cutoffs, cutoffs[1:])
    )
    if not ok or not cutoffs:
        raise IbkdError(
            f"model.adaptive_cutoffs {cutoffs}: expected strictly increasing ids between 1 and "
            f"{vocab_size - 1} (the vocabulary has {vocab_size} entries)"
        )
    if dim // int(DIV_VALUE) ** len(cutoffs) < 1:
        raise IbkdError(
            f"model.adaptive_cutoffs {cutoffs}: {len(cutoffs)} tail clusters need dim >= "
            f"{int(DIV_VALUE) ** len(cutoffs)} (each cluster's projection is {DIV_VALUE:g}x "
            f"narrower), the model has {dim}"
        )
    return list(cutoffs)


class AdaptiveHead(nn.Module):
    """The adaptive softmax as an output layer: `forward(h)` gives log-probabilities over the
    whole vocabulary, [..., D] -> [..., V] (usable wherever logits are: a log-softmax of them
    is themselves, up to rounding); `loss(h, target)` the mean negative log-likelihood of
    targets [N] from states [N, D] (nats), the fast training path. `in_features` (D) and
    `out_features` (V) as a `nn.Linear`'s. Grave et al. 2017; `nn.AdaptiveLogSoftmaxWithLoss`
    with `div_value` 4 and no head bias."""

    def __init__(self, dim: int, vocab_size: int, cutoffs: list[int]):
        super().__init__()
        self.adaptive = nn.AdaptiveLogSoftmaxWithLoss(
            dim, vocab_size, check_cutoffs(cutoffs, vocab_size, dim), div_value=DIV_VALUE
        )
        self.in_features, self.out_features = dim, vocab_size

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [..., V] of states [..., D] (every cluster at every position)."""
        flat = h.reshape(-1, h.shape[-1])
        return self.adaptive.log_prob(flat).view(*h.shape[:-1], self.out_features)

    def loss(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood (nats, 0-d) of `target` [N] ids given states [N, D]:
        equal to -log_prob(h)[target] averaged, without the clusters no target is in."""
        return self.adaptive(h, target).loss


def output_layer(cfg, dim: int, vocab_size: int) -> nn.Module:
    """The LM output layer of a model config with `lm_softmax` and `adaptive_cutoffs`:
    `nn.Linear(dim, vocab_size)` (the model ties its weight to the input embedding when
    `tied`: Press & Wolf 2017) or an `AdaptiveHead` (its own parameters: `tied` does not
    apply). Raises IbkdError for an unknown `lm_softmax` or bad cutoffs."""
    if cfg.lm_softmax not in LM_SOFTMAXES:
        raise IbkdError(
            f"--lm-softmax {cfg.lm_softmax!r}: expected one of {', '.join(LM_SOFTMAXES)}"
        )
    if cfg.lm_softmax == "adaptive":
        cutoffs = cfg.adaptive_cutoffs
        return AdaptiveHead(dim, vocab_size, default_cutoffs(vocab_size) if cutoffs is None
                            else cutoffs)  # fmt: skip
    return nn.Linear(dim, vocab_size)


def is_adaptive(head: nn.Module) -> bool:
    """Whether an output layer is the adaptive softmax (its `forward` gives log-probabilities
    and it has a fast `loss`)."""
    return isinstance(head, AdaptiveHead)
