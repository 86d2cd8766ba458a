"""Knowledge distillation: the loss and the teacher.

    L = alpha * s(T) * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, gold)

with s(T) = T^2 (Hinton et al.; keeps the gradient scale as T grows), 1/T^2 (Reflect) or 1.
The KL is averaged over examples (classification) or over non-pad tokens (LM); it differs from
the soft cross-entropy only by the teacher's entropy, a constant, so the gradients are the same.

The teacher is a finished run, loaded from its folder and frozen. In eval mode its outputs are
deterministic and may be computed once per training example (`Teacher.cache`); Reflect computed
them with dropout on (`teacher_dropout`), which rules the cache out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ibkd.checkpoint import load_checkpoint
from ibkd.config import DistillConfig, RunConfig
from ibkd.data.vocab import Vocab
from ibkd.errors import IbkdError


def kd_scale_factor(temperature: float, kd_scale: str) -> float:
    return {"t2": temperature**2, "inv-t2": temperature**-2, "none": 1.0}[kd_scale]


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
    kd_scale: str = "t2", mask: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Scaled KL(teacher || student) at `temperature`, averaged over the positions where
    `mask` is True (all positions when None). Logits: [..., C]."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    kl = kl[mask] if mask is not None else kl
    return kl.mean() * kd_scale_factor(temperature, kd_scale)


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, gold: torch.Tensor,
    cfg: DistillConfig, mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """(total, kd, ce). `mask` selects the scored positions (LM: non-pad tokens)."""
    kd = kd_loss(student_logits, teacher_logits, cfg.temperature, cfg.kd_scale, mask)
    s, g = (student_logits[mask], gold[mask]) if mask is not None else (student_logits, gold)
    ce = F.cross_entropy(s.float(), g)
    return cfg.alpha * kd + (1 - cfg.alpha) * ce, kd, ce


@dataclass
class LoadedRun:
    """A finished run: its config, vocabulary and trained model (eval mode)."""

    path: Path
    config: RunConfig
    vocab: Vocab | None  # None for images
    model: nn.Module


def load_run(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedRun:
    """Load a finished run folder (config.yaml, vocab.json, checkpoint.pt, metrics.json)."""
    from ibkd.models import build_model

    path = Path(path)
    if not path.is_dir():
        raise IbkdError(f"{path}: no such run folder")
    for name in ("config.yaml", "checkpoint.pt"):
        if not (path / name).is_file():
            raise IbkdError(f"{path}: not a run folder (no {name})")
    if not (path / "metrics.json").is_file():
        raise IbkdError(
            f"{path}: the run has not finished (no metrics.json); finish it with --resume first"
        )
    config = RunConfig.load(path / "config.yaml")
    vocab = Vocab.load(path / "vocab.json") if config.setup != "mnist" else None
    state = load_checkpoint(path / "checkpoint.pt", device)
    try:
        model = build_model(config.model, len(vocab) if vocab else 0, config.setup)
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise IbkdError(
            f"{path / 'checkpoint.pt'}: cannot be loaded into a "
            f"{config.model.name} model ({str(e).splitlines()[0]})"
        ) from None
    return LoadedRun(path, config, vocab, model.to(device).eval())


class Teacher:
    """A frozen teacher giving logits for the student's batches."""

    def __init__(self, run: LoadedRun, cfg: DistillConfig):
        self.run, self.cfg = run, cfg
        self.model = run.model.requires_grad_(False)
        self.cached: torch.Tensor | None = None

    @property
    def cacheable(self) -> bool:
        return self.cfg.cache_teacher and not self.cfg.teacher_dropout

    @torch.no_grad()
    def logits(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.model.train(self.cfg.teacher_dropout)
        return self.model(tokens, lengths)

    @torch.no_grad()
    def cache(self, encoded, device: torch.device, batch_size: int = 512) -> None:
        """Compute the teacher's logits for every example of `encoded` once (classification and
        images: [N, C]; the LM's [N, L, V] would not fit in memory and is not cached)."""
        from ibkd.data.batching import batches

        out = None
        for index in batches(encoded.lengths, batch_size, shuffle=False, generator=None):
            tokens, lengths, _ = encoded.batch(index)
            z = self.logits(tokens.to(device), lengths.to(device)).float().cpu()
            if out is None:
                out = torch.empty(len(encoded), z.shape[-1])
            out[index] = z
        self.cached = out

    def for_batch(self, index, tokens, lengths) -> torch.Tensor:
        if self.cached is not None:
            return self.cached[index].to(tokens.device, non_blocking=True)
        return self.logits(tokens, lengths)
