"""The paper's metrics, computed from saved per-example predictions (never by re-running a
model), so a report rebuilds in seconds and a new metric applies to old runs.

Agreement decisions: classification, the more probable of VBZ/VBP; LM, whether the actual verb
beats its other-number form (examples whose other form is out of vocabulary are not scored and
are counted in `coverage`). The LM's confidence is the two-way renormalised probability.

- µ-accuracy: micro accuracy.
- D-accuracy: accuracy per distance 1..16, then the unweighted mean over the groups.
- A-accuracy: only examples whose intervening nouns are all attractors, per attractor count
  0..4, unweighted mean. D and A drop examples with distance > `max_distance` (16) or more than
  `max_intervening` (4) intervening nouns (Reflect's filters).
- Hard cases: accuracy over the examples with at least 1 and at least 2 attractors (nouns of
  the other number between subject and verb, Linzen et al. 2016), unfiltered.
- ECE: equal-width confidence bins (20 by default), sum over bins of |bin| / N * |acc - conf|.
- Fidelity (Stanton et al. 2021, "Does knowledge distillation really work?"): how often the
  student's top-1 decision matches its teacher's (`top1_match`), and the mean KL divergence.
- Targeted suites (Marvin & Linzen 2018; Gulordava et al. 2018; BLiMP): the correct form must
  score above the wrong one; accuracy overall, per construction and per attractor count, with
  the items that could not be scored excluded and counted (`suite_metrics`).

Accuracy is computed here only: `accuracy` (any split's predictions, e.g. validation during
training), `top1_accuracy` (scores and labels), `pairwise_accuracy` (two scores per item).

A new metric is one registered function of a split's predictions (`register`); every metric
registered is computed by `compute_metrics`, so it lands in `metrics.json` and in reports, old
runs included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_DISTANCE = 16
MAX_INTERVENING = 4
ECE_BINS = 20


Predictions = dict[str, np.ndarray]
"""One split's saved predictions: key -> array, as `ibkd.predictions` describes them."""


def top1_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """The share of rows whose highest score is the gold label: scores [N, C] (probabilities,
    logits or log-probabilities), labels [N] ints in [0, C). NaN when N = 0. Ties go to the
    lowest class id (numpy's argmax)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape}: expected [N, C], [N]")
    return float((scores.argmax(1) == labels).mean()) if len(labels) else float("nan")


def pairwise_accuracy(score_good: np.ndarray, score_bad: np.ndarray) -> float:
    """The share of items whose correct alternative scores strictly higher than the wrong one
    ([N] each; a tie is wrong), as in Linzen et al. (2016) and Marvin & Linzen (2018). NaN when
    N = 0."""
    good, bad = np.asarray(score_good), np.asarray(score_bad)
    if good.shape != bad.shape:
        raise ValueError(f"score_good {good.shape} and score_bad {bad.shape} differ")
    return float((good > bad).mean()) if good.size else float("nan")


@dataclass
class Decisions:
    """One agreement (or image) decision per scored example: arrays [M], M <= N."""

    correct: np.ndarray
    """bool: the decision is the gold one"""
    confidence: np.ndarray
    """float64: probability of the decision taken (LM: two-way renormalised)"""
    distance: np.ndarray | None
    """int: words from subject to verb; None without agreement data (images)"""
    n_intervening: np.ndarray | None
    """int: nouns between subject and verb"""
    n_diff_intervening: np.ndarray | None
    """int: of them, attractors"""


def decisions(pred: Predictions) -> Decisions:
    """The decisions in one split's predictions. Classification and images: the most probable
    class of `probs` [N, C] against `label`. LM: whether the actual verb's log-probability beats
    its other-number form's; examples whose other form is out of the vocabulary
    (`other_known` False) are left out."""
    if "probs" in pred:
        keep = np.ones(len(pred["label"]), dtype=bool)
        probs = pred["probs"]
        correct = probs.argmax(1) == pred["label"]
        confidence = probs.max(1)
    else:
        keep = pred["other_known"].astype(bool)
        margin = pred["verb_logprob"] - pred["other_logprob"]
        correct = margin > 0
        confidence = 1 / (1 + np.exp(-np.abs(margin)))
        correct, confidence = correct[keep], confidence[keep]

    def grouping(key: str) -> np.ndarray | None:  # absent for images (scenario 2)
        return pred[key][keep] if key in pred else None

    return Decisions(
        correct,
        confidence.astype(np.float64),
        grouping("distance"),
        grouping("n_intervening"),
        grouping("n_diff_intervening"),
    )


def accuracy(pred: Predictions) -> float:
    """µ-accuracy of one split's predictions, any setup (cls, lm, mnist): the share of correct
    decisions (`decisions`). NaN when nothing is scored. What training logs as validation
    accuracy and `metrics.json` as `mu_accuracy`."""
    correct = decisions(pred).correct
    return float(correct.mean()) if len(correct) else float("nan")


def _grouped(correct: np.ndarray, groups: np.ndarray, keys: range) -> dict[str, dict]:
    out = {}
    for k in keys:
        sel = groups == k
        n = int(sel.sum())
        out[str(k)] = {"accuracy": float(correct[sel].mean()) if n else None, "n": n}
    return out


def _mean_of_groups(groups: dict[str, dict]) -> float:
    accs = [g["accuracy"] for g in groups.values() if g["accuracy"] is not None]
    return float(np.mean(accs)) if accs else float("nan")


def accuracy_by_distance(
    d: Decisions, max_distance: int = MAX_DISTANCE, max_intervening: int = MAX_INTERVENING
) -> dict[str, dict]:
    """Accuracy per subject-verb distance "1".."max_distance": {accuracy (None if empty), n},
    dropping examples farther than `max_distance` words or with more than `max_intervening`
    intervening nouns (Reflect's filters; the paper's D-accuracy averages the groups)."""
    keep = (d.distance <= max_distance) & (d.n_intervening <= max_intervening)
    return _grouped(d.correct[keep], d.distance[keep], range(1, max_distance + 1))


def accuracy_by_attractors(
    d: Decisions, max_distance: int = MAX_DISTANCE, max_intervening: int = MAX_INTERVENING
) -> dict[str, dict]:
    """Accuracy per attractor count "0".."max_intervening" over the examples whose intervening
    nouns are all attractors: {accuracy (None if empty), n}; the same filters as
    `accuracy_by_distance` (the paper's A-accuracy averages the groups)."""
    keep = (
        (d.distance <= max_distance)
        & (d.n_intervening <= max_intervening)
        & (d.n_intervening == d.n_diff_intervening)
    )
    return _grouped(d.correct[keep], d.n_diff_intervening[keep], range(0, max_intervening + 1))


HARD_ATTRACTORS = (1, 2)


def accuracy_with_attractors(d: Decisions, minimums=HARD_ATTRACTORS) -> dict[str, dict]:
    """Accuracy over the hard cases: for each k in `minimums`, the examples with at least k
    attractors (`n_diff_intervening` >= k: nouns of the other number between subject and
    verb, whatever else intervenes; no distance filter), {accuracy (None if empty), n}, keyed
    "k". Linzen et al. (2016) count attractors this way."""
    out = {}
    for k in minimums:
        sel = d.n_diff_intervening >= k
        n = int(sel.sum())
        out[str(k)] = {"accuracy": float(d.correct[sel].mean()) if n else None, "n": n}
    return out


def reliability(d: Decisions, bins: int = ECE_BINS) -> list[dict]:
    """Equal-width confidence bins over [0, 1]: count, mean confidence, accuracy. A confidence
    on a boundary goes to the bin on its left (as torchmetrics does), 0 to the first."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.searchsorted(edges, d.confidence, side="left") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        sel = index == b
        n = int(sel.sum())
        out.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "n": n,
                "confidence": float(d.confidence[sel].mean()) if n else None,
                "accuracy": float(d.correct[sel].mean()) if n else None,
            }
        )
    return out


def ece(d: Decisions, bins: int = ECE_BINS) -> float:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017): sum over `bins`
    equal-width confidence bins of |bin| / N * |accuracy - mean confidence|, in [0, 1]. NaN
    when nothing is scored."""
    total = len(d.correct)
    return (
        float(
            sum(
                b["n"] / total * abs(b["accuracy"] - b["confidence"])
                for b in reliability(d, bins)
                if b["n"]
            )
        )
        if total
        else float("nan")
    )


def unigram_perplexity(train: list[list[int]], test: list[list[int]], vocab_size: int) -> float:
    """The perplexity of an add-one (Laplace) unigram model: the reference an LM must beat.

    `train`, `test`: sentences as token ids, each ending with `<eos>` as the LMs are scored
    (ids 0 and 2, `<pad>` and `<bos>`, never occur as targets and are not in the support);
    P(w) = (count(w) + 1) / (N + V - 2) over the V - 2 predictable ids. Returns
    exp(- mean log P) over the test tokens (nats inside, unitless perplexity out)."""
    counts = np.bincount(np.concatenate([np.asarray(s) for s in train]), minlength=vocab_size)
    support = vocab_size - 2
    logp = np.log((counts + 1.0) / (counts.sum() + support))
    ids = np.concatenate([np.asarray(s) for s in test])
    return math.exp(-logp[ids].mean())


def perplexity(pred: Predictions) -> float:
    """exp of the token-averaged cross-entropy over non-pad tokens (LM): exp(sum `sum_nll` /
    sum `n_tokens`), from nats; over the split's held-out text sentences (`text_sum_nll`,
    `text_n_tokens`) where the run had an LM text, else over the agreement rows' sentences;
    NaN where there is no token (metrics.json: null)."""
    text = "text_sum_nll" in pred
    nll, n = ("text_sum_nll", "text_n_tokens") if text else ("sum_nll", "n_tokens")
    tokens = pred[n].sum()
    return math.exp(pred[nll].sum() / tokens) if tokens else math.nan  # NaN: nothing held out


def fidelity(student: Predictions, teacher: Predictions) -> dict:
    """How closely a student follows its teacher on the same examples (Stanton et al. 2021):
    `top1_match`, the share of examples where both take the same decision (top-1 class; LM:
    which of the two verb forms), and `kl`, the mean KL(teacher || student) in nats of their
    class distributions (LM: the two-way renormalised ones). Raises `ValueError` when the
    two cover different examples."""

    def two_way(pred):
        if "probs" in pred:
            return pred["probs"].astype(np.float64)
        p = 1 / (1 + np.exp(pred["other_logprob"] - pred["verb_logprob"]))
        return np.stack([p, 1 - p], 1)

    ps, pt = two_way(student), two_way(teacher)
    if ps.shape != pt.shape:
        raise ValueError("student and teacher predictions cover different examples")
    eps = 1e-12
    kl = (pt * (np.log(pt + eps) - np.log(ps + eps))).sum(1)
    return {"top1_match": top1_accuracy(ps, pt.argmax(1)), "kl": float(kl.mean())}


Metric = Callable[[Predictions], Any]
"""A metric: one split's predictions -> a JSON-able value, or None where it does not apply
(for example an LM-only metric given classification predictions)."""

METRICS: dict[str, Metric] = {}
"""The metrics registered besides the built-in ones, by the key they get in `metrics.json`."""
BUILT_IN = frozenset(
    {
        "mu_accuracy", "ece", "reliability", "n", "filters", "d_accuracy", "a_accuracy",
        "accuracy_by_distance", "accuracy_by_attractors", "perplexity", "agreement_accuracy",
        "coverage", "fidelity", "accuracy_with_attractors",
    }
)  # fmt: skip


def register(name: str) -> Callable[[Metric], Metric]:
    """Decorator: compute `fn(predictions)` as metric `name` in `compute_metrics` (hence in
    every `metrics.json` written from then on and in every report, old runs included, since
    reports recompute metrics from the saved predictions). Raises `ValueError` when `name` is
    a built-in metric's or registered already."""

    def add(fn: Metric) -> Metric:
        if name in BUILT_IN or name in METRICS:
            raise ValueError(f"metric {name!r} exists already")
        METRICS[name] = fn
        return fn

    return add


def unregister(name: str) -> None:
    """Remove a registered metric (tests that register one clean up with it)."""
    METRICS.pop(name, None)


def compute_metrics(
    pred: Predictions, *, ece_bins: int = ECE_BINS,
    max_distance: int = MAX_DISTANCE, max_intervening: int = MAX_INTERVENING,
) -> dict:  # fmt: skip
    """Every metric of one split's predictions (what goes into metrics.json): µ-accuracy, ECE
    and its reliability bins, the example count; D- and A-accuracy for agreement data (which
    has distances and attractors); perplexity, agreement accuracy and coverage for the LM; then
    each registered metric that applies (`register`)."""
    d = decisions(pred)
    out = {
        "mu_accuracy": accuracy(pred),
        "ece": ece(d, ece_bins),
        "reliability": reliability(d, ece_bins),
        "n": int(len(pred["label"])),
        "filters": {"ece_bins": ece_bins},
    }
    if d.distance is not None:
        by_distance = accuracy_by_distance(d, max_distance, max_intervening)
        by_attractors = accuracy_by_attractors(d, max_distance, max_intervening)
        out |= {
            "d_accuracy": _mean_of_groups(by_distance),
            "a_accuracy": _mean_of_groups(by_attractors),
            "accuracy_by_distance": by_distance,
            "accuracy_by_attractors": by_attractors,
            "accuracy_with_attractors": accuracy_with_attractors(d),
        }
        out["filters"] |= {"max_distance": max_distance, "max_intervening": max_intervening}
    if "sum_nll" in pred:
        known = pred["other_known"]
        out["perplexity"] = perplexity(pred)
        out["agreement_accuracy"] = out["mu_accuracy"]
        out["coverage"] = {
            "scored": int(known.sum()),
            "other_form_out_of_vocabulary": int((~known).sum()),
        }
    for name, metric in METRICS.items():
        value = metric(pred)
        if value is not None:
            out[name] = value
    return out


# ---------------------------------------------------------------------------------------------
# targeted suites

SUITE_KEYS = ("item", "construction", "n_attractors", "score_good", "score_bad")
"""The per-item arrays of a suite's saved predictions (`RUN/suites/NAME.npz`), all [N]:

    item           int64    the item's id in its suite (its order in the suite's files)
    construction   str      the construction (Marvin & Linzen's file, BLiMP's paradigm, ...)
    n_attractors   int64    attractors between subject and verb; -1 where the suite says not
    score_good     float64  the correct alternative's score (log-probability in nats, or the
                            classifier's probability of the correct number); NaN if skipped
    score_bad      float64  the wrong alternative's score, the same way; NaN if skipped
    skip_reason    str      (optional) why an item was not scored; "" for scored items
"""


def mean_over(groups: dict[str, dict]) -> float:
    """The unweighted mean of the groups' accuracies ({name: {accuracy, n}}; groups without
    items left out), NaN when there is none: e.g. BLiMP's score, the mean over paradigms."""
    accs = [g["accuracy"] for g in groups.values() if g["n"]]
    return float(np.mean(accs)) if accs else float("nan")


def suite_metrics(pred: Predictions) -> dict:
    """A targeted suite's summary from its saved per-item predictions (`SUITE_KEYS`).

    An item is correct when `score_good` > `score_bad` (strictly; Marvin & Linzen 2018). Items
    not scored (a NaN score: out of vocabulary, alternatives identical after mapping, ...) are
    excluded and counted by `skip_reason` ("not scored" without one). Returns `accuracy` pooled
    over the scored items (NaN if none), `mean_over_constructions`, the unweighted mean of the
    constructions' accuracies (BLiMP's overall score, Warstadt et al. 2020: the mean over its
    67 paradigms, whatever their sizes; NaN if none), `scored`, `skipped` {reason: count},
    `coverage` (scored / all items), and {accuracy, n} `by_construction` (sorted by name) and
    `by_attractors` ("0", "1", ...; items with a count). Raises `ValueError` naming a missing
    array or arrays of different lengths.
    """
    missing = [k for k in SUITE_KEYS if k not in pred]
    if missing:
        raise ValueError(f"suite predictions lack {missing}; expected {list(SUITE_KEYS)}")
    n = len(pred["item"])
    if any(len(pred[k]) != n for k in SUITE_KEYS):
        raise ValueError(f"suite predictions: arrays of different lengths ({list(SUITE_KEYS)})")
    good = np.asarray(pred["score_good"], dtype=np.float64)
    bad = np.asarray(pred["score_bad"], dtype=np.float64)
    scored = ~(np.isnan(good) | np.isnan(bad))
    reasons = pred.get("skip_reason", np.full(n, "", dtype=str)).astype(str)
    reasons = np.where(reasons == "", "not scored", reasons)[~scored]
    construction = pred["construction"].astype(str)[scored]
    attractors = np.asarray(pred["n_attractors"])[scored]
    good, bad = good[scored], bad[scored]

    def groups(keys: np.ndarray, labels) -> dict[str, dict]:
        return {
            str(k): {"accuracy": pairwise_accuracy(good[keys == k], bad[keys == k]),
                     "n": int((keys == k).sum())}
            for k in labels
        }  # fmt: skip

    by_construction = groups(construction, sorted(set(construction)))
    return {
        "accuracy": pairwise_accuracy(good, bad),
        "mean_over_constructions": mean_over(by_construction),
        "scored": int(scored.sum()),
        "skipped": {str(r): int(c) for r, c in zip(*np.unique(reasons, return_counts=True))},
        "coverage": float(scored.mean()) if n else float("nan"),
        "by_construction": by_construction,
        "by_attractors": groups(attractors, sorted(set(attractors[attractors >= 0].tolist()))),
    }
