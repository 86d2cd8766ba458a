"""Scale-out: grids as Ray tasks, one run under torchrun DDP."""

import json

import pytest
from test_reproduce import tiny

from ibkd.experiments.grid import run_grid
from ibkd.experiments.scenario1 import grid


def metrics(folder, name):
    return json.loads((folder / name / "metrics.json").read_text())


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_grid_matches_local_executor(tmp_path, ray_cluster):
    import torch

    from ibkd.experiments.executors import Ray

    runs = tiny(grid("cls", "quick", seeds=1), rows=150)[:5]  # 4 alone + lstm -> transformer
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


def test_ray_failed_task_is_retried_then_reported(tmp_path, ray_cluster):
    from ibkd.experiments.executors import Ray

    runs = tiny(grid("cls", "quick", seeds=1), rows=100)
    lstm = next(r for r in runs if r.name == "lstm/seed0")
    lstm.config.data.data = str(tmp_path / "missing.tsv")  # fails on every attempt
    keep = [lstm] + [r for r in runs if r.teacher == "lstm/seed0"][:1]
    keep += [r for r in runs if r.name == "transformer/seed0"]
    result = run_grid(keep, tmp_path / "g", progress=False, executor=Ray(tmp_path / "g"))
    assert "missing.tsv" in result.failed["lstm/seed0"]
    assert "its teacher lstm/seed0 failed" in result.failed[keep[1].name]
    assert result.finished == ["transformer/seed0"]


def test_storage_probe_reads_the_token(tmp_path):
    from ibkd.experiments.executors import _sees

    probe = tmp_path / "probe"
    probe.write_text("abc")
    assert _sees(str(probe), "abc")[1] and not _sees(str(probe), "abd")[1]
    assert not _sees(str(tmp_path / "absent"), "abc")[1]
