"""A grid goes on where it can and a report counts only what finished: a killed pool worker
is one failed run, one definition of a finished run, --force clears a run only as it is
retrained, options that would be ignored are refused first, SIGTERM is an interrupt, and
tampered or cut files in a grid are one line naming the file. Tiny grids (a few dozen rows,
width 8, one epoch) on the shipped data's first rows."""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ibkd.cli import main
from ibkd.errors import IbkdError
from ibkd.experiments.executors import Pool
from ibkd.experiments.grid import Terminated, run_grid, sigterm_as_interrupt
from ibkd.experiments.scenario1 import grid
from ibkd.report import missing_runs, write_report


def mini_grid(data, keep=("lstm", "transformer", "transformer--from-lstm"), epochs=1):
    """Tiny lstm, transformer and lstm -> transformer (one seed) on `data`."""
    runs = [r for r in grid("cls", "quick", seeds=1) if r.name.split("/")[0] in keep]
    for r in runs:
        m, t = r.config.model, r.config.train
        m.dim = m.hidden = 8
        m.layers, m.heads = 1, 2
        t.epochs, t.batch_size, t.warmup_steps, t.device = epochs, 32, 5, "cpu"
        r.config.data.data, r.config.data.transfer = str(data), None
    return runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data):
    """A finished mini grid (copied by each test that changes it)."""
    out = tmp_path_factory.mktemp("trained") / "grid"
    result = run_grid(mini_grid(small_data), out, progress=False, scenario="scenario1",
                      budget="quick")  # fmt: skip
    assert len(result.finished) == 3
    return out


def copy_of(trained, tmp_path) -> Path:
    out = tmp_path / "grid"
    shutil.copytree(trained, out)
    return out


def _status(out: Path) -> dict[str, str]:
    return {e["name"]: e["status"] for e in json.loads((out / "grid.json").read_text())["runs"]}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_pool_worker_is_one_failed_run_and_the_grid_goes_on(tmp_path, small_data):
    runs = mini_grid(small_data, keep=("lstm", "transformer"), epochs=3)
    # The victim never ends by itself (500 epochs of this tiny model take about a second, less
    # than the grid may need to learn its worker's pid on a loaded machine).
    runs[0].config.train.epochs = 10**7
    victim = str(tmp_path / "lstm" / "seed0")
    pool = Pool(2)
    killed = []

    def kill_when_training() -> None:  # the OOM killer: SIGKILL to one worker mid-run
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pid = pool.pids.get(victim)
            if pid is not None and (Path(victim) / "config.yaml").exists():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.05)
        if not killed:  # never found training: end the grid so that the test fails, not hangs
            for process in list(pool.processes.values()):
                process.kill()

    killer = threading.Thread(target=kill_when_training, daemon=True)
    killer.start()
    result = run_grid(runs, tmp_path, progress=False, executor=pool)
    killer.join()
    assert killed, "the worker was not killed"
    assert list(result.failed) == ["lstm/seed0"]
    assert "its worker process died: killed by signal 9 (SIGKILL" in result.failed["lstm/seed0"]
    assert result.finished == ["transformer/seed0"]  # on a fresh pool, not lost with the first
    status = _status(tmp_path)
    assert status["lstm/seed0"].startswith("failed: its worker process died")
    assert status["transformer/seed0"] == "trained"
    text = write_report(tmp_path).read_text()
    assert (
        "1 finished run in 1 group" in text
        and "lstm/seed0 (failed: its worker process died" in text
    )


def test_a_report_counts_a_run_finished_only_once_metrics_json_is_written(trained, tmp_path):
    out = copy_of(trained, tmp_path)
    student = out / "transformer--from-lstm" / "seed0"
    (student / "metrics.json").unlink()  # failed at its final step: predictions, no metrics
    assert (student / "predictions" / "test.npz").exists()
    text = write_report(out).read_text()
    assert "2 finished runs in 2 groups" in text
    assert "Runs missing from this report: transformer--from-lstm/seed0 (not finished)" in text
    assert "| lstm -> transformer" not in text  # not in the tables
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"lstm", "transformer"}
    shutil.rmtree(student)  # gone altogether: grid.json's "trained" is not repeated
    manifest = json.loads((out / "grid.json").read_text())
    assert missing_runs(out, manifest) == [("transformer--from-lstm/seed0", "no run folder")]


def test_force_clears_each_run_only_just_before_it_is_retrained(trained, tmp_path, small_data):
    out = copy_of(trained, tmp_path)
    runs = mini_grid(small_data)
    teacher = next(r for r in runs if r.name == "lstm/seed0")
    teacher.config.train.epochs = 2  # the teacher (hence its student) is stale
    student_metrics = (out / "transformer--from-lstm" / "seed0" / "metrics.json").read_text()

    def stop(folder):  # a kill once the first run has been retrained
        if Path(folder).name == "seed0" and Path(folder).parent.name == "lstm":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_grid(runs, out, progress=False, force=True, after_run=stop)
    retrained = json.loads((out / "lstm" / "seed0" / "metrics.json").read_text())
    assert retrained["training"]["epochs"] == 2
    # the student was not reached: its finished run is still there, untouched
    assert (out / "transformer--from-lstm" / "seed0" / "metrics.json").read_text() == (
        student_metrics
    )
    with pytest.raises(IbkdError, match="its teacher lstm/seed0 was trained again after it"):
        run_grid(runs, out, progress=False)  # the student learnt from the old teacher
    result = run_grid(runs, out, progress=False, force=True)  # goes on: the student retrains
    assert result.finished == ["transformer--from-lstm/seed0"]
    assert sorted(result.skipped) == ["lstm/seed0", "transformer/seed0"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("suite-scenario2", "--suite: scenario2 scores no targeted suites"),
        ("suite-and-no-suites", "--suite and --no-suites: give one of them"),
        ("reuse-other-scenario", "a grid of scenario2 (mnist), not of scenario1 (cls)"),
        ("out-run-folder", "is a run folder, not a grid folder"),
        ("out-data-folder", "is a data folder, not a grid folder"),
        ("device-cuda", "--device cuda: CUDA is not available"),
    ],
)
def test_reproduce_refuses_ignored_options_before_anything_runs(
    tmp_path, small_data, capsys, case, message
):
    import torch

    if case == "device-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "grid"
    args = ["reproduce", "scenario1", "--data", str(small_data), "--no-progress", "--epochs", "1"]
    if case == "suite-scenario2":
        args = ["reproduce", "scenario2", "--suite", "blimp", "--no-progress"]
    elif case == "suite-and-no-suites":
        args += ["--suite", "blimp", "--no-suites"]
    elif case == "reuse-other-scenario":
        other = tmp_path / "mnist-grid"
        other.mkdir()
        entry = {"name": "cnn/seed0", "group": "cnn", "model": "cnn", "teacher": None,
                 "setup": "mnist", "seed": 0, "status": "trained"}  # fmt: skip
        (other / "grid.json").write_text(json.dumps({"scenario": "scenario2", "runs": [entry]}))
        args += ["--reuse", str(other)]
    elif case == "out-run-folder":
        out.mkdir()
        (out / "config.yaml").write_text("setup: cls\n")
    elif case == "out-data-folder":
        out = small_data
    elif case == "device-cuda":
        args += ["--device", "cuda"]
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    assert main(args + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("ibkd: error: ")
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else None) == before


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigterm_stops_a_grid_like_ctrl_c(tmp_path, small_data):
    runs = mini_grid(small_data, keep=("lstm",), epochs=10**7)  # never ends by itself
    folder = str(tmp_path / "lstm" / "seed0")
    pool = Pool(1)
    sent = []

    def terminate_when_training() -> None:  # `kill PID` of the grid process
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not sent:
            if folder in pool.pids:
                os.kill(os.getpid(), signal.SIGTERM)
                sent.append(pool.pids[folder])
            time.sleep(0.05)
        if not sent:  # never found training: stop the grid so that the test fails, not hangs
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=terminate_when_training, daemon=True)
    thread.start()
    with pytest.raises(Terminated), sigterm_as_interrupt():
        run_grid(runs, tmp_path, progress=False, executor=pool)
    thread.join()
    assert sent and not _alive(sent[0])  # the worker was stopped, not left training
    assert pool.progress._closed  # the queue (and its semaphores) released
    assert signal.getsignal(signal.SIGTERM) is before


def test_reproduce_reports_sigterm_in_one_line(tmp_path, small_data, capsys, monkeypatch):
    from ibkd.experiments import grid as grid_module

    def terminated(*args, **kwargs):
        raise Terminated("SIGTERM")

    monkeypatch.setattr(grid_module, "run_grid", terminated)
    args = ["reproduce", "scenario1", "--data", str(small_data), "--out", str(tmp_path / "g"),
            "--no-progress", "--device", "cpu", "--no-suites"]  # fmt: skip
    assert main(args) == 143
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ibkd:")]
    assert len(err) == 1 and err[0].startswith("ibkd: terminated (SIGTERM)")


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_cut_predictions_file_is_one_line_naming_it(trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    npz = out / "transformer" / "seed0" / "predictions" / "test.npz"
    _cut(npz)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ibkd: error: {npz}: ") and err.count("\n") == 1


def _suite_arrays(n: int = 6) -> dict[str, np.ndarray]:
    return {
        "item": np.arange(n, dtype=np.int64),
        "construction": np.array(["simple_agrmt"] * n),
        "n_attractors": np.zeros(n, dtype=np.int64),
        "score_good": np.linspace(0.1, 0.9, n),
        "score_bad": np.full(n, 0.5),
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a | {"construction": np.arange(len(a["item"]))}, "`construction` is int64"),
        (lambda a: a | {"score_good": a["score_good"][:-1]}, "`score_good` has 5 rows"),
        (lambda a: a | {"n_attractors": a["n_attractors"].astype(str)}, "`n_attractors` is <U"),
        (lambda a: a | {"score_bad": np.stack([a["score_bad"]] * 2, 1)}, "`score_bad` is float64"),
        (lambda a: a | {"construction": np.array(["x" * 1001] * 6)}, "longer than 1000"),
    ],
)
def test_a_tampered_suite_file_breaks_the_contract_naming_it(tmp_path, change, message):
    from ibkd.suite_predictions import load_suite

    path = tmp_path / "ml.npz"
    np.savez(path, **change(_suite_arrays()))
    with pytest.raises(IbkdError) as e:
        load_suite(path)
    assert str(e.value).startswith(f"{path}: not a suite predictions file (") and message in str(
        e.value
    )


@pytest.mark.slow
def test_a_tampered_suite_file_in_a_grid_is_one_line_in_report(trained, tmp_path, capsys):
    out = copy_of(trained, tmp_path)
    suites = out / "lstm" / "seed0" / "suites"
    suites.mkdir()
    arrays = _suite_arrays(200)  # an integer `construction` once made `report` take 22 GB
    np.savez(suites / "ml.npz", **arrays | {"construction": np.arange(200)})
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ibkd: error: {suites / 'ml.npz'}: ") and err.count("\n") == 1
    assert "`construction` is int64" in err


def test_report_title_and_note_state_epochs_and_rows_overrides(tmp_path, small_data,
                                                               monkeypatch):  # fmt: skip
    import dataclasses

    from ibkd import experiments

    one = [r for r in grid("cls", "quick", seeds=1) if r.name == "lstm/seed0"]
    for r in one:
        r.config.model.dim = r.config.model.hidden = 8
        r.config.data.data = str(small_data)
    patched = dataclasses.replace(experiments.get("scenario1"), grid=lambda **k: one)
    monkeypatch.setitem(experiments.SCENARIOS, "scenario1", patched)
    out = tmp_path / "grid"
    args = ["reproduce", "scenario1", "--data", str(small_data), "--seeds", "1", "--epochs",
            "1", "--max-train-rows", "30", "--out", str(out), "--no-progress", "--device",
            "cpu", "--workers", "1", "--no-suites"]  # fmt: skip
    assert main(args) == 0
    text = (out / "report.md").read_text()
    title = text.splitlines()[0]
    assert "with --epochs 1, --max-train-rows 30" in title
    note = "Overridden for this grid, so not the budget's: epochs overridden to 1 (--epochs); "
    assert note + "trained on the first 30 training rows only (--max-train-rows 30)." in text
