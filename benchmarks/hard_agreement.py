"""What makes the LSTM classification teacher learn agreement across attractors?

The study of issue "hard agreement on the default data": one lever at a time against the quick
LSTM (128/128, the quick budget's epochs and learning rate) on the shipped PTB data:

- data: PTB alone (`default`) against PTB + Brown + UD English EWT (`--merged`, built as
  docs/hard_data.md says), each corpus's own split kept;
- training, on the merged data: more epochs (`--long-epochs`); the paper preset's LSTM
  (256/256, its heavy dropout) with the quick budget's training, for the quick budget's epochs
  and for `--long-epochs`; the learning rate x3 and /3; PTB alone for `--long-epochs`;
- PTB alone with the auxiliary next-word objective at weight 1 (`--aux-lm 1`, Enguehard et
  al. 2017; Linzen et al. 2016's language-model signal beside number prediction).

Every run is scored on validation and test (µ-accuracy; test accuracy on rows with >= 1 and
>= 2 attractors, i.e. n_diff_intervening), on the shipped Marvin & Linzen suite (across a
prepositional phrase, across a relative clause) and on PTB's test split as a suite (`ptb-test`),
so that the data levers, whose own test splits differ, are compared on the same rows. Choices
are made on validation µ-accuracy and the Marvin & Linzen columns; the test columns are
reported, never chosen on. Linzen's real test sentences and Gulordava's nonce set are not used
here at all.

Runs live in `--out/<variant>/seed<k>`; a finished run (and its suite scores) is reused, so
the study resumes where it stopped. Writes `--json` and prints a markdown table.

    python benchmarks/hard_agreement.py --merged /work/hard-data/merged [--seeds 1]
        [--out runs/hard-agreement] [--json docs/results/hard_agreement.json]
        [--variants ...] [--epochs N] [--max-train-rows N]   # the last two: tiny checks only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from ibkd.config import DataConfig, RunConfig
from ibkd.data.splits import default_dir
from ibkd.experiments.grid import GridRun, run_grid
from ibkd.experiments.suite_report import ACROSS_CLAUSE, slices
from ibkd.files import dumps_json
from ibkd.metrics import pairwise_accuracy
from ibkd.predictions import load_predictions
from ibkd.recipes import preset
from ibkd.suite_predictions import Suite, SuiteScorer, load_suite, suite_files

SUITE = "marvin-linzen"
PTB_TEST = "ptb-test"  # the shipped PTB test split, scored as a suite (a link in --out)
ACROSS_PP = "across a prepositional phrase"
# the quick budget's learning rate when this study ran (it then chose 3x for the LSTM:
# configs/scenario1/quick.toml, [cls.train_by_model.lstm]); the levers' factors apply to it
BASE_LR = 2e-3
# name: (data: "ptb" or "merged", model preset, epochs: "quick" or "long", lr factor)
VARIANTS = {
    "ptb": ("ptb", "quick", "quick", 1.0),
    "merged": ("merged", "quick", "quick", 1.0),
    "merged long": ("merged", "quick", "long", 1.0),
    "merged paper-size": ("merged", "paper", "quick", 1.0),
    "merged paper-size long": ("merged", "paper", "long", 1.0),  # its dropout 0.8 is slow to fit
    "merged lr x3": ("merged", "quick", "quick", 3.0),
    "merged lr /3": ("merged", "quick", "quick", 1 / 3),
    "ptb long": ("ptb", "quick", "long", 1.0),
    "ptb lr x3": ("ptb", "quick", "quick", 3.0),
    "ptb aux-lm": ("ptb", "quick", "quick", 1.0),
}
# the auxiliary next-word objective's weight (`--aux-lm`, Enguehard et al. 2017); 0 elsewhere
AUX_LM = {"ptb aux-lm": 1.0}


def config(variant: str, seed: int, args: argparse.Namespace) -> RunConfig:
    """The LSTM teacher's run config of one variant: the quick preset's training, with the
    variant's data, model preset, epochs and learning rate."""
    data, model_preset, epochs, lr_factor = VARIANTS[variant]
    model, _ = preset("cls", "lstm", model_preset)
    _, train = preset("cls", "lstm", "quick")
    n_epochs = args.epochs or (args.long_epochs if epochs == "long" else train.epochs)
    train = dataclasses.replace(
        train, epochs=n_epochs, lr=BASE_LR * lr_factor, aux_lm=AUX_LM.get(variant, 0.0)
    )
    folder = "default" if data == "ptb" else str(Path(args.merged).absolute())
    return RunConfig(
        "cls", model, seed=seed, train=train,
        data=DataConfig(data=folder, max_train_rows=args.max_train_rows),
    )  # fmt: skip


def slug(variant: str) -> str:
    """A folder name for a variant."""
    return variant.replace(" ", "-").replace("/", "div")


def accuracy(pred: dict[str, np.ndarray], mask: np.ndarray) -> float | None:
    """Accuracy of the rows in `mask` (None when there are none)."""
    if not mask.any():
        return None
    return float((pred["probs"][mask].argmax(1) == pred["label"][mask]).mean())


def wall_seconds(run: Path) -> float:
    """Training wall time, seconds: the sum over the run's starts (`provenance.json`
    sessions) of finished - started."""
    sessions = json.loads((run / "provenance.json").read_text())["sessions"]
    return sum(
        (
            datetime.fromisoformat(e["finished"]) - datetime.fromisoformat(e["started"])
        ).total_seconds()
        for e in sessions
        if e.get("started") and e.get("finished")
    )


def suite_accuracy(pred: dict[str, np.ndarray], min_attractors: int = 0) -> float | None:
    """Pairwise accuracy (Marvin & Linzen's: good scored above bad) over a suite's scored
    items with at least `min_attractors` attractors; None when there are none."""
    good, bad = pred["score_good"].astype(float), pred["score_bad"].astype(float)
    mask = ~(np.isnan(good) | np.isnan(bad)) & (pred["n_attractors"] >= min_attractors)
    return float(pairwise_accuracy(good[mask], bad[mask])) if mask.any() else None


def measure(run: Path) -> dict:
    """One finished run's figures (see the module note)."""
    valid = load_predictions(run / "predictions" / "valid.npz")
    test = load_predictions(run / "predictions" / "test.npz")
    attractors = test["n_diff_intervening"]
    suite = slices(load_suite(suite_files(run, SUITE)[0]))
    ptb = load_suite(suite_files(run, PTB_TEST)[0])
    return {
        "valid_mu_accuracy": accuracy(valid, np.ones(len(valid["label"]), dtype=bool)),
        "test_mu_accuracy": accuracy(test, np.ones(len(test["label"]), dtype=bool)),
        "test_attractors_ge1": accuracy(test, attractors >= 1),
        "test_attractors_ge2": accuracy(test, attractors >= 2),
        "test_rows_ge1": int((attractors >= 1).sum()),
        "test_rows_ge2": int((attractors >= 2).sum()),
        "ml_across_pp": suite.get(ACROSS_PP),
        "ml_across_rc": suite.get(ACROSS_CLAUSE),
        "ml_all": suite.get("all items"),
        "ptb_test_mu_accuracy": suite_accuracy(ptb),
        "ptb_test_attractors_ge1": suite_accuracy(ptb, 1),
        "ptb_test_attractors_ge2": suite_accuracy(ptb, 2),
        "wall_seconds": wall_seconds(run),
    }


COLUMNS = (
    ("valid µ-acc", "valid_mu_accuracy"), ("test µ-acc", "test_mu_accuracy"),
    ("test ≥1 attr.", "test_attractors_ge1"), ("test ≥2 attr.", "test_attractors_ge2"),
    ("PTB test µ-acc", "ptb_test_mu_accuracy"), ("PTB test ≥1", "ptb_test_attractors_ge1"),
    ("PTB test ≥2", "ptb_test_attractors_ge2"),
    ("M&L across PP", "ml_across_pp"), ("M&L across RC", "ml_across_rc"),
    ("wall s", "wall_seconds"),
)  # fmt: skip


def summarise(per_run: dict[str, list[dict]]) -> dict[str, dict]:
    """Per variant and figure: mean and sample std over seeds (std 0 with one seed)."""
    out = {}
    for variant, runs in per_run.items():
        cell = {}
        for _, key in COLUMNS:
            values = [r[key] for r in runs if r[key] is not None]
            if values:
                cell[key] = {
                    "mean": float(np.mean(values)),
                    "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                    "n": len(values),
                }
        out[variant] = cell
    return out


def table(summary: dict[str, dict]) -> str:
    """The study's markdown table (mean ± std over seeds)."""
    lines = [
        "| lever | " + " | ".join(c for c, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for variant, cell in summary.items():
        cells = []
        for _, key in COLUMNS:
            if key not in cell:
                cells.append("–")
            elif key == "wall_seconds":
                cells.append(f"{cell[key]['mean']:.0f}")
            else:
                m, s, n = cell[key]["mean"], cell[key]["std"], cell[key]["n"]
                cells.append(f"{m:.3f} ± {s:.3f}" if n > 1 else f"{m:.3f}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merged", help="the PTB + Brown + UD data folder (docs/hard_data.md)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--long-epochs", type=int, default=20, help="epochs of the `long` variants")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("runs/hard-agreement"))
    ap.add_argument("--json", type=Path, default=Path("docs/results/hard_agreement.json"))
    ap.add_argument("--epochs", type=int, help="every run's epochs (tiny checks only)")
    ap.add_argument("--max-train-rows", type=int, help="tiny checks only")
    ap.add_argument("--workers", type=int, default=1, help="runs at a time (default 1)")
    args = ap.parse_args()
    if args.merged is None and any(VARIANTS[v][0] == "merged" for v in args.variants):
        ap.error("--merged is needed for the merged-data variants")

    runs = [
        GridRun(f"{slug(v)}/seed{s}", config(v, s, args), group=v)
        for v in args.variants
        for s in range(args.seeds)
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    ptb_test = args.out / f"{PTB_TEST}.tsv.gz"
    if not ptb_test.exists():
        ptb_test.symlink_to(default_dir() / "test.tsv.gz")
    scorer = SuiteScorer([Suite(SUITE), Suite(str(ptb_test))])
    result = run_grid(runs, args.out, workers=args.workers, after_run=scorer)
    print(result.summary())
    per_run: dict[str, list[dict]] = {}
    for run in runs:
        if run.name in result.failed or str((args.out / run.name).absolute()) in scorer.failed:
            print(f"left out: {run.name} (failed; see above)", file=sys.stderr)
            continue
        per_run.setdefault(run.group, []).append(measure(args.out / run.name))
    summary = summarise(per_run)
    meta = {
        "command": shlex.join(["python", "benchmarks/hard_agreement.py", *sys.argv[1:]]),
        "seeds": args.seeds,
        "variants": {
            v: dict(zip(("data", "model_preset", "epochs", "lr_factor"), VARIANTS[v]))
            | {"aux_lm": AUX_LM.get(v, 0.0)}
            for v in args.variants
        },  # fmt: skip
        "long_epochs": args.long_epochs,
        "epochs_override": args.epochs,
        "max_train_rows": args.max_train_rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "chosen_on": "valid µ-accuracy and the Marvin & Linzen columns (never the test columns)",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        dumps_json({"meta": meta, "variants": summary, "runs": per_run}, indent=2) + "\n"
    )
    print(table(summary))


if __name__ == "__main__":
    main()
