"""The paper's experiments, one module per scenario, and the runner that executes a grid.

A scenario module owns its grid (which runs, which teacher -> student pairs, which seeds), the
paper's numbers, its tables, its claims and its figures, and registers itself here as a
`Scenario`. `ibkd reproduce NAME` and `ibkd report` find it by name (the name is saved in the
grid's `grid.json`). Adding a scenario is one new module plus its line in `BUILTIN`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibkd.errors import IbkdError

# the modules that register the shipped scenarios (imported on first lookup)
BUILTIN = ("ibkd.experiments.scenario1", "ibkd.experiments.scenario2")


@dataclass(frozen=True)
class Scenario:
    """One of the paper's experiments, as `ibkd reproduce` and `ibkd report` see it.

    - `grid(budget, seeds=None, data="default", setup=None) -> list[GridRun]`: the runs.
    - `prepare(runs, out) -> None`: called once before any run starts; checks the data (an
      error a user can cause raises `IbkdError` here, before anything is trained) and writes
      what the report needs from raw data (e.g. a figure of examples) under `out/figures`.
    - `notes(budget, configs) -> str`: one sentence on the budget, from the runs' configs
      (a list of `RunConfig.to_dict()` dicts), so that overridden epochs are stated as run.
    - `sections(groups, runs, representations, figures_dir) -> list[str]`: the report's
      markdown parts (tables, claims, figures) for a grid's groups of runs
      (`ibkd.experiments.results.Group`).
    - `setups`: the `--setup` values it accepts (the first is the default).
    - `scores_suites`: whether `ibkd reproduce` scores its finished runs on the targeted
      agreement suites (the shipped ones and `--suite`).
    """

    name: str
    help: str
    budgets: tuple[str, ...]
    setups: tuple[str, ...]
    grid: Callable[..., list]
    prepare: Callable[[list, Path], None]
    notes: Callable[[str, list[dict]], str]
    sections: Callable[..., list[str]]
    setup_of: Callable[[str], str] = lambda setup: setup  # the setup a grid's runs train
    scores_suites: bool = False  # its runs are scored on the agreement suites (`--suite`)


SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Make `scenario` available to `ibkd reproduce` and `ibkd report` under its name."""
    SCENARIOS[scenario.name] = scenario
    return scenario


def scenarios() -> dict[str, Scenario]:
    """Every registered scenario by name (the shipped ones imported on first call)."""
    for module in BUILTIN:
        importlib.import_module(module)
    return SCENARIOS


def get(name: str) -> Scenario:
    """The scenario called `name`; `IbkdError` naming the known ones otherwise."""
    known = scenarios()
    if name not in known:
        raise IbkdError(f"scenario {name!r}: expected one of {', '.join(known)}")
    return known[name]


def scenario_of(manifest: dict[str, Any]) -> Scenario:
    """The scenario a grid folder's `grid.json` was written by. Grids written before the name
    was saved are told apart by their runs' setup (MNIST: scenario 2)."""
    name = manifest.get("scenario")
    if name is None:
        setups = {e.get("setup") for e in manifest.get("runs", [])}
        name = "scenario2" if setups == {"mnist"} else "scenario1"
    return get(name)
