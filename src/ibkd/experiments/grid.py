"""A grid is a folder of runs. Teachers run before their students; finished runs are skipped
when the grid runs again, a killed run resumes from its checkpoint, and a failed run is
reported while the rest go on (its students are skipped: they have no teacher)."""

from __future__ import annotations

import json
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

from ibkd.config import RunConfig
from ibkd.errors import IbkdError
from ibkd.files import atomic_write


@dataclass(frozen=True)
class GridRun:
    """One run of a grid. `name` is its folder under the grid; `teacher` names another run of
    the same grid (its folder becomes the distillation teacher)."""

    name: str
    config: RunConfig
    teacher: str | None = None
    group: str = ""  # what the report groups seeds by, e.g. "lstm -> transformer"


@dataclass
class GridResult:
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this call
    failed: dict[str, str] = field(default_factory=dict)  # name -> reason
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"{len(self.finished)} runs trained, {len(self.skipped)} already done, "
            f"{len(self.failed)} failed ({self.seconds:.0f} s)"
        )
        for name, reason in self.failed.items():
            text += f"\n  failed: {name}: {reason}"
        return text


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


def run_grid(runs: list[GridRun], out: str | Path, *, progress: bool = True) -> GridResult:
    """Run every run of the grid into `out/<name>`, sequentially on this machine."""
    from ibkd.train import train_run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = GridResult()
    t0 = time.perf_counter()
    todo = ordered(runs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="grid", unit="run", dynamic_ncols=True, position=0)
    try:
        for run in todo:
            folder = out / run.name
            if bar is not None:
                bar.set_description(f"grid: {run.name}")
            if (folder / "metrics.json").exists():
                result.skipped.append(run.name)
            elif run.teacher is not None and run.teacher in result.failed:
                result.failed[run.name] = f"its teacher {run.teacher} failed"
            else:
                try:
                    train_run(resolved(run, out), folder, resume=True, progress=progress)
                    result.finished.append(run.name)
                except KeyboardInterrupt:
                    raise
                except IbkdError as e:
                    result.failed[run.name] = str(e)
                except Exception as e:  # noqa: BLE001 - report it and go on with the rest
                    result.failed[run.name] = f"{type(e).__name__}: {e}"
                    (folder.mkdir(parents=True, exist_ok=True))
                    (folder / "error.txt").write_text(traceback.format_exc())
                if run.name in result.failed and progress:
                    print(f"\nrun {run.name} failed: {result.failed[run.name]}", file=sys.stderr)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    result.seconds = time.perf_counter() - t0
    write_manifest(runs, out, result)
    return result


def write_manifest(runs: list[GridRun], out: Path, result: GridResult) -> None:
    """grid.json: every run, its group, teacher and status (what `ibkd report` reads)."""
    status = {n: "trained" for n in result.finished} | {n: "done" for n in result.skipped}
    status |= {n: f"failed: {why}" for n, why in result.failed.items()}
    manifest = {
        "runs": [
            {
                "name": r.name,
                "group": r.group,
                "teacher": r.teacher,
                "model": r.config.model.name,
                "setup": r.config.setup,
                "seed": r.config.seed,
                "status": status.get(r.name, "not run"),
            }
            for r in runs
        ],
        "seconds": round(result.seconds, 1),
    }
    with atomic_write(out / "grid.json") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
