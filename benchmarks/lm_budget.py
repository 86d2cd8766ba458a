"""The smallest LM budget at which the language models have learned simple agreement.

Trains the LSTM and the Transformer language model on the LM text (PTB by default: every
training sentence, `ibkd.data.lm_text`) at increasing budgets (epochs x model size), several
seeds each, and scores every run on what a budget may be chosen on, never the test split:

- validation perplexity (over PTB's held-out validation sentences);
- agreement accuracy on the validation rows without attractors (`n_diff_intervening == 0`,
  both verb forms in the vocabulary): the verb's form preferred to its other-number form;
- Marvin & Linzen's `simple_agrmt` and `sent_comp` (the shipped suite: the development
  suites of the issue), each item's two verb forms compared after the shared prefix.

A budget has learned simple agreement when, for both models, the mean over seeds of M&L
`simple_agrmt` and `sent_comp` is >= 0.8 and of the no-attractor validation rows >= 0.85
(`THRESHOLDS`); the script stops after the first such budget with `--seeds` seeds (`--all`:
goes on). Budgets run in order, seed by seed, the LSTM then the Transformer; a finished run
(its metrics.json and suites/marvin-linzen.npz) is reused and a killed one resumed from its
checkpoint, so the script resumes where it stopped. Writes `--json` after every run.

    OMP_NUM_THREADS=2 python benchmarks/lm_budget.py [--out runs/lm-budget]
        [--json docs/results/lm_budget.json] [--seeds 3] [--budgets e1 e2 ...] [--all]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ibkd.config import DataConfig, RunConfig
from ibkd.data import lm_text
from ibkd.files import atomic_write
from ibkd.predictions import load_predictions
from ibkd.recipes import preset
from ibkd.suite_predictions import SuiteScorer, grid_suites
from ibkd.train import train_run

MODELS = ("lstm", "transformer")
# model sizes: the quick presets', and a medium size (the paper's small LSTM's 256 / 512 units;
# a 4-block Transformer of width 256)
SIZES = {
    "quick": {},
    "medium": {"lstm": {"dim": 256, "hidden": 512}, "transformer": {"dim": 256, "layers": 4}},
}
# name: (size, epochs), in increasing cost
BUDGETS = {
    "e1": ("quick", 1),
    "e2": ("quick", 2),
    "e4": ("quick", 4),
    "e6": ("quick", 6),
    "medium-e4": ("medium", 4),
    "medium-e8": ("medium", 8),
}
THRESHOLDS = {"ml_simple": 0.8, "ml_sent_comp": 0.8, "valid_no_attractor": 0.85}
SUITE = "marvin-linzen"


def run_config(
    model: str, budget: str, seed: int, text: str, sentences: int | None = None
) -> RunConfig:
    """The run of `model` at `budget`, seed `seed`: the quick LM recipe (its learning rates,
    batch, warm-up) at the budget's size and epochs, every word of the text `text` (its first
    `sentences` training sentences if given: smoke tests)."""
    size, epochs = BUDGETS[budget]
    cfg_model, train = preset("lm", model, "quick")
    cfg_model = dataclasses.replace(cfg_model, **SIZES[size].get(model, {}))
    train = dataclasses.replace(train, epochs=epochs, patience=epochs + 1, device="cpu")
    data = DataConfig(lm_text=text, max_train_rows=sentences)
    return RunConfig("lm", cfg_model, seed=seed, data=data, train=train)


def no_attractor_accuracy(pred: dict) -> tuple[float, int]:
    """(accuracy, rows) on the LM predictions' rows without attractors whose two verb forms
    are both in the vocabulary: log P(verb) > log P(other form)."""
    keep = pred["other_known"] & (pred["n_diff_intervening"] == 0)
    correct = pred["verb_logprob"][keep] > pred["other_logprob"][keep]
    return float(correct.mean()) if keep.any() else float("nan"), int(keep.sum())


def figures(folder: Path, metrics: dict, suite: dict, wall: float | None) -> dict:
    """One finished run's figures (validation and development suites only)."""
    pred = load_predictions(folder / "predictions" / "valid.npz")
    acc, n = no_attractor_accuracy(pred)
    by = suite["by_construction"]
    t = metrics["training"]
    return {
        "valid_perplexity": round(metrics["valid"]["perplexity"], 2),
        "valid_no_attractor": round(acc, 4), "valid_no_attractor_rows": n,
        "ml_simple": round(by["simple_agrmt"]["accuracy"], 4),
        "ml_simple_n": by["simple_agrmt"]["n"],
        "ml_sent_comp": round(by["sent_comp"]["accuracy"], 4),
        "ml_sent_comp_n": by["sent_comp"]["n"],
        "ml_accuracy": round(suite["accuracy"], 4), "ml_coverage": round(suite["coverage"], 4),
        "train_seconds": t["seconds"], "tokens_per_s": t["tokens_per_s"],
        "train_sentences": t["train_examples"], "parameters": t["parameters"],
        "wall_seconds": wall,
    }  # fmt: skip


def summary(runs: list[dict], seeds: int) -> list[dict]:
    """Per budget and model: mean, min and max over seeds of each figure, and whether the
    budget meets `THRESHOLDS` for both models with `seeds` seeds."""
    out = []
    for budget in BUDGETS:
        row = {"budget": budget, "size": BUDGETS[budget][0], "epochs": BUDGETS[budget][1]}
        done = True
        for model in MODELS:
            rs = [r for r in runs if r["budget"] == budget and r["model"] == model]
            if not rs:
                done = False
                continue
            stats = {"seeds": len(rs)}
            for key in ("valid_perplexity", *THRESHOLDS):
                v = np.array([r[key] for r in rs], dtype=float)
                stats[key] = {"mean": round(float(v.mean()), 4), "min": round(float(v.min()), 4),
                              "max": round(float(v.max()), 4)}  # fmt: skip
            stats["wall_seconds_mean"] = round(float(np.mean([r["wall_seconds"] or np.nan
                                                             for r in rs])), 1)  # fmt: skip
            stats["learned"] = all(stats[k]["mean"] >= t for k, t in THRESHOLDS.items())
            row[model] = stats
            done = done and len(rs) >= seeds and stats["learned"]
        if any(m in row for m in MODELS):
            row["learned_by_both"] = done
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/lm-budget"))
    ap.add_argument("--json", type=Path, default=Path("docs/results/lm_budget.json"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    ap.add_argument("--lm-text", help="the LM text folder (default: as `ibkd train`)")
    ap.add_argument("--threads", type=int, help="torch threads (default: the process's)")
    ap.add_argument("--all", action="store_true", help="go on after a budget passes")
    ap.add_argument("--max-sentences", type=int, help="first N training sentences (smoke tests)")
    args = ap.parse_args()
    text = lm_text.resolve(args.lm_text)
    if text is None:
        raise SystemExit("ibkd: error: lm_budget.py needs an LM text (--lm-text)")
    scorer = SuiteScorer([s for s in grid_suites() if s.name == SUITE])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
               f"{torch.__version__}, {args.threads or torch.get_num_threads()} threads; "
               "shared with other jobs")  # fmt: skip
    old = json.loads(args.json.read_text()) if args.json.exists() else {}
    walls = {(r["budget"], r["model"], r["seed"]): r["wall_seconds"] for r in old.get("runs", [])}
    runs: list[dict] = []

    def write() -> None:
        result = {"machine": machine, "lm_text": text, "thresholds": THRESHOLDS,
                  "budgets": {k: {"size": s, "epochs": e} for k, (s, e) in BUDGETS.items()},
                  "sizes": SIZES, "runs": runs, "summary": summary(runs, args.seeds)}  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.json) as f:
            json.dump(result, f, indent=2)
            f.write("\n")

    for budget in args.budgets:
        for seed in range(args.seeds):
            for model in MODELS:
                folder = args.out / budget / model / f"seed{seed}"
                finished = (folder / "metrics.json").exists()
                t0 = time.perf_counter()
                cfg = run_config(model, budget, seed, text, args.max_sentences)
                metrics = train_run(cfg, folder, resume=True, progress=False, threads=args.threads)
                scorer(folder)
                suite = json.loads((folder / "suites" / f"{SUITE}.json").read_text())
                wall = walls.get((budget, model, seed)) if finished else round(
                    time.perf_counter() - t0, 1)  # fmt: skip
                runs.append({"budget": budget, "model": model, "seed": seed,
                             **figures(folder, metrics, suite, wall)})  # fmt: skip
                write()
                print(json.dumps(runs[-1]), flush=True)
        rows = {r["budget"]: r for r in summary(runs, args.seeds)}
        if rows.get(budget, {}).get("learned_by_both") and not args.all:
            print(f"{budget}: both language models have learned simple agreement", flush=True)
            break
    write()


if __name__ == "__main__":
    main()
