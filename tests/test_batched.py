"""Runs trained as one batched model (`ibkd.batched`) equal the same runs trained alone.

The stated tolerance (src/ibkd/batched.py, docs/speed.md): with dropout 0, every file of a run
folder is the one the run writes alone, the numbers equal up to float32 rounding (relative
1e-4 for the logged losses and gradient norms, 1e-4 for the predictions' probabilities and
features, 1e-4 absolute for the weights); the steps, epochs, early stopping and data order
exactly. Tiny Transformers on 80 training rows, batches of 16 (5 steps an epoch), patience 1:
seed 0 stops after 2 epochs, seed 1 after 3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Killed, kill_at, tiny_config, without

from ibkd import losses
from ibkd.batched import check_group, clip_per_run, train_batched
from ibkd.errors import IbkdError
from ibkd.predictions import load_predictions
from ibkd.runs import load_checkpoint
from ibkd.train import train_run

RTOL = 1e-4  # the stated tolerance, relative, for every logged or saved number
WEIGHT_ATOL = 1e-4  # absolute, for the saved weights
SEEDS = (0, 1)


def config(data, seed):
    """A tiny Transformer without dropout (exact comparisons), 5 epochs at most, patience 1."""
    cfg = tiny_config(arch="transformer", seed=seed)
    cfg.data.data, cfg.data.max_train_rows = str(data), None
    cfg.model.dropout = cfg.model.attn_dropout = cfg.model.embed_dropout = 0.0
    cfg.train.epochs, cfg.train.patience, cfg.train.lr, cfg.train.batch_size = 5, 1, 3e-2, 16
    return cfg


@pytest.fixture(scope="module")
def trained(small_data, tmp_path_factory):
    """The two seeds trained alone (`alone/SEED`) and as one group (`group/SEED`)."""
    root = tmp_path_factory.mktemp("batched")
    for seed in SEEDS:
        train_run(config(small_data, seed), root / "alone" / str(seed), progress=False)
    results = train_batched([config(small_data, s) for s in SEEDS],
                            [root / "group" / str(s) for s in SEEDS])  # fmt: skip
    assert all(isinstance(r, dict) for r in results), results
    return root


def numbers_close(a, b, path=""):
    """Assert two JSON-like values equal, floats within RTOL; timings are left out."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            if k not in ("seconds", "tokens_per_s", "teacher_cache_seconds", "run"):
                numbers_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            numbers_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool):
        assert a == pytest.approx(b, rel=RTOL, abs=1e-6), path
    else:
        assert a == b, path


def same_run(a, b):
    """Assert that run folders `a` and `b` hold the same run within the stated tolerance."""
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in ("config.yaml", "vocab.json"):
        assert (a / name).read_text() == (b / name).read_text(), name
    for log, skip in (("log.csv", "tokens_per_s"), ("epochs.csv", "seconds")):
        rows_a, rows_b = without(a / log, skip), without(b / log, skip)
        assert len(rows_a) == len(rows_b) and rows_a[0].keys() == rows_b[0].keys(), log
        for ra, rb in zip(rows_a, rows_b):
            numbers_close({k: float(v) for k, v in ra.items()},
                          {k: float(v) for k, v in rb.items()}, log)  # fmt: skip
    numbers_close(*(json.loads((f / "metrics.json").read_text()) for f in (a, b)))
    for split in ("valid", "test"):
        pa, pb = (load_predictions(f / "predictions" / f"{split}.npz") for f in (a, b))
        assert pa.keys() == pb.keys()
        for k in pa:
            np.testing.assert_allclose(pa[k], pb[k], rtol=RTOL, atol=1e-5, err_msg=k)
    # the weights: Adam divides by the root of a gradient's running square, which magnifies the
    # rounding of elements whose gradients are near 0 (embeddings of rare tokens: up to 4e-5
    # here). The attention's key bias has a gradient of exactly 0 but for rounding (softmax
    # ignores a constant added to every score), so Adam moves it by rounding noise alone: it is
    # left out (it changes no output; the predictions above are compared)
    wa, wb = (load_checkpoint(f / "checkpoint.pt")["model"] for f in (a, b))
    for k in wa:
        if k.endswith("qkv.bias"):
            d = len(wa[k]) // 3
            wa[k], wb[k] = (torch.cat([w[k][:d], w[k][2 * d :]]) for w in (wa, wb))
        torch.testing.assert_close(wa[k], wb[k], rtol=RTOL, atol=WEIGHT_ATOL)


@pytest.mark.slow
def test_a_run_trained_in_a_group_equals_the_run_trained_alone(trained):
    for seed in SEEDS:
        same_run(trained / "alone" / str(seed), trained / "group" / str(seed))


@pytest.mark.slow
def test_early_stopping_is_per_run(trained):
    """Seed 0 stops after epoch 2 and is finished at its own best epoch while seed 1 trains on
    to epoch 3 (each as alone: the folders' equality is the test above)."""
    m = {s: json.loads((trained / "group" / str(s) / "metrics.json").read_text())["training"]
         for s in SEEDS}  # fmt: skip
    assert m[0]["early_stopped"] and m[1]["early_stopped"]
    assert (m[0]["epochs"], m[0]["best_epoch"]) == (2, 1)
    assert (m[1]["epochs"], m[1]["best_epoch"]) == (3, 2)
    assert m[0]["steps"] < m[1]["steps"]


@pytest.mark.slow
def test_a_killed_group_resumes_to_the_same_runs(trained, small_data, tmp_path):
    """Killed at run 0's step 6 (its checkpoint of step 6 written, run 1's last one of step 5,
    the end of epoch 1), the group resumes: run 1 catches up alone, then both go on as one."""
    cfgs = [config(small_data, s) for s in SEEDS]
    outs = [tmp_path / str(s) for s in SEEDS]
    with pytest.raises(Killed):
        train_batched(cfgs, outs, on_step=kill_at(6))
    steps = [load_checkpoint(o / "checkpoint.pt")["state"]["step"] for o in outs]
    assert steps == [6, 5]
    assert not any((o / "metrics.json").exists() for o in outs)
    results = train_batched(cfgs, outs, resume=True)
    assert all(isinstance(r, dict) for r in results), results
    for seed, out in zip(SEEDS, outs):
        same_run(trained / "group" / str(seed), out)
    # a finished group resumed returns its metrics
    assert train_batched(cfgs, outs, resume=True) == results


def test_each_run_is_clipped_by_its_own_norm():
    """Per-run clipping equals `clip_grad_norm_` applied to each run alone: a run above the
    threshold is scaled down, one below is left as it is."""
    torch.manual_seed(0)
    grads = [torch.randn(2, 4, 3), torch.randn(2, 5)]
    grads[0][1] *= 0.01
    grads[1][1] *= 0.01
    alone = []
    for r in range(2):
        params = [torch.zeros_like(g[r], requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = g[r].clone()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        alone.append((norm, [p.grad for p in params]))
    stacked = [g.clone() for g in grads]
    norms = clip_per_run(stacked, 1.0)
    assert norms[0] > 1.0 > norms[1]
    for r, (norm, clipped) in enumerate(alone):
        torch.testing.assert_close(norms[r], norm)
        for g, c in zip(stacked, clipped):
            torch.testing.assert_close(g[r], c)
    torch.testing.assert_close(stacked[0][1], grads[0][1])  # below the threshold: unchanged


def test_groups_that_cannot_train_together_are_refused(small_data):
    a, b = config(small_data, 0), config(small_data, 1)
    b.train.lr = 1e-3
    with pytest.raises(IbkdError, match=r"run 1 differs .*train\.lr"):
        check_group([a, b])
    lstm = tiny_config(arch="lstm")
    with pytest.raises(IbkdError, match="aten::lstm has no vmap batching rule"):
        check_group([lstm])
    lm = tiny_config(setup="lm", arch="transformer")
    with pytest.raises(IbkdError, match="setup lm"):
        check_group([lm])
    # a loss with trained modules of its own (on the logits alone): each run would need its own
    losses.register("learned", trainable=lambda s, t: {"scale": torch.nn.Linear(1, 1)})(
        losses.LOSSES["kd"].fn
    )
    try:
        learned = tiny_config(arch="transformer", teacher="t", loss="learned")
        with pytest.raises(IbkdError, match="--kd-loss learned: a loss with trained modules"):
            check_group([learned])
    finally:
        losses.unregister("learned")


@pytest.mark.slow
def test_a_grid_trains_a_cells_seeds_as_one_group(trained, small_data, tmp_path):
    """`run_grid(batch_seeds=True)` (`reproduce --batch-seeds`) trains the two seeds as one
    group (the same runs as the group above) and an LSTM, which cannot be vmapped, alone."""
    from ibkd.experiments.executors import Inline
    from ibkd.experiments.grid import GridRun, run_grid

    lstm = tiny_config(arch="lstm")
    lstm.data.data, lstm.data.max_train_rows, lstm.train.epochs = str(small_data), None, 1
    runs = [GridRun(f"t{s}", config(small_data, s)) for s in SEEDS] + [GridRun("lstm", lstm)]
    submitted = []

    class Recording(Inline):
        def submit_group(self, cfgs, folders):
            submitted.append([Path(f).name for f in folders])
            return super().submit_group(cfgs, folders)

    result = run_grid(runs, tmp_path, progress=False, executor=Recording(False),
                      batch_seeds=True)  # fmt: skip
    assert sorted(result.finished) == ["lstm", "t0", "t1"] and not result.failed
    assert submitted == [["t0", "t1"]]
    for seed in SEEDS:
        same_run(trained / "group" / str(seed), tmp_path / f"t{seed}")
