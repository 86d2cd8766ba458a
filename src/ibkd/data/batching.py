"""Agreement rows -> tensors for the two setups, and length-bucketed batches.

- classification: `<bos>` + the sentence up to (not including) the verb; label VBZ=0, VBP=1.
  The `<bos>` is the CLS token that a bidirectional Transformer reads at position 0.
- LM: input `<bos>` + sentence, target sentence + `<eos>`; the loss covers non-pad positions.
  The verb is predicted at input position verb_index - 1.

A split is stored as one right-padded int32 matrix plus lengths, so a batch is a slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ibkd.data.linzen import AgreementRow
from ibkd.data.vocab import BOS, EOS, PAD, Vocab


@dataclass
class Encoded:
    """One split, encoded. `tokens[i, :lengths[i]]` is example i's input; for the LM,
    `tokens[i, 1:lengths[i] + 1]` is its target (the matrix holds `<bos>` ... `<eos>`).
    `rows` are the agreement rows behind the examples (None for a training set extended with
    transfer prefixes, or of plain sentences). `text`: for an LM's validation or test rows,
    the held-out sentences its perplexity is measured on (None: the rows' own sentences)."""

    setup: str
    tokens: torch.Tensor  # [N, L] int32, right-padded with <pad> (0)
    lengths: torch.Tensor  # [N] int64: input lengths
    labels: torch.Tensor  # [N] int64: verb number (VBZ 0, VBP 1)
    verb_input_index: torch.Tensor  # [N] int64: input position that predicts / precedes the verb
    rows: list[AgreementRow] | None
    text: Encoded | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def meta(self) -> dict[str, np.ndarray]:
        """Per example: the label and what the metrics group by (distance, attractors)."""
        out = {"label": self.labels.numpy().copy()}
        if self.rows is not None:
            for key in ("distance", "n_intervening", "n_diff_intervening"):
                out[key] = np.array([getattr(r, key) for r in self.rows], dtype=np.int64)
        return out

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs [B, Lb], lengths [B], targets): targets are labels [B] (classification) or
        next tokens [B, Lb] with <pad> beyond each sentence (LM)."""
        lengths = self.lengths[index]
        width = int(lengths.max())
        rows = self.tokens[index]
        inputs = rows[:, :width].long()
        if self.setup == "cls":
            return inputs, lengths, self.labels[index]
        # the matrix holds <eos> right after each input: blank it out of the inputs
        inputs[torch.arange(width)[None, :] >= lengths[:, None]] = PAD
        return inputs, lengths, rows[:, 1 : width + 1].long()


@dataclass
class ImageSet:
    """Images with the same interface as `Encoded` (scenario 2, any image task): `lengths` are
    all 1, so the length-bucketed batches are plain shuffled batches."""

    images: torch.Tensor  # [N, C, H, W] float32 (MNIST: [N, 1, 28, 28] in [0, 1])
    labels: torch.Tensor  # [N] int64
    rows: None = None

    def __post_init__(self) -> None:
        self.lengths = torch.ones(len(self.labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def meta(self) -> dict[str, np.ndarray]:
        """Per example: the label ([N] int64)."""
        return {"label": self.labels.numpy().copy()}

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images [B, C, H, W], lengths [B] of ones, labels [B]) for the examples `index`."""
        return self.images[index], self.lengths[index], self.labels[index]


def pack(setup, seqs, lengths, labels, verb_input_index, rows) -> Encoded:
    """Id sequences -> one right-padded matrix and its per-example tensors (`lengths`,
    `labels`, `verb_input_index`: one int per sequence; `rows`: the rows behind them or None)."""
    width = max((len(s) for s in seqs), default=1)
    tokens = torch.full((len(seqs), width), PAD, dtype=torch.int32)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = torch.tensor(s, dtype=torch.int32)
    as_long = lambda v: torch.tensor(v, dtype=torch.long)  # noqa: E731
    return Encoded(
        setup, tokens, as_long(lengths), as_long(labels), as_long(verb_input_index), rows
    )


def encode(rows: list[AgreementRow], vocab: Vocab, setup: str) -> Encoded:
    """Rows -> one encoded split for `setup` ("cls": `<bos>` + the prefix before the verb,
    labelled by the verb's number; "lm": the whole sentence, the verb predicted at input
    position `verb_index - 1`). Words outside `vocab` are `<unk>`."""
    if setup == "cls":
        return encode_prefixes(
            [r.tokens[: r.verb_index - 1] for r in rows], [r.label for r in rows], vocab, rows
        )
    seqs = [[BOS] + vocab.encode(r.tokens) + [EOS] for r in rows]
    lengths = [len(s) - 1 for s in seqs]
    verb_input_index = [r.verb_index - 1 for r in rows]  # <bos> shifts the sentence by one
    return pack(setup, seqs, lengths, [r.label for r in rows], verb_input_index, rows)


def encode_sentences(sentences, vocab: Vocab) -> Encoded:
    """Plain sentences (token lists) -> an LM set without agreement rows: input `<bos>` +
    sentence, target sentence + `<eos>` (labels and verb positions 0, unused)."""
    seqs = [[BOS] + vocab.encode(s) + [EOS] for s in sentences]
    zeros = [0] * len(seqs)
    return pack("lm", seqs, [len(s) - 1 for s in seqs], zeros, zeros, None)


def encode_prefixes(prefixes, labels, vocab: Vocab, rows=None) -> Encoded:
    """Classification inputs: `<bos>` + each prefix; the last input token precedes the verb."""
    seqs = [[BOS] + vocab.encode(p) for p in prefixes]
    lengths = [len(s) for s in seqs]
    return pack("cls", seqs, lengths, labels, [n - 1 for n in lengths], rows)


def concat(a: Encoded, b: Encoded) -> Encoded:
    """Two encoded sets as one (the result keeps no rows)."""
    width = max(a.tokens.shape[1], b.tokens.shape[1])
    pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731
    return Encoded(
        a.setup,
        torch.cat([pad(a.tokens), pad(b.tokens)]),
        torch.cat([a.lengths, b.lengths]),
        torch.cat([a.labels, b.labels]),
        torch.cat([a.verb_input_index, b.verb_input_index]),
        None,
    )


def batches(
    lengths: torch.Tensor, batch_size: int, *, shuffle: bool, generator: torch.Generator | None,
    bucket: bool = True, pool: int = 50,
) -> list[torch.Tensor]:  # fmt: skip
    """Index batches. Training (`shuffle`): a seeded permutation, cut into pools of `pool`
    batches; within a pool examples are sorted by length (bucketing) before being cut into
    batches, and the batch order is shuffled. Evaluation: sorted by length, in order."""
    n = len(lengths)
    if n == 0:
        return []
    if not shuffle:
        order = torch.argsort(lengths, stable=True) if bucket else torch.arange(n)
        return list(order.split(batch_size))
    order = torch.randperm(n, generator=generator)
    if bucket:
        chunks = []
        for start in range(0, n, batch_size * pool):
            part = order[start : start + batch_size * pool]
            chunks.append(part[torch.argsort(lengths[part], stable=True)])
        order = torch.cat(chunks) if chunks else order
    out = list(order.split(batch_size))
    perm = torch.randperm(len(out), generator=generator)
    return [out[i] for i in perm]
