"""A run is a folder: what is in it, who may write it, when it may be resumed, how it loads.

    config.yaml        the resolved RunConfig (what the run computes)
    vocab.json         the vocabulary (agreement setups)
    started.json       what a resume must find unchanged: threads, tensorboard, fingerprints
                       of the data splits and the teacher (`ibkd.resume`)
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

Resume policy: `--resume` continues a folder whose config has the same identity
(`config_identity`: everything but how it executes, where its teacher lives and how a data path
is written; the one identity grids compare too), with the threads and inputs it started with
(`ibkd.resume`); a finished run returns its metrics. Without `--resume`
a folder must be empty, or hold only what a run writes before its first checkpoint (a failed
start), which is replaced.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import ibkd
from ibkd.config import RunConfig
from ibkd.data.vocab import Vocab
from ibkd.errors import IbkdError
from ibkd.files import LOCK, atomic_write, dump_json, locked_folder  # noqa: F401 - the lock
from ibkd.models import build_model
from ibkd.tasks import get_task

CHECKPOINT_FORMAT = 1
# what a run writes before its first checkpoint: a folder holding only these is a failed start
BEFORE_CHECKPOINT = {LOCK, "config.yaml", "vocab.json", "provenance.json", "log.csv", "epochs.csv",
                     "started.json"}  # fmt: skip
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
    """A run's identity: the settings that decide what it computes, as a nested dict. The one
    definition that resuming a run (`check_folder`, the checkpoint's `restore` in
    `ibkd.train`) and a grid's reuse of a run already in its folder or another grid's
    (`ibkd.experiments.grid.stale_runs`, `reuse_runs`) compare. Everything in the config but:

    - how the run executes (`HOST_SETTINGS`: train.device, train.compile);
    - where its teacher lives (distill.teacher, written as ""): a grid names its teachers by
      run and a grid folder may move; the teacher itself is checked by the SHA-256 of its
      checkpoint and config (`ibkd.resume`);
    - how a data path is written: data.data, data.transfer and data.lm_text as absolute paths
      (`default`, the shipped data, stays as it is), so a relative and an absolute path to the
      same place are the same.

    A dict (as saved in a checkpoint or a config.yaml) is read as a RunConfig first, so settings
    added later take their defaults; `IbkdError` if it is not a valid config."""
    if isinstance(cfg, dict):
        cfg = RunConfig.from_dict(cfg, where="checkpoint")
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in HOST_SETTINGS}
    if d.get("distill") is not None:
        d["distill"]["teacher"] = ""
    for key in ("data", "transfer", "lm_text"):
        value = d["data"].get(key)
        if isinstance(value, str) and value != "default":
            d["data"][key] = str(Path(value).absolute())
    return d


def config_differences(saved: RunConfig | dict, wanted: RunConfig | dict) -> list[str]:
    """`key: saved -> wanted` for every setting of the two runs' identities
    (`config_identity`) that differs; [] for the same run."""
    return _differences(config_identity(saved), config_identity(wanted))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """`key: a -> b` for every setting that differs between two nested dicts."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        name = f"{prefix}{key}"
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{name}.")
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
        diff = config_differences(saved, cfg)
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


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: Path, **state) -> None:
    """Write the training state atomically. A failed write raises IbkdError and leaves the
    previous checkpoint, if there is one, as it was; the message says whether one is kept, and
    a full disk is named as such (torch's writer reports it as `enforce fail at
    inline_container.cc`, the OSError behind it as the exception's context)."""
    had_one = path.is_file()
    try:
        with atomic_write(path, text=False) as f:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
    except (OSError, RuntimeError) as e:
        kept = (
            "the previous checkpoint is kept"
            if had_one
            else "there is no earlier checkpoint: a resume starts from step 0"
        )
        cause = _os_error_behind(e)
        if cause is not None and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            raise IbkdError(f"no space left on device writing {path}; {kept}") from None
        reason = first_line(cause if cause is not None else e)
        if cause is None and "inline_container" in reason:
            reason = f"torch's writer stopped short: {reason}"
        raise IbkdError(f"{path}: could not write the checkpoint ({reason}); {kept}") from None


def _os_error_behind(e: BaseException) -> OSError | None:
    """The first OSError in an exception's chain (itself, its cause or context)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


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
    task = get_task(config.setup)
    vocab = Vocab.load(path / "vocab.json") if task.has_vocab else None
    state = load_checkpoint(path / "checkpoint.pt", device)
    try:
        model = build_model(config.model, task.shapes(vocab))
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
    """A CSV file appended row by row, starting with `rows` (on resume the rows up to the
    checkpoint, `kept_rows`; None: none). `sync()` makes every row so far durable (flush and
    fsync), called before each checkpoint. Not `enabled` (processes other than rank 0): writes
    nothing."""

    def __init__(self, path: Path, fields: list[str], rows: list[dict] | None, enabled=True):
        self.path, self.fields, self.file = path, fields, None
        if not enabled:
            return
        self.file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - see close()
        self.writer = csv.DictWriter(self.file, fields)
        self.writer.writeheader()
        self.writer.writerows(rows or [])
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


def kept_rows(path: Path, fields: list[str], keep: Callable[[dict], bool]) -> list[dict]:
    """The rows of the log `path` that `keep` accepts (`read_log`; none when it is absent)."""
    return [r for r in read_log(path, fields) if keep(r)] if path.exists() else []


def read_log(path: Path, fields: list[str]) -> list[dict]:
    """The rows of a run's numeric CSV log (log.csv, epochs.csv) as dicts of strings. The
    header must name `fields`; every row has one number per field. A last line without its
    newline (torn by a kill mid-write) is dropped; any other malformed line raises IbkdError
    naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise IbkdError(f"{path}: not UTF-8 text (byte {e.start + 1})") from None
    lines = text.split("\n")[:-1]  # the last piece: "" or a line whose newline never came
    if not lines:
        return []
    header = next(csv.reader([lines[0]]))
    if header != fields:
        raise IbkdError(f"{path}:1: header {','.join(header)!r}, expected {','.join(fields)!r}")
    rows = []
    for number, line in enumerate(lines[1:], 2):
        values = next(csv.reader([line]), [])
        if (
            len(values) != len(fields)
            or not values[0].isdigit()  # the step or epoch
            or not all(_is_number(v) for v in values)
        ):
            raise IbkdError(
                f"{path}:{number}: malformed row {line[:60]!r} (expected {len(fields)} numbers: "
                f"{','.join(fields)}); repair or remove that line, then resume"
            )
        rows.append(dict(zip(fields, values)))
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
        dump_json({"sessions": sessions}, f)


def user_os_error(e: OSError) -> IbkdError:
    """An OSError a user can fix (full disk, no permission, read-only) as one line."""
    where = e.filename or "the run folder"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return IbkdError(f"{where}: no space left on the device")
    return IbkdError(f"{where}: {e.strerror or first_line(e)}")
