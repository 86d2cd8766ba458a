"""How accurate is `ibkd data build --format text` (spaCy) against gold dependency parses?

Runs the builder's extraction over UD English EWT twice, once on the gold parses (the `conllu`
path) and once on spaCy's parses of the same sentences, and compares the dependencies found:
precision and recall of (sentence, subject, verb, verb number).

Two conditions:
- `raw`: spaCy reads each sentence's raw `# text` (its own tokenizer; tokens are matched to
  the gold words by character offset).
- `ptb`: the sentence made to look like the shipped PTB data (gold words, lower-cased,
  punctuation removed, numbers as `N`, words outside PTB's training vocabulary as `<unk>`),
  read pre-tokenized, as `ibkd data build --pretokenized` reads PTB.
- `brown`: what `ibkd data build --format brown` does to the Brown corpus: the gold words as
  the corpus gives them (case, punctuation, clitics split), read pre-tokenized, and made
  PTB-like only after parsing (`ptb_style`: lower-cased, numbers `N`, punctuation dropped).

    python benchmarks/builder_accuracy.py --ud ../shared/data/ud_ewt [--ptb ../shared/data/ptb]
        [--conditions raw ptb brown]
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable
from pathlib import Path

from ibkd.data.build import (
    AGREEING_VERB,
    DEFAULT_PLACEHOLDERS,
    PARSE_STAND_INS,
    ConlluSentence,
    Token,
    extract,
    load_spacy,
    parse_text,
    read_conllu,
)
from ibkd.data.corpora import ptb_style, ptb_word
from ibkd.files import dumps_json, read_lines

Key = tuple[str, int, int, str]  # (sentence id, gold subject index, gold verb index, VBZ/VBP)
ANY_NOUN = {**AGREEING_VERB, "NNP": "VBZ", "NNPS": "VBP"}
NUMBER = re.compile(r"[\d.,:/-]*\d[\d.,:/-]*")


def keys(
    sent_id: str, tokens: list[Token], to_gold: list[int | None], agreeing_verb=AGREEING_VERB
) -> set[Key]:
    """The dependencies found in `tokens`, with indices mapped to the gold words (1-based)."""
    found = set()
    for d in extract(tokens, agreeing_verb):
        s, v = to_gold[d.subj_index - 1], to_gold[d.verb_index - 1]
        # a token that matches no gold word keeps a key that cannot match: a false positive
        found.add(
            (
                sent_id,
                s if s else -d.subj_index,
                v if v else -d.verb_index,
                tokens[d.verb_index - 1].tag,
            )
        )
    return found


def score(gold: set[Key], gold_any_noun: set[Key], pred: set[Key]) -> dict[str, float]:
    tp = len(gold & pred)
    return {
        "gold": len(gold),
        "predicted": len(pred),
        "correct": tp,
        "precision": tp / len(pred) if pred else 0.0,
        "recall": tp / len(gold) if gold else 0.0,
        # a predicted pair that gold has with a proper-noun subject (gold NNP, spaCy NN)
        # is still a true subject-verb agreement, with the right number
        "precision_agreement": len(gold_any_noun & pred) / len(pred) if pred else 0.0,
    }


def raw_condition(sents: list[ConlluSentence], nlp) -> set[Key]:
    pred: set[Key] = set()
    parsed = parse_text((s.text for s in sents), nlp, pretokenized=False)
    for s, tokens in zip(sents, parsed):
        start = {t.idx: i for i, t in enumerate(s.tokens, 1) if t.idx >= 0}
        pred |= keys(s.sent_id, tokens, [start.get(t.idx) for t in tokens])
    return pred


def brown_condition(sents: list[ConlluSentence], nlp) -> set[Key]:
    """The gold words parsed as given, then made PTB-like (as `--format brown`)."""
    pred: set[Key] = set()
    words = [[t.word for t in s.tokens] for s in sents]
    parsed = parse_text((" ".join(w) for w in words), nlp, pretokenized=True, placeholders=())
    for s, w, tokens in zip(sents, words, parsed):
        kept = [i for i, word in enumerate(w, 1) if ptb_word(word) is not None]
        pred |= keys(s.sent_id, ptb_style(tokens), kept)
    return pred


def ptb_styled(s: ConlluSentence, upos_punct: set[int], vocab: set[str] | None):
    """The PTB-looking words of a gold sentence and, per word, its gold index."""
    words, to_gold = [], []
    for i, t in enumerate(s.tokens, 1):
        if i in upos_punct:
            continue
        w = t.word.lower()
        if NUMBER.fullmatch(w):
            w = "N"
        elif vocab is not None and w not in vocab:
            w = "<unk>"
        words.append(w)
        to_gold.append(i)
    return words, to_gold


def ptb_condition(sents, punct, nlp, vocab, stand_ins) -> set[Key]:
    styled = [ptb_styled(s, punct[s.sent_id], vocab) for s in sents]
    pred: set[Key] = set()
    parsed = parse_text(
        (" ".join(w) for w, _ in styled),
        nlp,
        pretokenized=True,
        placeholders=DEFAULT_PLACEHOLDERS,
        stand_ins=stand_ins,
    )
    for s, (_, to_gold), tokens in zip(sents, styled, parsed):
        pred |= keys(s.sent_id, tokens, list(to_gold))
    return pred


def punctuation(files: Iterable[Path]) -> dict[str, set[int]]:
    """Per sentence id, the indices of the words whose UPOS is PUNCT."""
    out: dict[str, set[int]] = {}
    sid = ""
    for f in files:
        for _, line in read_lines(f):
            if line.startswith("# sent_id"):
                sid = line.partition("=")[2].strip()
                out[sid] = set()
            cols = line.split("\t")
            if len(cols) == 10 and cols[0].isdigit() and cols[3] == "PUNCT":
                out[sid].add(int(cols[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ud", type=Path, default=Path("../shared/data/ud_ewt"))
    ap.add_argument("--ptb", type=Path, default=Path("../shared/data/ptb"))
    ap.add_argument(
        "--unk-stand-in",
        default=None,
        help="what the parser sees for <unk> (default: <unk> itself)",
    )
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    files = sorted(args.ud.glob("*.conllu*"))
    sents = [s for f in files for s in read_conllu(f) if s.text]
    gold: set[Key] = set()
    gold_any_noun: set[Key] = set()
    for s in sents:
        identity = list(range(1, len(s.tokens) + 1))
        gold |= keys(s.sent_id, s.tokens, identity)
        gold_any_noun |= keys(s.sent_id, s.tokens, identity, ANY_NOUN)
    nlp = load_spacy()
    results = {"sentences": len(sents), "files": [f.name for f in files]}
    t0 = time.perf_counter()
    results["raw"] = score(gold, gold_any_noun, raw_condition(sents, nlp))
    results["raw"]["seconds"] = round(time.perf_counter() - t0, 1)

    vocab = None
    ptb_train = args.ptb / "ptb.train.txt.gz"
    if ptb_train.exists():
        vocab = {w for _, line in read_lines(ptb_train) for w in line.split()}
    stand_ins = dict(PARSE_STAND_INS)
    if args.unk_stand_in:
        stand_ins["<unk>"] = args.unk_stand_in
    punct = punctuation(files)
    t0 = time.perf_counter()
    results["ptb"] = score(gold, gold_any_noun, ptb_condition(sents, punct, nlp, vocab, stand_ins))
    results["ptb"]["seconds"] = round(time.perf_counter() - t0, 1)
    results["ptb"]["unk_stand_in"] = stand_ins.get("<unk>", "<unk>")
    results["ptb"]["ptb_vocabulary"] = vocab is not None

    t0 = time.perf_counter()
    results["brown"] = score(gold, gold_any_noun, brown_condition(sents, nlp))
    results["brown"]["seconds"] = round(time.perf_counter() - t0, 1)

    for cond in ("raw", "ptb", "brown"):
        r = results[cond]
        print(
            f"{cond:>5}: precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
            f"agreement-pair precision {r['precision_agreement']:.3f}  "
            f"({r['correct']} of {r['predicted']} predicted, {r['gold']} gold; "
            f"{r['seconds']} s)"
        )
    if args.json:
        args.json.write_text(dumps_json(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
