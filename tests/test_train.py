import json

import numpy as np
import pytest
from conftest import (
    Killed,
    accuracy_by_hand,
    kill_at,
    same_predictions,
    tiny_config,
    tiny_data,
    top1_match_by_hand,
    without,
)

from ibkd.cli import main
from ibkd.config import RunConfig
from ibkd.errors import IbkdError
from ibkd.predictions import load_predictions
from ibkd.runs import load_run
from ibkd.train import train_run


@pytest.mark.slow
def test_run_folder_and_determinism(tmp_path):
    """As stated in ibkd.train: same config, seed, machine, build and threads -> identical
    logs (but for timing columns), predictions and metrics (but for timings)."""
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
    timings = ("seconds", "tokens_per_s", "teacher_cache_seconds")
    t1, t2 = ({k: v for k, v in m["training"].items() if k not in timings} for m in (m1, m2))
    assert t1 == t2
    same_predictions(run, tmp_path / "b")
    for name, timing in (("log.csv", "tokens_per_s"), ("epochs.csv", "seconds")):
        assert without(run / name, timing) == without(tmp_path / "b" / name, timing)
    prov = json.loads((run / "provenance.json").read_text())["sessions"]
    assert len(prov) == 1 and prov[0]["finished"] >= prov[0]["started"]
    for key in ("command", "started", "finished", "python", "torch", "numpy", "ibkd",
                "git_commit", "cpu", "gpu", "threads", "device", "processes"):  # fmt: skip
        assert key in prov[0], key
    assert prov[0]["device"] == "cpu" and prov[0]["threads"] == m1["training"]["threads"]
    assert "started" not in (run / "config.yaml").read_text()  # not part of the identity
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
@pytest.mark.slow
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
    with pytest.raises(IbkdError, match=r"options differ .*\(seed: 0 -> 5\)"):
        train_run(other, tmp_path / "killed", resume=True, progress=False)


@pytest.mark.slow
def test_distillation_from_a_teacher_folder(tmp_path):
    teacher = tmp_path / "teacher"
    train_run(tiny_config(), teacher, progress=False)
    cfg = tiny_config(arch="transformer", teacher=str(teacher), temperature=2.0, alpha=0.5)
    metrics = train_run(cfg, tmp_path / "student", progress=False)
    assert metrics["teacher"] == str(teacher)
    rows = without(tmp_path / "student" / "log.csv")
    kd, ce, loss = ([float(r[k]) for r in rows] for k in ("kd", "ce", "loss"))
    assert loss == pytest.approx([0.5 * k + 0.5 * c for k, c in zip(kd, ce)], abs=2e-5)
    fidelity = metrics["test"]["fidelity"]["top1_match"]
    assert fidelity == pytest.approx(top1_match_by_hand(tmp_path / "student", teacher))
    # the loaded teacher is the best checkpoint's weights, in eval mode
    run = load_run(teacher)
    assert not run.model.training and run.config.model.name == "lstm"


@pytest.mark.slow
def test_teacher_dropout_gives_noisy_uncached_targets(tmp_path):
    """Reflect's quirk: the teacher's targets computed with dropout on (tiny_config's LSTM has
    dropout 0.2), so they are not cached and differ from call to call; the student's KD terms
    differ from the run without it."""
    import torch

    from ibkd.distill import Teacher

    teacher = tmp_path / "teacher"
    train_run(tiny_config(rows=100), teacher, progress=False)
    noisy = tiny_config(arch="transformer", rows=100, teacher=str(teacher), teacher_dropout=True)
    t = Teacher.load(noisy, torch.device("cpu"))
    assert not t.cacheable
    tokens, lengths = torch.randint(4, 50, (8, 6)), torch.full((8,), 6)
    a, b = t.outputs(tokens, lengths)[0], t.outputs(tokens, lengths)[0]
    assert not torch.allclose(a, b)
    train_run(noisy, tmp_path / "noisy", progress=False)
    plain = tiny_config(arch="transformer", rows=100, teacher=str(teacher))
    train_run(plain, tmp_path / "plain", progress=False)
    kd = {n: [r["kd"] for r in without(tmp_path / n / "log.csv")] for n in ("noisy", "plain")}
    assert kd["noisy"][0] != kd["plain"][0]  # same student init and batch, other targets


@pytest.mark.slow
def test_cached_teacher_outputs_equal_its_logits_batch_by_batch(tmp_path):
    import torch

    from ibkd.data.batching import batches
    from ibkd.data.prepare import prepare_data
    from ibkd.distill import Teacher

    teacher = tmp_path / "teacher"
    train_run(tiny_config(arch="transformer"), teacher, progress=False)
    cfg = tiny_config(teacher=str(teacher))
    data = prepare_data(cfg)
    cached, fresh = (Teacher.load(cfg, torch.device("cpu")) for _ in range(2))
    cached.cache(data.train, torch.device("cpu"))
    assert cached.cached.shape == (len(data.train), 2)
    gen = torch.Generator().manual_seed(0)
    for index in batches(data.train.lengths, 32, shuffle=True, generator=gen):
        tokens, lengths, _ = data.train.batch(index)
        got, _ = cached.for_batch(index, tokens, lengths)
        want, _ = fresh.for_batch(index, tokens, lengths)
        torch.testing.assert_close(got, want.float(), rtol=1e-5, atol=1e-6)


def test_mnist_validation_accuracy_is_a_number(tmp_path):
    from conftest import fake_mnist

    from ibkd.recipes import preset

    model, train = preset("mnist", "mlp", "quick")
    train.epochs, train.device, train.warmup_steps = 1, "cpu", 2
    cfg = RunConfig(setup="mnist", model=model, train=train)
    cfg.data.data, cfg.data.max_train_rows = str(fake_mnist(tmp_path / "mnist")), 200
    metrics = train_run(cfg, tmp_path / "run", progress=False)
    (row,) = without(tmp_path / "run" / "epochs.csv")
    accuracy = float(row["valid_accuracy"])
    assert accuracy == pytest.approx(accuracy_by_hand(tmp_path / "run", "valid"), abs=5e-5)
    assert accuracy == pytest.approx(metrics["valid"]["mu_accuracy"], abs=5e-5)


@pytest.mark.slow
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


@pytest.mark.slow
def test_cli_train_and_distill(tmp_path, capsys, monkeypatch):
    data = tiny_data(tmp_path / "data", (1200, 150, 150))
    monkeypatch.chdir(tmp_path)
    common = ["--preset", "quick", "--epochs", "2", "--batch-size", "16", "--no-progress",
              "--device", "cpu", "--threads", "1"]  # fmt: skip
    train = ["train", "--setup", "cls", "--model", "lstm", "--data", "data", "--out", "t"]
    assert main([*train, *common]) == 0
    assert "valid: µ-accuracy" in capsys.readouterr().out
    out = json.loads((tmp_path / "t" / "metrics.json").read_text())
    labels = load_predictions(tmp_path / "t" / "predictions" / "valid.npz")["label"]
    majority = max(np.mean(labels == 0), np.mean(labels == 1))
    assert out["valid"]["mu_accuracy"] > majority  # past the warm-up, it learned
    assert out["training"]["threads"] == 1
    cfg = RunConfig.load(tmp_path / "t" / "config.yaml")
    assert cfg.data.data == str(data.resolve())  # a relative --data is stored absolute
    distill = ["distill", "--teacher", "t", "--model", "transformer-seq", "--out", "s"]
    assert main([*distill, "--kd-scale", "inv-t2", "--transfer", "none", *common]) == 0
    cfg = RunConfig.load(tmp_path / "s" / "config.yaml")
    assert cfg.distill.kd_scale == "inv-t2" and cfg.distill.alpha == 1.0
    assert cfg.distill.temperature == 3.0 and cfg.data.transfer is None  # quick T, no transfer
    assert cfg.distill.teacher == str(tmp_path / "t") and cfg.distill.loss == "kd"
    assert cfg.model.causal and cfg.setup == "cls" and cfg.train.epochs == 2
    assert main(["train", "--setup", "cls", "--model", "gru", "--out", str(tmp_path / "x")]) == 2
    assert "--model 'gru': unknown" in capsys.readouterr().err
    monkeypatch.chdir(data)  # a finished run resumes (returns its metrics) from anywhere
    assert main(["train", "--out", str(tmp_path / "s"), "--resume", "--no-progress"]) == 0
    assert "taught by" in capsys.readouterr().out


@pytest.mark.slow
def test_a_checkpoint_from_other_settings_is_not_resumed(tmp_path):
    cfg = tiny_config(rows=200)
    with pytest.raises(Killed):
        train_run(cfg, tmp_path / "r", progress=False, on_step=kill_at(4))
    (tmp_path / "r" / "config.yaml").unlink()  # a folder whose config went missing
    other = tiny_config(rows=200, seed=3)
    with pytest.raises(IbkdError, match="written by a run with other settings"):
        train_run(other, tmp_path / "r", resume=True, progress=False)


def test_tensorboard_scalars_follow_the_logs(tmp_path, monkeypatch):
    """--tensorboard writes every log.csv / epochs.csv number as a scalar at its step."""
    import ibkd.train

    written = []

    class Recorder:
        def __init__(self, log_dir, purge_step):
            assert log_dir == str(tmp_path / "run") and purge_step is None  # not a resume

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def close(self):
            written.append("closed")

    monkeypatch.setattr(ibkd.train, "_summary_writer", lambda: Recorder)
    cfg = tiny_config(rows=100)
    train_run(cfg, tmp_path / "run", progress=False, tensorboard=True)
    rows = without(tmp_path / "run" / "log.csv")
    loss = {step: value for tag, value, step in written[:-1] if tag == "train/loss"}
    assert loss == {int(r["step"]): float(r["loss"]) for r in rows}
    valid = [(step, value) for tag, value, step in written[:-1] if tag == "epoch/valid_loss"]
    epochs = without(tmp_path / "run" / "epochs.csv")
    assert valid == [(int(r["step"]), float(r["valid_loss"])) for r in epochs]
    assert {t for t, *_ in written[:-1]} >= {"train/lr", "train/tokens_per_s", "train/kd"}
    assert written[-1] == "closed"


def test_tensorboard_event_files_beside_the_log(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = tiny_config(rows=100)
    cfg.train.epochs = 1
    train_run(cfg, tmp_path / "run", progress=False, tensorboard=True)
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_tensorboard_absent_is_one_line_before_writing(tmp_path, capsys):
    try:
        import tensorboard  # noqa: F401

        pytest.skip("tensorboard is installed")
    except ImportError:
        pass
    args = ["train", "--setup", "cls", "--model", "lstm", "--device", "cpu", "--tensorboard"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert "--tensorboard: needs the tensorboard package" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_cpu_optimizer_is_adamw_fused_and_agrees_with_the_per_tensor_loop(arch):
    """On a CPU the run's AdamW (`ibkd.train._optimizer`) is torch's fused kernel for speed:
    the same update rule as the per-tensor loop, its arithmetic in another order. After one
    step the weights agree to float rounding (1e-6); after 12 (warm-up and weight decay
    included) to 5e-4 (Adam divides by the root of small second moments, which magnifies the
    rounding; the benchmark's 30 steps of the quick models end within 2e-4), while one step
    moves them by the learning rate (1e-3 and more)."""
    import copy

    import torch

    from ibkd.models import Shapes, build_model
    from ibkd.train import _optimizer

    cfg = tiny_config("cls", arch)
    torch.manual_seed(0)
    model = build_model(cfg.model, Shapes(n_classes=2, vocab_size=50))
    tokens = torch.randint(4, 50, (8, 7))
    lengths = torch.tensor([7, 7, 6, 5, 5, 4, 3, 2])
    labels = torch.randint(0, 2, (8,))
    for steps, tolerance in ((1, 1e-6), (12, 5e-4)):
        trained = []
        for fused in (True, False):
            net = copy.deepcopy(model)
            opt, sched = _optimizer([net], cfg, 1000)
            assert opt.defaults["fused"] is True  # CPU parameters: the fused kernel
            for group in opt.param_groups:
                group["fused"] = fused
                group["foreach"] = False
            torch.manual_seed(1)  # the same dropout masks
            for _ in range(steps):
                loss = torch.nn.functional.cross_entropy(net(tokens, lengths), labels)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            trained.append(net.state_dict())
        diff = max((trained[0][k] - trained[1][k]).abs().max().item() for k in trained[0])
        assert diff <= tolerance, (steps, diff)
        assert not torch.equal(trained[0]["head.weight"], model.state_dict()["head.weight"])
