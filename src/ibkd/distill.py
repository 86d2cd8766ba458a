"""The teacher of a distillation run: a finished run, loaded from its folder and frozen.

The distillation losses themselves are in `ibkd.losses` (`kd`: Hinton et al. 2015, the paper's
loss). In eval mode the teacher's outputs are deterministic and may be computed once per
training example (`Teacher.cache`); Reflect computed them with dropout on (`teacher_dropout`),
which rules the cache out, as does a loss that needs the teacher's representations.
"""

from __future__ import annotations

import torch

from ibkd.config import DistillConfig, RunConfig
from ibkd.errors import IbkdError
from ibkd.losses import LOSSES
from ibkd.runs import LoadedRun, load_run


class Teacher:
    """A frozen teacher giving logits (and, for losses that need them, penultimate
    representations) for the student's batches."""

    def __init__(self, run: LoadedRun, cfg: DistillConfig):
        self.run, self.cfg = run, cfg
        self.model = run.model.requires_grad_(False)
        self.cached: torch.Tensor | None = None
        self.representations = LOSSES[cfg.loss].representations

    @classmethod
    def load(cls, cfg: RunConfig, device: torch.device) -> Teacher:
        """The teacher of the student run `cfg` (its `distill.teacher` folder), checked to fit:
        same setup, and predictions for the splits the student is scored on (`fidelity`)."""
        run = load_run(cfg.distill.teacher, device)
        if run.config.setup != cfg.setup:
            raise IbkdError(
                f"--teacher {cfg.distill.teacher}: a {run.config.setup} run, "
                f"cannot teach a {cfg.setup} student"
            )
        return cls(run, cfg.distill)

    @property
    def cacheable(self) -> bool:
        """Whether its outputs are deterministic and may be computed once per example."""
        return self.cfg.cache_teacher and not self.cfg.teacher_dropout and not self.representations

    def outputs(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, penultimate representation) of a batch, without gradients, with dropout
        on only under `teacher_dropout`."""
        self.model.train(self.cfg.teacher_dropout)
        with torch.no_grad():
            h = self.model.features(tokens, lengths)
            return self.model.head(h), h

    def cache(self, encoded, device: torch.device, batch_size: int = 512) -> None:
        """Compute the teacher's logits for every example of `encoded` once (classification and
        images: [N, C] float32 on the CPU; the LM's [N, L, V] would not fit in memory and is not
        cached)."""
        from ibkd.evaluate import infer

        out = None
        for b in infer(self.model, encoded, device, batch_size):
            z = b.logits.cpu()
            if out is None:
                out = torch.empty(len(encoded), z.shape[-1])
            out[b.index] = z
        self.cached = out

    def for_batch(
        self, index: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, representation or None) for the training examples `index` (their inputs
        `tokens`, `lengths`): from the cache when there is one."""
        if self.cached is not None:
            return self.cached[index].to(tokens.device, non_blocking=True), None
        logits, h = self.outputs(tokens, lengths)
        return logits, (h if self.representations else None)
