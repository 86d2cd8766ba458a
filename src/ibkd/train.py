"""The one training loop, for plain training and distillation, for every task (`ibkd.tasks`).

`train_run` reads top to bottom: check everything, lock and fill the run folder (`ibkd.runs`
says what a run folder holds and when it may be resumed), build the model and optimizer, loop
over epochs and batches (`train_step`), validate at each epoch's end (`end_epoch`), then predict
every test set with the best weights and write the metrics (`finish`). Distillation only adds a
teacher and a loss term (`ibkd.losses`); a loss's own trained modules (the `hint` loss's map) and
an online teacher are trained beside the model (`Run.companions`: in the optimizer and the
checkpoint).

Determinism: the same config and seed, on the same machine with the same library build and the
same number of threads, give identical log.csv and epochs.csv (all but the timing columns
`tokens_per_s` and `seconds`), identical predictions and identical metrics (all but the timings
under `training`); a killed run resumed from its checkpoint reaches the same numbers. Across
CPUs (other vector instructions) or thread counts the numbers agree only within noise. A resume
therefore runs with the threads the run started with, and is refused when its data or teacher
changed (`ibkd.resume`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ibkd.config import RunConfig
from ibkd.data.batching import batches
from ibkd.data.prepare import RunData, prepare_data
from ibkd.data.vocab import PAD
from ibkd.distill import Teacher, calibrated_probs
from ibkd.distributed import Dist, autocast_bf16, pick_device, seed_everything, set_threads
from ibkd.errors import IbkdError
from ibkd.evaluate import check_fits, validation_loss
from ibkd.files import atomic_write, dump_json
from ibkd.losses import LOSSES, LossParts, aux_lm, gold_loss, masked_cross_entropy
from ibkd.metrics import compute_metrics, fidelity
from ibkd.models import build_model, config_from_dict
from ibkd.models.lm_head import is_adaptive
from ibkd.predictions import load_predictions, save_predictions
from ibkd.resume import check_inputs, input_fingerprints, read_started, write_started
from ibkd.runs import (
    CsvLog,
    check_folder,
    config_identity,
    kept_rows,
    load_checkpoint,
    load_weights,
    locked_folder,
    now,
    provenance,
    record_provenance,
    save_checkpoint,
    user_os_error,
)
from ibkd.tasks import get_task
from ibkd.teacher_cache import check_fits as check_cache_fits
from ibkd.teacher_cache import parse_spec

LOG_FIELDS = ["step", "epoch", "loss", "ce", "kd", "lr", "grad_norm", "tokens_per_s"]
EPOCH_FIELDS = ["epoch", "step", "train_loss", "valid_loss", "valid_accuracy", "best",
                "seconds"]  # fmt: skip


@dataclass
class TrainState:
    """The loop's counters, saved in every checkpoint."""

    step: int = 0
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch done
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False  # early stopping fired
    seconds: float = 0.0  # training wall time so far (optimizer steps, logging included)
    tokens: int = 0  # input tokens trained on so far
    # the logged losses of the current epoch's steps so far (its train_loss is their mean, the
    # same whether or not the epoch was resumed part-way)
    epoch_losses: list[float] = field(default_factory=list)


@dataclass
class Run:
    """Everything one run's loop works with."""

    cfg: RunConfig
    out: Path
    data: RunData
    teacher: Teacher | None
    teacher_predictions: dict[str, dict[str, np.ndarray]]
    device: torch.device
    dist: Dist
    model: nn.Module  # the model itself (what is saved and evaluated)
    net: nn.Module  # what training steps run: the model, DDP-wrapped and / or compiled
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    state: TrainState
    best_model: dict | None = None
    cache_seconds: float = 0.0
    # trained beside the model: the distillation loss's own modules (`loss_modules`),
    # "teacher" (an online teacher), "aux_lm" (`--aux-lm`'s output layer)
    companions: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    loss_modules: dict[str, nn.Module] = field(default_factory=dict)  # given to the loss
    best_companions: dict | None = None  # their state at the model's best epoch
    last_checkpoint: int | None = None  # the step of checkpoint.pt (None: none written yet)


def _user_errors(fn):
    """OSErrors a user can fix (full disk, read-only folder) become one IbkdError line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            raise user_os_error(e) from None

    return wrapper


@_user_errors
def train_run(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
    on_step: Callable[[int], None] | None = None, threads: int | None = None,
    tensorboard: bool | None = None,
) -> dict:  # fmt: skip
    """Train (or distil, when `cfg.distill` is set) one run into the folder `out`; returns its
    metrics (the contents of metrics.json; {} on torchrun processes other than rank 0).

    `resume`: continue the run in `out` from its checkpoint (a finished run returns its
    metrics), with the threads and TensorBoard setting it started with (`ibkd.resume`; other
    threads are refused), refused when its data or teacher changed since. `threads`: torch's
    intra-op CPU threads (None: keep the process's, or on a resume the run's). `tensorboard`:
    also write TensorBoard event files beside log.csv (losses, learning rate, gradient norm,
    tokens/s per step; validation loss and accuracy per epoch; None: no, or on a resume as the
    run started).
    `on_step(step)` is called after every optimizer step. Every user error (bad option, unusable
    folder, teacher or data, a non-finite loss or gradient) raises IbkdError; options and inputs
    are checked before anything is written."""
    steps = run_steps(cfg, out, resume=resume, progress=progress, on_step=on_step,
                      threads=threads, tensorboard=tensorboard)  # fmt: skip
    try:
        step = next(steps)
        while True:
            try:
                row = train_step(step.run, step.index)
            except BaseException as e:  # raised inside the run's loop: its folder is closed
                step = steps.throw(e)
            else:
                step = steps.send(row)
    except StopIteration as done:
        return done.value


@dataclass
class Step:
    """A batch a run's loop (`run_steps`) asks to be trained on: the run, its training
    examples `index` [B] and whether it is the epoch's last batch (a checkpoint and the
    validation follow it)."""

    run: Run
    index: torch.Tensor
    last_of_epoch: bool


def run_steps(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
    on_step: Callable[[int], None] | None = None, threads: int | None = None,
    tensorboard: bool | None = None,
) -> Generator[Step, dict, dict]:  # fmt: skip
    """`train_run`'s loop as a generator: it yields a `Step` for every optimizer step and
    takes back the step's log row (`train_step`'s; the step's training done by the caller:
    `train_run` one run at a time, `ibkd.batched` several runs as one stacked model); it
    returns the run's metrics. Options and errors as `train_run`'s; an exception thrown in
    at a step (`generator.throw`) stops the run there as one raised by `train_step` does."""
    out = Path(out)
    cfg.validate()
    asked_threads = threads
    threads = set_threads(threads)
    dist, device = Dist.from_env(pick_device(cfg.train.device))
    autocast_bf16(cfg.train.precision, device)  # refused here, before anything is written
    loss = LOSSES[cfg.distill.loss] if cfg.distill is not None else None
    if dist.enabled and loss is not None and (loss.representations or loss.trainable):
        raise IbkdError(f"--kd-loss {cfg.distill.loss}: not supported under torchrun")
    online = cfg.distill is not None and cfg.distill.online is not None
    if dist.enabled and online:
        raise IbkdError("--online: not supported under torchrun")
    if tensorboard:
        _summary_writer()  # installed?
    with contextlib.ExitStack() as stack:
        stack.callback(dist.close)
        if dist.is_rank0:  # one process writes a run folder at a time
            stack.enter_context(locked_folder(out))
        finished = check_folder(cfg, out, resume)
        resume = resume and (out / "checkpoint.pt").exists()  # killed before a checkpoint
        dist.barrier()  # every process has looked at the folder before rank 0 writes to it
        if finished is not None:
            return finished if dist.is_rank0 else {}
        started = read_started(out) if resume else None
        if started is not None:  # the run's own settings
            threads = _resumed_threads(out, started, asked_threads)
            tensorboard = bool(started.get("tensorboard")) if tensorboard is None else tensorboard
        tensorboard = bool(tensorboard)
        board_class = _summary_writer() if tensorboard and dist.is_rank0 else None

        # --- data, teacher and model, all checked before anything is written
        seed_everything(cfg.seed)
        task = get_task(cfg.setup)
        teacher = Teacher.load(cfg, device) if cfg.distill is not None and not online else None
        data = prepare_data(cfg, teacher.run.vocab if teacher else None)
        shapes = task.shapes(data.vocab)
        model = build_model(cfg.model, shapes)
        model = model.to(device)
        if cfg.train.aux_lm > 0:
            aux_lm.check_model(model, cfg.model.name)
            if dist.enabled:
                raise IbkdError("--aux-lm: not supported under torchrun")
        if online:
            teacher = Teacher.online(cfg, shapes, device)
        for name, split in [("train", data.train), ("valid", data.valid), *data.tests.items()]:
            for m in (model, teacher.model) if online else (model,):
                check_fits(m, split, f"--data {cfg.data.data} ({name})")
        teacher_predictions = (
            _teacher_predictions(teacher, data) if dist.is_rank0 and not online else {}
        )
        inputs = input_fingerprints(data, teacher.run.path if teacher and not online else None)
        if started is not None:
            check_inputs(out, started.get("inputs", {}), inputs, cfg)
        cache_spec = parse_spec(cfg.distill.teacher_cache) if teacher is not None else None
        if cache_spec is not None and cache_spec.enabled:  # refused before anything is written
            check_cache_fits(cache_spec, int(data.train.lengths.sum()), len(data.vocab))
        if teacher is not None and cfg.distill.calibration == "temperature":
            teacher.calibrate(data.valid, device)  # deterministic: the same fit on a resume
            teacher_predictions = {  # fidelity: against what the student learns to match
                k: calibrated_probs(v, teacher.temperature) for k, v in teacher_predictions.items()
            }
        loss_modules = _loss_modules(cfg, model, teacher)
        companions = _companions(loss_modules, teacher)
        if cfg.train.aux_lm > 0:
            companions[aux_lm.COMPANION] = aux_lm.output_layer(model, len(data.vocab))
        run = Run(
            cfg, out, data, teacher, teacher_predictions, device, dist, model,
            _wrap(model, cfg, dist, device),
            *_optimizer([model, companions], cfg, len(data.train)), TrainState(),
            companions=companions, loss_modules=loss_modules,
        )  # fmt: skip

        if resume:  # read before anything is written: a broken checkpoint or log changes nothing
            restore(run)
        state = run.state
        log_rows = epoch_rows = None  # a fresh log; on a resume, the rows up to the checkpoint
        if resume and dist.is_rank0:
            log_rows = kept_rows(out / "log.csv", LOG_FIELDS,
                                 lambda r: int(r["step"]) <= state.step)  # fmt: skip
            epoch_rows = kept_rows(out / "epochs.csv", EPOCH_FIELDS,
                                   lambda r: int(r["epoch"]) <= state.epoch)  # fmt: skip

        # --- the run folder
        record = provenance(device, threads, dist.world_size)
        if dist.is_rank0:
            cfg.save(out / "config.yaml")
            if data.vocab is not None:
                data.vocab.save(out / "vocab.json")
            record_provenance(out, record, append=resume)
            if started is None:  # a start (or a folder from before started.json)
                write_started(out, threads, tensorboard, inputs)
            if teacher is not None and teacher.calibration is not None:
                with atomic_write(out / "teacher_calibration.json") as f:
                    dump_json(teacher.calibration, f)
        if dist.enabled:  # a dropout stream per process (at the start and after a resume)
            torch.manual_seed((cfg.seed * 1_000_003 + run.state.step) * 1009 + dist.rank)
        if teacher is not None and teacher.cacheable and not task.per_token:
            t0 = time.perf_counter()
            teacher.cache(data.train, device)
            run.cache_seconds = time.perf_counter() - t0
        elif cache_spec is not None and cache_spec.enabled:  # an LM teacher (`--teacher-cache`)
            t0 = time.perf_counter()
            teacher.cache_lm(data.train, len(data.vocab), device)
            run.cache_seconds = time.perf_counter() - t0
        log = stack.enter_context(
            contextlib.closing(CsvLog(out / "log.csv", LOG_FIELDS, log_rows, dist.is_rank0))
        )
        epochs_log = stack.enter_context(
            contextlib.closing(CsvLog(out / "epochs.csv", EPOCH_FIELDS, epoch_rows, dist.is_rank0))
        )
        board = None
        if board_class is not None:  # event files beside log.csv
            # a resume drops the events after the checkpoint, as it drops log.csv's rows
            board = stack.enter_context(contextlib.closing(
                board_class(log_dir=str(out), purge_step=state.step + 1 if resume else None)
            ))  # fmt: skip

        # --- the loop
        while state.epoch < cfg.train.epochs and not state.stopped:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.epoch)
            order = batches(data.train.lengths, cfg.train.batch_size, shuffle=True,
                            generator=gen, bucket=cfg.train.bucket)  # fmt: skip
            bar = _progress_bar(cfg, state, len(order)) if progress and dist.is_rank0 else None
            model.train()
            try:
                for b in range(state.batch_in_epoch, len(order)):
                    if not dist.usable(order[b]):  # fewer examples than processes
                        continue
                    t0 = time.perf_counter()
                    row = yield Step(run, order[b], b + 1 == len(order))
                    state.batch_in_epoch = b + 1
                    log.write(row)
                    _to_board(board, "train", row, state.step)
                    state.epoch_losses.append(float(row["loss"]))
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=row["loss"][:5], tok_s=row["tokens_per_s"])
                    if state.step % cfg.train.checkpoint_every == 0:
                        log.sync()
                        checkpoint(run)
                    state.seconds += time.perf_counter() - t0  # the whole step
                    if on_step is not None:
                        on_step(state.step)
            finally:
                if bar is not None:
                    bar.close()
            losses = state.epoch_losses
            row = end_epoch(run, float(np.mean(losses)) if losses else float("nan"), epochs_log)
            _to_board(board, "epoch", row, state.step)
            log.sync()  # the log is durable up to the checkpoint
            checkpoint(run)
        log.close()
        epochs_log.close()
        metrics = finish(run)
        if dist.is_rank0:
            record_provenance(out, {**record, "finished": now()}, append=True)
        dist.barrier()  # leave the process group together, once rank 0 has written everything
        return metrics


def train_step(run: Run, index: torch.Tensor) -> dict:
    """One optimizer step on the training examples `index` (the global batch; under torchrun
    this process trains on its slice); returns its log.csv row. A non-finite loss or gradient
    norm (the model's or a companion's, before clipping) raises IbkdError naming the step,
    before anything of the step is logged or saved."""
    cfg, dist = run.cfg, run.dist
    t0 = time.perf_counter()
    all_lengths = run.data.train.lengths[index]  # of the whole (global) batch
    n_tokens = int(all_lengths.sum())
    local = dist.shard(index)
    # DDP averages the processes' gradients; weighting each slice's mean loss by its share of
    # the batch (of its tokens for the LM) makes that the whole batch's gradient
    share = (
        int(dist.shard(all_lengths).sum()) / n_tokens
        if get_task(cfg.setup).per_token
        else len(local) / len(index)
    )
    tokens, lengths, targets = (_to_device(t, run.device) for t in run.data.train.batch(local))
    with autocast_bf16(cfg.train.precision, run.device):
        parts = _loss(run, local, tokens, lengths, targets)
    run.opt.zero_grad(set_to_none=True)
    (parts.total * (share * dist.world_size) if dist.enabled else parts.total).backward()
    params = [p for p in run.model.parameters() if p.requires_grad]
    grad_norm = nn.utils.clip_grad_norm_(params, cfg.train.clip)  # the model's, logged
    norms = [grad_norm.detach()]
    for module in run.companions.values():  # each clipped on its own
        norms.append(nn.utils.clip_grad_norm_(list(module.parameters()), cfg.train.clip))
    run.opt.step()
    run.sched.step()
    # one device sync per step for everything logged
    values = torch.stack([parts.total.detach(), parts.ce.detach(), parts.kd.detach(),
                          *(n.detach().float().to(parts.total.device) for n in norms)])  # fmt: skip
    return step_row(run, values.tolist(), n_tokens, run.sched.get_last_lr()[0], t0)


def step_row(run: Run, values: list[float], n_tokens: int, lr: float, t0: float) -> dict:
    """The end of an optimizer step of `run` whose parameters are updated: `values` are the
    step's [loss, ce, kd, the model's gradient norm, each companion's gradient norm] (before
    clipping), `n_tokens` its input tokens, `lr` the learning rate after the step,
    `t0` its start (`time.perf_counter()`). Counts the step and returns its log.csv row; a
    non-finite loss or gradient norm raises IbkdError naming the step."""
    state = run.state
    loss_v, ce_v, kd_v, gn, *companion_norms = values
    where = f"step {state.step + 1} (epoch {state.epoch + 1})"
    if not math.isfinite(loss_v):
        raise IbkdError(
            f"{where}: the training loss is {loss_v}; stopping without metrics (lower --lr, or "
            f"check the data and --temperature); {_kept(run)}"
        )
    for name, norm in zip(["model", *run.companions], [gn, *companion_norms]):
        if not math.isfinite(norm):
            what = "the gradient norm" + ("" if name == "model" else f" of the {name}")
            raise IbkdError(
                f"{where}: {what} is {norm}; stopping without metrics (lower --lr or "
                f"--aux-lm); {_kept(run)}"
            )
    state.step += 1
    state.tokens += n_tokens
    return {
        "step": state.step,
        "epoch": state.epoch + 1,
        "loss": f"{loss_v:.5f}",
        "ce": f"{ce_v:.5f}",
        "kd": f"{kd_v:.5f}",
        "lr": f"{lr:.3e}",
        "grad_norm": f"{gn:.4f}",
        "tokens_per_s": f"{n_tokens / (time.perf_counter() - t0):.0f}",
    }


def _loss(run: Run, index, tokens, lengths, targets) -> LossParts:
    """The training loss of a batch (`_task_loss`); with `--aux-lm W`, plus W times the mean
    next-word cross-entropy over the prefixes (`ibkd.losses.aux_lm`), the model's states
    computed once for both. log.csv's `loss` includes that term, its `ce` does not."""
    weight = run.cfg.train.aux_lm
    if weight == 0:
        return _task_loss(run, index, tokens, lengths, targets)
    states = run.model.states(tokens, lengths)
    aux = aux_lm.next_word_loss(run.companions[aux_lm.COMPANION](states), tokens)
    parts = _task_loss(run, index, tokens, lengths, targets, run.model.read(states, lengths))
    return LossParts(parts.total + weight * aux, parts.ce, parts.kd)


def _task_loss(run: Run, index, tokens, lengths, targets, features=None) -> LossParts:
    """Gold cross-entropy, or the run's distillation loss. With an online teacher, plus the
    teacher's own gold cross-entropy (the student learns from its detached outputs, so each
    model gets only its own term's gradients). `features`: the model's penultimate
    representation of the batch when the caller has it (not recomputed)."""
    mask = targets != PAD if get_task(run.cfg.setup).per_token else None
    if mask is not None and features is None and scored_only(run):
        return _scored_lm_loss(run, index, tokens, lengths, targets, mask)
    if features is not None:
        logits = run.model.head(features)
    if run.teacher is None:
        return gold_loss((run.net(tokens, lengths) if features is None else logits).float(),
                         targets, mask)  # fmt: skip
    loss = LOSSES[run.cfg.distill.loss]
    student_repr = None
    if loss.representations:
        student_repr = run.model.features(tokens, lengths) if features is None else features
        logits = run.model.head(student_repr)
    elif features is None:
        logits = run.net(tokens, lengths)
    teacher_logits, teacher_repr = run.teacher.for_batch(index, tokens, lengths)
    teacher_ce = None
    if run.teacher.is_online:
        teacher_ce = masked_cross_entropy(teacher_logits, targets, mask)
        teacher_logits = teacher_logits.detach()
        teacher_repr = teacher_repr.detach() if teacher_repr is not None else None
    parts = loss(logits.float(), teacher_logits.float(), student_repr, teacher_repr, targets,
                 mask, run.cfg.distill, run.loss_modules)  # fmt: skip
    if teacher_ce is not None:
        parts = LossParts(parts.total + teacher_ce, parts.ce, parts.kd)
    return parts


def scored_only(run: Run) -> bool:
    """Whether a language model's loss may take the output layer at the scored positions only
    (`_scored_lm_loss`): the model runs unwrapped (no DDP, not compiled), and the loss, if
    any, is a logits-only one (`kd`, `hard`) from a frozen teacher."""
    if run.net is not run.model:
        return False
    return run.teacher is None or (
        not run.teacher.is_online and not LOSSES[run.cfg.distill.loss].representations
    )


def _scored_lm_loss(run: Run, index, tokens, lengths, targets, mask) -> LossParts:
    """A language model's training loss with the output layer (and the teacher's) applied to
    the N scored (non-pad) positions only: logits [N, V] instead of [B, L, V]. The same loss
    as the masked one (every term is a mean over the scored positions), without the padded
    positions' logits and the copy that masking them out of a [B, L, V] tensor makes. With
    the adaptive softmax (`ibkd.models.lm_head`), training without a teacher takes its own
    loss (each tail cluster only where a target is in it); distillation takes its
    log-probabilities over the whole vocabulary at every scored position (the KL needs the
    student's whole distribution). The teacher's outputs come from its cache where there is
    one (`--teacher-cache`, the examples `index`)."""
    head = run.model.head
    h = run.model.features(tokens, lengths)[mask]
    gold = targets[mask]
    if run.teacher is None:
        if is_adaptive(head):
            ce = head.loss(h, gold)
            return LossParts(ce, ce, ce.new_zeros(()))
        return gold_loss(head(h).float(), gold, None)
    logits = head(h).float()
    teacher_logits = run.teacher.scored_logits(tokens, lengths, mask, index)
    return LOSSES[run.cfg.distill.loss](logits, teacher_logits, None, None, gold, None,
                                        run.cfg.distill, run.loss_modules)  # fmt: skip


def end_epoch(run: Run, train_loss: float, epochs_log: CsvLog) -> dict:
    """Validate, keep the best weights, decide on early stopping; log the epoch (returns its
    epochs.csv row)."""
    state, dist = run.state, run.dist
    valid_loss, valid_acc = math.nan, math.nan
    if dist.is_rank0:  # under DDP the others take rank 0's numbers (BatchNorm may differ)
        valid_loss, valid_acc = validation_loss(run.model, run.data.valid, run.device)
    valid_loss, valid_acc = dist.from_rank0([valid_loss, valid_acc], run.device)
    state.epoch += 1
    state.batch_in_epoch = 0
    state.epoch_losses = []
    better = valid_loss < state.best_loss
    if better:
        state.best_loss, state.best_epoch, state.bad_epochs = valid_loss, state.epoch, 0
        run.best_model = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        if len(run.companions):
            run.best_companions = {
                k: v.detach().clone() for k, v in run.companions.state_dict().items()
            }
    else:
        state.bad_epochs += 1
        state.stopped = state.bad_epochs >= run.cfg.train.patience
    row = {
        "epoch": state.epoch,
        "step": state.step,
        "train_loss": f"{train_loss:.5f}",
        "valid_loss": f"{valid_loss:.5f}",
        "valid_accuracy": f"{valid_acc:.4f}",
        "best": int(better),
        "seconds": f"{state.seconds:.1f}",
    }
    epochs_log.write(row)
    epochs_log.sync()
    return row


def finish(run: Run) -> dict:
    """Predict valid and every test set with the best weights and write the finished run folder
    (`write_finished_run`: predictions, the final checkpoint with the best weights, what a
    teacher or evaluation loads, and metrics.json, last; rank 0, the other processes of a DDP
    run return {}). An online teacher's folder is written first, the same way
    (`_save_online_teacher`), so that the student's fidelity is measured against it."""
    cfg, state, out = run.cfg, run.state, run.out
    if not run.dist.is_rank0:
        return {}
    if run.best_model is not None:
        run.model.load_state_dict(run.best_model)
    if run.best_companions is not None:
        run.companions.load_state_dict(run.best_companions)
    if run.teacher is not None and run.teacher.is_online:
        run.teacher_predictions = _save_online_teacher(run)
    fields = {
        "teacher": (
            str(out / ONLINE_TEACHER) if run.teacher is not None and run.teacher.is_online
            else cfg.distill.teacher if cfg.distill else None
        ),
        "training": {
            "epochs": state.epoch, "best_epoch": state.best_epoch, "steps": state.step,
            "early_stopped": state.stopped, "seconds": round(state.seconds, 1),
            "tokens_per_s": round(state.tokens / max(state.seconds, 1e-9)),
            "teacher_cache_seconds": round(run.cache_seconds, 2),
            "device": str(run.device), "threads": torch.get_num_threads(),
            "processes": run.dist.world_size,
            "train_examples": len(run.data.train),
            "parameters": sum(p.numel() for p in run.model.parameters()),
        },
    }  # fmt: skip
    against = None
    if run.teacher is not None:
        against = "the teacher"
        if run.teacher.calibration is not None:
            fields["teacher_calibration"] = run.teacher.calibration
            against = f"the calibrated teacher (T_cal = {run.teacher.temperature:.4g})"
    run.best_model = run.best_companions = None
    metrics, _ = write_finished_run(
        cfg, run.model, run.data, run.device, out, fields, training_state=_training_state(run),
        reference=(run.teacher_predictions, against) if against is not None else None,
    )  # fmt: skip
    run.last_checkpoint = state.step
    return metrics


def write_finished_run(
    cfg: RunConfig, model: nn.Module, data: RunData, device: torch.device, out: Path,
    fields: dict, *, training_state: dict | None = None,
    reference: tuple[dict[str, dict[str, np.ndarray]], str] | None = None,
) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:  # fmt: skip
    """Write the finished run folder `out` of `model` trained with `cfg` on `data`, as
    `ibkd.runs.load_run` reads it: config.yaml, vocab.json (where the task has a vocabulary),
    predictions/NAME.npz of valid and every test set (the task's `Task.predict` on `device`),
    checkpoint.pt marked finished (the model's weights; `training_state`: the rest of a
    training run's state, as `checkpoint` saves it) and metrics.json, last: run, model, setup,
    seed, then `fields` (what else the run records), then each split's metrics
    (`ibkd.metrics`), with `reference` = (predictions by split, what they are) also its
    fidelity to them. `out` exists. Returns (metrics, predictions by split). Used for every
    run (`finish`) and for an online run's teacher (`_save_online_teacher`)."""
    task = get_task(cfg.setup)
    cfg.save(out / "config.yaml")
    if data.vocab is not None:
        data.vocab.save(out / "vocab.json")
    metrics = {"run": str(out), "model": cfg.model.name, "setup": cfg.setup, "seed": cfg.seed,
               **fields}  # fmt: skip
    preds = {}
    (out / "predictions").mkdir(exist_ok=True)
    for name, split in [("valid", data.valid), *data.tests.items()]:
        preds[name] = task.predict(model, split, data.vocab, device)
        save_predictions(out / "predictions" / f"{name}.npz", preds[name])
        metrics[name] = compute_metrics(preds[name])
        if reference is not None:
            metrics[name]["fidelity"] = fidelity(preds[name], reference[0][name]) | {
                "against": reference[1]
            }
    save_checkpoint(out / "checkpoint.pt", model=model.state_dict(), finished=True,
                    vocab_fingerprint=data.vocab.fingerprint if data.vocab is not None else None,
                    config=config_identity(cfg), **(training_state or {}))  # fmt: skip
    with atomic_write(out / "metrics.json") as f:
        dump_json(metrics, f)
    return metrics, preds


# ---------------------------------------------------------------------------------------------
# the pieces train_run uses


def _teacher_predictions(teacher: Teacher | None, data: RunData) -> dict:
    """The teacher's saved predictions for each split the student is scored on (for
    fidelity), read before training so that an incomplete teacher folder is refused first."""
    if teacher is None:
        return {}
    out = {}
    for name in ("valid", *data.tests):
        path = teacher.run.path / "predictions" / f"{name}.npz"
        if not path.is_file():
            raise IbkdError(
                f"--teacher {teacher.run.path}: no predictions/{name}.npz; the teacher's run "
                "folder is incomplete"
            )
        out[name] = load_predictions(path)
    return out


def _loss_modules(
    cfg: RunConfig, model: nn.Module, teacher: Teacher | None
) -> dict[str, nn.Module]:  # fmt: skip
    """The distillation loss's own trained modules (`DistillLoss.trainable`: the `hint` loss's
    `projection`), built for the model's and the teacher's penultimate widths, on the model's
    device; {} without a teacher or for a loss without any. A name the training loop gives its
    own companions raises IbkdError."""
    if teacher is None or LOSSES[cfg.distill.loss].trainable is None:
        return {}
    student_width, teacher_width = model.head.in_features, teacher.model.head.in_features
    modules = LOSSES[cfg.distill.loss].trainable(student_width, teacher_width)
    taken = sorted(set(modules) & {ONLINE_COMPANION, aux_lm.COMPANION})
    if taken:
        raise IbkdError(
            f"--kd-loss {cfg.distill.loss}: its trainable module name(s) {', '.join(taken)} are "
            "reserved for what the training loop trains beside the model; rename them"
        )
    device = next(model.parameters()).device
    return {name: module.to(device) for name, module in modules.items()}


def _companions(loss_modules: dict[str, nn.Module], teacher: Teacher | None) -> nn.ModuleDict:
    """What trains beside the model: the distillation loss's own modules (`_loss_modules`,
    under their names) and an online teacher's model (`ONLINE_COMPANION`); empty for plain
    training and a frozen teacher's `kd`."""
    out = nn.ModuleDict(loss_modules)
    if teacher is not None and teacher.is_online:
        out[ONLINE_COMPANION] = teacher.model
    return out


ONLINE_COMPANION = "teacher"  # an online teacher's name among a run's companions
ONLINE_TEACHER = "teacher"  # an online run's teacher: a run folder inside the student's


def _save_online_teacher(run: Run) -> dict[str, dict[str, np.ndarray]]:
    """Write an online run's teacher (its weights at the student's best epoch) as a finished
    run folder `ONLINE_TEACHER` inside the student's (`write_finished_run`), so that it loads
    with `ibkd.runs.load_run` and fidelity and representational distance can be measured;
    returns its predictions by split."""
    cfg, out = run.cfg, run.out / ONLINE_TEACHER
    tcfg = RunConfig(setup=cfg.setup, model=config_from_dict(cfg.distill.online, "--online"),
                     seed=cfg.seed, data=cfg.data, train=cfg.train)  # fmt: skip
    out.mkdir(exist_ok=True)
    fields = {"teacher": None, "online_student": str(run.out)}
    return write_finished_run(tcfg, run.teacher.model, run.data, run.device, out, fields)[1]


def _wrap(model: nn.Module, cfg: RunConfig, dist: Dist, device: torch.device) -> nn.Module:
    """What training steps run: the model, DDP-wrapped under torchrun, compiled on request."""
    net = dist.wrap(model, device)
    return torch.compile(net) if cfg.train.compile else net


def _optimizer(modules: list[nn.Module], cfg: RunConfig, n_train: int):
    """AdamW over the trainable parameters of `modules` (weight decay on matrices only) and its
    warm-up + cosine / constant schedule. On a CPU, AdamW's fused kernel (`fused=True`): the
    same update rule as torch's default per-tensor loop, its arithmetic in another order (the
    weights agree to float rounding after a step, to about 2e-4 after 30), and a whole quick
    classification step 1.42-1.46x faster (docs/speed.md); elsewhere torch's default."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.train.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=cfg.train.lr,
        fused=True if params and all(p.device.type == "cpu" for p in params) else None,
    )
    total = cfg.train.epochs * math.ceil(n_train / cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.train.warmup_steps, total, cfg.train.schedule)
    )
    return opt, sched


def lr_lambda(warmup: int, total: int, schedule: str) -> Callable[[int], float]:
    """The learning-rate factor at a step: linear warm-up over `warmup` steps, then constant or
    a cosine decay to 0 at step `total`."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return f


def _summary_writer():
    """torch.utils.tensorboard's SummaryWriter class; IbkdError when tensorboard is absent."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise IbkdError(
            "--tensorboard: needs the tensorboard package (pip install 'ibkd[tensorboard]')"
        ) from None
    return SummaryWriter


BOARD_SKIP = {"step", "epoch", "best"}  # counters, not curves


def _to_board(board, group: str, row: dict, step: int) -> None:
    """A log row's numbers as TensorBoard scalars `group/name` at `step` (no-op without one)."""
    if board is None:
        return
    for name, value in row.items():
        if name not in BOARD_SKIP:
            board.add_scalar(f"{group}/{name}", float(value), step)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch tensor to the device; to a GPU from pinned memory, without blocking."""
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def _progress_bar(cfg: RunConfig, state: TrainState, total: int):
    """A tqdm bar over the current epoch's batches."""
    from tqdm import tqdm

    return tqdm(total=total, initial=state.batch_in_epoch, leave=False, dynamic_ncols=True,
                desc=f"{cfg.model.name} epoch {state.epoch + 1}/{cfg.train.epochs}",
                mininterval=0.5, disable=None)  # fmt: skip


def _kept(run: Run) -> str:
    """What a run stopped by an error leaves to resume from, truthfully."""
    if run.last_checkpoint is None:
        return "no checkpoint was written yet"
    return f"the checkpoint of step {run.last_checkpoint} is kept"


def _resumed_threads(out: Path, started: dict, asked: int | None) -> int:
    """The threads a resume runs with: those the run started with (set here); other `asked`
    threads raise IbkdError (other threads, other sums: the numbers would differ)."""
    recorded = started.get("threads")
    if not isinstance(recorded, int) or recorded < 1:
        return set_threads(asked)
    if asked is not None and asked != recorded:
        raise IbkdError(
            f"--threads {asked}: the run in {out} started with {recorded} thread(s), and a "
            "resume keeps them (other threads give other numbers); resume without --threads"
        )
    return set_threads(recorded)


def _fingerprint(run: Run) -> str | None:
    return run.data.vocab.fingerprint if run.data.vocab is not None else None


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _training_state(run: Run) -> dict:
    """What a checkpoint holds beside the model's weights to continue training: the optimizer,
    schedule, counters, RNG, best weights so far and the companions (theirs too)."""
    return dict(
        optimizer=run.opt.state_dict(), scheduler=run.sched.state_dict(),
        state=asdict(run.state), rng=_rng_state(run.device), best_model=run.best_model,
        companions=run.companions.state_dict(), best_companions=run.best_companions,
    )  # fmt: skip


def checkpoint(run: Run) -> None:
    """Save the full training state to checkpoint.pt (rank 0), atomically (`finish` writes the
    final one)."""
    if not run.dist.is_rank0:
        run.last_checkpoint = run.state.step
        return
    save_checkpoint(
        run.out / "checkpoint.pt", model=run.model.state_dict(), **_training_state(run),
        vocab_fingerprint=_fingerprint(run), config=config_identity(run.cfg), finished=False,
    )  # fmt: skip
    run.last_checkpoint = run.state.step


def restore(run: Run) -> None:
    """Continue from checkpoint.pt: weights, optimizer, schedule, counters and RNG. A
    checkpoint of other settings or another vocabulary raises IbkdError."""
    path = run.out / "checkpoint.pt"
    ckpt = load_checkpoint(path, run.device)
    if ckpt.get("vocab_fingerprint") != _fingerprint(run):
        raise IbkdError(f"{path}: was trained with another vocabulary")
    saved = ckpt.get("config")
    if not isinstance(saved, dict) or config_identity(saved) != config_identity(run.cfg):
        raise IbkdError(
            f"{path}: was written by a run with other settings; "
            "remove it (or the folder) to start this run afresh"
        )
    try:
        load_weights(run.model, ckpt["model"], path, run.cfg.model.name)
        run.opt.load_state_dict(ckpt["optimizer"])
        run.sched.load_state_dict(ckpt["scheduler"])
        run.state = TrainState(**ckpt["state"])
        run.last_checkpoint = run.state.step
        run.best_model = ckpt.get("best_model")
        if len(run.companions):
            run.companions.load_state_dict(ckpt["companions"])
            run.best_companions = ckpt.get("best_companions")
        torch.set_rng_state(ckpt["rng"]["cpu"])
        if run.device.type == "cuda" and "cuda" in ckpt["rng"]:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], run.device)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise IbkdError(f"{path}: an incomplete checkpoint ({type(e).__name__}: {e})") from None
