"""The one training loop, for plain training and distillation, both setups.

A run is a folder: `config.yaml`, `vocab.json`, `checkpoint.pt` (the full state: model,
optimizer, scheduler, step, RNG state, the best weights so far), `log.csv` (per step),
`epochs.csv` (per epoch, on the validation split), and once finished `predictions/{valid,test}
.npz` and `metrics.json`. Checkpoints are written atomically every `checkpoint_every` steps and
at each epoch's end; `resume=True` continues a killed run to the same final numbers.
Same config + seed on the CPU = the same numbers.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibkd.checkpoint import load_checkpoint, save_checkpoint
from ibkd.config import RunConfig
from ibkd.data.batching import Encoded, batches, encode
from ibkd.data.splits import load_splits
from ibkd.data.vocab import PAD, Vocab, build_vocab
from ibkd.distill import Teacher, distillation_loss, load_run
from ibkd.errors import IbkdError
from ibkd.evaluate import load_predictions, predict, save_predictions
from ibkd.files import atomic_write
from ibkd.metrics import compute_metrics, fidelity
from ibkd.models import build_model

LOG_FIELDS = ["step", "epoch", "loss", "ce", "kd", "lr", "grad_norm", "tokens_per_s"]
EPOCH_FIELDS = ["epoch", "step", "train_loss", "valid_loss", "valid_accuracy", "best",
                "seconds"]  # fmt: skip


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        try:
            return torch.device(name)
        except RuntimeError:
            raise IbkdError(f"--device {name!r}: expected auto, cpu, cuda or mps") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class RunData:
    vocab: Vocab
    train: Encoded
    valid: Encoded
    test: Encoded


def prepare_data(cfg: RunConfig, vocab: Vocab | None = None) -> RunData:
    """Load the splits, build the vocabulary from the training split (or check that a given
    one, e.g. the teacher's, is the same) and encode everything for the run's setup."""
    d = cfg.data
    splits = load_splits(d.data, seed=d.split_seed, fractions=(d.train_fraction, d.valid_fraction))
    train_rows = splits.train[: d.max_train_rows] if d.max_train_rows else splits.train
    if not train_rows or not splits.valid:
        raise IbkdError(
            f"--data {d.data}: needs training and validation rows "
            f"(got {len(train_rows)} and {len(splits.valid)})"
        )
    own = build_vocab(train_rows)
    if vocab is not None and vocab != own:
        raise IbkdError(
            f"the teacher's vocabulary ({len(vocab)} entries, fingerprint {vocab.fingerprint}) "
            f"differs from the one of the student's training data ({len(own)} entries, "
            f"{own.fingerprint}): teacher and student must be trained on the same data"
        )
    return RunData(
        own, *(encode(rows, own, cfg.setup) for rows in (train_rows, splits.valid, splits.test))
    )


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch done
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False  # early stopping fired
    seconds: float = 0.0  # training wall time so far (optimizer steps, logging included)
    tokens: int = 0  # input tokens trained on so far


def lr_lambda(warmup: int, total: int, schedule: str) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return f


def loss_and_parts(logits, targets, setup: str, teacher_logits=None, distill=None):
    """(loss, ce, kd): cross-entropy on gold labels, or the distillation loss."""
    mask = targets != PAD if setup == "lm" else None
    if teacher_logits is not None:
        total, kd, ce = distillation_loss(logits, teacher_logits, targets, distill, mask)
        return total, ce, kd
    if mask is not None:
        ce = F.cross_entropy(logits[mask].float(), targets[mask])
    else:
        ce = F.cross_entropy(logits.float(), targets)
    return ce, ce, ce.new_zeros(())


@torch.no_grad()
def validation_loss(model: nn.Module, data: Encoded, device, batch_size: int = 256):
    """Mean gold cross-entropy (per example or per token) and accuracy (classification)."""
    model.eval()
    total, count, right = 0.0, 0, 0
    for index in batches(data.lengths, batch_size, shuffle=False, generator=None):
        tokens, lengths, targets = (t.to(device) for t in data.batch(index))
        logits = model(tokens, lengths).float()
        if data.setup == "lm":
            mask = targets != PAD
            total += F.cross_entropy(logits[mask], targets[mask], reduction="sum").item()
            count += int(mask.sum())
        else:
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            count += len(targets)
            right += int((logits.argmax(1) == targets).sum())
    return total / max(count, 1), (right / count if data.setup == "cls" else float("nan"))


class _CsvLog:
    """A CSV file appended row by row; on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path, fields: list[str], keep: Callable[[dict], bool] | None):
        self.path, self.fields = path, fields
        rows = []
        if keep is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if keep(r)]
        self.file = open(path, "w", newline="")  # noqa: SIM115 - closed in close()
        self.writer = csv.DictWriter(self.file, fields)
        self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()

    def write(self, row: dict) -> None:
        self.writer.writerow(row)

    def close(self) -> None:
        self.file.close()


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train_run(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:  # fmt: skip
    """Train (or distil, when `cfg.distill` is set) one run into the folder `out`; returns
    its metrics. `on_step(step)` is called after every optimizer step."""
    out = Path(out)
    ckpt_path = out / "checkpoint.pt"
    if resume and (out / "config.yaml").exists():
        saved = RunConfig.load(out / "config.yaml")
        saved.train.device = cfg.train.device  # a run may move to another device
        if saved.to_dict() != cfg.to_dict():
            raise IbkdError(
                f"--resume: the options differ from {out / 'config.yaml'}; "
                "resume with the run's own settings"
            )
        if (out / "metrics.json").exists():
            return json.loads((out / "metrics.json").read_text())
    elif not resume and out.exists() and any(out.iterdir()):
        raise IbkdError(
            f"--out {out}: exists and is not empty (use --resume to continue a run "
            "there, or another folder)"
        )
    resume = resume and ckpt_path.exists()  # killed before its first checkpoint: start over
    cfg.validate()
    device = pick_device(cfg.train.device)
    seed_everything(cfg.seed)

    teacher = None
    teacher_vocab = None
    if cfg.distill is not None:
        run = load_run(cfg.distill.teacher, device)
        if run.config.setup != cfg.setup:
            raise IbkdError(
                f"--teacher {cfg.distill.teacher}: a {run.config.setup} run, "
                f"cannot teach a {cfg.setup} student"
            )
        teacher, teacher_vocab = Teacher(run, cfg.distill), run.vocab
    data = prepare_data(cfg, teacher_vocab)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml")
    data.vocab.save(out / "vocab.json")

    model = build_model(cfg.model, len(data.vocab), cfg.setup).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.train.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.train.lr,
    )
    steps_per_epoch = math.ceil(len(data.train) / cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lr_lambda(cfg.train.warmup_steps, cfg.train.epochs * steps_per_epoch, cfg.train.schedule),
    )
    state = TrainState()
    best_model = None
    if resume:
        ckpt = load_checkpoint(ckpt_path, device)
        if ckpt.get("vocab_fingerprint") != data.vocab.fingerprint:
            raise IbkdError(f"{ckpt_path}: was trained with another vocabulary")
        try:
            model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError) as e:
            raise IbkdError(
                f"{ckpt_path}: does not fit a {cfg.model.name} model ({str(e).splitlines()[0]})"
            ) from None
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state = TrainState(**ckpt["state"])
        best_model = ckpt.get("best_model")
        _set_rng_state(ckpt["rng"], device)

    def checkpoint(final: bool = False) -> None:
        save_checkpoint(
            ckpt_path, model=model.state_dict(), optimizer=opt.state_dict(),
            scheduler=sched.state_dict(), state=asdict(state), rng=_rng_state(device),
            best_model=best_model, vocab_fingerprint=data.vocab.fingerprint, finished=final,
        )  # fmt: skip

    cache_seconds = 0.0
    if teacher is not None and teacher.cacheable and cfg.setup == "cls":
        t0 = time.perf_counter()
        teacher.cache(data.train, device)
        cache_seconds = time.perf_counter() - t0
    log = _CsvLog(
        out / "log.csv", LOG_FIELDS, (lambda r: int(r["step"]) <= state.step) if resume else None
    )
    epochs_log = _CsvLog(
        out / "epochs.csv",
        EPOCH_FIELDS,
        (lambda r: int(r["epoch"]) <= state.epoch) if resume else None,
    )
    bar = None
    try:
        while state.epoch < cfg.train.epochs and not state.stopped:
            epoch = state.epoch
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            order = batches(
                data.train.lengths,
                cfg.train.batch_size,
                shuffle=True,
                generator=gen,
                bucket=cfg.train.bucket,
            )
            if progress:
                from tqdm import tqdm

                bar = tqdm(
                    total=len(order),
                    initial=state.batch_in_epoch,
                    leave=False,
                    desc=f"{cfg.model.name} epoch {epoch + 1}/{cfg.train.epochs}",
                    dynamic_ncols=True,
                    mininterval=0.5,
                    disable=None,
                )
            model.train()
            t_epoch, loss_sum, tokens_done = time.perf_counter(), 0.0, 0
            for b in range(state.batch_in_epoch, len(order)):
                t0 = time.perf_counter()
                index = order[b]
                tokens, lengths_cpu, targets = data.train.batch(index)
                n_tokens = int(lengths_cpu.sum())
                tokens, lengths = tokens.to(device, non_blocking=True), lengths_cpu.to(device)
                targets = targets.to(device, non_blocking=True)
                logits = model(tokens, lengths)
                t_logits = teacher.for_batch(index, tokens, lengths) if teacher else None
                loss, ce, kd = loss_and_parts(logits, targets, cfg.setup, t_logits, cfg.distill)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = nn.utils.clip_grad_norm_(params, cfg.train.clip)
                opt.step()
                sched.step()
                state.step += 1
                state.batch_in_epoch = b + 1
                # one device sync per step for everything logged
                loss_value, ce_value, kd_value, gn = torch.stack(
                    [loss.detach(), ce.detach(), kd.detach(), grad_norm.detach()]
                ).tolist()
                loss_sum += loss_value
                tokens_done += n_tokens
                state.tokens += n_tokens
                dt = time.perf_counter() - t0
                log.write(
                    {
                        "step": state.step,
                        "epoch": epoch + 1,
                        "loss": f"{loss_value:.5f}",
                        "ce": f"{ce_value:.5f}",
                        "kd": f"{kd_value:.5f}",
                        "lr": f"{sched.get_last_lr()[0]:.3e}",
                        "grad_norm": f"{gn:.4f}",
                        "tokens_per_s": f"{n_tokens / dt:.0f}",
                    }
                )
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        loss=f"{loss_value:.3f}",
                        tok_s=f"{tokens_done / (time.perf_counter() - t_epoch):.0f}",
                    )
                if state.step % cfg.train.checkpoint_every == 0:
                    log.file.flush()
                    checkpoint()
                state.seconds += time.perf_counter() - t0  # the whole step, logging included
                if on_step is not None:
                    on_step(state.step)
            if bar is not None:
                bar.close()
                bar = None
            valid_loss, valid_acc = validation_loss(model, data.valid, device)
            state.epoch += 1
            state.batch_in_epoch = 0
            better = valid_loss < state.best_loss
            if better:
                state.best_loss, state.best_epoch, state.bad_epochs = valid_loss, state.epoch, 0
                best_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                state.bad_epochs += 1
                state.stopped = state.bad_epochs >= cfg.train.patience
            n_batches = max(1, len(order))
            epochs_log.write(
                {
                    "epoch": state.epoch,
                    "step": state.step,
                    "train_loss": f"{loss_sum / n_batches:.5f}",
                    "valid_loss": f"{valid_loss:.5f}",
                    "valid_accuracy": f"{valid_acc:.4f}",
                    "best": int(better),
                    "seconds": f"{state.seconds:.1f}",
                }
            )
            log.file.flush()
            epochs_log.file.flush()
            checkpoint()
    finally:
        if bar is not None:
            bar.close()
        log.close()
        epochs_log.close()

    if best_model is not None:
        model.load_state_dict(best_model)
    metrics = {
        "run": str(out),
        "model": cfg.model.name,
        "setup": cfg.setup,
        "seed": cfg.seed,
        "teacher": cfg.distill.teacher if cfg.distill else None,
        "training": {
            "epochs": state.epoch,
            "best_epoch": state.best_epoch,
            "steps": state.step,
            "early_stopped": state.stopped,
            "seconds": round(state.seconds, 1),
            "tokens_per_s": round(state.tokens / max(state.seconds, 1e-9)),
            "teacher_cache_seconds": round(cache_seconds, 2),
            "device": str(device),
            "train_examples": len(data.train),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    }
    (out / "predictions").mkdir(exist_ok=True)
    for name, split in (("valid", data.valid), ("test", data.test)):
        pred = predict(model, split, data.vocab, device)
        save_predictions(out / "predictions" / f"{name}.npz", pred)
        metrics[name] = compute_metrics(pred)
        if teacher is not None:
            teacher_pred = teacher.run.path / "predictions" / f"{name}.npz"
            metrics[name]["fidelity"] = fidelity(pred, load_predictions(teacher_pred))
    best_model = None
    checkpoint(final=True)  # model = the best weights: what a teacher or evaluation loads
    with atomic_write(out / "metrics.json") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    return metrics
