"""Two grids of the same budget side by side: is a change within the noise of the seeds?

For every group (model and teacher) that both grids trained, the mean ± sample std over
seeds of each test metric in each grid, and the difference new − old with its 95% Welch
interval over seeds (`ibkd.experiments.verdicts.compare_values`: the two grids as two samples
of the seed-to-seed spread; the same seeds in both, but a change of arithmetic sends two runs
of one seed apart as a new seed does). A difference whose interval holds zero is within the
seeds' noise. With many groups and metrics about 1 in 20 intervals exclude zero by chance,
so the script also counts them.

    python benchmarks/compare_grids.py OLD_GRID NEW_GRID [--metrics mu_accuracy a_accuracy ece]
        [--json out.json] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ibkd.experiments.verdicts import compare_values

METRICS = ("mu_accuracy", "a_accuracy", "accuracy_with_attractors", "ece")


def test_metrics(grid: Path) -> dict[str, dict[int, dict]]:
    """group -> seed -> the finished run's test metrics (metrics.json's `test`)."""
    out: dict[str, dict[int, dict]] = {}
    for f in sorted(grid.glob("*/seed*/metrics.json")):
        seed = int(f.parent.name.removeprefix("seed"))
        out.setdefault(f.parent.parent.name, {})[seed] = json.loads(f.read_text())["test"]
    if not out:
        raise SystemExit(f"compare_grids.py: error: {grid}: no finished runs (GROUP/seedN)")
    return out


def value(test: dict, metric: str) -> float:
    """One number of a run's test metrics; `accuracy_with_attractors`: rows with >= 1."""
    v = test.get(metric)
    if isinstance(v, dict):  # {"1": {"accuracy": ..., "n": ...}, ...}: >= 1 attractor
        v = v.get("1", {}).get("accuracy")
    return float("nan") if v is None else float(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--metrics", nargs="+", default=list(METRICS))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    args = ap.parse_args()
    old, new = test_metrics(args.old), test_metrics(args.new)
    rows, separable, judged = [], 0, 0
    lines = ["| group | metric | old (mean ± std) | new (mean ± std) | new − old [95% Welch] |",
             "|---|---|---|---|---|"]  # fmt: skip
    for group in sorted(set(old) & set(new)):
        for metric in args.metrics:
            a = {s: value(t, metric) for s, t in new[group].items()}
            b = {s: value(t, metric) for s, t in old[group].items()}
            if any(np.isnan(list(a.values()))) or any(np.isnan(list(b.values()))):
                continue
            c = compare_values(a, b, paired=False)
            judged += c.judged
            separable += c.sign != 0
            va, vb = np.array(list(a.values())), np.array(list(b.values()))
            rows.append({"group": group, "metric": metric, "old": vb.tolist(), "new": va.tolist(),
                         "diff": c.diff, "low": c.low, "high": c.high,
                         "within_noise": c.sign == 0})  # fmt: skip
            lines.append(f"| {group} | {metric} | {vb.mean():.3f} ± {vb.std(ddof=1):.3f} | "
                         f"{va.mean():.3f} ± {va.std(ddof=1):.3f} | "
                         f"{c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}]"
                         f"{'' if c.sign == 0 else ' **separable**'} |")  # fmt: skip
    lines.append(f"\n{separable} of {judged} differences separable from zero (about "
                 f"{0.05 * judged:.1f} expected by chance at 95%).")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    if args.md:
        args.md.write_text(text + "\n")
    if args.json:
        summary = {"old": str(args.old), "new": str(args.new), "judged": judged,
                   "separable": separable, "rows": rows}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
