"""Coverage of Marvin & Linzen's items in a language model's vocabulary: the share of the
shipped suite's items an LM of that vocabulary can score.

An item is scored when both of its verb forms are words of the vocabulary (a form outside it
is `<unk>`, as the LM's training text maps every rare word, and two `<unk>` forms cannot be
compared); the count is the scorer's own (`ibkd.scoring.Scorer.score_suite`, as `ibkd
evaluate` scores the suite), run with a small untrained LSTM LM over each vocabulary (which
items are scored depends on the vocabulary only).

Vocabularies: PTB's (its training split less its held-out sentences, 9,995 entries: what an
LM on `--lm-text PTB` has) and the text pool's (`--pool`: e.g. the four-corpus
`pool.tsv.gz`, read as an LM text by `ibkd.data.lm_text`, its hash-chosen held-out sentences
and the default agreement data's validation and test sentences excluded), capped at each of
`--sizes` entries (`all`: every training word); with `--signatures`, the pool's vocabularies
built with unknown-word signatures (`--unk-signatures`: a rare verb is `<unk-s>` or `<unk>`,
`ibkd.data.vocab`), where an item is scored when its two forms map to different tokens,
neither `<unk>`. For each: the vocabulary's size, the items scored, the coverage and the verb
forms of unscored items that are outside it.

    python benchmarks/lm_coverage.py [--ptb PTB_DIR] --pool POOL [--sizes 10000 20000 all]
        [--signatures] [--json docs/results/lm_coverage.json]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ibkd.data import lm_text
from ibkd.data.splits import load_splits
from ibkd.data.suites import read_suite
from ibkd.data.vocab import build_text_vocab
from ibkd.files import dumps_json
from ibkd.models import ModelConfig, build_model
from ibkd.scoring import Scorer
from ibkd.tasks import get_task

SUITE = "marvin-linzen"


def coverage(vocab, items) -> dict:
    """The suite's summary under `vocab` (scored items, coverage, skip reasons) and the verb
    forms outside `vocab` of the unscored items, with their item counts (`items`: the suite's
    items, in the order `score_suite` reads them)."""
    torch.manual_seed(0)
    model = build_model(
        ModelConfig("lstm", "lstm", dim=8, layers=1), get_task("lm").shapes(vocab)
    ).eval()
    pred, summary = Scorer.for_model(model, vocab, "lm").score_suite(SUITE)
    unscored = np.isnan(pred["score_good"]) | np.isnan(pred["score_bad"])
    missing: Counter[str] = Counter()
    for it, skip in zip(items, unscored):
        if skip:
            missing.update({w for w in (*it.good, *(it.bad or ())) if w not in vocab})
    return {
        "vocabulary": len(vocab),
        "items": len(items),
        "scored": summary["scored"],
        "coverage": round(summary["coverage"], 4),
        "skipped": summary["skipped"],
        "forms_outside": dict(missing.most_common()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ptb", type=Path, help="PTB's folder (ptb.train.txt ...)")
    ap.add_argument("--pool", type=Path, required=True, help="a text pool file")
    ap.add_argument("--sizes", nargs="+", default=["10000", "20000", "all"])
    ap.add_argument(
        "--signatures",
        action="store_true",
        help="the pool's vocabularies with unknown-word signatures",
    )
    ap.add_argument("--json", type=Path, default=Path("docs/results/lm_coverage.json"))
    args = ap.parse_args()
    items = read_suite(SUITE)
    splits = load_splits("default")
    held = [tuple(r.tokens) for r in (*splits.valid, *splits.test)]
    results = {"suite": SUITE, "items": len(items), "vocabularies": []}
    texts = [("ptb", str(args.ptb), ["all"])] if args.ptb else []
    texts.append(("pool", str(args.pool), args.sizes))
    for name, path, sizes in texts:
        t0 = time.perf_counter()
        text = lm_text.read_text(lm_text.resolve(path))
        sentences, dropped = lm_text.training_sentences(text, held)
        for size in sizes:
            sig = args.signatures and name == "pool"
            vocab = build_text_vocab(sentences, max_size=None if size == "all" else int(size),
                                     signatures=sig)  # fmt: skip
            row = {"text": name, "path": path, "training_sentences": len(sentences),
                   "training_tokens": sum(map(len, sentences)), "held_out_dropped": dropped,
                   "size": size, "signatures": sig, **coverage(vocab, items),
                   "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            results["vocabularies"].append(row)
            print(dumps_json({k: v for k, v in row.items() if k != "forms_outside"},
                             indent=None), flush=True)  # fmt: skip
    args.json.write_text(dumps_json(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
