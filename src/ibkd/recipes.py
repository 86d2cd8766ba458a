"""Recipes: a run's config from (setup, model, budget, teacher, overrides), and the budgets'
numbers, read from files.

A budget is a TOML file, `ibkd/configs/<scenario>/<budget>.toml` (shipped inside the package),
one section per setup it trains (`[cls]`, `[lm]`, `[mnist]`) holding its seeds, teacher rows,
transfer set, vocabulary cap, training settings (`[cls.train]`, per model
`[cls.train_by_model.lstm]`), distillation settings (`[cls.distill]`, and `[cls.distill_train]`
for what a distilled student trains differently) and the report's note. The model sizes are
not repeated there: the file's `models = "quick"` names the presets each architecture's file
registers (`ibkd.models.register(..., presets={(setup, "quick"): [...]})`), where each size is
declared with its config class and its source. A new budget is a new file.

`run_config` is the one place a run's config is assembled: `ibkd train|distill --preset` and
every grid (`ibkd.experiments.scenario1`, `scenario2`, `kd_methods`) call it, so a hand-run
`ibkd train --preset quick ...` is exactly the quick grid's cell (tests/test_recipes.py holds
every grid's and command line's configs).

Reads files only; imports no torch (the CLI builds its parser from the budgets' names).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ibkd.config import DataConfig, DistillConfig, RunConfig, TrainConfig
from ibkd.data import lm_text as lm_texts
from ibkd.errors import IbkdError
from ibkd.models import ModelConfig, model_presets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIGS = "configs"  # the budget files' folder inside the package
DATA = "{data}"  # in a budget's `transfer`: the run's --data folder


@dataclass(frozen=True)
class SetupRecipe:
    """One setup's part of a budget file (its `[cls]`, `[lm]` or `[mnist]` section).

    `train`: TrainConfig fields of every run (the others keep TrainConfig's defaults);
    `train_by_model`: model name -> TrainConfig fields that differ for that model;
    `distill`: DistillConfig fields of a distilled student; `distill_train`: TrainConfig fields
    a distilled student trains with beyond `train`'s; `transfer`: the transfer set distilled
    students (and the control row) also learn on (`default`, a path, or `{data}/FILE` in the
    run's data folder; None: none); `vocab_size`: the vocabulary cap when no LM text is used
    (None: every training word); `lm_text`: the language models' text when neither
    `--lm-text` nor $IBKD_LM_TEXT names one (a path or `{data}/FILE`; None: the cache's PTB);
    `text_vocab_size`: the vocabulary cap with an LM text (None: every word of the text);
    `unk_signatures`: words outside the vocabulary become their unknown-word signatures
    (`ibkd.data.vocab`), not `<unk>`; `teachers`: the teacher rows of a grid's table;
    `self_distill`: whether a teacher's architecture is also distilled into itself; `control`:
    whether the grid has the row "none + transfer"; `note`: the report's note, a template the
    scenario fills from the runs' configs."""

    seeds: int
    train: Mapping[str, Any] = field(default_factory=dict)
    train_by_model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    distill: Mapping[str, Any] = field(default_factory=dict)
    distill_train: Mapping[str, Any] = field(default_factory=dict)
    transfer: str | None = None
    vocab_size: int | None = None
    lm_text: str | None = None
    text_vocab_size: int | None = None
    unk_signatures: bool = False
    teachers: tuple[str, ...] = ()
    self_distill: bool = True
    control: bool = False
    note: str = ""


@dataclass(frozen=True)
class Budget:
    """A budget file: its scenario, name, the model sizes it uses (a preset name of the model
    registry) and its recipe per setup."""

    scenario: str
    name: str
    models: str
    setups: Mapping[str, SetupRecipe]
    path: str

    def recipe(self, setup: str) -> SetupRecipe:
        """The recipe of `setup`; `IbkdError` naming the budgets that have one otherwise."""
        if setup not in self.setups:
            others = [b for b in budget_names(self.scenario) if setup in budget(self.scenario, b)
                      .setups]  # fmt: skip
            raise IbkdError(
                f"--budget {self.name}: has no {setup} recipe ({self.path} has "
                f"{', '.join(self.setups)}); for --setup {setup}: {', '.join(others)}"
            )
        return self.setups[setup]


def _folder():
    return resources.files("ibkd") / CONFIGS


@functools.cache
def scenario_names() -> tuple[str, ...]:
    """The scenarios that have budget files (`configs/<scenario>/`), sorted."""
    return tuple(sorted(p.name for p in _folder().iterdir() if p.is_dir()))


@functools.cache
def budget_names(scenario: str) -> tuple[str, ...]:
    """The budgets of `scenario`, its files' names sorted; `IbkdError` for a scenario without
    budget files."""
    if scenario not in scenario_names():
        known = ", ".join(scenario_names())
        raise IbkdError(f"no budgets for {scenario!r}: expected one of {known}")
    folder = _folder() / scenario
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


def _fields(kind) -> dict[str, str]:
    """A config dataclass's field names -> their declared types (as written)."""
    return {f.name: str(f.type) for f in dataclasses.fields(kind)}


def _known_table(values: Any, kind, where: str, what: str) -> dict[str, str]:
    """`kind`'s fields (`_fields`) after checking that `values` is a table of them only;
    `IbkdError` naming `where` otherwise."""
    if not isinstance(values, dict):
        raise IbkdError(f"{where}: expected {what}, got {values!r}")
    known = _fields(kind)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise IbkdError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    return known


def _settings(values: Any, kind, where: str) -> dict[str, Any]:
    """A table of `kind`'s (TrainConfig's, DistillConfig's) fields, an integer given for a
    float field read as a float (so that config.yaml writes it as the code's own numbers
    would); `IbkdError` naming `where` for anything else than a table of known fields."""
    known = _known_table(values, kind, where, "a table of settings")
    return {
        k: float(v) if known[k].startswith("float") and type(v) is int else v
        for k, v in values.items()
    }


def _setup_recipe(values: Any, where: str) -> SetupRecipe:
    """A setup's section of a budget file, checked: known keys of the right kinds."""
    _known_table(values, SetupRecipe, where, "a table")
    v = dict(values)
    if not isinstance(v.get("seeds"), int) or isinstance(v.get("seeds"), bool) or v["seeds"] < 1:
        raise IbkdError(f"{where}.seeds: expected an integer >= 1, got {v.get('seeds')!r}")
    for key, kind in (("train", TrainConfig), ("distill_train", TrainConfig),
                      ("distill", DistillConfig)):  # fmt: skip
        v[key] = _settings(v.get(key, {}), kind, f"{where}.{key}")
    by_model = v.get("train_by_model", {})
    if not isinstance(by_model, dict):
        raise IbkdError(f"{where}.train_by_model: expected a table per model")
    v["train_by_model"] = {
        m: _settings(s, TrainConfig, f"{where}.train_by_model.{m}") for m, s in by_model.items()
    }
    if not isinstance(v.get("teachers", []), list):
        raise IbkdError(f"{where}.teachers: expected a list of model names")
    v["teachers"] = tuple(v.get("teachers", ()))
    for key, kinds in (("transfer", str), ("vocab_size", int), ("lm_text", str),
                       ("text_vocab_size", int), ("unk_signatures", bool), ("note", str),
                       ("self_distill", bool), ("control", bool)):  # fmt: skip
        if key in v and not isinstance(v[key], kinds):
            raise IbkdError(f"{where}.{key}: {v[key]!r} is not a {kinds.__name__}")
    return SetupRecipe(**v)


@functools.cache
def budget(scenario: str, name: str) -> Budget:
    """The budget file `configs/<scenario>/<name>.toml`, read and checked. Raises `IbkdError`
    naming the budgets there for an unknown one, and the file and key for a malformed file."""
    names = budget_names(scenario)
    if name not in names:
        raise IbkdError(f"--budget {name!r}: expected one of {', '.join(names)}")
    resource = _folder() / scenario / f"{name}.toml"
    where = f"{CONFIGS}/{scenario}/{name}.toml"
    try:
        values = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise IbkdError(f"{where}: not valid TOML ({e})") from None
    models = values.pop("models", None)
    if not isinstance(models, str):
        raise IbkdError(f"{where}: `models` names the model sizes (a preset, e.g. quick)")
    setups = {s: _setup_recipe(v, f"{where}: {s}") for s, v in values.items()}
    return Budget(scenario, name, models, setups, where)


def presets() -> tuple[str, ...]:
    """Every budget's name, over all scenarios (`ibkd train|distill --preset`'s choices)."""
    return tuple(sorted({b for s in scenario_names() for b in budget_names(s)}))


def budget_of(setup: str, name: str) -> Budget:
    """The budget called `name` that has a recipe for `setup` (`--preset name` of a run of that
    setup). Raises `IbkdError` naming the budgets of that setup when none does, or both files
    when two scenarios' budgets of that name have one."""
    found = [budget(s, name) for s in scenario_names() if name in budget_names(s)]
    found = [b for b in found if setup in b.setups]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise IbkdError(f"--preset {name}: {' and '.join(b.path for b in found)} both have a "
                        f"{setup} recipe; rename one")  # fmt: skip
    offered = sorted({b for s in scenario_names() for b in budget_names(s)
                      if setup in budget(s, b).setups})  # fmt: skip
    if not offered:
        raise IbkdError(f"--setup {setup!r}: no budget has a recipe for it")
    raise IbkdError(f"--preset {name!r}: for --setup {setup}, expected one of {', '.join(offered)}")


def describe_distill(key: str) -> str:
    """One line for help texts: a DistillConfig setting (`temperature`, `alpha`) of each
    budget's setups, "paper: cls 1, lm 1, mnist 5; quick: cls 3, ...", from the files."""
    parts = []
    for name in presets():
        values = {}
        for s in scenario_names():
            if name in budget_names(s):
                for setup, r in budget(s, name).setups.items():
                    values[setup] = r.distill.get(key, _distill_default(key))
        parts.append(f"{name}: " + ", ".join(f"{k} {v:g}" for k, v in values.items()))
    return "; ".join(parts)


def _distill_default(key: str) -> Any:
    """DistillConfig's default of field `key`."""
    return getattr(DistillConfig(teacher=""), key)


def preset(setup: str, model: str, name: str = "paper") -> tuple[ModelConfig, TrainConfig]:
    """The model and training settings of `model` under budget `name` for `setup` (copies:
    safe to change): the model registry's preset of the budget's sizes, the budget's training
    settings with the model's own. Raises `IbkdError` naming the option for an unknown setup,
    budget or model."""
    b = budget_of(setup, name)
    recipe = b.recipe(setup)
    models = model_presets(setup, b.models)
    if model not in models:
        raise IbkdError(
            f"--model {model!r}: unknown for --setup {setup}; expected one of {', '.join(models)}"
        )
    train = TrainConfig(**recipe.train)
    for key, value in recipe.train_by_model.get(model, {}).items():
        setattr(train, key, value)
    return copy.deepcopy(models[model]), train


def vocab_size(setup: str, name: str, given: int | None = None,
               lm_text: str | None = None) -> int | None:  # fmt: skip
    """The vocabulary cap of a run: `given` (`--vocab-size`; 0: no cap), else budget `name`'s
    (for a language model with an LM text `lm_text`, its `text_vocab_size`); None: every
    training word."""
    if given is not None:
        return given or None
    recipe = budget_of(setup, name).recipe(setup)
    return recipe.text_vocab_size if setup == "lm" and lm_text is not None else recipe.vocab_size


def data_file(value: str | None, b: Budget, data: str, what: str) -> str | None:
    """A file a budget names (`transfer`, `lm_text`): `default` or a path as given, or for
    `{data}/FILE` that file in the run's data folder. Raises `IbkdError` naming --data when the
    folder has no such file (build it as docs/hard_data.md says)."""
    if value is None or not value.startswith(DATA + "/"):
        return value
    name = value[len(DATA) + 1 :]
    path = Path(data) / name
    if data == "default" or not path.is_file():
        raise IbkdError(
            f"--data {data}: the {b.name} budget needs a merged data folder with its {what} "
            f"{name} (build both as docs/hard_data.md says)"
        )
    return str(path)


def transfer_set(recipe: SetupRecipe, b: Budget, data: str) -> str | None:
    """The transfer set a budget's distilled students learn on (`data_file` of its
    `transfer`)."""
    return data_file(recipe.transfer, b, data, "large transfer set")


@dataclass(frozen=True)
class Teacher:
    """Who teaches a distilled student: a finished run (`folder`; "" where a grid fills it in,
    `ibkd.experiments.grid.resolved`) whose `config`, when given, the student shares its data
    settings with (vocabulary cap, LM text, data unless another is given), or an `online`
    teacher, the budget's preset of that model name trained beside the student."""

    folder: str = ""
    config: RunConfig | None = None
    online: str | None = None


def teacher_config(folder: str) -> RunConfig:
    """The config of the finished teacher run in `folder`; `IbkdError` naming --teacher when
    the folder holds no run (no config.yaml) or its config is malformed."""
    path = Path(folder) / "config.yaml"
    if not path.is_file():
        raise IbkdError(f"--teacher {folder}: not a run folder (no config.yaml)")
    return RunConfig.load(path)


def online_model(setup: str, name: str, budget_name: str) -> dict:
    """The config dict of an online teacher: the budget's preset model `name`. `IbkdError`
    naming --online for an unknown one."""
    try:
        return dataclasses.asdict(preset(setup, name, budget_name)[0])
    except IbkdError as e:
        raise IbkdError(str(e).replace("--model", "--online", 1)) from None


def apply_overrides(cfg: RunConfig, overrides: Mapping[str, Any]) -> None:
    """Set `section.field` (`train.epochs`, `data.transfer`, `distill.loss`, `model.lm_softmax`
    or `seed`) of `cfg` to each value, in place. Raises `IbkdError` for an unknown key, a
    `distill.*` one of a run without distillation, or a `model.*` field the model's config
    does not have (naming the model)."""
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        part = cfg if not section else getattr(cfg, section, None)
        if section and section not in ("data", "train", "distill", "model"):
            raise IbkdError(
                f"override {key!r}: expected data.*, train.*, distill.*, model.* or seed"
            )
        if part is None:
            raise IbkdError(f"override {key!r}: the run is not distilled")
        if section == "model":
            if not hasattr(part, name):
                raise IbkdError(f"--{name.replace('_', '-')}: not an option of the "
                                f"{part.name} model")  # fmt: skip
        elif name not in _fields(type(part)):
            raise IbkdError(f"override {key!r}: {type(part).__name__} has no field {name!r}")
        setattr(part, name, value)


def run_config(
    setup: str | None, model: str, budget_name: str = "paper", *, teacher: Teacher | None = None,
    seed: int = 0, data: str | None = None, lm_text: str | None = None,
    vocab: int | None = None, signatures: bool = False, control: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> RunConfig:  # fmt: skip
    """The config of one run: `model` trained under budget `budget_name`'s recipe for `setup`
    (None: the teacher's), alone or taught by `teacher`; then `overrides` (`section.field` ->
    value, `apply_overrides`); validated.

    - model and training: `preset`; a distilled student also gets the recipe's
      `distill_train` settings, and the recipe's `distill` settings as its DistillConfig.
    - data: `data` (a data path; None: the teacher's data, else `default`), with, for a
      language model, its LM text (`ibkd.data.lm_text.resolve(lm_text)`: `--lm-text`, else
      $IBKD_LM_TEXT, else the recipe's `lm_text`, else the cache's PTB) and the vocabulary
      cap (`vocab_size`, `vocab` the `--vocab-size` given), with unknown-word signatures
      when the recipe or `signatures` (`--unk-signatures`) says so; a student of a finished
      teacher shares the teacher's cap, signatures and LM text. A distilled student, and a
      `control` run (the grid's row "none + transfer"), also learns on the recipe's transfer
      set (`transfer_set`).

    Raises `IbkdError` naming the option for an unknown setup, budget or model, `--lm-text`
    outside the LM setup, or a setting out of range (`RunConfig.validate`).
    """
    source = teacher.config if teacher is not None else None
    setup = setup or (source.setup if source is not None else None)
    if setup is None:
        raise IbkdError("--setup is required (a student without a teacher's config)")
    b = budget_of(setup, budget_name)
    recipe = b.recipe(setup)
    model_cfg, train = preset(setup, model, budget_name)
    if source is not None:  # a student shares its teacher's vocabulary and LM text
        d = source.data if data is None else DataConfig(
            data=data, vocab_size=source.data.vocab_size, lm_text=source.data.lm_text,
            unk_signatures=source.data.unk_signatures,
        )  # fmt: skip
        d = copy.deepcopy(d)
    else:
        if lm_text and setup != "lm":
            raise IbkdError(f"--lm-text: for the language-model setup (lm), not {setup}")
        if setup == "lm" and not lm_text and not os.environ.get(lm_texts.ENV):
            lm_text = data_file(recipe.lm_text, b, data or "default", "text pool")
        text = lm_texts.resolve(lm_text) if setup == "lm" else None
        d = DataConfig(data=data or "default", lm_text=text,
                       vocab_size=vocab_size(setup, budget_name, vocab, lm_text=text),
                       unk_signatures=signatures or recipe.unk_signatures)  # fmt: skip
    distill = None
    if teacher is not None:
        for key, value in recipe.distill_train.items():
            setattr(train, key, value)
        distill = DistillConfig(
            teacher=teacher.folder,
            online=online_model(setup, teacher.online, budget_name) if teacher.online else None,
            **recipe.distill,
        )
    if (teacher is not None or control) and recipe.transfer is not None:
        d.transfer = transfer_set(recipe, b, d.data)
    cfg = RunConfig(setup=setup, model=model_cfg, seed=seed, data=d, train=train,
                    distill=distill)  # fmt: skip
    apply_overrides(cfg, overrides or {})
    cfg.validate()
    return cfg
