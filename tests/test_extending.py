"""What the README's "Extending ibkd" section shows, done as it shows it: a new model (one
registered class and its config) trained through `ibkd train`, and a new metric (one registered
function) computed into the run's metrics."""

import gzip
import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from ibkd import metrics, models
from ibkd.cli import main
from ibkd.config import RunConfig
from ibkd.data.vocab import Vocab
from ibkd.models import ModelConfig

DEFAULT_DATA = Path(__file__).parents[1] / "src" / "ibkd" / "data" / "default"

# ----------------------------------------------------------- the README's model, as it is there


@dataclass
class GRUConfig(ModelConfig):
    dim: int = 32
    """embedding and hidden size (units)"""
    layers: int = 1
    """stacked GRU layers"""


def register_gru():
    @models.register("gru", GRUConfig, presets={("cls", "quick"): [GRUConfig("gru", "gru")]})
    class GRU(nn.Module):
        def __init__(self, cfg: GRUConfig, vocab_size: int, setup: str):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, cfg.dim, padding_idx=0)
            self.rnn = nn.GRU(cfg.dim, cfg.dim, cfg.layers, batch_first=True)
            self.head = nn.Linear(cfg.dim, 2)  # classification: VBZ / VBP

        def features(self, tokens, lengths):  # the penultimate representation, [B, dim]
            states, _ = self.rnn(self.embed(tokens))
            return states[torch.arange(len(tokens)), lengths - 1]

        def forward(self, tokens, lengths):  # logits, [B, 2]
            return self.head(self.features(tokens, lengths))

    return GRU


# ---------------------------------------------------------- the README's metric, as it is there


def brier(pred):
    """Mean Brier score of the class probabilities (classification, images)."""
    if "probs" not in pred:
        return None  # not for the LM
    onehot = np.eye(pred["probs"].shape[1])[pred["label"]]
    return float(((pred["probs"] - onehot) ** 2).sum(1).mean())


@pytest.fixture
def registered():
    """The GRU and the Brier score registered for one test, removed afterwards."""
    gru = register_gru()
    metrics.register("brier")(brier)
    yield gru
    models.unregister("gru")
    metrics.unregister("brier")


@pytest.fixture
def tiny_data(tmp_path):
    """The first rows of the shipped splits: 200 training, 60 validation and test rows."""
    out = tmp_path / "data"
    out.mkdir()
    for split, rows in (("train", 200), ("valid", 60), ("test", 60)):
        with gzip.open(DEFAULT_DATA / f"{split}.tsv.gz", "rt", encoding="utf-8") as f:
            (out / f"{split}.tsv").write_text("".join(islice(f, rows + 1)), encoding="utf-8")
    return out


def test_a_registered_model_trains_through_ibkd_train(registered, tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "utransformer-seq, gru (cls)" in " ".join(capsys.readouterr().out.split())
    out = tmp_path / "gru"
    args = ["train", "--setup", "cls", "--model", "gru", "--preset", "quick", "--epochs", "1"]
    args += ["--data", str(tiny_data), "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"] == {"name": "gru", "arch": "gru", "dim": 32, "layers": 1}
    cfg = RunConfig.load(out / "config.yaml")
    assert type(cfg.model) is GRUConfig and cfg.model == GRUConfig("gru", "gru")
    result = json.loads((out / "metrics.json").read_text())
    assert result["model"] == "gru" and result["training"]["epochs"] == 1
    assert 0 <= result["test"]["mu_accuracy"] <= 1 and result["test"]["n"] == 60
    vocab = len(Vocab.load(out / "vocab.json"))
    gru = registered(cfg.model, vocab, "cls")
    assert result["training"]["parameters"] == sum(p.numel() for p in gru.parameters())
    # the metric registered before training is in metrics.json, computed from the predictions
    with np.load(out / "predictions" / "test.npz") as f:
        pred = {k: f[k] for k in f.files}
    assert result["test"]["brier"] == pytest.approx(brier(pred))
    assert 0 < result["test"]["brier"] < 2
    assert metrics.compute_metrics(pred)["brier"] == result["test"]["brier"]


def test_the_registry_refuses_a_second_gru_and_forgets_it_when_asked(registered):
    assert models.architecture("gru").build is registered
    assert models.model_presets("cls", "quick")["gru"] == GRUConfig("gru", "gru")
    assert type(ModelConfig("g", "gru", dim=8)) is GRUConfig
    with pytest.raises(ValueError, match="'gru' is registered already"):
        register_gru()
    models.unregister("gru")
    assert "gru" not in models.model_presets("cls", "quick")
    models.register("gru", GRUConfig, registered)  # back, for the fixture to remove
