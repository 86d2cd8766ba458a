"""BLiMP (Warstadt et al. 2020, alexwarstadt/blimp): JSON lines, one minimal pair per line.

Every record has `sentence_good` and `sentence_bad`; all 67 paradigms are read. A language model
compares the two whole sentences (the field's standard, as in lm-eval-harness and minicons).
Where the pair is a verb's number at one position, the item is also a "target" item that the
classification setup can score: one-prefix paradigms (`one_prefix_prefix`,
`one_prefix_word_good`, `one_prefix_word_bad`) whose two words are the two forms of a verb, and
two-prefix subject-verb agreement paradigms (the same verb after subjects of different number).
The paradigm's `linguistics_term` says which are agreement paradigms where the record has it.

Raw English is put in the training data's style (`ptb_tokenize`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ibkd.data.suites.item import SENTENCE, LineErrors, SuiteItem, pair_number, ptb_tokenize
from ibkd.data.verbs import verb_number
from ibkd.files import read_lines

ONE_PREFIX_KEYS = ("one_prefix_prefix", "one_prefix_word_good", "one_prefix_word_bad")
AGREEMENT_TERM = "subject_verb_agreement"
EOS_TOKEN = "<eos>"


def _words(rec: dict, key: str, *, empty_ok: bool = False) -> list[str]:
    """The tokens of a BLiMP text field; ValueError when it is missing, not a string, or (unless
    `empty_ok`) has no word once punctuation is dropped."""
    if key not in rec:
        raise ValueError(f"missing {key}")
    value = rec[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} is {type(value).__name__} {value!r}, expected a string")
    words = ptb_tokenize(value)
    if not words and not empty_ok:
        raise ValueError(f"{key} {value!r} has no word (only punctuation or spaces)")
    return words


def read(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
    """Items of one BLiMP .jsonl file (bad records raise or are skipped, naming the line)."""
    errors = LineErrors(path, skip_bad_rows)
    items = []
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"not valid JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError("expected a JSON object")
            items.append(_item(rec, len(items), path.name.split(".")[0]))
        except ValueError as e:
            errors.bad(lineno, str(e))
    return items


def _item(rec: dict, index: int, default_name: str) -> SuiteItem:
    suite = str(rec.get("UID", default_name))
    good_s, bad_s = _words(rec, "sentence_good"), _words(rec, "sentence_bad")
    sentences = {"sentence_good": tuple(good_s), "sentence_bad": tuple(bad_s)}
    term = rec.get("linguistics_term")
    agreement = term is None or term == AGREEMENT_TERM
    if any(k in rec for k in ONE_PREFIX_KEYS):
        prefix = _words(rec, "one_prefix_prefix", empty_ok=True)
        good = _words(rec, "one_prefix_word_good")[0]
        bad = _words(rec, "one_prefix_word_bad")[0]
        number = pair_number(good, bad) if agreement else None
        return SuiteItem(suite, index, tuple(prefix), (good,), (bad,), number=number,
                         kind="target" if number else SENTENCE, **sentences)  # fmt: skip
    # two-prefix agreement: the same verb after subjects of different number; each prefix runs
    # to the last word where the two sentences differ, and the target is the next word
    diff = [i for i, (a, b) in enumerate(zip(good_s, bad_s)) if a != b]
    two_prefix = (
        agreement and rec.get("two_prefix_method", True) is not False
        and len(good_s) == len(bad_s) and diff and diff[-1] + 1 < len(good_s)
    )  # fmt: skip
    if two_prefix:
        k = diff[-1]
        return SuiteItem(suite, index, tuple(good_s[: k + 1]), (good_s[k + 1],),
                         (bad_s[k + 1],), prefix_bad=tuple(bad_s[: k + 1]),
                         number=verb_number(good_s[k + 1]), **sentences)  # fmt: skip
    if good_s == bad_s:
        raise ValueError("sentence_good and sentence_bad are the same once normalised")
    # a sentence pair only: the first word where they differ (or the end, `<eos>`, where one
    # sentence is the other cut short) stands for the pair
    k = next((i for i, (a, b) in enumerate(zip(good_s, bad_s)) if a != b), None)
    k = min(len(good_s), len(bad_s)) if k is None else k
    good, bad = (s[k] if k < len(s) else EOS_TOKEN for s in (good_s, bad_s))
    return SuiteItem(suite, index, tuple(good_s[:k]), (good,), (bad,), kind=SENTENCE,
                     **sentences)  # fmt: skip
