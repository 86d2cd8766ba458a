"""Hint-based distillation (FitNets: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets",
eq. 3): a learned linear regressor r maps the student's penultimate representation to the
teacher's width, and the student matches the teacher's representation through it:

    L_hint = mean over examples and units of (r(h_s) - h_t)^2
    L = alpha * L_hint + (1 - alpha) * CE(z_s, gold)

FitNets trains the hint stage first and KD after; here the hint is one term beside the gold loss
(weighted by alpha), trained jointly, as RepDistiller (Tian et al. 2020) runs it. The regressor
`r` (an `nn.Linear(H_s, H_t)`, declared by the loss: `regressor`) is trained with the student
and saved in its checkpoint, as `projection`. LM: every scored (non-pad)
token position is one example.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from ibkd.losses import LossParts, register, scored_rows, with_gold


def regressor(student_width: int, teacher_width: int) -> dict[str, nn.Module]:
    """FitNets' regressor r: a linear map from the student's penultimate width to the
    teacher's, named `projection` (in the loss's `modules` and the checkpoint's companions)."""
    return {"projection": nn.Linear(student_width, teacher_width)}


@register("hint", representations=True, teacher_probabilities=False, trainable=regressor)
def hint(
    student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg, modules
) -> LossParts:  # fmt: skip
    """alpha * MSE(r(h_s), h_t) + (1 - alpha) * CE on gold: `student_repr` [B, H_s] or
    [B, L, H_s] mapped by r = `modules["projection"]` to the teacher's width H_t."""
    mapped = modules["projection"](student_repr)
    distill = F.mse_loss(scored_rows(mapped, mask), scored_rows(teacher_repr, mask))
    return with_gold(distill, student_logits, gold, mask, cfg)
