"""A third scenario on a new data set, added from outside ibkd with no edit to its source: a task
file, a model file and a scenario file (docs/extending.md, "Adding a task"). The three parts
below are written as a user would write them; the test registers them, trains a teacher and a
student distilled from it with `ibkd.train.train_run`, and checks the run folders' contract.

The data set: 3 x 12 x 12 images of 4 classes, generated here: class k has a bright 6 x 6
quadrant k in channel k mod 3 over uniform noise (learnable in a few steps)."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import accuracy_by_hand, saved_predictions, top1_match_by_hand
from torch import nn

from ibkd import models
from ibkd.config import DataConfig, DistillConfig, RunConfig, TrainConfig
from ibkd.data.batching import ImageSet
from ibkd.errors import IbkdError
from ibkd.models import ModelConfig, Shapes
from ibkd.runs import load_run
from ibkd.tasks import get_task, register_task, task_names, unregister_task
from ibkd.tasks.images import ImageClassification
from ibkd.train import train_run

# ------------------------------------------------------------------- the task file (tiles.py)


def tile_sets(d: DataConfig) -> tuple[ImageSet, ImageSet, dict[str, ImageSet]]:
    """(train, valid, {"test"}) of 48, 16 and 16 images [N, 3, 12, 12], seeded by the split
    seed; the first `max_train_rows` training images."""
    g = torch.Generator().manual_seed(d.split_seed)

    def images(n: int) -> ImageSet:
        labels = torch.arange(n) % 4
        x = 0.5 * torch.rand(n, 3, 12, 12, generator=g)
        for i, k in enumerate(labels.tolist()):
            row, col = divmod(k, 2)
            x[i, k % 3, 6 * row : 6 * row + 6, 6 * col : 6 * col + 6] += 0.5
        return ImageSet(x, labels)

    train = images(48)
    if d.max_train_rows:
        train = ImageSet(train.images[: d.max_train_rows], train.labels[: d.max_train_rows])
    return train, images(16), {"test": images(16)}


def register_tiles():
    return register_task(ImageClassification("tiles", (3, 12, 12), 4, tile_sets,
                                             description="tile image"))  # fmt: skip


# ------------------------------------------------------------------ the model file (tiny_cnn.py)


@dataclass
class TinyCNNConfig(ModelConfig):
    width: int = 4
    """filters of the one convolution"""


def register_tiny_cnn():
    @models.register("tiny-cnn", TinyCNNConfig)
    class TinyCNN(nn.Module):
        def __init__(self, cfg: TinyCNNConfig, shapes: Shapes):
            super().__init__()
            channels, height, width = shapes.image  # from the task: 3, 12, 12
            self.body = nn.Sequential(
                nn.Conv2d(channels, cfg.width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(),
            )  # fmt: skip
            self.head = nn.Linear(cfg.width * (height // 2) * (width // 2), shapes.n_classes)

        def features(self, images, lengths=None):  # [B, width * 6 * 6]
            return self.body(images)

        def forward(self, images, lengths=None):  # logits [B, 4]
            return self.head(self.features(images))

    return TinyCNN


# ----------------------------------------------------------------- the scenario file (tiles_kd.py)

TRAIN = TrainConfig(epochs=4, batch_size=16, lr=1e-2, warmup_steps=0, checkpoint_every=100,
                    device="cpu")  # fmt: skip


def tiles_grid(seed: int = 0) -> dict[str, RunConfig]:
    """The scenario's runs: the CNN teacher, and the built-in MLP distilled from it (T = 2)."""
    teacher = RunConfig("tiles", TinyCNNConfig("tiny-cnn", "tiny-cnn"), seed, train=TRAIN)
    mlp = models.ModelConfig("mlp", "mlp", widths=[16], dropout=0.0)
    student = RunConfig("tiles", mlp, seed, train=TRAIN,
                        distill=DistillConfig("teacher", temperature=2.0))  # fmt: skip
    return {"teacher": teacher, "mlp--from-teacher": student}


def run_tiles(out) -> dict[str, dict]:
    """Train the grid into `out`, the teacher first; each run's metrics by name."""
    results = {}
    for name, cfg in tiles_grid().items():
        if cfg.distill is not None:
            cfg.distill.teacher = str(out / "teacher")
        results[name] = train_run(cfg, out / name, progress=False, threads=1)
    return results


# ------------------------------------------------------------------------------------- the test


@pytest.fixture
def tiles():
    """The task and the model registered for one test, removed afterwards."""
    task = register_tiles()
    register_tiny_cnn()
    yield task
    unregister_task("tiles")
    models.unregister("tiny-cnn")


def test_a_third_task_trains_and_distils_through_the_library(tiles, tmp_path):
    assert task_names() == ("cls", "lm", "mnist", "tiles") and get_task("tiles") is tiles
    results = run_tiles(tmp_path)
    teacher, student = tmp_path / "teacher", tmp_path / "mlp--from-teacher"
    for run in (teacher, student):  # the run folder's contract
        for name in ("config.yaml", "checkpoint.pt", "metrics.json", "log.csv", "epochs.csv"):
            assert (run / name).is_file(), (run, name)
        assert not (run / "vocab.json").exists()  # the task has no vocabulary
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["setup"] == "tiles"
        for split in ("valid", "test"):
            pred = saved_predictions(run, split)
            assert set(pred) == set(tiles.prediction_keys) == {"label", "features", "probs"}
            assert pred["probs"].shape == (16, 4)
            assert np.allclose(pred["probs"].sum(1), 1, atol=1e-5)
        metrics = results[run.name]
        assert metrics["setup"] == "tiles" and metrics["test"]["n"] == 16
        assert metrics["test"]["mu_accuracy"] == pytest.approx(accuracy_by_hand(run))
    # the models were built from the task's shapes: 3 x 12 x 12 in, 4 classes out
    assert saved_predictions(teacher, "test")["features"].shape == (16, 4 * 6 * 6)
    mlp_in = 3 * 12 * 12
    assert results["mlp--from-teacher"]["training"]["parameters"] == (
        mlp_in * 16 + 16 + 2 * 16 + 16 * 4 + 4  # Linear, BatchNorm1d, head
    )
    # the data are learnable: the teacher is far above chance (1/4) after 12 steps
    assert results["teacher"]["test"]["mu_accuracy"] >= 0.75
    assert results["teacher"]["training"]["steps"] == 12
    # the student learned from the teacher: fidelity against its saved predictions
    fidelity = results["mlp--from-teacher"]["test"]["fidelity"]
    assert fidelity["top1_match"] == pytest.approx(top1_match_by_hand(student, teacher))
    assert fidelity["top1_match"] >= 0.5  # chance: about 1/4
    # a finished run of the task loads back (its model rebuilt from the task's shapes)
    loaded = load_run(teacher)
    assert loaded.vocab is None and loaded.model.head.out_features == 4


def test_a_third_task_is_refused_what_it_does_not_take(tiles):
    mlp = models.ModelConfig("mlp", "mlp", widths=[8])
    with pytest.raises(IbkdError, match=r"--transfer: for the classification setup \(cls\)"):
        RunConfig("tiles", mlp, data=DataConfig(transfer="default")).validate()
    with pytest.raises(IbkdError, match="--aux-lm: for the classification setup"):
        RunConfig("tiles", mlp, train=TrainConfig(aux_lm=0.5)).validate()
    with pytest.raises(IbkdError, match="setup 'tile', expected one of .*'tiles'"):
        RunConfig("tile", mlp).validate()
    with pytest.raises(ValueError, match="task 'tiles' is registered already"):
        register_tiles()
    with pytest.raises(ValueError, match="not a task: .* has no description, per_token"):
        register_task(type("Half", (), {"name": "half"})())


DOCS = Path(__file__).parents[1] / "docs" / "extending.md"


@pytest.fixture
def docs_files(tmp_path, monkeypatch):
    """docs/extending.md's "Adding a task" files as a user's modules, imported in order;
    what they registered is removed afterwards."""
    text = DOCS.read_text(encoding="utf-8").split("## Adding a task")[1]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    names = ("tiles", "tiny_cnn", "tiles_kd")
    assert len(blocks) == len(names)
    for name, code in zip(names, blocks, strict=True):
        (tmp_path / f"{name}.py").write_text(code, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield [importlib.import_module(name) for name in names]
    unregister_task("tiles")
    models.unregister("tiny-cnn")
    for name in names:
        sys.modules.pop(name, None)


def test_the_docs_three_files_build_the_scenario(docs_files, tmp_path):
    """The page's task, model and scenario files, as written there: the grid's configs are
    valid runs of the task, and each model, built from the task's shapes, gives 4 logits per
    3 x 12 x 12 image (training them is the test above)."""
    tiles, _, scenario = docs_files
    task = get_task("tiles")
    train, valid, tests = tiles.tile_sets(DataConfig())
    assert train.images.shape == (48, 3, 12, 12) and set(tests) == {"test"}
    assert task.prepare(RunConfig("tiles", models.ModelConfig("mlp", "mlp"))).valid is not None
    grid = scenario.tiles_grid(tmp_path)
    assert list(grid) == ["teacher", "mlp--from-teacher"]
    assert grid["mlp--from-teacher"].distill.teacher == str(tmp_path / "teacher")
    for cfg in grid.values():
        cfg.validate()
        model = models.build_model(cfg.model, task.shapes(None)).eval()
        assert model(valid.images[:5]).shape == (5, 4)
