"""The distillation-methods study (`ibkd reproduce SCENARIO --grid kd-methods`): its grids as
data, reuse of the main grid's identical runs, and both scenarios end to end on tiny data."""

import json

import pytest
from conftest import cell_text, markdown_tables, mini_grid

from ibkd.cli import main
from ibkd.experiments import get
from ibkd.experiments.grid import run_grid
from ibkd.experiments.kd_methods import MEASURES_1, MEASURES_2, METHODS


def test_the_study_grids_share_the_main_grids_runs():
    """Same teachers and seeds as the main grid; the teacher, the student alone and `kd` are
    the main grid's runs exactly; every method appears once per seed."""
    for scenario, student in (("scenario1", "transformer"), ("scenario2", "mlp")):
        main_runs = {r.name: r for r in get(scenario).grid(budget="quick", seeds=3)}
        study = get(scenario, "kd-methods").grid(budget="quick", seeds=3)
        assert len(study) == 3 * (len(METHODS) + 1)
        by_group = {}
        for r in study:
            by_group.setdefault(r.group, []).append(r)
            r.config.validate()
        assert {g: len(rs) for g, rs in by_group.items()} == {
            g: 3 for g in ["teacher", *(m.name for m in METHODS)]
        }
        for r in [*by_group["teacher"], *by_group["alone"], *by_group["kd"]]:
            assert r.config == main_runs[r.name].config and r.teacher == main_runs[r.name].teacher
        for r in by_group["online"]:
            assert r.teacher is None and r.config.distill.online["name"] in r.name
        assert {r.config.distill.loss for r in by_group["hint"]} == {"hint"}
        # representation losses keep gold CE beside them (RepDistiller's weights)
        assert {r.config.distill.alpha for r in by_group["similarity"]} == {3000 / 3001}
        assert {r.config.distill.alpha for r in by_group["hint"]} == {100 / 101}
        assert {r.config.distill.alpha for r in by_group["hard"]} == {
            r.config.distill.alpha for r in by_group["kd"]
        }
        assert all(r.name.startswith(student) for g in METHODS for r in by_group[g.name])
    with pytest.raises(Exception, match="--grid kd-methods: for --setup cls"):
        get("scenario1", "kd-methods").grid(budget="quick", setup="lm")
    with pytest.raises(Exception, match="--grid 'nope': scenario1 has main, kd-methods"):
        get("scenario1", "nope")


def test_identical_finished_runs_are_copied_not_trained(tmp_path, small_data):  # noqa: F811
    main_runs = mini_grid(small_data)
    assert not run_grid(main_runs, tmp_path / "main", progress=False).failed
    # a study asking for the same three runs and one more (the teacher at another seed)
    other = mini_grid(small_data, seeds=2)
    other[-1].config.distill.loss = "hard"  # transformer--from-lstm/seed1: differs in its loss
    result = run_grid(other, tmp_path / "study", progress=False, reuse=tmp_path / "main")
    assert sorted(result.skipped) == sorted(r.name for r in main_runs)  # copied, then skipped
    assert sorted(result.finished) == sorted(r.name for r in other[3:])
    copied = tmp_path / "study" / "transformer--from-lstm" / "seed0"
    assert (copied / "metrics.json").read_text() == (
        tmp_path / "main" / "transformer--from-lstm" / "seed0" / "metrics.json"
    ).read_text()
    assert not list((tmp_path / "study").glob("*/*.copying"))


@pytest.mark.slow
def test_scenario1_study_end_to_end(tmp_path, small_data):  # noqa: F811
    """Scenario 1's study, tiny models on a few dozen rows, 1 epoch, 2 seeds, scored on a tiny
    suite in Marvin & Linzen's layout: every method trains, is measured and is ranked."""
    from conftest import tiny, write_suite

    from ibkd.report import write_report
    from ibkd.suite_predictions import Suite, SuiteScorer

    runs = tiny(get("scenario1", "kd-methods").grid(budget="quick", seeds=2), rows=40)
    for r in runs:
        r.config.data.data, r.config.data.transfer = str(small_data), None  # (time)
        r.config.model.dim = r.config.model.hidden = 8
        if r.config.distill is not None and r.config.distill.online:
            r.config.distill.online.update(dim=8, hidden=8, layers=1)
    out = tmp_path / "study"
    scorer = SuiteScorer([Suite(str(write_suite(tmp_path / "ml")))]).read()
    result = run_grid(runs, out, progress=False, scenario="scenario1:kd-methods",
                      budget="quick", after_run=scorer)  # fmt: skip
    assert not result.failed and len(result.finished) == 16
    text = write_report(out).read_text()
    assert "## Distillation methods (LSTM -> Transformer" in text
    table = text.split("## Rankings")[0]
    for m in METHODS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {m.name} |"))
        cells = row.split(" | ")
        # µ-, A-accuracy, both suite slices, ECE, fidelity and distances have a value (the
        # tiny test split has no example with 2-4 attractors)
        assert all(cells[i] != "–" for i in (1, 2, 7, 8, 9, 10, 11, 12)), row
    study = next(t for t in markdown_tables(text) if t[0][0] == "method")
    assert study[0][1:] == [ms.label for ms in MEASURES_1]
    assert [r[0] for r in study[1:]] == [m.name for m in METHODS]
    summary = json.loads((out / "summary.json").read_text())
    for row in study[1:]:  # the µ-accuracy column is the summary's, group by group
        assert row[1] == cell_text(summary[row[0]]["test"]["mu_accuracy"]), row
    ranked = [line.split("**")[1] for line in text.splitlines() if line.startswith("- **")]
    assert sorted(ms.label for ms in MEASURES_1) == sorted(ranked[: len(MEASURES_1)])  # each once
    assert "Calibrated teachers (temperature scaling on the validation split, 2 seeds)" in text
    effect = text.split("(`kd-calibrated` minus `kd`, paired by seed): ")[1].split("\n")[0]
    assert effect.startswith("µ-accuracy ") and "; ECE " in effect
    assert (out / "transformer--online-lstm" / "seed1" / "teacher" / "metrics.json").exists()
    share = text.split("## The transferred share of each method")[1]
    header = next(line for line in share.splitlines() if line.startswith("| examples"))
    assert header == "| examples (n) | " + " | ".join(m.name for m in METHODS[1:]) + " |"
    for label in ("A-accuracy", "M&L across a PP", "M&L across a relative clause"):
        assert f"\n| {label} | " in share


@pytest.mark.slow
def test_scenario2_study_end_to_end(tmp_path, tiny_mnist):  # noqa: F811
    """`ibkd reproduce scenario2 --grid kd-methods` on random digits, 1 epoch, 2 seeds."""
    out = tmp_path / "study"
    assert main(["reproduce", "scenario2", "--grid", "kd-methods", "--data-dir", str(tiny_mnist),
                 "--seeds", "2", "--max-train-rows", "100", "--out", str(out), "--no-progress",
                 "--device", "cpu", "--workers", "1", "--epochs", "1"]) == 0  # fmt: skip
    text = (out / "report.md").read_text()
    assert json.loads((out / "grid.json").read_text())["scenario"] == "scenario2:kd-methods"
    study = next(t for t in markdown_tables(text) if t[0][0] == "method")
    assert study[0][1:] == [ms.label for ms in MEASURES_2]
    summary = json.loads((out / "summary.json").read_text())
    for row in study[1:]:  # accuracy on translated digits is the summary's, group by group
        assert row[3] == cell_text(summary[row[0]]["translate"]["mu_accuracy"]), row
    ranked = [line.split("**")[1] for line in text.splitlines() if line.startswith("- **")]
    assert sorted(ms.label for ms in MEASURES_2) == sorted(ranked[: len(MEASURES_2)])
    assert (out / "mlp--online-cnn" / "seed0" / "teacher" / "predictions" / "scale.npz").exists()
    share = text.split("## The transferred share of each method")[1]
    assert "\n| accuracy scaled | " in share and "\n| accuracy translated | " in share
