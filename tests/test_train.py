import json

import numpy as np
import pytest

from ibkd.cli import main
from ibkd.config import DataConfig, DistillConfig, ModelConfig, RunConfig, TrainConfig
from ibkd.distill import load_run
from ibkd.errors import IbkdError
from ibkd.evaluate import load_predictions
from ibkd.train import train_run


def tiny_config(setup="cls", arch="lstm", seed=0, rows=300, **distill):
    model = (
        ModelConfig(
            "lstm",
            "lstm",
            dim=16,
            hidden=16,
            layers=1,
            embed_dropout=0.1,
            dropout=0.2,
            recurrent_dropout=0.2,
        )
        if arch == "lstm"
        else ModelConfig(
            "transformer",
            "transformer",
            dim=16,
            layers=1,
            heads=2,
            pool="cls",
            dropout=0.1,
            attn_dropout=0.1,
            embed_dropout=0.1,
        )
    )
    return RunConfig(
        setup=setup,
        model=model,
        seed=seed,
        data=DataConfig(max_train_rows=rows),
        train=TrainConfig(
            epochs=2,
            batch_size=32,
            lr=1e-2,
            warmup_steps=5,
            checkpoint_every=3,
            patience=5,
            device="cpu",
        ),
        distill=DistillConfig(**distill) if distill else None,
    )


class Killed(Exception):
    pass


def kill_at(step):
    def hook(s):
        if s == step:
            raise Killed

    return hook


def same_predictions(a, b):
    for split in ("valid", "test"):
        pa = load_predictions(a / "predictions" / f"{split}.npz")
        pb = load_predictions(b / "predictions" / f"{split}.npz")
        assert pa.keys() == pb.keys()
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


def test_run_folder_and_determinism(tmp_path):
    m1 = train_run(tiny_config(), tmp_path / "a", progress=False)
    m2 = train_run(tiny_config(), tmp_path / "b", progress=False)
    run = tmp_path / "a"
    for name in (
        "config.yaml",
        "vocab.json",
        "checkpoint.pt",
        "log.csv",
        "epochs.csv",
        "metrics.json",
        "predictions/valid.npz",
        "predictions/test.npz",
    ):
        assert (run / name).is_file(), name
    assert m1["valid"] == m2["valid"] and m1["test"] == m2["test"]
    same_predictions(run, tmp_path / "b")
    assert 0.5 < m1["test"]["mu_accuracy"] <= 1
    assert m1["training"]["steps"] == 2 * 10  # 300 rows / 32 per batch, 2 epochs
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,epoch,loss") and len(log) == 21
    pred = load_predictions(run / "predictions" / "test.npz")
    assert pred["probs"].shape == (1211, 2) and pred["features"].shape == (1211, 16)
    assert np.allclose(pred["probs"].sum(1), 1, atol=1e-5)
    m3 = train_run(tiny_config(seed=1), tmp_path / "c", progress=False)
    assert m3["test"] != m1["test"]


@pytest.mark.parametrize("setup", ["cls", "lm"])
def test_resume_after_a_kill_reaches_the_same_numbers(tmp_path, setup):
    cfg = tiny_config(setup, rows=200)
    whole = train_run(cfg, tmp_path / "whole", progress=False)
    with pytest.raises(Killed):  # killed mid-epoch 2, after the checkpoint at step 9
        train_run(cfg, tmp_path / "killed", progress=False, on_step=kill_at(11))
    assert not (tmp_path / "killed" / "metrics.json").exists()
    with pytest.raises(IbkdError, match="exists and is not empty"):
        train_run(cfg, tmp_path / "killed", progress=False)
    resumed = train_run(cfg, tmp_path / "killed", resume=True, progress=False)
    assert resumed["valid"] == whole["valid"] and resumed["test"] == whole["test"]
    same_predictions(tmp_path / "whole", tmp_path / "killed")
    steps = [
        int(line.split(",")[0])
        for line in (tmp_path / "killed" / "log.csv").read_text().splitlines()[1:]
    ]
    assert steps == list(range(1, whole["training"]["steps"] + 1))  # no step logged twice
    # resuming a finished run returns its metrics; other settings are refused
    assert train_run(cfg, tmp_path / "killed", resume=True, progress=False) == resumed
    other = tiny_config(setup, rows=200, seed=5)
    with pytest.raises(IbkdError, match="options differ"):
        train_run(other, tmp_path / "killed", resume=True, progress=False)


def test_distillation_from_a_teacher_folder(tmp_path):
    teacher = tmp_path / "teacher"
    train_run(tiny_config(), teacher, progress=False)
    cfg = tiny_config(arch="transformer", teacher=str(teacher), temperature=2.0, alpha=0.5)
    metrics = train_run(cfg, tmp_path / "student", progress=False)
    assert metrics["teacher"] == str(teacher)
    kd = [
        float(line.split(",")[4])
        for line in (tmp_path / "student" / "log.csv").read_text().splitlines()[1:]
    ]
    assert all(k > 0 for k in kd)
    # uncached teacher with dropout on (Reflect's quirk) also trains
    cfg = tiny_config(arch="transformer", teacher=str(teacher), teacher_dropout=True)
    train_run(cfg, tmp_path / "student2", progress=False)
    # the loaded teacher is the best checkpoint's weights, in eval mode
    run = load_run(teacher)
    assert not run.model.training and run.config.model.name == "lstm"


def test_cached_and_uncached_teacher_agree(tmp_path):
    teacher = tmp_path / "teacher"
    train_run(tiny_config(), teacher, progress=False)
    a = train_run(
        tiny_config(arch="transformer", teacher=str(teacher)), tmp_path / "a", progress=False
    )
    b = train_run(
        tiny_config(arch="transformer", teacher=str(teacher), cache_teacher=False),
        tmp_path / "b",
        progress=False,
    )
    assert a["test"]["mu_accuracy"] == pytest.approx(b["test"]["mu_accuracy"], abs=2e-3)


def test_teacher_errors(tmp_path):
    with pytest.raises(IbkdError, match="no such run folder"):
        train_run(tiny_config(teacher=str(tmp_path / "none")), tmp_path / "s", progress=False)
    teacher = tmp_path / "teacher"
    with pytest.raises(Killed):
        train_run(tiny_config(), teacher, progress=False, on_step=kill_at(4))
    with pytest.raises(IbkdError, match="has not finished"):
        train_run(tiny_config(teacher=str(teacher)), tmp_path / "s", progress=False)
    train_run(tiny_config(), teacher, resume=True, progress=False)
    with pytest.raises(IbkdError, match="teacher's vocabulary .* differs"):
        train_run(tiny_config(rows=250, teacher=str(teacher)), tmp_path / "s2", progress=False)
    with pytest.raises(IbkdError, match="a cls run, cannot teach a lm student"):
        train_run(tiny_config("lm", teacher=str(teacher)), tmp_path / "s3", progress=False)
    (teacher / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(IbkdError, match="checkpoint.pt"):
        load_run(teacher)


def test_cli_train_and_distill(tmp_path, capsys):
    common = ["--preset", "quick", "--epochs", "1", "--no-progress", "--device", "cpu"]
    assert (
        main(["train", "--setup", "cls", "--model", "lstm", "--out", str(tmp_path / "t"), *common])
        == 0
    )
    assert "valid: µ-accuracy" in capsys.readouterr().out
    out = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert out["valid"]["mu_accuracy"] > 0.7
    assert (
        main(
            [
                "distill",
                "--teacher",
                str(tmp_path / "t"),
                "--model",
                "transformer-seq",
                "--out",
                str(tmp_path / "s"),
                "--kd-scale",
                "inv-t2",
                *common,
            ]
        )
        == 0
    )
    cfg = RunConfig.load(tmp_path / "s" / "config.yaml")
    assert cfg.distill.kd_scale == "inv-t2" and cfg.distill.alpha == 1.0
    assert cfg.model.causal and cfg.setup == "cls"
    assert main(["train", "--setup", "cls", "--model", "gru", "--out", str(tmp_path / "x")]) == 2
    assert "--model 'gru': unknown" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "t"), "--resume", "--no-progress"]) == 0


def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    cfg = tiny_config(rows=200)
    with pytest.raises(Killed):
        train_run(cfg, tmp_path / "r", progress=False, on_step=kill_at(4))
    (tmp_path / "r" / "config.yaml").unlink()  # a folder whose config went missing
    other = tiny_config(rows=200, seed=3)
    with pytest.raises(IbkdError, match="written by a run with other settings"):
        train_run(other, tmp_path / "r", resume=True, progress=False)
