"""When do the language models learn agreement? One run per model, scored after every epoch.

`lm_budget.py` trains a separate run per budget (each with its own cosine schedule), which
multiplies the cost. This script trains each language model once, for `--epochs` epochs at a
constant learning rate after the warm-up (so that epoch k of a long run is a run of k epochs
without the decay; `--schedule cosine` decays it over the `--epochs` instead), and after every
epoch scores what a budget may be chosen on, never the
test split:

- validation perplexity (the LM text's held-out validation sentences);
- agreement on the validation rows without attractors (`lm_budget.no_attractor_accuracy`,
  imported from the budget study beside this file);
- Marvin & Linzen's constructions (the shipped suite), simple and in a sentential complement
  first, each item's two verb forms compared after the shared prefix;
- the is / are preference after a singular and a plural subject (`the N` and `the Ns` for
  the suite's 10 singular nouns `N`): the mean log-odds difference, a direct read of whether
  the model's next word depends on the subject's number at all.

Every epoch's row is appended to `--json` as it is scored, so a killed study keeps what it
measured; a rerun resumes each run from its checkpoint (ibkd's resume) and rescores nothing
already written. The per-epoch hook wraps `ibkd.train.end_epoch` (this script only).

    OMP_NUM_THREADS=1 python benchmarks/lm_curve.py --model lstm --lm-text POOL_OR_PTB \
        --epochs 12 --batch-size 32 [--vocab-size 10000] [--unk-signatures] [--schedule cosine] \
        [--out runs/lm-curve] [--json docs/results/lm_curve_lstm.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from lm_budget import no_attractor_accuracy  # the same measure as the budget study

from ibkd import train as train_module
from ibkd.config import DataConfig, RunConfig
from ibkd.data import lm_text
from ibkd.data.suites.marvin_linzen import files, read, shipped_dir
from ibkd.files import atomic_write
from ibkd.recipes import preset
from ibkd.runs import environment, now
from ibkd.scoring import Scorer
from ibkd.suite_predictions import predict_suite
from ibkd.tasks import get_task

FIRST = ("simple_agrmt", "sent_comp")


def suite_items() -> list:
    """Every item of the shipped Marvin & Linzen suite."""
    return [item for f in files(shipped_dir()) for item in read(f, False)]


def is_are_gap(scorer: Scorer, nouns: list[str]) -> dict:
    """Mean over `nouns` (singular; plural with -s) of [log P(is) - log P(are)] after `the N`
    minus the same after `the Ns`: > 0 when the next word follows the subject's number; and
    the share of nouns whose singular prefers `is` more than its plural does."""
    pre = [("the", n) for n in nouns] + [("the", n + "s") for n in nouns]
    is_ = scorer.conditional_score(pre, [("is",)] * len(pre))
    are = scorer.conditional_score(pre, [("are",)] * len(pre))
    d = is_ - are
    gap = d[: len(nouns)] - d[len(nouns) :]
    return {
        "mean": round(float(gap.mean()), 4),
        "share_positive": round(float((gap > 0).mean()), 4),
    }


def scored(run, items: list, nouns: list[str]) -> dict:
    """The development measures of `run`'s model now (eval mode; training mode restored)."""
    model, vocab, device = run.model, run.data.vocab, run.device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        pred = get_task("lm").predict(model, run.data.valid, vocab, device)
        acc, rows = no_attractor_accuracy(pred)
        suite, _ = predict_suite(model, vocab, "lm", items, device, "target")
        scorer = Scorer.for_model(model, vocab, "lm", device)
        gap = is_are_gap(scorer, nouns)
    model.train(was_training)
    good, bad = suite["score_good"], suite["score_bad"]
    ok = ~(np.isnan(good) | np.isnan(bad))  # items the vocabulary leaves unscorable: out
    correct, construction = good > bad, np.asarray(suite["construction"])
    by = {}
    for name in sorted(set(construction.tolist())):
        m = (construction == name) & ok
        by[name] = {"accuracy": round(float(correct[m].mean()), 4) if m.any() else None,
                    "n": int(m.sum())}  # fmt: skip
    return {"valid_no_attractor": round(acc, 4), "valid_no_attractor_rows": rows,
            "ml": by, "ml_all": round(float(correct[ok].mean()), 4), "is_are_gap": gap}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a quick LM preset: lstm, transformer, ...")
    ap.add_argument("--lm-text", required=True, help="PTB folder or a text pool file")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, help="default: the quick preset's")
    ap.add_argument(
        "--schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="cosine: decay to 0 over --epochs (the curve is then that budget's only "
        "at its last epoch)",
    )
    ap.add_argument("--vocab-size", type=int, help="cap (specials included); default: the text's")
    ap.add_argument(
        "--unk-signatures",
        action="store_true",
        help="words outside the vocabulary are their signatures (<unk-s>, ...)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/lm-curve"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--max-sentences", type=int, help="first N training sentences (smoke tests)")
    args = ap.parse_args()
    text = lm_text.resolve(args.lm_text)
    model_cfg, train_cfg = preset("lm", args.model, "quick")
    train_cfg = dataclasses.replace(
        train_cfg, epochs=args.epochs, patience=args.epochs + 1, batch_size=args.batch_size,
        schedule=args.schedule, lr=args.lr or train_cfg.lr, device="cpu",
    )  # fmt: skip
    data = DataConfig(lm_text=text, vocab_size=args.vocab_size, max_train_rows=args.max_sentences,
                      unk_signatures=args.unk_signatures)  # fmt: skip
    cfg = RunConfig("lm", model_cfg, seed=args.seed, data=data, train=train_cfg)
    sig = ("-sig" if args.unk_signatures else "") + ("-cos" if args.schedule == "cosine" else "")
    folder = args.out / f"{args.model}-b{args.batch_size}{sig}-seed{args.seed}"
    out = args.json or Path(f"docs/results/lm_curve_{args.model}.json")
    old = json.loads(out.read_text()) if out.exists() else {}
    rows = old.get("epochs", [])
    items = suite_items()
    nouns = sorted({item.prefix[1] for item in items if item.suite == "simple_agrmt"
                    and not item.prefix[1].endswith("s")})  # fmt: skip
    t_start = time.perf_counter()

    def write() -> None:
        result = {"command": "python benchmarks/lm_curve.py " + " ".join(
                      f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                      if v not in (None, False) and k != "json").replace(" True", ""),
                  "model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
                  "lm_text": str(text), "vocab_size": args.vocab_size,
                  "unk_signatures": args.unk_signatures, "epochs": rows,
                  "finished": now(), **environment()}  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out) as f:
            json.dump(result, f, indent=1)
            f.write("\n")

    original = train_module.end_epoch

    def end_epoch(run, train_loss, epochs_log):
        row = original(run, train_loss, epochs_log)
        if any(r["epoch"] == row["epoch"] for r in rows):
            return row
        t0 = time.process_time()
        rows.append({"epoch": row["epoch"], "step": row["step"], "tokens": run.state.tokens,
                     "train_loss": float(row["train_loss"]),
                     "valid_perplexity": round(math.exp(float(row["valid_loss"])), 2),
                     "train_seconds": float(row["seconds"]),
                     **scored(run, items, nouns),
                     "scoring_cpu_seconds": round(time.process_time() - t0, 1)})  # fmt: skip
        write()
        r = rows[-1]
        print(json.dumps({k: r[k] for k in ("epoch", "valid_perplexity", "valid_no_attractor",
                                             "is_are_gap", "ml_all")}
                         | {c: r["ml"].get(c) for c in FIRST}), flush=True)  # fmt: skip
        return row

    train_module.end_epoch = end_epoch
    train_module.train_run(cfg, folder, resume=True, progress=False)
    print(f"done in {time.perf_counter() - t_start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
