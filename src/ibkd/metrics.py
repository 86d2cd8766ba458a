"""Metrics, computed from saved per-example predictions (never by re-running a model)."""

from __future__ import annotations

import math

import numpy as np


def correct(pred: dict[str, np.ndarray]) -> np.ndarray:
    """Per example: did the model get the verb's number right? Classification: the more
    probable class is the label. LM: the actual verb beats its other-number form (examples
    whose other form is out of vocabulary are excluded: see `lm_coverage`)."""
    if "probs" in pred:
        return pred["probs"].argmax(1) == pred["label"]
    known = pred["other_known"]
    return (pred["verb_logprob"] > pred["other_logprob"])[known]


def mu_accuracy(pred: dict[str, np.ndarray]) -> float:
    c = correct(pred)
    return float(c.mean()) if len(c) else float("nan")


def perplexity(pred: dict[str, np.ndarray]) -> float:
    """exp of the token-averaged cross-entropy over non-pad tokens (LM)."""
    return math.exp(pred["sum_nll"].sum() / pred["n_tokens"].sum())


def lm_coverage(pred: dict[str, np.ndarray]) -> dict[str, int]:
    known = pred["other_known"]
    return {"scored": int(known.sum()), "other_form_out_of_vocabulary": int((~known).sum())}


def basic_metrics(pred: dict[str, np.ndarray]) -> dict[str, float | dict]:
    """The metrics every run reports."""
    if "probs" in pred:
        return {"mu_accuracy": mu_accuracy(pred), "n": int(len(pred["label"]))}
    return {
        "perplexity": perplexity(pred),
        "agreement_accuracy": mu_accuracy(pred),
        "coverage": lm_coverage(pred),
        "n": int(len(pred["label"])),
    }
