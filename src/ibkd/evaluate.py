"""Run a trained model over a split -> per-example predictions (saved; metrics come from them).

Classification: the probabilities of VBZ and VBP, and the penultimate representation.
LM: per sentence, the summed token negative log-likelihood and token count (for perplexity),
and at the verb position the log-probabilities of the actual verb and of its other-number form
(`other_known` is False where that form is not in the vocabulary), and the representation there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibkd.data.batching import Encoded, batches
from ibkd.data.verbs import other_form
from ibkd.data.vocab import BOS, EOS, PAD, UNK, Vocab
from ibkd.files import atomic_write


@torch.no_grad()
def predict(
    model: nn.Module, data: Encoded, vocab: Vocab, device: torch.device,
    batch_size: int = 256, features: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    model.eval()
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
    for index in batches(data.lengths, batch_size, shuffle=False, generator=None):
        tokens, lengths, targets = (t.to(device) for t in data.batch(index))
        h = model.features(tokens, lengths)
        logits = model.head(h).float()
        idx = index.numpy()
        if data.setup != "lm":
            out["probs"][idx] = F.softmax(logits, -1).cpu().numpy()
            rep = h
        else:
            nll = F.cross_entropy(
                logits.transpose(1, 2), targets, ignore_index=PAD, reduction="none"
            )
            out["sum_nll"][idx] = nll.sum(1).double().cpu().numpy()
            out["n_tokens"][idx] = (targets != PAD).sum(1).cpu().numpy()
            at = torch.arange(len(index), device=device)
            pos = data.verb_pos[index].to(device)
            logp = F.log_softmax(logits[at, pos], -1)
            out["verb_logprob"][idx] = logp[at, verb_ids[index].to(device)].cpu().numpy()
            out["other_logprob"][idx] = logp[at, other_ids[index].to(device)].cpu().numpy()
            rep = h[at, pos]
        if features:
            if feats is None:
                feats = np.zeros((n, rep.shape[-1]), dtype=np.float32)
            feats[idx] = rep.float().cpu().numpy()
    if features and feats is not None:
        out["features"] = feats
    return out


def save_predictions(path: str | os.PathLike, predictions: dict[str, np.ndarray]) -> None:
    with atomic_write(path, text=False) as f:
        np.savez_compressed(f, **predictions)


def load_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(Path(path)) as data:
        return {k: data[k] for k in data.files}


# ---------------------------------------------------------------------------------------------
# external test suites


@torch.no_grad()
def _cls_probs(model, vocab: Vocab, prefixes: list[tuple[str, ...]], device) -> np.ndarray:
    """P(VBZ), P(VBP) after each prefix (classification model)."""
    from ibkd.data.batching import encode_prefixes

    data = encode_prefixes(prefixes, [0] * len(prefixes), vocab)
    out = np.zeros((len(prefixes), 2))
    for index in batches(data.lengths, 256, shuffle=False, generator=None):
        tokens, lengths, _ = (t.to(device) for t in data.batch(index))
        out[index.numpy()] = F.softmax(model(tokens, lengths).float(), -1).cpu().numpy()
    return out


@torch.no_grad()
def _lm_next_logprobs(model, vocab: Vocab, prefixes, targets: list[int], device) -> np.ndarray:
    """log P(target | prefix) for each (prefix, target id) (LM)."""
    from ibkd.data.batching import encode_prefixes

    data = encode_prefixes(prefixes, [0] * len(prefixes), vocab)
    out = np.zeros(len(prefixes))
    tgt = torch.tensor(targets)
    for index in batches(data.lengths, 256, shuffle=False, generator=None):
        tokens, lengths, _ = (t.to(device) for t in data.batch(index))
        logits = model(tokens, lengths).float()
        at = torch.arange(len(index), device=device)
        logp = F.log_softmax(logits[at, lengths - 1], -1)
        out[index.numpy()] = logp[at, tgt[index].to(device)].cpu().numpy()
    return out


@torch.no_grad()
def _lm_sentence_logprobs(model, vocab: Vocab, sentences, device) -> np.ndarray:
    """log P(sentence + <eos>) under the LM."""
    from ibkd.data.batching import pack

    seqs = [[BOS] + vocab.encode(s) + [EOS] for s in sentences]
    data = pack("lm", seqs, [len(s) - 1 for s in seqs], [0] * len(seqs), [0] * len(seqs), None)
    out = np.zeros(len(sentences))
    for index in batches(data.lengths, 256, shuffle=False, generator=None):
        tokens, lengths, targets = (t.to(device) for t in data.batch(index))
        nll = F.cross_entropy(
            model(tokens, lengths).float().transpose(1, 2),
            targets,
            ignore_index=PAD,
            reduction="none",
        )
        out[index.numpy()] = -nll.sum(1).cpu().numpy()
    return out


def score_suite(
    model, vocab: Vocab, setup: str, items, device, lm_comparison: str = "sentence"
) -> dict:
    """A model's summary on suite items: `metrics.suite_metrics` of their per-item predictions
    (`ibkd.suite_predictions.predict_suite`, which says how each setup scores a pair; items
    that cannot be scored are counted, not dropped silently), plus the vocabulary coverage."""
    from ibkd.metrics import suite_metrics
    from ibkd.suite_predictions import predict_suite

    pred, info = predict_suite(model, vocab, setup, items, device, lm_comparison)
    return suite_metrics(pred) | info
