"""A grid is a folder of runs. Teachers run before their students; finished runs are skipped
when the grid runs again, a killed run resumes from its checkpoint, and a failed run is
reported while the rest go on (its students are skipped: they have no teacher)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ibkd import batched
from ibkd.config import RunConfig
from ibkd.data.mnist import FILES as MNIST_FILES
from ibkd.data.splits import SPLIT_NAMES, VOCAB_FILE
from ibkd.errors import IbkdError
from ibkd.experiments import MAIN
from ibkd.experiments.executors import Executor, local, pool_gpus
from ibkd.files import atomic_write, dump_json
from ibkd.recipes import apply_overrides
from ibkd.runs import (
    COMMAND_VARIABLE,
    FINISHED,
    command_line,
    config_differences,
    environment,
    is_finished,
    now,
)
from ibkd.text import count


@dataclass(frozen=True)
class GridRun:
    """One run of a grid. `name` is its folder under the grid; `teacher` names another run of
    the same grid (its folder becomes the distillation teacher)."""

    name: str
    config: RunConfig
    teacher: str | None = None
    group: str = ""  # what the report groups seeds by, e.g. "lstm -> transformer"
    row: str = "none"  # the report table's row: the teacher's model, "none", or a variant


@dataclass
class GridResult:
    """What one call of `run_grid` did: runs trained, skipped (finished before), failed (name
    -> reason), and its wall time in seconds."""

    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this call
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason
    seconds: float = 0.0

    def summary(self) -> str:
        """One line of counts and seconds, then a line per failed run."""
        text = (
            f"{count(len(self.finished), 'run')} trained, {len(self.skipped)} already done, "
            f"{len(self.failed)} failed ({self.seconds:.0f} s)"
        )
        for name, reason in self.failed.items():
            text += f"\n  failed: {name}: {reason}"
        return text


def pick_seeds(recipe, seeds: int | None) -> int:
    """How many seeds a grid runs: `seeds` (`--seeds`), else its budget's recipe's
    (`ibkd.recipes.SetupRecipe.seeds`); `IbkdError` for fewer than 1."""
    n = seeds if seeds is not None else recipe.seeds
    if n < 1:
        raise IbkdError(f"--seeds {n}: expected at least 1")
    return n


def grid_folders(scenario: str, grid: str, setup: str, budget: str, out: str | None = None,
                 reuse: str | None = None) -> tuple[Path, Path | None]:  # fmt: skip
    """Where `ibkd reproduce` writes a grid and which grid folder's finished runs it copies
    (`reuse_runs`): `out`, else runs/SCENARIO[-GRID]-SETUP-BUDGET (no -GRID for the main
    grid); `reuse`, else for a grid other than the main one the main grid's default folder if
    it holds a grid, else None. `IbkdError` when a given `reuse` is not a grid folder."""
    grid_part = "" if grid == MAIN else f"-{grid}"
    folder = Path(out or f"runs/{scenario}{grid_part}-{setup}-{budget}")
    source = Path(reuse) if reuse else None
    if source is None and grid != MAIN:
        source = Path(f"runs/{scenario}-{setup}-{budget}")  # the main grid's default
    if source is not None and not (source / "grid.json").is_file():
        if reuse:
            raise IbkdError(f"--reuse {source}: not a grid folder (no grid.json)")
        source = None
    return folder, source


def check_grid_folder(out: Path) -> None:
    """Refuse (`IbkdError` naming --out) a grid folder that is a file, a run folder or a data
    folder, before anything is written: a grid would mix its runs into it."""
    if out.exists() and not out.is_dir():
        raise IbkdError(f"--out {out}: is a file, not a grid folder")
    if out.is_dir() and not (out / "grid.json").exists():
        if any((out / f).exists() for f in ("config.yaml", "checkpoint.pt", FINISHED)):
            raise IbkdError(f"--out {out}: is a run folder, not a grid folder")
        data = [f"{n}{e}" for n in SPLIT_NAMES for e in (".tsv.gz", ".tsv")] + [VOCAB_FILE]
        data += [*MNIST_FILES.values()] + [f.removesuffix(".gz") for f in MNIST_FILES.values()]
        if any((out / f).exists() for f in data):
            raise IbkdError(f"--out {out}: is a data folder, not a grid folder")


def with_overrides(runs: list[GridRun], overrides: dict) -> None:
    """Set `overrides` (`section.field` -> value, `ibkd.recipes.apply_overrides`: the device,
    speed options, `--epochs`, `--max-train-rows` of `ibkd reproduce`) in every run's config,
    each validated: a bad value stops here, before anything is written."""
    for r in runs:
        apply_overrides(r.config, overrides)
        r.config.validate()


def grid_title(scenario: str, grid: str, setup: str, budget: str, overrides: dict) -> str:
    """The report's title of a grid: "Scenario 1 (cls, quick budget)", with the grid's name
    when not the main one and the overridden options ("with --epochs 1")."""
    which = f"Scenario {scenario[-1]}" + ("" if grid == MAIN else f", {grid}")
    title = f"{which} ({setup}, {budget} budget)"
    if overrides:
        title += " with " + ", ".join(override_options(overrides))
    return title


def ordered(runs: list[GridRun]) -> list[GridRun]:
    """Teachers before students (stable otherwise); unknown teachers are an error."""
    by_name = {r.name: r for r in runs}
    if len(by_name) != len(runs):
        raise IbkdError("a grid names two runs the same")
    done: set[str] = set()
    out: list[GridRun] = []

    def visit(run: GridRun, path: tuple[str, ...]) -> None:
        if run.name in done:
            return
        if run.name in path:
            raise IbkdError(f"grid: a teacher cycle through {run.name}")
        if run.teacher is not None:
            if run.teacher not in by_name:
                raise IbkdError(f"grid: {run.name}'s teacher {run.teacher} is not in the grid")
            visit(by_name[run.teacher], path + (run.name,))
        done.add(run.name)
        out.append(run)

    for r in runs:
        visit(r, ())
    return out


def resolved(run: GridRun, out: Path) -> RunConfig:
    """The run's config with its teacher's folder filled in."""
    cfg = run.config
    if run.teacher is not None:
        if cfg.distill is None:
            raise IbkdError(f"grid: {run.name} has a teacher but no distillation settings")
        cfg = replace(cfg, distill=replace(cfg.distill, teacher=str(out / run.teacher)))
    return cfg


def default_workers(device: str = "auto") -> int:
    """A process per core on a CPU-only machine (small models use one core better than two
    share one run); with CUDA, one run per GPU (`executors.pool_gpus`: each process sees its
    own; one at a time on a named one, `cuda:1`); one at a time on Apple MPS."""
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return max(1, len(pool_gpus(device)))
    if (
        device != "cpu"
        and getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        return 1
    return max(1, os.cpu_count() or 1)


def run_grid(
    runs: list[GridRun], out: str | Path, *, progress: bool = True, workers: int = 1,
    title: str = "", notes: str = "", executor: Executor | None = None,
    scenario: str | None = None, budget: str | None = None, force: bool = False, after_run=None,
    reuse: str | Path | None = None, overrides: dict | None = None, batch_seeds: bool = False,
) -> GridResult:  # fmt: skip
    """Run every run of the grid into `out/<name>`, on `executor` (default: in this process
    when `workers` is 1, else a pool of `workers` processes with cores / workers threads each).
    A run starts once its teacher has finished, not when a whole stage has. `title` and `notes`
    are kept in grid.json for the report, with the `scenario` and `budget` names that the
    report dispatches on.

    A run already in `out` (finished or not) is reused only if its saved config is the one
    asked for; otherwise `IbkdError` names the run and the differing options before anything
    starts, unless `force`, which trains such runs (and their students) again, each folder
    emptied only just before its run starts (a grid stopped on the way keeps the runs it had
    not reached). `after_run(folder)`, when given, is called on every finished run,
    those finished before included (the suites' scoring). `reuse`: another grid folder whose
    finished runs of the same name and settings are copied in (`reuse_runs`) rather than
    trained. `overrides`: the budget's settings the command overrode ({"epochs": 1,
    "max_train_rows": 40}), kept in grid.json for the report's title and note. `batch_seeds`:
    runs ready together that differ only by seed and teacher train as one batched model
    (`ibkd.batched`; one job of the executor, where it has `submit_group`); the others alone."""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    result = GridResult()
    t0 = time.perf_counter()
    pending = ordered(runs)
    bar = None
    if progress:
        from tqdm import tqdm

        # disable=None: only on a terminal (in a log it would be a line per refresh)
        bar = tqdm(total=len(pending), desc="grid", unit="run", dynamic_ncols=True, disable=None)

    def settle(run: GridRun, error: BaseException | None) -> None:
        if error is None:
            result.finished.append(run.name)
            if after_run is not None:
                after_run(out / run.name)
        else:
            result.failed[run.name] = str(error)
            if progress:
                below_bar = "\n" if bar is not None and not bar.disable else ""
                print(f"{below_bar}run {run.name} failed: {error}", file=sys.stderr)
        if bar is not None:
            bar.update(1)

    had_command = COMMAND_VARIABLE in os.environ
    os.environ[COMMAND_VARIABLE] = command_line()  # runs in workers record the grid's command
    executor = executor or local(workers, progress)
    running: dict = {}  # handle -> run
    stopped = True  # until the loop ends: an interrupt or error stops the workers at once
    try:
        stale = stale_runs(pending, out)
        if stale and not force:
            name, diffs = next(iter(stale.items()))
            raise IbkdError(
                f"{out / name}: trained with other settings than this grid asks for "
                f"({'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''})"
                + (f" and {len(stale) - 1} more runs" if len(stale) > 1 else "")
                + ": rerun with the grid's own options, use another --out, or --force to "
                "train them again"
            )
        retrain = set(with_students(stale, pending))  # emptied one by one, as each starts
        if reuse is not None:
            reuse_runs(pending, out, Path(reuse).absolute())
        while pending or running:
            for run in list(pending):
                if executor.slots is not None and len(running) >= executor.slots:
                    break
                teacher_state = _teacher_state(run, result)
                if teacher_state == "wait":
                    continue
                pending.remove(run)
                if run.name not in retrain and is_finished(out / run.name):
                    result.skipped.append(run.name)
                    if after_run is not None:
                        after_run(out / run.name)
                    if bar is not None:
                        bar.update(1)
                elif teacher_state == "failed":
                    settle(run, RuntimeError(f"its teacher {run.teacher} failed"))
                else:
                    members = [run]
                    if batch_seeds and hasattr(executor, "submit_group"):
                        members += seed_mates(run, pending, out, result, retrain)
                    for m in members:
                        if m.name in retrain:
                            shutil.rmtree(out / m.name, ignore_errors=True)
                            retrain.discard(m.name)
                    if len(members) == 1:
                        handle = executor.submit(resolved(run, out), str(out / run.name))
                        running[handle] = run
                    else:
                        handle = executor.submit_group(
                            [resolved(m, out) for m in members],
                            [str(out / m.name) for m in members],
                        )
                        running[handle] = members
            if (
                pending
                and not running
                and all(_teacher_state(r, result) == "wait" for r in pending)
            ):
                raise IbkdError("grid: runs wait for teachers that will never run")
            if running:
                if bar is not None:
                    steps = getattr(executor, "steps", {})
                    bar.set_description(
                        "grid: "
                        + ", ".join(
                            r.name + (f" step {steps[str(out / r.name)]}" if str(out / r.name)
                                      in steps else "")
                            for v in running.values() for r in (v if isinstance(v, list) else [v])
                        )
                    )  # fmt: skip
                for handle, error in executor.wait(list(running)):
                    members = running.pop(handle)
                    if not isinstance(members, list):
                        settle(members, error)
                        continue
                    errors = getattr(error, "errors", None) or [error] * len(members)
                    for m, e in zip(members, errors):  # a group: each run's own outcome
                        settle(m, e)
        stopped = False
    finally:
        if stopped:  # Ctrl-C, SIGTERM (`sigterm_as_interrupt`) or an error: stop the workers
            getattr(executor, "abort", executor.close)()
        else:
            executor.close()
        if bar is not None:
            bar.close()
        if not had_command:
            os.environ.pop(COMMAND_VARIABLE, None)
    result.seconds = time.perf_counter() - t0
    write_manifest(runs, out, result, title, notes, scenario, budget, overrides)
    return result


def seed_mates(run: GridRun, pending: list[GridRun], out: Path, result: GridResult,
               retrain: set[str]) -> list[GridRun]:  # fmt: skip
    """The runs of `pending` that may train with `run` as one batched model (`ibkd.batched`):
    ready (their teachers finished), to be trained (not finished, or to be trained again), and
    of the same settings but for the seed and teacher (`group_key`); removed from `pending`.
    None when `run` cannot train batched (`unbatchable`)."""
    cfg = resolved(run, out)
    if batched.unbatchable(cfg) is not None:
        return []
    key = batched.group_key(cfg)
    mates = [
        r for r in pending
        if _teacher_state(r, result) == "ready"
        and (r.name in retrain or not is_finished(out / r.name))
        and batched.group_key(resolved(r, out)) == key
    ]  # fmt: skip
    for r in mates:
        pending.remove(r)
    return mates


class Terminated(KeyboardInterrupt):
    """SIGTERM received while a grid runs: handled as Ctrl-C (`sigterm_as_interrupt`)."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (`kill`, a batch system's stop) raises `Terminated`, a
    KeyboardInterrupt, as Ctrl-C does: the grid stops its workers and releases the pool (no
    leaked semaphores) instead of dying at once. Only in the main thread (elsewhere, nothing
    changes); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _teacher_state(run: GridRun, result: GridResult) -> str:
    """ready | wait | failed: may `run` start?"""
    if run.teacher is None:
        return "ready"
    if run.teacher in result.failed:
        return "failed"
    if run.teacher in result.finished or run.teacher in result.skipped:
        return "ready"
    return "wait"


def write_manifest(
    runs: list[GridRun], out: Path, result: GridResult, title: str = "", notes: str = "",
    scenario: str | None = None, budget: str | None = None, overrides: dict | None = None,
) -> None:  # fmt: skip
    """grid.json: every run, its group, teacher and status, the grid's title, notes, scenario,
    budget and `overrides` (what `ibkd report` reads), this call's seconds and the total over
    all calls."""
    status = {n: "trained" for n in result.finished} | {n: "done" for n in result.skipped}
    status |= {n: f"failed: {why}" for n, why in result.failed.items()}
    manifest = {
        "scenario": scenario,
        "budget": budget,
        "title": title,
        "notes": notes,
        "overrides": dict(overrides or {}),
        "data": runs[0].config.data.data if runs else "default",
        "runs": [
            {
                "name": r.name,
                "group": r.group,
                "row": r.row,
                "teacher": r.teacher,
                "model": r.config.model.name,
                "setup": r.config.setup,
                "seed": r.config.seed,
                "status": status.get(r.name, "not run"),
            }
            for r in runs
        ],
        **_timings(out / "grid.json", result),
    }
    with atomic_write(out / "grid.json") as f:
        dump_json(manifest, f)


OVERRIDES = {"epochs": "--epochs", "max_train_rows": "--max-train-rows"}


def override_options(overrides: dict) -> list[str]:
    """The command-line options behind a grid's `overrides`: ["--epochs 1", ...]."""
    return [f"{OVERRIDES[k]} {v}" for k, v in overrides.items() if k in OVERRIDES]


def override_note(overrides: dict) -> str:
    """One sentence stating the budget's settings a grid overrode ("" for none): what the
    budget's note says about them does not hold for these runs."""
    parts = []
    if overrides.get("epochs") is not None:
        parts.append(f"epochs overridden to {overrides['epochs']} (--epochs)")
    if overrides.get("max_train_rows") is not None:
        n = overrides["max_train_rows"]
        parts.append(f"trained on the first {n} training rows only (--max-train-rows {n})")
    if not parts:
        return ""
    return "Overridden for this grid, so not the budget's: " + "; ".join(parts) + "."


def _timings(manifest: Path, result: GridResult) -> dict:
    """The grid's wall time and provenance: this call's seconds, every call so far (its command,
    end time, seconds, runs trained, skipped, failed, and `ibkd.runs.environment()`) and their
    total, carried over from the grid.json already there."""
    try:
        old = json.loads(manifest.read_text(encoding="utf-8"))
        calls = list(old.get("calls") or [])
        if not calls and old.get("last_call_seconds"):  # written before calls were kept
            calls = [{"seconds": old["last_call_seconds"]}]
    except (OSError, ValueError, AttributeError):
        calls = []
    calls.append(
        {
            "command": command_line(),
            "finished": now(),
            "seconds": round(result.seconds, 1),
            "trained": len(result.finished),
            "skipped": len(result.skipped),
            "failed": len(result.failed),
            **environment(),
        }
    )
    return {
        "last_call_seconds": round(result.seconds, 1),
        "total_seconds": round(sum(c.get("seconds", 0) for c in calls), 1),
        "calls": calls,
    }


def stale_runs(runs: list[GridRun], out: Path) -> dict[str, list[str]]:
    """Runs already in `out` whose saved config.yaml is another run than the grid asks for
    (`ibkd.runs.config_differences`: the run identity that resuming uses too), or whose
    teacher finished after them: name -> the differing options. An unreadable config counts as
    differing."""
    stale = {}
    for run in runs:
        path = out / run.name / "config.yaml"
        if not path.exists():
            continue
        try:
            saved = RunConfig.load(path)
        except IbkdError as e:
            stale[run.name] = [f"config.yaml unreadable: {e}"]
            continue
        diffs = config_differences(saved, resolved(run, out))
        if run.teacher is not None and _taught_before(out / run.name, out / run.teacher):
            diffs.append(f"its teacher {run.teacher} was trained again after it")
        if diffs:
            stale[run.name] = diffs
    return stale


def _taught_before(student: Path, teacher: Path) -> bool:
    """Whether a finished student's teacher finished after it (retrained since, e.g. by a
    --force that was stopped before it reached the student): the student learnt from another
    teacher."""
    if not (is_finished(student) and is_finished(teacher)):
        return False
    return (teacher / FINISHED).stat().st_mtime_ns > (student / FINISHED).stat().st_mtime_ns


def reuse_runs(runs: list[GridRun], out: Path, source: Path) -> list[str]:
    """Copy into `out` every run of `runs` that `out` lacks and `source` (another grid folder)
    holds finished (metrics.json) with the same settings (`config_differences`; a student's
    teacher must be copied too or already be in `out`); returns their names. Each copy goes to a
    temporary folder first, then is renamed, so a killed copy leaves no half run."""
    copied: list[str] = []
    if source == out:
        return copied
    for run in runs:  # teachers come first (`ordered`)
        src, dst = source / run.name, out / run.name
        if dst.exists() or not is_finished(src):
            continue
        if run.teacher is not None and not is_finished(out / run.teacher):
            continue
        try:
            saved = RunConfig.load(src / "config.yaml")
        except IbkdError:
            continue
        if config_differences(saved, resolved(run, out)):
            continue
        tmp = dst.with_name(dst.name + ".copying")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        tmp.rename(dst)
        os.utime(dst / FINISHED)  # finished here now: after its teacher (`_taught_before`)
        copied.append(run.name)
    return copied


def with_students(names, runs: list[GridRun]) -> list[str]:
    """`names` and, transitively, every run of `runs` taught by one of them."""
    out = set(names)
    for run in runs:  # teachers come first (`ordered`)
        if run.teacher in out:
            out.add(run.name)
    return [r.name for r in runs if r.name in out]
