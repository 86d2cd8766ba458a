"""A Linzen-format TSV as a suite: each row is an item whose correct verb is the row's verb
(its wrong form is left to the evaluator's inflector; the number is the row's verb_pos)."""

from __future__ import annotations

from pathlib import Path

from ibkd.data.linzen import read_linzen
from ibkd.data.suites.item import SuiteItem


def read(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
    """Items of a Linzen TSV (bad rows raise, or are skipped, as in `read_linzen`)."""
    name = path.name.split(".")[0]
    items = []
    for i, row in enumerate(read_linzen(path, skip_bad_rows=skip_bad_rows).rows):
        tokens = tuple(row.tokens)
        items.append(SuiteItem(
            name, i, tokens[: row.verb_index - 1], (tokens[row.verb_index - 1],), None,
            number=row.verb_pos, n_attractors=row.n_diff_intervening, sentence_good=tokens,
        ))  # fmt: skip
    return items
