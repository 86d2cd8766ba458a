"""Several runs of one model trained as one batched model: PyTorch's model-ensembling recipe
(`torch.func.stack_module_state` + `functional_call` + `vmap`; https://pytorch.org/tutorials/
intermediate/ensembling.html) applied to ibkd's training loop.

A group is R runs whose configs differ only in their seed (initialisation, data order) and, for
distilled students, their teacher's folder. Each run keeps its own loop (`ibkd.train.run_steps`:
its folder, lock, data order, log, validation, early stopping, checkpoints, predictions and
metrics, exactly as when it trains alone); only the optimizer step is shared: the R runs'
parameters are stacked into tensors [R, ...], one vmapped forward takes a [R, B, T] batch (each
run's own batch, padded to the longest and largest of them; padded rows are left out of the
loss), each run's loss is its own (`ibkd.losses`, as alone) and the sum of the R losses gives
every run its own gradient. Each run's gradient is clipped by its own norm (as
`torch.nn.utils.clip_grad_norm_` does for one run); AdamW is element-wise, so one AdamW over the
stacked tensors is R AdamWs (the schedule is the same for all). A run that stops (early stopping,
or an error such as a non-finite loss) leaves the stack, which is rebuilt from the others; its
folder is finished (or keeps its last checkpoint) by its own loop at its own epoch. Before every
checkpoint and validation, each run's weights, optimizer state and schedule are copied back into
its own model, optimizer and scheduler, so its checkpoint.pt has the format of a run trained
alone (and either may resume the other).

Tolerance (tests/test_batched.py): with dropout 0, a run trained in a group equals the run
trained alone up to float32 rounding: the batched kernels (batched matmuls, per-run norms) sum
in another order than the single run's, so the log's losses and gradient norms agree to 1e-4
(relative; they are logged with 5 and 4 decimals) and the predictions' probabilities to 1e-4,
over the tests' few dozen steps; the data order, the steps, the epochs, early stopping's epoch
and every other file are the same. With dropout, `vmap(randomness="different")` draws each
run's masks from one generator in another order than the run alone, so the numbers are another
draw of the same distribution: equal to the run alone's only within the seeds' noise.

Which models (`unbatchable`): classification runs of the `transformer` architecture
(transformer, transformer-seq, utransformer-seq) trained or distilled with a frozen teacher and
a logits-only loss (`kd`, `hard`). The LSTM cannot be vmapped (aten::lstm has no batching rule)
and trains one run at a time; the LM and image setups, online teachers, losses on
representations, `--aux-lm` and `--compile` train one run at a time too.
"""

from __future__ import annotations

import copy
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from ibkd import train
from ibkd.config import RunConfig
from ibkd.data.vocab import PAD
from ibkd.distributed import autocast_bf16
from ibkd.errors import IbkdError
from ibkd.losses import LOSSES, LossParts, gold_loss
from ibkd.runs import config_differences, user_os_error

BATCHED_ARCHS = ("transformer",)  # every op has a vmap batching rule (or vmap's fallback)
# vmap warns that SDPA's CPU kernel has no batching rule (it loops over the runs); measured
# as fast as the math kernel's batched ops on the quick Transformers (docs/speed.md)
_SDPA_WARNING = "There is a performance drop because we have not yet implemented the batching"


def unbatchable(cfg: RunConfig) -> str | None:
    """Why the run `cfg` cannot train inside a batched group (module docstring), as the option
    or setting to name; None when it can."""
    if cfg.setup != "cls":
        return f"setup {cfg.setup}: batched training is for classification runs"
    if cfg.model.arch not in BATCHED_ARCHS:
        return f"model {cfg.model.name} ({cfg.model.arch}): not vmappable" + (
            " (aten::lstm has no vmap batching rule)" if cfg.model.arch == "lstm" else ""
        )
    if cfg.train.compile:
        return "--compile: compiled models train one at a time"
    if cfg.train.aux_lm > 0:
        return "--aux-lm: trains one run at a time"
    if cfg.distill is not None:
        if cfg.distill.online is not None:
            return "--online: trains one run at a time"
        if LOSSES[cfg.distill.loss].representations:
            return f"--kd-loss {cfg.distill.loss}: a loss on representations trains one at a time"
        if LOSSES[cfg.distill.loss].trainable is not None:
            return f"--kd-loss {cfg.distill.loss}: a loss with trained modules trains one at a time"
    return None


def group_key(cfg: RunConfig) -> str:
    """What the runs of one group share: the config without its seed and teacher folder (JSON)."""
    d = cfg.to_dict()
    d.pop("seed", None)
    if d.get("distill"):
        d["distill"] = {**d["distill"], "teacher": None}
    return json.dumps(d, sort_keys=True, default=str)


def check_group(cfgs: list[RunConfig]) -> None:
    """IbkdError unless `cfgs` can train as one group: every run batchable (`unbatchable`) and
    the configs the same but for the seed and the teacher's folder (the message names the
    first run that differs and its options)."""
    if not cfgs:
        raise IbkdError("batched training: no runs")
    for cfg in cfgs:
        why = unbatchable(cfg)
        if why is not None:
            raise IbkdError(f"batched training: {why}")
    first = json.loads(group_key(cfgs[0]))
    for i, cfg in enumerate(cfgs[1:], 1):
        diff = config_differences(first, json.loads(group_key(cfg)))
        if diff:
            raise IbkdError(
                f"batched training: run {i} differs from run 0 in more than its seed and "
                f"teacher ({'; '.join(diff[:4])}); a group's runs share every other setting"
            )


def train_batched(
    cfgs: list[RunConfig], outs: list[str | Path], *, resume: bool = False,
    on_step: Callable[[int], None] | None = None, threads: int | None = None,
) -> list[dict | IbkdError]:  # fmt: skip
    """Train the runs `cfgs` into the folders `outs` as one batched model (module docstring);
    returns, per run, its metrics (metrics.json's contents) or the IbkdError that stopped it
    (its folder keeps its last checkpoint, as `ibkd.train.train_run` leaves it; the other runs
    go on). `resume`, `threads`, `on_step(step)` (called after each run's every step) as for
    `train_run`. A group that cannot train together (`check_group`; runs with other numbers of
    training examples, other vocabularies, devices or resumed optimizer steps) raises IbkdError
    before any step; any exception other than a run's IbkdError (Ctrl-C, a bug) stops every run
    of the group, each folder keeping its last checkpoint, and is raised."""
    if len(cfgs) != len(outs):
        raise ValueError(f"{len(cfgs)} configs for {len(outs)} folders")
    check_group(cfgs)
    loops = [
        train.run_steps(cfg, out, resume=resume, progress=False, on_step=on_step, threads=threads)
        for cfg, out in zip(cfgs, outs)
    ]
    results: list = [None] * len(loops)
    steps: dict[int, train.Step] = {}  # the runs still training: their next batch

    def advance(r: int, how: Callable) -> None:
        """Run `r`'s loop on to its next step (`how(loop)`: next, send or throw)."""
        try:
            steps[r] = how(loops[r])
        except StopIteration as done:
            steps.pop(r, None)
            results[r] = done.value
        except (IbkdError, OSError) as e:
            steps.pop(r, None)
            results[r] = user_os_error(e) if isinstance(e, OSError) else e

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_SDPA_WARNING)
        try:
            for r in range(len(loops)):
                advance(r, next)
            _catch_up(steps, advance)
            stack: Stacked | None = None
            while steps:
                live = sorted(steps)
                if stack is None or stack.members != live:
                    if stack is not None:  # a run left: the others' state is in the stack
                        stack.unstack([r for r in stack.members if r in steps])
                    stack = Stacked([steps[r].run for r in live], live)
                rows = stack.step([steps[r].index for r in live])
                if any(steps[r].last_of_epoch or _checkpoint_due(steps[r].run) for r in live):
                    stack.unstack(live)  # the loops checkpoint and validate their own models
                for r, row in zip(live, rows):
                    if isinstance(row, BaseException):
                        advance(r, lambda loop, e=row: loop.throw(e))
                    else:
                        advance(r, lambda loop, row=row: loop.send(row))
        finally:
            for loop in loops:  # stops unfinished runs at their last checkpoint
                loop.close()
    return results


def _checkpoint_due(run: train.Run) -> bool:
    """Whether the run's loop writes a checkpoint after its last step."""
    return run.state.step % run.cfg.train.checkpoint_every == 0


def _catch_up(steps: dict[int, train.Step], advance: Callable) -> None:
    """Resumed runs whose checkpoints are of different steps (a group killed between two of its
    runs' checkpoints) train alone (`train.train_step`) up to the latest of them."""
    while steps and len({s.run.state.step for s in steps.values()}) > 1:
        low = min(s.run.state.step for s in steps.values())
        for r, s in list(steps.items()):
            if s.run.state.step == low:
                try:
                    row = train.train_step(s.run, s.index)
                except IbkdError as e:
                    advance(r, lambda loop, e=e: loop.throw(e))
                else:
                    advance(r, lambda loop, row=row: loop.send(row))


class Stacked:
    """The runs `runs` (positions `members` in their group) as one model: their parameters
    stacked into leaf tensors [R, ...] (`params`), one AdamW and schedule over them (`opt`,
    `sched`) with the runs' own state, and a vmapped forward. IbkdError when the runs cannot
    be stacked: other numbers of training examples (other steps per epoch), devices,
    parameter shapes (vocabularies), optimizer steps, or models with buffers (BatchNorm)."""

    def __init__(self, runs: list[train.Run], members: list[int]):
        self.runs, self.members = runs, members
        first = runs[0]
        for run in runs[1:]:
            if len(run.data.train) != len(first.data.train):
                raise IbkdError(
                    f"batched training: {run.out} has {len(run.data.train)} training examples, "
                    f"{first.out} {len(first.data.train)}: a group's runs need the same steps "
                    "per epoch (the same data)"
                )
            if run.device != first.device:
                raise IbkdError(f"batched training: {run.out} is on {run.device}, "
                                f"{first.out} on {first.device}")  # fmt: skip
            shapes = [(n, p.shape) for n, p in run.model.named_parameters()]
            if shapes != [(n, p.shape) for n, p in first.model.named_parameters()]:
                raise IbkdError(
                    f"batched training: {run.out} and {first.out} have parameters of other "
                    "shapes (other vocabularies?); a group's models must be the same"
                )
        if any(True for run in runs for _ in run.model.buffers()):
            raise IbkdError(f"batched training: {first.cfg.model.name} has buffers (BatchNorm "
                            "statistics), which a stacked model cannot update per run")  # fmt: skip
        self.base = copy.deepcopy(first.model).to("meta")  # the architecture, without weights
        self.params, _ = stack_module_state([run.model for run in runs])
        name = {id(p): n for n, p in first.model.named_parameters()}
        groups = [{"params": [self.params[name[id(p)]] for p in g["params"]]}
                  for g in first.opt.param_groups]  # fmt: skip
        self.opt = torch.optim.AdamW(groups, lr=first.cfg.train.lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, first.sched.lr_lambdas[0])
        self.opt.load_state_dict(_stacked_state([run.opt.state_dict() for run in runs], runs))
        self.sched.load_state_dict(first.sched.state_dict())
        self.forward = vmap(self._logits, randomness="different")

    def _logits(self, params: dict, tokens: torch.Tensor, lengths: torch.Tensor):
        """One run's logits [B, C] from its parameters and batch (vmapped over the runs)."""
        return functional_call(self.base, params, (tokens, lengths))

    def step(self, indexes: list[torch.Tensor]) -> list[dict | IbkdError]:
        """One optimizer step of every run on its own training examples (`indexes[k]` [B_k]
        for run k); returns each run's log.csv row (`train.step_row`) or the IbkdError of a
        non-finite loss or gradient norm."""
        t0 = time.perf_counter()
        runs, first = self.runs, self.runs[0]
        device, cfg = first.device, first.cfg
        batches = [run.data.train.batch(index) for run, index in zip(runs, indexes)]
        tokens, lengths = _padded([(x, n) for x, n, _ in batches])
        tokens, lengths = train._to_device(tokens, device), train._to_device(lengths, device)
        self.base.train()
        with autocast_bf16(cfg.train.precision, device):
            logits = self.forward(self.params, tokens, lengths)  # [R, B, C]
            parts = [
                _loss(
                    run,
                    index,
                    logits[k, : len(index)],
                    *(train._to_device(t, device) for t in batch),
                )  # fmt: skip
                for k, (run, index, batch) in enumerate(zip(runs, indexes, batches))
            ]
        self.opt.zero_grad(set_to_none=True)
        torch.stack([p.total for p in parts]).sum().backward()
        norms = clip_per_run(
            [p.grad for p in self.params.values() if p.grad is not None], cfg.train.clip
        )
        self.opt.step()
        self.sched.step()
        values = torch.cat(  # one device sync for everything logged
            [torch.stack([torch.stack([p.total, p.ce, p.kd]).detach() for p in parts]),
             norms.detach().float()[:, None]], 1,
        ).tolist()  # fmt: skip
        lr = self.sched.get_last_lr()[0]
        rows: list = []
        for run, index, v in zip(runs, indexes, values):
            try:
                n_tokens = int(run.data.train.lengths[index].sum())
                rows.append(train.step_row(run, v, n_tokens, lr, t0))
            except IbkdError as e:
                rows.append(e)
        return rows

    @torch.no_grad()
    def unstack(self, members: list[int]) -> None:
        """Copy the weights, optimizer state and schedule of the runs at group positions
        `members` back into their own models, optimizers and schedulers (what their loops
        checkpoint, validate and predict with)."""
        state = self.opt.state_dict()
        for k, run in enumerate(self.runs):
            if self.members[k] not in members:
                continue
            for name, p in run.model.named_parameters():
                p.copy_(self.params[name][k])
            run.opt.load_state_dict({
                "state": {i: {key: (v.clone() if key == "step" else v[k].clone())
                              for key, v in s.items()} for i, s in state["state"].items()},
                "param_groups": copy.deepcopy(state["param_groups"]),
            })  # fmt: skip
            run.sched.load_state_dict(self.sched.state_dict())


@torch.no_grad()
def clip_per_run(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip the stacked gradients `grads` (each [R, ...]) in place, each run's to the norm
    `max_norm` by its own total norm, as `torch.nn.utils.clip_grad_norm_` clips one run's
    (the 2-norm of the per-parameter 2-norms; scaled by min(1, max_norm / (norm + 1e-6)));
    returns the R norms [R] before clipping."""
    r = grads[0].shape[0]
    per_param = torch.stack([torch.linalg.vector_norm(g.reshape(r, -1), 2, dim=1) for g in grads])
    total = torch.linalg.vector_norm(per_param, 2, dim=0)  # [R]
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.view(r, *[1] * (g.dim() - 1)).to(g.dtype))
    return total


def _stacked_state(states: list[dict], runs: list[train.Run]) -> dict:
    """The runs' AdamW state dicts as one over the stacked parameters: each tensor of the
    state stacked [R, ...], the step count (the same for every run) once; IbkdError when the
    runs are at different optimizer steps."""
    first = states[0]
    out = {}
    for i, s in first["state"].items():
        out[i] = {}
        for key, v in s.items():
            if key == "step":
                if any(float(d["state"][i]["step"]) != float(v) for d in states):
                    steps = sorted({float(d["state"][i]["step"]) for d in states})
                    raise IbkdError(f"batched training: the runs of {runs[0].out.parent} are at "
                                    f"optimizer steps {steps}, not one")  # fmt: skip
                out[i][key] = v
            else:
                out[i][key] = torch.stack([d["state"][i][key] for d in states])
    return {"state": out, "param_groups": first["param_groups"]}


def _padded(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The runs' batches (inputs [B_k, T_k], lengths [B_k]) as one [R, B, T] input and [R, B]
    lengths, B and T the largest; padded rows are one <pad> token long (their outputs are
    not used)."""
    rows = max(len(n) for _, n in batches)
    width = max(x.shape[1] for x, _ in batches)
    tokens = torch.full((len(batches), rows, width), PAD, dtype=batches[0][0].dtype)
    lengths = torch.ones(len(batches), rows, dtype=batches[0][1].dtype)
    for k, (x, n) in enumerate(batches):
        tokens[k, : x.shape[0], : x.shape[1]] = x
        lengths[k, : len(n)] = n
    return tokens, lengths


def _loss(run: train.Run, index, logits, tokens, lengths, targets) -> LossParts:
    """Run `run`'s loss from its logits [B, C] (of the batched forward): the gold
    cross-entropy, or its distillation loss against its own teacher's logits for the
    examples `index`, as `ibkd.train` computes it for the run alone."""
    if run.teacher is None:
        return gold_loss(logits.float(), targets, None)
    teacher_logits, _ = run.teacher.for_batch(index, tokens, lengths)
    return LOSSES[run.cfg.distill.loss].fn(logits.float(), teacher_logits.float(), None, None,
                                           targets, None, run.cfg.distill)  # fmt: skip
