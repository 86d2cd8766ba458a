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
from ibkd.files import atomic_write_all, check_output

SPLIT_NAMES = ("train", "valid", "test")
REFLECT_SEED = 42
REFLECT_FRACTIONS = (0.10, 0.01)  # train, valid; the rest is test
VOCAB_FILE = "vocab.json"


@dataclass
class Splits:
    train: list[AgreementRow]
    valid: list[AgreementRow]
    test: list[AgreementRow]
    source: str  # where the rows came from and how they were split

    def items(self) -> list[tuple[str, list[AgreementRow]]]:
        return [(name, getattr(self, name)) for name in SPLIT_NAMES]


def split_rows(
    rows: list[AgreementRow], *, seed: int = REFLECT_SEED,
    fractions: tuple[float, float] = REFLECT_FRACTIONS, source: str = "",
) -> Splits:  # fmt: skip
    """Shuffle with numpy's legacy generator seeded `seed` (as Reflect's `np.random.seed(42);
    np.random.shuffle(data)`), then cut int(n * train) train rows, int(n * valid) valid rows,
    and keep the rest for test."""
    train_frac, valid_frac = fractions
    if train_frac <= 0 or valid_frac < 0 or train_frac + valid_frac >= 1:
        raise IbkdError(
            f"split fractions train={train_frac}, valid={valid_frac}: expected "
            "train > 0, valid >= 0 and train + valid < 1 (the rest is test)"
        )
    order = np.random.RandomState(seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    n_train, n_valid = int(len(rows) * train_frac), int(len(rows) * valid_frac)
    return Splits(
        shuffled[:n_train],
        shuffled[n_train : n_train + n_valid],
        shuffled[n_train + n_valid :],
        f"{source} split with seed {seed}: {train_frac:g} train / {valid_frac:g} valid / rest test",
    )


def default_dir() -> Path:
    """The folder of the shipped default data set."""
    return Path(str(resources.files("ibkd.data") / "default"))


def split_files(folder: Path) -> dict[str, Path] | None:
    """The train/valid/test files of a data folder, or None when it has none of them."""
    found = {}
    for name in SPLIT_NAMES:
        candidates = [folder / f"{name}.tsv.gz", folder / f"{name}.tsv"]
        existing = [c for c in candidates if c.is_file()]
        if existing:
            found[name] = existing[0]
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
    (split with `seed` and `fractions`). Each file's ReadResult is appended to `reports`."""
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
        return Splits(*(results[n].rows for n in SPLIT_NAMES), source=f"{label} (given splits)")
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
    otherwise sit beside, are removed. Returns {name: path} for the splits (and "vocab")."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise IbkdError(f"--out {folder}: is a file, expected a folder for the splits")
    existing = _data_files(folder) if folder.is_dir() else []
    if existing and not force:
        raise IbkdError(
            f"--out {folder}: holds data already ({', '.join(p.name for p in existing)}); "
            "pass --force to replace it"
        )
    out = {name: folder / f"{name}.tsv.gz" for name in SPLIT_NAMES}
    if vocab is not None:
        out["vocab"] = folder / VOCAB_FILE
    for path in out.values():
        check_output(path, "--out", force=True)
    with atomic_write_all(list(out.values())) as handles:
        for (_, rows), f in zip(splits.items(), handles):
            write_rows(f, rows)
        if vocab is not None:
            vocab.write(handles[-1])
    for name in SPLIT_NAMES:  # stale plain files would be read instead of nothing, or beside
        (folder / f"{name}.tsv").unlink(missing_ok=True)
    return out
