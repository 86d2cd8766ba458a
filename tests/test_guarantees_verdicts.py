"""Verdicts and metrics that do not overstate: no verdict without a valid interval, no "held"
for a claim with a part that cannot be judged, BLiMP's score as the benchmark defines it,
fidelity against the teacher the student matched, an honest temperature fit, and no silent
no-op options. Hand-made numbers, no training (except the one refused option)."""

import math

import numpy as np
import pytest
import torch

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


def test_blimp_reports_the_mean_over_paradigms_beside_the_pooled_accuracy():
    from ibkd.experiments.suite_report import ALL, MEAN, slices
    from ibkd.metrics import suite_metrics

    # a large easy paradigm (180 of 200 right) and a small hard one (5 of 10 right)
    n = 210
    construction = np.array(["easy"] * 200 + ["hard"] * 10)
    right = np.r_[np.arange(200) < 180, np.arange(10) < 5]
    pred = {
        "item": np.arange(n), "construction": construction, "n_attractors": np.full(n, -1),
        "score_good": np.where(right, 1.0, 0.0), "score_bad": np.full(n, 0.5),
    }  # fmt: skip
    m = suite_metrics(pred)
    assert m["accuracy"] == pytest.approx(185 / 210)  # pooled over items
    assert m["mean_over_constructions"] == pytest.approx(0.7)  # BLiMP's score: (0.9 + 0.5) / 2
    s = slices(pred)
    assert s[ALL] == pytest.approx(185 / 210) and s[MEAN] == pytest.approx(0.7)


def test_temperature_fit_reaches_a_bound_and_says_so():
    from ibkd.distill import T_BOUNDS, calibration_warnings, fit_temperature

    # right everywhere with wide margins: the NLL falls (flatly) toward T -> 0
    z = torch.tensor([[3.0, 0.0]] * 50 + [[0.0, 2.0]] * 50)
    y = torch.tensor([0] * 50 + [1] * 50)
    assert fit_temperature(z, y) == T_BOUNDS[0]
    assert "at the end of the search's range" in calibration_warnings(T_BOUNDS[0], 100, 2)[0]
    # an interior optimum: the fit matches a dense search
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 3)) * 3  # overconfident: labels follow z only in part
    y = torch.tensor((z + rng.normal(size=(400, 3)) * 3).argmax(1))
    z = torch.tensor(z)
    ts = np.exp(np.linspace(np.log(0.05), np.log(20), 20001))
    nll = [float(torch.nn.functional.cross_entropy(z / t, y)) for t in ts[::10]]
    best = ts[::10][int(np.argmin(nll))]
    t = fit_temperature(z, y)
    assert T_BOUNDS[0] < t < T_BOUNDS[1] and t == pytest.approx(best, rel=5e-3)
    assert calibration_warnings(t, 400, 3) == []
    tiny, one_class = calibration_warnings(t, 12, 1)
    assert "12 validation examples" in tiny and "same label" in one_class


def test_fidelity_of_a_calibrated_teachers_student_is_against_the_calibrated_teacher(
    tmp_path, monkeypatch, capsys
):
    import json

    from conftest import tiny_data

    from ibkd.cli import main
    from ibkd.distill import calibrated_probs
    from ibkd.metrics import fidelity
    from ibkd.predictions import load_predictions

    tiny_data(tmp_path / "data", (120, 60, 60))
    monkeypatch.chdir(tmp_path)
    common = ["--preset", "quick", "--epochs", "1", "--batch-size", "32", "--no-progress",
              "--device", "cpu", "--threads", "1", "--transfer", "none"]  # fmt: skip
    assert main(["train", "--setup", "cls", "--model", "lstm", "--data", "data", "--out", "t",
                 *common]) == 0  # fmt: skip
    student = ["distill", "--model", "transformer", "--teacher", "t", *common]
    capsys.readouterr()
    # a loss that ignores the teacher's probabilities: calibration would be a silent no-op
    for loss in ("similarity", "hint", "hard"):
        assert main([*student, "--kd-loss", loss, "--teacher-calibration", "temperature",
                     "--out", "x"]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert f"--kd-loss {loss}: that loss does not use the teacher's probabilities" in err
        assert err.count("\n") == 1 and not (tmp_path / "x").exists()
    assert main([*student, "--teacher-calibration", "temperature", "--out", "cal"]) == 0
    m = json.loads((tmp_path / "cal" / "metrics.json").read_text())
    cal = m["teacher_calibration"]
    assert {"classes", "at_bound", "warnings"} <= set(cal) and cal["examples"] == 60
    t_cal = cal["temperature"]
    assert m["test"]["fidelity"]["against"] == f"the calibrated teacher (T_cal = {t_cal:.4g})"
    got = load_predictions(tmp_path / "cal" / "predictions" / "test.npz")
    teacher = load_predictions(tmp_path / "t" / "predictions" / "test.npz")
    target = calibrated_probs(teacher, t_cal)
    assert m["test"]["fidelity"]["kl"] == pytest.approx(fidelity(got, target)["kl"])
    # a student equal to its calibrated target has KL 0 against it, not against the raw one
    assert fidelity(target, target)["kl"] == pytest.approx(0, abs=1e-9)
    if abs(t_cal - 1) > 0.05:
        assert fidelity(target, teacher)["kl"] > 1e-4
