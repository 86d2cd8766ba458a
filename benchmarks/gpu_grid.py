"""GPU grids: each model's training rate on this device, a packed group of quick runs, and the
extrapolated wall time of every grid.

    python benchmarks/gpu_grid.py [--device cuda] [--seconds 8] [--pack 2 4 8]
        [--lm-text DIR] [--mnist-dir DIR] [--precision fp32|bf16] [--out docs/results/gpu_grid]
    python benchmarks/gpu_grid.py --tiny --device cpu --out /tmp/gpu_grid   # a smoke test, seconds

Measures, on one device (`--device`, default `auto`: CUDA when there is one):
1. the training rate of every model at the paper and quick presets (scenario 1's
   classification and language models in tokens/s, scenario 2's in images/s): ibkd's training
   step on the preset's real batches (length-bucketed, shuffled as a run's first epoch), the
   run's own optimizer (`ibkd.train._optimizer`), gradient clipping, for `--seconds` after
   `--warmup` steps, the device synchronised before the clock stops;
2. a packed group: `--pack N` processes training the quick `--pack-model` on the same device at
   once (what `ibkd reproduce --runs-per-gpu N` does), their summed rate against one alone:
   the packing gain;
3. for every grid (scenario 1 cls and lm, scenario 2, their kd-methods grids; paper and quick
   budgets): the sum over its runs of epochs x tokens per epoch / rate (a student of an LM
   teacher adds the teacher's forward pass, a third of the teacher's step; a cached teacher's
   one pass over the training set for the others), divided by the packing gain (paper grids:
   1, one run per GPU as Reflect ran them; quick grids: the best measured gain). An upper bound
   in epochs (early stopping ends runs sooner) without validation and prediction (about 2% of a
   quick run on a CPU: `benchmarks/profile_run.py`); divide by the number of GPUs.

Writes OUT.json and OUT.md with the device's name (`torch.cuda.get_device_name`, or the CPU
model), the versions and the measurements. The measurements stop within `--budget` seconds
(default 540: the whole script in under 10 minutes on a GPU); a measurement that has no time
left is skipped and said so. `--tiny`: 16-unit models on the first 64 training rows, one measured
step each (no warm-up; packed groups likewise), the grids extrapolated for that tiny data: a
check that the script runs, not an estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from step_options import make_step  # benchmarks/: the same bare step

import ibkd.train
from ibkd import experiments
from ibkd.config import RunConfig
from ibkd.data import mnist
from ibkd.data.batching import batches
from ibkd.data.prepare import prepare_data
from ibkd.distributed import pick_device, seed_everything
from ibkd.files import atomic_write, dumps_json
from ibkd.models import build_model
from ibkd.recipes import preset
from ibkd.runs import environment, now
from ibkd.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "cls": ("lstm", "transformer", "transformer-seq", "utransformer-seq"),
    "lm": ("lstm", "small-lstm", "transformer", "small-transformer"),
    "mnist": ("cnn", "mlp"),
}
GRIDS = [  # (scenario, grid, setup)
    ("scenario1", "main", "cls"),
    ("scenario1", "main", "lm"),
    ("scenario2", "main", "mnist"),
    ("scenario1", "kd-methods", "cls"),
    ("scenario2", "kd-methods", "mnist"),
]
BUDGETS = ("paper", "quick")
TINY_ROWS = 64
UNIT = {"cls": "tokens/s", "lm": "tokens/s", "mnist": "images/s"}


def tiny_model(model):
    """`model` (a ModelConfig) shrunk to 16 units, one layer, two heads (`--tiny`)."""
    sizes = {"dim": 16, "hidden": 16, "layers": 1, "heads": 2, "ff_mult": 1}
    fields = {f.name for f in dataclasses.fields(model)}
    values = {k: v for k, v in sizes.items() if k in fields}
    if "widths" in fields:
        values["widths"] = [8] * len(model.widths)
    return dataclasses.replace(model, **values)


def run_config(setup: str, model: str, budget: str, a: argparse.Namespace) -> RunConfig:
    """The config of a `budget` run of `model` (the first grid run of that model, so that its
    data settings are the grid's), shrunk with `--tiny`."""
    runs = grid_runs(experiments.get("scenario2" if setup == "mnist" else "scenario1"),
                     budget, setup)  # fmt: skip
    found = [r.config for r in runs if r.config.model.name == model and r.teacher is None]
    if found:
        cfg = dataclasses.replace(found[0])
    else:  # a model no grid trains without a teacher: the preset's
        m, t = preset(setup, model, budget)
        cfg = dataclasses.replace(runs[0].config, model=m, train=t)
    cfg = with_data(cfg, a)
    if a.tiny:
        cfg = dataclasses.replace(cfg, model=tiny_model(cfg.model))
    cfg.train = dataclasses.replace(cfg.train, device=a.device)
    return cfg


def grid_runs(scenario, budget: str, setup: str) -> list:
    """The runs of `scenario`'s grid for `budget` and `setup`."""
    return scenario.grid(budget=budget, setup=setup)


_DATA: dict = {}


def data_of(cfg: RunConfig):
    """`prepare_data(cfg)`, once per data setting (and setup) in this process; for images
    without the shifted test sets (their making takes longer than the measurements)."""
    key = (cfg.setup, dataclasses.astuple(cfg.data))
    if key not in _DATA:
        with mock.patch.object(mnist, "SHIFTS", ()):
            _DATA[key] = prepare_data(cfg)
    return _DATA[key]


def with_data(cfg: RunConfig, a: argparse.Namespace) -> RunConfig:
    """`cfg` on `--data` (classification and LM runs) and, with `--tiny`, its first rows."""
    data = cfg.data
    if a.data and cfg.setup != "mnist":
        data = dataclasses.replace(data, data=str(Path(a.data).absolute()))
    if a.tiny:
        data = dataclasses.replace(data, max_train_rows=TINY_ROWS)
    return dataclasses.replace(cfg, data=data)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(cfg: RunConfig, device: torch.device, seconds: float, warmup: int,
               max_steps: int | None, precision: str = "fp32", barrier=None) -> dict:  # fmt: skip
    """Train `cfg`'s model on its data's batches for `seconds` after `warmup` steps (at most
    `max_steps`): {rate (tokens or images / s), steps, seconds, parameters}. ibkd's training
    step: the loss (a language model's output layer at the scored positions only), backward,
    clipping, the run's AdamW. `barrier`: waited on after the warm-up (a packed group starts
    its clocks together)."""
    data = data_of(cfg)
    seed_everything(cfg.seed)
    model = build_model(cfg.model, get_task(cfg.setup).shapes(data.vocab)).to(device)
    opt, _ = ibkd.train._optimizer([model], cfg, len(data.train))
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(cfg.seed)
    order = batches(data.train.lengths, cfg.train.batch_size, shuffle=True, generator=gen,
                    bucket=cfg.train.bucket)  # fmt: skip
    model.train()

    train_step = make_step(cfg, model, opt, params, precision == "bf16" and device.type == "cuda",
                           "cuda")  # fmt: skip

    def step(i: int) -> int:
        index = order[i % len(order)]
        train_step(*(t.to(device) for t in data.train.batch(index)))
        return int(data.train.lengths[index].sum())

    for i in range(warmup):
        step(i)
    sync(device)
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    steps = done = 0
    while (time.perf_counter() - t0 < seconds or steps == 0) and (
        max_steps is None or steps < max_steps
    ):
        done += step(warmup + steps)
        steps += 1
    sync(device)
    elapsed = time.perf_counter() - t0
    return {"rate": done / elapsed, "steps": steps, "seconds": round(elapsed, 3),
            "parameters": sum(p.numel() for p in params)}  # fmt: skip


def _pack_worker(cfg, device_name, seconds, warmup, max_steps, precision, barrier, results):
    """One process of a packed group: its `train_rate` into `results`."""
    torch.set_num_threads(1)
    try:
        results.put(train_rate(cfg, pick_device(device_name), seconds, warmup, max_steps,
                               precision, barrier))  # fmt: skip
    except Exception as e:  # noqa: BLE001 - reported by the parent
        barrier.abort()
        results.put({"error": f"{type(e).__name__}: {e}"})


def packed_rate(cfg, device_name, n, seconds, warmup, max_steps, precision) -> dict:
    """`n` processes training `cfg` on one device at once (spawned, one CPU thread each):
    their summed rate and each one's."""
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_pack_worker, args=(cfg, device_name, seconds, warmup,
                                                    max_steps, precision, barrier, results))
             for _ in range(n)]  # fmt: skip
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    errors = [g["error"] for g in got if "error" in g]
    if errors:
        raise RuntimeError(f"a packed process failed: {errors[0]}")
    return {"processes": n, "rate": sum(g["rate"] for g in got),
            "each": [round(g["rate"], 1) for g in got]}  # fmt: skip


def tokens_per_epoch(cfg: RunConfig) -> int:
    """Input tokens (images) of one epoch of `cfg`'s training set (what a run's rate counts)."""
    return int(data_of(cfg).train.lengths.sum())


def grid_hours(scenario, budget: str, setup: str, rates: dict, a, gain: float) -> dict | None:
    """The extrapolated wall time of one grid (the module note); None when a model of it was
    not measured."""
    runs = grid_runs(scenario, budget, setup)
    by_name = {r.name: r for r in runs}
    total, tokens = 0.0, {}
    for r in runs:
        key = (setup, r.config.model.name, budget)
        if key not in rates:
            return None
        cfg = with_data(r.config, a)
        n = tokens_per_epoch(cfg)
        tokens[r.config.model.name + (" + transfer set" if cfg.data.transfer else "")] = n
        seconds = r.config.train.epochs * n / rates[key]
        if r.teacher is not None:
            t = by_name[r.teacher].config.model.name
            teacher_step = n / rates.get((setup, t, budget), rates[key])
            seconds += teacher_step / 3 * (r.config.train.epochs if setup == "lm" else 1)
        total += seconds
    return {"runs": len(runs), "epochs": sorted({r.config.train.epochs for r in runs}),
            "tokens_per_epoch": tokens,
            "packing": round(gain, 2), "gpu_seconds": round(total, 1),
            "gpu_hours": round(total / 3600, 2),
            "wall_hours_one_gpu": round(total / gain / 3600, 2)}  # fmt: skip


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model for a CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return environment()["cpu"] or "cpu"


def markdown(report: dict) -> str:
    """The report's tables."""
    lines = [f"# GPU grids on {report['device_name']} ({report['device']})", "",
             f"{report['finished']}, torch {report['torch']}, precision {report['precision']}"
             + (" -- TINY smoke test, not an estimate" if report["tiny"] else ""), "",
             "| setup | model | preset | rate | unit | steps | parameters |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in report["models"]:
        lines.append(f"| {m['setup']} | {m['model']} | {m['preset']} | {m['rate']:,.0f} | "
                     f"{UNIT[m['setup']]} | {m['steps']} | {m['parameters']:,} |")  # fmt: skip
    if report["packing"]:
        lines += ["", f"Packed quick `{report['pack_model']}` runs on one device:", "",
                  "| processes | summed rate | gain over one |", "|---|---|---|"]  # fmt: skip
        for p in report["packing"]:
            lines.append(f"| {p['processes']} | {p['rate']:,.0f} | {p['gain']:.2f}x |")
    lines += ["", "| grid | budget | runs | epochs | packing | GPU hours | wall hours, one GPU |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for g in report["grids"]:
        if g["estimate"] is None:
            lines.append(f"| {g['grid']} | {g['budget']} | | | | not measured | |")
            continue
        e = g["estimate"]
        lines.append(f"| {g['grid']} | {g['budget']} | {e['runs']} | "
                     f"{'/'.join(map(str, e['epochs']))} | {e['packing']}x | {e['gpu_hours']} | "
                     f"{e['wall_hours_one_gpu']} |")  # fmt: skip
    if report["skipped"]:
        lines += ["", "Not measured (no time left): " + ", ".join(report["skipped"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per model")
    p.add_argument("--warmup", type=int, default=5, help="steps before the clock starts")
    p.add_argument("--pack", type=int, nargs="*", default=[2, 4, 8], help="packed group sizes")
    p.add_argument("--pack-model", default="cls:transformer", help="SETUP:MODEL, quick preset")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for all measurements")
    p.add_argument("--lm-text", help="the LM grids' text (default $IBKD_LM_TEXT or the cache's)")
    p.add_argument("--data", help="the classification and LM grids' data (default: theirs)")
    p.add_argument("--mnist-dir", help="scenario 2's MNIST folder (default $IBKD_MNIST_DIR)")
    p.add_argument("--tiny", action="store_true", help="tiny models and data: a smoke test")
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "gpu_grid"))
    a = p.parse_args(argv)
    if a.lm_text:
        os.environ["IBKD_LM_TEXT"] = a.lm_text
    if a.mnist_dir:
        os.environ["IBKD_MNIST_DIR"] = a.mnist_dir
    device = pick_device(a.device)
    a.device = str(device)
    started = time.perf_counter()
    seconds, warmup, max_steps = (0.0, 0, 1) if a.tiny else (a.seconds, a.warmup, None)
    wanted = [(s, m, b) for b in BUDGETS for s, ms in MODELS.items() for m in ms]
    rates, models, skipped = {}, [], []
    for setup, model, budget in wanted:
        left = a.budget - (time.perf_counter() - started)
        if left < 3 * seconds + 5 and not a.tiny:
            skipped.append(f"{setup} {model} {budget}")
            continue
        cfg = run_config(setup, model, budget, a)
        got = train_rate(cfg, device, seconds, warmup, max_steps, a.precision)
        rates[(setup, model, budget)] = got["rate"]
        models.append({"setup": setup, "model": model, "preset": budget, **got})
        print(f"{setup:5s} {model:17s} {budget:5s} {got['rate']:12,.0f} {UNIT[setup]}",
              file=sys.stderr)  # fmt: skip
    pack_setup, pack_model = a.pack_model.split(":")
    single = rates.get((pack_setup, pack_model, "quick"))
    packing = []
    for n in a.pack if single else []:
        if a.budget - (time.perf_counter() - started) < seconds + 30 and not a.tiny:
            skipped.append(f"packing x{n}")
            continue
        cfg = run_config(pack_setup, pack_model, "quick", a)
        got = packed_rate(cfg, a.device, n, seconds, warmup, max_steps, a.precision)
        packing.append(got | {"gain": round(got["rate"] / single, 3)})
        print(f"packed x{n}: {got['rate']:,.0f} ({packing[-1]['gain']:.2f}x)", file=sys.stderr)
    best = max([1.0] + [g["gain"] for g in packing])
    grids = []
    for name, grid, setup in GRIDS:
        scenario = experiments.get(name, grid)
        for budget in BUDGETS:
            gain = 1.0 if budget == "paper" else best
            estimate = grid_hours(scenario, budget, setup, rates, a, gain)
            grids.append({"grid": f"{name} {grid} {setup}", "budget": budget,
                          "estimate": estimate})  # fmt: skip
    report = {
        "device": a.device, "device_name": device_name(device), "finished": now(),
        "precision": a.precision, "tiny": a.tiny, "seconds_per_model": seconds,
        "warmup_steps": warmup, "wall_seconds": round(time.perf_counter() - started, 1),
        "models": [m | {"rate": round(m["rate"], 1)} for m in models],
        "pack_model": a.pack_model, "packing": packing, "grids": grids, "skipped": skipped,
        "cpu_threads": torch.get_num_threads(), **environment(),
    }  # fmt: skip
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out.with_suffix(".json")) as f:
        f.write(dumps_json(report, indent=2) + "\n")
    with atomic_write(out.with_suffix(".md")) as f:
        f.write(markdown(report))
    print(f"{out.with_suffix('.json')}, {out.with_suffix('.md')}: {report['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
