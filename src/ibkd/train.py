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
from ibkd.data.batching import Encoded, ImageSet, batches, concat, encode, encode_prefixes
from ibkd.data.mnist import image_sets
from ibkd.data.splits import default_dir, load_splits
from ibkd.data.transfer import read_transfer
from ibkd.data.vocab import PAD, Vocab, build_vocab
from ibkd.distill import Teacher, distillation_loss, load_run
from ibkd.distributed import Dist
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
    vocab: Vocab | None  # None for images
    train: Encoded | ImageSet
    valid: Encoded | ImageSet
    tests: dict[str, Encoded | ImageSet]  # "test", and for images its shifted versions


def prepare_data(cfg: RunConfig, vocab: Vocab | None = None) -> RunData:
    """Load the splits, build the vocabulary from the training split (or check that a given
    one, e.g. the teacher's, is the same) and encode everything for the run's setup."""
    d = cfg.data
    if cfg.setup == "mnist":
        return RunData(None, *image_sets(d.data, d.max_train_rows))
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
    train = encode(train_rows, own, cfg.setup)
    if d.transfer is not None:
        extra = transfer_examples(d.transfer, train_rows, own, cfg.setup, d.max_train_rows)
        train = concat(train, extra)
    return RunData(
        own,
        train,
        encode(splits.valid, own, cfg.setup),
        {"test": encode(splits.test, own, cfg.setup)},
    )


def transfer_examples(
    spec: str, train_rows, vocab: Vocab, setup: str, limit: int | None = None
) -> Encoded:
    """The transfer prefixes that are not already training examples (the first `limit`),
    encoded."""
    if setup != "cls":
        raise IbkdError("--transfer: transfer sets are for the classification setup")
    path = default_dir() / "transfer.tsv.gz" if spec == "default" else Path(spec)
    seen = {tuple(r.tokens[: r.verb_index - 1]) for r in train_rows}
    extra = [p for p in read_transfer(path) if p.tokens not in seen][:limit]
    return encode_prefixes([p.tokens for p in extra], [p.label for p in extra], vocab)


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
    """A CSV file appended row by row; on resume, rows after the checkpoint are dropped.
    Not `enabled` (processes other than rank 0): writes nothing."""

    def __init__(
        self, path: Path, fields: list[str], keep: Callable[[dict], bool] | None, enabled=True
    ):
        self.path, self.fields, self.file = path, fields, None
        if not enabled:
            return
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
        if self.file is not None:
            self.writer.writerow(row)

    def flush(self) -> None:
        if self.file is not None:
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
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


def _check_folder(cfg: RunConfig, out: Path, resume: bool) -> dict | None:
    """Refuse to overwrite a run; on resume, insist on the run's own settings. Returns the
    metrics of a run that already finished."""
    if resume and (out / "config.yaml").exists():
        saved = RunConfig.load(out / "config.yaml")
        if _comparable(saved) != _comparable(cfg):  # a run may move to another device
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
    return None


HOST_SETTINGS = ("device", "compile")  # how a run executes, not what it computes


def _comparable(cfg: RunConfig) -> dict:
    """The settings that must match for a checkpoint to be resumed (all but the device and
    whether the model is compiled)."""
    d = cfg.to_dict()
    d["train"] = {k: v for k, v in d["train"].items() if k not in HOST_SETTINGS}
    return d


class _Trainer:
    """The state of one run being trained: model, optimizer, schedule, counters, logs."""

    def __init__(
        self,
        cfg: RunConfig,
        out: Path,
        data: RunData,
        teacher: Teacher | None,
        device: torch.device,
        dist: Dist | None = None,
    ):
        self.cfg, self.out, self.data, self.teacher, self.device = cfg, out, data, teacher, device
        self.dist = dist = dist or Dist()
        vocab_size = len(data.vocab) if data.vocab is not None else 0
        self.model = build_model(cfg.model, vocab_size, cfg.setup).to(device)
        self.net = dist.wrap(self.model, device)  # what training steps run (DDP or the model)
        if cfg.train.compile:
            self.net = torch.compile(self.net)
        self.autocast = torch.autocast("cuda", torch.bfloat16, cfg.train.precision == "bf16")
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(
            [
                {
                    "params": [p for p in self.params if p.dim() >= 2],
                    "weight_decay": cfg.train.weight_decay,
                },
                {"params": [p for p in self.params if p.dim() < 2], "weight_decay": 0.0},
            ],
            lr=cfg.train.lr,
        )
        total = cfg.train.epochs * math.ceil(len(data.train) / cfg.train.batch_size)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_lambda(cfg.train.warmup_steps, total, cfg.train.schedule)
        )
        self.state = TrainState()
        self.best_model: dict | None = None
        self.cache_seconds = 0.0

    @property
    def fingerprint(self) -> str | None:
        return self.data.vocab.fingerprint if self.data.vocab is not None else None

    @property
    def ckpt_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def restore(self) -> None:
        ckpt = load_checkpoint(self.ckpt_path, self.device)
        if ckpt.get("vocab_fingerprint") != self.fingerprint:
            raise IbkdError(f"{self.ckpt_path}: was trained with another vocabulary")
        if ckpt.get("config") != _comparable(self.cfg):
            raise IbkdError(
                f"{self.ckpt_path}: was written by a run with other settings; "
                "remove it (or the folder) to start this run afresh"
            )
        try:
            self.model.load_state_dict(ckpt["model"])
        except (RuntimeError, KeyError) as e:
            raise IbkdError(
                f"{self.ckpt_path}: does not fit a {self.cfg.model.name} model "
                f"({str(e).splitlines()[0]})"
            ) from None
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.state = TrainState(**ckpt["state"])
        self.best_model = ckpt.get("best_model")
        _set_rng_state(ckpt["rng"], self.device)

    def separate_rng(self) -> None:
        """Under DDP: a dropout stream per process (at the start and after a resume)."""
        if self.dist.enabled:
            torch.manual_seed((self.cfg.seed * 1_000_003 + self.state.step) * 1009 + self.dist.rank)

    def checkpoint(self, final: bool = False) -> None:
        if not self.dist.main:
            return
        save_checkpoint(
            self.ckpt_path, model=self.model.state_dict(), optimizer=self.opt.state_dict(),
            scheduler=self.sched.state_dict(), state=asdict(self.state),
            rng=_rng_state(self.device), best_model=self.best_model,
            vocab_fingerprint=self.fingerprint, config=_comparable(self.cfg),
            finished=final,
        )  # fmt: skip

    def cache_teacher(self) -> None:
        if self.teacher is not None and self.teacher.cacheable and self.cfg.setup != "lm":
            t0 = time.perf_counter()
            self.teacher.cache(self.data.train, self.device)
            self.cache_seconds = time.perf_counter() - t0

    def step(self, index: torch.Tensor) -> dict:
        """One optimizer step on the training examples `index`; returns its log row."""
        t0 = time.perf_counter()
        all_lengths = self.data.train.lengths[index]  # of the whole (global) batch
        n_tokens = int(all_lengths.sum())
        local = self.dist.shard(index)
        # DDP averages the processes' gradients; weighting each slice's mean loss by its share
        # of the batch (of its tokens for the LM) makes that the whole batch's gradient
        share = (
            int(self.dist.shard(all_lengths).sum()) / n_tokens
            if self.cfg.setup == "lm"
            else len(local) / len(index)
        )
        index = local
        tokens, lengths, targets = (self._to_device(t) for t in self.data.train.batch(index))
        with self.autocast:
            logits = self.net(tokens, lengths)
            t_logits = self.teacher.for_batch(index, tokens, lengths) if self.teacher else None
        if t_logits is not None:
            t_logits = t_logits.float()
        loss, ce, kd = loss_and_parts(
            logits.float(), targets, self.cfg.setup, t_logits, self.cfg.distill
        )
        self.opt.zero_grad(set_to_none=True)
        (loss * (share * self.dist.world) if self.dist.enabled else loss).backward()
        grad_norm = nn.utils.clip_grad_norm_(self.params, self.cfg.train.clip)
        self.opt.step()
        self.sched.step()
        # one device sync per step for everything logged
        values = torch.stack([loss.detach(), ce.detach(), kd.detach(), grad_norm.detach()])
        loss_v, ce_v, kd_v, gn = values.tolist()
        self.state.step += 1
        self.state.tokens += n_tokens
        return {
            "step": self.state.step,
            "epoch": self.state.epoch + 1,
            "loss": f"{loss_v:.5f}",
            "ce": f"{ce_v:.5f}",
            "kd": f"{kd_v:.5f}",
            "lr": f"{self.sched.get_last_lr()[0]:.3e}",
            "grad_norm": f"{gn:.4f}",
            "tokens_per_s": f"{n_tokens / (time.perf_counter() - t0):.0f}",
        }

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A batch tensor to the device; to a GPU from pinned memory, without blocking."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def epoch(self, log: _CsvLog, progress: bool, on_step) -> float:
        """The rest of the current epoch; returns its mean training loss."""
        cfg, state = self.cfg, self.state
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state.epoch)
        order = batches(
            self.data.train.lengths,
            cfg.train.batch_size,
            shuffle=True,
            generator=gen,
            bucket=cfg.train.bucket,
        )
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=len(order),
                initial=state.batch_in_epoch,
                leave=False,
                desc=f"{cfg.model.name} epoch {state.epoch + 1}/{cfg.train.epochs}",
                dynamic_ncols=True,
                mininterval=0.5,
                disable=None,
            )
        self.model.train()
        losses = []
        try:
            for b in range(state.batch_in_epoch, len(order)):
                if not self.dist.usable(order[b]):  # fewer examples than processes
                    continue
                t0 = time.perf_counter()
                row = self.step(order[b])
                state.batch_in_epoch = b + 1
                log.write(row)
                losses.append(float(row["loss"]))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=row["loss"][:5], tok_s=row["tokens_per_s"])
                if state.step % cfg.train.checkpoint_every == 0:
                    log.flush()
                    self.checkpoint()
                state.seconds += time.perf_counter() - t0  # the whole step, logging included
                if on_step is not None:
                    on_step(state.step)
        finally:
            if bar is not None:
                bar.close()
        return float(np.mean(losses)) if losses else float("nan")

    def end_epoch(self, train_loss: float, epochs_log: _CsvLog) -> None:
        """Validate, keep the best weights, decide on early stopping, checkpoint."""
        state = self.state
        valid_loss, valid_acc = math.nan, math.nan
        if self.dist.main:  # under DDP the others take rank 0's numbers (BatchNorm may differ)
            valid_loss, valid_acc = validation_loss(self.model, self.data.valid, self.device)
        valid_loss, valid_acc = self.dist.from_main([valid_loss, valid_acc], self.device)
        state.epoch += 1
        state.batch_in_epoch = 0
        better = valid_loss < state.best_loss
        if better:
            state.best_loss, state.best_epoch, state.bad_epochs = valid_loss, state.epoch, 0
            self.best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            state.bad_epochs += 1
            state.stopped = state.bad_epochs >= self.cfg.train.patience
        epochs_log.write(
            {
                "epoch": state.epoch,
                "step": state.step,
                "train_loss": f"{train_loss:.5f}",
                "valid_loss": f"{valid_loss:.5f}",
                "valid_accuracy": f"{valid_acc:.4f}",
                "best": int(better),
                "seconds": f"{state.seconds:.1f}",
            }
        )
        epochs_log.flush()
        self.checkpoint()

    def finish(self) -> dict:
        """Predict valid and test with the best weights; write predictions and metrics
        (rank 0; the other processes of a DDP run return {})."""
        cfg, state, out = self.cfg, self.state, self.out
        if not self.dist.main:
            return {}
        if self.best_model is not None:
            self.model.load_state_dict(self.best_model)
        metrics = {
            "run": str(out), "model": cfg.model.name, "setup": cfg.setup, "seed": cfg.seed,
            "teacher": cfg.distill.teacher if cfg.distill else None,
            "training": {
                "epochs": state.epoch, "best_epoch": state.best_epoch, "steps": state.step,
                "early_stopped": state.stopped, "seconds": round(state.seconds, 1),
                "tokens_per_s": round(state.tokens / max(state.seconds, 1e-9)),
                "teacher_cache_seconds": round(self.cache_seconds, 2),
                "device": str(self.device), "threads": torch.get_num_threads(),
                "processes": self.dist.world,
                "train_examples": len(self.data.train),
                "parameters": sum(p.numel() for p in self.model.parameters()),
            },
        }  # fmt: skip
        (out / "predictions").mkdir(exist_ok=True)
        for name, split in [("valid", self.data.valid), *self.data.tests.items()]:
            pred = predict(self.model, split, self.data.vocab, self.device)
            save_predictions(out / "predictions" / f"{name}.npz", pred)
            metrics[name] = compute_metrics(pred)
            if self.teacher is not None:
                teacher_pred = self.teacher.run.path / "predictions" / f"{name}.npz"
                metrics[name]["fidelity"] = fidelity(pred, load_predictions(teacher_pred))
        self.best_model = None
        self.checkpoint(final=True)  # model = the best weights: what a teacher or evaluation loads
        with atomic_write(out / "metrics.json") as f:
            json.dump(metrics, f, indent=2)
            f.write("\n")
        return metrics


def train_run(
    cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:  # fmt: skip
    """Train (or distil, when `cfg.distill` is set) one run into the folder `out`; returns
    its metrics. `on_step(step)` is called after every optimizer step."""
    out = Path(out)
    dist, device = Dist.from_env(pick_device(cfg.train.device))
    try:
        metrics = _train(cfg, out, resume, progress and dist.main, on_step, dist, device)
        dist.barrier()  # leave the process group together, once rank 0 has written everything
        return metrics
    finally:
        dist.close()


def _train(cfg, out: Path, resume: bool, progress: bool, on_step, dist: Dist, device) -> dict:
    finished = _check_folder(cfg, out, resume)
    resume = resume and (out / "checkpoint.pt").exists()  # killed before a checkpoint: restart
    dist.barrier()  # every process has looked at the folder before rank 0 writes to it
    if finished is not None:
        return finished if dist.main else {}
    cfg.validate()
    if cfg.train.precision == "bf16" and device.type != "cuda":
        raise IbkdError(f"--precision bf16: for CUDA devices, not {device.type}")
    seed_everything(cfg.seed)
    teacher = None
    if cfg.distill is not None:
        run = load_run(cfg.distill.teacher, device)
        if run.config.setup != cfg.setup:
            raise IbkdError(
                f"--teacher {cfg.distill.teacher}: a {run.config.setup} run, "
                f"cannot teach a {cfg.setup} student"
            )
        teacher = Teacher(run, cfg.distill)
    data = prepare_data(cfg, teacher.run.vocab if teacher else None)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / "config.yaml")
        if data.vocab is not None:
            data.vocab.save(out / "vocab.json")

    trainer = _Trainer(cfg, out, data, teacher, device, dist)
    if resume:
        trainer.restore()
    trainer.separate_rng()
    trainer.cache_teacher()
    state = trainer.state
    keep_steps = (lambda r: int(r["step"]) <= state.step) if resume else None
    keep_epochs = (lambda r: int(r["epoch"]) <= state.epoch) if resume else None
    log = _CsvLog(out / "log.csv", LOG_FIELDS, keep_steps, dist.main)
    epochs_log = _CsvLog(out / "epochs.csv", EPOCH_FIELDS, keep_epochs, dist.main)
    try:
        while state.epoch < cfg.train.epochs and not state.stopped:
            train_loss = trainer.epoch(log, progress, on_step)
            trainer.end_epoch(train_loss, epochs_log)
    finally:
        log.close()
        epochs_log.close()
    return trainer.finish()
