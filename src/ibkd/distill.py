"""The teacher of a distillation run: a finished run, frozen (optionally calibrated), or an
online teacher trained from scratch beside its student.

The distillation losses themselves are in `ibkd.losses` (`kd`: Hinton et al. 2015, the paper's
loss; `hard`, `similarity`, `hint`). In eval mode a frozen teacher's outputs are deterministic and
may be computed once per training example (`Teacher.cache`: logits, and the penultimate
representations when the loss needs them); Reflect computed them with dropout on
(`teacher_dropout`), which rules the cache out.

- Calibration (`DistillConfig.calibration = "temperature"`): temperature scaling (Guo et al.
  2017, "On Calibration of Modern Neural Networks", sec. 4.2): one T_cal > 0 minimising the
  teacher's negative log-likelihood on the validation split; the student then learns from
  z_t / T_cal, before the distillation temperature T (so the targets are softmax(z_t / (T_cal
  T))). The fitted T_cal and the teacher's validation ECE before and after are recorded.
- Online (`DistillConfig.online`: the teacher's model config): Reflect's online distiller
  (`distill/online_distiller.py`; also Anil et al. 2018, "codistillation"): teacher and
  student start from scratch in the one training loop; the teacher learns from the gold labels,
  the student from the teacher's current outputs (detached: no gradient flows back).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibkd.config import DistillConfig, RunConfig
from ibkd.errors import IbkdError
from ibkd.evaluate import infer
from ibkd.losses import LOSSES
from ibkd.metrics import decisions, ece
from ibkd.models import Shapes, build_model, config_from_dict
from ibkd.models.common import padding_mask
from ibkd.runs import LoadedRun, load_run
from ibkd.teacher_cache import LMTeacherCache, parse_spec

T_BOUNDS = (0.05, 20.0)  # the temperature search's range (a bounded 1-D search on log T)


class Teacher:
    """A teacher giving logits (and, for losses that need them, penultimate representations)
    for the student's batches: a finished run (`load`; frozen) or an online model (`online`;
    trained in the student's loop). `temperature` is the calibration T_cal (1: none)."""

    def __init__(self, model: nn.Module, cfg: DistillConfig, run: LoadedRun | None = None):
        self.run, self.cfg, self.model = run, cfg, model
        self.is_online = run is None
        if not self.is_online:
            self.model.requires_grad_(False)
        self.cached: torch.Tensor | None = None
        self.lm_cache: LMTeacherCache | None = None  # an LM teacher's (`--teacher-cache`)
        self.cached_repr: torch.Tensor | None = None
        self.representations = LOSSES[cfg.loss].representations
        self.temperature = 1.0
        self.calibration: dict | None = None  # what `calibrate` found

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
        return cls(run.model, cfg.distill, run)

    @classmethod
    def online(cls, cfg: RunConfig, shapes: Shapes, device: torch.device) -> Teacher:
        """A fresh teacher model of `cfg.distill.online` (a model config dict) for the student
        run `cfg`, built for the task's `shapes` as the student is, to be trained beside it
        (seeded by the student's seed)."""
        model_cfg = config_from_dict(cfg.distill.online, "--online")
        return cls(build_model(model_cfg, shapes).to(device), cfg.distill)

    @property
    def cacheable(self) -> bool:
        """Whether its outputs are deterministic and may be computed once per example."""
        return self.cfg.cache_teacher and not self.cfg.teacher_dropout and not self.is_online

    def outputs(
        self, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits / T_cal, penultimate representation) of a batch. Frozen: without gradients,
        dropout on only under `teacher_dropout`; online: in training mode, with gradients (the
        loop trains the teacher on them and detaches them for the student)."""
        if self.is_online:
            self.model.train()
            h = self.model.features(tokens, lengths)
            return self.model.head(h).float(), h
        self.model.train(self.cfg.teacher_dropout)
        with torch.no_grad():
            h = self.model.features(tokens, lengths)
            return self.model.head(h).float() / self.temperature, h

    def scored_logits(
        self, tokens: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """A frozen LM teacher's logits / T_cal at the positions where `mask` [B, L] is True:
        [N, V] float32, its output layer applied there only (`outputs` gives [B, L, V]). From
        its LM cache (`cache_lm`) when it has one and the batch's training examples `index`
        are given."""
        if self.lm_cache is not None and index is not None:
            return self.lm_cache.logits(index, tokens.device)
        self.model.train(self.cfg.teacher_dropout)
        with torch.no_grad():
            h = self.model.features(tokens, lengths)[mask]
            return self.model.head(h).float() / self.temperature

    def cache_lm(self, encoded, vocab_size: int, device: torch.device) -> None:
        """Compute a frozen LM teacher's outputs at every scored token of the training set
        `encoded` once, as `DistillConfig.teacher_cache` says (`ibkd.teacher_cache`: `full`,
        exact; `topk:K`, the named approximation)."""
        spec = parse_spec(self.cfg.teacher_cache)
        self.lm_cache = LMTeacherCache.build(spec, self.scored_logits, encoded, vocab_size,
                                             device)  # fmt: skip

    def cache(self, encoded, device: torch.device, batch_size: int = 512) -> None:
        """Compute the teacher's logits / T_cal (and, when the loss needs them, its penultimate
        representations) for every example of `encoded` once: [N, C] (and [N, H]) float32 on
        the CPU. Classification and images; an LM teacher's are cached by `cache_lm`."""
        out = rep = None
        for b in infer(self.model, encoded, device, batch_size):
            z = b.logits.cpu() / self.temperature
            if out is None:
                out = torch.empty(len(encoded), z.shape[-1])
                if self.representations:
                    rep = torch.empty(len(encoded), b.features.shape[-1])
            out[b.index] = z
            if rep is not None:
                rep[b.index] = b.features.float().cpu()
        self.cached, self.cached_repr = out, rep

    def for_batch(
        self, index: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, representation or None) for the training examples `index` (their inputs
        `tokens`, `lengths`): from the cache when there is one. The representation is None
        unless the loss needs it."""
        if self.lm_cache is not None:  # [B, L, V]: the cached rows at the scored positions
            rows = self.lm_cache.logits(index, tokens.device)
            logits = rows.new_zeros(*tokens.shape, rows.shape[-1])
            logits[padding_mask(lengths, tokens.shape[1])] = rows
            return logits, None
        if self.cached is not None:
            logits = self.cached[index].to(tokens.device, non_blocking=True)
            if self.cached_repr is None:
                return logits, None
            return logits, self.cached_repr[index].to(tokens.device, non_blocking=True)
        logits, h = self.outputs(tokens, lengths)
        return logits, (h if self.representations else None)

    def calibrate(self, valid, device: torch.device) -> dict:
        """Fit T_cal on the validation split `valid` (`fit_temperature`) and use it from now
        on; returns (and keeps as `calibration`) {temperature, nll_before, nll_after,
        ece_before, ece_after, examples, classes, at_bound, warnings} (natural log; ECE from
        `ibkd.metrics.ece`, its default bins; `at_bound`: the best T is an end of `T_BOUNDS`, so
        the true optimum may lie beyond it; `warnings`: that, and a validation split too small
        (< `MIN_CALIBRATION` examples) or of one class, where the fit says little). Each
        warning is also printed as one line on stderr."""
        parts = [(b.logits.cpu(), b.targets.cpu()) for b in infer(self.model, valid, device)]
        logits = torch.cat([z for z, _ in parts]).double()
        labels = torch.cat([y for _, y in parts])
        t = fit_temperature(logits, labels)

        def scored(temp: float) -> tuple[float, float]:
            z = logits / temp
            probs = z.softmax(-1).numpy()
            pred = {"probs": probs, "label": labels.numpy().astype(np.int64)}
            return float(F.cross_entropy(z, labels)), ece(decisions(pred))

        (nll0, ece0), (nll1, ece1) = scored(1.0), scored(t)
        self.temperature = t
        at_bound = t in T_BOUNDS
        classes = int(labels.unique().numel())
        warnings = calibration_warnings(t, len(labels), classes)
        for w in warnings:
            print(f"ibkd: warning: --teacher-calibration temperature: {w}", file=sys.stderr)
        self.calibration = {"method": "temperature", "temperature": t, "nll_before": nll0,
                            "nll_after": nll1, "ece_before": ece0, "ece_after": ece1,
                            "examples": len(labels), "classes": classes,
                            "at_bound": at_bound, "warnings": warnings}  # fmt: skip
        return self.calibration


MIN_CALIBRATION = 100  # validation examples below which a fitted temperature is flagged
GRID_POINTS = 241  # log-spaced temperatures tried before the bounded refinement


def calibration_warnings(t: float, examples: int, classes: int) -> list[str]:
    """What makes a fitted temperature `t` doubtful: at an end of `T_BOUNDS` (the optimum may
    lie beyond), fewer than `MIN_CALIBRATION` validation `examples`, one class only."""
    out = []
    if t in T_BOUNDS:
        out.append(
            f"T_cal = {t:g} is at the end of the search's range {list(T_BOUNDS)}: the "
            "likelihood is best there or flat (the teacher's validation predictions leave "
            "the temperature undetermined)"
        )
    if examples < MIN_CALIBRATION:
        out.append(f"fitted on {examples} validation examples (fewer than {MIN_CALIBRATION})")
    if classes < 2:
        out.append("every validation example has the same label: the fit says nothing about "
                   "calibration")  # fmt: skip
    return out


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float] = T_BOUNDS
) -> float:
    """The temperature T in `bounds` minimising the mean negative log-likelihood of `labels`
    [N] under softmax(`logits` / T), logits [N, C] (Guo et al. 2017, temperature scaling).
    The NLL is evaluated on `GRID_POINTS` log-spaced temperatures first (a flat likelihood,
    such as a teacher right with wide margins everywhere, stops a bounded search early), then
    refined between the best point's neighbours with scipy's bounded `minimize_scalar` on
    log T. When the best grid point is an end of `bounds`, that bound is returned exactly (the
    optimum is there or beyond; `calibration_warnings` says so); on ties the smaller T.
    Raises IbkdError for an empty set."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        raise IbkdError("--teacher-calibration temperature: the validation split is empty")
    z, y = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    grid = np.linspace(math.log(bounds[0]), math.log(bounds[1]), GRID_POINTS)
    values = np.array([nll(v) for v in grid])
    best = int(np.argmin(values))  # the first (smallest T) of equal values
    if best in (0, len(grid) - 1):
        return float(bounds[0] if best == 0 else bounds[1])
    fit = minimize_scalar(
        nll, bounds=(grid[best - 1], grid[best + 1]), method="bounded",
        options={"xatol": 1e-9},
    )  # fmt: skip
    return float(math.exp(fit.x)) if fit.fun <= values[best] else float(math.exp(grid[best]))


def calibrated_probs(pred: dict[str, np.ndarray], temperature: float) -> dict[str, np.ndarray]:
    """A teacher's saved predictions as the calibrated teacher gives them: `probs` [N, C]
    replaced by softmax(log probs / T_cal) (= softmax(z / T_cal) for the logits z behind them),
    the rest as saved; unchanged for T_cal = 1 or without `probs`. What a student of a
    calibrated teacher was trained to match, so its fidelity is measured against this."""
    if temperature == 1.0 or "probs" not in pred:
        return pred
    logp = np.log(np.clip(pred["probs"].astype(np.float64), 1e-300, None)) / temperature
    logp -= logp.max(1, keepdims=True)
    p = np.exp(logp)
    return pred | {"probs": (p / p.sum(1, keepdims=True)).astype(pred["probs"].dtype)}
