"""Where a quick run's time goes: one `ibkd train --preset quick` run per model, profiled.

    python benchmarks/profile_run.py [--runs cls-transformer cls-lstm lm-lstm]
        [--lm-rows 3000] [--threads 1] [--out-dir docs/results]

Each run is a fresh Python process (`python benchmarks/profile_run.py --child ...`), as
`ibkd train` is, that imports ibkd, runs the command's `ibkd.cli.main` and then scores the
finished run on the shipped Marvin & Linzen suite exactly as `ibkd reproduce` does after every
run (`ibkd.suite_predictions.SuiteScorer`; the grid does this in its own process). The
existing phases are timed by wrapping the functions that carry them (no change to the
training code; on a CPU every call is synchronous, so a wall-clock timer around a call is its
cost). A call inside another timed call counts only to the inner phase (exclusive time), so the
phases add up to the measured total:

- `process_start`: from the parent's launch of the process to its first line (interpreter);
- `imports`: torch and the ibkd modules the command uses;
- `data`: `ibkd.data.prepare.prepare_data` (reading, splitting, vocabulary, encoding);
- `run_setup`: the rest of `train_run` outside the steps (model, optimizer, run folder,
  the loop's bookkeeping and progress);
- `batching`: a training batch's tensors (`Encoded.batch`, the copy to the device);
- `forward`: the training loss (`ibkd.train._loss`: the model's forward pass and the loss);
- `backward`: `Tensor.backward`;
- `optimizer`: gradient clipping, `zero_grad`, AdamW's step and the schedule's;
- `step_other`: the rest of `train_step` (the one sync that reads the logged values, checks);
- `validation`: `validation_loss` at every epoch's end (`end_epoch`'s own remainder, copying
  the best weights, is `epoch_end`);
- `prediction`: `predict` of the valid and test sets with the best weights (`finish`);
- `metrics`: `compute_metrics` of those predictions;
- `writing_outputs`: checkpoints, predictions, log.csv / epochs.csv rows, metrics.json and the
  suite's result files;
- `suite_read`: reading and parsing the suite (once per grid, not per run);
- `suite_scoring`: loading the run and scoring every suite item (`SuiteScorer.__call__` less
  its writing);
- `other`: the rest of the measured total (argument parsing, process exit).

The LM run trains on the first `--lm-rows` sentences of its text (`--lm-text`, e.g. PTB;
`max_train_rows`) for `--lm-epochs` epochs, so that it ends in minutes; its validation and
test sets are whole.
Every phase is timed in wall seconds and in CPU seconds of the process (`time.process_time`;
the whole child's from `getrusage`, for `other`). With one torch thread (`--threads 1`, a grid
worker's) the CPU seconds are the work done, and their shares (`cpu_shares`) the robust figure
on a machine shared with other jobs, where wall seconds stretch with the load.
Results: `OUT_DIR/profile_<run>.json` per run (`seconds` and `shares` wall, `cpu_seconds`
and `cpu_shares`, calls, the machine, its load average before and after).
"""

from __future__ import annotations

import time

T_FIRST_LINE = time.time()  # the child's first line: the interpreter has started
CPU_FIRST_LINE = time.process_time()  # the CPU time its start took

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("process_start", "imports", "data", "run_setup", "batching", "forward", "backward",
          "optimizer", "step_other", "validation", "epoch_end", "prediction", "metrics",
          "writing_outputs", "suite_read", "suite_scoring", "other")  # fmt: skip
RUNS = {  # name -> (setup, model)
    "cls-transformer": ("cls", "transformer"),
    "cls-lstm": ("cls", "lstm"),
    "lm-lstm": ("lm", "lstm"),
    "lm-transformer": ("lm", "transformer"),
}


class Phases:
    """Exclusive wall and CPU time per phase: a timed call inside another counts only to the
    inner one (`wrap`); `seconds[name]` wall seconds, `cpu[name]` this process's CPU seconds
    (`time.process_time`: what the phase cost, however busy the machine), `calls[name]`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.cpu: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(PHASES, 0)
        self.stack: list[list] = []  # [name, wall start, CPU start, wall and CPU inside]

    def add(self, name: str, wall: float, cpu: float) -> None:
        """Count `wall` and `cpu` seconds (and a call) to phase `name`."""
        self.seconds[name] += wall
        self.cpu[name] += cpu
        self.calls[name] += 1

    def wrap(self, name: str, fn, inside: str | None = None):
        """`fn` timed as phase `name` (only when called inside phase `inside`, if given)."""

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if inside is not None and (not self.stack or self.stack[-1][0] != inside):
                return fn(*args, **kwargs)
            frame = [name, time.perf_counter(), time.process_time(), 0.0, 0.0]
            self.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                wall = time.perf_counter() - frame[1]
                cpu = time.process_time() - frame[2]
                self.stack.pop()
                self.add(name, wall - frame[3], cpu - frame[4])
                if self.stack:
                    self.stack[-1][3] += wall
                    self.stack[-1][4] += cpu

        return timed


def patch(obj, attr: str, phases: Phases, name: str, inside: str | None = None) -> None:
    """Replace `obj.attr` by its timed version (for the rest of this process)."""
    setattr(obj, attr, phases.wrap(name, getattr(obj, attr), inside))


def child(spec: dict) -> None:
    """Run one profiled command in this process; write {phase: seconds}, calls, steps and the
    run's metrics to spec["result"]."""
    phases = Phases()
    t0, c0 = time.perf_counter(), time.process_time()
    import torch

    import ibkd.cli
    import ibkd.train
    from ibkd import runs, suite_predictions
    from ibkd.data.batching import Encoded

    phases.add("imports", time.perf_counter() - t0, time.process_time() - c0)
    train = ibkd.train
    patch(train, "prepare_data", phases, "data")
    patch(train, "train_run", phases, "run_setup")
    patch(train, "train_step", phases, "step_other")
    patch(Encoded, "batch", phases, "batching", inside="step_other")
    patch(train, "_to_device", phases, "batching", inside="step_other")
    patch(train, "_loss", phases, "forward")
    patch(torch.Tensor, "backward", phases, "backward")
    patch(torch.nn.utils, "clip_grad_norm_", phases, "optimizer")
    patch(torch.optim.AdamW, "step", phases, "optimizer")
    patch(torch.optim.Optimizer, "zero_grad", phases, "optimizer")
    patch(torch.optim.lr_scheduler.LambdaLR, "step", phases, "optimizer")
    patch(train, "end_epoch", phases, "epoch_end")
    patch(train, "validation_loss", phases, "validation")
    patch(train, "predict", phases, "prediction")
    patch(train, "compute_metrics", phases, "metrics")
    for fn in ("save_checkpoint", "save_predictions", "dump_json"):
        patch(train, fn, phases, "writing_outputs")
    patch(runs.CsvLog, "write", phases, "writing_outputs")
    patch(runs.CsvLog, "sync", phases, "writing_outputs")
    patch(suite_predictions.SuiteScorer, "__call__", phases, "suite_scoring")
    patch(suite_predictions, "save_suite", phases, "writing_outputs")
    if spec["max_train_rows"]:
        run_config = ibkd.cli.run_config

        def capped(args):
            cfg = run_config(args)
            cfg.data.max_train_rows = spec["max_train_rows"]
            return cfg

        ibkd.cli.run_config = capped
    out = spec["out"]
    argv = ["train", "--setup", spec["setup"], "--model", spec["model"], "--preset", "quick",
            "--out", out, "--threads", str(spec["threads"]), "--device", "cpu",
            "--no-progress"]  # fmt: skip
    if spec["epochs"]:
        argv += ["--epochs", str(spec["epochs"])]
    if spec["lm_text"]:
        argv += ["--lm-text", spec["lm_text"]]
    code = ibkd.cli.main(argv)
    if code != 0:
        raise SystemExit(f"ibkd {' '.join(argv)}: exit status {code}")
    scorer = suite_predictions.SuiteScorer(suite_predictions.grid_suites([]), torch.device("cpu"))
    t, c = time.perf_counter(), time.process_time()
    scorer.read()
    phases.add("suite_read", time.perf_counter() - t, time.process_time() - c)
    scored = scorer(out)
    metrics = json.loads((Path(out) / "metrics.json").read_text())
    result = {
        "first_line": T_FIRST_LINE,
        "cpu_first_line": CPU_FIRST_LINE,
        "seconds": phases.seconds,
        "cpu": phases.cpu,
        "calls": phases.calls,
        "training": metrics["training"],
        "test": {k: v for k, v in metrics.get("test", {}).items() if isinstance(v, float)},
        "suites": {k: v.get("accuracy") for k, v in scored.items()},
        "argv": argv,
        "max_train_rows": spec["max_train_rows"],
        "end": time.time(),
    }
    Path(spec["result"]).write_text(json.dumps(result))


def profile(name: str, a: argparse.Namespace) -> dict:
    """Launch one profiled run in a fresh process; its phases, shares and the machine."""
    from ibkd.files import dumps_json  # noqa: F401 - the parent's own import, before timing
    from ibkd.runs import environment, now

    setup, model = RUNS[name]
    with tempfile.TemporaryDirectory(prefix="ibkd-profile-") as tmp:
        spec = {
            "setup": setup, "model": model, "out": str(Path(tmp) / "run"),
            "threads": a.threads, "result": str(Path(tmp) / "result.json"),
            "max_train_rows": a.lm_rows if setup == "lm" else None,
            "epochs": a.lm_epochs if setup == "lm" else None,
            "lm_text": a.lm_text if setup == "lm" else None,
        }  # fmt: skip
        load_before = os.getloadavg()
        launched = time.time()
        t0 = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True)
        total = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        total_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result = json.loads(Path(spec["result"]).read_text())
    seconds, cpu = result["seconds"], result["cpu"]
    seconds["process_start"] = result["first_line"] - launched
    cpu["process_start"] = result["cpu_first_line"]
    seconds["other"] = total - sum(v for k, v in seconds.items() if k != "other")
    cpu["other"] = total_cpu - sum(v for k, v in cpu.items() if k != "other")
    return {
        "run": name,
        "command": "ibkd "
        + " ".join(result["argv"]).replace(spec["out"], "RUN")
        + (f" (max_train_rows {result['max_train_rows']})" if result["max_train_rows"] else "")
        + " ; then scored on marvin-linzen as `ibkd reproduce` does",
        "finished": now(),
        "wall_seconds": round(total, 2),
        "cpu_seconds_total": round(total_cpu, 2),
        "seconds": {k: round(seconds[k], 3) for k in PHASES},
        "shares": {k: round(seconds[k] / total, 4) for k in PHASES},
        "cpu_seconds": {k: round(cpu[k], 3) for k in PHASES},
        "cpu_shares": {k: round(cpu[k] / total_cpu, 4) for k in PHASES},
        "calls": result["calls"],
        "training": result["training"],
        "test": result["test"],
        "suite_accuracy": result["suites"],
        "nice": os.nice(0),
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **environment(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", nargs="+", choices=sorted(RUNS),
                   default=["cls-transformer", "cls-lstm", "lm-lstm"])  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch threads (a grid worker's: 1)")
    p.add_argument("--lm-rows", type=int, default=3000, help="LM: training sentences")
    p.add_argument("--lm-epochs", type=int, default=1, help="LM: epochs")
    p.add_argument(
        "--lm-text",
        default=os.environ.get("IBKD_LM_TEXT"),
        help="LM: the text folder (default $IBKD_LM_TEXT, else ibkd's default)",
    )
    p.add_argument("--out-dir", default=str(ROOT / "docs" / "results"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(json.loads(a.child))
        return 0
    from ibkd.files import dumps_json

    for name in a.runs:
        report = profile(name, a)
        path = Path(a.out_dir) / f"profile_{name}.json"
        path.write_text(dumps_json(report, indent=2) + "\n")
        wall, cpu = report["wall_seconds"], report["cpu_seconds_total"]
        print(f"{name}: {wall:.1f} s wall, {cpu:.1f} s CPU -> {path}")
        for k in PHASES:
            w, c = report["seconds"][k], report["cpu_seconds"][k]
            print(f"  {k:16s} {w:9.2f} s {100 * report['shares'][k]:5.1f} %"
                  f"  CPU {c:9.2f} s {100 * report['cpu_shares'][k]:5.1f} %")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
