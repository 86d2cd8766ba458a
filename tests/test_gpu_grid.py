"""benchmarks/gpu_grid.py on a CPU with --tiny: every model measured, every grid extrapolated
by the documented formula, the device named (the GPU path is the same code on `cuda`)."""

import json
import sys
from pathlib import Path

import pytest
from conftest import fake_mnist, tiny_data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_grid  # noqa: E402


@pytest.mark.slow
def test_gpu_grid_tiny_measures_every_model_and_extrapolates_every_grid(tmp_path):
    from ibkd import experiments

    data, images = tiny_data(tmp_path / "data", rows=(200, 40, 40)), tmp_path / "mnist"
    fake_mnist(images, n_train=300, n_test=50)
    out = tmp_path / "gg"
    args = ["--tiny", "--device", "cpu", "--pack", "--data", str(data), "--mnist-dir",
            str(images), "--lm-text", "none", "--out", str(out)]  # fmt: skip
    assert gpu_grid.main(args) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["device"] == "cpu" and report["device_name"] and report["tiny"]
    measured = {(m["setup"], m["model"], m["preset"]): m["rate"] for m in report["models"]}
    assert len(measured) == 20 and all(r > 0 for r in measured.values())
    grids = {(g["grid"], g["budget"]): g["estimate"] for g in report["grids"]}
    assert len(grids) == 10 and all(e is not None for e in grids.values())
    # scenario 1's paper grid: sum over runs of epochs x tokens per epoch / rate, plus a cached
    # teacher's one forward pass (a third of its step) per student; one run per GPU
    e = grids[("scenario1 main cls", "paper")]
    runs = experiments.get("scenario1").grid(budget="paper", setup="cls")
    tokens = e["tokens_per_epoch"]
    by_name = {r.name: r for r in runs}
    seconds = 0.0
    for r in runs:
        n = tokens[r.config.model.name]
        seconds += r.config.train.epochs * n / measured[("cls", r.config.model.name, "paper")]
        if r.teacher:
            seconds += n / measured[("cls", by_name[r.teacher].config.model.name, "paper")] / 3
    assert e["runs"] == len(runs) == 80 and e["packing"] == 1.0
    assert abs(e["gpu_seconds"] - seconds) <= 0.06 and e["gpu_hours"] == round(seconds / 3600, 2)
    assert "| scenario1 main cls | paper | 80 |" in out.with_suffix(".md").read_text()
