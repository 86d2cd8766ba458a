"""Run a trained model over data: the one batched inference helper (`infer`), validation
(`validation_loss`), per-example predictions of a model with one distribution per example
(`class_predictions`, saved in the format of `ibkd.predictions`; metrics come from them) and the
inputs of suite scoring (`verb_number_probs`, `next_token_logprobs`; suites:
`ibkd.suite_predictions`). Which predictions a run writes is its task's (`ibkd.tasks`):
classification and images the classes' probabilities and the penultimate representation; a
language model its own (`ibkd.tasks.agreement_lm.predict`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibkd.data.batching import Encoded, ImageSet, batches, encode_prefixes
from ibkd.data.vocab import PAD, Vocab
from ibkd.errors import IbkdError
from ibkd.losses import masked_cross_entropy
from ibkd.metrics import top1_accuracy
from ibkd.predictions import load_predictions, save_predictions  # noqa: F401 - re-exported


@dataclass
class BatchOutput:
    """A model's outputs on one evaluation batch. `index` [B]: the examples' positions in the
    data; `lengths` [B]; `targets` [B] labels or [B, L] next tokens; `features` the
    penultimate representation ([B, H] or [B, L, H]); `logits` float32 ([B, C] or [B, L, V])."""

    index: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor

    @property
    def mask(self) -> torch.Tensor | None:
        """The scored positions of a LM batch (non-pad targets); None for labels."""
        return self.targets != PAD if self.targets.dim() == 2 else None


def max_positions(model: nn.Module) -> int | None:
    """The longest input a model takes (a Transformer's learned positions), None if any."""
    pos = getattr(model, "pos", None)
    return pos.num_embeddings if isinstance(pos, nn.Embedding) else None


def check_fits(model: nn.Module, data: Encoded | ImageSet, what: str) -> None:
    """Refuse (IbkdError naming `what`) data whose longest input exceeds the model's
    positions, before any step."""
    limit = max_positions(model)
    longest = int(data.lengths.max()) if len(data) else 0
    if limit is not None and longest > limit:
        raise IbkdError(
            f"{what}: the longest input has {longest} tokens, more than the model's max_len "
            f"{limit}; drop longer rows or use a model with a larger max_len"
        )


@torch.no_grad()
def infer(
    model: nn.Module, data: Encoded | ImageSet, device: torch.device, batch_size: int = 256
) -> Iterator[BatchOutput]:
    """The model (eval mode, no gradients) over `data` in length-sorted batches of
    `batch_size`; yields each batch's outputs. Every evaluation in ibkd goes through here."""
    model.eval()
    for index in batches(data.lengths, batch_size, shuffle=False, generator=None):
        tokens, lengths, targets = (t.to(device) for t in data.batch(index))
        h = model.features(tokens, lengths)
        yield BatchOutput(index, lengths, targets, h, model.head(h).float())


def validation_loss(
    model: nn.Module, data: Encoded | ImageSet, device: torch.device, batch_size: int = 256
) -> tuple[float, float]:
    """(mean gold cross-entropy in nats per example, or per token for the LM; accuracy of the
    top class, NaN for the LM) over `data` (an LM's: over its held-out text, `data.text`,
    where it has one)."""
    if getattr(data, "text", None) is not None:
        data = data.text

    total, count, scores, labels = 0.0, 0, [], []
    for out in infer(model, data, device, batch_size):
        mask = out.mask
        total += masked_cross_entropy(out.logits, out.targets, mask, "sum").item()
        if mask is not None:
            count += int(mask.sum())
        else:
            count += len(out.targets)
            scores.append(out.logits.cpu().numpy())
            labels.append(out.targets.cpu().numpy())
    accuracy = (
        top1_accuracy(np.concatenate(scores), np.concatenate(labels)) if scores else float("nan")
    )
    return total / max(count, 1), accuracy


def class_predictions(
    model: nn.Module, data: Encoded | ImageSet, device: torch.device, batch_size: int = 256,
    features: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-example predictions of a model with one distribution per example (classification,
    images) on `data`, in the format of `ibkd.predictions`: the set's `meta()` (label, and the
    agreement groupings where it has rows), `probs` float32 [N, C] (softmax of the logits) and,
    with `features`, the penultimate representation float32 [N, H]. A language model's
    predictions are its task's (`ibkd.tasks.agreement_lm.predict`)."""
    out: dict[str, np.ndarray] = data.meta()
    out["probs"] = np.zeros((len(data), model.head.out_features), dtype=np.float32)
    feats = Features(len(data)) if features else None
    for b in infer(model, data, device, batch_size):
        idx = b.index.numpy()
        out["probs"][idx] = F.softmax(b.logits, -1).cpu().numpy()
        if feats is not None:
            feats.put(idx, b.features)
    return out | (feats.saved() if feats is not None else {})


class Features:
    """A split's penultimate representations, filled batch by batch: `put(index, rows)` with
    rows [B, H]; `saved()` -> {"features": float32 [N, H]} ({} for an empty split)."""

    def __init__(self, n: int):
        self.n, self.array = n, None

    def put(self, index: np.ndarray, rows: torch.Tensor) -> None:
        """Store the representations `rows` [B, H] of the examples `index` [B]."""
        if self.array is None:
            self.array = np.zeros((self.n, rows.shape[-1]), dtype=np.float32)
        self.array[index] = rows.float().cpu().numpy()

    def saved(self) -> dict[str, np.ndarray]:
        """{"features": [N, H]} once a batch was stored, else {}."""
        return {} if self.array is None else {"features": self.array}


# ---------------------------------------------------------------------------------------------
# external test suites


def verb_number_probs(model, vocab: Vocab, prefixes: list[tuple[str, ...]], device) -> np.ndarray:
    """P(VBZ), P(VBP) after each prefix (classification model): [N, 2]."""
    data = encode_prefixes(prefixes, [0] * len(prefixes), vocab)
    check_fits(model, data, "--suite")
    out = np.zeros((len(prefixes), 2))
    for b in infer(model, data, device):
        out[b.index.numpy()] = F.softmax(b.logits, -1).cpu().numpy()
    return out


def next_token_logprobs(
    model, vocab: Vocab, prefixes, targets: list[int], device, rows=None
) -> np.ndarray:
    """log P(target | prefix) (LM): [M] nats, the k-th after `prefixes[rows[k]]` (`rows` None:
    after `prefixes[k]`, one target per prefix). The model runs once per prefix given, however
    many targets ask for it (a suite's items share prefixes: Marvin & Linzen's 95,240 forms
    follow 12,820 distinct prefixes); each target is read off that prefix's output row."""
    data = encode_prefixes(prefixes, [0] * len(prefixes), vocab)
    check_fits(model, data, "--suite")
    rows = np.arange(len(prefixes)) if rows is None else np.asarray(rows, dtype=np.int64)
    if len(rows) != len(targets):
        raise ValueError(f"{len(targets)} targets but {len(rows)} prefix rows")
    by_prefix = np.argsort(rows, kind="stable")  # the queries, grouped by their prefix
    bounds = np.searchsorted(rows[by_prefix], np.arange(len(prefixes) + 1))
    out = np.zeros(len(targets))
    tgt = torch.tensor(targets, dtype=torch.long)
    for b in infer(model, data, device):
        at = torch.arange(len(b.index), device=device)
        logp = F.log_softmax(b.logits[at, b.lengths - 1], -1)  # [B, V]
        spans = [(bounds[i], bounds[i + 1]) for i in b.index.tolist()]
        queries = np.concatenate([by_prefix[lo:hi] for lo, hi in spans])
        row_of = np.repeat(np.arange(len(spans)), [hi - lo for lo, hi in spans])
        q = torch.from_numpy(queries)
        out[queries] = logp[torch.from_numpy(row_of).to(device), tgt[q].to(device)].cpu().numpy()
    return out
