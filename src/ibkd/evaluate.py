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


def score_suite(model, vocab: Vocab, setup: str, items, device) -> dict:
    """Accuracy of a model on suite items, overall and by attractor count, with coverage.

    Classification: the predicted number after the prefix must be the correct form's (its number
    from the suite, else from the verb inflector); where the suite varies the subject instead
    (BLiMP two-prefix), the correct prefix must make the verb's number more probable.
    LM: the correct form must be more probable than the wrong one after the prefix, or, where
    the suite has whole sentences (BLiMP), the correct sentence more probable than the wrong.
    Items that cannot be scored (a number the inflector cannot tell, or an LM form out of the
    vocabulary) are counted, not dropped silently."""
    from ibkd.data.suites.vocabulary import map_suite
    from ibkd.data.verbs import other_form, verb_number

    n_items = len(items)
    mapped = map_suite(items, vocab, setup)  # words as the training data wrote them
    items = mapped.items
    scored, skipped = [], dict(mapped.skipped)

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    if setup == "cls":
        jobs = []
        for it in items:
            number = it.number or verb_number(it.good[0])
            if number is None:
                skip("number of the verb form unknown")
                continue
            jobs.append((it, number))
        probs = _cls_probs(model, vocab, [it.prefix for it, _ in jobs], device)
        two = [(k, it) for k, (it, _) in enumerate(jobs) if it.prefix_bad is not None]
        probs_bad = _cls_probs(model, vocab, [it.prefix_bad for _, it in two], device)
        bad_of = {k: probs_bad[j] for j, (k, _) in enumerate(two)}
        for k, (it, number) in enumerate(jobs):
            c = 0 if number == "VBZ" else 1
            ok = probs[k][c] > bad_of[k][c] if k in bad_of else probs[k].argmax() == c
            scored.append((it, bool(ok)))
    else:
        sentence_items, target_items = [], []
        for it in items:
            if it.sentence_good is not None and it.sentence_bad is not None and it.bad:
                sentence_items.append(it)
                continue
            good = it.good[0]
            bad = it.bad[0] if it.bad else (other_form(good, it.number) if it.number else None)
            if bad is None:
                skip("wrong form unknown")
            elif vocab.stoi.get(good, UNK) == UNK or vocab.stoi.get(bad, UNK) == UNK:
                skip("a verb form out of the vocabulary")
            else:
                target_items.append((it, good, bad))
        if sentence_items:
            sg = _lm_sentence_logprobs(
                model, vocab, [it.sentence_good for it in sentence_items], device
            )
            sb = _lm_sentence_logprobs(
                model, vocab, [it.sentence_bad for it in sentence_items], device
            )
            scored += [(it, bool(a > b)) for it, a, b in zip(sentence_items, sg, sb)]
        if target_items:
            pre = [it.prefix for it, _, _ in target_items]
            lg = _lm_next_logprobs(
                model, vocab, pre, [vocab.stoi[g] for _, g, _ in target_items], device
            )
            lb = _lm_next_logprobs(
                model, vocab, pre, [vocab.stoi[b] for _, _, b in target_items], device
            )
            scored += [(it, bool(a > b)) for (it, _, _), a, b in zip(target_items, lg, lb)]
    by_attr: dict[str, list[bool]] = {}
    by_suite: dict[str, list[bool]] = {}
    for it, ok in scored:
        by_suite.setdefault(it.suite, []).append(ok)
        if it.n_attractors is not None:
            by_attr.setdefault(str(it.n_attractors), []).append(ok)
    return {
        "accuracy": float(np.mean([ok for _, ok in scored])) if scored else float("nan"),
        "scored": len(scored),
        "skipped": skipped,
        "coverage": len(scored) / max(1, n_items),
        "vocabulary": mapped.coverage.as_dict(),
        "by_attractors": {
            k: {"accuracy": float(np.mean(v)), "n": len(v)}
            for k, v in sorted(by_attr.items(), key=lambda kv: int(kv[0]))
        },
        "by_suite": {k: {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in by_suite.items()},
    }
