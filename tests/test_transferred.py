"""The transferred share and its Fieller interval, on hand-made numbers worked out by hand."""

import math

import pytest

from ibkd.experiments.transferred import ShareSet, share_section, transferred_share

ALONE = {0: 0.50, 1: 0.52, 2: 0.54}
TEACHER = {0: 0.70, 1: 0.74, 2: 0.72}  # edge per seed 0.20, 0.22, 0.18
DISTILLED = {0: 0.60, 1: 0.61, 2: 0.65}  # gain per seed 0.10, 0.09, 0.11


def test_share_and_fieller_interval_by_hand():
    # gain mean 0.10, edge mean 0.20 -> share 0.5.
    # Sample (co)variances (ddof 1): s_gg = 0.0001, s_ee = 0.0004, s_ge = -0.0002; over n = 3:
    # v_gg = 3.3333e-5, v_ee = 1.3333e-4, v_ge = -6.6667e-5. t(0.975, 2) = 4.302653, t^2 = 18.5128.
    # A = 0.2^2 - t^2 v_ee = 0.04 - 0.0024684 = 0.0375316
    # B = 0.1 * 0.2 - t^2 v_ge = 0.02 + 0.0012342 = 0.0212342
    # C = 0.1^2 - t^2 v_gg = 0.01 - 0.0006171 = 0.0093829
    # B^2 - AC = t^2 (0.04 v_gg - 2 * 0.02 v_ge + 0.01 v_ee) (v_gg v_ee = v_ge^2 here)
    #          = 18.5128 * 5.3333e-6 = 9.8735e-5; its root 0.0099366
    # low = (0.0212342 - 0.0099366) / 0.0375316 = 0.30102; high = 0.0311708 / 0.0375316 = 0.83052
    s = transferred_share(DISTILLED, ALONE, TEACHER)
    assert s.reported and s.n == 3
    assert s.share == pytest.approx(0.5)
    assert s.gain == pytest.approx(0.10) and s.edge == pytest.approx(0.20)
    assert s.low == pytest.approx(0.30102, abs=2e-4)
    assert s.high == pytest.approx(0.83052, abs=2e-4)
    # the edge's paired t interval: 0.20 +- 4.302653 * sqrt(0.0004 / 3) = 0.20 +- 0.049683
    assert s.edge_low == pytest.approx(0.150317, abs=1e-5)
    assert s.edge_high == pytest.approx(0.249683, abs=1e-5)
    assert s.text() == "0.50 [0.30, 0.83]"


def test_seeds_are_paired_not_pooled():
    # the same values with the distilled seeds relabelled: gains 0.10, 0.11, 0.09 now follow
    # the edges (+ covariance), the interval narrows to the point 0.5 (gain = edge / 2 per seed)
    s = transferred_share({0: 0.60, 1: 0.63, 2: 0.63}, ALONE, TEACHER)
    assert s.share == pytest.approx(0.5)
    assert s.low == pytest.approx(0.5, abs=1e-6) and s.high == pytest.approx(0.5, abs=1e-6)


def test_no_share_where_the_teachers_edge_holds_zero():
    # edges 0.05, -0.03, 0.01: mean 0.01, s_ee = 0.0016, half-width 4.302653 * 0.023094 = 0.0994
    teacher = {0: 0.55, 1: 0.49, 2: 0.55}
    s = transferred_share(DISTILLED, ALONE, teacher)
    assert not s.reported and math.isnan(s.share) and math.isnan(s.low)
    assert s.edge == pytest.approx(0.01)
    assert s.edge_low == pytest.approx(0.01 - 0.09936, abs=1e-4)
    assert s.text().startswith("– (teacher's edge +0.010 [")
    assert "not separable from zero" in s.text()


def test_zero_spread_one_seed_and_missing_seeds():
    at_ceiling = {0: 1.0, 1: 1.0, 2: 1.0}
    s = transferred_share(DISTILLED, ALONE, at_ceiling)
    assert not s.reported and "zero spread" in s.reason and math.isnan(s.low)
    one = transferred_share({0: 0.6}, {0: 0.5}, {0: 0.7})
    assert not one.reported and one.n == 1 and one.gain == pytest.approx(0.1)
    # only seeds every group has are paired: seed 3 of the student alone is ignored
    s = transferred_share(DISTILLED, {**ALONE, 3: 0.0}, TEACHER)
    assert s.n == 3 and s.share == pytest.approx(0.5)
    assert transferred_share({}, ALONE, TEACHER).n == 0


def test_section_table():
    groups = {"teacher": TEACHER, "alone": ALONE, "kd": DISTILLED}
    sets = [ShareSet("test, ≥ 1 attractor", 120, lambda g: groups[g])]
    parts = share_section(sets, "teacher", [("transformer", "kd", "alone")], "Transferred share")
    text = "".join(parts)
    assert "| test, ≥ 1 attractor (n = 120) | 0.50 [0.30, 0.83] |" in text
    assert "distilled − alone +0.100, teacher − alone +0.200 [+0.150, +0.250] (3 seeds)" in text
    assert share_section(sets, None, [("t", "kd", "alone")], "x") == []


def _runs(values_by_group, setup="cls"):
    """Hand-made runs: group -> (model, teacher model, seed -> accuracy with >= 1 attractor)."""
    from ibkd.experiments.results import Run

    runs = []
    for group, (model, teacher, per_seed) in values_by_group.items():
        for seed, acc in per_seed.items():
            metrics = {
                "mu_accuracy": 0.9,
                "n": 1000,
                "accuracy_with_attractors": {"1": {"accuracy": acc, "n": 80}},
            }
            runs.append(Run(f"{group}/seed{seed}", group, model,
                            teacher and f"{teacher}/seed{seed}", teacher, teacher or "none",
                            setup, seed, metrics))  # fmt: skip
    return runs


def test_scenario1_report_states_the_share_per_hard_set_and_suite():
    from ibkd.experiments.results import groups_of
    from ibkd.experiments.scenario1 import share_sections
    from ibkd.experiments.suite_report import ACROSS_CLAUSE, ALL, WITH_ATTRACTOR, SuiteResults

    runs = _runs({"lstm": ("lstm", None, TEACHER), "transformer": ("transformer", None, ALONE),
                  "lstm -> transformer": ("transformer", "lstm", DISTILLED)})  # fmt: skip
    groups = groups_of(runs)
    ml = SuiteResults("marvin-linzen", counts={"across a prepositional phrase": 400,
                                               "simple": 200, ACROSS_CLAUSE: 300})  # fmt: skip
    mine = SuiteResults("my-suite", counts={ALL: 50, WITH_ATTRACTOR: 20})
    by_group = {"lstm": TEACHER, "transformer": ALONE, "lstm -> transformer": DISTILLED}
    for r in runs:
        v = by_group[r.group][r.seed]
        ml.runs[r.name] = {"across a prepositional phrase": v, "simple": 0.9, ACROSS_CLAUSE: v}
        mine.runs[r.name] = {ALL: v, WITH_ATTRACTOR: v}
    text = "".join(share_sections(groups, runs, {"marvin-linzen": ml, "my-suite": mine}))
    assert "## The transferred share on the hard cases" in text
    assert "| test split, ≥ 1 attractor (n = 80) | 0.50 [0.30, 0.83] |" in text
    # each construction in Marvin & Linzen's order, then across a relative clause
    assert (
        text.index("marvin-linzen, simple (n = 200)")
        < text.index("marvin-linzen, across a prepositional phrase (n = 400) | 0.50 [0.30, 0.83]")
        < text.index("marvin-linzen, across a relative clause (n = 300)")
    )
    # every seed 0.9 on the simple items: zero spread, no interval and no share
    assert "| marvin-linzen, simple (n = 200) | – (" in text
    assert "| my-suite, all items (n = 50) | 0.50 [0.30, 0.83] |" in text
    assert "| my-suite, with an attractor (n = 20) | 0.50 [0.30, 0.83] |" in text


def test_scenario2_report_states_the_share_on_shifted_digits():
    from ibkd.experiments.results import Run, groups_of
    from ibkd.experiments.scenario2 import share_sections

    runs = []
    for group, model, teacher, per_seed in (("cnn", "cnn", None, TEACHER),
                                            ("mlp", "mlp", None, ALONE),
                                            ("cnn -> mlp", "mlp", "cnn", DISTILLED)):  # fmt: skip
        for seed, acc in per_seed.items():
            sets = {"scale": {"mu_accuracy": acc, "n": 10000},
                    "translate": {"mu_accuracy": 0.5 + seed * 0.01, "n": 10000}}  # fmt: skip
            runs.append(Run(f"{group}/seed{seed}", group, model, teacher and f"cnn/seed{seed}",
                            teacher, teacher or "none", "mnist", seed, {}, sets=sets))  # fmt: skip
    text = "".join(share_sections(groups_of(runs)))
    assert "| scaled digits (n = 10,000) | 0.50 [0.30, 0.83] |" in text
    # translated: the teacher's edge is 0 on every seed: not separable, no share
    assert "| translated digits (n = 10,000) | – (teacher's edge +0.000" in text
