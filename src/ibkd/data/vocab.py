"""The word vocabulary: specials first, then the training split's words by frequency.

Saved as JSON with each run; a teacher and its student must share it (`fingerprint`).

A word outside the vocabulary is `<unk>`, or, in a vocabulary built with unknown-word
signatures (`build_text_vocab(signatures=True)`), the signature of its suffix: `<unk-s>`,
`<unk-ed>`, `<unk-ing>`, `<unk-ly>`, else `<unk>` (`unk_signature`; the suffix classes of the
Berkeley parser's unknown words, Petrov et al. 2006, as RNNG's language models map rare words,
Dyer et al. 2016). A rare verb keeps its number that way: `admires` is `<unk-s>`, `admire` a
word of its own or `<unk>`, so an agreement item with a rare verb can still be scored. The
vocabulary says which convention it follows (`has_signatures`: it lists the signature tokens).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO

from ibkd.data.linzen import AgreementRow
from ibkd.errors import IbkdError
from ibkd.files import atomic_write

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = range(4)
# unknown-word signatures (module note): suffix -> token, tried in this order
SIGNATURES = (("ing", "<unk-ing>"), ("ed", "<unk-ed>"), ("ly", "<unk-ly>"), ("s", "<unk-s>"))
SIGNATURE_TOKENS = tuple(token for _, token in SIGNATURES)
# the tokens that stand for a class of words outside the vocabulary, not for one word
CLASS_TOKENS = (SPECIALS[UNK], *SIGNATURE_TOKENS)


def unk_signature(word: str) -> str:
    """The signature token of a word outside a vocabulary (module note): the first suffix of
    `SIGNATURES` the (lower-cased) word ends with, after at least two other letters (`-s` not
    after `s`, `u` or `i`, so that `class`, `campus` or `analysis` is no plural), else `<unk>`.
    A suffix class, not a morphological analysis: `bring` is `<unk-ing>`, `news` `<unk-s>`."""
    word = word.lower()
    for suffix, token in SIGNATURES:
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 2 and stem.isalpha():
            if suffix == "s" and stem.endswith(("s", "u", "i")):
                break  # class, campus, analysis: not a plural or a 3rd person verb form
            return token
    return SPECIALS[UNK]


class Vocab:
    """Token <-> id. Ids 0-3 are `<pad>`, `<unk>`, `<bos>`, `<eos>`; unknown words map to
    `<unk>` (PTB's own `<unk>` placeholder is that same entry), or to their signature when
    the vocabulary has signatures (module note)."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary lists each token once")
        self.has_signatures = all(t in self.stoi for t in SIGNATURE_TOKENS)
        # ids of the tokens that stand for a class of unknown words (`CLASS_TOKENS`)
        self.class_ids = frozenset(self.stoi[t] for t in CLASS_TOKENS if t in self.stoi)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def unknown_token(self, word: str) -> str:
        """The token that `word`, outside the vocabulary, is written as: its signature in a
        vocabulary with signatures, else `<unk>`."""
        return unk_signature(word) if self.has_signatures else SPECIALS[UNK]

    def id_of(self, word: str) -> int:
        """The id of `word`, or of `unknown_token(word)` when it is not in the vocabulary."""
        i = self.stoi.get(word)
        return i if i is not None else self.stoi[self.unknown_token(word)]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids; a token outside the vocabulary is `<unk>` (1), or its signature."""
        if self.has_signatures:
            return [self.id_of(t) for t in tokens]
        get = self.stoi.get
        return [get(t, UNK) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ids."""
        return [self.itos[i] for i in ids]

    @property
    def fingerprint(self) -> str:
        """A short hash of the token list: equal fingerprints, same vocabulary."""
        return hashlib.sha256("\n".join(self.itos).encode()).hexdigest()[:16]

    def write(self, f: IO[str]) -> None:
        """Write the vocabulary as JSON (`specials`, `tokens`, `fingerprint`) to a text stream."""
        json.dump(
            {
                "specials": list(SPECIALS),
                "tokens": self.itos[len(SPECIALS) :],
                "fingerprint": self.fingerprint,
            },
            f,
            ensure_ascii=False,
            indent=0,
            allow_nan=False,
        )
        f.write("\n")

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to `path` as JSON, atomically (see `write`)."""
        with atomic_write(path) as f:
            self.write(f)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocab:
        """Read a vocabulary saved by `save`; IbkdError for a missing, malformed or edited
        file (its fingerprint must match its tokens)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            tokens = list(data["specials"]) + list(data["tokens"])
            vocab = cls(tokens)
        except FileNotFoundError:
            raise IbkdError(f"{path}: no such vocabulary file") from None
        except (ValueError, KeyError, TypeError) as e:
            raise IbkdError(
                f"{path}: not a vocabulary file ({e}); expected JSON with "
                "'specials' and 'tokens' lists"
            ) from None
        if data.get("fingerprint", vocab.fingerprint) != vocab.fingerprint:
            raise IbkdError(f"{path}: its fingerprint does not match its tokens (edited?)")
        return vocab


def build_vocab(
    rows: Iterable[AgreementRow], *, min_count: int = 1, max_size: int | None = None,
    signatures: bool = False,
) -> Vocab:  # fmt: skip
    """The vocabulary of the rows' `sentence` tokens (build it from the training split only):
    `build_text_vocab` of their token lists."""
    return build_text_vocab((row.tokens for row in rows), min_count=min_count,
                            max_size=max_size, signatures=signatures)  # fmt: skip


def build_text_vocab(
    sentences: Iterable[Sequence[str]], *, min_count: int = 1, max_size: int | None = None,
    signatures: bool = False,
) -> Vocab:  # fmt: skip
    """The vocabulary of training sentences (token lists): specials first (with `signatures`,
    the unknown-word signatures after them: module note), then words by descending frequency,
    ties alphabetically; words seen fewer than `min_count` times, and those beyond `max_size`
    entries (specials and signatures included), are left to `<unk>` (PTB's own `<unk>` is that
    entry) or to their signature."""
    first = list(SPECIALS) + (list(SIGNATURE_TOKENS) if signatures else [])
    counts: Counter[str] = Counter()
    for tokens in sentences:
        counts.update(tokens)
    words = sorted(
        (w for w, c in counts.items() if c >= min_count and w not in first),
        key=lambda w: (-counts[w], w),
    )
    if max_size is not None:
        words = words[: max(0, max_size - len(first))]
    return Vocab(first + words)
