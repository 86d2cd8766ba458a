"""External agreement test suites, read into one kind of item that models can be scored on.

Formats:
- `linzen`: a Linzen-format TSV; each row is an item whose correct verb is the row's verb
  (its wrong form is left to the evaluator's inflector; the number is known from verb_pos).
- `colorlessgreen` (Gulordava et al. 2018): `NAME.text`, one tokenised sentence per line ending
  in `<eos>`, and `NAME.gold`, tab-separated: 0-based target index, correct form, wrong form,
  number of attractors.
- `blimp` (Warstadt et al. 2020): JSON lines with `sentence_good`, `sentence_bad`, `UID`, and
  for one-prefix paradigms `one_prefix_prefix`, `one_prefix_word_good`, `one_prefix_word_bad`.

Raw English (BLiMP) is put in the shipped data's style: lower-cased, clitics split (`has n't`),
punctuation dropped, numbers as `N`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ibkd.data.linzen import read_linzen
from ibkd.errors import IbkdError
from ibkd.files import read_lines

FORMATS = ("linzen", "colorlessgreen", "blimp")


@dataclass(frozen=True)
class SuiteItem:
    """One agreement test: after `prefix`, `good` is right and `bad` is wrong.

    `prefix_bad` differs from `prefix` only where the suite varies the subject instead of the
    verb (BLiMP two-prefix paradigms). `bad` is None where the suite gives only the correct form
    (Linzen format). `number` is the correct form's number (VBZ or VBP) where the suite says it.
    Full sentences are kept where the suite has them (for whole-sentence LM scoring)."""

    suite: str
    index: int
    prefix: tuple[str, ...]
    good: tuple[str, ...]
    bad: tuple[str, ...] | None
    prefix_bad: tuple[str, ...] | None = None
    number: str | None = None
    n_attractors: int | None = None
    sentence_good: tuple[str, ...] | None = None
    sentence_bad: tuple[str, ...] | None = None


_CLITIC = re.compile(r"(?i)(n't|'s|'re|'ve|'ll|'d|'m)$")
_PIECES = re.compile(r"\d[\d.,:/]*\d(?![\w-])|[\w'-]+|[^\w\s]")
_NUMBER = re.compile(r"[\d.,:/-]*\d[\d.,:/-]*")


def ptb_tokenize(text: str) -> list[str]:
    """Raw English -> tokens in the style of the shipped PTB data."""
    out = []
    for piece in _PIECES.findall(text.lower()):
        if not re.search(r"\w", piece):
            continue  # punctuation
        piece = piece.strip("'-") if not _CLITIC.search(piece) else piece
        m = _CLITIC.search(piece)
        if m and m.start() > 0:
            out.extend([piece[: m.start()], piece[m.start() :]])
        elif piece:
            out.append("N" if _NUMBER.fullmatch(piece) else piece)
    return out


def detect_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json")):
        return "blimp"
    if name.endswith((".text", ".gold")):
        return "colorlessgreen"
    return "linzen"


def read_suite(
    path: str | os.PathLike, fmt: str | None = None, *, skip_bad_rows: bool = False
) -> list[SuiteItem]:
    """Read a test suite (format guessed from the name when `fmt` is None)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise IbkdError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return {"linzen": _linzen, "colorlessgreen": _colorlessgreen, "blimp": _blimp}[fmt](
        path, skip_bad_rows
    )


def _linzen(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
    name = path.name.split(".")[0]
    items = []
    for i, row in enumerate(read_linzen(path, skip_bad_rows=skip_bad_rows).rows):
        tokens = tuple(row.tokens)
        items.append(SuiteItem(
            name, i, tokens[: row.verb_index - 1], (tokens[row.verb_index - 1],), None,
            number=row.verb_pos, n_attractors=row.n_diff_intervening, sentence_good=tokens,
        ))  # fmt: skip
    return items


def _colorlessgreen(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
    stem = path.with_suffix("") if path.suffix in (".text", ".gold") else path
    text, gold = stem.with_suffix(".text"), stem.with_suffix(".gold")
    for f in (text, gold):
        if not f.is_file():
            raise IbkdError(f"{f}: no such file (a colorlessgreen suite is NAME.text + NAME.gold)")
    sentences = [line.split() for _, line in read_lines(text)]
    items = []
    for lineno, line in read_lines(gold):
        if not line.strip():
            continue
        cols = line.split("\t")
        try:
            if len(cols) < 4:
                raise ValueError(
                    f"has {len(cols)} tab-separated columns, expected 4 "
                    "(target index, correct form, wrong form, attractors)"
                )
            if lineno > len(sentences):
                raise ValueError(f"has no sentence: {text.name} has {len(sentences)} lines")
            tokens = [t for t in sentences[lineno - 1] if t != "<eos>"]
            try:
                target, n_attr = int(cols[0]), int(cols[3])
            except ValueError:
                raise ValueError(
                    f"target index {cols[0]!r} / attractors {cols[3]!r}: expected integers"
                ) from None
            if not 0 <= target < len(tokens):
                raise ValueError(
                    f"target index {target} is outside the sentence ({len(tokens)} tokens, 0-based)"
                )
        except ValueError as e:
            if not skip_bad_rows:
                raise IbkdError(f"{gold}:{lineno}: {e}") from None
            continue
        prefix = tuple(tokens[:target])
        good, bad = cols[1], cols[2]
        items.append(SuiteItem(
            stem.name, lineno - 1, prefix, (good,), (bad,), n_attractors=n_attr,
            sentence_good=tuple(tokens[:target] + [good] + tokens[target + 1:]),
            sentence_bad=tuple(tokens[:target] + [bad] + tokens[target + 1:]),
        ))  # fmt: skip
    return items


def _blimp(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
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
            item = _blimp_item(rec, len(items))
        except ValueError as e:
            if not skip_bad_rows:
                raise IbkdError(f"{path}:{lineno}: {e}") from None
            continue
        items.append(item)
    return items


ONE_PREFIX_KEYS = ("one_prefix_prefix", "one_prefix_word_good", "one_prefix_word_bad")


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


def _blimp_item(rec: dict, index: int) -> SuiteItem:
    suite = str(rec.get("UID", "blimp"))
    good_s, bad_s = _words(rec, "sentence_good"), _words(rec, "sentence_bad")
    if any(k in rec for k in ONE_PREFIX_KEYS):
        prefix = _words(rec, "one_prefix_prefix", empty_ok=True)
        good = _words(rec, "one_prefix_word_good")
        bad = _words(rec, "one_prefix_word_bad")
        return SuiteItem(
            suite,
            index,
            tuple(prefix),
            tuple(good[:1]),
            tuple(bad[:1]),
            sentence_good=tuple(good_s),
            sentence_bad=tuple(bad_s),
        )
    # two-prefix paradigm: the same verb after subjects of different number; each prefix runs
    # to the last word where the two sentences differ, and the target is the next word
    diff = [i for i, (a, b) in enumerate(zip(good_s, bad_s)) if a != b]
    if len(good_s) != len(bad_s) or not diff or diff[-1] + 1 >= len(good_s):
        raise ValueError(
            "expected sentence_good and sentence_bad of equal length that differ "
            "before their last word (or one_prefix_* fields)"
        )
    k = diff[-1]
    return SuiteItem(
        suite,
        index,
        tuple(good_s[: k + 1]),
        (good_s[k + 1],),
        (bad_s[k + 1],),
        prefix_bad=tuple(bad_s[: k + 1]),
        sentence_good=tuple(good_s),
        sentence_bad=tuple(bad_s),
    )
