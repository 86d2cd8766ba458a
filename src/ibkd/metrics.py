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
- ECE: equal-width confidence bins (20 by default), sum over bins of |bin| / N * |acc - conf|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_DISTANCE = 16
MAX_INTERVENING = 4
ECE_BINS = 20


@dataclass
class Decisions:
    """One agreement decision per scored example."""

    correct: np.ndarray  # bool
    confidence: np.ndarray  # probability of the decision taken
    distance: np.ndarray | None  # agreement data only
    n_intervening: np.ndarray | None
    n_diff_intervening: np.ndarray | None


def decisions(pred: dict[str, np.ndarray]) -> Decisions:
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
    keep = (d.distance <= max_distance) & (d.n_intervening <= max_intervening)
    return _grouped(d.correct[keep], d.distance[keep], range(1, max_distance + 1))


def accuracy_by_attractors(
    d: Decisions, max_distance: int = MAX_DISTANCE, max_intervening: int = MAX_INTERVENING
) -> dict[str, dict]:
    keep = (
        (d.distance <= max_distance)
        & (d.n_intervening <= max_intervening)
        & (d.n_intervening == d.n_diff_intervening)
    )
    return _grouped(d.correct[keep], d.n_diff_intervening[keep], range(0, max_intervening + 1))


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


def perplexity(pred: dict[str, np.ndarray]) -> float:
    """exp of the token-averaged cross-entropy over non-pad tokens (LM)."""
    return math.exp(pred["sum_nll"].sum() / pred["n_tokens"].sum())


def fidelity(student: dict[str, np.ndarray], teacher: dict[str, np.ndarray]) -> dict:
    """How closely a student follows its teacher on the same examples: the share of equal
    decisions, and the mean KL(teacher || student) of the two-way distributions."""

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
    return {"agreement": float((ps.argmax(1) == pt.argmax(1)).mean()), "kl": float(kl.mean())}


def compute_metrics(
    pred: dict[str, np.ndarray], *, ece_bins: int = ECE_BINS,
    max_distance: int = MAX_DISTANCE, max_intervening: int = MAX_INTERVENING,
) -> dict:  # fmt: skip
    """Every metric of one split's predictions (what goes into metrics.json). D- and A-accuracy
    only for agreement data (which has distances and attractors)."""
    d = decisions(pred)
    out = {
        "mu_accuracy": float(d.correct.mean()) if len(d.correct) else float("nan"),
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
    return out
