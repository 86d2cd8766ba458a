"""What ibkd promises about run folders under kill, concurrent use and bad input (README,
"Guarantees"), one test per case, grouped by kind."""

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import Killed, kill_at, tiny_config

from ibkd.cli import main
from ibkd.errors import IbkdError
from ibkd.runs import load_checkpoint, locked_folder
from ibkd.train import train_run

SRC = str(Path(__file__).parents[1] / "src")
TESTS = str(Path(__file__).parent)


def python(code: str, **kwargs) -> subprocess.Popen:
    """A Python process running `code` with this checkout's ibkd and test helpers."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )  # fmt: skip


def ibkd(*args: str) -> subprocess.CompletedProcess:
    """`python -m ibkd ARGS` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ibkd", *args], env=env, capture_output=True, text=True, timeout=300
    )


def steps_in(log: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]


def one_line_error(capsys, pattern: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ibkd: error: ") and err.count("\n") == 1, err
    assert pattern in err, err
    return err


@pytest.fixture(scope="module")
def teacher(tiny_cls_run):
    """A finished tiny classification run (shared, not to be changed)."""
    return tiny_cls_run


# ---------------------------------------------------------------------------------------------
# 1. nothing lost: kill, concurrent writers, full disk


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_trains(tmp_path):
    """Fault injection with two real processes: A trains and holds the folder (it pauses at
    step 2 until released); B, the same command, is refused with one line; A then finishes
    with a log written by one process only."""
    out, release, paused = tmp_path / "run", tmp_path / "release", tmp_path / "paused"
    a = python(f"""
        import time
        from pathlib import Path
        from conftest import tiny_config
        from ibkd.train import train_run

        def wait(step):
            if step == 2:
                Path({str(paused)!r}).touch()
            while step == 2 and not Path({str(release)!r}).exists():
                time.sleep(0.05)

        cfg = tiny_config(rows=100)
        cfg.train.epochs = 1
        train_run(cfg, {str(out)!r}, progress=False, on_step=wait)
    """)
    try:
        deadline = time.time() + 120
        while not paused.exists():  # A holds the folder, paused after its second step
            assert a.poll() is None, a.communicate()
            assert time.time() < deadline, "the first writer did not reach its second step"
            time.sleep(0.1)
        snapshot = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        b = ibkd("train", "--out", str(out), "--resume", "--no-progress", "--device", "cpu")
        assert b.returncode == 2 and "Traceback" not in b.stderr
        assert f"--out {out}: in use by another ibkd process (pid {a.pid})" in b.stderr
        assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == snapshot  # untouched
    finally:
        release.touch()
        a.wait(timeout=300)
    assert a.returncode == 0, a.communicate()
    metrics = json.loads((out / "metrics.json").read_text())
    assert steps_in(out / "log.csv") == list(range(1, metrics["training"]["steps"] + 1))


@pytest.mark.slow
def test_a_held_lock_refuses_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    with locked_folder(out):  # as another process would hold it
        with pytest.raises(IbkdError, match="in use by another ibkd process"):
            _in_another_process_train(out)
    assert not out.exists()  # the lock's folder, empty again, is removed


def _in_another_process_train(out: Path) -> None:
    p = python(f"""
        from conftest import tiny_config
        from ibkd.errors import IbkdError
        from ibkd.train import train_run
        try:
            train_run(tiny_config(rows=100), {str(out)!r}, progress=False)
        except IbkdError as e:
            print(e)
    """)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr
    if stdout.strip():
        raise IbkdError(stdout.strip())


@pytest.mark.slow
def test_the_log_is_durable_up_to_every_checkpoint_under_sigkill(tmp_path):
    """200 rows, batches of 32: 7 steps an epoch; checkpoints at steps 3, 6 and 7 (the epoch's
    end). SIGKILL at step 8: the log holds steps 1-7, the checkpoint is at step 7."""
    out = tmp_path / "run"
    p = python(f"""
        import os, signal
        from conftest import tiny_config
        from ibkd.train import train_run

        def kill(step):
            if step == 8:
                os.kill(os.getpid(), signal.SIGKILL)

        train_run(tiny_config(rows=200), {str(out)!r}, progress=False, on_step=kill)
    """)
    p.communicate(timeout=300)
    assert p.returncode == -9
    assert load_checkpoint(out / "checkpoint.pt")["state"]["step"] == 7
    assert steps_in(out / "log.csv")[:7] == list(range(1, 8))
    assert not (out / "metrics.json").exists()


@pytest.mark.parametrize(
    "failure, message",
    [(OSError(errno.ENOSPC, "No space left on device"), "no space left on device writing .*"),
     (RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0"),
      "could not write the checkpoint .*")],
)  # fmt: skip
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(
    tmp_path, monkeypatch, failure, message
):
    out = tmp_path / "run"
    with pytest.raises(Killed):
        train_run(tiny_config(rows=100), out, progress=False, on_step=kill_at(3))
    before = (out / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # part of the file is written, then the disk is full
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(IbkdError, match=f"{message}; the previous checkpoint is kept$"):
        train_run(tiny_config(rows=100), out, resume=True, progress=False)
    assert (out / "checkpoint.pt").read_bytes() == before
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------------
# 2. no run "finishes" with garbage


def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    cfg = tiny_config(rows=100)
    cfg.train.lr, cfg.train.warmup_steps, cfg.train.clip = 1e30, 0, 1e30
    with pytest.raises(IbkdError, match=r"step \d+ \(epoch 1\): the training loss is (nan|inf)"):
        train_run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.parametrize(
    "option, value, message",
    [("--temperature", "nan", "--temperature nan: expected a finite number"),
     ("--temperature", "inf", "--temperature inf: expected a finite number"),
     ("--temperature", "0", "--temperature 0.0: expected a value > 0"),
     ("--alpha", "1.5", "--alpha 1.5: expected a value in [0, 1]"),
     ("--epochs", "0", "--epochs 0: expected a value >= 1"),
     ("--epochs", "-1", "--epochs -1: expected a value >= 1"),
     ("--batch-size", "0", "--batch-size 0: expected a value >= 1"),
     ("--batch-size", "-3", "--batch-size -3: expected a value >= 1"),
     ("--lr", "-1", "--lr -1.0: expected a value > 0"),
     ("--lr", "nan", "--lr nan: expected a finite number"),
     ("--threads", "0", "--threads 0: expected >= 1")],
)  # fmt: skip
def test_numeric_options_are_checked_before_anything_is_written(
    tmp_path, capsys, teacher, option, value, message
):
    out = tmp_path / "s"
    args = ["distill", "--teacher", str(teacher), "--model", "lstm", "--out", str(out)]
    assert main([*args, "--device", "cpu", option, value]) == 2
    one_line_error(capsys, message)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# 3. validated before writing; a failed start blocks nothing


def test_an_absent_device_is_refused(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = ["train", "--setup", "cls", "--model", "lstm", "--out", str(tmp_path / "r")]
    assert main([*args, "--device", "cuda"]) == 2
    one_line_error(capsys, "--device cuda: CUDA is not available on this machine")
    assert not (tmp_path / "r").exists()


def test_a_teacher_without_predictions_is_refused_first(tmp_path, capsys, teacher):
    import shutil

    broken = tmp_path / "teacher"
    shutil.copytree(teacher, broken, ignore=shutil.ignore_patterns("predictions"))
    cfg = tiny_config(rows=100, teacher=str(broken))
    with pytest.raises(IbkdError, match=r"no predictions/valid.npz"):
        train_run(cfg, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_rows_longer_than_a_transformers_positions_are_refused_before_step_1(tmp_path):
    cfg = tiny_config(arch="transformer", rows=100)
    cfg.model.max_len = 8
    with pytest.raises(IbkdError, match=r"longest input has \d+ tokens, more than .* max_len 8"):
        train_run(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_a_failed_start_does_not_block_the_corrected_command(tmp_path):
    cfg = tiny_config(rows=100)
    cfg.train.lr, cfg.train.warmup_steps, cfg.train.clip = 1e30, 0, 1e30
    cfg.train.checkpoint_every = 1000
    with pytest.raises(IbkdError, match="the training loss is"):
        train_run(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r" / "checkpoint.pt").exists()
    cfg = tiny_config(rows=100)
    cfg.train.epochs = 1
    train_run(cfg, tmp_path / "r", progress=False)  # no "exists and is not empty"
    assert (tmp_path / "r" / "metrics.json").exists()


def test_out_naming_a_file_or_an_unwritable_place(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("keep me")
    args = ["train", "--setup", "cls", "--model", "lstm", "--device", "cpu", "--out"]
    assert main([*args, str(tmp_path / "file")]) == 2
    one_line_error(capsys, "is a file, expected a run folder")
    assert (tmp_path / "file").read_text() == "keep me"

    def read_only(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)  # as in a read-only folder (even for root)
    assert main([*args, str(tmp_path / "ro" / "run")]) == 2
    one_line_error(capsys, "cannot write there (Permission denied)")


@pytest.mark.parametrize(
    "content, message",
    [(b"setup: cls\ntrain:\n  epochs: ten\n", "`train.epochs` is 'ten', expected an integer"),
     (b"setup: cls\n# caf\xe9\n", "not UTF-8 text"),
     (b"setup: [cls\n", "not valid YAML")],
)  # fmt: skip
def test_a_mistyped_or_undecodable_config_yaml(tmp_path, capsys, teacher, content, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(teacher, run)
    text = (run / "config.yaml").read_bytes()
    if content.startswith(b"setup: cls\ntrain"):
        content = text.replace(b"epochs: 1\n", b"epochs: ten\n")
    (run / "config.yaml").write_bytes(content)
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, message)


# ---------------------------------------------------------------------------------------------
# 5. a broken checkpoint is one line everywhere


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_a_broken_checkpoint_is_refused_with_its_name(tmp_path, content):
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(IbkdError, match=r"checkpoint.pt: (empty file|not a readable checkpoint)"):
        load_checkpoint(tmp_path / "checkpoint.pt")


@pytest.mark.slow
def test_a_0_byte_checkpoint_is_one_line_in_evaluate_resume_and_distill(tmp_path, teacher, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(teacher, run)
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "metrics.json").unlink()  # so that --resume loads the checkpoint
    suite = str(Path(SRC) / "ibkd" / "data" / "default" / "test.tsv.gz")
    commands = [
        ["train", "--out", str(run), "--resume", "--no-progress"],
        ["evaluate", str(run), "--suite", suite, "--device", "cpu"],
        ["distill", "--teacher", str(run), "--model", "lstm", "--out", str(tmp_path / "s")],
    ]
    for i, argv in enumerate(commands):  # in this process: an uncaught error fails the test
        assert main(argv) == 2
        one_line_error(capsys, "checkpoint.pt: empty file (0 bytes)")
        if i == 0:
            (run / "metrics.json").write_text("{}")
    assert not (tmp_path / "s").exists()
