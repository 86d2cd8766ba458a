import json

import pytest

from ibkd.cli import main
from ibkd.errors import IbkdError
from ibkd.experiments.grid import ordered, run_grid
from ibkd.experiments.scenario1 import grid
from ibkd.report import write_report


def tiny(runs, rows=250):
    for r in runs:
        m, t = r.config.model, r.config.train
        m.dim, m.hidden, m.layers, m.heads = 16, 16, 1, 2
        t.epochs, t.batch_size, t.warmup_steps, t.device = 1, 32, 5, "cpu"
        r.config.data.max_train_rows = rows  # also caps the transfer prefixes
    return runs


def test_grid_as_data():
    runs = grid("cls", "quick", seeds=2)
    assert len(runs) == 2 * (4 + 3 + 3)  # alone, LSTM teacher, control (+ transfer set)
    students = [r for r in runs if r.teacher]
    assert {r.teacher for r in students} == {"lstm/seed0", "lstm/seed1"}
    assert all(r.config.distill.alpha == 1.0 for r in students)
    assert {r.row for r in runs} == {"none", "lstm", "none + transfer"}
    assert all(r.config.data.transfer == "default" for r in runs if r.row != "none")
    paper = grid("cls", "paper", seeds=1)
    assert len(paper) == 4 + 16 and all(r.config.data.transfer is None for r in paper)
    assert all(r.config.distill.temperature == 1.0 for r in paper if r.teacher)
    assert len(grid("lm", "quick", seeds=1)) == 4 + 2
    order = [r.name for r in ordered(list(reversed(runs)))]
    assert order.index("lstm/seed0") < order.index("transformer--from-lstm/seed0")
    with pytest.raises(IbkdError, match="--budget"):
        grid("cls", "huge")


def test_reproduce_end_to_end_then_skip(tmp_path):
    runs = tiny(grid("cls", "quick", seeds=2))
    result = run_grid(runs, tmp_path, progress=False)
    assert len(result.finished) == len(runs) and not result.failed
    report = write_report(tmp_path)
    text = report.read_text()
    assert "µ-accuracy" in text and "**Claim 1**" in text and "**Claim 3**" in text
    assert "| none |" in text and "| lstm |" in text and "(0.954)" in text
    for fig in ("accuracy_by_distance", "accuracy_by_attractors", "reliability", "mds"):
        assert (tmp_path / "figures" / f"{fig}.png").stat().st_size > 1000
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["lstm -> transformer"]["test"]["mu_accuracy"]["n"] == 2
    again = run_grid(runs, tmp_path, progress=False)
    assert again.finished == [] and len(again.skipped) == len(runs)


def test_a_failed_run_is_reported_and_the_rest_go_on(tmp_path):
    runs = tiny(grid("cls", "quick", seeds=1))
    bad = runs[0]  # transformer alone: give it an impossible width
    bad.config.model.heads = 3
    result = run_grid(runs, tmp_path, progress=False)
    assert list(result.failed) == [bad.name] and "divisible" in result.failed[bad.name]
    assert len(result.finished) == len(runs) - 1
    manifest = json.loads((tmp_path / "grid.json").read_text())
    status = {r["name"]: r["status"] for r in manifest["runs"]}
    assert status[bad.name].startswith("failed") and status["lstm/seed0"] == "trained"
    assert "Runs missing from this report" in write_report(tmp_path).read_text()


def test_students_of_a_failed_teacher_are_skipped(tmp_path):
    runs = tiny(grid("cls", "quick", seeds=1))
    teacher = next(r for r in runs if r.name == "lstm/seed0")
    teacher.config.model.arch = "gru"
    result = run_grid(runs, tmp_path, progress=False)
    assert "teacher lstm/seed0 failed" in result.failed["transformer--from-lstm/seed0"]
    assert len(result.failed) == 1 + 3


def test_cli_reproduce_and_report(tmp_path, capsys):
    out = tmp_path / "grid"
    args = [
        "reproduce",
        "scenario1",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--max-train-rows",
        "200",
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert (out / "report.md").exists()
    assert main(["report", str(out)]) == 0
    assert "report:" in capsys.readouterr().out
    assert main(args) == 0  # everything skipped the second time
    assert "0 runs trained, 10 already done" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2


def test_process_pool_matches_sequential_runs(tmp_path):
    import os

    import torch

    runs = tiny(grid("cls", "quick", seeds=1), rows=150)[:5]  # 4 alone + lstm -> transformer
    pooled = run_grid(runs, tmp_path / "pool", progress=False, workers=2)
    assert len(pooled.finished) == 5 and not pooled.failed
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))  # what each pool worker uses
    try:
        run_grid(runs, tmp_path / "seq", progress=False)
    finally:
        torch.set_num_threads(threads)
    for r in runs:
        a = json.loads((tmp_path / "pool" / r.name / "metrics.json").read_text())
        b = json.loads((tmp_path / "seq" / r.name / "metrics.json").read_text())
        assert a["test"]["mu_accuracy"] == b["test"]["mu_accuracy"], r.name
        assert a["test"]["ece"] == b["test"]["ece"], r.name


def test_lm_grid_and_report(tmp_path):
    runs = tiny(grid("lm", "quick", seeds=2), rows=120)
    result = run_grid(runs, tmp_path, progress=False, workers=2)
    assert not result.failed and len(result.finished) == 12
    text = write_report(tmp_path).read_text()
    assert "perplexity (paper)" in text and "(57.5)" in text
    assert "**Claim 4**" in text and "**Claim 5**" in text
    assert (tmp_path / "figures" / "perplexity_vs_agreement.png").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["lstm -> transformer"]["test"]["perplexity"]["n"] == 2
