"""Typed run configuration: data, model, training, distillation; YAML load/save; presets.

Presets follow the paper (PAPER.md's table of Reflect's configs) under `paper`; `quick` is small
enough for `ibkd reproduce --budget quick` on a laptop CPU. The model part is the registered
architecture's own config class (`ibkd.models`: `LSTMConfig` in `models/lstm.py`, ...), with its
preset sizes declared beside it; `ModelConfig(name, arch, ...)` resolves `arch` there.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ibkd.errors import IbkdError
from ibkd.files import atomic_write
from ibkd.models import ModelConfig, config_from_dict, model_presets
from ibkd.models import model_names as model_names  # re-exported: the registry's preset names

SETUPS = ("cls", "lm", "mnist")  # agreement classification, agreement LM, scenario 2
PRESETS = ("paper", "quick")
KD_SCALES = ("t2", "inv-t2", "none")


@dataclass
class DataConfig:
    data: str = "default"  # `default`, a folder with train/valid/test, or one Linzen file
    split_seed: int = 42  # for one Linzen file: Reflect's split
    train_fraction: float = 0.10
    valid_fraction: float = 0.01
    max_train_rows: int | None = None  # only the first N training rows (and transfer prefixes)
    # classification: extra training inputs, the prefix before every VBZ/VBP of the training
    # corpus (`default`: the shipped one, or a path); labelled by the teacher when distilling,
    # by the verb's tag otherwise
    transfer: str | None = None


@dataclass
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 500
    schedule: str = "cosine"  # cosine (to 0 after warm-up) | constant
    clip: float = 1.0
    patience: int = 10  # early stopping: epochs without a better validation loss
    checkpoint_every: int = 500  # steps; also at each epoch's end
    device: str = "auto"  # auto | cpu | cuda | mps
    bucket: bool = True  # length-bucketed batches
    precision: str = "fp32"  # fp32 | bf16 (autocast, CUDA only)
    compile: bool = False  # torch.compile the training model


@dataclass
class DistillConfig:
    teacher: str  # the teacher's run folder
    temperature: float = 1.0
    alpha: float = 1.0  # weight of the KD term; 1 - alpha goes to the gold CE
    kd_scale: str = "t2"  # t2 (Hinton) | inv-t2 (Reflect) | none
    teacher_dropout: bool = False  # Reflect computed the teacher's targets with dropout on
    cache_teacher: bool = True  # compute the (deterministic) teacher outputs once, when possible


@dataclass
class RunConfig:
    setup: str  # cls | lm
    model: ModelConfig
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> RunConfig:
        def build(kind, values, path):
            if not isinstance(values, dict):
                raise IbkdError(f"{where}: `{path}` should be a mapping, got {values!r}")
            known = {f.name for f in fields(kind)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise IbkdError(
                    f"{where}: unknown key(s) {unknown} in `{path}`; known: {sorted(known)}"
                )
            try:
                return kind(**values)
            except TypeError as e:
                raise IbkdError(f"{where}: `{path}`: {e}") from None

        d = dict(d)
        if d.get("model") is not None:  # the architecture's own config class
            d["model"] = config_from_dict(d["model"], where)
        sub = {
            "data": DataConfig,
            "train": TrainConfig,
            "distill": DistillConfig,
        }
        for key, kind in sub.items():
            if d.get(key) is not None:
                d[key] = build(kind, d[key], key)
        cfg = build(RunConfig, d, "run")
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "config") -> None:
        if self.setup not in SETUPS:
            raise IbkdError(f"{where}: setup {self.setup!r}, expected one of {SETUPS}")
        if self.distill is not None:
            if self.distill.kd_scale not in KD_SCALES:
                raise IbkdError(
                    f"--kd-scale {self.distill.kd_scale!r}: expected one of {', '.join(KD_SCALES)}"
                )
            if not 0 <= self.distill.alpha <= 1:
                raise IbkdError(f"--alpha {self.distill.alpha}: expected a value in [0, 1]")
            if self.distill.temperature <= 0:
                raise IbkdError(f"--temperature {self.distill.temperature}: expected > 0")
        if self.train.precision not in ("fp32", "bf16"):
            raise IbkdError(f"{where}: precision {self.train.precision!r}, expected fp32 or bf16")
        if self.train.schedule not in ("cosine", "constant"):
            raise IbkdError(
                f"{where}: schedule {self.train.schedule!r}, expected cosine or constant"
            )

    def save(self, path: str | os.PathLike) -> None:
        with atomic_write(path) as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IbkdError(f"{path}: no such run config") from None
        except yaml.YAMLError as e:
            raise IbkdError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise IbkdError(f"{path}: expected a mapping of run settings")
        return cls.from_dict(data, where=str(path))


# ---------------------------------------------------------------------------------------------
# Presets. The models' sizes are declared in each architecture's file (`ibkd.models`); the
# training budgets here.

_AGREEMENT_TRAIN = {
    "paper": TrainConfig(epochs=60, batch_size=64, lr=1e-3, warmup_steps=1000, patience=10),
    "quick": TrainConfig(epochs=10, batch_size=64, lr=2e-3, warmup_steps=100, patience=3),
}
TRAIN_PRESETS: dict[tuple[str, str], TrainConfig] = {
    ("cls", "paper"): _AGREEMENT_TRAIN["paper"], ("cls", "quick"): _AGREEMENT_TRAIN["quick"],
    ("lm", "paper"): _AGREEMENT_TRAIN["paper"], ("lm", "quick"): _AGREEMENT_TRAIN["quick"],
    # Reflect's MNIST runs: Adam 1e-4, batch 128, up to 400 epochs
    ("mnist", "paper"): TrainConfig(epochs=400, batch_size=128, lr=1e-4, weight_decay=0.0,
                                    warmup_steps=0, schedule="constant", patience=20),
    ("mnist", "quick"): TrainConfig(epochs=5, batch_size=128, lr=1e-3, weight_decay=0.0,
                                    warmup_steps=100, patience=3),
}  # fmt: skip

DISTILL_PRESETS: dict[str, dict[str, float]] = {  # Reflect's settings
    "cls": {"temperature": 1.0, "alpha": 1.0},
    "lm": {"temperature": 1.0, "alpha": 0.9},
    "mnist": {"temperature": 5.0, "alpha": 1.0},
}


def preset(setup: str, model: str, name: str = "paper") -> tuple[ModelConfig, TrainConfig]:
    """The model and training settings of a preset (copies: safe to change)."""
    if setup not in SETUPS:
        raise IbkdError(f"--setup {setup!r}: expected one of {', '.join(SETUPS)}")
    if name not in PRESETS:
        raise IbkdError(f"--preset {name!r}: expected one of {', '.join(PRESETS)}")
    models = model_presets(setup, name)
    if model not in models:
        raise IbkdError(
            f"--model {model!r}: unknown for --setup {setup}; expected one of {', '.join(models)}"
        )
    return copy.deepcopy(models[model]), copy.deepcopy(TRAIN_PRESETS[(setup, name)])
