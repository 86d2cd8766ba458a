"""What docs/extending.md shows, done as it shows it: a new model (one registered class and its
config) trained through `ibkd train`, a new metric (one registered function) computed into the
run's metrics, and the page's code as a user's module: its model, loss and metric in the grids
and in a grid's report."""

import gzip
import importlib
import json
import re
import sys
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import accuracy_by_hand, tiny
from torch import nn

from ibkd import losses, metrics, models
from ibkd.cli import main
from ibkd.config import RunConfig
from ibkd.data import suites
from ibkd.data.vocab import Vocab
from ibkd.errors import IbkdError
from ibkd.models import ModelConfig, Shapes
from ibkd.tasks import get_task

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
        def __init__(self, cfg: GRUConfig, shapes: Shapes):
            super().__init__()
            self.embed = nn.Embedding(shapes.vocab_size, cfg.dim, padding_idx=0)
            self.rnn = nn.GRU(cfg.dim, cfg.dim, cfg.layers, batch_first=True)
            self.head = nn.Linear(cfg.dim, shapes.n_classes)  # classification: VBZ / VBP

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


@pytest.mark.slow
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
    assert result["test"]["mu_accuracy"] == pytest.approx(accuracy_by_hand(out))
    assert result["test"]["n"] == 60
    gru = registered(cfg.model, get_task("cls").shapes(Vocab.load(out / "vocab.json")))
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


# ------------------------------------------- docs/extending.md's code, as a user's own module


def docs_code() -> str:
    """Every Python block of docs/extending.md before "Adding a task" (whose three files
    `test_third_task.py` runs), in order: one module, as a user would write it."""
    text = (Path(__file__).parents[1] / "docs" / "extending.md").read_text(encoding="utf-8")
    text = text.split("## Adding a task")[0]
    return "\n\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))


@pytest.fixture
def extension(tmp_path, monkeypatch):
    """docs/extending.md's model, loss and metric in a module of the user's (`ibkd_ext`),
    imported; everything it registered is removed afterwards."""
    folder = tmp_path / "ext"
    folder.mkdir()
    (folder / "ibkd_ext.py").write_text(docs_code(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("ibkd_ext")
    yield module
    models.unregister("gru")
    metrics.unregister("brier")
    losses.unregister("soft-ce")
    suites.unregister_format("pairs")
    sys.modules.pop("ibkd_ext", None)


def test_the_docs_extensions_join_the_grids_and_the_cli(extension, tmp_path, capsys):
    from ibkd.experiments import kd_methods
    from ibkd.experiments.executors import extension_modules
    from ibkd.experiments.scenario1 import grid

    names = {r.name for r in grid("cls", "quick", seeds=1)}
    assert {"gru/seed0", "gru--from-lstm/seed0", "gru--transfer/seed0"} <= names
    assert [m.name for m in kd_methods.methods()][-1] == "soft-ce"
    study = {r.name: r for r in kd_methods.grid1("quick", seeds=1)}
    assert study["transformer--from-lstm--soft-ce/seed0"].config.distill.loss == "soft-ce"
    assert extension_modules() == ("ibkd_ext",)
    # the suite format: offered by `ibkd evaluate --format`, detected by its ending, read
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "blimp,marvin-linzen,pairs}" in capsys.readouterr().out
    path = tmp_path / "agreement.pairs"
    path.write_text("the keys to the cabinet\tare\tis\nthe author\tlaughs\tlaugh\n")
    items = suites.read_suite(path)
    assert [(it.prefix[-1], it.good, it.bad) for it in items] == [
        ("cabinet", ("are",), ("is",)),
        ("author", ("laughs",), ("laugh",)),
    ]
    path.write_text("the keys are\n")
    with pytest.raises(IbkdError, match="agreement.pairs, line 1: expected prefix"):
        suites.read_suite(path)


def test_a_ray_task_imports_the_users_modules_before_it_trains(
    extension, small_data, tmp_path, monkeypatch
):  # fmt: skip
    """A Ray task's arguments (`ray_payload`) unpickle in a worker that has not imported the
    user's module (nor has its folder on sys.path), and the task (`ray_task`) imports it before
    it trains: the GRU registered there trains, and the Brier score registered there is in the
    run's metrics.json. (Ray itself is not started: the task's function is called as a worker
    calls it, on its unpickled arguments.)"""
    import pickle

    from ibkd.experiments.executors import ray_payload, ray_task
    from ibkd.experiments.scenario1 import grid

    run = next(r for r in tiny(grid("cls", "quick", seeds=1)) if r.name == "gru/seed0")
    run.config.data.data, run.config.data.transfer = str(small_data), None
    run.config.model.dim = 8
    folder = str(tmp_path / "gru")
    sent = pickle.dumps(ray_payload(run.config, folder, None))
    # a fresh worker: none of the module's registrations, the module not imported, not on the path
    models.unregister("gru")
    metrics.unregister("brier")
    losses.unregister("soft-ce")
    suites.unregister_format("pairs")
    del sys.modules["ibkd_ext"]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path / "ext")])
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("ibkd_ext")
    ray_task(*pickle.loads(sent))
    assert "gru" in models.architectures() and "ibkd_ext" in sys.modules
    saved = json.loads((tmp_path / "gru" / "metrics.json").read_text())
    with np.load(tmp_path / "gru" / "predictions" / "test.npz") as f:
        by_hand = float(((f["probs"] - np.eye(2)[f["label"]]) ** 2).sum(1).mean())
    assert saved["model"] == "gru" and saved["test"]["brier"] == pytest.approx(by_hand)


@pytest.mark.slow
def test_a_registered_model_and_metric_appear_in_a_grids_report(extension, small_data, tmp_path):
    """docs/extending.md's GRU and Brier score, registered in the user's module: the scenario 1
    grid trains the GRU alone and from the LSTM teacher in a process pool (whose spawned
    workers import the module: `extension_modules`), its report has a GRU column and a Brier
    table whose numbers are the saved predictions', and summary.json has the Brier score of
    every group."""
    from ibkd.experiments.grid import run_grid
    from ibkd.experiments.scenario1 import grid
    from ibkd.report import write_report

    keep = {"lstm", "gru", "gru--from-lstm"}
    runs = [r for r in tiny(grid("cls", "quick", seeds=1)) if r.name.split("/")[0] in keep]
    for r in runs:
        r.config.data.data, r.config.data.transfer = str(small_data), None
        r.config.model.dim = 8
    result = run_grid(runs, tmp_path, progress=False, workers=2, scenario="scenario1",
                      budget="quick")  # fmt: skip
    assert sorted(result.finished) == sorted(r.name for r in runs) and not result.failed
    text = write_report(tmp_path).read_text(encoding="utf-8")
    lines = text.splitlines()
    columns = ["transformer", "transformer-seq", "utransformer-seq", "lstm", "gru"]
    header = "| teacher \\ student | " + " | ".join(columns) + " |"
    assert lines.count(header) == 4  # µ-, D-, A-accuracy and ECE
    gru = json.loads((tmp_path / "gru" / "seed0" / "metrics.json").read_text())["test"]
    none_row = next(line for line in lines if line.startswith("| none |"))
    assert none_row.split(" | ")[-1] == f"{gru['mu_accuracy']:.3f} |"
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name, group in (("gru/seed0", "gru"), ("gru--from-lstm/seed0", "lstm -> gru")):
        with np.load(tmp_path / name / "predictions" / "test.npz") as f:
            pred = {k: f[k] for k in f.files}
        onehot = np.eye(2)[pred["label"]]
        by_hand = float(((pred["probs"] - onehot) ** 2).sum(1).mean())
        assert summary[group]["test"]["brier"]["mean"] == pytest.approx(by_hand)
        assert summary[group]["test"]["brier"]["n"] == 1
        assert f"| {group} | {by_hand:.4f} |" in lines


# ------------------------------------------------- a distillation loss with its own trained part


class LogTemperature(nn.Module):
    """A learned distillation temperature T = exp(log_t), starting at T = 1."""

    def __init__(self):
        super().__init__()
        self.log_t = nn.Parameter(torch.zeros(()))


def test_a_loss_declares_its_trained_module_which_is_trained_and_checkpointed(
    small_data, tmp_path
):  # fmt: skip
    """A loss registered with `trainable=build` gets the modules `build(student_width,
    teacher_width)` returns as its `modules`; they train with the student (the temperature
    moves from where it started) and are saved in the checkpoint under their names. A name
    the loop gives its own companions (`teacher`) is refused before anything is written."""
    from conftest import tiny_config
    from torch.nn import functional as F

    from ibkd.runs import load_checkpoint, load_run
    from ibkd.train import train_run

    widths, given = [], []

    def build(student_width: int, teacher_width: int) -> dict[str, nn.Module]:
        widths.append((student_width, teacher_width))
        return {"temperature": LogTemperature()}

    @losses.register("learned-t", trainable=build)
    def learned_t(student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg,
                  modules):  # fmt: skip
        given.append(modules["temperature"])
        t = modules["temperature"].log_t.exp()
        kd = F.kl_div(F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits / t, -1),
                      reduction="batchmean")  # fmt: skip
        return losses.with_gold(kd, student_logits, gold, mask, cfg)

    losses.register("bad-name", trainable=lambda s, t: {"teacher": nn.Linear(s, t)})(
        losses.LOSSES["kd"].fn
    )
    try:
        teacher = tiny_config(arch="transformer").model
        teacher.dim = 8  # another width than the student's 16
        cfg = tiny_config(rows=48, teacher="", online=asdict(teacher), loss="learned-t")
        cfg.data.data, cfg.train.epochs = str(small_data), 1
        train_run(cfg, tmp_path / "run", progress=False)
        student, online = load_run(tmp_path / "run"), load_run(tmp_path / "run" / "teacher")
        assert widths == [(student.model.head.in_features, online.model.head.in_features)]
        assert widths[0][0] != widths[0][1] and len(given) == 2  # 48 rows: 2 steps
        saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
        log_t = saved["companions"]["temperature.log_t"]
        assert log_t.item() != 0.0 and torch.equal(log_t, given[0].log_t.detach())
        cfg.distill.loss = "bad-name"
        with pytest.raises(IbkdError, match="--kd-loss bad-name: .*teacher are reserved"):
            train_run(cfg, tmp_path / "bad", progress=False)
        assert not (tmp_path / "bad").exists()  # refused before anything was written
    finally:
        losses.unregister("learned-t")
        losses.unregister("bad-name")
