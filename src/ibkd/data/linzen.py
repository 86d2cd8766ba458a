"""The agreement record and the 18-column TSV of Linzen, Dupoux & Goldberg (2016).

One row is one subject-verb dependency. Indices are 1-based token positions in `sentence`;
`distance` = verb_index - subj_index; `n_intervening` counts the nouns (NN/NNS) strictly between
subject and verb and `n_diff_intervening` those of the other number (the attractors).

Linzen wrote the file with Python's `csv` module (tab delimiter, minimal quoting), so a field
holding a double quote is quoted; this module reads and writes that dialect.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ibkd.errors import BadRowError, IbkdError
from ibkd.files import atomic_write, read_lines
from ibkd.text import count

COLUMNS = (
    "sentence", "orig_sentence", "pos_sentence", "subj", "verb", "subj_pos", "has_rel",
    "has_nsubj", "verb_pos", "subj_index", "verb_index", "n_intervening", "last_intervening",
    "n_diff_intervening", "distance", "max_depth", "all_nouns", "nouns_up_to_verb",
)  # fmt: skip
VERB_POS = ("VBZ", "VBP")  # singular, plural: the classification labels 0 and 1
_BOOLS = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False}


@dataclass(slots=True)
class AgreementRow:
    """One subject-verb dependency, with every column of the Linzen file.

    `sentence` is the model input (infrequent words replaced by their POS tag); its tokens are
    `tokens`. `verb_index` and `subj_index` are 1-based positions in it.
    """

    sentence: str
    orig_sentence: str
    pos_sentence: str
    subj: str
    verb: str
    subj_pos: str
    has_rel: bool
    has_nsubj: bool
    verb_pos: str
    subj_index: int
    verb_index: int
    n_intervening: int
    last_intervening: str
    n_diff_intervening: int
    distance: int
    max_depth: int
    all_nouns: str
    nouns_up_to_verb: str

    @property
    def tokens(self) -> list[str]:
        """The model input's tokens (`sentence` split on single spaces)."""
        return self.sentence.split(" ")

    @property
    def label(self) -> int:
        """The verb's number as a class: VBZ (singular) = 0, VBP (plural) = 1."""
        return VERB_POS.index(self.verb_pos)

    @property
    def all_attractors(self) -> bool:
        """True when every intervening noun is an attractor (the A-accuracy population)."""
        return self.n_intervening == self.n_diff_intervening


@dataclass
class ReadResult:
    """Rows read from one file, and what `skip_bad_rows` left out."""

    path: Path
    rows: list[AgreementRow]
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)  # the first few "line N: reason"

    def skipped_summary(self) -> str:
        """One line: rows read and, where any, rows skipped with the first reasons."""
        if not self.n_skipped:
            return f"{self.path}: read {count(len(self.rows), 'row')}"
        return (
            f"{self.path}: read {count(len(self.rows), 'row')}, skipped "
            f"{count(self.n_skipped, 'bad row')}; "
            f"first: {'; '.join(self.skipped)}"
        )


MAX_SKIP_EXAMPLES = 5


class _BadRow(ValueError):
    pass


def _int(fields: list[str], i: int) -> int:
    value = fields[i]
    try:
        return int(value)
    except ValueError:
        raise _BadRow(f"column {COLUMNS[i]!r} is {value!r}, expected an integer") from None


def _bool(fields: list[str], i: int) -> bool:
    try:
        return _BOOLS[fields[i]]
    except KeyError:
        raise _BadRow(f"column {COLUMNS[i]!r} is {fields[i]!r}, expected True or False") from None


def _parse(fields: list[str]) -> AgreementRow:
    if len(fields) != len(COLUMNS):
        raise _BadRow(f"has {len(fields)} tab-separated columns, expected {len(COLUMNS)}")
    sentence, orig, pos = fields[0], fields[1], fields[2]
    n_tokens = sentence.count(" ") + 1
    subj_index, verb_index = _int(fields, 9), _int(fields, 10)
    for name, value in (("subj_index", subj_index), ("verb_index", verb_index)):
        if not 1 <= value <= n_tokens:
            raise _BadRow(
                f"{name} {value} is outside the sentence, expected 1..{n_tokens} "
                "(1-based token positions)"
            )
    verb_pos = fields[8]
    if verb_pos not in VERB_POS:
        raise _BadRow(f"verb_pos is {verb_pos!r}, expected VBZ or VBP")
    for name, text in (("orig_sentence", orig), ("pos_sentence", pos)):
        if text.count(" ") + 1 != n_tokens:
            raise _BadRow(
                f"{name} has {text.count(' ') + 1} tokens, expected {n_tokens} as in sentence"
            )
    n_intervening, n_diff, distance = _int(fields, 11), _int(fields, 13), _int(fields, 14)
    if distance != verb_index - subj_index:
        raise _BadRow(
            f"distance {distance} differs from verb_index - subj_index = {verb_index - subj_index}"
        )
    if not 0 <= n_diff <= n_intervening:
        raise _BadRow(
            f"n_diff_intervening {n_diff} is not within 0..n_intervening ({n_intervening})"
        )
    return AgreementRow(
        sentence, orig, pos, fields[3], fields[4], fields[5], _bool(fields, 6),
        _bool(fields, 7), verb_pos, subj_index, verb_index, n_intervening, fields[12], n_diff,
        distance, _int(fields, 15), fields[16], fields[17],
    )  # fmt: skip


def _split(line: str) -> list[str]:
    if '"' not in line:
        return line.split("\t")
    return next(csv.reader([line], delimiter="\t"))


def read_linzen(path: str | os.PathLike, *, skip_bad_rows: bool = False) -> ReadResult:
    """Read a Linzen-format TSV (plain or gzipped): a header row with the 18 column names,
    in any order, then one row per dependency.

    A bad row raises a BadRowError naming the file and line; with `skip_bad_rows` it is skipped
    and counted instead. Problems with the file as a whole (empty, no header, not UTF-8 text)
    always raise.
    """
    path = Path(path)
    # Millions of small objects: the cyclic GC would rescan them all over and over while they
    # are created (half of the time on a paper-sized file); none of them forms a cycle.
    with _gc_paused():
        return _read(path, skip_bad_rows)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read(path: Path, skip_bad_rows: bool) -> ReadResult:
    lines = read_lines(path)
    header = next(lines, None)
    if header is None:
        raise IbkdError(
            f"{path}: the file is empty, expected a header row with the columns "
            f"{', '.join(COLUMNS)}"
        )
    order = _column_order(path, header[1])
    rows: list[AgreementRow] = []
    result = ReadResult(path, rows)
    append = rows.append
    for lineno, line in lines:
        if not line:
            continue
        fields = _split(line)
        if order is not None and len(fields) == len(COLUMNS):
            fields = [fields[i] for i in order]
        try:
            append(_parse(fields))
        except _BadRow as e:
            if not skip_bad_rows:
                raise BadRowError(f"{path}:{lineno}: {e}") from None
            result.n_skipped += 1
            if len(result.skipped) < MAX_SKIP_EXAMPLES:
                result.skipped.append(f"line {lineno}: {e}")
    return result


def _column_order(path: Path, header: str) -> list[int] | None:
    """Where each of COLUMNS sits in the file (None: the canonical order)."""
    names = _split(header)
    if tuple(names) == COLUMNS:
        return None
    duplicated = sorted({n for n in names if n in COLUMNS and names.count(n) > 1})
    if duplicated:
        raise IbkdError(
            f"{path}:1: duplicate column {', '.join(map(repr, duplicated))} in the header row "
            "(expected each of the 18 Linzen columns once)"
        )
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        what = "the header row" if len(missing) < len(COLUMNS) else "a header row"
        raise IbkdError(
            f"{path}:1: expected {what} with the 18 Linzen columns ({', '.join(COLUMNS)}); "
            f"missing: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
        )
    if len(names) != len(COLUMNS):
        extra = sorted(set(names) - set(COLUMNS))
        raise IbkdError(
            f"{path}:1: unexpected header columns {extra}, expected exactly the 18 Linzen columns"
        )
    return [names.index(c) for c in COLUMNS]


def _format(value: object) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"a Linzen field cannot hold a line break: {text!r}")
    if '"' in text or "\t" in text:  # csv's minimal quoting, as Linzen's writer did
        return '"' + text.replace('"', '""') + '"'
    return text


def write_rows(f: IO[str], rows: Iterable[AgreementRow]) -> int:
    """Write the header and `rows` to an open text stream in the Linzen dialect; returns the
    number of rows. A field holding a line break raises ValueError."""
    n = 0
    f.write("\t".join(COLUMNS) + "\n")
    for row in rows:
        f.write("\t".join(_format(getattr(row, c)) for c in COLUMNS) + "\n")
        n += 1
    return n


def write_linzen(path: str | os.PathLike, rows: Iterable[AgreementRow]) -> int:
    """Write rows as a Linzen-format TSV (gzipped when the name ends in .gz), atomically.
    Returns the number of rows written."""
    with atomic_write(path) as f:
        return write_rows(f, rows)
