"""The quick models' training step under the speed options that torch offers on a CPU: what
each costs and whether it keeps the numbers.

    python benchmarks/step_options.py [--models cls:transformer cls:lstm lm:lstm]
        [--steps 40] [--repeat 3] [--options ...] [--json docs/results/step_options.json]

For every model (quick preset, its real length-bucketed batches: the first steps of a run's
first epoch) and option, `--steps` training steps (the loss, backward, clipping, AdamW; a
language model's output layer at the scored positions only, as `ibkd.train` does) from the
same initial weights, dropout seed and batches, timed in this process's CPU seconds per step
(`time.process_time`, best of `--repeat`, the options alternating: robust on a shared
machine), and the trained weights compared with the baseline's:

- `baseline`: torch's defaults on a CPU (AdamW's per-tensor loop), as ibkd ran before;
- `foreach`: AdamW's multi-tensor update (`ibkd.train._optimizer` on a CPU before `fused`);
- `fused`: AdamW's fused kernel (what `ibkd.train._optimizer` uses on a CPU now);
- `bf16`: the forward pass and loss under bf16 autocast on the CPU (only where the CPU has
  native bf16 arithmetic, AMX or AVX512-BF16: `ibkd.distributed.native_bf16_cpu`; skipped
  elsewhere);
- `compile`: `torch.compile` of the model (dynamic shapes), its compile time reported apart
  (the first step of each new batch shape), the step time on batches it has compiled for.

`same_weights`: the trained weights equal the baseline's bit for bit; `max_weight_diff` the
largest difference otherwise. Only a bit-for-bit option can be adopted without changing the
numbers of ibkd's runs.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

from ibkd.config import RunConfig
from ibkd.data.batching import batches
from ibkd.data.prepare import prepare_data
from ibkd.data.vocab import PAD
from ibkd.distributed import native_bf16_cpu
from ibkd.files import dumps_json
from ibkd.losses import gold_loss
from ibkd.models import build_model
from ibkd.recipes import preset, vocab_size
from ibkd.runs import environment, now
from ibkd.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ("baseline", "foreach", "fused", "bf16", "compile")


def setup_data(setup: str, model: str, lm_text: str | None):
    """(RunConfig, RunData) of a quick run of `model` on the default data (`lm_text`: the LM's
    text, with its first 3,000 sentences)."""
    model_cfg, train = preset(setup, model, "quick")
    cfg = RunConfig(setup=setup, model=model_cfg, train=train)
    if setup == "lm":
        cfg.data.lm_text = lm_text
        cfg.data.vocab_size = vocab_size("lm", "quick", lm_text=lm_text)
        cfg.data.max_train_rows = 3000 if lm_text else None
    return cfg, prepare_data(cfg)


def make_step(cfg: RunConfig, model, opt, params, bf16: bool, device_type: str = "cpu"):
    """One bare training step on a batch (tokens, lengths, targets): the loss (a language
    model's output layer at the scored positions only), backward, clipping, the optimizer;
    bf16 autocast on `device_type` when `bf16`. Also benchmarks/gpu_grid.py's step."""

    def step(tokens, lengths, targets):
        with torch.autocast(device_type, torch.bfloat16, enabled=bf16):
            if cfg.setup == "lm":
                mask = targets != PAD
                logits = model.head(model.features(tokens, lengths)[mask]).float()
                loss = gold_loss(logits, targets[mask], None).total
            else:
                loss = gold_loss(model(tokens, lengths).float(), targets, None).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.train.clip)
        opt.step()

    return step


def measure(cfg: RunConfig, data, option: str, steps: int, initial) -> dict:
    """`steps` training steps with `option` from the weights `initial`: CPU seconds per step
    (and the compile's for `compile`), the trained weights."""
    model = build_model(cfg.model, get_task(cfg.setup).shapes(data.vocab))
    model.load_state_dict(initial)
    params = [p for p in model.parameters() if p.requires_grad]
    kw = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(option, {"foreach": False})
    opt = torch.optim.AdamW(
        [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.train.weight_decay},
         {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
        lr=cfg.train.lr, **kw,
    )  # fmt: skip
    net = _Compiled(model) if option == "compile" else model
    step = make_step(cfg, net, opt, params, option == "bf16")
    gen = torch.Generator().manual_seed(0)
    order = batches(data.train.lengths, cfg.train.batch_size, shuffle=True, generator=gen,
                    bucket=cfg.train.bucket)[:steps]  # fmt: skip
    model.train()
    torch.manual_seed(1)  # the same dropout masks for every option
    compile_cpu = 0.0
    if option == "compile":  # compile for every batch shape first, from a copy of the state
        state = copy.deepcopy((model.state_dict(), opt.state_dict()))
        seen = set()
        c0 = time.process_time()
        for index in order:
            tokens, lengths, targets = data.train.batch(index)
            if tokens.shape not in seen:
                seen.add(tokens.shape)
                step(tokens, lengths, targets)
        compile_cpu = time.process_time() - c0
        model.load_state_dict(state[0])
        opt.load_state_dict(state[1])
        torch.manual_seed(1)
    c0 = time.process_time()
    for index in order:
        step(*data.train.batch(index))
    cpu = time.process_time() - c0
    return {"cpu_per_step": cpu / len(order), "compile_cpu": compile_cpu,
            "weights": {k: v.detach().clone() for k, v in model.state_dict().items()}}  # fmt: skip


class _Compiled(torch.nn.Module):
    """A model whose forward and `features` run through `torch.compile` (dynamic shapes)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.forward_c = torch.compile(model.forward, dynamic=True)
        self.features_c = torch.compile(model.features, dynamic=True)
        self.head = model.head

    def forward(self, tokens, lengths):
        return self.forward_c(tokens, lengths)

    def features(self, tokens, lengths):
        return self.features_c(tokens, lengths)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cls:transformer", "cls:lstm", "lm:lstm"])
    p.add_argument("--options", nargs="+", choices=OPTIONS, default=list(OPTIONS))
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lm-text", help="the LM's text folder (default: the agreement sentences)")
    p.add_argument("--json", default=str(ROOT / "docs" / "results" / "step_options.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    native = native_bf16_cpu()
    options = [o for o in a.options if o != "bf16" or native]
    results = []
    for spec in a.models:
        setup, name = spec.split(":")
        cfg, data = setup_data(setup, name, a.lm_text)
        torch.manual_seed(0)
        initial = build_model(cfg.model, get_task(setup).shapes(data.vocab)).state_dict()
        best: dict[str, dict] = {}
        for _ in range(a.repeat):
            for option in options:
                got = measure(cfg, data, option, a.steps, initial)
                if option not in best or got["cpu_per_step"] < best[option]["cpu_per_step"]:
                    best[option] = got
        base = best["baseline"]
        for option in options:
            got = best[option]
            diff = max(float((got["weights"][k].float() - base["weights"][k].float()).abs().max())
                       for k in base["weights"])  # fmt: skip
            row = {"setup": setup, "model": name, "option": option,
                   "cpu_ms_per_step": round(1000 * got["cpu_per_step"], 2),
                   "speedup": round(base["cpu_per_step"] / got["cpu_per_step"], 3),
                   "same_weights": diff == 0.0, "max_weight_diff": diff,
                   "compile_cpu_seconds": round(got["compile_cpu"], 1)}  # fmt: skip
            results.append(row)
            print(f"{spec:16s} {option:9s} {row['cpu_ms_per_step']:8.2f} ms/step "
                  f"x{row['speedup']:.2f}  same weights: {row['same_weights']} ({diff:.1e})",
                  file=sys.stderr)  # fmt: skip
    report = {"finished": now(), "steps": a.steps, "repeat": a.repeat, "threads": a.threads,
              "native_bf16": native, "results": results, **environment()}  # fmt: skip
    Path(a.json).write_text(dumps_json(report, indent=2) + "\n")
    print(a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
