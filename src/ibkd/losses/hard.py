"""Hard-label distillation (DeiT: Touvron et al. 2021, "Training data-efficient image
transformers & distillation through attention", eq. 3 without the distillation token):

    L = alpha * CE(z_s, argmax z_t) + (1 - alpha) * CE(z_s, gold)

The student learns the teacher's decision, not its distribution, so the temperature plays no
part. LM: the teacher's most probable next token at every scored (non-pad) position.
"""

from __future__ import annotations

from ibkd.losses import LossParts, masked_cross_entropy, register, with_gold


@register("hard", teacher_probabilities=False)  # the argmax: the same at any T_cal
def hard(student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg) -> LossParts:
    """alpha * CE on the teacher's argmax + (1 - alpha) * CE on gold (the module docstring);
    logits [B, C] or [B, L, V], averaged over examples or scored tokens; nats."""
    distill = masked_cross_entropy(student_logits, teacher_logits.argmax(-1), mask)
    return with_gold(distill, student_logits, gold, mask, cfg)
