"""Recipes: every grid's run configs and `ibkd train|distill --preset`'s are built by one
function from the budget files, and are exactly the configs the budgets gave before they were
files (tests/data/run_configs.json.gz, written by tests/recipe_cases.py)."""

from __future__ import annotations

import gzip
import json

from recipe_cases import FIXTURE, all_cases


def test_every_grid_and_preset_gives_the_recorded_run_configs(tmp_path):
    """Each budget's grids (scenario 1 cls quick/paper/standard and lm quick/paper with and
    without an LM text, scenario 2 quick/paper, both kd-methods studies) and each `ibkd
    train|distill --preset` command line build the recorded configs, key for key, with the
    same types (1.0 is not 1: config.yaml writes them differently)."""
    expected = json.loads(gzip.decompress(FIXTURE.read_bytes()))
    got = all_cases(tmp_path)
    assert sorted(got["grids"]) == sorted(expected["grids"])
    for key, runs in expected["grids"].items():
        assert json.dumps(got["grids"][key]) == json.dumps(runs), key
    assert sorted(got["cli"]) == sorted(expected["cli"])
    for key, config in expected["cli"].items():
        assert json.dumps(got["cli"][key]) == json.dumps(config), key
