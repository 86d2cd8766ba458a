"""The transfer set: unlabelled inputs a teacher labels for its student.

For the classification setup, every prefix of the corpus that ends right before a present-tense
verb (VBZ/VBP, by the tagger), whether or not a subject was found for it, one per line with the
verb's tag: `prefix<TAB>verb_pos`. The tag is the number the verb shows, so it also serves as a
(silver) label where gold CE is used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ibkd.data.linzen import VERB_POS
from ibkd.errors import IbkdError
from ibkd.files import read_lines

HEADER = "prefix\tverb_pos"
# The unlabelled text pool a large transfer set is made from (`data/pool.py`): one sentence a
# line, the corpus it came from and its tokens as the parser should see them.
POOL_HEADER = "source\ttokens"


@dataclass(frozen=True)
class Prefix:
    """One transfer example: the tokens before a present-tense verb and the verb's tag."""

    tokens: tuple[str, ...]
    verb_pos: str

    @property
    def label(self) -> int:
        """The tag as a class: VBZ = 0, VBP = 1."""
        return VERB_POS.index(self.verb_pos)


def write_prefixes(f: IO[str], words: list[str], tags: list[str]) -> int:
    """Write the prefix before every VBZ/VBP of one sentence; returns how many."""
    n = 0
    for i, tag in enumerate(tags):
        if tag in VERB_POS and i > 0:
            f.write(" ".join(words[:i]) + "\t" + tag + "\n")
            n += 1
    return n


def read_transfer(path: str | os.PathLike) -> list[Prefix]:
    """The prefixes of a transfer file (header `prefix<TAB>verb_pos`, then one per line); a bad
    line raises an IbkdError naming the file and line."""
    path = Path(path)
    lines = read_lines(path)
    first = next(lines, None)
    if first is None or first[1] != HEADER:
        raise IbkdError(f"{path}:1: expected the header {HEADER!r} of a transfer file")
    out = []
    for lineno, line in lines:
        prefix, sep, tag = line.partition("\t")
        if not sep or not prefix.strip() or tag not in VERB_POS:
            raise IbkdError(f"{path}:{lineno}: expected `prefix<TAB>VBZ|VBP`, got {line[:60]!r}")
        out.append(Prefix(tuple(prefix.split(" ")), tag))
    return out


def pool_line(source: str, words: Sequence[str]) -> str:
    """One pool line (with its newline): `source<TAB>w1 w2 ...`."""
    return f"{source}\t{' '.join(words)}\n"


@dataclass(frozen=True)
class PoolSentence:
    """One pool sentence: the corpus it came from and its tokens."""

    source: str
    tokens: tuple[str, ...]


def read_pool(path: str | os.PathLike) -> Iterator[PoolSentence]:
    """The sentences of a pool file (header `source<TAB>tokens`); a bad line raises an
    IbkdError naming the file and line."""
    path = Path(path)
    lines = read_lines(path)
    first = next(lines, None)
    if first is None or first[1] != POOL_HEADER:
        raise IbkdError(f"{path}:1: expected the header {POOL_HEADER!r} of a pool file")
    for lineno, line in lines:
        source, sep, text = line.partition("\t")
        tokens = tuple(text.split(" "))
        if not sep or not source or not text or "" in tokens or "\t" in text:
            raise IbkdError(f"{path}:{lineno}: expected `source<TAB>tokens`, got {line[:60]!r}")
        yield PoolSentence(source, tokens)
