"""Which distillation recipe passes on the largest share of the LSTM teacher's edge?

The lever study behind the `standard` budget (docs/scenario1.md, "The standard budget"). It
reuses a standard grid's teachers and students alone (copied once finished there, not
retrained), reads its standard distilled students where they are, and distils the same
students from the same teachers (student seed k from teacher seed k) with one lever changed
at a time:

- `paper: T=1, rows`: the paper's recipe, T = 1, alpha = 1, the gold training rows only, 6 epochs;
- `T=3, rows`: the temperature alone, no transfer set, 6 epochs;
- `standard: T=3 + pool`: the standard budget's recipe (T = 3, alpha = 1, the training rows
  plus the large transfer set made from the unlabelled pool, 4 epochs);
- `mixed: alpha=0.5 + pool`: half the loss on the parser's label of each input (the verb's tag);
- `patient: T=3 + pool, 6 ep` and `8 ep`: 1.5 and 2 times the distillation epochs (Beyer et
  al. 2022);
- `hard: FILE + pool` (with `--hard-transfer FILE`): a transfer set written with `ibkd data
  transfer --hard-repeat K`, the hard configurations weighted K times; and `hard: FILE + pool,
  6 ep`, that lever combined with the patient schedule.

Each recipe's transferred share (`ibkd.experiments.transferred`: (distilled - alone) /
(teacher - alone), paired by seed, Fieller's 95% interval) is measured on the validation
split's rows with >= 1 and >= 2 attractors and on Marvin & Linzen's constructions, and the
recipes are ranked by the share on the validation rows with >= 1 attractor. No test split is
read: recipes are chosen on validation and the suite, never on a test set.

    python benchmarks/transfer_levers.py --grid runs/scenario1-cls-standard --data HARD/merged \
        [--seeds 3] [--students transformer] [--out runs/transfer-levers] \
        [--json docs/results/transfer_levers.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from ibkd.experiments.grid import GridRun, default_workers, run_grid
from ibkd.experiments.hard_claims import ACROSS_PP
from ibkd.experiments.scenario1 import grid as standard_grid
from ibkd.experiments.suite_report import ACROSS_CLAUSE, ALL, slices
from ibkd.experiments.transferred import transferred_share
from ibkd.files import dumps_json
from ibkd.suite_predictions import SuiteScorer, grid_suites, load_suite

STANDARD = "standard: T=3 + pool"
# name: (temperature, alpha, transfer set: "pool" | "hard" | None, epochs; None = standard's)
VARIANTS = {
    "paper: T=1, rows": (1.0, 1.0, None, 6),
    "T=3, rows": (3.0, 1.0, None, 6),
    STANDARD: (None, None, "pool", None),
    "mixed: alpha=0.5 + pool": (3.0, 0.5, "pool", None),
    "patient: T=3 + pool, 6 ep": (3.0, 1.0, "pool", 6),
    "patient: T=3 + pool, 8 ep": (3.0, 1.0, "pool", 8),
}
SETS = {  # label: (where, key)
    "valid, >= 1 attractor": ("valid", "1"),
    "valid, >= 2 attractors": ("valid", "2"),
    "Marvin & Linzen, across a PP": ("ml", ACROSS_PP),
    "Marvin & Linzen, across a relative clause": ("ml", ACROSS_CLAUSE),
    "Marvin & Linzen, all items": ("ml", ALL),
}
RANK_BY = "valid, >= 1 attractor"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def study(
    data: str, seeds: int, students: list[str], variants: dict, grid: Path, out: Path, smoke: dict
) -> tuple[list, dict]:
    """The runs to train (the standard grid's teachers and students alone, then each variant
    but the standard one, which is read from `grid`) and, per (student, variant), each seed's
    run folder. `smoke`: the grid's `--epochs` / `--max-train-rows` overrides, for a smoke
    test of the script."""
    base = {r.name: r for r in standard_grid("cls", "standard", seeds=seeds, data=data)}
    for r in base.values():
        r.config.train.epochs = smoke.get("epochs") or r.config.train.epochs
        r.config.data.max_train_rows = smoke.get("max_train_rows")
    runs, names = [], {}
    for seed in range(seeds):
        runs.append(base[f"lstm/seed{seed}"])
        for s in students:
            runs.append(base[f"{s}/seed{seed}"])
            std = base[f"{s}--from-lstm/seed{seed}"]
            names.setdefault((s, "alone"), {})[seed] = out / f"{s}/seed{seed}"
            names.setdefault((s, "teacher"), {})[seed] = out / f"lstm/seed{seed}"
            for v, (temp, alpha, transfer, epochs) in variants.items():
                if v == STANDARD:
                    names.setdefault((s, v), {})[seed] = grid / std.name
                    continue
                cfg = dataclasses.replace(
                    std.config,
                    data=dataclasses.replace(
                        std.config.data,
                        transfer={"pool": std.config.data.transfer, "hard": smoke.get("hard")}.get(
                            transfer
                        ),
                    ),
                    distill=dataclasses.replace(
                        std.config.distill,
                        temperature=temp or std.config.distill.temperature,
                        alpha=alpha or std.config.distill.alpha,
                    ),
                    train=dataclasses.replace(
                        std.config.train,
                        epochs=smoke.get("epochs") or epochs or std.config.train.epochs,
                    ),
                )
                name = f"{s}--{slug(v)}/seed{seed}"
                runs.append(GridRun(name, cfg, std.teacher, f"{s} {v}", v))
                names.setdefault((s, v), {})[seed] = out / name
    return runs, names


def values(run: Path) -> dict[str, float]:
    """The run's accuracy on each of `SETS` (NaN where it has none)."""
    m = json.loads((run / "metrics.json").read_text())
    with_attr = m["valid"].get("accuracy_with_attractors", {})
    ml = slices(load_suite(run / "suites" / "marvin-linzen.npz"))
    got = {}
    for label, (where, key) in SETS.items():
        v = with_attr.get(key, {}).get("accuracy") if where == "valid" else ml.get(key)
        got[label] = math.nan if v is None else float(v)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", required=True, help="a finished `--budget standard` grid folder")
    ap.add_argument("--data", required=True, help="its merged data folder")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--students", nargs="+", default=["transformer"])
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--hard-transfer", help="a transfer set written with --hard-repeat K")
    ap.add_argument("--out", type=Path, default=Path("runs/transfer-levers"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--epochs", type=int, help="smoke test: every run's epochs (as the grid's)")
    ap.add_argument("--max-train-rows", type=int, help="smoke test: as the grid's")
    args = ap.parse_args()
    smoke = {"epochs": args.epochs, "max_train_rows": args.max_train_rows,
             "hard": args.hard_transfer}  # fmt: skip
    variants = {v: VARIANTS[v] for v in [*args.variants, STANDARD]}
    if args.hard_transfer:
        hard = f"hard: {Path(args.hard_transfer).name} + pool"
        variants[hard] = (None, None, "hard", None)
        variants[f"{hard}, 6 ep"] = (3.0, 1.0, "hard", 6)
    runs, names = study(args.data, args.seeds, args.students, variants, Path(args.grid),
                        args.out, smoke)  # fmt: skip
    scorer = SuiteScorer(grid_suites(), "cpu").read()
    t0 = time.perf_counter()
    workers = args.workers or default_workers("cpu")
    result = run_grid(runs, args.out, progress=False, workers=workers, after_run=scorer,
                      reuse=args.grid, title="transfer levers")  # fmt: skip
    wall = time.perf_counter() - t0
    print(result.summary())
    table: dict[str, dict] = {}
    for s in args.students:
        per = {v: {seed: values(folder) for seed, folder in by_seed.items()}
               for (student, v), by_seed in names.items() if student == s}  # fmt: skip
        rows = {v: {label: share(per, v, label) for label in SETS}
                for v in per if v not in ("alone", "teacher")}  # fmt: skip
        ranked = sorted(rows, key=lambda v: -_key(rows[v][RANK_BY]["share"]))
        table[s] = {"ranked_by": RANK_BY, "order": ranked, "variants": rows,
                    "alone": _means(per["alone"]), "teacher": _means(per["teacher"])}  # fmt: skip
    report = {
        "command": "python benchmarks/transfer_levers.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "wall_seconds": round(wall, 1),
        "summary": result.summary(),
        "students": table,
    }
    text = dumps_json(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    for s, t in table.items():
        print(f"\n{s}: ranked by the transferred share on {RANK_BY}")
        print("| recipe | " + " | ".join(SETS) + " |")
        print("|---|" + "---|" * len(SETS))
        for v in t["order"]:
            print(f"| {v} | " + " | ".join(t["variants"][v][k]["text"] for k in SETS) + " |")


def share(per: dict[str, dict[int, dict[str, float]]], variant: str, label: str) -> dict:
    """The transferred share of `variant` on the set `label`, from per[group][seed][set]."""

    def pick(group: str) -> dict[int, float]:
        return {seed: x[label] for seed, x in per[group].items() if not math.isnan(x[label])}

    sh = transferred_share(pick(variant), pick("alone"), pick("teacher"))
    d = pick(variant)
    return {
        "share": sh.share, "low": sh.low, "high": sh.high, "gain": sh.gain, "edge": sh.edge,
        "edge_low": sh.edge_low, "edge_high": sh.edge_high, "seeds": sh.n, "text": sh.text(),
        "distilled_mean": sum(d.values()) / len(d) if d else math.nan,
    }  # fmt: skip


def _key(x: float) -> float:
    return -math.inf if math.isnan(x) else x


def _means(by_seed: dict[int, dict[str, float]]) -> dict[str, float]:
    return {k: sum(v[k] for v in by_seed.values()) / len(by_seed) for k in SETS}


if __name__ == "__main__":
    main()
