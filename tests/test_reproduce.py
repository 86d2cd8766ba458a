"""Grids: the scenarios as data, the runner's behaviour on tiny synthetic grids (a few dozen
rows, tiny models, one epoch), and the end-to-end `ibkd reproduce scenario1` (scenario 2's is
in test_mnist.py)."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import cell_text, markdown_tables, mini_grid, table_under, tiny, tiny_config

from ibkd.cli import main
from ibkd.config import RunConfig
from ibkd.errors import IbkdError
from ibkd.experiments.grid import ordered, run_grid
from ibkd.experiments.scenario1 import (
    CLS_MODELS,
    PAPER_CLS_ACCURACY,
    PAPER_LM,
    grid,
    unigram_reference,
)
from ibkd.report import write_report


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


@pytest.mark.slow
def test_finished_runs_are_reused_only_with_the_same_settings(tmp_path, small_data):
    runs = mini_grid(small_data)
    first = run_grid(runs, tmp_path, progress=False)
    assert sorted(first.finished) == sorted(r.name for r in runs) and not first.failed
    again = run_grid(runs, tmp_path, progress=False)
    assert again.finished == [] and len(again.skipped) == len(runs)
    manifest = json.loads((tmp_path / "grid.json").read_text())
    assert len(manifest["calls"]) == 2 and manifest["calls"][1]["skipped"] == len(runs)
    assert manifest["total_seconds"] >= manifest["calls"][0]["seconds"] > 0  # never reset
    before = (tmp_path / "transformer" / "seed0" / "metrics.json").read_text()
    for r in runs:
        r.config.train.epochs = 2
    with pytest.raises(IbkdError, match=r"seed0: trained with other .*train\.epochs: 1 -> 2"):
        run_grid(runs, tmp_path, progress=False)
    assert (tmp_path / "transformer" / "seed0" / "metrics.json").read_text() == before
    forced = run_grid(runs, tmp_path, progress=False, force=True)
    assert sorted(forced.finished) == sorted(r.name for r in runs)
    trained = json.loads((tmp_path / "transformer" / "seed0" / "metrics.json").read_text())
    assert trained["training"]["epochs"] == 2


@pytest.mark.slow
def test_a_failed_run_is_reported_its_students_skipped_and_the_rest_go_on(tmp_path, small_data):
    runs = mini_grid(small_data)
    bad = next(r for r in runs if r.name == "lstm/seed0")
    bad.config.model.arch = "gru"
    result = run_grid(runs, tmp_path, progress=False)
    assert list(result.failed) == ["lstm/seed0", "transformer--from-lstm/seed0"]
    assert "teacher lstm/seed0 failed" in result.failed["transformer--from-lstm/seed0"]
    assert result.finished == ["transformer/seed0"]
    status = {
        r["name"]: r["status"] for r in json.loads((tmp_path / "grid.json").read_text())["runs"]
    }
    assert status["lstm/seed0"].startswith("failed") and status["transformer/seed0"] == "trained"
    text = write_report(tmp_path).read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["transformer"]  # the one finished run's group, alone
    mu = table_under(text, "### µ-accuracy")
    assert list(mu) == ["none"]  # the failed teacher's row is absent
    assert mu["none"]["transformer"] == cell_text(summary["transformer"]["test"]["mu_accuracy"],
                                                  paper=0.954)  # fmt: skip
    assert mu["none"]["lstm"] == "– (0.9775)" and "±" not in text  # no spread from one seed
    missing = next(line for line in text.splitlines() if "lstm/seed0 (failed" in line)
    assert "transformer--from-lstm/seed0 (failed: its teacher lstm/seed0 failed)" in missing


@pytest.mark.slow
def test_process_pool_matches_sequential_runs(tmp_path, small_data):
    import torch

    runs = mini_grid(small_data)
    pooled = run_grid(runs, tmp_path / "pool", progress=False, workers=2)
    assert len(pooled.finished) == 3 and not pooled.failed
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


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its new parent reaps it)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.slow
def test_pool_workers_exit_when_the_grid_process_is_killed(tmp_path):
    script = (
        "import time\n"
        "from ibkd.experiments.executors import Pool\n"
        "p = Pool(2)\n"
        "fs = [p.pool.submit(time.sleep, 120) for _ in range(2)]\n"
        "time.sleep(0.5)\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while len(workers := _children(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) >= 2, workers  # two workers (and the resource tracker, if any)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)]
    finally:
        for w in _children(parent.pid) + [parent.pid]:
            try:
                os.kill(w, signal.SIGKILL)
            except OSError:
                pass


@pytest.mark.slow
def test_reproduce_refuses_missing_data_before_any_run(tmp_path, capsys):
    out = tmp_path / "grid"
    args = ["reproduce", "scenario1", "--data", str(tmp_path / "nope"), "--out", str(out)]
    assert main(args + ["--no-progress"]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    assert not out.exists()
    assert main(["reproduce", "scenario2", "--data", str(tmp_path / "nope"), "--out", str(out),
                 "--no-progress"]) == 2  # fmt: skip
    assert "nope" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(
    "option, message",
    [
        (["--workers", "0"], "--workers 0: expected a number >= 1"),
        (["--epochs", "0"], "--epochs 0: expected a value >= 1"),
        (["--max-train-rows", "-5"], "--max-train-rows -5: expected a value >= 1"),
    ],
)
@pytest.mark.slow
def test_reproduce_checks_its_options_before_anything_is_written(tmp_path, capsys, option, message):
    out = tmp_path / "grid"
    assert main(["reproduce", "scenario1", "--out", str(out), "--no-progress", *option]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


@pytest.mark.slow
def test_reproduce_out_naming_a_file_is_one_line(tmp_path, capsys):
    out = tmp_path / "afile"
    out.write_text("keep me")
    assert main(["reproduce", "scenario1", "--out", str(out), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err and out.read_text() == "keep me"


def test_report_on_a_corrupt_grid_says_which_file(tmp_path, small_data, capsys):
    runs = mini_grid(small_data)[:1]
    run_grid(runs, tmp_path, progress=False)
    npz = tmp_path / runs[0].name / "predictions" / "test.npz"
    npz.write_bytes(b"PK\x03\x04 not a zip")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{npz}: not a readable predictions file" in err and err.count("\n") == 1
    (tmp_path / "grid.json").write_text('{"runs": [')
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "grid.json: not a valid grid.json" in err and "Traceback" not in err
    (tmp_path / "grid.json").write_text('{"runs": [{"name": "x"}]}')
    assert main(["report", str(tmp_path)]) == 2
    assert "expected a list 'runs'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "absent")]) == 2


@pytest.mark.slow
def test_lm_grid_and_report(tmp_path, small_data):
    runs = tiny(grid("lm", "quick", seeds=2), rows=80)
    for r in runs:
        r.config.data.data = str(small_data)
        r.config.model.dim = r.config.model.hidden = 8
    result = run_grid(runs, tmp_path, progress=False, scenario="scenario1", budget="quick")
    assert not result.failed and len(result.finished) == 12
    text = write_report(tmp_path).read_text()
    assert (tmp_path / "figures" / "perplexity_vs_agreement.png").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["lstm -> transformer"]["test"]["perplexity"]["n"] == 2
    rows = markdown_tables(text)[0]  # the LM table: a row per group, the paper's in brackets
    table = {r[0]: r[1:] for r in rows[1:]}
    for (teacher, student), (ppl, accuracy) in PAPER_LM.items():
        group = student if teacher is None else f"{teacher} -> {student}"
        s = summary[group]["test"]
        assert table[group][:2] == [cell_text(s["perplexity"], 1, ppl),
                                    cell_text(s["a_accuracy"], 3, accuracy)]  # fmt: skip
    config = yaml.safe_load((tmp_path / "lstm" / "seed0" / "config.yaml").read_text())
    unigram = next(v for k, v in table.items() if k.startswith("unigram model"))
    assert unigram[0] == f"{unigram_reference(config):.1f}"
    claims = [line.split("**")[1] for line in text.splitlines() if line.startswith("**Claim")]
    assert claims[:3] == ["Claim 4", "Claim 5", "Claim 3"]


@pytest.mark.slow
def test_scenario1_end_to_end(tmp_path, small_data, capsys):
    """The one full `ibkd reproduce scenario1` (cls): the quick budget's models and its
    transfer set, on a few dozen rows, 1 epoch, 2 seeds."""
    out = tmp_path / "grid"
    args = [
        "reproduce",
        "scenario1",
        "--data",
        str(small_data),
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--max-train-rows",
        "40",
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--no-suites",
    ]  # fmt: skip (suites: tests/test_suite_report.py)
    assert main(args) == 0
    text = (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    mu = table_under(text, "### µ-accuracy")
    assert list(mu) == ["none", "lstm", "none + transfer"]
    assert list(mu["none"]) == list(CLS_MODELS)
    for row, cells in mu.items():
        for student, cell in cells.items():
            names = {"none": student, "lstm": f"lstm -> {student}"}
            group = names.get(row, f"{student} + transfer")  # the control row's groups
            paper = PAPER_CLS_ACCURACY.get(None if row == "none" else row, {}).get(student)
            want = "–" if group not in summary else cell_text(summary[group]["test"]["mu_accuracy"])
            assert cell == (want if paper is None else f"{want} ({paper:g})"), (row, student)
    temperature = RunConfig.load(out / "transformer--from-lstm" / "seed0" / "config.yaml")
    assert f"T = {temperature.distill.temperature:g}" in text  # the note, from the configs
    claims = [line.split("**")[1] for line in text.splitlines() if line.startswith("**Claim")]
    assert claims[:3] == ["Claim 1", "Claim 2", "Claim 3"]
    for fig in ("accuracy_by_distance", "accuracy_by_attractors", "reliability", "mds"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    assert summary["lstm -> transformer"]["test"]["mu_accuracy"]["n"] == 2
    assert json.loads((out / "grid.json").read_text())["scenario"] == "scenario1"
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").read_text() == text  # rebuilt identically
    assert main(args) == 0  # everything skipped the second time
    assert "0 runs trained, 20 already done" in capsys.readouterr().err


@pytest.mark.slow
def test_scenario2_notes_and_figure_come_from_the_grid_not_the_report(tmp_path, tiny_mnist):
    """The budget's note states the epochs the runs were set to (here overridden to 1), and the
    shifted-digits figure is drawn before the runs (the report reads no MNIST). The scenario's
    end-to-end run is tests/test_mnist.py::test_scenario2_grid_report_and_skip."""
    from ibkd.experiments import get

    s2 = get("scenario2")
    runs = s2.grid(budget="quick", seeds=1, data=str(tiny_mnist))
    for r in runs:
        r.config.train.epochs = 1
    note = s2.notes("quick", [r.config.to_dict() for r in runs])
    assert "a CNN with 32 filters per layer, 1 epoch; the MLP 1 epoch (" in note
    s2.prepare(runs, tmp_path)
    assert (tmp_path / "figures" / "shift_examples.png").stat().st_size > 1000


def test_one_run_identity_for_resume_and_grids(tmp_path, monkeypatch):
    """`ibkd.runs.config_differences` is the one identity: it leaves out how a run executes
    (device, compile), where its teacher lives and how a data path is written (relative or
    absolute), names every other differing setting, and is what a grid's stale check and a
    resume's folder check both refuse on."""
    from ibkd.experiments.grid import GridRun, stale_runs
    from ibkd.runs import check_folder, config_differences, config_identity

    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    saved = tiny_config(teacher="/old/grid/lstm/seed0")
    saved.data.data, saved.train.device = "d", "cpu"
    asked = copy.deepcopy(saved)
    asked.data.data, asked.train.device = str(tmp_path / "d"), "cuda"
    asked.train.compile, asked.distill.teacher = True, "/new/grid/lstm/seed0"
    assert config_differences(saved, asked) == []
    assert config_identity(saved) == config_identity(asked.to_dict())
    asked.distill.temperature, asked.data.data = saved.distill.temperature + 1, "default"
    assert config_differences(saved, asked) == [
        f"data.data: {str(tmp_path / 'd')!r} -> 'default'",
        f"distill.temperature: {saved.distill.temperature!r} -> {asked.distill.temperature!r}",
    ]
    # the same rule in both places: a grid's run folder and a resumed run folder
    saved.save(tmp_path / "grid" / "s" / "config.yaml")
    assert list(stale_runs([GridRun("s", asked)], tmp_path / "grid")) == ["s"]
    with pytest.raises(IbkdError, match=r"options differ .*distill\.temperature"):
        check_folder(asked, tmp_path / "grid" / "s", resume=True)
    asked.distill.temperature, asked.data.data = saved.distill.temperature, str(tmp_path / "d")
    assert stale_runs([GridRun("s", asked)], tmp_path / "grid") == {}
    assert check_folder(asked, tmp_path / "grid" / "s", resume=True) is None


# ------------------------------------------------------------ GPUs: N runs per GPU, on a CPU


def test_pool_workers_pack_n_runs_on_every_gpu_each_seeing_its_own(monkeypatch):
    """`--runs-per-gpu N` (or `--workers`) on a CUDA machine: the pool's workers are dealt out
    round robin over the visible GPUs, N per GPU, and each worker sees its GPU alone (its
    `CUDA_VISIBLE_DEVICES`, set before CUDA starts in it); one run per GPU by default."""
    import queue

    import torch

    from ibkd.experiments import executors
    from ibkd.experiments.grid import default_workers

    assert executors.gpu_slots(["0", "1"], 4) == ["0", "1", "0", "1"]
    assert executors.gpu_slots(["GPU-a1"], 3) == ["GPU-a1"] * 3
    assert executors.gpu_slots(["0", "1", "2"], 2) == ["0", "1"]  # fewer: spread
    with pytest.raises(ValueError):
        executors.gpu_slots([], 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")  # the machine's GPUs 2 and 5
    assert executors.visible_gpus() == ["2", "5"]
    assert executors.pool_gpus("auto") == executors.pool_gpus("cuda") == ["2", "5"]
    assert executors.pool_gpus("cuda:1") == executors.pool_gpus("cpu") == []
    assert default_workers("auto") == 2 and default_workers("cuda:1") == 1
    assert default_workers("cpu") == max(1, os.cpu_count() or 1)
    slots = queue.Queue()
    for gpu in executors.gpu_slots(executors.pool_gpus("auto"), 3):
        slots.put(gpu)
    seen = []
    for _ in range(3):  # three workers start, each taking its slot
        executors._take_gpu(slots)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["2", "5", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert executors.visible_gpus() == []


@pytest.mark.parametrize(
    "option, message",
    [
        (["--runs-per-gpu", "2", "--device", "cpu"], "--runs-per-gpu: for runs on CUDA GPUs"),
        (["--runs-per-gpu", "2", "--workers", "2"], "--runs-per-gpu and --workers: give one"),
    ],
)
def test_runs_per_gpu_is_refused_where_it_cannot_apply(tmp_path, capsys, option, message):
    out = tmp_path / "grid"
    args = ["reproduce", "scenario1", "--out", str(out), "--no-progress", "--no-suites"]
    assert main([*args, *option]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()
