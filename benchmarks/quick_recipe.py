"""What does it take for the LSTM's bias to reach a Transformer on the shipped data?

The study behind the quick budget's recipe (docs/scenario1.md, "What it takes on the default
data"). For
each Transformer student, over several seeds, at the quick preset:

- `alone`: trained on the gold training rows (the paper's no-KD row);
- `kd T=1`: distilled from the LSTM on the same rows, T = 1, alpha = 1 (the paper's recipe);
- `kd T=t + transfer`: distilled on the rows plus the transfer set, T = 1, 2, 3, 5;
- `alone + transfer`: the rows plus the transfer set, labelled by the verb's tag, no teacher
  (the control: how much do the extra inputs alone give?).

The recipe is chosen on validation accuracy; test accuracy is reported beside it.

    python benchmarks/quick_recipe.py [--seeds 3] [--out runs/quick-recipe] [--epochs 6]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
from pathlib import Path

import numpy as np

from ibkd.config import DataConfig, DistillConfig, RunConfig
from ibkd.experiments.grid import GridRun, default_workers, run_grid
from ibkd.files import dumps_json
from ibkd.recipes import preset

STUDENTS = ("transformer", "transformer-seq", "utransformer-seq")
VARIANTS = {  # name: (temperature or None for no teacher, transfer set?)
    "alone": (None, False),
    "kd T=1": (1.0, False),
    "kd T=1 + transfer": (1.0, True),
    "kd T=2 + transfer": (2.0, True),
    "kd T=3 + transfer": (3.0, True),
    "kd T=5 + transfer": (5.0, True),
    "alone + transfer": (None, True),
}


def config(model: str, seed: int, epochs: int, temperature=None, transfer=False) -> RunConfig:
    m, t = preset("cls", model, "quick")
    distill = DistillConfig(teacher="", temperature=temperature) if temperature else None
    return RunConfig(
        "cls",
        m,
        seed=seed,
        train=dataclasses.replace(t, epochs=epochs),
        data=DataConfig(transfer="default" if transfer else None),
        distill=distill,
    )


def study(seeds: int, epochs: int) -> list[GridRun]:
    runs = []
    for seed in range(seeds):
        runs.append(GridRun(f"lstm/seed{seed}", config("lstm", seed, epochs), group="lstm"))
        for student in STUDENTS:
            for variant, (temp, transfer) in VARIANTS.items():
                slug = variant.replace(" ", "").replace("=", "").replace("+", "-")
                runs.append(GridRun(
                    f"{student}--{slug}/seed{seed}",
                    config(student, seed, epochs, temp, transfer),
                    teacher=f"lstm/seed{seed}" if temp else None, group=f"{student} {variant}",
                ))  # fmt: skip
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("runs/quick-recipe"))
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    runs = study(args.seeds, args.epochs)
    result = run_grid(runs, args.out, workers=args.workers or default_workers("cpu"))
    print(result.summary())
    table = {}
    for run in runs:
        m = json.loads((args.out / run.name / "metrics.json").read_text())
        cell = table.setdefault(run.group, {"valid": [], "test": [], "test_a": []})
        cell["valid"].append(m["valid"]["mu_accuracy"])
        cell["test"].append(m["test"]["mu_accuracy"])
        cell["test_a"].append(m["test"]["a_accuracy"])
    print(f"\n{'group':40s} {'valid µ-acc':>16s} {'test µ-acc':>16s} {'test A-acc':>16s}")
    summary = {}
    for group, cell in table.items():
        row = {
            k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
            for k, v in cell.items()
        }
        summary[group] = row
        print(
            f"{group:40s} "
            + " ".join(f"{row[k][0]:.4f} ± {row[k][1]:.4f}" for k in ("valid", "test", "test_a"))
        )
    meta = {
        "seeds": args.seeds,
        "epochs": args.epochs,
        "preset": "quick",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    (args.out / "study.json").write_text(
        dumps_json({"meta": meta, "groups": summary}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
