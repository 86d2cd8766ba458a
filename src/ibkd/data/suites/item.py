"""The one kind of item every suite is read into, the normalisation of raw English to the
training data's style, and per-line error handling shared by the readers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ibkd.data.verbs import irregular_number, to_plural, to_singular
from ibkd.errors import BadRowError

TARGET, SENTENCE = "target", "sentence"  # SuiteItem.kind


@dataclass(frozen=True)
class SuiteItem:
    """One minimal pair: after `prefix`, `good` is right and `bad` is wrong.

    `suite` is the group the item is reported under (the construction: a Marvin & Linzen file
    name, a BLiMP paradigm UID, a file's name). `prefix_bad` differs from `prefix` only where the
    suite varies the subject instead of the verb (BLiMP two-prefix paradigms). `bad` is None
    where the suite gives only the correct form (Linzen format). `number` is the correct form's
    number (VBZ or VBP) where it is known. `n_attractors`: intervening nouns of the other number
    than the subject, where the suite says. `sentence_good` / `sentence_bad`: the whole
    sentences (for whole-sentence LM scoring), where the suite has them.

    `kind` is "target" when the pair is a present-tense verb's number at one position (scorable
    by the classification setup as well) and "sentence" when it is only a pair of sentences
    (LM only: island effects, NPIs, reflexives...)."""

    suite: str
    index: int
    prefix: tuple[str, ...]
    good: tuple[str, ...]
    bad: tuple[str, ...] | None
    prefix_bad: tuple[str, ...] | None = None
    number: str | None = None
    n_attractors: int | None = None
    sentence_good: tuple[str, ...] | None = None
    sentence_bad: tuple[str, ...] | None = None
    kind: str = TARGET


_CLITIC = re.compile(r"(?i)(n't|'s|'re|'ve|'ll|'d|'m)$")
_PIECES = re.compile(r"\d[\d.,:/]*\d(?![\w-])|[\w'-]+|[^\w\s]")
_NUMBER = re.compile(r"[\d.,:/-]*\d[\d.,:/-]*")
KEPT_TOKENS = frozenset({"<unk>"})  # placeholders that pass through normalisation whole


def ptb_tokenize(text: str) -> list[str]:
    """Raw English -> tokens in the style of the shipped PTB data: lower-cased, clitics split
    (`is n't`, `company 's`), punctuation dropped, numbers as `N`."""
    out = []
    for piece in _PIECES.findall(text.lower()):
        if not re.search(r"\w", piece):
            continue  # punctuation
        piece = piece.strip("'-") if not _CLITIC.search(piece) else piece
        m = _CLITIC.search(piece)
        if m and m.start() > 0:
            out.extend([piece[: m.start()], piece[m.start() :]])
        elif piece:
            out.append("N" if _NUMBER.fullmatch(piece) else piece)
    return out


def normalize_tokens(tokens: list[str] | tuple[str, ...]) -> list[str]:
    """Already tokenised text (e.g. `The dog does n't bark .`) in the PTB style, token by token
    (`ptb_tokenize`); `<unk>` is kept whole and `<eos>` dropped."""
    out: list[str] = []
    for t in tokens:
        if t in KEPT_TOKENS:
            out.append(t)
        elif t != "<eos>":
            out.extend(ptb_tokenize(t))
    return out


def one_word(text: str, what: str) -> str:
    """`text` as exactly one normalised token; ValueError naming `what` otherwise."""
    words = ptb_tokenize(text)
    if len(words) != 1:
        raise ValueError(f"{what} {text!r} is {len(words)} words once normalised, expected one")
    return words[0]


def pair_number(good: str, bad: str) -> str | None:
    """The number of `good` when `good`/`bad` are a singular and a plural verb form: the two
    present-tense forms of one verb (VBZ for `laughs`/`laugh`, VBP for `are`/`is`), or two
    irregular forms of opposite number (BLiMP's `is`/`were`); None otherwise."""
    if to_plural(good) == bad and good != bad:
        return "VBZ"
    if to_singular(good) == bad or to_plural(bad) == good and good != bad:
        return "VBP"
    numbers = irregular_number(good), irregular_number(bad)
    if None not in numbers and numbers[0] != numbers[1]:
        return numbers[0]
    return None


@dataclass
class LineErrors:
    """Per-line problems of one suite file: raise at the first (naming file and line) unless
    `skip_bad_rows`, then count them. `skipped` keeps the first few messages."""

    path: Path
    skip_bad_rows: bool
    n_skipped: int = 0
    skipped: list[str] = field(default_factory=list)

    def bad(self, lineno: int, message: str) -> None:
        """Report a bad line: BadRowError naming file and line, or (skipping) count it."""
        if not self.skip_bad_rows:
            raise BadRowError(f"{self.path}:{lineno}: {message}")
        self.n_skipped += 1
        if len(self.skipped) < 5:
            self.skipped.append(f"line {lineno}: {message}")
