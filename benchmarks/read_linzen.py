"""How long does reading a paper-sized Linzen file take?

Writes a synthetic file in the Linzen format with as many rows as the real
`agr_50_mostcommon_10K.tsv.gz` (about 1.57M), with sentence lengths and column contents of the
same kind, gzipped, then times `ibkd.data.linzen.read_linzen` on it (best of --repeat runs).

    python benchmarks/read_linzen.py [--rows 1570000] [--file /tmp/linzen_synthetic.tsv.gz]

Target (issue 2): at most 15 s on a 2-core laptop CPU.
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import random
import time
from pathlib import Path

from ibkd.data.linzen import COLUMNS, read_linzen

NOUNS = [
    ("key", "keys"),
    ("cabinet", "cabinets"),
    ("author", "authors"),
    ("house", "houses"),
    ("child", "children"),
    ("city", "cities"),
    ("player", "players"),
    ("song", "songs"),
]
VERBS = [("is", "are"), ("has", "have"), ("runs", "run"), ("seems", "seem"), ("was", "were")]
FILLER = "the a of in on with that which very old new large small to from by and for".split()
FILLER_POS = {
    "the": "DT",
    "a": "DT",
    "of": "IN",
    "in": "IN",
    "on": "IN",
    "with": "IN",
    "that": "WDT",
    "which": "WDT",
    "very": "RB",
    "old": "JJ",
    "new": "JJ",
    "large": "JJ",
    "small": "JJ",
    "to": "TO",
    "from": "IN",
    "by": "IN",
    "and": "CC",
    "for": "IN",
}


def synthetic_row(rng: random.Random) -> list[str]:
    """One row whose columns are consistent with each other, as a real row's are."""
    before = rng.randint(0, 8)
    between = rng.choice([0, 0, 1, 2, 3, 4, 6, 9, 14])
    after = rng.randint(3, 22)
    words, tags = [], []
    for _ in range(before):
        w = rng.choice(FILLER)
        words.append(w)
        tags.append(FILLER_POS[w])
    subj_plural = rng.random() < 0.35
    subj = rng.choice(NOUNS)[subj_plural]
    words.append(subj)
    tags.append("NNS" if subj_plural else "NN")
    subj_index = len(words)
    n_int = n_diff = 0
    last = "na"
    for _ in range(between):
        if rng.random() < 0.25:
            plural = rng.random() < 0.5
            words.append(rng.choice(NOUNS)[plural])
            tag = "NNS" if plural else "NN"
            n_int += 1
            n_diff += plural != subj_plural
            last = tag
        else:
            words.append(rng.choice(FILLER))
            tag = FILLER_POS[words[-1]]
        tags.append(tag)
    verb = rng.choice(VERBS)[subj_plural]
    words.append(verb)
    tags.append("VBP" if subj_plural else "VBZ")
    verb_index = len(words)
    for _ in range(after):
        w = rng.choice(FILLER)
        words.append(w)
        tags.append(FILLER_POS[w])
    nouns = [w for w, t in zip(words, tags) if t in ("NN", "NNS")]
    nouns_before = [w for w, t in zip(words[: verb_index - 1], tags) if t in ("NN", "NNS")]
    sentence = " ".join(words)
    return [
        sentence,
        sentence,
        " ".join(tags),
        subj,
        verb,
        tags[subj_index - 1],
        str(rng.random() < 0.1),
        str(rng.random() < 0.1),
        tags[verb_index - 1],
        str(subj_index),
        str(verb_index),
        str(n_int),
        last,
        str(n_diff),
        str(verb_index - subj_index),
        str(rng.randint(0, 2)),
        " ".join(nouns),
        " ".join(nouns_before),
    ]


def write_synthetic(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=6) as f:
        f.write("\t".join(COLUMNS) + "\n")
        for _ in range(rows):
            f.write("\t".join(synthetic_row(rng)) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_570_000)
    ap.add_argument("--file", type=Path, default=Path("/tmp/linzen_synthetic.tsv.gz"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not args.file.exists():
        print(f"writing {args.rows:,} synthetic rows to {args.file} ...")
        write_synthetic(args.file, args.rows)
    size = args.file.stat().st_size / 2**20
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = read_linzen(args.file)
        times.append(time.perf_counter() - t0)
        n = len(result.rows)
        del result
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(
        f"read {n:,} rows ({size:.0f} MiB gzipped) in {min(times):.2f} s "
        f"(best of {args.repeat}; all: {', '.join(f'{t:.2f}' for t in times)})"
    )


if __name__ == "__main__":
    main()
