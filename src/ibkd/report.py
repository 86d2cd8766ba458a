"""Grid folder -> report.md, summary.json and figures. Generic: load the grid's finished runs
(metrics recomputed from their saved predictions, so a report rebuilds in seconds), group them
by cell, write the summary and the figures every grid has (reliability, MDS of
representations), and hand the tables, claims and scenario figures to the scenario named in
grid.json (`ibkd.experiments.Scenario.sections`)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ibkd.config import RunConfig
from ibkd.errors import IbkdError
from ibkd.experiments import scenario_of
from ibkd.experiments.figures import plot_mds, plot_reliability
from ibkd.experiments.grid import override_note
from ibkd.experiments.results import Group, Run, analyse_representations, fmt, groups_of
from ibkd.experiments.suite_report import load_suites
from ibkd.experiments.suite_report import sections as suite_sections
from ibkd.files import atomic_write, dump_json
from ibkd.metrics import METRICS, compute_metrics
from ibkd.predictions import load_predictions
from ibkd.representations import sample_indices
from ibkd.runs import is_finished
from ibkd.text import count


def read_manifest(folder: Path) -> dict:
    """`folder/grid.json` as a dict; `IbkdError` when it is missing, unreadable or not one."""
    manifest = folder / "grid.json"
    if not manifest.exists():
        raise IbkdError(f"{folder}: no grid.json (not a grid folder written by ibkd reproduce)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IbkdError(f"{manifest}: not a valid grid.json ({e})") from None
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not all(
        isinstance(e, dict) and {"name", "group", "model", "teacher", "setup", "seed"} <= set(e)
        for e in runs
    ):
        raise IbkdError(
            f"{manifest}: not a valid grid.json (expected a list 'runs' of entries with name, "
            "group, model, teacher, setup and seed)"
        )
    return data


def _predictions(path: Path) -> dict[str, np.ndarray]:
    """A run's saved predictions; `IbkdError` naming the file when it cannot be read."""
    try:
        return load_predictions(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IbkdError(f"{path}: not a readable predictions file ({e})") from None


def _metrics(pred: dict[str, np.ndarray], path: Path) -> dict:
    try:
        return compute_metrics(pred)
    except KeyError as e:
        raise IbkdError(f"{path}: predictions lack the array {e}") from None


def _config(folder: Path) -> dict:
    """The run's saved config as a dict ({} when it has none or it cannot be read)."""
    try:
        return RunConfig.load(folder / "config.yaml").to_dict()
    except (OSError, ValueError, IbkdError):
        return {}


def load_grid(folder: Path) -> list[Run]:
    """The finished runs of a grid folder (`ibkd.runs.is_finished`: metrics.json written), in
    grid.json's order, each with its metrics on every saved test set and a sample of its features.
    `IbkdError` when the folder is not a grid, holds no finished run or a file is corrupt."""
    folder = Path(folder)
    entries = read_manifest(folder)["runs"]
    models = {e["name"]: e["model"] for e in entries}
    runs = []
    for e in entries:
        if not is_finished(folder / e["name"]):
            continue  # not finished: left out of the report (`missing_runs` says why)
        pred_path = folder / e["name"] / "predictions" / "test.npz"
        pred = _predictions(pred_path)
        feats = pred.get("features")
        sample = sample_indices(len(feats)) if feats is not None else None
        attractors = pred.get("n_diff_intervening")
        if feats is None or attractors is None or len(attractors) != len(feats):
            attractors = None
        sets = {
            f.stem: _metrics(_predictions(f), f)
            for f in sorted(pred_path.parent.glob("*.npz"))
            if f.stem not in ("valid", "test")
        }
        teacher_model = models.get(e["teacher"]) if e["teacher"] else None
        runs.append(
            Run(
                e["name"],
                e["group"],
                e["model"],
                e["teacher"],
                teacher_model,
                e.get("row") or (teacher_model or "none"),
                e["setup"],
                e["seed"],
                _metrics(pred, pred_path),
                feats[sample] if feats is not None else None,
                sets,
                _config(folder / e["name"]),
                attractors[sample] if attractors is not None else None,
            )
        )
    if not runs:
        raise IbkdError(f"{folder}: no finished runs to report on")
    return runs


SUMMARY_KEYS = ("mu_accuracy", "d_accuracy", "a_accuracy", "ece", "perplexity")
"""The built-in metrics every summary has (where they apply); `summary_keys` adds the
registered ones."""


def registered_metrics(runs: list[Run]) -> list[str]:
    """The metrics registered with `ibkd.metrics.register` (in registration order) that give a
    number on some run's test split or other test set: the report's extra columns."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    return [
        k
        for k in METRICS
        if any(number(m.get(k)) for r in runs for m in (r.metrics, *r.sets.values()))
    ]


def summary_keys(runs: list[Run]) -> tuple[str, ...]:
    """`SUMMARY_KEYS`, then the registered metrics that are numbers (`registered_metrics`)."""
    return SUMMARY_KEYS + tuple(registered_metrics(runs))


def registered_metrics_section(groups: dict[str, Group], runs: list[Run]) -> str:
    """A table of the registered metrics (`registered_metrics`) on the test split: a row per
    group, mean ± std over seeds; "" when none is registered."""
    keys = registered_metrics(runs)
    if not keys:
        return ""
    lines = [
        "## Registered metrics (test split)\n",
        "| group | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for g in groups.values():
        cells = [fmt(g.mean(k), g.std(k), 4) for k in keys]
        lines.append(f"| {g.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def summary(groups: dict[str, Group], runs: list[Run]) -> dict:
    """group -> test set -> metric -> {mean, std, n} (std NaN with one seed), for the metrics of
    `summary_keys` (the built-in ones and the registered ones)."""
    sets = ["test"] + sorted({k for r in runs for k in r.sets})
    keys = summary_keys(runs)
    return {
        g.name: {
            on: {
                k: {"mean": g.mean(k, on), "std": g.std(k, on), "n": len(g.values(k, on))}
                for k in keys
                if len(g.values(k, on))
            }
            for on in sets
        }
        for g in groups.values()
    }


PROVENANCE_KEYS = {
    "ibkd": "ibkd",
    "git_commit": "git commit",
    "python": "Python",
    "torch": "torch",
    "numpy": "numpy",
    "cpu": "CPU",
    "gpu": "GPU",
    "device": "device",
    "threads": "threads per run",
    "processes": "processes per run",
}


def _sessions(run_folder: Path) -> list[dict]:
    """The training sessions recorded in a run's provenance.json ([] if absent or unreadable:
    runs trained before it existed have none)."""
    try:
        data = json.loads((run_folder / "provenance.json").read_text(encoding="utf-8"))
        return [s for s in data.get("sessions", []) if isinstance(s, dict)]
    except (OSError, ValueError, AttributeError):
        return []


def provenance_footer(folder: Path, manifest: dict, runs: list[Run]) -> str:
    """The report's last section: every value of each provenance field over the runs' training
    sessions (`ibkd.runs.provenance`), when they trained, and each call of the grid command with
    its wall time (grid.json)."""
    sessions = [s for r in runs for s in _sessions(folder / r.name)]
    lines = ["## Provenance\n"]
    if sessions:
        lines.append(f"{count(len(sessions), 'training session')} of {count(len(runs), 'run')}:")
        for key, label in PROVENANCE_KEYS.items():
            values = sorted({str(s.get(key)) for s in sessions if s.get(key) is not None})
            if values:
                lines.append(f"- {label}: {', '.join(values)}")
        started = sorted(s["started"] for s in sessions if s.get("started"))
        finished = sorted(s["finished"] for s in sessions if s.get("finished"))
        if started:
            lines.append(f"- trained from {started[0]} to {finished[-1] if finished else '?'}")
    else:
        lines.append("The runs record no provenance (trained before ibkd kept it).")
    for call in manifest.get("calls", []):
        if call.get("command"):
            lines.append(
                f"- `{call['command']}`: {call.get('seconds', 0):.0f} s wall time, "
                f"{count(call.get('trained', 0), 'run')} trained, "
                f"{call.get('skipped', 0)} already done, "
                f"{call.get('failed', 0)} failed (finished {call.get('finished', '?')}, "
                f"CPU {call.get('cpu', '?')})"
            )
    if manifest.get("total_seconds") is not None:
        lines.append(f"- grid wall time over all calls: {manifest['total_seconds']:.0f} s")
    return "\n".join(lines) + "\n"


def missing_runs(folder: Path, manifest: dict) -> list[tuple[str, str]]:
    """(name, status) of every run of grid.json that is not finished (`is_finished`): its
    recorded failure, or what its folder holds now ("no run folder", "not finished"), never a
    recorded "trained" or "done" that the folder no longer bears out."""
    out = []
    for e in manifest["runs"]:
        run = folder / e["name"]
        if is_finished(run):
            continue
        status = str(e.get("status") or "not run")
        if not status.startswith("failed"):
            status = "not finished" if run.is_dir() else "no run folder"
        out.append((e["name"], status))
    return out


def write_report(folder: str | Path) -> Path:
    """Write `folder/report.md`, `folder/summary.json` and `folder/figures/*.png` from the
    grid's saved predictions; returns the report's path. `IbkdError` for a folder that is not
    a readable grid."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    scenario = scenario_of(manifest)
    runs = load_grid(folder)
    groups = groups_of(runs)
    setup = runs[0].setup
    seeds = sorted({r.seed for r in runs})
    rep = analyse_representations(runs)
    fig_dir = folder / "figures"
    fig_dir.mkdir(exist_ok=True)
    title, notes = manifest.get("title"), manifest.get("notes", "")
    if manifest.get("budget") and all(r.config for r in runs):  # as the runs were trained
        note = scenario.notes(manifest["budget"], [r.config for r in runs])
        notes = (note[0].upper() + note[1:] + ".") if note else ""
    overrides = dict(manifest.get("overrides") or {})
    rows = {r.config.get("data", {}).get("max_train_rows") for r in runs if r.config}
    if "max_train_rows" not in overrides and len(rows) == 1 and None not in rows:
        overrides["max_train_rows"] = rows.pop()  # grids written before overrides were kept
    extra = override_note(overrides)
    notes = f"{notes} {extra}".strip() if extra else notes
    missing = missing_runs(folder, manifest)
    parts = [
        f"# {title or 'Grid (' + setup + ')'}\n",
        f"{count(len(runs), 'finished run')} in {count(len(groups), 'group')}, seeds {seeds}; "
        + (
            "mean ± sample std over seeds. "
            if len(seeds) > 1
            else "one seed: means alone, no spread and no verdicts (they need ≥ 2 seeds). "
        )
        + f"{notes}\n",
    ]
    if missing:
        parts.append(
            "Runs missing from this report: "
            + ", ".join(f"{name} ({status})" for name, status in missing)
            + "\n"
        )
    parts += scenario.sections(groups, runs, rep, fig_dir)
    extra = registered_metrics_section(groups, runs)
    if extra:
        parts.append(extra)
    suites = load_suites(folder, groups)
    parts += suite_sections(groups, folder, fig_dir, suites)  # suites scored on the runs
    if scenario.hard_sections is not None:
        parts += scenario.hard_sections(groups, runs, suites)
    plot_reliability(groups, fig_dir / "reliability.png")
    parts.append("![reliability](figures/reliability.png)\n")
    if rep is not None:
        plot_mds(rep, fig_dir / "mds.png")
        parts.append("![MDS of representations](figures/mds.png)\n")
    parts.append(provenance_footer(folder, manifest, runs))
    with atomic_write(folder / "summary.json") as f:
        dump_json(summary(groups, runs), f)
    with atomic_write(folder / "report.md") as f:
        f.write("\n".join(parts))
    return folder / "report.md"
