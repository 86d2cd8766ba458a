"""What ibkd promises about a resumed run (docs/guarantees.md, "Resume"): the numbers of an
uninterrupted run with nothing repeated on the command line, and a one-line refusal naming what
changed when the data, the teacher or an option differs; plus the training loop's stops (a
non-finite gradient, a full disk, SIGTERM). One test per case, tiny data."""

import dataclasses
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import Killed, kill_at, tiny_config, tiny_data, without

from ibkd.cli import main
from ibkd.data.splits import Splits, load_splits, write_splits
from ibkd.errors import IbkdError
from ibkd.resume import read_started, write_started
from ibkd.signals import Terminated, sigterm_as_interrupt
from ibkd.train import train_run

SRC = str(Path(__file__).parents[1] / "src")
TESTS = str(Path(__file__).parent)


def one_line_error(capsys, pattern: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ibkd: error: ") and err.count("\n") == 1, err
    assert pattern in err, err
    return err


def steps_in(log: Path) -> list[int]:
    return [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]


def killed_run(cfg, out: Path, step: int, **kwargs) -> Path:
    """`cfg` trained into `out` and stopped after optimizer step `step`."""
    with pytest.raises(Killed):
        train_run(cfg, out, progress=False, on_step=kill_at(step), **kwargs)
    return out


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# ---------------------------------------------------------------------------------------------
# 1. the run's own settings: threads, precision, tensorboard, every option


def test_a_resume_runs_with_the_threads_the_run_started_with(tmp_path):
    """Started with 1 thread, resumed in a process that has 2: the resume runs with 1 (as
    started.json records) and reaches the uninterrupted run's numbers; asking for other threads
    is refused, naming both counts."""
    cfg = tiny_config(rows=100)
    previous = torch.get_num_threads()
    try:
        train_run(cfg, tmp_path / "whole", progress=False, threads=1)
        killed_run(cfg, tmp_path / "run", 5, threads=1)
        assert read_started(tmp_path / "run")["threads"] == 1
        torch.set_num_threads(2)
        with pytest.raises(IbkdError, match=r"--threads 2: the run in .* started with 1 thr"):
            train_run(cfg, tmp_path / "run", resume=True, progress=False, threads=2)
        threads_seen = []
        train_run(cfg, tmp_path / "run", resume=True, progress=False,
                  on_step=lambda s: threads_seen.append(torch.get_num_threads()))  # fmt: skip
    finally:
        torch.set_num_threads(previous)
    assert threads_seen and set(threads_seen) == {1}
    for name, timing in (("log.csv", "tokens_per_s"), ("epochs.csv", "seconds")):
        assert without(tmp_path / "run" / name, timing) == without(
            tmp_path / "whole" / name, timing
        )


@pytest.fixture
def saved_runs(tmp_path):
    """A plain run folder (lr 0.01, 1 thread, fp32, no tensorboard) and a distilled one, as a
    start leaves them (config.yaml, started.json): what `--resume` reads its settings from."""
    plain, student = tmp_path / "plain", tmp_path / "student"
    for folder, cfg in (
        (plain, tiny_config(rows=100)),
        (student, tiny_config(rows=100, teacher=str(tmp_path / "teacher"))),
    ):
        folder.mkdir()
        cfg.save(folder / "config.yaml")
        write_started(folder, 1, False, {})  # fmt: skip
    return plain, student


@pytest.mark.parametrize(
    "command, options, refused",
    [("train", ["--lr", "0.1"], "--lr 0.1 (started with 0.01)"),
     ("train", ["--threads", "2"], "--threads 2 (started with 1)"),
     ("train", ["--precision", "bf16"], "--precision bf16 (started with fp32)"),
     ("train", ["--device", "cuda"], "--device cuda (started with cpu)"),
     ("train", ["--tensorboard"], "--tensorboard (started without it)"),
     ("train", ["--unk-signatures"], "--unk-signatures (started without it)"),
     ("train", ["--preset", "paper"], "--preset paper (started with other model sizes)"),
     ("train", ["--lr", "0.1", "--seed", "3"],
      "--seed 3 (started with 0), --lr 0.1 (started with 0.01)"),
     ("distill", ["--temperature", "5"], "--temperature 5.0 (started with 1.0)"),
     ("distill", ["--teacher", "OTHER"], "--teacher OTHER (started with "),
     ("distill", ["--online", "lstm"], "--online lstm (started without it)")],
)  # fmt: skip
def test_a_resume_refuses_other_options_naming_them(
    saved_runs, capsys, monkeypatch, command, options, refused
):
    plain, student = saved_runs
    out = student if command == "distill" else plain
    monkeypatch.chdir(out.parent)
    before = snapshot(out)
    assert main([command, "--out", str(out), "--resume", "--no-progress", *options]) == 2
    err = one_line_error(capsys, f"--resume continues {out} as it was started; it does not take")
    assert refused in err
    assert snapshot(out) == before


def test_a_resume_takes_its_settings_from_the_run_folder(tmp_path, capsys):
    """`ibkd train --out RUN --resume` alone continues a killed run: precision, device, threads
    and every option from RUN; repeating an option with the run's own value is accepted."""
    cfg = tiny_config(rows=100)
    cfg.train.epochs = 1
    whole = train_run(cfg, tmp_path / "whole", progress=False, threads=1)
    out = killed_run(cfg, tmp_path / "run", 2, threads=1)
    args = ["train", "--out", str(out), "--resume", "--no-progress"]
    assert main([*args, "--lr", "0.01", "--threads", "1", "--device", "cpu"]) == 0
    assert f"{out}: lstm, 1 epoch " in capsys.readouterr().out
    assert without(out / "log.csv", "tokens_per_s") == without(
        tmp_path / "whole" / "log.csv", "tokens_per_s"
    )
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["test"] == whole["test"]


# ---------------------------------------------------------------------------------------------
# 2. changed inputs are refused, naming what changed


def _rewrite_split(folder: Path, which: str) -> None:
    """Replace one split of a tiny data folder (the training split, and so the vocabulary,
    kept) by other rows of the shipped data."""
    s = load_splits(folder)
    other = load_splits("default")
    parts = {"train": s.train, "valid": s.valid, "test": s.test}
    source = {"train": other.train, "valid": other.valid, "test": other.test}[which]
    parts[which] = source[300 : 300 + len(parts[which])]
    write_splits(Splits(parts["train"], parts["valid"], parts["test"], "test"), folder,
                 force=True)  # fmt: skip


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_a_resume_refuses_a_changed_split(tmp_path, split):
    data = tiny_data(tmp_path / "data", (100, 40, 40))
    cfg = tiny_config(rows=100)
    cfg.data.data = str(data)
    out = killed_run(cfg, tmp_path / "run", 4)
    _rewrite_split(data, split)
    before = snapshot(out)
    with pytest.raises(IbkdError) as e:
        train_run(cfg, out, resume=True, progress=False)
    assert f"changed since the run started: the {split} split of --data {data} (SHA-256 " in str(
        e.value
    )
    assert str(e.value).count(" split of ") == 1  # only the changed one
    assert snapshot(out) == before


def test_a_changed_lm_text_is_named_with_the_data():
    """An LM's splits hold its text's sentences, so a changed split names --lm-text too."""
    from types import SimpleNamespace

    from ibkd.resume import check_inputs

    cfg = SimpleNamespace(data=SimpleNamespace(data="default", lm_text="/t/pool.tsv"),
                          distill=None)  # fmt: skip
    with pytest.raises(
        IbkdError,
        match=r"the train split of --data default and --lm-text "
        r"/t/pool.tsv \(SHA-256 aaaaaaaaaaaa -> bbbbbbbbbbbb\)",
    ):
        check_inputs(Path("run"), {"train": "a" * 64, "valid": "v"},
                     {"train": "b" * 64, "valid": "w"}, cfg)  # fmt: skip


def test_a_resume_refuses_a_replaced_teacher(tmp_path):
    import shutil

    first, second = tmp_path / "t1", tmp_path / "t2"
    for folder, seed in ((first, 0), (second, 1)):
        teacher = tiny_config(rows=100, seed=seed)
        teacher.train.epochs = 1
        train_run(teacher, folder, progress=False)
    cfg = tiny_config(rows=100, teacher=str(first))
    out = killed_run(cfg, tmp_path / "student", 4)
    shutil.rmtree(first)
    shutil.copytree(second, first)  # another teacher in the same folder
    with pytest.raises(IbkdError, match=rf"changed since the run started: the teacher {first} "):
        train_run(cfg, out, resume=True, progress=False)


# ---------------------------------------------------------------------------------------------
# 3. the resumed epoch's train_loss


@pytest.mark.parametrize("online", [False, True])
def test_the_resumed_epochs_train_loss_is_the_uninterrupted_ones(tmp_path, online):
    """Killed mid-epoch (step 5 of 7, checkpoint at 3): epochs.csv equals the uninterrupted
    run's (train_loss included: the mean over the whole epoch's steps, before and after the
    kill)."""
    if online:
        teacher = dataclasses.asdict(tiny_config().model)
        cfg = tiny_config(arch="transformer", rows=200, teacher="", online=teacher)
    else:
        cfg = tiny_config(rows=200)
    cfg.train.epochs = 1
    train_run(cfg, tmp_path / "whole", progress=False)
    killed_run(cfg, tmp_path / "run", 5)
    train_run(cfg, tmp_path / "run", resume=True, progress=False)
    whole = without(tmp_path / "whole" / "epochs.csv", "seconds")
    assert len(whole) == 1
    assert without(tmp_path / "run" / "epochs.csv", "seconds") == whole


# ---------------------------------------------------------------------------------------------
# 5. torn and malformed log lines; TensorBoard across a resume


def test_a_torn_last_log_line_is_dropped_on_resume(tmp_path):
    """A kill mid-write leaves a last line without its newline (here a row of step 2, cut):
    the resume drops it and logs every step once."""
    out = killed_run(tiny_config(rows=100), tmp_path / "run", 4)
    with open(out / "log.csv", "a") as f:
        f.write("2,1,0.69")
    metrics = train_run(tiny_config(rows=100), out, resume=True, progress=False)
    assert steps_in(out / "log.csv") == list(range(1, metrics["training"]["steps"] + 1))
    assert all(r["loss"] and r["tokens_per_s"] for r in without(out / "log.csv"))


@pytest.mark.parametrize("name, line", [("log.csv", 3), ("epochs.csv", 2)])
def test_a_malformed_log_line_is_one_error_naming_file_and_line(tmp_path, capsys, name, line):
    out = killed_run(tiny_config(rows=100), tmp_path / "run", 5)  # past epoch 1's end
    lines = (out / name).read_text().splitlines(keepends=True)
    lines[line - 1] = "garbage,,\n"
    (out / name).write_text("".join(lines))
    before = snapshot(out)
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, f"{out / name}:{line}: malformed row 'garbage,,'")
    assert snapshot(out) == before


def test_tensorboard_is_kept_and_purged_after_the_checkpoint_on_resume(tmp_path, monkeypatch):
    """A run started with --tensorboard keeps writing event files when resumed without it, and
    the resumed writer purges the events after the checkpoint (step 4), so no step repeats."""
    import ibkd.train

    writers = []

    class Recorder:
        def __init__(self, log_dir, purge_step):
            self.purge_step, self.steps = purge_step, []
            writers.append(self)

        def add_scalar(self, tag, value, step):
            if tag == "train/loss":
                self.steps.append(step)

        def close(self):
            pass

    monkeypatch.setattr(ibkd.train, "_summary_writer", lambda: Recorder)
    cfg = tiny_config(rows=100)
    killed_run(cfg, tmp_path / "run", 5, tensorboard=True)
    metrics = train_run(cfg, tmp_path / "run", resume=True, progress=False)
    first, resumed = writers
    assert first.purge_step is None and resumed.purge_step == 5
    kept = [s for s in first.steps if s < resumed.purge_step]
    assert kept + resumed.steps == list(range(1, metrics["training"]["steps"] + 1))


# ---------------------------------------------------------------------------------------------
# 6. no run "finishes" with infinite gradients


@pytest.mark.parametrize("setting", [("lr", 1e9), ("aux_lm", 1e30)])
def test_a_non_finite_gradient_stops_the_run_naming_the_step(tmp_path, setting):
    cfg = tiny_config(rows=100)
    cfg.train.warmup_steps = 0
    setattr(cfg.train, *setting)
    message = r"step \d+ \(epoch \d\): the (gradient norm|training loss) is (inf|nan)"
    if setting[0] == "aux_lm":  # a finite loss of ~1e30, infinite gradients
        message = r"step 1 \(epoch 1\): the gradient norm is inf; .* no checkpoint was written"
    with pytest.raises(IbkdError, match=message):
        train_run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------
# 7. a full disk during a checkpoint


class FullDisk(io.RawIOBase):
    """A file that takes `room` bytes and then fails as a full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(b)
        return self.f.write(b)


@pytest.mark.parametrize("earlier", [False, True])
def test_a_full_disk_says_so_and_whether_a_checkpoint_is_kept(tmp_path, monkeypatch, earlier):
    """torch's writer turns the OSError into `enforce fail at inline_container.cc`; the message
    names the full disk and the file, and says truthfully whether an earlier checkpoint is
    kept (and it is, unchanged) or there was none."""
    out = tmp_path / "run"
    if earlier:
        killed_run(tiny_config(rows=100), out, 3)
    before = (out / "checkpoint.pt").read_bytes() if earlier else None
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: real_save(obj, FullDisk(f, 64)))
    kept = "the previous checkpoint is kept" if earlier else "there is no earlier checkpoint"
    with pytest.raises(IbkdError) as e:
        train_run(tiny_config(rows=100), out, resume=earlier, progress=False)
    assert str(e.value) == f"no space left on device writing {out / 'checkpoint.pt'}; " + (
        kept if earlier else f"{kept}: a resume starts from step 0"
    )
    assert (
        (out / "checkpoint.pt").read_bytes() == before
        if earlier
        else not (out / "checkpoint.pt").exists()
    )
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


# ---------------------------------------------------------------------------------------------
# 8. SIGTERM is Ctrl-C


def test_sigterm_as_interrupt_raises_and_restores_the_handler():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as e, sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
    assert isinstance(e.value, KeyboardInterrupt) and e.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == previous


@pytest.mark.slow
def test_sigterm_stops_train_with_one_line_and_a_resume_hint(tmp_path):
    """`kill PID` mid-training: exit 143, one line naming the signal and the resume command, no
    traceback; the checkpoint of step 3 is kept and `--resume` finishes the run."""
    out = tmp_path / "run"
    out.mkdir()
    tiny_config(rows=100).save(out / "config.yaml")  # `train --resume` starts a run from it
    code = f"""
        import os, signal, sys
        import ibkd.train
        from ibkd.cli import main

        real = ibkd.train.train_run

        def train_run(*args, **kwargs):
            def term(step):
                if step == 4:
                    os.kill(os.getpid(), signal.SIGTERM)
            return real(*args, on_step=term, **kwargs)

        ibkd.train.train_run = train_run
        sys.exit(main(["train", "--out", {str(out)!r}, "--resume", "--no-progress"]))
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, TESTS]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 143, done.stderr
    assert done.stderr == (
        f"ibkd: interrupted (SIGTERM); continue from the last checkpoint with: "
        f"ibkd train --out {out} --resume\n"
    )
    assert not (out / "metrics.json").exists() and (out / "checkpoint.pt").exists()
    assert main(["train", "--out", str(out), "--resume", "--no-progress"]) == 0
    assert steps_in(out / "log.csv") == list(range(1, 9))
