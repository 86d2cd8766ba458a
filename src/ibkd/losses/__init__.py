"""Losses: the one masked cross-entropy, and the registry of distillation losses.

A distillation loss is one file in this package that registers a function under a name
(`--kd-loss NAME`, `DistillConfig.loss`)::

    @register("kd")
    def kd(student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg):
        ...
        return LossParts(total=..., ce=..., kd=...)

- `student_logits`, `teacher_logits`: [B, C] (classification, images) or [B, L, V] (LM), float32
- `student_repr`, `teacher_repr`: the penultimate representations ([B, H_s] or [B, L, H_s], and
  H_t for the teacher's); None unless the loss is registered with `representations=True` (then
  the teacher's representations are cached beside its logits)
- `gold`: [B] class ids or [B, L] next-token ids (`<pad>` = 0 beyond each sentence)
- `mask`: None (every example scores) or [B, L] bool, True at the positions that score (LM;
  a representation loss treats every scored token position as one example: `scored_rows`)
- `cfg`: the run's `DistillConfig` (temperature, alpha, ...)

A loss with trained parts of its own (FitNets' regressor in `hint.py`) declares them when it
registers, `trainable=build`: `build(student_width, teacher_width)` returns them by name
({name: nn.Module}, built for the models' penultimate widths H_s and H_t), the training loop
trains them with the student (in its optimizer, gradients clipped on their own) and saves them
in its checkpoint (`companions`, under these names), and the loss gets them as the keyword
argument `modules` ({name: module}, on the run's device).

It returns `LossParts`: the total that is minimised and its named terms, logged as the `ce`
and `kd` columns of log.csv. RepDistiller (Tian et al. 2020) keeps each loss in its own file the
same way.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class LossParts:
    """A training loss and its named terms (0-d tensors): `total` is minimised; `ce` is the
    cross-entropy on gold labels, `kd` the distillation term (0 without a teacher)."""

    total: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor


Trainable = Callable[[int, int], dict[str, nn.Module]]  # (H_s, H_t) -> a loss's own modules


@dataclass(frozen=True)
class DistillLoss:
    """A registered distillation loss: its function, whether it needs the penultimate
    representations of student and teacher, whether it uses the teacher's probabilities
    (`teacher_probabilities`; False for a loss that reads only the teacher's representations
    or its top-1 decision, which calibrating the teacher leaves unchanged) and what builds its
    own trained modules (`trainable`, see the module docstring; None: it has none)."""

    name: str
    fn: Callable[..., LossParts]
    representations: bool = False
    teacher_probabilities: bool = True
    trainable: Trainable | None = None

    def __call__(
        self, student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg,
        modules: dict[str, nn.Module] | None = None,
    ) -> LossParts:  # fmt: skip
        """The loss of a batch (arguments as in the module docstring); `modules`, the loss's
        own trained modules by name, go to a loss that declares them (`trainable`)."""
        args = (student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg)
        if self.trainable is None:
            return self.fn(*args)
        return self.fn(*args, modules=modules)


LOSSES: dict[str, DistillLoss] = {}


def register(
    name: str, *, representations: bool = False, teacher_probabilities: bool = True,
    trainable: Trainable | None = None,
):  # fmt: skip
    """Decorator: register a distillation loss under `name` (see the module docstring for the
    signature). `teacher_probabilities=False` for a loss that does not use the teacher's output
    distribution (`--teacher-calibration` is then refused: it would change nothing).
    `trainable(student_width, teacher_width)`: the loss's own trained modules by name."""

    def add(fn: Callable[..., LossParts]) -> Callable[..., LossParts]:
        LOSSES[name] = DistillLoss(name, fn, representations, teacher_probabilities, trainable)
        return fn

    return add


def unregister(name: str) -> None:
    """Remove a registered distillation loss (tests that register one clean up with it)."""
    LOSSES.pop(name, None)


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:  # fmt: skip
    """Cross-entropy (natural log) of gold `targets` under `logits`, over the positions where
    `mask` is True (all when None). logits [..., C] (computed in float32), targets [...] ids.

    `mean` / `sum`: over the scored positions (a 0-d tensor); `none`: per position, the shape
    of `targets`, 0 where `mask` is False. Used by training, validation and prediction alike."""
    if reduction == "none":
        nll = F.cross_entropy(logits.float().movedim(-1, 1), targets, reduction="none")
        return nll if mask is None else nll.masked_fill(~mask, 0.0)
    if mask is not None:
        logits, targets = logits[mask], targets[mask]
    return F.cross_entropy(logits.float(), targets, reduction=reduction)


def scored_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Representations as one row per scored example, float32: [B, H] as it is; [B, L, H]
    (LM) -> [N, H], the N positions where `mask` [B, L] is True (every non-pad token)."""
    x = x.float()
    return x if mask is None else x[mask]


def with_gold(distill: torch.Tensor, logits, gold, mask, cfg) -> LossParts:
    """alpha * `distill` + (1 - alpha) * CE(logits, gold): how every distillation term is
    combined with the gold loss (`cfg.alpha`, Hinton et al. 2015)."""
    ce = masked_cross_entropy(logits, gold, mask)
    return LossParts(cfg.alpha * distill + (1 - cfg.alpha) * ce, ce, distill)


def gold_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None) -> LossParts:
    """Training without a teacher: the masked cross-entropy alone."""
    ce = masked_cross_entropy(logits, targets, mask)
    return LossParts(ce, ce, ce.new_zeros(()))


for _module in pkgutil.iter_modules(__path__):  # every loss file registers itself
    importlib.import_module(f"{__name__}.{_module.name}")
