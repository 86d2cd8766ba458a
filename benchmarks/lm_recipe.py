"""What the quick language-model budget takes: the output layer's vocabulary, epochs and
learning rate of the LM setup, measured on the shipped data (docs/lm.md).

Each variant is one `ibkd train --setup lm --preset quick` run on one thread (as a grid worker
runs it), seed 0; choices are made on the validation split (perplexity, agreement µ-accuracy at
the verb), the test split is reported. Perplexities under different vocabularies are not
comparable (a smaller vocabulary folds more words into `<unk>`); agreement is, on the rows
whose verb forms are both in the vocabulary.

- vocabulary: every training word (9.5K) against the 4,000 most frequent, LSTM, 6 epochs;
- learning rate at the quick recipe's 3 epochs: 2e-3 (the classification recipe's) against
  5e-3, LSTM and Transformer.

A finished run folder is reused, so the script resumes. Writes `--json` and prints a markdown
table.

    python benchmarks/lm_recipe.py [--out runs/lm-recipe] [--json docs/results/lm_recipe.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from ibkd.files import dumps_json

# name: (model, vocabulary cap or "all", epochs, learning rate)
VARIANTS = {
    "lstm-full": ("lstm", "all", 6, None),
    "lstm-v4k": ("lstm", 4000, 6, None),
    "lstm-e3-lr2e-3": ("lstm", 4000, 3, 2e-3),
    "lstm-e3-lr5e-3": ("lstm", 4000, 3, 5e-3),
    "tr-e3-lr2e-3": ("transformer", 4000, 3, 2e-3),
    "tr-e3-lr5e-3": ("transformer", 4000, 3, 5e-3),
}


def command(name: str, out: Path) -> list[str]:
    """The `ibkd train` command line of one variant."""
    model, vocab, epochs, lr = VARIANTS[name]
    cmd = [sys.executable, "-m", "ibkd", "train", "--setup", "lm", "--model", model]
    cmd += ["--preset", "quick", "--epochs", str(epochs), "--seed", "0", "--threads", "1"]
    cmd += ["--no-progress", "--out", str(out / name)]
    cmd += ["--vocab-size", "0" if vocab == "all" else str(vocab)]
    if lr is not None:
        cmd += ["--lr", str(lr)]
    return cmd


def row(name: str, out: Path) -> dict:
    """A finished variant's figures from its metrics.json."""
    m = json.loads((out / name / "metrics.json").read_text())
    t = m["training"]
    model, vocab, epochs, lr = VARIANTS[name]
    return {
        "variant": name, "model": model, "vocab_cap": vocab, "epochs": epochs,
        "lr": lr or 2e-3, "vocabulary": None, "seconds": t["seconds"],
        "tokens_per_s": t["tokens_per_s"],
        **{f"{split}_{k}": m[split][k] for split in ("valid", "test")
           for k in ("perplexity", "mu_accuracy", "a_accuracy", "coverage") if k in m[split]},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/lm-recipe"))
    ap.add_argument("--json", type=Path, default=Path("docs/results/lm_recipe.json"))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    rows = []
    for name in args.variants:
        if not (args.out / name / "metrics.json").exists():
            subprocess.run(command(name, args.out), check=True)
        rows.append(row(name, args.out))
        vocab = json.loads((args.out / name / "vocab.json").read_text())
        rows[-1]["vocabulary"] = len(vocab["specials"]) + len(vocab["tokens"])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread"
    args.json.write_text(dumps_json({"machine": machine, "runs": rows}, indent=2) + "\n")
    print("| variant | vocabulary | epochs | lr | tokens/s | valid ppl | valid µ-agreement | "
          "test µ-agreement | test A-accuracy | seconds |")  # fmt: skip
    print("|---" * 10 + "|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['vocabulary']:,} | {r['epochs']} | {r['lr']:g} | "
            f"{r['tokens_per_s']:,} | {r['valid_perplexity']:.1f} | "
            f"{r['valid_mu_accuracy']:.3f} | {r['test_mu_accuracy']:.3f} | "
            f"{r['test_a_accuracy']:.3f} | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
