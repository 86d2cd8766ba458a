"""Knowledge distillation (Hinton et al. 2015), as in the paper (Abnar et al. 2020, eq. 1):

    L = alpha * s(T) * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, gold)

with s(T) = T^2 (Hinton et al.; keeps the gradient scale as T grows), 1/T^2 (Reflect,
`kd_scale=inv-t2`) or 1 (`none`). The KL is averaged over examples (classification) or over
the scored (non-pad) tokens (LM); it differs from the soft cross-entropy only by the teacher's
entropy, a constant, so the gradients are the same.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ibkd.losses import LossParts, register, with_gold


def kd_scale_factor(temperature: float, kd_scale: str) -> float:
    """s(T): T^2 (`t2`), 1/T^2 (`inv-t2`) or 1 (`none`)."""
    return {"t2": temperature**2, "inv-t2": temperature**-2, "none": 1.0}[kd_scale]


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
    kd_scale: str = "t2", mask: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """s(T) * KL(teacher || student) at `temperature`, averaged over the positions where `mask`
    is True (all positions when None). Logits [..., C]; returns a 0-d float32 tensor (nats)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return _kl(log_s, teacher_logits, temperature, kd_scale, mask)


def _kl(log_s, teacher_logits, temperature: float, kd_scale: str, mask) -> torch.Tensor:
    """`kd_loss` from the student's log-probabilities at `temperature` (log_s [..., C])."""
    log_t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)
    kl = kl[mask] if mask is not None else kl
    return kl.mean() * kd_scale_factor(temperature, kd_scale)


@register("kd")
def kd(student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg) -> LossParts:
    """alpha * s(T) * KL + (1 - alpha) * CE on gold (the module docstring); the
    representations are not used. At T = 1 the gold cross-entropy reuses the student's
    log-probabilities of the KL term (`F.cross_entropy` is `nll_loss` of `log_softmax`, so the
    value is the same, for one log-softmax over the vocabulary instead of two)."""
    t = cfg.temperature
    log_s = F.log_softmax(student_logits.float() / t, dim=-1)
    distill = _kl(log_s, teacher_logits, t, cfg.kd_scale, mask)
    if t != 1:
        return with_gold(distill, student_logits, gold, mask, cfg)
    scored = log_s[mask] if mask is not None else log_s
    ce = F.nll_loss(scored.reshape(-1, scored.shape[-1]),
                    (gold[mask] if mask is not None else gold).reshape(-1))  # fmt: skip
    return LossParts(cfg.alpha * distill + (1 - cfg.alpha) * ce, ce, distill)
