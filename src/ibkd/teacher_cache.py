"""A frozen language-model teacher's outputs at every training token, computed once
(`--teacher-cache`, `DistillConfig.teacher_cache`).

A finished teacher distils in eval mode without dropout, so its logits for a sentence are the
same at every epoch; without a cache they are recomputed at every step. Two caches:

- `full`: the teacher's logits at every scored training token, float32 [tokens, V]. Exact:
  the student learns from the same numbers (up to the rounding of batches of another
  composition in the teacher's forward pass). It takes tokens x V x 4 bytes (PTB's 919,934
  training tokens over 9,995 words: 36.8 GB), so it is refused above a limit
  (`$IBKD_TEACHER_CACHE_GB`, default 4 GB). bf16 would halve it and no longer be exact.
- `topk:K`: an approximation, named as such: the K largest log-probabilities of the teacher
  and their word ids, plus the log of the remaining mass, per token (K x 8 + 4 bytes). The
  teacher's distribution is rebuilt with its top K words as they are and the remaining mass
  spread evenly over the other V - K words (each gets log(rest / (V - K))), i.e. the
  teacher's logits with the tail's logits replaced by the log of their mean probability. KD
  then runs on it unchanged (temperature, alpha, `hard`); at K = V it is the full
  distribution. What it costs in KL against full KD is measured in docs/lm.md.

Rows are stored per training example, its scored positions (0 .. length - 1) in order, so the
rows of a batch are those of its examples in batch order: what `features[mask]` gives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ibkd.data.batching import Encoded, batches
from ibkd.data.vocab import PAD
from ibkd.errors import IbkdError

MODES = ("none", "full", "topk:K")
LIMIT_ENV = "IBKD_TEACHER_CACHE_GB"
DEFAULT_LIMIT_GB = 4.0
FLOOR = math.log(torch.finfo(torch.float32).tiny)  # the smallest log-probability written


@dataclass(frozen=True)
class CacheSpec:
    """A parsed `--teacher-cache`: `kind` none | full | topk, and `k` for topk."""

    kind: str
    k: int = 0

    @property
    def enabled(self) -> bool:
        """Whether anything is cached."""
        return self.kind != "none"


def parse_spec(text: str, name: str = "--teacher-cache") -> CacheSpec:
    """`none`, `full` or `topk:K` (K an integer >= 1) -> a CacheSpec; IbkdError naming the
    setting (`name`: the option, or a config file's key) otherwise."""
    if text in ("none", "full"):
        return CacheSpec(text)
    kind, _, k = text.partition(":")
    if kind == "topk" and k.isdigit() and int(k) >= 1:
        return CacheSpec("topk", int(k))
    raise IbkdError(f"{name} {text!r}: expected none, full or topk:K (an integer K >= 1)")


def cache_bytes(spec: CacheSpec, tokens: int, vocab_size: int) -> int:
    """Bytes the cache of `tokens` scored tokens takes: full, tokens x V x 4 (float32);
    topk, tokens x (K x (4 + 4) + 4) (float32 values, int32 ids, the remaining mass)."""
    if spec.kind == "full":
        return tokens * vocab_size * 4
    if spec.kind == "topk":
        return tokens * (spec.k * 8 + 4)
    return 0


def limit_bytes() -> int:
    """The largest cache allowed: `$IBKD_TEACHER_CACHE_GB` gigabytes (10^9 bytes; default 4).
    IbkdError for a value that is not a positive number."""
    value = os.environ.get(LIMIT_ENV, str(DEFAULT_LIMIT_GB))
    try:
        gb = float(value)
    except ValueError:
        gb = -1.0
    if not math.isfinite(gb) or gb <= 0:
        raise IbkdError(f"${LIMIT_ENV} {value!r}: expected a positive number of gigabytes")
    return int(gb * 1e9)


def check_fits(spec: CacheSpec, tokens: int, vocab_size: int) -> None:
    """Refuse (IbkdError, one line) a cache above `limit_bytes()`, or top-k with K above the
    vocabulary's size."""
    if spec.kind == "topk" and spec.k > vocab_size:
        raise IbkdError(f"--teacher-cache topk:{spec.k}: K exceeds the vocabulary's "
                        f"{vocab_size} words")  # fmt: skip
    need, limit = cache_bytes(spec, tokens, vocab_size), limit_bytes()
    if need > limit:
        what = (f"{tokens:,} tokens x {vocab_size:,} words x 4 bytes" if spec.kind == "full"
                else f"{tokens:,} tokens x ({spec.k} x 8 + 4) bytes")  # fmt: skip
        raise IbkdError(
            f"--teacher-cache {spec.kind}{':' + str(spec.k) if spec.k else ''}: {what} = "
            f"{need / 1e9:.3g} GB exceeds the {limit / 1e9:.3g} GB limit (${LIMIT_ENV}); use "
            "--teacher-cache topk:K or none"
        )


def example_rows(offsets: torch.Tensor, counts: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The cache rows of examples `index` [B], in batch order: example i's scored positions
    are rows offsets[i] .. offsets[i] + counts[i] - 1 (offsets, counts [N] int64)."""
    n = counts[index]
    starts = torch.repeat_interleave(offsets[index], n)
    within = torch.arange(int(n.sum())) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
    return starts + within


class LMTeacherCache:
    """The cached teacher outputs of a training set (the module note). `logits(index)` gives
    the teacher's logits [N, V] float32 (full) or the top-k reconstruction (topk) at the
    scored positions of the examples `index`, in `features[mask]` order."""

    def __init__(self, spec: CacheSpec, counts: torch.Tensor, vocab_size: int):
        self.spec, self.vocab_size = spec, vocab_size
        self.counts = counts.long()
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        total = int(self.counts.sum())
        if spec.kind == "full":
            self.values = torch.empty(total, vocab_size)
            self.ids = self.rest = None
        else:
            self.values = torch.empty(total, spec.k)
            self.ids = torch.empty(total, spec.k, dtype=torch.int32)
            self.rest = torch.empty(total)

    @classmethod
    def build(
        cls, spec: CacheSpec, teacher_logits: Callable, encoded: Encoded, vocab_size: int,
        device: torch.device, batch_size: int = 256,
    ) -> LMTeacherCache:  # fmt: skip
        """The cache of every example of `encoded` (an LM training set): `teacher_logits(
        tokens, lengths, mask)` gives the teacher's logits [n, V] at the mask's positions, run
        here in length-sorted batches of `batch_size` on `device`; stored on the CPU."""
        cache = cls(spec, encoded.lengths, vocab_size)
        for index in batches(encoded.lengths, batch_size, shuffle=False, generator=None):
            tokens, lengths, targets = (t.to(device) for t in encoded.batch(index))
            z = teacher_logits(tokens, lengths, targets != PAD).float()
            cache.put(example_rows(cache.offsets, cache.counts, index), z)
        return cache

    def put(self, rows: torch.Tensor, z: torch.Tensor) -> None:
        """Store the teacher's logits z [n, V] at cache `rows` [n]: as they are (full), or
        their top-k log-probabilities, ids and the log of the rest's mass (topk)."""
        if self.spec.kind == "full":
            self.values[rows] = z.cpu()
            return
        logp = torch.log_softmax(z, -1)
        top, ids = logp.topk(self.spec.k, -1)
        rest = torch.logsumexp(logp.scatter(-1, ids, -math.inf), -1)
        self.values[rows], self.ids[rows], self.rest[rows] = top.cpu(), ids.int().cpu(), rest.cpu()

    def logits(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        """The teacher's logits [N, V] float32 on `device` at the scored positions of the
        training examples `index` (full: as computed; topk: the reconstruction of the module
        note, its top K log-probabilities and the rest spread evenly)."""
        rows = example_rows(self.offsets, self.counts, index)
        if self.spec.kind == "full":
            return self.values[rows].to(device, non_blocking=True)
        v, k = self.vocab_size, self.spec.k
        rest = self.rest[rows].to(device)
        tail = (rest - math.log(v - k)).clamp_min(FLOOR) if k < v else torch.zeros_like(rest)
        out = tail[:, None].expand(len(rows), v).clone()
        return out.scatter_(-1, self.ids[rows].to(device).long(), self.values[rows].to(device))
