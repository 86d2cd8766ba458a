"""Train / valid / test splits of agreement rows: given by files, or drawn with a seed.

A data set is named by `default` (the one shipped in the package), a folder holding
`train`, `valid` and `test` Linzen files (`.tsv` or `.tsv.gz`), or one Linzen file, which is
split by a seeded permutation. The Reflect preset is Reflect's split of the full Linzen file:
numpy seed 42, 10% train, 1% valid, the remaining 89% test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ibkd.data.linzen import AgreementRow, ReadResult, read_linzen, write_rows
from ibkd.data.vocab import Vocab
from ibkd.errors import IbkdError
from ibkd.files import (
    atomic_write_all,
    check_output,
    gz_or_plain,
    locked_folder,
    no_space_error,
)

SPLIT_NAMES = ("train", "valid", "test")
REFLECT_SEED = 42
REFLECT_FRACTIONS = (0.10, 0.01)  # train, valid; the rest is test
VOCAB_FILE = "vocab.json"


@dataclass
class Splits:
    """The train / valid / test rows of a data set, and how they were made (`source`)."""

    train: list[AgreementRow]
    valid: list[AgreementRow]
    test: list[AgreementRow]
    source: str  # where the rows came from and how they were split

    def items(self) -> list[tuple[str, list[AgreementRow]]]:
        """[(name, rows)] in the order train, valid, test."""
        return [(name, getattr(self, name)) for name in SPLIT_NAMES]


MAX_SEED = 2**32 - 1  # numpy's legacy generator takes seeds 0 .. 2**32 - 1


def check_seed(seed: int, option: str = "--seed") -> int:
    """`seed` when numpy's legacy generator takes it (an integer in 0 .. 2**32 - 1); IbkdError
    naming `option` otherwise. Checked before anything is read or written."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise IbkdError(f"{option} {seed}: expected an integer from 0 to {MAX_SEED}")
    return seed


def by_sentence(rows: list[AgreementRow]) -> list[list[AgreementRow]]:
    """The rows grouped by their `sentence` (the model's input), groups in the order of their
    first row, rows in file order within a group. A sentence with several agreement
    dependencies has several rows; they belong to one split."""
    groups: dict[str, list[AgreementRow]] = {}
    for row in rows:
        groups.setdefault(row.sentence, []).append(row)
    return list(groups.values())


def split_rows(
    rows: list[AgreementRow], *, seed: int = REFLECT_SEED,
    fractions: tuple[float, float] = REFLECT_FRACTIONS, source: str = "",
) -> Splits:  # fmt: skip
    """Split by sentence: all rows of one sentence go to one split, so that no test sentence
    is trained on (a sentence with two dependencies gives two rows).

    The sentences (`by_sentence`) are shuffled with numpy's legacy generator seeded `seed`
    (as Reflect's `np.random.seed(42); np.random.shuffle(data)`); whole sentences then go to
    train until it holds at least int(n * train) of the n rows, then to valid until it holds
    at least int(n * valid) rows, and the rest to test. Where every sentence has one row this
    is Reflect's split exactly. Raises IbkdError for a bad seed or fractions, or a split that
    would be empty."""
    check_seed(seed)
    train_frac, valid_frac = fractions
    if train_frac <= 0 or valid_frac < 0 or train_frac + valid_frac >= 1:
        raise IbkdError(
            f"split fractions train={train_frac}, valid={valid_frac}: expected "
            "train > 0, valid >= 0 and train + valid < 1 (the rest is test)"
        )
    groups = by_sentence(rows)
    order = np.random.RandomState(seed).permutation(len(groups))
    targets = (int(len(rows) * train_frac), int(len(rows) * valid_frac))
    parts: list[list[AgreementRow]] = [[], [], []]
    part = 0
    for i in order:
        while part < 2 and len(parts[part]) >= targets[part]:
            part += 1
        parts[part].extend(groups[i])
    label = f"{source} split by sentence with seed {seed}"
    splits = Splits(*parts, f"{label}: {train_frac:g} train / {valid_frac:g} valid / rest test")
    check_not_empty(splits, f"{source or 'the rows'} ({len(rows):,} rows, {len(groups):,} "
                    f"sentences) split {train_frac:g} train / {valid_frac:g} valid")  # fmt: skip
    return splits


def check_not_empty(splits: Splits, what: str) -> None:
    """IbkdError naming `what` and the empty splits when any of train, valid, test has no
    row (a model cannot be trained, selected or tested on nothing)."""
    empty = [name for name, rows in splits.items() if not rows]
    if empty:
        raise IbkdError(
            f"{what}: the {', '.join(empty)} split{'s' if len(empty) > 1 else ''} would be "
            "empty; give more rows (or, splitting one file, larger fractions)"
        )


def default_dir() -> Path:
    """The folder of the shipped default data set."""
    return Path(str(resources.files("ibkd.data") / "default"))


def find_split_files(folder: Path) -> dict[str, Path]:
    """{split: file} for the train/valid/test files a folder holds (`NAME.tsv.gz` or
    `NAME.tsv`), possibly none. IbkdError when a split is there in both forms: neither may
    silently shadow the other."""
    found = {}
    for name in SPLIT_NAMES:
        existing = gz_or_plain(folder / f"{name}.tsv")
        if existing is not None:
            found[name] = existing
    return found


def split_files(folder: Path) -> dict[str, Path] | None:
    """The train/valid/test files of a data folder, or None when it has none of them.
    IbkdError when some are missing or one is there both plain and gzipped."""
    found = find_split_files(folder)
    if not found:
        return None
    missing = [n for n in SPLIT_NAMES if n not in found]
    if missing:
        raise IbkdError(
            f"{folder}: has {', '.join(found)} but no {', '.join(missing)} file "
            "(expected train, valid and test as NAME.tsv or NAME.tsv.gz)"
        )
    return found


def load_splits(
    data: str | os.PathLike = "default", *, seed: int = REFLECT_SEED,
    fractions: tuple[float, float] = REFLECT_FRACTIONS, skip_bad_rows: bool = False,
    reports: list[ReadResult] | None = None,
) -> Splits:  # fmt: skip
    """Load a data set: `default`, a folder with train/valid/test files, or one Linzen file
    (split with `seed` and `fractions`). Each file's ReadResult is appended to `reports`.
    IbkdError for a missing or ambiguous file, a bad row, seed or fractions, or an empty
    split."""
    path = default_dir() if str(data) == "default" else Path(data)
    if not path.exists():
        raise IbkdError(
            f"--data {data}: no such file or folder (expected `default`, a folder "
            "with train/valid/test Linzen files, or one Linzen .tsv/.tsv.gz file)"
        )
    if path.is_dir():
        files = split_files(path)
        if files is None:
            raise IbkdError(
                f"{path}: no train/valid/test files (expected train.tsv.gz, "
                "valid.tsv.gz, test.tsv.gz or the same without .gz)"
            )
        results = {name: read_linzen(f, skip_bad_rows=skip_bad_rows) for name, f in files.items()}
        if reports is not None:
            reports.extend(results.values())
        label = "default" if str(data) == "default" else str(path)
        splits = Splits(*(results[n].rows for n in SPLIT_NAMES), source=f"{label} (given splits)")
        check_not_empty(splits, str(path))
        return splits
    result = read_linzen(path, skip_bad_rows=skip_bad_rows)
    if reports is not None:
        reports.append(result)
    return split_rows(result.rows, seed=seed, fractions=fractions, source=str(path))


def _data_files(folder: Path) -> list[Path]:
    """The files of `folder` that make it a data folder (splits in either form, vocab.json)."""
    names = [f"{n}{ext}" for n in SPLIT_NAMES for ext in (".tsv.gz", ".tsv")] + [VOCAB_FILE]
    return [folder / n for n in names if (folder / n).exists()]


def write_splits(
    splits: Splits, folder: str | os.PathLike, vocab: Vocab | None = None, *, force: bool = False
) -> dict[str, Path]:
    """Write train/valid/test.tsv.gz (and `vocab.json` when `vocab` is given) into `folder`, all
    or nothing: every file goes to a temporary file first and all are renamed at the end.

    A folder that already holds splits or a vocabulary is refused unless `force`; with `force`
    the old files are replaced, and plain `NAME.tsv` splits, which the new `.tsv.gz` files would
    otherwise sit beside, are removed. The folder is locked while it is written (`.lock`,
    `files.locked_folder`): a second writer is refused, not mixed in. An empty split is refused
    before anything is written; a full disk is one IbkdError line, with no file half-written
    and no folder left behind that this call created. Returns {name: path} for the splits (and
    "vocab")."""
    folder = check_out_folder(folder, force)
    check_not_empty(splits, splits.source)
    out = {name: folder / f"{name}.tsv.gz" for name in SPLIT_NAMES}
    if vocab is not None:
        out["vocab"] = folder / VOCAB_FILE
    for path in out.values():
        check_output(path, "--out", force=True)
    with locked_folder(folder, "--out", "folder for the splits", keep_lock=False):
        _refuse_existing(folder, force)  # again under the lock: another writer may have been first
        with no_space_error(list(out.values())), atomic_write_all(list(out.values())) as handles:
            for (_, rows), f in zip(splits.items(), handles):
                write_rows(f, rows)
            if vocab is not None:
                vocab.write(handles[-1])
        for name in SPLIT_NAMES:  # stale plain files would be read instead of nothing, or beside
            (folder / f"{name}.tsv").unlink(missing_ok=True)
    return out


def check_out_folder(folder: str | os.PathLike, force: bool = False) -> Path:
    """Refuse `--out` for splits before anything is read: a file, or a folder that holds data
    already (unless `force`). Returns the folder's path."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise IbkdError(f"--out {folder}: is a file, expected a folder for the splits")
    _refuse_existing(folder, force)
    return folder


def _refuse_existing(folder: Path, force: bool) -> None:
    existing = _data_files(folder) if folder.is_dir() else []
    if existing and not force:
        raise IbkdError(
            f"--out {folder}: holds data already ({', '.join(p.name for p in existing)}); "
            "pass --force to replace it"
        )
