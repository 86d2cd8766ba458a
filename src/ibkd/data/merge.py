"""One agreement data set from several corpora, each corpus's own split kept.

Each part is a folder of Linzen files named by split (`train`, `valid`, `test`, `.tsv` or
`.tsv.gz`), or `default` (the shipped PTB data). A part may lack a split (UD English EWT gives
only dev and test); every split of the result is the concatenation, in the order the parts are
given, of the parts' rows of that split. A row is never moved from one split to another.

Parts may overlap (the same corpus given twice, a corpus and a subset of it): a row that an
earlier part gave in the same split is dropped, and a sentence found in two splits keeps only
the rows of its evaluation split (test before valid before train), so that no test or
validation sentence is trained on. What was dropped is counted (`MergeReport`) and said by the
command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ibkd.data.linzen import COLUMNS, AgreementRow, read_linzen
from ibkd.data.splits import SPLIT_NAMES, Splits, check_not_empty, default_dir, find_split_files
from ibkd.errors import IbkdError


@dataclass
class Part:
    """One corpus's rows by split (`rows[name]`, empty where the corpus has no such split)."""

    name: str
    path: Path
    rows: dict[str, list[AgreementRow]]


def parse_part(spec: str) -> tuple[str, str]:
    """`NAME=FOLDER` -> (NAME, FOLDER); a bare FOLDER is named by its last path component."""
    name, eq, folder = spec.partition("=")
    if not eq:
        folder = spec
        name = "ptb" if spec == "default" else Path(spec).name
    if not name.strip() or not folder.strip():  # a blank name or folder too
        raise IbkdError(f"part {spec!r}: expected NAME=FOLDER or FOLDER")
    return name, folder


def read_part(name: str, folder: str | os.PathLike) -> Part:
    """The split files of one part. Raises IbkdError when the folder does not exist or holds
    none of train/valid/test."""
    path = default_dir() if str(folder) == "default" else Path(folder)
    if not path.is_dir():
        raise IbkdError(f"part {name}: {folder} is not a folder (expected train/valid/test files)")
    files = find_split_files(path)
    if not files:
        raise IbkdError(
            f"part {name}: {path} holds no train/valid/test file (NAME.tsv or NAME.tsv.gz)"
        )
    rows = {s: read_linzen(files[s]).rows if s in files else [] for s in SPLIT_NAMES}
    return Part(name, path, rows)


@dataclass
class MergeReport:
    """What merging dropped: rows an earlier part gave in the same split
    (`duplicates[split]`), and rows of a sentence that an evaluation split also holds
    (`leaks[(split, kept_in)]`)."""

    duplicates: dict[str, int]
    leaks: dict[tuple[str, str], int]

    def lines(self) -> list[str]:
        """One line per kind of drop (none when nothing was dropped)."""
        out = [f"dropped {n:,} duplicate {s} rows (given by an earlier part)"
               for s, n in self.duplicates.items() if n]  # fmt: skip
        out += [f"dropped {n:,} {s} rows whose sentence is in {kept} (no {kept} sentence is "
                f"in {s})" for (s, kept), n in self.leaks.items() if n]  # fmt: skip
        return out


def _key(row: AgreementRow) -> tuple:
    return tuple(getattr(row, c) for c in COLUMNS)


def merge(parts: list[Part]) -> tuple[Splits, MergeReport]:
    """The parts concatenated split by split (train with train, valid with valid, test with
    test), in the given order. A row that an earlier part gave in the same split is dropped, and
    the rows of a sentence (the `sentence` column, the model's input) that a later split of
    train < valid < test holds are dropped from the earlier one (module note). Returns the
    splits and what was dropped. Raises IbkdError when two parts share a name or the result has
    an empty split."""
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise IbkdError(f"parts {', '.join(names)}: two parts have the same name")
    duplicates = dict.fromkeys(SPLIT_NAMES, 0)
    merged: dict[str, list[AgreementRow]] = {s: [] for s in SPLIT_NAMES}
    for split in SPLIT_NAMES:
        seen: set[tuple] = set()  # the rows of the parts before this one
        for part in parts:
            rows = part.rows[split]
            keys = [_key(r) for r in rows]
            kept = [r for r, k in zip(rows, keys) if k not in seen]
            duplicates[split] += len(rows) - len(kept)
            merged[split] += kept
            seen.update(keys)
    leaks: dict[tuple[str, str], int] = {}
    held: dict[str, str] = {}  # sentence -> the evaluation split that holds it
    for split in reversed(SPLIT_NAMES):  # test, valid, train
        kept = []
        for row in merged[split]:
            owner = held.get(row.sentence, split)
            if owner != split:
                leaks[(split, owner)] = leaks.get((split, owner), 0) + 1
            else:
                kept.append(row)
        for row in kept:
            held.setdefault(row.sentence, split)
        merged[split] = kept
    source = " + ".join(f"{p.name} ({p.path})" for p in parts)
    splits = Splits(*(merged[s] for s in SPLIT_NAMES), source=f"merged: {source}")
    empty = [s for s in SPLIT_NAMES if not merged[s]]
    if empty and not any(p.rows[s] for p in parts for s in empty):
        raise IbkdError(f"merged data has no {', '.join(empty)} rows: no part has that split")
    check_not_empty(splits, "merged data (after dropping sentences shared with test/valid)")
    return splits, MergeReport(duplicates, leaks)
