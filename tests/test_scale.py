"""Scale-out: grids as Ray tasks, one run under torchrun DDP."""

import json

import pytest
import torch
from conftest import mini_grid

from ibkd.experiments.grid import run_grid


def metrics(folder, name):
    return json.loads((folder / name / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_grid_matches_local_executor(tmp_path, ray_cluster):
    import torch

    from ibkd.experiments.executors import Ray

    runs = mini_grid(small_data(tmp_path / "data", (80, 24, 24)))
    on_ray = run_grid(runs, tmp_path / "ray", progress=False, executor=Ray(tmp_path / "ray"))
    assert sorted(on_ray.finished) == sorted(r.name for r in runs) and not on_ray.failed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a Ray task asking for 1 CPU uses
    try:
        run_grid(runs, tmp_path / "local", progress=False)
    finally:
        torch.set_num_threads(threads)
    for r in runs:
        a, b = metrics(tmp_path / "ray", r.name), metrics(tmp_path / "local", r.name)
        assert a["test"]["mu_accuracy"] == b["test"]["mu_accuracy"], r.name
        assert a["test"]["ece"] == b["test"]["ece"], r.name
    again = run_grid(runs, tmp_path / "ray", progress=False, executor=Ray(tmp_path / "ray"))
    assert len(again.skipped) == len(runs) and not again.finished


@pytest.mark.slow
def test_ray_failed_task_is_retried_then_reported(tmp_path, ray_cluster):
    from ibkd.experiments.executors import Ray

    runs = mini_grid(small_data(tmp_path / "data", (80, 24, 24)))
    lstm = next(r for r in runs if r.name == "lstm/seed0")
    lstm.config.data.data = str(tmp_path / "missing.tsv")  # fails on every attempt
    result = run_grid(runs, tmp_path / "g", progress=False, executor=Ray(tmp_path / "g"))
    assert "missing.tsv" in result.failed["lstm/seed0"]
    assert "its teacher lstm/seed0 failed" in result.failed["transformer--from-lstm/seed0"]
    assert result.finished == ["transformer/seed0"]


def test_storage_probe_reads_the_token(tmp_path):
    from ibkd.experiments.executors import _sees

    probe = tmp_path / "probe"
    probe.write_text("abc")
    assert _sees(str(probe), "abc")[1] and not _sees(str(probe), "abd")[1]
    assert not _sees(str(tmp_path / "absent"), "abc")[1]


def small_data(folder, rows=(600, 150, 150)):
    """The first rows of each shipped split, as a data folder."""
    from ibkd.data.splits import Splits, load_splits, write_splits

    s = load_splits("default")
    write_splits(Splits(s.train[: rows[0]], s.valid[: rows[1]], s.test[: rows[2]], "test"), folder)
    return folder


def torchrun(*args, processes=2, timeout=300):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
           "--standalone", "-m", "ibkd", *args]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_torchrun_ddp_on_cpu_trains_one_run(tmp_path):
    import csv

    data = small_data(tmp_path / "data")
    runs = tmp_path / "runs"
    out = torchrun("train", "--setup", "cls", "--model", "lstm", "--preset", "quick",
                   "--data", str(data), "--epochs", "4", "--lr", "3e-3", "--device", "cpu",
                   "--no-progress", "--out", str(runs / "ddp"))  # fmt: skip
    assert out.count("valid: µ-accuracy") == 1  # rank 0 alone reports
    assert [p.name for p in runs.iterdir()] == ["ddp"]  # exactly one run folder
    metrics = json.loads((runs / "ddp" / "metrics.json").read_text())
    assert metrics["training"]["processes"] == 2
    with open(runs / "ddp" / "epochs.csv") as f:
        losses = [float(r["train_loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 4 and losses[-1] < losses[0]
    steps = [int(r.split(",")[0]) for r in (runs / "ddp" / "log.csv").read_text().split()[1:]]
    assert steps == list(range(1, metrics["training"]["steps"] + 1))  # one writer, no repeats


@pytest.mark.slow
def test_a_killed_run_resumes_under_torchrun(tmp_path):
    from conftest import Killed, kill_at

    from ibkd.config import RunConfig
    from ibkd.recipes import preset
    from ibkd.train import train_run

    model, train = preset("cls", "lstm", "quick")
    train.epochs, train.device = 3, "cpu"
    cfg = RunConfig(setup="cls", model=model, seed=0, train=train)
    cfg.data.data = str(small_data(tmp_path / "data"))
    with pytest.raises(Killed):  # mid-epoch 2, after the end-of-epoch-1 checkpoint
        train_run(cfg, tmp_path / "run", progress=False, on_step=kill_at(14))
    torchrun("train", "--out", str(tmp_path / "run"), "--resume", "--no-progress")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["training"]["epochs"] == 3 and metrics["training"]["processes"] == 2
    steps = [int(r.split(",")[0]) for r in (tmp_path / "run" / "log.csv").read_text().split()[1:]]
    assert steps == list(range(1, metrics["training"]["steps"] + 1))


def test_bf16_is_for_cuda_and_native_bf16_cpus(tmp_path, monkeypatch):
    """--precision bf16 trains on a CPU with native bf16 (the step under CPU autocast) and is
    refused, before anything is written, on one without; fp16 is not a precision."""
    from conftest import tiny_config

    from ibkd import distributed
    from ibkd.errors import IbkdError
    from ibkd.train import train_run

    cfg = tiny_config()
    cfg.train.precision = "bf16"
    monkeypatch.setattr(distributed, "native_bf16_cpu", lambda: False)
    with pytest.raises(IbkdError, match="bf16: for CUDA devices and CPUs with native bf16"):
        train_run(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # refused before anything was written
    monkeypatch.setattr(distributed, "native_bf16_cpu", lambda: True)
    seen = []
    real = torch.autocast

    def spy(device_type, dtype=None, enabled=True, **kw):
        seen.append((device_type, dtype, enabled))
        return real(device_type, dtype, enabled=enabled, **kw)

    monkeypatch.setattr(torch, "autocast", spy)
    train_run(cfg, tmp_path / "r", progress=False)
    assert ("cpu", torch.bfloat16, True) in seen
    assert (tmp_path / "r" / "metrics.json").exists()
    cfg.train.precision = "fp16"
    with pytest.raises(IbkdError, match="precision 'fp16'"):
        cfg.validate()


@pytest.mark.parametrize("setup", ["cls", "lm"])
@pytest.mark.slow
def test_ddp_follows_the_single_process_run(tmp_path, setup):
    """Without dropout, two processes on slices of each batch take the single-process steps."""
    import csv

    from ibkd.config import ModelConfig, RunConfig, TrainConfig

    model = ModelConfig("lstm", "lstm", dim=32, layers=1, hidden=32)
    train = TrainConfig(epochs=2, batch_size=25, warmup_steps=5, device="cpu")  # odd slices
    cfg = RunConfig(setup=setup, model=model, seed=0, train=train)
    cfg.data.data = str(small_data(tmp_path / "data", (300, 100, 100)))
    losses = {}
    for name, processes in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        cfg.save(tmp_path / name / "config.yaml")  # `train --resume` starts a run from it
        torchrun("train", "--out", str(tmp_path / name), "--resume", "--no-progress",
                 processes=processes)  # fmt: skip
        with open(tmp_path / name / "epochs.csv") as f:
            losses[name] = [float(r["valid_loss"]) for r in csv.DictReader(f)]
    assert losses["two"] == pytest.approx(losses["one"], abs=2e-5)  # 5 decimals in the csv
