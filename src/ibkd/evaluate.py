"""Run a trained model over data: the one batched inference helper (`infer`), validation
(`validation_loss`), per-example predictions (`predict`, saved in the format of
`ibkd.predictions`; metrics come from them) and the inputs of suite scoring
(`verb_number_probs`, `next_token_logprobs`; suites: `ibkd.suite_predictions`).

Classification: the probabilities of VBZ and VBP, and the penultimate representation.
LM: per sentence, the summed token negative log-likelihood and token count (for perplexity),
and at the verb position the log-probabilities of the actual verb and of its other-number form
(`other_known` is False where that form is not in the vocabulary), and the representation there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibkd.data.batching import Encoded, ImageSet, batches, encode_prefixes
from ibkd.data.verbs import other_form
from ibkd.data.vocab import PAD, UNK, Vocab
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


def predict(
    model: nn.Module, data: Encoded | ImageSet, vocab: Vocab | None, device: torch.device,
    batch_size: int = 256, features: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-example predictions of `model` on `data`, in the format of `ibkd.predictions`."""
    n = len(data)
    rows = data.rows
    out: dict[str, np.ndarray] = data.meta()
    if data.setup == "lm":
        verb_ids = torch.tensor(vocab.encode([r.tokens[r.verb_index - 1] for r in rows]))
        others = [other_form(r.verb, r.verb_pos) for r in rows]
        other_ids = torch.tensor(vocab.encode(others))
        out["other_known"] = (other_ids != UNK).numpy() & (verb_ids != UNK).numpy()
        for key in ("sum_nll", "verb_logprob", "other_logprob"):
            out[key] = np.zeros(n, dtype=np.float64)
        out["n_tokens"] = np.zeros(n, dtype=np.int64)
    else:
        out["probs"] = np.zeros((n, model.head.out_features), dtype=np.float32)
    feats = None
    for b in infer(model, data, device, batch_size):
        idx = b.index.numpy()
        if data.setup != "lm":
            out["probs"][idx] = F.softmax(b.logits, -1).cpu().numpy()
            rep = b.features
        else:
            nll = masked_cross_entropy(b.logits, b.targets, b.mask, "none")
            out["sum_nll"][idx] = nll.sum(1).double().cpu().numpy()
            out["n_tokens"][idx] = b.mask.sum(1).cpu().numpy()
            at = torch.arange(len(idx), device=device)
            pos = data.verb_input_index[b.index].to(device)
            logp = F.log_softmax(b.logits[at, pos], -1)
            out["verb_logprob"][idx] = logp[at, verb_ids[b.index].to(device)].cpu().numpy()
            out["other_logprob"][idx] = logp[at, other_ids[b.index].to(device)].cpu().numpy()
            rep = b.features[at, pos]
        if features:
            if feats is None:
                feats = np.zeros((n, rep.shape[-1]), dtype=np.float32)
            feats[idx] = rep.float().cpu().numpy()
    if features and feats is not None:
        out["features"] = feats
    if getattr(data, "text", None) is not None:
        out |= text_nll(model, data.text, device, batch_size)
    return out


def text_nll(
    model: nn.Module, text: Encoded, device: torch.device, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Per held-out sentence of an LM's text: `text_sum_nll` (summed next-token negative
    log-likelihood, nats, float64 [M]) and `text_n_tokens` (scored tokens, int64 [M])."""
    n = len(text)
    out = {"text_sum_nll": np.zeros(n, dtype=np.float64),
           "text_n_tokens": np.zeros(n, dtype=np.int64)}  # fmt: skip
    for b in infer(model, text, device, batch_size):
        idx = b.index.numpy()
        nll = masked_cross_entropy(b.logits, b.targets, b.mask, "none")
        out["text_sum_nll"][idx] = nll.sum(1).double().cpu().numpy()
        out["text_n_tokens"][idx] = b.mask.sum(1).cpu().numpy()
    return out


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
