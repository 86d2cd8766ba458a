"""Tasks: what a run learns, as one abstraction. A task is the `setup` of a run's config
(`cls`, `lm`, `mnist`, or one registered by a user) and says everything that depends on it:

- its data: `prepare(cfg, vocab)` loads the splits and encodes them (`ibkd.data.prepare.RunData`:
  vocabulary, training, validation and test sets, each with `batch(index)`, `lengths`, `meta()`);
- its vocabulary: `has_vocab` (a run folder's vocab.json; images have none);
- its batches and loss positions: a set's `batch(index)` gives (inputs, lengths, targets);
  `per_token` says whether the loss is over every non-pad target token (a language model:
  targets [B, L]) or one target per example (targets [B]);
- the predictions it writes: `predict(model, data, vocab, device)` -> the arrays of
  `predictions/<split>.npz` (`ibkd.predictions`), which hold at least `prediction_keys`;
- its metrics: computed from those predictions by the metric registry (`ibkd.metrics`), which
  applies each metric to the arrays it needs, so reports recompute them from saved predictions
  without the task;
- the shapes its models are built for: `shapes(vocab)` -> `Shapes` (vocabulary size, classes,
  image channels x height x width, outputs per token or per example);
- which of the options that apply to some tasks only it takes (`options`, from `OPTIONS`).

The built-in tasks are one file each in this package (`agreement_cls.py`, `agreement_lm.py`,
`images.py`), registered when the registry is first consulted; a task registered from outside
the package (`register_task`) works the same way (docs/extending.md, "Adding a task").

This module imports nothing heavy (the config validates `setup` against it without loading
torch); the built-in tasks load torch when discovered.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Protocol, runtime_checkable

from ibkd.errors import IbkdError
from ibkd.models import Shapes

__all__ = ["OPTIONS", "Shapes", "Task", "get_task", "register_task", "task_names",
           "tasks_taking", "unregister_task"]  # fmt: skip

OPTIONS: dict[str, str] = {
    "aux_lm": "--aux-lm",
    "lm_text": "--lm-text",
    "transfer": "--transfer",
    "calibration": "--teacher-calibration",
    "unk_signatures": "--unk-signatures",
}
"""The run options that only some tasks take (config field -> command-line option); a task
lists those it takes in `Task.options`, and `RunConfig.validate` refuses the others."""


@runtime_checkable
class Task(Protocol):
    """What a run learns (module note). The heavy types are named in the docstrings, not
    imported: this module stays free of torch.

    `cfg` is an `ibkd.config.RunConfig`; `vocab` an `ibkd.data.vocab.Vocab` or None (tasks
    without a vocabulary); `data` one encoded set of `RunData` (`Encoded`, `ImageSet` or any
    object with `__len__`, `lengths` [N] int64, `meta()`, `rows` and `batch(index)`)."""

    name: str
    """the run config's `setup`: the name saved in config.yaml and metrics.json"""
    description: str
    """a few words for messages and help texts (`classification`)"""
    per_token: bool
    """loss positions: True, every non-pad target token (targets [B, L]); False, one per
    example (targets [B])"""
    has_vocab: bool
    """the data has a vocabulary (saved as the run folder's vocab.json)"""
    options: frozenset[str]
    """the task-specific options (keys of `OPTIONS`) it takes"""
    prediction_keys: tuple[str, ...]
    """the arrays every `predictions/<split>.npz` of the task holds (`ibkd.predictions.KEYS`)"""

    def prepare(self, cfg: Any, vocab: Any = None) -> Any:
        """The run's data (`RunData`) for the config `cfg`; with `vocab` (a teacher's), the
        run's own vocabulary must equal it. IbkdError for unusable data."""

    def shapes(self, vocab: Any) -> Shapes:
        """The input and output shapes of the task's models, given the run's vocabulary."""

    def predict(self, model: Any, data: Any, vocab: Any, device: Any) -> dict[str, Any]:
        """The model's (`nn.Module`) predictions on one encoded set: {key: numpy array [N, ...]}
        holding `prediction_keys`, in the set's example order."""


_REGISTRY: dict[str, Task] = {}
_discovered = False


def _discover() -> None:
    """Import every module of this package once (each registers its task)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{m.name}")


def register_task(task: Task) -> Task:
    """Register `task` under `task.name` and return it. Raises `ValueError` for a name taken
    already, an object that lacks a part of `Task`, or an option not in `OPTIONS`."""
    _discover()
    if not isinstance(task, Task):
        missing = [n for n in ("name", "description", "per_token", "has_vocab", "options",
                               "prediction_keys", "prepare", "shapes", "predict")
                   if not hasattr(task, n)]  # fmt: skip
        raise ValueError(f"not a task: {task!r} has no {', '.join(missing)}")
    if task.name in _REGISTRY:
        raise ValueError(f"task {task.name!r} is registered already")
    unknown = sorted(set(task.options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"task {task.name!r}: unknown option(s) {unknown}; known: {list(OPTIONS)}")
    _REGISTRY[task.name] = task
    return task


def unregister_task(name: str) -> None:
    """Remove task `name` (a test that registers a task cleans up with it)."""
    _REGISTRY.pop(name, None)


def task_names() -> tuple[str, ...]:
    """Every registered task's name: the built-in ones (`cls`, `lm`, `mnist`), then the others
    in registration order."""
    _discover()
    return tuple(_REGISTRY)


def get_task(name: str) -> Task:
    """The task registered as `name`; IbkdError naming the known ones if none is."""
    _discover()
    if name not in _REGISTRY:
        raise IbkdError(f"setup {name!r}: expected one of {', '.join(task_names())}")
    return _REGISTRY[name]


def tasks_taking(option: str) -> str:
    """The tasks that take `option`, for a message: `the classification setup (cls)` for one,
    `the cls and mnist setups` for several, `no setup` for none."""
    names = [t.name for t in (get_task(n) for n in task_names()) if option in t.options]
    if len(names) == 1:
        return f"the {get_task(names[0]).description} setup ({names[0]})"
    if not names:
        return "no setup"
    return f"the {', '.join(names[:-1])} and {names[-1]} setups"
