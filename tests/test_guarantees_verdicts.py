"""Verdicts and metrics that do not overstate: no verdict without a valid interval, no "held"
for a claim with a part that cannot be judged, BLiMP's score as the benchmark defines it,
fidelity against the teacher the student matched, an honest temperature fit, and no silent
no-op options. Hand-made numbers, no training (except the one refused option)."""

import math

import numpy as np

from ibkd.experiments.results import Run, analyse_representations, groups_of
from ibkd.experiments.verdicts import claim3, compare_values, unjudged, verdict


def test_zero_spread_gives_no_interval_and_no_verdict():
    # identical accuracies over seeds in both groups: R's t.test refuses ("essentially constant")
    welch = compare_values({0: 0.9, 1: 0.9, 2: 0.9}, {0: 0.8, 1: 0.8, 2: 0.8}, paired=False)
    assert not welch.judged and welch.sign == 0 and math.isnan(welch.low)
    assert welch.no_interval == "zero spread over seeds"
    assert welch.text() == "+0.100 (no interval: zero spread over seeds)"
    # paired: every seed's difference the same (up to rounding: 0.91 - 0.81 != 0.9 - 0.8)
    paired = compare_values({0: 0.9, 1: 0.91}, {0: 0.8, 1: 0.81}, paired=True)
    assert not paired.judged and paired.no_interval
    text = verdict([welch.sign, paired.sign], 3, unjudged([welch, paired]))
    assert text.startswith("no verdict") and "zero spread" in text and "held" not in text
    # one part judged as claimed, one without an interval: partly held, never "held"
    good = compare_values({0: 0.9, 1: 0.92, 2: 0.91}, {0: 0.8, 1: 0.81, 2: 0.83}, True)
    assert good.judged and good.sign == 1
    text = verdict([good.sign, welch.sign], 3, unjudged([good, welch]))
    assert text.startswith("partly held: 1 of 2 as claimed") and "1 not judged" in text
    # spread in one group only is a valid (Welch) interval
    assert compare_values({0: 0.9, 1: 0.9}, {0: 0.8, 1: 0.82}, paired=False).judged


def _run(model, seed, features, teacher=None):
    group = model if teacher is None else f"{teacher} -> {model}"
    return Run(f"{group}/seed{seed}", group, model, teacher and f"{teacher}/seed{seed}",
               teacher, teacher or "none", "lm", seed, {"mu_accuracy": 0.5}, features)  # fmt: skip


def test_claim3_is_not_held_when_its_spread_half_cannot_be_judged():
    rng = np.random.default_rng(0)
    teacher = [rng.normal(size=(40, 6)) for _ in range(2)]
    runs = []
    for seed in range(2):  # two seeds: one pair of seeds, no spread comparison possible
        runs.append(_run("lstm", seed, teacher[seed]))
        runs.append(_run("transformer", seed, rng.normal(size=(40, 6))))
        near = teacher[seed] + 0.05 * (seed + 1) * rng.normal(size=(40, 6))
        runs.append(_run("transformer", seed, near, teacher="lstm"))
    groups = groups_of(runs)
    text = claim3(groups, analyse_representations(runs), "lstm", "lstm")
    assert "comparing spreads needs ≥ 3 seeds" in text
    assert "**held**" not in text
    assert "**partly held: 1 of 2 as claimed" in text and "spread needs ≥ 3 seeds" in text
