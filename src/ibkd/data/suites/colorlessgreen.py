"""colorlessgreenRNNs suites (Gulordava et al. 2018, facebookresearch/colorlessgreenRNNs).

`NAME.text` holds one tokenised sentence per line (ending in `<eos>`); `NAME.gold` one line per
sentence, in one of two layouts:
- 4 columns (the Linzen test set, `subj_agr_filtered`): 0-based target index, correct form,
  wrong form, number of attractors;
- 12 columns (the nonce set, `generated`): pattern, constr_id, sent_id, 0-based target index,
  POS, morphology, correct form, wrong form, lemma, and three more (the controller's index and
  POS, the original prefix). The forms compared are the gold's columns 7 and 8, not the word
  the text has at the target (the nonce sentence replaced it). The attractor count is the
  `n_attr` column of `NAME.tab` (a header row, two rows per item: class correct and wrong),
  matched on pattern, constr_id and sent_id; without `NAME.tab` it is unknown.

Raw text (cased, punctuated) is normalised to the model's style (`normalize_tokens`); the target
index is moved accordingly.
"""

from __future__ import annotations

import re
from pathlib import Path

from ibkd.data.suites.item import (
    LineErrors,
    SuiteItem,
    normalize_tokens,
    one_word,
    pair_number,
)
from ibkd.errors import IbkdError
from ibkd.files import read_lines

NONCE_COLUMNS = 12
NUMBER = {"Sing": "VBZ", "Plur": "VBP"}


def _pattern_key(pattern: str, constr_id: str, sent_id: str) -> tuple[str, ...]:
    """`L!NOUN_VERB_VERB!Number=Plur!...` (gold) and `L__NOUN_VERB_VERB` (tab) -> one key."""
    return (*re.split(r"!|__", pattern)[:2], constr_id.strip(), sent_id.strip())


def _attractors(tab: Path) -> dict[tuple[str, ...], int]:
    """(pattern key) -> n_attr from the rows of class `correct` of a `generated.tab`."""
    lines = read_lines(tab)
    first = next(lines, None)
    header = first[1].split("\t") if first else []
    need = ("pattern", "constr_id", "sent_id", "class", "n_attr")
    missing = [c for c in need if c not in header]
    if missing:
        raise IbkdError(f"{tab}:1: expected a header row with {', '.join(need)}; missing: "
                        f"{', '.join(missing)}")  # fmt: skip
    col = {c: header.index(c) for c in need}
    out = {}
    for lineno, line in lines:
        cols = line.split("\t")
        if len(cols) < len(header) or cols[col["class"]] != "correct":
            continue
        try:
            n = int(cols[col["n_attr"]])
        except ValueError:
            raise IbkdError(f"{tab}:{lineno}: n_attr {cols[col['n_attr']]!r}: expected an "
                            "integer") from None  # fmt: skip
        out[_pattern_key(cols[col["pattern"]], cols[col["constr_id"]], cols[col["sent_id"]])] = n
    return out


def read(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
    """Items of NAME.text + NAME.gold (+ NAME.tab for a nonce set); `path` is any of them.
    IbkdError naming both files when their line counts differ, or naming a bad gold line."""
    stem = path.with_suffix("") if path.suffix in (".text", ".gold", ".tab") else path
    text, gold, tab = (stem.with_suffix(s) for s in (".text", ".gold", ".tab"))
    for f in (text, gold):
        if not f.is_file():
            raise IbkdError(f"{f}: no such file (a colorlessgreen suite is NAME.text + NAME.gold)")
    sentences = [line.split() for _, line in read_lines(text)]
    gold_lines = list(read_lines(gold))
    if len(gold_lines) != len(sentences):
        raise IbkdError(
            f"{text} has {len(sentences)} lines but {gold} has {len(gold_lines)}: expected one "
            "gold line per sentence (the files do not belong together, or one is truncated)"
        )
    attractors: dict | None = None
    errors = LineErrors(gold, skip_bad_rows)
    items = []
    for lineno, line in gold_lines:
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            if len(cols) not in (4, NONCE_COLUMNS):
                raise ValueError(
                    f"has {len(cols)} tab-separated columns, expected 4 (target index, correct "
                    "form, wrong form, attractors) or 12 (a nonce set's gold: pattern, "
                    "constr_id, sent_id, target index, POS, morphology, correct, wrong, ...)"
                )
            if lineno > len(sentences):
                raise ValueError(f"has no sentence: {text.name} has {len(sentences)} lines")
            raw = [t for t in sentences[lineno - 1] if t != "<eos>"]
            nonce = len(cols) == NONCE_COLUMNS
            target_col, good_col, bad_col = (3, 6, 7) if nonce else (0, 1, 2)
            try:
                target = int(cols[target_col])
            except ValueError:
                raise ValueError(
                    f"target index {cols[target_col]!r}: expected an integer"
                ) from None
            if not 0 <= target < len(raw):
                raise ValueError(
                    f"target index {target} is outside the sentence ({len(raw)} tokens, 0-based)"
                )
            good = one_word(cols[good_col], "correct form")
            bad = one_word(cols[bad_col], "wrong form")
            if nonce:
                number = next((v for k, v in NUMBER.items() if f"Number={k}" in cols[5]), None)
                number = number or pair_number(good, bad)
                if attractors is None:
                    attractors = _attractors(tab) if tab.is_file() else {}
                n_attr = attractors.get(_pattern_key(cols[0], cols[1], cols[2]))
            else:
                number = pair_number(good, bad)
                try:
                    n_attr = int(cols[3])
                except ValueError:
                    raise ValueError(f"attractors {cols[3]!r}: expected an integer") from None
        except ValueError as e:
            errors.bad(lineno, str(e))
            continue
        prefix, rest = normalize_tokens(raw[:target]), normalize_tokens(raw[target + 1 :])
        items.append(SuiteItem(
            stem.name, lineno - 1, tuple(prefix), (good,), (bad,), number=number,
            n_attractors=n_attr, sentence_good=tuple(prefix + [good] + rest),
            sentence_bad=tuple(prefix + [bad] + rest),
        ))  # fmt: skip
    return items
