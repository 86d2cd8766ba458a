"""One agreement data set from several corpora, each corpus's own split kept.

Each part is a folder of Linzen files named by split (`train`, `valid`, `test`, `.tsv` or
`.tsv.gz`), or `default` (the shipped PTB data). A part may lack a split (UD English EWT gives
only dev and test); every split of the result is the concatenation, in the order the parts are
given, of the parts' rows of that split. A row is never moved from one split to another, so a
sentence of a corpus's test split is never trained on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ibkd.data.linzen import AgreementRow, read_linzen
from ibkd.data.splits import SPLIT_NAMES, Splits, default_dir
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
    if not name or not folder:
        raise IbkdError(f"part {spec!r}: expected NAME=FOLDER or FOLDER")
    return name, folder


def read_part(name: str, folder: str | os.PathLike) -> Part:
    """The split files of one part. Raises IbkdError when the folder does not exist or holds
    none of train/valid/test."""
    path = default_dir() if str(folder) == "default" else Path(folder)
    if not path.is_dir():
        raise IbkdError(f"part {name}: {folder} is not a folder (expected train/valid/test files)")
    files = {}
    for split in SPLIT_NAMES:
        found = [p for p in (path / f"{split}.tsv.gz", path / f"{split}.tsv") if p.is_file()]
        if found:
            files[split] = found[0]
    if not files:
        raise IbkdError(
            f"part {name}: {path} holds no train/valid/test file (NAME.tsv or NAME.tsv.gz)"
        )
    rows = {s: read_linzen(files[s]).rows if s in files else [] for s in SPLIT_NAMES}
    return Part(name, path, rows)


def merge(parts: list[Part]) -> Splits:
    """The parts concatenated split by split (train with train, valid with valid, test with
    test), in the given order. Raises IbkdError when two parts share a name or the result has
    an empty split."""
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        raise IbkdError(f"parts {', '.join(names)}: two parts have the same name")
    merged = {s: [r for p in parts for r in p.rows[s]] for s in SPLIT_NAMES}
    empty = [s for s in SPLIT_NAMES if not merged[s]]
    if empty:
        raise IbkdError(f"merged data has no {', '.join(empty)} rows: no part has that split")
    source = " + ".join(f"{p.name} ({p.path})" for p in parts)
    return Splits(*(merged[s] for s in SPLIT_NAMES), source=f"merged: {source}")
