import json

import pytest
from conftest import tiny_config

from ibkd.cli import main
from ibkd.data.splits import default_dir
from ibkd.train import train_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cls = train_run(tiny_config("cls"), root / "cls", progress=False)
    lm = train_run(tiny_config("lm"), root / "lm", progress=False)
    return root, cls, lm


@pytest.mark.slow
def test_linzen_suite_agrees_with_the_runs_own_metrics(runs, capsys):
    root, cls, lm = runs
    test_file = str(default_dir() / "test.tsv.gz")
    assert main(["evaluate", str(root / "cls"), "--suite", test_file, "--device", "cpu"]) == 0
    result = json.loads((root / "cls" / "suites" / "test.json").read_text())
    # scoring the test split as a suite gives the run's µ-accuracy
    assert result["accuracy"] == pytest.approx(cls["test"]["mu_accuracy"])
    assert result["coverage"] == 1.0 and result["by_attractors"]["0"]["n"] > 1000
    assert main(["evaluate", str(root / "lm"), "--suite", test_file, "--device", "cpu"]) == 0
    result = json.loads((root / "lm" / "suites" / "test.json").read_text())
    assert result["accuracy"] == pytest.approx(lm["test"]["agreement_accuracy"])
    assert (
        result["skipped"]["a verb form out of the vocabulary"]
        == lm["test"]["coverage"]["other_form_out_of_vocabulary"]
    )


@pytest.mark.slow
def test_blimp_and_colorlessgreen_suites(runs, tmp_path, capsys):
    root, _, _ = runs
    blimp = tmp_path / "b.jsonl"
    blimp.write_text(
        '{"sentence_good": "The key is here.", "sentence_bad": "The key are here.", '
        '"one_prefix_prefix": "The key", "one_prefix_word_good": "is", '
        '"one_prefix_word_bad": "are", "UID": "one"}\n'
        '{"sentence_good": "The keys are here.", "sentence_bad": "The key are here.", '
        '"UID": "two"}\n'
    )
    (tmp_path / "g.text").write_text("the keys to the cabinet are here <eos>\n")
    (tmp_path / "g.gold").write_text("5\tare\tis\t1\n")
    for run in ("cls", "lm"):
        assert (
            main(
                [
                    "evaluate",
                    str(root / run),
                    "--suite",
                    str(blimp),
                    str(tmp_path / "g.gold"),
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
        b = json.loads((root / run / "suites" / "b.json").read_text())
        assert b["scored"] == 2 and set(b["by_construction"]) == {"one", "two"}
        g = json.loads((root / run / "suites" / "g.json").read_text())
        assert g["scored"] == 1 and g["by_attractors"] == {"1": {"accuracy": g["accuracy"], "n": 1}}
    assert "accuracy" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path), "--suite", str(blimp)]) == 2


@pytest.mark.slow
def test_saved_predictions_follow_the_contract(runs, tmp_path):
    """predictions/<split>.npz hold exactly the keys, dtypes and shapes ibkd.predictions
    documents; a corrupt file is refused with its name."""
    import numpy as np

    from ibkd.errors import IbkdError
    from ibkd.predictions import KEYS, load_predictions
    from ibkd.tasks import get_task

    root, _, _ = runs
    for setup in ("cls", "lm"):
        pred = load_predictions(root / setup / "predictions" / "test.npz")
        assert set(pred) == set(get_task(setup).prediction_keys)
        n = len(pred["label"])
        for key, array in pred.items():
            dtype, ndim = KEYS[key]
            assert array.dtype == np.dtype(dtype) and array.ndim == ndim and len(array) == n, key
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(IbkdError, match="bad.npz: not a readable predictions file"):
        load_predictions(tmp_path / "bad.npz")
