"""A run is a folder: what is in it, who may write it, when it may be resumed, how it loads.

    config.yaml        the resolved RunConfig (what the run computes)
    vocab.json         the vocabulary (agreement setups)
    provenance.json    how and where it ran: versions, git commit, CPU/GPU, threads, device,
                       start and end times, the command line (one entry per start or resume;
                       not part of the run's identity)
    log.csv            one row per optimizer step; durable (flushed and fsynced) up to every
                       checkpoint
    epochs.csv         one row per epoch, on the validation split
    checkpoint.pt      the full training state (model, optimizer, scheduler, counters, RNG,
                       best weights so far), written atomically; once finished: the best weights
    predictions/       per-example predictions per split (`ibkd.predictions`)
    metrics.json       written last: its presence means the run finished
    .lock              held (flock) by the one process that writes the folder

Resume policy: `--resume` continues a folder whose config has the same identity (everything
but how it executes: device, compile); a finished run returns its metrics. Without `--resume`
a folder must be empty, or hold only what a run writes before its first checkpoint (a failed
start), which is replaced.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import fcntl
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ibkd.config import RunConfig
from ibkd.data.vocab import Vocab
from ibkd.errors import IbkdError
from ibkd.files import atomic_write

CHECKPOINT_FORMAT = 1
LOCK = ".lock"
# what a run writes before its first checkpoint: a folder holding only these is a failed start
BEFORE_CHECKPOINT = {LOCK, "config.yaml", "vocab.json", "provenance.json", "log.csv", "epochs.csv"}
HOST_SETTINGS = ("device", "compile")  # how a run executes, not what it computes


FINISHED = "metrics.json"  # written last by training: its presence means the run finished


def is_finished(folder: str | os.PathLike) -> bool:
    """Whether the run folder holds a finished run: the one definition every grid, report and
    loader uses (`metrics.json`, written last, is there; predictions alone are not enough: a
    run that failed at its final checkpoint has them)."""
    return (Path(folder) / FINISHED).is_file()


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# ---------------------------------------------------------------------------------------------
# config identity and the resume policy


def config_identity(cfg: RunConfig | dict) -> dict:
    """The settings that must match for a checkpoint to be resumed: all but the device and
    whether the model is compiled. A dict (as saved in a checkpoint) is read as a RunConfig
    first, so settings added later take their defaults."""
    if isinstance(cfg, dict):
        cfg = RunConfig.from_dict(cfg, where="checkpoint")
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in HOST_SETTINGS}
    return d


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """`key: a -> b` for every setting that differs between two nested dicts."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(x, dict) and isinstance(y, dict):
            out += config_differences(x, y, f"{name}.")
        elif x != y:
            out.append(f"{name}: {x!r} -> {y!r}")
    return out


def check_folder(cfg: RunConfig, out: Path, resume: bool) -> dict | None:
    """Apply the resume policy (module docstring) to `out` before anything is written; returns
    the metrics of a run that already finished. Raises IbkdError naming the differing options
    or the reason the folder cannot be used."""
    if out.exists() and not out.is_dir():
        raise IbkdError(f"--out {out}: is a file, expected a run folder")
    if resume and (out / "config.yaml").exists():
        saved = RunConfig.load(out / "config.yaml")
        diff = config_differences(config_identity(saved), config_identity(cfg))
        if diff:
            raise IbkdError(
                f"--resume: the options differ from {out / 'config.yaml'} ({'; '.join(diff)}); "
                "resume with the run's own settings"
            )
        if is_finished(out):
            try:
                return json.loads((out / FINISHED).read_text(encoding="utf-8"))
            except (ValueError, OSError) as e:
                raise IbkdError(f"{out / FINISHED}: unreadable ({first_line(e)})") from None
    elif not resume and out.is_dir():
        names = {p.name for p in out.iterdir()}
        if names - BEFORE_CHECKPOINT:
            raise IbkdError(
                f"--out {out}: exists and is not empty (use --resume to continue a run "
                "there, or another folder)"
            )
    return None


@contextlib.contextmanager
def locked_folder(out: Path) -> Iterator[None]:
    """Hold the run folder's lock (an exclusive flock on `out/.lock`) for the block; another
    process holding it is refused with an IbkdError. A folder this call created and that is
    still empty afterwards (a start refused before writing) is removed again."""
    if out.exists() and not out.is_dir():
        raise IbkdError(f"--out {out}: is a file, expected a run folder")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise IbkdError(f"--out {out}: cannot write there ({e.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise IbkdError(
            f"--out {out}: in use by another ibkd process (pid {holder}); wait for it to "
            "finish or choose another folder"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if {p.name for p in out.iterdir()} == {LOCK}:  # nothing was written: leave no trace
            (out / LOCK).unlink()
            if created:
                out.rmdir()
        os.close(fd)  # releases the lock


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: Path, **state) -> None:
    """Write the training state atomically: a failed write (full disk, read-only folder) raises
    IbkdError and leaves the previous checkpoint as it was."""
    try:
        with atomic_write(path, text=False) as f:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
    except (OSError, RuntimeError) as e:
        raise IbkdError(
            f"{path}: could not write the checkpoint ({first_line(e)}); the previous "
            "checkpoint is kept"
        ) from None


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint with `torch.load(weights_only=True)` (tensors and plain containers
    only; never arbitrary objects); an empty, corrupt or foreign file raises IbkdError."""
    try:
        if path.stat().st_size == 0:
            raise IbkdError(f"{path}: empty file (0 bytes), not a checkpoint")
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise IbkdError(f"{path}: no such checkpoint") from None
    except IbkdError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        reason = first_line(e)
        if "weights_only" in reason or "Weights only" in reason:
            reason = "it holds objects other than tensors, which ibkd does not load"
        raise IbkdError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise IbkdError(f"{path}: not an ibkd checkpoint of format {CHECKPOINT_FORMAT}")
    return ckpt


def load_weights(model: nn.Module, weights: dict, path: Path, name: str) -> None:
    """`model.load_state_dict(weights)`; a mismatch raises IbkdError naming `path`."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, KeyError, ValueError, TypeError) as e:
        raise IbkdError(f"{path}: does not fit a {name} model ({first_line(e)})") from None


@dataclass
class LoadedRun:
    """A finished run: its folder, config, vocabulary (None for images) and trained model
    (the best weights, eval mode)."""

    path: Path
    config: RunConfig
    vocab: Vocab | None
    model: nn.Module


def load_run(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedRun:
    """Load a finished run folder (config.yaml, vocab.json, checkpoint.pt, metrics.json); a
    missing or unreadable part raises IbkdError naming it."""
    from ibkd.models import build_model

    path = Path(path)
    if not path.is_dir():
        raise IbkdError(f"{path}: no such run folder")
    for name in ("config.yaml", "checkpoint.pt"):
        if not (path / name).is_file():
            raise IbkdError(f"{path}: not a run folder (no {name})")
    if not is_finished(path):
        raise IbkdError(
            f"{path}: the run has not finished (no metrics.json); finish it with --resume first"
        )
    config = RunConfig.load(path / "config.yaml")
    vocab = Vocab.load(path / "vocab.json") if config.setup != "mnist" else None
    state = load_checkpoint(path / "checkpoint.pt", device)
    try:
        model = build_model(config.model, len(vocab) if vocab else 0, config.setup)
    except (RuntimeError, ValueError) as e:
        raise IbkdError(
            f"{path / 'config.yaml'}: cannot build its model ({first_line(e)})"
        ) from None
    if "model" not in state:
        raise IbkdError(f"{path / 'checkpoint.pt'}: holds no model weights")
    load_weights(model, state["model"], path / "checkpoint.pt", config.model.name)
    return LoadedRun(path, config, vocab, model.to(device).eval())


# ---------------------------------------------------------------------------------------------
# logs


class CsvLog:
    """A CSV file appended row by row. On resume, the rows `keep` accepts (those up to the
    checkpoint) are kept and the rest dropped. `sync()` makes every row so far durable (flush
    and fsync), called before each checkpoint. Not `enabled` (processes other than rank 0):
    writes nothing."""

    def __init__(
        self, path: Path, fields: list[str], keep: Callable[[dict], bool] | None, enabled=True
    ):
        self.path, self.fields, self.file = path, fields, None
        if not enabled:
            return
        rows = []
        if keep is not None and path.exists():
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if keep(r)]
        self.file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - see close()
        self.writer = csv.DictWriter(self.file, fields)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.sync()

    def write(self, row: dict) -> None:
        """Append one row (buffered)."""
        if self.file is not None:
            self.writer.writerow(row)

    def sync(self) -> None:
        """Flush the rows so far to the disk (they survive a kill or a power loss)."""
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def close(self) -> None:
        """Sync and close the file."""
        if self.file is not None:
            self.sync()
            self.file.close()
            self.file = None


# ---------------------------------------------------------------------------------------------
# provenance


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _git_commit() -> str | None:
    """The commit of the ibkd source tree, when it is a git checkout (None otherwise)."""
    here = Path(__file__).resolve().parent
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "."], cwd=here,
        capture_output=True, text=True, timeout=5,
    ).stdout.strip()  # fmt: skip
    return done.stdout.strip() + ("+modified" if dirty else "")


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux; else the platform's)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


COMMAND_VARIABLE = "IBKD_COMMAND"
"""Set by a grid to its own command line, so that runs trained in pool workers or Ray tasks
record the command the user typed rather than the worker's."""


def command_line() -> str:
    """The command that started this work, as typed: `$IBKD_COMMAND` when a grid set it, else
    this process's own command line (the interpreter, `-m ibkd` or the `ibkd` script, options)."""
    return os.environ.get(COMMAND_VARIABLE) or shlex.join(sys.orig_argv)


def environment() -> dict:
    """What the numbers of this process depend on besides its config and seed: the versions of
    ibkd, Python, torch and numpy, the git commit of the checkout (if any), the platform and
    the CPU model."""
    import numpy

    import ibkd

    return {
        "ibkd": ibkd.__version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def provenance(device: torch.device, threads: int, processes: int) -> dict:
    """How and where this process runs a run: the command line (`command_line`), working
    folder, start time, `environment()`, the GPU name, device, threads and processes."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "command": command_line(),
        "cwd": os.getcwd(),
        "started": now(),
        "finished": None,
        **environment(),
        "gpu": gpu,
        "device": str(device),
        "threads": threads,
        "processes": processes,
    }


def record_provenance(out: Path, entry: dict, append: bool) -> None:
    """Write this start's entry to out/provenance.json: after the earlier ones when `append`
    (a resume, or the end of this start: then it replaces its own entry, same start time and
    command), else as the only one."""
    path = out / "provenance.json"
    sessions: list = []
    if append and path.exists():
        with contextlib.suppress(ValueError, OSError):
            sessions = json.loads(path.read_text(encoding="utf-8")).get("sessions", [])
    same = sessions and {k: sessions[-1].get(k) for k in ("started", "command")} == {
        k: entry[k] for k in ("started", "command")
    }
    sessions = [*sessions[:-1], entry] if same else [*sessions, entry]
    with atomic_write(path) as f:
        json.dump({"sessions": sessions}, f, indent=2)
        f.write("\n")


def user_os_error(e: OSError) -> IbkdError:
    """An OSError a user can fix (full disk, no permission, read-only) as one line."""
    where = e.filename or "the run folder"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return IbkdError(f"{where}: no space left on the device")
    return IbkdError(f"{where}: {e.strerror or first_line(e)}")
