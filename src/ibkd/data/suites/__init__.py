"""Targeted agreement test suites, read into one kind of item (`SuiteItem`) that models are
scored on; one reader per family:

- `linzen`: a Linzen-format TSV (data/suites/linzen.py);
- `colorlessgreen` (Gulordava et al. 2018): the Linzen test set and the nonce set
  (data/suites/colorlessgreen.py);
- `blimp` (Warstadt et al. 2020): all 67 paradigms (data/suites/blimp.py);
- `marvin-linzen` (Marvin & Linzen 2018) in the CLAMS layout (data/suites/marvin_linzen.py).

A suite is given by path (format from the name, or `fmt`) or by name (`NAMES`: the shipped
`marvin-linzen`, and `linzen-test`, `gulordava-nonce`, `blimp`, fetched once into the cache).
`vocabulary.map_suite` maps a suite's words into a model's vocabulary as its training data did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ibkd.data.suites import blimp, colorlessgreen, linzen, marvin_linzen
from ibkd.data.suites.item import SENTENCE, TARGET, SuiteItem, normalize_tokens, ptb_tokenize
from ibkd.data.suites.named import NAMES, resolve
from ibkd.errors import IbkdError

READERS = {
    "linzen": linzen.read,
    "colorlessgreen": colorlessgreen.read,
    "blimp": blimp.read,
    "marvin-linzen": marvin_linzen.read,
}
FORMATS = tuple(READERS)
SUITE_SUFFIXES = (".tsv", ".txt", ".jsonl", ".json", ".text", ".gold", ".tab")
"""The built-in formats; `formats()` adds the registered ones."""
SUFFIXES: dict[str, tuple[str, ...]] = {}
"""Registered formats' file-name endings (lower case) that `detect_format` recognises."""

Reader = Callable[[Path, bool], "list[SuiteItem]"]
"""A suite reader: (path, skip_bad_rows) -> the suite's items, in order; an IbkdError naming
the file and line for a bad line unless `skip_bad_rows`."""


def register_format(name: str, read: Reader, *, suffixes: tuple[str, ...] = ()) -> Reader:
    """Register suite format `name`, read by `read(path, skip_bad_rows)`: `ibkd evaluate
    --format NAME` offers it, `read_suite` reads with it, and a path ending in one of
    `suffixes` (e.g. `(".csv",)`) is detected as it. Language models compare its items'
    sentence pairs as whole sentences (`ibkd.data.suites.source.LM_COMPARISON`'s default); items
    without a pair are scored at their target. Returns `read`. Raises `ValueError` for a name
    registered already."""
    if name in READERS:
        raise ValueError(f"suite format {name!r} is registered already")
    READERS[name] = read
    SUFFIXES[name] = tuple(s.lower() for s in suffixes)
    return read


def unregister_format(name: str) -> None:
    """Remove a registered suite format (tests that register one clean up with it); the
    built-in formats stay."""
    if name not in FORMATS:
        READERS.pop(name, None)
        SUFFIXES.pop(name, None)


def formats() -> tuple[str, ...]:
    """Every suite format, the built-in ones first, then the registered ones in order: the
    choices of `ibkd evaluate --format`."""
    return tuple(READERS)


__all__ = [
    "FORMATS", "NAMES", "SENTENCE", "TARGET", "SuiteItem", "detect_format", "normalize_tokens",
    "ptb_tokenize", "read_suite", "suite_name", "formats", "register_format", "unregister_format",
]  # fmt: skip


def detect_format(path: Path) -> str:
    """The format a path's name (or a folder's content) suggests; `linzen` by default. A path
    that is the stem of NAME.text + NAME.gold files is `colorlessgreen`; a name ending in a
    registered format's suffix is that format."""
    lower = path.name.lower()
    for fmt, endings in SUFFIXES.items():
        if endings and lower.endswith(endings):
            return fmt
    if _is_colorlessgreen_stem(path):
        return "colorlessgreen"
    if path.is_dir():
        if (path / "en_evalset").is_dir() or any(path.glob("*.txt*")):
            return "marvin-linzen"
        if any(path.glob("*.jsonl")):
            return "blimp"
        raise IbkdError(f"{path}: a folder with no suite files (.jsonl, or CLAMS NAME.txt)")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json")):
        return "blimp"
    if name.endswith((".text", ".gold", ".tab")):
        return "colorlessgreen"
    if name.endswith((".txt", ".txt.gz")):
        return "marvin-linzen"
    return "linzen"


def _is_colorlessgreen_stem(path: Path) -> bool:
    return not path.exists() and Path(f"{path}.gold").is_file()


def suite_name(suite: str | os.PathLike) -> str:
    """A short name for results (`RUN/suites/NAME.*`): the suite's name, or its file name
    without its suite suffix (`.tsv`, `.gold`, ... and `.gz`) and leading dots, up to the first
    dot (`.hidden.tsv` -> `hidden`, `subj_agr.gold` -> `subj_agr`). IbkdError when no name is
    left (`.tsv`, `..tsv`)."""
    if str(suite) in NAMES:
        return str(suite)
    name = Path(suite).name
    for suffix in (".gz", *SUITE_SUFFIXES):
        name = name.removesuffix(suffix)
    name = name.lstrip(".").split(".")[0]
    if not name:
        raise IbkdError(
            f"--suite {suite}: its file name gives no name to save the results under "
            "(RUN/suites/NAME.json); rename the file"
        )
    return name


def read_suite(
    suite: str | os.PathLike, fmt: str | None = None, *, skip_bad_rows: bool = False
) -> list[SuiteItem]:
    """Read a test suite: a named one (`NAMES`, fetched when needed) or a path (format guessed
    from the name when `fmt` is None). A bad line raises an IbkdError naming the file and line,
    or, with `skip_bad_rows`, is skipped."""
    if fmt is not None and fmt not in READERS:
        raise IbkdError(f"--format {fmt!r}: expected one of {', '.join(formats())}")
    if str(suite) in NAMES:
        path, fmt = resolve(str(suite))
    else:
        path = Path(suite)
        if not path.exists() and not _is_colorlessgreen_stem(path):
            raise IbkdError(
                f"--suite {suite}: no such file or folder, and not a suite name "
                f"({', '.join(NAMES)})"
            )
    fmt = fmt or detect_format(path)
    if fmt == "blimp" and path.is_dir():
        return [it for f in sorted(path.glob("*.jsonl")) for it in blimp.read(f, skip_bad_rows)]
    return READERS[fmt](path, skip_bad_rows)
