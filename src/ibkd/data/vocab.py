"""The word vocabulary: specials first, then the training split's words by frequency.

Saved as JSON with each run; a teacher and its student must share it (`fingerprint`).
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


class Vocab:
    """Token <-> id. Ids 0-3 are `<pad>`, `<unk>`, `<bos>`, `<eos>`; unknown words map to
    `<unk>` (PTB's own `<unk>` placeholder is that same entry)."""

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}")
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("a vocabulary lists each token once")

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids; a token outside the vocabulary is `<unk>` (1)."""
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
    rows: Iterable[AgreementRow], *, min_count: int = 1, max_size: int | None = None
) -> Vocab:
    """The vocabulary of the rows' `sentence` tokens (build it from the training split only):
    `build_text_vocab` of their token lists."""
    return build_text_vocab((row.tokens for row in rows), min_count=min_count, max_size=max_size)


def build_text_vocab(
    sentences: Iterable[Sequence[str]], *, min_count: int = 1, max_size: int | None = None
) -> Vocab:
    """The vocabulary of training sentences (token lists): specials first, then words by
    descending frequency, ties alphabetically; words seen fewer than `min_count` times, and
    those beyond `max_size` entries, are left to `<unk>` (PTB's own `<unk>` is that entry)."""
    counts: Counter[str] = Counter()
    for tokens in sentences:
        counts.update(tokens)
    words = sorted(
        (w for w, c in counts.items() if c >= min_count and w not in SPECIALS),
        key=lambda w: (-counts[w], w),
    )
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIALS))]
    return Vocab(list(SPECIALS) + words)
