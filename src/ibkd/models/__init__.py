"""The model registry: one entry per architecture, declared in the architecture's own file.

Every model is a plain `torch.nn.Module` with `forward(tokens, lengths) -> logits` and
`features(tokens, lengths)`, its penultimate representation (`head(features)` gives the logits).
It is built from its config and the `Shapes` of its task's inputs and outputs (`ibkd.tasks`:
vocabulary size, classes, image channels x height x width, outputs per token or per example).
An architecture is registered with its config dataclass (a subclass of `ModelConfig`, its
options documented where declared) and its preset sizes, in the file that defines it:

    @register("gru", GRUConfig, presets={("cls", "quick"): [GRUConfig("gru", "gru", dim=64)]})
    class GRU(nn.Module): ...

Every module of this package is imported the first time the registry is consulted, so a new
file in `ibkd/models/` is all it takes to add a model to the CLI, the presets and run folders.
A model registered from outside the package (a script, a test) works the same way once the
module that registers it has been imported.

The registry imports nothing heavy until it is consulted: `ModelConfig` and `register` are
cheap to import (the CLI builds its parser without loading torch).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ibkd.errors import IbkdError

if TYPE_CHECKING:
    from torch import nn


@dataclass
class ModelConfig:
    """The options every model has; each architecture's config subclasses it with its own.

    Calling `ModelConfig(name, arch, **options)` gives the config class registered for `arch`
    (for example `ModelConfig("lstm", "lstm", dim=16, layers=1)` is an `LSTMConfig`), so code
    that names the architecture needs no import of its file.

    Raises `IbkdError` when `arch` is not a registered architecture, `TypeError` when an
    option is not one of that architecture's.
    """

    name: str
    """the model's name as the user asked for it and as reports show it (`transformer-seq`)"""
    arch: str
    """the registered architecture that builds it (`transformer`)"""

    def __new__(cls, *args: Any, **kwargs: Any) -> ModelConfig:
        if cls is ModelConfig:
            arch = kwargs["arch"] if "arch" in kwargs else args[1] if len(args) > 1 else None
            if arch is not None:
                cls = architecture(arch).config
        return object.__new__(cls)


@dataclass(frozen=True)
class Shapes:
    """The inputs and outputs a model is built for, as its task gives them (`Task.shapes`).

    Token inputs are ids in [0, `vocab_size`) ([B, L] int64, right-padded with 0); image
    inputs are float32 [B, *image]. A model gives `n_classes` logits per example ([B, C]), or
    per input position when `per_token` ([B, L, C]: a language model, C = its vocabulary)."""

    n_classes: int
    """logits per example, or per token when `per_token` (classes; a vocabulary's tokens)"""
    vocab_size: int = 0
    """token ids the inputs hold (0: no token inputs, e.g. images)"""
    per_token: bool = False
    """outputs at every input position (a language model) instead of one per example"""
    image: tuple[int, int, int] | None = None
    """(channels, height, width) of image inputs; None for token inputs"""


LM_SOFTMAXES = ("full", "adaptive")
"""A language model's output layers (`lm_softmax`; `ibkd.models.lm_head`): the full softmax,
or the adaptive softmax of Grave et al. 2017 (another model, not an approximation of a loss)"""

Builder = Callable[[ModelConfig, Shapes], "nn.Module"]
"""(config, the task's input and output shapes) -> the model"""


@dataclass(frozen=True)
class Architecture:
    """One registered architecture: its config class, its builder and its preset configs."""

    name: str
    config: type[ModelConfig]
    build: Builder
    presets: Mapping[tuple[str, str], tuple[ModelConfig, ...]]
    """(setup, budget) -> the preset models of that setup and budget, in display order"""


_REGISTRY: dict[str, Architecture] = {}
_discovered = False

# The options of the one `ModelConfig` that held every architecture's options, up to ibkd
# 0.1. A `config.yaml` written then lists them all; those an architecture lacks were never read
# by its builder, so dropping them on load rebuilds the same model.
LEGACY_OPTIONS = frozenset(
    {
        "dim", "layers", "hidden", "heads", "ff_mult", "causal", "shared_layers", "pool",
        "embed_dropout", "dropout", "recurrent_dropout", "attn_dropout", "max_len", "widths",
    }
)  # fmt: skip


def _package_modules() -> list[str]:
    """This package's modules, by file name."""
    return sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__))


def _discover() -> None:
    """Import every module of this package once (each registers what it defines)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in _package_modules():
        importlib.import_module(module)


def _order(a: Architecture) -> int:
    """Listing order: this package's files by name, then models registered from elsewhere;
    registration order within each (whatever order the modules were imported in)."""
    modules = _package_modules()
    module = getattr(a.build, "__module__", "")
    return modules.index(module) if module in modules else len(modules)


def register(
    name: str,
    config: type[ModelConfig],
    build: Builder | None = None,
    *,
    presets: Mapping[tuple[str, str], Iterable[ModelConfig]] | None = None,
):
    """Register architecture `name`: configs of class `config` are built by `build`.

    `build(config, shapes)` returns the `nn.Module` for the task's `Shapes` (a model class
    whose `__init__` takes those two arguments is a builder). Without `build`, `register` returns a
    decorator for the model class. `presets` maps (setup, budget), for example ("cls",
    "quick"), to the models `ibkd train --setup S --preset B --model NAME` offers; their `arch`
    must be `name` and their `name`s unique in each setup and budget across architectures.

    Raises `ValueError` for a name registered twice, a config class that is not a
    `ModelConfig` dataclass, or a preset that breaks the rules above.
    """
    if not (isinstance(config, type) and issubclass(config, ModelConfig)):
        raise ValueError(f"model {name!r}: its config must subclass ModelConfig, got {config!r}")
    if not dataclasses.is_dataclass(config):
        raise ValueError(f"model {name!r}: its config {config.__name__} must be a dataclass")

    def add(builder: Builder) -> Builder:
        _discover()
        if name in _REGISTRY:
            raise ValueError(f"model architecture {name!r} is registered already")
        table = {key: tuple(models) for key, models in (presets or {}).items()}
        for (setup, budget), models in table.items():
            taken = set(model_presets(setup, budget))
            for m in models:
                if type(m) is not config or m.arch != name:
                    raise ValueError(
                        f"preset {m.name!r} of {name!r}: expected a {config.__name__} with "
                        f"arch {name!r}, got a {type(m).__name__} with arch {m.arch!r}"
                    )
                if m.name in taken:
                    raise ValueError(f"preset {m.name!r} ({setup}, {budget}) exists already")
                taken.add(m.name)
        _REGISTRY[name] = Architecture(name, config, builder, table)
        return builder

    return add if build is None else add(build)


def unregister(name: str) -> None:
    """Remove architecture `name` (tests that register a temporary model clean up with it)."""
    _REGISTRY.pop(name, None)


def architectures() -> dict[str, Architecture]:
    """Every registered architecture by name: this package's files by name (the CNN before the
    MLP in `vision.py`), then the others, in registration order."""
    _discover()
    return {a.name: a for a in sorted(_REGISTRY.values(), key=_order)}


def architecture(name: str) -> Architecture:
    """The architecture registered as `name`; `IbkdError` naming the known ones if none is."""
    known = architectures()
    if name not in known:
        raise IbkdError(f"unknown model architecture {name!r}; expected one of {', '.join(known)}")
    return known[name]


def model_presets(setup: str, budget: str) -> dict[str, ModelConfig]:
    """Model name -> preset config for `setup` (cls | lm | mnist) and `budget` (paper | quick),
    across every architecture, in `architectures()` order. The configs are the registry's own:
    copy them before changing them (`ibkd.recipes.preset` does)."""
    return {m.name: m for a in architectures().values() for m in a.presets.get((setup, budget), ())}


def model_names(setup: str) -> list[str]:
    """The preset model names of a setup, over every budget, in `architectures()` order."""
    names: dict[str, None] = {}
    for a in architectures().values():
        for (s, _), models in a.presets.items():
            names |= {m.name: None for m in models if s == setup}
    return list(names)


def describe_models(setups: Iterable[str]) -> str:
    """One line for help texts: each setup's preset model names, from the registry."""
    return "; ".join(f"{', '.join(model_names(s))} ({s})" for s in setups if model_names(s))


def config_from_dict(values: Mapping[str, Any], where: str = "config") -> ModelConfig:
    """The model config saved as `values` (a `config.yaml`'s `model:` mapping).

    The class comes from the registry by `values["arch"]`. Options of the one `ModelConfig`
    of ibkd <= 0.1 (`LEGACY_OPTIONS`) that the architecture does not have are dropped: that
    version's builders never read them. Raises `IbkdError` naming `where` for a missing or
    unknown architecture, an unknown option or a missing one.
    """
    if not isinstance(values, Mapping):
        raise IbkdError(f"{where}: `model` should be a mapping, got {values!r}")
    if "arch" not in values:
        raise IbkdError(f"{where}: `model` has no `arch` (the architecture to build)")
    try:
        cls = architecture(values["arch"]).config
    except IbkdError as e:
        raise IbkdError(f"{where}: `model`: {e}") from None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known - LEGACY_OPTIONS)
    if unknown:
        raise IbkdError(f"{where}: unknown key(s) {unknown} in `model`; known: {sorted(known)}")
    try:
        return cls(**{k: v for k, v in values.items() if k in known})
    except TypeError as e:
        raise IbkdError(f"{where}: `model`: {e}") from None


def build_model(cfg: ModelConfig, shapes: Shapes) -> nn.Module:
    """The untrained model `cfg` describes, for its task's inputs and outputs `shapes`
    (`ibkd.tasks`: `get_task(setup).shapes(vocab)`; cls: 2 logits per sequence; lm: one logit
    per vocabulary entry at every token; mnist: 10 logits per 1 x 28 x 28 image). Raises
    `IbkdError` for an unregistered `cfg.arch` or a config of another architecture's class."""
    try:
        arch = architecture(cfg.arch)
    except IbkdError as e:
        raise IbkdError(f"model {cfg.name!r}: {e}") from None
    if not isinstance(cfg, arch.config):
        raise IbkdError(
            f"model {cfg.name!r}: architecture {cfg.arch!r} takes a {arch.config.__name__}, "
            f"got a {type(cfg).__name__}"
        )
    return arch.build(cfg, shapes)


def stable_color_index(name: str, n_colors: int = 10) -> int:
    """A colour index in [0, n_colors) for a model name, the same in every process and run
    (CRC-32 of the name, unlike Python's salted `hash`): the report's colour for a model it
    has no colour for (`plt.cm.tab10(stable_color_index(name))`)."""
    return zlib.crc32(name.encode("utf-8")) % n_colors
