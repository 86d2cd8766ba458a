"""Every run of a grid scored on the suites (skipping what is scored already) and the report's
suite section: tables per construction and attractor count, the claims, the figure."""

import dataclasses
import json
import re

import numpy as np
import pytest
from conftest import tiny, write_suite

import ibkd.suite_predictions as suite_predictions
from ibkd import experiments
from ibkd.cli import main
from ibkd.experiments import scenario1
from ibkd.experiments.grid import run_grid
from ibkd.experiments.suite_report import ACROSS_CLAUSE, ALL, WITH_ATTRACTOR, slices
from ibkd.report import write_report
from ibkd.suite_predictions import Suite, SuiteScorer


def small_grid(seeds=2, setup="cls"):
    """LSTM and Transformer alone, and the Transformer taught by the LSTM: a few dozen training
    rows, one epoch."""
    keep = ("lstm/", "transformer/", "transformer--from-lstm/")
    runs = [r for r in scenario1.grid(setup, "quick", seeds=seeds) if r.name.startswith(keep)]
    return tiny(runs, rows=40)


def test_slices_from_saved_predictions():
    pred = {
        "item": np.arange(5),
        "construction": np.array(["prep_anim", "prep_inanim", "subj_rel", "simple_agrmt", "x"]),
        "n_attractors": np.array([1, 0, 1, 0, -1]),
        "score_good": np.array([0.9, 0.2, 0.7, np.nan, 0.6]),
        "score_bad": np.array([0.1, 0.8, 0.3, 0.5, 0.4]),
    }
    s = slices(pred)
    assert s[ALL] == 0.75 and s["across a prepositional phrase"] == 0.5  # anim + inanim
    assert s["across a subject relative clause"] == 1.0 and s["x"] == 1.0
    assert s["attractors=0"] == 0.0 and s["attractors=1"] == 1.0 and s[WITH_ATTRACTOR] == 1.0
    assert s[ACROSS_CLAUSE] == 1.0 and "simple" not in s  # its only item is not scored


@pytest.mark.parametrize("setup", ["cls", "lm"])
@pytest.mark.slow
def test_grid_runs_are_scored_once_and_reported(tmp_path, setup):
    suite = write_suite(tmp_path / "ml")
    runs = small_grid(setup=setup)
    scorer = SuiteScorer([Suite(str(suite))]).read()
    grid = tmp_path / "grid"
    result = run_grid(runs, grid, progress=False, after_run=scorer)
    assert not result.failed and not scorer.failed
    for r in runs:
        assert (grid / r.name / "suites" / "ml.npz").is_file()
        summary = json.loads((grid / r.name / "suites" / "ml.json").read_text())
        assert summary.get("lm_comparison") == ("target" if setup == "lm" else None)
        assert summary["scored"] > 0
    stamp = (grid / runs[0].name / "suites" / "ml.npz").stat().st_mtime_ns
    again = SuiteScorer([Suite(str(suite))])
    run_grid(runs, grid, progress=False, after_run=again)  # all done: nothing re-scored
    assert (grid / runs[0].name / "suites" / "ml.npz").stat().st_mtime_ns == stamp
    assert again.items == {}  # not even read

    text = write_report(grid).read_text()
    start = text.index("## Targeted suites")
    section = text[start : text.index("\n## ", start)]  # up to the next section
    assert "### ml" in section and "6 runs scored" in section
    header = "| model | simple | across a prepositional phrase | across a subject relative clause"
    assert header in section and "By attractor count:\n\n| model | 0 | 1 |" in section
    for row in ("| lstm |", "| transformer |", "| lstm -> transformer |"):
        assert section.count(row) == 2, row  # by construction and by attractor count
    assert " ± " in section  # two seeds
    assert "the LSTM beats" in section and "against transformer alone" in section
    # the published reference row, with its source, under the columns it covers
    reference = (
        "| *LSTM LM, ~90M words of Wikipedia (Shen et al. 2019, ICLR, Table 3)* | – | 0.68 |"
    )
    assert reference in section and "Rows in italics are published reference numbers" in section
    assert (grid / "figures" / "suite_ml.png").stat().st_size > 1000
    hard = text[text.index("## The claims on the hard cases") :]
    claim = "Claim 2: the LSTM teacher" if setup == "cls" else "Claim 4: the LSTM agrees better"
    assert claim in hard and "| ml, across a PP (n = 3) |" in hard
    assert "| ml, across a relative clause (n = 2) |" in hard and "≥ 1 attractor (n = " in hard
    numbers = r"[+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\]"  # a difference, its interval
    each = "distilled minus alone: transformer"
    each = "lstm -> transformer minus alone" if setup == "lm" else each
    none = r"[+-]\d\.\d{3} \(no interval: zero spread over seeds\)"  # constant over seeds
    found = re.findall(f"n = [\\d,]+, Claim \\d: .*{each} (?:{numbers}|{none})", hard)
    assert len(found) == 5  # per set
    share = text[text.index("## The transferred share on the hard cases") :]
    for label in (
        "ml, simple (n = ",
        "ml, across a prepositional phrase (n = 3)",
        "ml, across a relative clause (n = 2)",
        "test split, ≥ 1 attractor (n = ",
    ):
        assert f"\n| {label}" in share, label  # a row per hard set


@pytest.mark.slow
def test_reproduce_scores_finished_runs_on_the_shipped_and_added_suites(
    tmp_path, monkeypatch, capsys
):
    one_seed = dataclasses.replace(
        experiments.get("scenario1"), grid=lambda **k: small_grid(seeds=1)
    )
    monkeypatch.setitem(experiments.SCENARIOS, "scenario1", one_seed)
    monkeypatch.setattr(suite_predictions, "SHIPPED_SUITES", (str(write_suite(tmp_path / "ml")),))
    out = tmp_path / "grid"
    args = ["reproduce", "scenario1", "--out", str(out), "--workers", "1", "--no-progress",
            "--device", "cpu", "--epochs", "1", "--max-train-rows", "40"]  # fmt: skip
    assert main(args + ["--no-suites"]) == 0
    assert (out / "lstm" / "seed0" / "metrics.json").exists()
    assert not list(out.glob("*/*/suites"))
    assert "## Targeted suites" not in (out / "report.md").read_text()

    added = write_suite(tmp_path / "added")
    assert main(args + ["--suite", str(added)]) == 0  # trains nothing, scores every run
    assert "0 runs trained, 3 already done" in capsys.readouterr().err
    for r in small_grid(seeds=1):
        scored = sorted(p.name for p in (out / r.name / "suites").glob("*.npz"))
        assert scored == ["added.npz", "ml.npz"]
    report = (out / "report.md").read_text()
    assert "### ml" in report and "### added" in report
    assert "no verdict with one seed" in report and "the LSTM beats" not in report

    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(args + ["--suite", str(bad)]) == 2  # a bad suite stops before any training
    assert "bad.jsonl:1" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
