"""Training throughput: ibkd's loop against bare PyTorch loops, on the shipped data.

For every model at the quick and paper presets (classification; `--setups cls lm mnist` adds
the LM and scenario 2's models, whose "tokens" are images):
- `ibkd`: tokens/s of `train_run`'s training steps (logging, progress and checkpoints included);
- `bare`: the same model, batches and optimizer in a minimal loop (forward, loss, backward,
  clip, step) in the same process;
- both also in CPU time (`*_cpu_tok_s`, `StepClock`: from the end of the first step to the
  end of the last, this process's CPU seconds): on a machine shared with other jobs, the
  ratio to compare with `--threads 1`;
- for `transformer`: `torch.nn.TransformerEncoderLayer` (pre-LN, GELU, same width, depth, heads,
  dropouts) with a key padding mask, reading position 0, on the same bucketed batches and on
  plain shuffled batches (no length bucketing, as a typical padded-batch loop would run);
- distillation: a distilled run with the teacher's outputs cached against the same plain run:
  training time (the caching pass included) and whole-run wall time;
- `--parts lm-teacher`: the share of a distilled LM step (quick Transformer from the quick
  LSTM, KD at T = 1, alpha = 0.9, on `--lm-text`) spent in the frozen teacher's forward pass:
  the most that caching the teacher's outputs could save; then the same step with an adaptive
  softmax student (its log_prob over the whole vocabulary at every distilled position) and
  with the teacher's outputs from a `topk:64` cache (`ibkd.teacher_cache`; PTB's full
  distribution does not fit in memory);
- `--parts lm-softmax`: the quick LSTM and Transformer LMs (`--models` picks) with the full and
  the adaptive softmax (`--lm-softmax`), back to back in this process, `--repeat` times in
  alternating order, on `--lm-text`: tokens/s of ibkd's step and of the bare loop (its
  adaptive softmax trained with the same loss, `AdaptiveHead.loss`).

    python benchmarks/throughput.py [--rows 3000] [--setups cls lm mnist] [--parts models distill]
        [--presets quick paper] [--lm-vocab all preset] [--threads N] [--device cpu|cuda]
        [--json out.json]

`--lm-vocab all preset` measures each LM with every training word in its vocabulary and with
the preset's cap (the quick LM recipe keeps the 4,000 most frequent words). `--lm-text FOLDER`
trains the LMs on that text's first `--rows` training sentences, in the vocabulary of its whole
training split (`DataConfig.max_train_rows`; PTB: its own 10K words); the runs' validation
and test text is cut to its first 300 sentences (evaluation is not what is measured).
`--models` picks models by name.
`--lm-step plain scored` measures the LM step both ways: `plain`, the output layer over every
position of the padded [B, L] batch, padded positions then masked out of the loss (the step
before the scored-positions change); `scored`, the output layer at the scored positions only
(`ibkd.train.scored_only`). The bare loop does the same computation as the step it is beside.

Targets (issue 3): ibkd >= 0.95x bare; transformer >= 3x nn.TransformerEncoderLayer;
distillation with a cached teacher <= 1.1x plain training.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from torch import nn
from torch.nn import functional as F

import ibkd.train
from ibkd.config import DataConfig, DistillConfig, RunConfig, model_names
from ibkd.data.batching import batches
from ibkd.data.prepare import prepare_data
from ibkd.data.vocab import PAD
from ibkd.files import dumps_json
from ibkd.models import build_model
from ibkd.models.lm_head import is_adaptive
from ibkd.recipes import preset, vocab_size
from ibkd.tasks import get_task
from ibkd.train import train_run


class TorchEncoderClassifier(nn.Module):
    """The baseline: nn.TransformerEncoder at the ibkd Transformer's size."""

    def __init__(self, cfg, vocab_size: int):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, cfg.dim)
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        layer = nn.TransformerEncoderLayer(
            cfg.dim, cfg.heads, cfg.ff_mult * cfg.dim, dropout=cfg.dropout, activation="gelu",
            batch_first=True, norm_first=True)  # fmt: skip
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.ln = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, 2)
        self.drop = cfg.embed_dropout

    def forward(self, tokens, lengths):
        n = tokens.shape[1]
        x = F.dropout(self.tok(tokens) + self.pos.weight[:n], self.drop, self.training)
        pad = torch.arange(n)[None, :] >= lengths[:, None]
        return self.head(self.ln(self.encoder(x, src_key_padding_mask=pad))[:, 0])


class StepClock:
    """Tokens/s from the end of a loop's first step to the end of its last, in wall time and in
    this process's CPU time (`time.process_time`): on a machine shared with other jobs the CPU
    time of a single-threaded loop is the work done, whatever the other jobs take, so the CPU
    figures of two loops compare where their wall-clock figures scatter."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float, int]] = []

    def tick(self, tokens: int) -> None:
        """A step has ended that trained on `tokens` tokens."""
        self.ticks.append((time.perf_counter(), time.process_time(), tokens))

    def rates(self) -> tuple[float, float]:
        """(wall tokens/s, CPU tokens/s) over the steps after the first (NaN for < 2 steps)."""
        if len(self.ticks) < 2:
            return float("nan"), float("nan")
        (w0, c0, _), (w1, c1, _) = self.ticks[0], self.ticks[-1]
        tokens = sum(t for _, _, t in self.ticks[1:])
        return tokens / (w1 - w0), tokens / max(c1 - c0, 1e-9)


def step_tokens(cfg, data, epochs: int) -> list[int]:
    """The tokens of each training step of `train_run` on `data` (its batch order)."""
    out = []
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        order = batches(data.lengths, cfg.train.batch_size, shuffle=True, generator=gen,
                        bucket=cfg.train.bucket)  # fmt: skip
        out += [int(data.lengths[i].sum()) for i in order]
    return out


def bare_loop(
    model, data, cfg, setup: str, epochs: int, bucket: bool = True, scored: bool = False,
    clock: StepClock | None = None,
) -> float:  # fmt: skip
    """Tokens/s of a minimal training loop over the same batches (`scored`: an LM's output
    layer at the non-pad positions only, as ibkd's scored step); `clock` ticks after each
    step."""
    device = torch.device(cfg.train.device)
    model = model.to(device)
    opt = torch.optim.AdamW(  # the kernel ibkd's own loop uses (`ibkd.train._optimizer`)
        model.parameters(),
        lr=cfg.train.lr,
        weight_decay=cfg.train.weight_decay,
        fused=True if device.type == "cpu" else None,
    )
    model.train()
    tokens_done, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        for index in batches(
            data.lengths, cfg.train.batch_size, shuffle=True, generator=gen, bucket=bucket
        ):
            tokens, lengths, targets = (t.to(device) for t in data.batch(index))
            if setup == "lm" and scored and is_adaptive(model.head):  # its own loss
                mask = targets != PAD
                loss = model.head.loss(model.features(tokens, lengths)[mask], targets[mask])
            elif setup == "lm" and scored:
                mask = targets != PAD
                loss = F.cross_entropy(model.head(model.features(tokens, lengths)[mask]),
                                       targets[mask])  # fmt: skip
            elif setup == "lm":
                mask = targets != PAD
                loss = F.cross_entropy(model(tokens, lengths)[mask], targets[mask])
            else:
                loss = F.cross_entropy(model(tokens, lengths), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.clip)
            opt.step()
            tokens_done += int(lengths.sum())
            if clock is not None:
                clock.tick(int(lengths.sum()))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens_done / (time.perf_counter() - t0)


DEVICE = "cpu"  # --device
THREADS = None  # --threads
LM_TEXT = None  # --lm-text


def config(setup, name, preset_name, rows, epochs, seed=0, vocab_size=None, lm_softmax=None,
           **distill):  # fmt: skip
    model, train = preset(setup, name, preset_name)
    if lm_softmax is not None:
        model.lm_softmax = lm_softmax
    train = dataclasses.replace(train, epochs=epochs, device=DEVICE, patience=epochs + 1)
    text = LM_TEXT if setup == "lm" else None
    return RunConfig(
        setup=setup,
        model=model,
        seed=seed,
        data=DataConfig(max_train_rows=rows, vocab_size=vocab_size, lm_text=text),
        train=train,
        distill=DistillConfig(**distill) if distill else None,
    )


def measure(
    setup, name, preset_name, rows, epochs, tmp: Path, repeat: int, vocab_size=None,
    lm_step: str = "scored", lm_softmax: str | None = None,
) -> dict:  # fmt: skip
    """Best of `repeat` alternating measurements of each loop (a 2-core machine is noisy);
    `vocab_size`: the run's vocabulary cap (None: every training word); `lm_step`: `scored`
    or `plain` (the module note); `lm_softmax`: the LM's output layer (None: the preset's)."""
    cfg = config(setup, name, preset_name, rows, epochs, vocab_size=vocab_size,
                 lm_softmax=lm_softmax)  # fmt: skip
    data = prepare_data(cfg)
    scored = setup == "lm" and lm_step == "scored"
    tokens = step_tokens(cfg, data.train, epochs)
    ours = bare = ours_cpu = bare_cpu = 0.0
    for r in range(repeat):
        folder = tmp / f"{setup}-{name}-{preset_name}-{vocab_size}-{lm_step}-{lm_softmax}-{r}"
        shutil.rmtree(folder, ignore_errors=True)  # a fresh run each time
        for loop in ("ibkd", "bare") if r % 2 == 0 else ("bare", "ibkd"):  # alternating
            clock = StepClock()
            if loop == "ibkd":
                with mock.patch.object(ibkd.train, "scored_only", ibkd.train.scored_only
                                       if scored else lambda run: False):  # fmt: skip
                    metrics = train_run(
                        cfg,
                        folder,
                        progress=False,
                        threads=THREADS,
                        on_step=lambda s, c=clock: c.tick(tokens[s - 1]),
                    )
                ours = max(ours, metrics["training"]["tokens_per_s"])
                ours_cpu = max(ours_cpu, clock.rates()[1])
            else:
                torch.manual_seed(cfg.seed)
                model = build_model(cfg.model, get_task(setup).shapes(data.vocab))
                bare = max(bare, bare_loop(model, data.train, cfg, setup, epochs, scored=scored,
                                           clock=clock))  # fmt: skip
                bare_cpu = max(bare_cpu, clock.rates()[1])
    row = {
        "setup": setup,
        "model": name,
        "preset": preset_name,
        "vocabulary": len(data.vocab) if data.vocab else None,
        "lm_text": cfg.data.lm_text,
        "lm_step": lm_step if setup == "lm" else None,
        "lm_softmax": getattr(cfg.model, "lm_softmax", None) if setup == "lm" else None,
        "ibkd_tok_s": ours,
        "bare_tok_s": round(bare),
        "ibkd_vs_bare": round(ours / bare, 3),
        "ibkd_cpu_tok_s": round(ours_cpu),
        "bare_cpu_tok_s": round(bare_cpu),
        "ibkd_vs_bare_cpu": round(ours_cpu / bare_cpu, 3),
    }
    if setup == "cls" and name == "transformer":
        same = unbucketed = 0.0
        for _ in range(repeat):
            torch.manual_seed(0)
            base = TorchEncoderClassifier(cfg.model, len(data.vocab))
            same = max(same, bare_loop(base, data.train, cfg, setup, epochs))
            torch.manual_seed(0)
            base = TorchEncoderClassifier(cfg.model, len(data.vocab))
            unbucketed = max(
                unbucketed, bare_loop(base, data.train, cfg, setup, epochs, bucket=False)
            )
        row |= {
            "torch_encoder_tok_s": round(same),
            "torch_encoder_unbucketed_tok_s": round(unbucketed),
            "ibkd_vs_torch_encoder": round(ours / same, 2),
            "ibkd_vs_torch_encoder_unbucketed": round(ours / unbucketed, 2),
        }
    return row


def distill_cost(rows: int, epochs: int, preset_name: str, tmp: Path, repeat: int) -> dict:
    """A distilled transformer against the same run without a teacher (best of `repeat`):
    training time (the teacher's one-off caching pass included) and whole-run wall time (data,
    teacher loading, training, predictions)."""
    teacher = tmp / f"teacher-{preset_name}"
    train_run(config("cls", "lstm", preset_name, rows, epochs), teacher, progress=False)
    best: dict[str, float] = {}
    for r in range(repeat):
        for label, extra in (("plain", {}), ("distilled", {"teacher": str(teacher)})):
            cfg = config("cls", "transformer", preset_name, rows, epochs, **extra)
            t0 = time.perf_counter()
            m = train_run(cfg, tmp / f"{label}-{preset_name}-{r}", progress=False)
            wall = time.perf_counter() - t0
            train = m["training"]["seconds"] + m["training"]["teacher_cache_seconds"]
            best[f"{label}_train_s"] = min(best.get(f"{label}_train_s", 1e9), round(train, 2))
            best[f"{label}_wall_s"] = min(best.get(f"{label}_wall_s", 1e9), round(wall, 2))
    return {
        "preset": preset_name,
        "epochs": epochs,
        **best,
        "train_ratio": round(best["distilled_train_s"] / best["plain_train_s"], 3),
        "wall_ratio": round(best["distilled_wall_s"] / best["plain_wall_s"], 3),
    }


def lm_softmax_speed(
    names: list[str], rows: int, epochs: int, tmp: Path, repeat: int
) -> list[dict]:
    """Each LM `names` (quick) with the full and the adaptive softmax, measured back to back in
    this process (`measure`, one measurement of each loop at a time), `repeat` times in
    alternating order; each figure the best of its `repeat`, and the adaptive / full ratios."""
    out = []
    for name in names:
        best: dict[str, dict] = {}
        for r in range(repeat):
            for softmax in ("full", "adaptive") if r % 2 == 0 else ("adaptive", "full"):
                row = measure("lm", name, "quick", rows, epochs, tmp, 1, None, "scored", softmax)
                keep = best.setdefault(softmax, row)
                for key in ("ibkd_tok_s", "bare_tok_s", "ibkd_cpu_tok_s", "bare_cpu_tok_s"):
                    keep[key] = max(keep[key], row[key])
        for row in best.values():
            row["ibkd_vs_bare"] = round(row["ibkd_tok_s"] / row["bare_tok_s"], 3)
            row["ibkd_vs_bare_cpu"] = round(row["ibkd_cpu_tok_s"] / row["bare_cpu_tok_s"], 3)
            out.append(row)
        full, adaptive = best["full"], best["adaptive"]
        out.append(
            {
                "model": name,
                "adaptive_vs_full_cpu": {
                    k: round(adaptive[k] / full[k], 3) for k in ("ibkd_cpu_tok_s", "bare_cpu_tok_s")
                },
            }
        )
    return out


def lm_teacher_share(
    steps: int = 20, repeat: int = 2, student_softmax: str = "full", teacher_cache: str = "none"
) -> dict:
    """CPU seconds (this process's: on a shared machine the work done, `StepClock`'s note) of
    the frozen LSTM teacher's forward pass (`Teacher.scored_logits`) and of the
    whole distilled step (`ibkd.train._task_loss`, backward, optimizer; the teacher's pass
    included) over `steps` batches of the quick Transformer student, the best of `repeat`.
    `student_softmax`: the student's output layer (adaptive: its log_prob at every distilled
    position); `teacher_cache`: the teacher's outputs from a cache of those batches'
    examples (`ibkd.teacher_cache`; built first, its seconds reported apart)."""
    from types import SimpleNamespace

    from ibkd.distill import Teacher
    from ibkd.train import _task_loss

    cfg = config("lm", "transformer", "quick", 64 * steps, 1, lm_softmax=student_softmax)
    data = prepare_data(cfg)
    torch.manual_seed(0)
    shapes = get_task("lm").shapes(data.vocab)
    student = build_model(cfg.model, shapes)
    teacher_model = build_model(preset("lm", "lstm", "quick")[0], shapes).eval()
    distill = DistillConfig("teacher", alpha=0.9, teacher_cache=teacher_cache)
    teacher = Teacher(teacher_model, distill, run=object())  # frozen
    cache_s = 0.0
    if teacher_cache != "none":
        t0 = time.process_time()
        teacher.cache_lm(data.train, len(data.vocab), torch.device("cpu"))
        cache_s = time.process_time() - t0
    run = SimpleNamespace(model=student, net=student, teacher=teacher,
                          cfg=SimpleNamespace(setup="lm", distill=distill))  # fmt: skip
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    order = batches(data.train.lengths, 64, shuffle=True, generator=gen)
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t_teacher = t_step = 0.0
        for index in order[:steps]:
            tokens, lengths, targets = data.train.batch(index)
            t0 = time.process_time()
            teacher.scored_logits(tokens, lengths, targets != PAD, index)
            t1 = time.process_time()
            parts = _task_loss(run, index, tokens, lengths, targets)
            opt.zero_grad(set_to_none=True)
            parts.total.backward()
            opt.step()
            t_teacher, t_step = t_teacher + t1 - t0, t_step + time.process_time() - t1
        best = min(best, (t_teacher, t_step), key=lambda p: p[1])
    return {"steps": steps, "vocabulary": len(data.vocab), "student_softmax": student_softmax,
            "teacher_cache": teacher_cache, "teacher_cache_build_s": round(cache_s, 2),
            "teacher_forward_s": round(best[0], 2), "distilled_step_s": round(best[1], 2),
            "teacher_share": round(best[0] / best[1], 3)}  # fmt: skip


def padding_share(text: str, batch_size: int = 64) -> dict:
    """The real tokens' share of the [B, L] cells of an epoch's training batches over the
    whole training text `text` (a folder), with and without length bucketing: the most that
    truncated BPTT over concatenated text (no padding at all) could save per position."""
    from ibkd.data import lm_text
    from ibkd.data.batching import encode_sentences
    from ibkd.data.vocab import build_text_vocab

    sentences, _ = lm_text.training_sentences(lm_text.read_text(text))
    lengths = encode_sentences(sentences, build_text_vocab(sentences)).lengths
    out = {"sentences": len(sentences), "tokens": int(lengths.sum())}
    for bucket in (True, False):
        order = batches(lengths, batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0), bucket=bucket)  # fmt: skip
        cells = sum(len(i) * int(lengths[i].max()) for i in order)
        out["bucketed" if bucket else "unbucketed"] = round(out["tokens"] / cells, 4)
    return out


def measured_text(source: Path, folder: Path, held_out: int = 300) -> str:
    """A copy of the LM text `source` in `folder` with the training split whole (the vocabulary
    is the whole text's; `--rows` picks the sentences trained on) and the validation and test
    splits cut to their first `held_out` sentences; returns the folder."""
    from ibkd.data import lm_text

    text = lm_text.read_text(source)
    for split, sentences in (("train", text.train), ("valid", text.valid[:held_out]),
                             ("test", text.test[:held_out])):  # fmt: skip
        (folder / f"{split}.txt").write_text("".join(" ".join(s) + "\n" for s in sentences))
    return str(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3000, help="training rows per run")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--presets", nargs="+", default=["quick", "paper"])
    ap.add_argument(
        "--setups",
        nargs="+",
        default=["cls"],
        choices=["cls", "lm", "mnist"],
        help="which setups' models to measure (the LM is slow on a CPU; mnist counts images "
        "as tokens and needs $IBKD_MNIST_DIR or the cache)",
    )
    ap.add_argument(
        "--parts", nargs="+", default=["models", "distill"],
        choices=["models", "distill", "lm-teacher", "lm-softmax"],
    )  # fmt: skip
    ap.add_argument("--repeat", type=int, default=2, help="best of N measurements")
    ap.add_argument(
        "--distill-rows",
        type=int,
        default=13774,
        help="training rows of the distillation runs (default: all)",
    )
    ap.add_argument("--distill-epochs", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or mps (both loops)")
    ap.add_argument("--threads", type=int, help="CPU threads of both loops (default: every core)")
    ap.add_argument(
        "--lm-vocab",
        nargs="+",
        default=["preset"],
        help="LM vocabulary caps to measure: numbers, `all` (every training word) or "
        "`preset` (the preset's cap)",
    )
    ap.add_argument("--lm-text", help="LMs: train on this text's sentences (a folder)")
    ap.add_argument("--models", nargs="+", help="only these models (default: every one)")
    ap.add_argument(
        "--lm-step", nargs="+", default=["scored"], choices=["plain", "scored"],
        help="LM steps to measure (module note)",
    )  # fmt: skip
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    global DEVICE, THREADS, LM_TEXT
    DEVICE, THREADS = args.device, args.threads
    text_dir = tempfile.TemporaryDirectory()
    LM_TEXT = measured_text(Path(args.lm_text), Path(text_dir.name)) if args.lm_text else None
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if args.device == "cuda":
        machine += f", {torch.cuda.get_device_name()}"
    print(machine)
    results = {
        "machine": machine,
        "rows": args.rows,
        "epochs": args.epochs,
        "runs": [],
        "distillation": [],
    }
    setups = args.setups if "models" in args.parts else []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for setup in setups:
            for preset_name in args.presets:
                caps = [None]
                if setup == "lm":
                    caps = [
                        None if v == "all" else vocab_size("lm", preset_name, lm_text=LM_TEXT)
                        if v == "preset" else int(v)
                        for v in args.lm_vocab
                    ]  # fmt: skip
                for name in [m for m in model_names(setup) if m in (args.models or [m])]:
                    steps = args.lm_step if setup == "lm" else ["scored"]
                    for cap in dict.fromkeys(caps):
                        for step in steps:
                            row = measure(
                                setup, name, preset_name, args.rows, args.epochs, tmp,
                                args.repeat, cap, step,
                            )  # fmt: skip
                            results["runs"].append(row)
                            print(dumps_json(row, indent=None), flush=True)
        if args.lm_text and "lm" in setups:
            results["lm_padding"] = padding_share(args.lm_text)
            print(dumps_json(results["lm_padding"], indent=None), flush=True)
        if "lm-teacher" in args.parts:
            results["lm_teacher"] = []
            for softmax, cache in (("full", "none"), ("adaptive", "none"), ("full", "topk:64")):
                row = lm_teacher_share(repeat=args.repeat, student_softmax=softmax,
                                       teacher_cache=cache)  # fmt: skip
                results["lm_teacher"].append(row)
                print(dumps_json(row, indent=None), flush=True)
        if "lm-softmax" in args.parts:
            names = [m for m in ("lstm", "transformer") if m in (args.models or [m])]
            results["lm_softmax"] = lm_softmax_speed(names, args.rows, args.epochs, tmp,
                                                     args.repeat)  # fmt: skip
            for row in results["lm_softmax"]:
                print(dumps_json(row, indent=None), flush=True)
        for preset_name in args.presets if "distill" in args.parts else []:
            row = distill_cost(
                args.distill_rows, args.distill_epochs, preset_name, tmp, args.repeat
            )
            results["distillation"].append(row)
            print(dumps_json(row, indent=None))
    if args.json:
        args.json.write_text(dumps_json(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
