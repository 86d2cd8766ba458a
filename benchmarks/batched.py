"""R seeds of one model trained as one batched model (`ibkd.batched.train_batched`) against the
same R runs trained one by one (`ibkd.train.train_run`), in the same process, alternating.

For each model and preset (classification, the shipped data's first `--rows` training rows,
`--epochs` epochs, early stopping off): training examples/s of the R runs together (examples
trained / training seconds: the sum of the runs' `training.seconds` one by one, the group's
own once batched; logging and checkpoints included, validation and prediction not; a batched
run's seconds also hold the other runs' epoch-end validation, which runs while its step is
open, so compare the wall times too) and the wall time of the whole call (set-up, validation
and prediction included, the same work both ways). Best of `--repeat` alternating
measurements.

    python benchmarks/batched.py [--models transformer transformer-seq] [--presets quick]
        [--seeds 3] [--rows 2000] [--epochs 1] [--repeat 3] [--threads 1] [--device cpu]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
from pathlib import Path

import torch

from ibkd.batched import train_batched
from ibkd.config import DataConfig, RunConfig
from ibkd.files import dumps_json
from ibkd.recipes import preset
from ibkd.train import train_run


def config(name: str, preset_name: str, rows: int, epochs: int, seed: int, device: str):
    """The classification run of `name` at `preset_name`, on `rows` training rows."""
    model, train = preset("cls", name, preset_name)
    train = dataclasses.replace(train, epochs=epochs, device=device, patience=epochs + 1)
    return RunConfig(setup="cls", model=model, seed=seed, data=DataConfig(max_train_rows=rows),
                     train=train)  # fmt: skip


def measure(name, preset_name, args, tmp: Path) -> dict:
    """Best-of-`repeat` examples/s and wall seconds, one by one and batched."""
    cfgs = [config(name, preset_name, args.rows, args.epochs, s, args.device)
            for s in range(args.seeds)]  # fmt: skip
    best = {"alone": None, "batched": None}
    for r in range(args.repeat):
        for how in ("alone", "batched") if r % 2 == 0 else ("batched", "alone"):
            outs = [tmp / f"{name}-{preset_name}-{how}-{r}-{s}" for s in range(args.seeds)]
            t0 = time.perf_counter()
            if how == "alone":
                metrics = [train_run(c, o, progress=False) for c, o in zip(cfgs, outs)]
                seconds = sum(m["training"]["seconds"] for m in metrics)
            else:
                metrics = train_batched(cfgs, outs)
                seconds = max(m["training"]["seconds"] for m in metrics)
            wall = time.perf_counter() - t0
            examples = sum(m["training"]["train_examples"] * m["training"]["epochs"]
                           for m in metrics)  # fmt: skip
            rate = examples / seconds
            print(f"{name} {preset_name} {how}: {rate:,.0f} examples/s, {wall:.1f} s wall")
            if best[how] is None or rate > best[how]["examples_per_s"]:
                best[how] = {
                    "examples_per_s": round(rate),
                    "wall_s": round(wall, 1),
                    "valid_accuracy": [m["valid"]["mu_accuracy"] for m in metrics],
                }
    return {"model": name, "preset": preset_name, "seeds": args.seeds, "rows": args.rows,
            "epochs": args.epochs, **best,
            "speedup": round(best["batched"]["examples_per_s"] / best["alone"]["examples_per_s"],
                             3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["transformer", "transformer-seq"])
    ap.add_argument("--presets", nargs="+", default=["quick"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset_name in args.presets:
            for name in args.models:
                results.append(measure(name, preset_name, args, Path(tmp)))
    report = {"machine": {"cpu": platform.processor() or platform.machine(),
                          "torch": torch.__version__, "threads": args.threads,
                          "device": args.device,
                          "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None},
              "results": results}  # fmt: skip
    print(dumps_json(report))
    if args.json:
        args.json.write_text(dumps_json(report))


if __name__ == "__main__":
    main()
