"""Similarity-preserving distillation (Tung & Mori 2019, "Similarity-Preserving Knowledge
Distillation", eqs. 2-4): the student keeps the teacher's example-to-example similarities
within a batch, the paper's RSA view of representations (Abnar et al. 2020, sec. 3.3) made a
loss. With F the batch's penultimate representations [b, H]:

    G = row_normalise(F F^T)        (each row divided by its L2 norm; [b, b])
    L_sp = || G_s - G_t ||_F^2 / b^2
    L = alpha * L_sp + (1 - alpha) * CE(z_s, gold)

Tung & Mori weight L_sp by gamma = 3000 beside the gold CE; here alpha does the weighting as for
every loss. LM: every scored (non-pad) token position of the batch is one row of F (`b` = the
batch's scored tokens).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ibkd.losses import LossParts, register, scored_rows, with_gold


def similarity_matrix(features: torch.Tensor) -> torch.Tensor:
    """Tung & Mori's G: F F^T with each row L2-normalised; features [b, H] -> [b, b]."""
    return F.normalize(features @ features.T, dim=1)


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """||G_s - G_t||_F^2 / b^2 for representations [b, H_s] and [b, H_t] of the same b examples
    (any widths); a 0-d float32 tensor."""
    b = student.shape[0]
    diff = similarity_matrix(student) - similarity_matrix(teacher)
    return (diff**2).sum() / b**2


@register("similarity", representations=True, teacher_probabilities=False)
def similarity(
    student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg
) -> LossParts:
    """alpha * L_sp + (1 - alpha) * CE on gold (the module docstring); representations [B, H]
    or [B, L, H] (LM: the scored positions)."""
    distill = similarity_loss(scored_rows(student_repr, mask), scored_rows(teacher_repr, mask))
    return with_gold(distill, student_logits, gold, mask, cfg)
