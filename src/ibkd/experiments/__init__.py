"""The paper's experiments, one module per scenario, and the runner that executes a grid.

A scenario module owns its grid (which runs, which teacher -> student pairs, which seeds), the
paper's numbers, its tables, its claims and its figures, and registers itself here as a
`Scenario`. `ibkd reproduce NAME` and `ibkd report` find it by name (the name is saved in the
grid's `grid.json`). Adding a scenario is one new module plus its line in `BUILTIN`. A scenario
may have further grids beside its main one (`ibkd reproduce NAME --grid GRID`, e.g. the
distillation-methods study `kd-methods`), each registered as a `Scenario` of its own with that
`grid_name`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ibkd.errors import IbkdError

# the modules that register the shipped scenarios (imported on first lookup)
BUILTIN = ("ibkd.experiments.scenario1", "ibkd.experiments.scenario2",
           "ibkd.experiments.kd_methods")  # fmt: skip
MAIN = "main"  # the grid of `ibkd reproduce NAME` without --grid


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
    - `hard_sections(groups, runs, suites) -> list[str]`: optional, the report's parts that
      judge the claims again on the hard cases (`suites`: `suite_report.load_suites`).
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
    grid_name: str = MAIN  # which of the scenario's grids (`--grid`)
    hard_sections: Callable[..., list[str]] | None = None  # claims on the hard cases

    @property
    def key(self) -> str:
        """Its name in the registry and in grid.json: `name`, or `name:grid_name`."""
        return self.name if self.grid_name == MAIN else f"{self.name}:{self.grid_name}"


SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Make `scenario` available to `ibkd reproduce` and `ibkd report` under its name."""
    SCENARIOS[scenario.key] = scenario
    return scenario


def scenarios() -> dict[str, Scenario]:
    """Every registered scenario by name (the shipped ones imported on first call)."""
    for module in BUILTIN:
        importlib.import_module(module)
    return SCENARIOS


def names() -> list[str]:
    """The scenarios' names (their main grids)."""
    return [s.name for s in scenarios().values() if s.grid_name == MAIN]


def grid_names() -> list[str]:
    """Every grid name some scenario has (`main` first)."""
    return list(dict.fromkeys([MAIN, *(s.grid_name for s in scenarios().values())]))


def get(name: str, grid: str = MAIN) -> Scenario:
    """The scenario called `name` (or a registry key `name:grid`), its grid `grid`; `IbkdError`
    naming the known ones otherwise."""
    known = scenarios()
    if name in known and ":" in name:
        return known[name]
    key = name if grid == MAIN else f"{name}:{grid}"
    if name not in names():
        raise IbkdError(f"scenario {name!r}: expected one of {', '.join(names())}")
    if key not in known:
        has = [s.grid_name for s in known.values() if s.name == name]
        raise IbkdError(f"--grid {grid!r}: {name} has {', '.join(has)}")
    return known[key]


def scenario_of(manifest: dict[str, Any]) -> Scenario:
    """The scenario a grid folder's `grid.json` was written by. Grids written before the name
    was saved are told apart by their runs' setup (MNIST: scenario 2)."""
    name = manifest.get("scenario")
    if name is None:
        setups = {e.get("setup") for e in manifest.get("runs", [])}
        name = "scenario2" if setups == {"mnist"} else "scenario1"
    return get(name)
