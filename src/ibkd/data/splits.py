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

from ibkd.data.linzen import AgreementRow, ReadResult, read_linzen, write_linzen
from ibkd.errors import IbkdError

SPLIT_NAMES = ("train", "valid", "test")
REFLECT_SEED = 42
REFLECT_FRACTIONS = (0.10, 0.01)  # train, valid; the rest is test


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


def write_splits(splits: Splits, folder: str | os.PathLike) -> dict[str, Path]:
    """Write train/valid/test.tsv.gz into `folder` (each file atomically)."""
    folder = Path(folder)
    out = {}
    for name, rows in splits.items():
        out[name] = folder / f"{name}.tsv.gz"
        write_linzen(out[name], rows)
    return out
