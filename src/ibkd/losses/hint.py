"""Hint-based distillation (FitNets: Romero et al. 2015, "FitNets: Hints for Thin Deep Nets",
eq. 3): a learned linear regressor r maps the student's penultimate representation to the
teacher's width, and the student matches the teacher's representation through it:

    L_hint = mean over examples and units of (r(h_s) - h_t)^2
    L = alpha * L_hint + (1 - alpha) * CE(z_s, gold)

FitNets trains the hint stage first and KD after; here the hint is one term beside the gold loss
(weighted by alpha), trained jointly, as RepDistiller (Tian et al. 2020) runs it. The regressor
`r` (an `nn.Linear(H_s, H_t)`, made by the training loop because the loss is registered with
`projection=True`) is in the optimizer and saved in the checkpoint. LM: every scored (non-pad)
token position is one example.
"""

from __future__ import annotations

from torch.nn import functional as F

from ibkd.losses import LossParts, register, scored_rows, with_gold


@register("hint", projection=True, teacher_probabilities=False)
def hint(student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg) -> LossParts:
    """alpha * MSE(r(h_s), h_t) + (1 - alpha) * CE on gold; `student_repr` arrives already
    mapped to the teacher's width, [B, H_t] or [B, L, H_t]."""
    distill = F.mse_loss(scored_rows(student_repr, mask), scored_rows(teacher_repr, mask))
    return with_gold(distill, student_logits, gold, mask, cfg)
