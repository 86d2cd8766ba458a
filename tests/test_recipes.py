"""Recipes: every grid's run configs and `ibkd train|distill --preset`'s are built by one
function from the budget files, and are exactly the configs the budgets gave before they were
files (tests/data/run_configs.json.gz, written by tests/recipe_cases.py)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from recipe_cases import FIXTURE, all_cases

from ibkd import recipes
from ibkd.errors import IbkdError
from ibkd.experiments import get


@pytest.mark.slow
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


@pytest.fixture
def configs(tmp_path, monkeypatch):
    """A copy of the shipped budget files that a test may add to; the recipes read it."""
    folder = tmp_path / "configs"
    shutil.copytree(Path(recipes.__file__).parent / recipes.CONFIGS, folder)
    caches = (recipes.scenario_names, recipes.budget_names, recipes.budget)
    for f in caches:
        f.cache_clear()
    monkeypatch.setattr(recipes, "_folder", lambda: folder)
    yield folder
    for f in caches:
        f.cache_clear()


def test_a_new_budget_is_a_new_file(configs):
    """A TOML file in configs/scenario2/ is a budget of scenario 2's grids and a --preset of
    `ibkd train --setup mnist`, with its numbers; the other budgets are unchanged."""
    text = (configs / "scenario2" / "quick.toml").read_text()
    (configs / "scenario2" / "tiny.toml").write_text(
        text.replace("seeds = 3", "seeds = 1").replace("epochs = 20", "epochs = 2")
    )
    assert recipes.budget_names("scenario2") == ("paper", "quick", "tiny")
    runs = get("scenario2").grid(budget="tiny", setup="mnist")
    assert {r.config.seed for r in runs} == {0} and len(runs) == 6
    assert {r.config.model.name: r.config.train.epochs for r in runs} == {"cnn": 5, "mlp": 2}
    cfg = recipes.run_config("mnist", "mlp", "tiny", teacher=recipes.Teacher("/t"), seed=0)
    assert cfg.train.epochs == 2 and cfg.distill.temperature == 5.0
    assert "tiny" in recipes.presets()


@pytest.mark.parametrize("edit, message", [
    (("[mnist.train]", "[mnist.train]\nepochz = 3"), r"scenario2/bad.toml: mnist.train: unknown "
                                                     r"key\(s\) \['epochz'\]"),
    (("seeds = 3", "seeds = 0"), r"scenario2/bad.toml: mnist.seeds: expected an integer >= 1"),
    (("[mnist]", "[mnist]\nteacher = 'cnn'"), r"scenario2/bad.toml: mnist: unknown key\(s\) "
                                              r"\['teacher'\]"),
    (("models = ", "models = 3 #"), r"scenario2/bad.toml: `models` names the model sizes"),
    (("[mnist]", "[mnist"), r"scenario2/bad.toml: not valid TOML"),
])  # fmt: skip
def test_a_malformed_budget_file_is_refused_naming_file_and_key(configs, edit, message):
    text = (configs / "scenario2" / "quick.toml").read_text()
    (configs / "scenario2" / "bad.toml").write_text(text.replace(*edit, 1))
    with pytest.raises(IbkdError, match=message):
        recipes.budget("scenario2", "bad")


def test_unknown_budget_setup_or_model_is_one_clear_error():
    with pytest.raises(IbkdError, match=r"--budget 'huge': expected one of paper, quick, standard"):
        get("scenario1").grid(budget="huge", setup="cls")
    with pytest.raises(IbkdError, match=r"--budget quick: has no lm recipe \(configs/scenario2/"
                                        r"quick.toml has mnist\)"):  # fmt: skip
        recipes.budget("scenario2", "quick").recipe("lm")
    with pytest.raises(IbkdError, match=r"--preset 'standard': for --setup mnist, expected one "
                                        r"of paper, quick"):  # fmt: skip
        recipes.run_config("mnist", "mlp", "standard")
    with pytest.raises(IbkdError, match=r"--model 'gpt': unknown for --setup cls"):
        recipes.run_config("cls", "gpt", "quick")
    with pytest.raises(IbkdError, match=r"--data default: the standard budget needs a merged"):
        recipes.run_config("cls", "transformer", "standard", teacher=recipes.Teacher())


def test_a_budget_names_the_lm_text_which_an_explicit_one_overrides(tmp_path, monkeypatch):
    """The standard budget's language models learn `{data}/pool.tsv.gz` with its 10,000 most
    frequent words; `--lm-text` or $IBKD_LM_TEXT wins over it (and then the cap is the
    budget's `text_vocab_size` too); a data folder without the pool is one clear error."""
    from recipe_cases import _lm_text, _standard_data

    merged, ptb = _standard_data(tmp_path), _lm_text(tmp_path)
    monkeypatch.delenv("IBKD_LM_TEXT", raising=False)
    cfg = recipes.run_config("lm", "lstm", "standard", data=str(merged))
    assert cfg.data.lm_text == str((merged / "pool.tsv.gz").resolve())
    assert cfg.data.vocab_size == 10000 and cfg.train.schedule == "constant"
    given = recipes.run_config("lm", "lstm", "standard", data=str(merged), lm_text=str(ptb))
    assert given.data.lm_text == str(ptb.resolve()) and given.data.vocab_size == 10000
    monkeypatch.setenv("IBKD_LM_TEXT", str(ptb))
    assert recipes.run_config("lm", "lstm", "standard", data=str(merged)).data.lm_text == str(
        ptb.resolve()
    )
    monkeypatch.delenv("IBKD_LM_TEXT")
    with pytest.raises(IbkdError, match=r"--data default: the standard budget needs a merged "
                                        r"data folder with its text pool pool.tsv.gz"):  # fmt: skip
        recipes.run_config("lm", "lstm", "standard")
    quick = recipes.run_config("lm", "lstm", "quick", lm_text=str(ptb))
    assert quick.data.vocab_size is None  # the quick budget: every word of an LM text
