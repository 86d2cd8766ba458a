"""Typed run configuration: data, model, training, distillation; YAML load/save.

The model part is the registered architecture's own config class (`ibkd.models`: `LSTMConfig`
in `models/lstm.py`, ...), with its preset sizes declared beside it; `ModelConfig(name, arch,
...)` resolves `arch` there. A run's config is assembled from a budget's recipe by
`ibkd.recipes.run_config` (the budgets' numbers: `ibkd/configs/SCENARIO/BUDGET.toml`).
`RunConfig.validate` checks every field's type and range (finite numbers, sizes >= 1), so a
bad option or a mistyped config.yaml is refused with one line before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ibkd.data.vocab import SIGNATURE_TOKENS, SPECIALS
from ibkd.errors import IbkdError
from ibkd.files import atomic_write
from ibkd.models import LM_SOFTMAXES, ModelConfig, config_from_dict
from ibkd.models import model_names as model_names  # re-exported: the registry's preset names
from ibkd.tasks import OPTIONS, get_task, task_names, tasks_taking

KD_SCALES = ("t2", "inv-t2", "none")
CALIBRATIONS = ("none", "temperature")  # the teacher's calibration (`ibkd.distill`)
SEED_LIMIT = 2**32
"""Seeds (a run's `seed`, the split's `split_seed`) are integers in [0, SEED_LIMIT): numpy's
legacy generator (Reflect's split) takes no other, and every seed a run derives from its own
(`ibkd.train`: seed x 1,000,003 + step, x 1009) stays within torch's 64-bit range."""


@dataclass
class DataConfig:
    """Which data a run trains and is tested on (`ibkd.data.splits.load_splits`)."""

    data: str = "default"  # `default`, a folder with train/valid/test, or one Linzen file
    split_seed: int = 42  # for one Linzen file: Reflect's split
    train_fraction: float = 0.10
    valid_fraction: float = 0.01
    max_train_rows: int | None = None  # only the first N training rows (and transfer prefixes)
    # the vocabulary's size cap (specials included): the most frequent training words, the rest
    # `<unk>`; None keeps every training word
    vocab_size: int | None = None
    # a word outside the vocabulary is its unknown-word signature (<unk-s>, <unk-ed>, ...:
    # `ibkd.data.vocab`), not <unk>; for text with rare words left in (a text pool)
    unk_signatures: bool = False
    # classification: extra training inputs, the prefix before every VBZ/VBP of the training
    # corpus (`default`: the shipped one, or a path); labelled by the teacher when distilling,
    # by the verb's tag otherwise
    transfer: str | None = None
    # the language model's text (`ibkd.data.lm_text`): an absolute folder with train, valid and
    # test sentences, or a text pool file (its held-out sentences chosen by a hash); the LM
    # trains on every training sentence, its vocabulary is built from them and its perplexity
    # is measured on the held-out ones; None: the agreement rows' sentences (configs saved
    # before it existed load as None)
    lm_text: str | None = None


@dataclass
class TrainConfig:
    """The optimisation: AdamW, warm-up then cosine (or constant) learning rate, gradient
    clipping, early stopping on the validation loss. `device` and `compile` say how a run
    executes and are not part of its identity (`ibkd.runs.config_identity`); `precision`
    changes the numbers and is."""

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
    precision: str = "fp32"  # fp32 | bf16 (autocast: CUDA, CPUs with native bf16)
    compile: bool = False  # torch.compile the training model
    # classification: weight of an auxiliary next-word loss over the prefix (Enguehard et al.
    # 2017; `ibkd.losses.aux_lm`); 0: none (configs saved before it existed load as 0)
    aux_lm: float = 0.0


@dataclass
class DistillConfig:
    """Distillation from a finished teacher run (Hinton et al. 2015; Abnar et al. 2020, sec. 2)
    or from an online teacher trained beside the student (`online`): `loss` names a loss of the
    `ibkd.losses` registry; `calibration` (`ibkd.distill`) is `none` or `temperature` (Guo et
    al. 2017). Configs saved before a field existed load with its default."""

    teacher: str  # the teacher's run folder ("" for an online teacher)
    loss: str = "kd"  # the distillation loss (ibkd.losses registry)
    temperature: float = 1.0
    alpha: float = 1.0  # weight of the KD term; 1 - alpha goes to the gold CE
    kd_scale: str = "t2"  # t2 (Hinton) | inv-t2 (Reflect) | none
    teacher_dropout: bool = False  # Reflect computed the teacher's targets with dropout on
    cache_teacher: bool = True  # compute the (deterministic) teacher outputs once, when possible
    calibration: str = "none"  # none | temperature: fit T_cal on the teacher's validation NLL
    # a frozen LM teacher's outputs at every training token computed once (`ibkd.teacher_cache`):
    # none, full (exact; refused above a memory limit) or topk:K (an approximation)
    teacher_cache: str = "none"
    # online distillation: the teacher's model config (`ModelConfig.to_dict()`), trained from
    # scratch on gold labels in the student's loop; None: a finished teacher run (`teacher`)
    online: dict | None = None


@dataclass
class RunConfig:
    """Everything that decides what a run computes; saved as the run folder's config.yaml."""

    setup: str  # the task (`ibkd.tasks`): cls | lm | mnist | a registered one
    model: ModelConfig
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts (what config.yaml holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> RunConfig:
        """A validated config from nested dicts; unknown keys, wrong types or values out of
        range raise IbkdError naming `where` and the key."""

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
        for key in ("setup", "model"):  # the keys without a default
            if d.get(key) is None:
                raise IbkdError(f"{where}: `{key}` is missing (every run config names one)")
        d["model"] = config_from_dict(d["model"], where)  # the architecture's own config class
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

    def validate(self, where: str | None = None) -> None:
        """Check every field's type and range; raise IbkdError naming the command-line option
        (`where` None: a config built from the options) or, for a config read from a file
        (`where` the file), the file and the key, and what was expected."""
        at = _Names(where)
        for name, part in (("model", self.model), ("data", self.data), ("train", self.train),
                           ("distill", self.distill), (None, self)):  # fmt: skip
            if part is not None:
                _check_types(part, where or "config", name)
        for key, value in (
            ("data.data", self.data.data),
            ("data.transfer", self.data.transfer),
            ("data.lm_text", self.data.lm_text),
            ("train.device", self.train.device),
        ):
            if value is not None and not value.strip():
                raise at.error(f"{at(key)}: an empty value")
        if self.setup not in task_names():
            raise at.error(f"{at('setup')} {self.setup!r}, expected one of {task_names()}")
        _check_model(self.model, self.setup, at)
        _check_range(at, "seed", self.seed, low=0, high=SEED_LIMIT - 1)
        t = self.train
        _check_range(at, "train.epochs", t.epochs, low=1)
        _check_range(at, "train.batch_size", t.batch_size, low=1)
        _check_range(at, "train.lr", t.lr, low=0, open_low=True)
        _check_range(at, "train.weight_decay", t.weight_decay, low=0)
        _check_range(at, "train.warmup_steps", t.warmup_steps, low=0)
        _check_range(at, "train.clip", t.clip, low=0, open_low=True)
        _check_range(at, "train.patience", t.patience, low=1)
        _check_range(at, "train.checkpoint_every", t.checkpoint_every, low=1)
        _check_range(at, "train.aux_lm", t.aux_lm, low=0)
        d = self.data
        if d.max_train_rows is not None:
            _check_range(at, "data.max_train_rows", d.max_train_rows, low=1)
        if d.vocab_size is not None:  # the specials (and signatures) and at least one word
            first = len(SPECIALS) + (len(SIGNATURE_TOKENS) if d.unk_signatures else 0)
            _check_range(at, "data.vocab_size", d.vocab_size, low=first + 1)
        _check_range(at, "data.split_seed", d.split_seed, low=0, high=SEED_LIMIT - 1)
        _check_range(at, "data.train_fraction", d.train_fraction, low=0, high=1)
        _check_range(at, "data.valid_fraction", d.valid_fraction, low=0, high=1)
        if self.distill is not None:
            from ibkd.losses import LOSSES

            if self.distill.loss not in LOSSES:
                raise at.error(
                    f"{at('distill.loss')} {self.distill.loss!r}: expected one of "
                    f"{', '.join(LOSSES)}"
                )
            if self.distill.kd_scale not in KD_SCALES:
                raise at.error(
                    f"{at('distill.kd_scale')} {self.distill.kd_scale!r}: expected one of "
                    f"{', '.join(KD_SCALES)}"
                )
            _check_distill(self.distill, self.setup, at)
            _check_range(at, "distill.alpha", self.distill.alpha, low=0, high=1)
            _check_range(at, "distill.temperature", self.distill.temperature, low=0,
                         open_low=True)  # fmt: skip
        _check_task_options(self, at)
        if d.unk_signatures and d.vocab_size is None:
            raise at.error(
                f"{at('data.unk_signatures')}: needs a vocabulary cap ({at('data.vocab_size')} "
                "N); with every training word in the vocabulary, no training word is written as "
                "a signature"
            )
        if self.train.precision not in ("fp32", "bf16"):
            raise at.error(
                f"{at('train.precision')} {self.train.precision!r}, expected fp32 or bf16"
            )
        if self.train.schedule not in ("cosine", "constant"):
            raise at.error(
                f"{at('train.schedule')} {self.train.schedule!r}, expected cosine or constant"
            )

    def save(self, path: str | os.PathLike) -> None:
        """Write config.yaml atomically."""
        with atomic_write(path) as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunConfig:
        """Read and validate a config.yaml (safe YAML: no code runs from it); any problem raises
        IbkdError naming the file."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IbkdError(f"{path}: no such run config") from None
        except UnicodeDecodeError as e:
            raise IbkdError(f"{path}: not UTF-8 text (byte {e.start + 1})") from None
        except OSError as e:
            raise IbkdError(f"{path}: cannot read ({e.strerror})") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise IbkdError(f"{where}: not valid YAML ({problem})") from None
        if not isinstance(data, dict):
            raise IbkdError(f"{path}: expected a mapping of run settings")
        return cls.from_dict(data, where=str(path))


# the command-line option of each config key that has one (`ibkd train` / `ibkd distill`)
FLAGS = {
    "seed": "--seed", "train.epochs": "--epochs", "train.batch_size": "--batch-size",
    "train.lr": "--lr", "train.aux_lm": "--aux-lm", "train.precision": "--precision",
    "train.device": "--device", "data.data": "--data",
    "data.max_train_rows": "--max-train-rows", "data.vocab_size": "--vocab-size",
    "data.unk_signatures": "--unk-signatures", "data.lm_text": "--lm-text",
    "data.transfer": "--transfer", "model.lm_softmax": "--lm-softmax",
    "distill.loss": "--kd-loss", "distill.kd_scale": "--kd-scale", "distill.alpha": "--alpha",
    "distill.temperature": "--temperature", "distill.calibration": "--teacher-calibration",
    "distill.teacher": "--teacher", "distill.online": "--online",
    "distill.teacher_dropout": "--teacher-dropout", "distill.cache_teacher": "--no-teacher-cache",
    "distill.teacher_cache": "--teacher-cache",
}  # fmt: skip


class _Names:
    """How a config's errors name its settings: for a config built from the command line
    (`file` None) by their options (`--epochs`; a key without one as itself), for one read from
    a file by their keys (`train.epochs`), each message prefixed with the file."""

    def __init__(self, file: str | None):
        self.file = file

    def __call__(self, key: str) -> str:
        return FLAGS.get(key, key) if self.file is None else key

    def error(self, message: str) -> IbkdError:
        return IbkdError(message if self.file is None else f"{self.file}: {message}")


# model sizes that are counts (>= 1; `hidden` 0 means "as `dim`"), checked for every
# architecture that has them, as are dropout probabilities (any field named `*dropout`)
MODEL_COUNTS = ("dim", "layers", "heads", "ff_mult", "max_len")


def _check_model(model: ModelConfig, setup: str, at: _Names, prefix: str = "model") -> None:
    """A model config's sizes (`MODEL_COUNTS` >= 1, `hidden` >= 0, `widths` a non-empty list of
    counts), dropout probabilities in [0, 1], `lm_softmax` one of `LM_SOFTMAXES` (`adaptive`:
    language models only) and `adaptive_cutoffs`, when given, strictly increasing ids >= 1
    (below the vocabulary's size: checked when the model is built); IbkdError naming the setting
    (`prefix.field`: `model`, or `distill.online` for an online teacher) otherwise."""
    for f in fields(model):
        value, key = getattr(model, f.name), f"{prefix}.{f.name}"
        if f.name in MODEL_COUNTS or f.name == "hidden":
            _check_range(at, key, value, low=0 if f.name == "hidden" else 1)
        elif f.name.endswith("dropout"):
            _check_range(at, key, value, low=0, high=1)
        elif f.name == "widths" and (not value or min(value) < 1):
            raise at.error(f"{at(key)} {value}: expected a non-empty list of widths >= 1")
    softmax = getattr(model, "lm_softmax", "full")
    if softmax not in LM_SOFTMAXES:
        raise at.error(
            f"{at(prefix + '.lm_softmax')} {softmax!r}: expected one of {', '.join(LM_SOFTMAXES)}"
        )
    if softmax != "full" and setup != "lm":
        raise at.error(
            f"{at(prefix + '.lm_softmax')} {softmax}: for the language-model setup (lm), not "
            f"{setup}"
        )
    cutoffs = getattr(model, "adaptive_cutoffs", None)
    if cutoffs is not None and (
        not cutoffs or cutoffs[0] < 1 or any(a >= b for a, b in zip(cutoffs, cutoffs[1:]))
    ):
        raise at.error(
            f"{at(prefix + '.adaptive_cutoffs')} {cutoffs}: expected strictly increasing "
            "vocabulary ids >= 1"
        )


def _check_task_options(cfg: RunConfig, at: _Names) -> None:
    """The options that only some tasks take (`ibkd.tasks.OPTIONS`: `--aux-lm`, `--lm-text`,
    `--transfer`, `--teacher-calibration`, `--unk-signatures`), given only to a task that takes them
    (`Task.options`), and `--vocab-size` only to a task with a vocabulary (`Task.has_vocab`);
    IbkdError naming the setting and the setups that take it."""
    d = cfg.distill
    given = {  # each of `OPTIONS`: its config key, and whether the config sets it
        "aux_lm": ("train.aux_lm", cfg.train.aux_lm > 0),
        "lm_text": ("data.lm_text", cfg.data.lm_text is not None),
        "transfer": ("data.transfer", cfg.data.transfer is not None),
        "calibration": ("distill.calibration", d is not None and d.calibration != "none"),
        "unk_signatures": ("data.unk_signatures", cfg.data.unk_signatures),
    }
    task = get_task(cfg.setup)
    for option in OPTIONS:
        key, is_set = given[option]
        if is_set and option not in task.options:
            raise at.error(f"{at(key)}: for {tasks_taking(option)}, not {cfg.setup}")
    if cfg.data.vocab_size is not None and not task.has_vocab:
        raise at.error(f"{at('data.vocab_size')}: {cfg.setup}'s data has no vocabulary")


def _check_distill(d: DistillConfig, setup: str, at: _Names) -> None:
    """The teacher's source (a run folder or --online, not both) and the calibration;
    IbkdError naming the setting (the setups they apply to: `_check_task_options`)."""
    calibration, loss_name = at("distill.calibration"), at("distill.loss")
    if d.calibration not in CALIBRATIONS:
        raise at.error(
            f"{calibration} {d.calibration!r}: expected one of {', '.join(CALIBRATIONS)}"
        )
    from ibkd.losses import LOSSES

    loss = LOSSES.get(d.loss)
    if d.calibration != "none" and loss is not None and not loss.teacher_probabilities:
        raise at.error(
            f"{calibration} {d.calibration} with {loss_name} {d.loss}: that loss does "
            "not use the teacher's probabilities, so calibrating them would change nothing "
            f"(use {loss_name} kd, or no calibration)"
        )
    _check_teacher_cache(d, setup, at)
    if d.online is None:
        return
    online = at("distill.online")
    if d.teacher:
        raise at.error(f"{online}: trains its own teacher; give it without {at('distill.teacher')}")
    if d.calibration != "none":
        raise at.error(f"{calibration}: calibrates a finished teacher, not {online}")
    if not isinstance(d.online, dict):
        raise at.error(f"distill.online: expected a model config mapping, got {d.online!r}")
    where = online if at.file is None else f"{at.file}: distill.online"
    teacher = config_from_dict(d.online, where)
    _check_types(teacher, at.file or "config", "distill.online")
    _check_model(teacher, setup, at, "distill.online")


def _check_teacher_cache(d: DistillConfig, setup: str, at: _Names) -> None:
    """`--teacher-cache` is none, full or topk:K, and anything but none only for a frozen LM
    teacher without dropout and a loss of its outputs alone; IbkdError naming the setting."""
    from ibkd.losses import LOSSES
    from ibkd.teacher_cache import parse_spec

    name = at("distill.teacher_cache")
    try:
        enabled = parse_spec(d.teacher_cache, name).enabled
    except IbkdError as e:
        raise at.error(str(e)) from None
    if not enabled:
        return
    loss = LOSSES.get(d.loss)
    why = (
        f"for the language-model setup (lm), not {setup} (a classification teacher's outputs "
        "are cached whole already)" if setup != "lm"
        else f"caches a finished teacher's outputs, not {at('distill.online')}'s"
        if d.online is not None
        else f"the teacher's outputs with {at('distill.teacher_dropout')} are random, not "
        "cacheable" if d.teacher_dropout
        else f"not with {at('distill.cache_teacher')}" if not d.cache_teacher
        else f"caches the teacher's outputs only, and {at('distill.loss')} {d.loss} needs its "
        "representations" if loss is not None and loss.representations
        else None
    )  # fmt: skip
    if why is not None:
        raise at.error(f"{name} {d.teacher_cache}: {why}")


_TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}


def _check_types(obj: Any, where: str, path: str | None) -> None:
    """Each scalar field of the dataclass `obj` has its declared type (an int is a float;
    a bool is not an int); `list[int]` fields hold integers."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        declared = str(f.type).replace(" ", "").split("|")
        if value is None and "None" in declared:
            continue
        kind = declared[0]
        key = f"{path}.{f.name}" if path else f.name
        if kind == "list[int]":
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
            expected = "a list of integers"
        elif kind in _TYPE_NAMES:
            ok = {
                "int": isinstance(value, int) and not isinstance(value, bool),
                "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                "str": isinstance(value, str),
                "bool": isinstance(value, bool),
            }[kind]
            expected = _TYPE_NAMES[kind]
        else:
            continue  # a nested config, checked on its own
        if not ok:
            raise IbkdError(f"{where}: `{key}` is {value!r}, expected {expected}")


def _check_range(
    at: _Names, key: str, value: float, low: float | None = None, high: float | None = None,
    open_low: bool = False,
) -> None:  # fmt: skip
    """`value` (of the setting `key`) is finite and within [low, high] (low excluded when
    `open_low`); IbkdError naming the setting (`_Names`) otherwise."""
    if not math.isfinite(value):
        raise at.error(f"{at(key)} {value}: expected a finite number")
    too_low = low is not None and (value <= low if open_low else value < low)
    if too_low or (high is not None and value > high):
        bounds = (
            (f"> {low}" if open_low else f">= {low}")
            if high is None
            else (f"in ({low}, {high}]" if open_low else f"in [{low}, {high}]")
        )
        raise at.error(f"{at(key)} {value}: expected a value {bounds}")
