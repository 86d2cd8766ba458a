"""Wording of what ibkd prints: a count with its noun in the right number."""

from __future__ import annotations


def count(n: int | float, noun: str, plural: str | None = None, *, sep: str = ",") -> str:
    """`n` and `noun`, the noun plural unless `n` is exactly 1: `count(1, "epoch")` is
    "1 epoch", `count(2, "epoch")` "2 epochs", `count(1200, "row")` "1,200 rows". `plural`:
    the plural form where it is not the noun + "s" (`count(2, "entry", "entries")`); `sep`:
    the thousands separator ("" for none)."""
    number = f"{n:{sep}}" if isinstance(n, int) and sep else str(n)
    return f"{number} {noun if n == 1 else plural or noun + 's'}"
