"""What the `ibkd` command promises its user (docs/guarantees.md, "Bad input" and "What the
user reads"): mistakes a user can make are one line before anything runs, never a traceback, a
crash or a hang; every option is explained; what is printed reads right."""

import argparse
import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_row, tiny_config

from ibkd.cli import MAX_SEEDS, build_parser, main, run_config
from ibkd.config import SEED_LIMIT, DataConfig, RunConfig
from ibkd.data.linzen import COLUMNS
from ibkd.distributed import max_threads
from ibkd.errors import BadRowError, IbkdError
from ibkd.recipes import preset
from ibkd.text import count
from ibkd.train import train_run

DOCS = Path(__file__).parents[1] / "docs"
MNIST_MODELS = ("cnn", "mlp")
GOOD_ROW = (
    "the key is here\tthe key is here\tDT NN VBZ RB\tkey\tis\tNN\tFalse\tFalse\tVBZ\t2\t3"
    "\t0\tna\t0\t1\t0\tkey\tkey"
)


def one_line_error(capsys, *patterns: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ibkd: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for pattern in patterns:
        assert pattern in err, err
    return err


def refused_by_the_parser(capsys, argv: list[str], *patterns: str) -> str:
    """`ibkd ARGV` stops while parsing (exit status 2) with one line naming the option."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return one_line_error(capsys, *patterns)


def linzen_file(path: Path, rows: int = 12, bad_line: bool = False) -> Path:
    path.write_text(
        "\t".join(COLUMNS) + "\n" + (GOOD_ROW + "\n") * rows + ("oops\n" if bad_line else "")
    )
    return path


@pytest.fixture(scope="module")
def cls_run(tiny_cls_run):
    """A finished tiny classification run (shared, not to be changed)."""
    return tiny_cls_run


# ---------------------------------------------------------------------------------------------
# kind 5: tracebacks, crashes and hangs a user can cause


@pytest.mark.parametrize("threads", ["0", "-2", str(max_threads() + 1), "4096", "100000"])
@pytest.mark.parametrize(
    "command",
    [["train", "--setup", "cls", "--model", "lstm"],
     ["distill", "--online", "lstm", "--setup", "cls", "--model", "lstm"]],
)  # fmt: skip
def test_threads_out_of_range_are_refused_before_anything_runs(
    tmp_path, capsys, command, threads, monkeypatch
):
    """`--threads 100000` crashed OpenMP and `--threads 4096` hung: a number outside
    [1, 4 per CPU] is one line, and torch's threads and the run folder are left alone."""
    if 1 <= int(threads) <= max_threads():
        pytest.skip("this machine takes that many threads")
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    out = tmp_path / "r"
    assert main([*command, "--out", str(out), "--device", "cpu", "--threads", threads]) == 2
    one_line_error(capsys, f"--threads {threads}: expected >= 1 and <= {max_threads()}")
    assert calls == [] and not out.exists()


def test_reproduce_workers_out_of_range_are_refused_before_anything_runs(tmp_path, capsys):
    """As many processes as threads: `--workers 100000` would fork until the machine stops."""
    out = tmp_path / "g"
    for workers in ("0", str(max_threads() + 1), "100000"):
        args = ["reproduce", "scenario2", "--workers", workers, "--out", str(out)]
        assert main([*args, "--device", "cpu", "--no-progress"]) == 2
        one_line_error(capsys, f"--workers {workers}: expected a number >= 1 and <= ")
        assert not out.exists()


@pytest.mark.parametrize("value", ["-1", str(SEED_LIMIT), str(2**63), str(2**64 + 5), "1.5"])
@pytest.mark.parametrize(
    "command",
    [["train", "--setup", "cls", "--model", "lstm"],
     ["distill", "--online", "lstm", "--setup", "cls", "--model", "lstm"]],
)  # fmt: skip
def test_seeds_out_of_range_are_refused_before_anything_is_written(
    tmp_path, capsys, command, value
):
    out = tmp_path / "r"
    refused_by_the_parser(
        capsys, [*command, "--out", str(out), "--seed", value], "argument --seed", value
    )
    assert not out.exists()


def test_the_largest_seed_is_taken_and_a_config_yaml_seed_is_checked(tmp_path):
    args = build_parser().parse_args(
        ["train", "--setup", "cls", "--model", "lstm", "--out", str(tmp_path / "r"),
         "--seed", str(SEED_LIMIT - 1)]
    )  # fmt: skip
    assert run_config(args).seed == SEED_LIMIT - 1
    for bad in (-1, SEED_LIMIT, 2**63):
        cfg = tiny_config(seed=bad)
        with pytest.raises(IbkdError, match=f"--seed {bad}: expected a value in"):
            cfg.validate()
        with pytest.raises(IbkdError, match="--seed"):
            train_run(cfg, tmp_path / "r", progress=False)
        assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["train", "--setup", "lm", "--model", "lstm", "--lm-text", ""], "--lm-text"),
        (["train", "--setup", "cls", "--model", "lstm", "--data", " "], "--data/--data-dir"),
        (["train", "--setup", "cls", "--model", "lstm", "--transfer", ""], "--transfer"),
        (["distill", "--teacher", "", "--model", "transformer"], "--teacher"),
        (["evaluate", "", "--suite", "marvin-linzen"], "run"),
        (["evaluate", "r", "--suite", "marvin-linzen", ""], "--suite"),
        (["report", ""], "grid"),
    ],
)
def test_an_empty_value_is_refused_not_taken_for_the_default(tmp_path, capsys, argv, option):
    """`--lm-text "$UNSET"` does not fall back to the default text, nor `--data ''` to the
    shipped data: every option and argument without a type of its own refuses a blank value."""
    out = tmp_path / "r"
    argv = [*argv, "--out", str(out)] if argv[0] in ("train", "distill") else argv
    refused_by_the_parser(capsys, argv, f"argument {option}: an empty value")
    assert not out.exists()


def online_teacher(cfg: RunConfig, **change) -> None:
    """Make `cfg` a student of an online teacher: its own model changed by `change`."""
    cfg.distill.teacher = ""
    cfg.distill.online = {**dataclasses.asdict(cfg.model), **change}


# one bad setting of each kind of check: the config key, the option, how to set it
BAD_SETTINGS = [
    ("train.epochs", "--epochs", lambda c: setattr(c.train, "epochs", 0)),
    ("train.precision", "--precision", lambda c: setattr(c.train, "precision", "fp8")),
    ("data.vocab_size", "--vocab-size", lambda c: setattr(c.data, "vocab_size", 2)),
    ("data.lm_text", "--lm-text", lambda c: setattr(c.data, "lm_text", "/some/text")),
    ("distill.loss", "--kd-loss", lambda c: setattr(c.distill, "loss", "nope")),
    ("distill.alpha", "--alpha", lambda c: setattr(c.distill, "alpha", 2.0)),
    ("distill.teacher_cache", "--teacher-cache",
     lambda c: setattr(c.distill, "teacher_cache", "topk:0")),
    ("distill.teacher_cache", "--teacher-cache",
     lambda c: setattr(c.distill, "teacher_cache", "full")),  # for lm only
    ("model.lm_softmax", "--lm-softmax", lambda c: setattr(c.model, "lm_softmax", "adaptive")),
    ("model.dim", "model.dim", lambda c: setattr(c.model, "dim", 0)),
    ("model.layers", "model.layers", lambda c: setattr(c.model, "layers", 0)),
    ("model.dropout", "model.dropout", lambda c: setattr(c.model, "dropout", 1.5)),
    ("model.embed_dropout", "model.embed_dropout",
     lambda c: setattr(c.model, "embed_dropout", -0.1)),
    ("data.data", "--data", lambda c: setattr(c.data, "data", "")),
    ("data.transfer", "--transfer", lambda c: setattr(c.data, "transfer", " ")),
    ("train.device", "--device", lambda c: setattr(c.train, "device", "")),
    ("distill.online.dim", "distill.online.dim", lambda c: online_teacher(c, dim=0)),
    ("distill.online.lm_softmax", "distill.online.lm_softmax",
     lambda c: online_teacher(c, lm_softmax="bogus")),
]  # fmt: skip


@pytest.mark.parametrize(("key", "flag", "spoil"), BAD_SETTINGS)
def test_a_config_file_s_bad_setting_is_named_by_its_file_and_key(tmp_path, key, flag, spoil):
    """A config built from options names the option; one read from a file (`--config`, a run's
    config.yaml) names the file and the key it would have to edit."""
    cfg = tiny_config(teacher=str(tmp_path / "t"))
    spoil(cfg)
    with pytest.raises(IbkdError) as from_options:
        cfg.validate()
    assert str(from_options.value).startswith(flag)
    path = tmp_path / "config.yaml"
    cfg.save(path)
    with pytest.raises(IbkdError) as from_file:
        RunConfig.load(path)
    assert str(from_file.value).startswith(f"{path}: {key}")
    assert "--" not in str(from_file.value)


@pytest.mark.parametrize("key", ["setup", "model"])
def test_a_config_file_without_setup_or_model_is_one_line(tmp_path, key):
    path = tmp_path / "config.yaml"
    cfg = tiny_config().to_dict()
    cfg[key] = None
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(IbkdError, match=f"{path}: `{key}` is missing"):
        RunConfig.load(path)


@pytest.mark.parametrize("value", ["0", "-1", str(MAX_SEEDS + 1), str(2**63)])
def test_reproduce_seed_counts_out_of_range_are_refused(tmp_path, capsys, value):
    out = tmp_path / "g"
    refused_by_the_parser(
        capsys, ["reproduce", "scenario2", "--seeds", value, "--out", str(out)], "--seeds"
    )
    assert not out.exists()


def test_evaluate_says_an_mnist_run_has_no_suites(tmp_path, capsys):
    """Refused from its config.yaml, before its weights are loaded or a suite is read."""
    model, train = preset("mnist", "mlp", "quick")
    run = tmp_path / "run"
    run.mkdir()
    RunConfig(setup="mnist", model=model, data=DataConfig(), train=train).save(run / "config.yaml")
    for suite in ("marvin-linzen", str(linzen_file(tmp_path / "s.tsv"))):
        assert main(["evaluate", str(run), "--suite", suite, "--device", "cpu"]) == 2
        one_line_error(capsys, f"{run}: the suites are subject-verb agreement suites",
                       "an MNIST run has none")  # fmt: skip
    assert not (run / "suites").exists()


def test_the_suite_scorer_refuses_a_setup_without_suites():
    from ibkd.suite_predictions import predict_suite

    with pytest.raises(IbkdError, match="an MNIST run has none"):
        predict_suite(None, None, "mnist", [], "cpu")


# ---------------------------------------------------------------------------------------------
# kind 7: what the user reads


def _parsers(parser: argparse.ArgumentParser, path=("ibkd",)):
    """(command path, parser) of the parser and every subcommand's, recursively."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_every_option_of_every_command_has_a_help_text():
    """So that this kind stays fixed: a new option without help fails here."""
    missing = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                missing += [f"{' '.join(path)} {n}" for n in action.choices if not helps.get(n)]
            elif action.help in (None, "", argparse.SUPPRESS) or not str(action.help).strip():
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_says_what_is_required_and_every_setup_and_default(capsys):
    train = _help(capsys, "train")
    assert "usage: ibkd train --setup {cls,lm,mnist} --model MODEL --out RUN" in train
    assert "ibkd train --out RUN --resume" in train
    assert "mnist (digit images" in train
    distill = _help(capsys, "distill")
    assert "usage: ibkd distill (--teacher RUN | --online MODEL" in distill
    # the defaults read from the budget files (ibkd/configs/SCENARIO/BUDGET.toml)
    assert ("T > 0 (default: the preset's; paper: cls 1, lm 1, mnist 5; quick: cls 3, lm 1, "
            "mnist 5; standard: cls 3, lm 1)") in distill  # fmt: skip
    assert "(default: the preset's; paper: cls 1, lm 0.9, mnist 1;" in distill
    reproduce = _help(capsys, "reproduce")
    assert "quick (default)" in reproduce
    assert "--device DEVICE auto (CUDA, MPS, else CPU)" in reproduce
    assert "--no-progress no progress bar (it is shown only when stderr is a terminal)" in reproduce
    evaluate = _help(capsys, "evaluate")
    assert "--device DEVICE auto (CUDA, MPS, else CPU)" in evaluate
    assert "--skip-bad-rows skip malformed suite lines" in evaluate


def test_a_parsing_mistake_is_one_line(capsys):
    refused_by_the_parser(
        capsys,
        ["train", "--setup", "nope"],
        "argument --setup: invalid choice",
        "ibkd train --help",
    )
    refused_by_the_parser(capsys, ["evaluate"], "required", "ibkd evaluate --help")


def test_counts_are_in_the_right_number(capsys, monkeypatch, tmp_path):
    """ "1 epochs" and friends: every count printed goes through `ibkd.text.count`."""
    import ibkd.train
    from ibkd.data.linzen import read_linzen
    from ibkd.experiments import scenario2
    from ibkd.experiments.grid import GridResult

    assert [count(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert count(1, "entry", "entries") == "1 entry" and count(12000, "row") == "12,000 rows"
    training = {"epochs": 1, "best_epoch": 1, "seconds": 0.1, "device": "cpu"}
    metrics = {"run": "r", "model": "lstm", "teacher": None, "training": training}
    monkeypatch.setattr(ibkd.train, "train_run", lambda *a, **k: metrics)
    assert main(["train", "--setup", "cls", "--model", "lstm", "--out", str(tmp_path)]) == 0
    assert "r: lstm, 1 epoch (best 1)" in capsys.readouterr().out
    assert GridResult(finished=["a"]).summary().startswith("1 run trained")
    configs = [
        {"model": {"name": m, "widths": [8]}, "train": {"epochs": 1}} for m in ("cnn", "mlp")
    ]
    assert "8 filters per layer, 1 epoch; the MLP 1 epoch (" in scenario2.notes("quick", configs)
    result = read_linzen(linzen_file(tmp_path / "f.tsv", rows=1, bad_line=True), skip_bad_rows=True)
    assert "read 1 row, skipped 1 bad row;" in result.skipped_summary()


def test_progress_bars_are_shown_only_on_a_terminal(tmp_path, capsys):
    """Into a redirected log, a bar would write a line per refresh (a line a second for a
    grid): the grid's, the data builder's and a run's bar are off unless stderr is a
    terminal (tqdm's `disable=None`)."""
    from ibkd.cli import _progress
    from ibkd.experiments.grid import run_grid
    from ibkd.train import TrainState, _progress_bar

    run_grid([], tmp_path / "g", progress=True)
    assert list(_progress(iter(range(3)), 3)) == [0, 1, 2]
    _progress_bar(tiny_config(), TrainState(), 10).close()
    assert capsys.readouterr().err == ""


def test_the_same_suite_by_another_path_is_the_same_source(cls_run, tmp_path, capsys, monkeypatch):
    """Results of a suite are refused only when they came from another file: the same file
    named from another folder, through `..` or a symlink, or a copy of it, is the same."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(cls_run, run)
    (tmp_path / "a").mkdir()
    suite = linzen_file(tmp_path / "a" / "x.tsv")
    evaluate = ["evaluate", str(run), "--device", "cpu", "--suite"]
    monkeypatch.chdir(tmp_path / "a")
    assert main([*evaluate, "x.tsv"]) == 0
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "b")
    assert main([*evaluate, "../a/x.tsv"]) == 0
    (tmp_path / "link").symlink_to(tmp_path / "a")
    assert main([*evaluate, str(tmp_path / "link" / "x.tsv"), "./../a/x.tsv"]) == 0
    shutil.copy(suite, tmp_path / "b" / "x.tsv")  # a copy: the same content
    assert main([*evaluate, "x.tsv", "../a/x.tsv"]) == 0
    capsys.readouterr()
    (tmp_path / "c").mkdir()
    other = linzen_file(tmp_path / "c" / "x.tsv", rows=3)  # another file of that name
    assert main([*evaluate, str(other), "x.tsv"]) == 2
    one_line_error(capsys, f"--suite {tmp_path / 'b' / 'x.tsv'}: its results would be saved as")
    assert main([*evaluate, str(other)]) == 2
    one_line_error(capsys, f"scored on {tmp_path / 'b' / 'x.tsv'}, not on {other}")


def test_a_vocabulary_cap_mismatch_names_the_cap(tmp_path):
    from ibkd.data.prepare import prepare_data
    from ibkd.data.splits import load_splits
    from ibkd.data.vocab import build_vocab

    data = tmp_path / "data"
    data.mkdir()
    sentences = ["the key is here", "the key is there", "the key is big", "the key is old"]
    for split in ("train", "valid", "test"):
        rows = [GOOD_ROW.replace("the key is here", s, 2) for s in sentences]
        (data / f"{split}.tsv").write_text("\t".join(COLUMNS) + "\n" + "\n".join(rows) + "\n")
    teacher_vocab = build_vocab(load_splits(str(data)).train)
    cfg = tiny_config()
    cfg.data = DataConfig(data=str(data), vocab_size=len(teacher_vocab) - 2)
    with pytest.raises(IbkdError, match=r"the vocabulary cap \(--vocab-size, data.vocab_size\)"):
        prepare_data(cfg, teacher_vocab)
    other = build_vocab([make_row("a dog runs fast", 2, 3)])  # another data set: the data
    with pytest.raises(IbkdError, match="must be trained on the same data"):
        prepare_data(cfg, other)
    # `ibkd distill --data` gives the student its teacher's cap
    teacher = tmp_path / "teacher"
    teacher_cfg = tiny_config("lm")
    teacher_cfg.data = DataConfig(data=str(data), vocab_size=7)
    teacher.mkdir()
    teacher_cfg.save(teacher / "config.yaml")
    args = build_parser().parse_args(
        ["distill", "--teacher", str(teacher), "--model", "lstm", "--data", str(data),
         "--out", str(tmp_path / "s")]
    )  # fmt: skip
    assert run_config(args).data.vocab_size == 7


def test_skip_bad_rows_is_suggested_only_where_the_command_takes_it(cls_run, tmp_path, capsys):
    bad = linzen_file(tmp_path / "bad.tsv", bad_line=True)
    hint = "(use --skip-bad-rows to skip such rows)"
    assert main(["data", "stats", str(bad)]) == 2
    one_line_error(capsys, f"{bad}:14: has 1 tab-separated columns", hint)
    assert main(["evaluate", str(cls_run), "--suite", str(bad), "--device", "cpu"]) == 2
    one_line_error(capsys, f"{bad}:14:", hint)
    out = tmp_path / "g"
    assert main(["reproduce", "scenario1", "--data", str(bad), "--no-suites", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err  # the grid's plan, then the error
    assert err.splitlines()[-1].startswith(f"ibkd: error: {bad}:14:")
    assert "--skip-bad-rows" not in err and "Traceback" not in err
    assert main(["train", "--setup", "cls", "--model", "lstm", "--data", str(bad),
                 "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2  # fmt: skip
    assert "--skip-bad-rows" not in one_line_error(capsys, f"{bad}:14:")
    with pytest.raises(BadRowError):
        from ibkd.data.linzen import read_linzen

        read_linzen(bad)


# ---------------------------------------------------------------------------------------------
# the documented synopsis is the parser's


def _synopsis(page: str = "docs/cli.md") -> list[tuple[list[str], str]]:
    """(command path, its options text) per command of a page's synopsis block: docs/cli.md's
    first code block, or the README's under "The `ibkd` command"."""
    text = (DOCS.parent / page).read_text(encoding="utf-8")
    if page == "README.md":
        text = text.split("## The `ibkd` command", 1)[1]
    block = text.split("```\n", 2)[1]
    out: list[tuple[list[str], str]] = []
    for line in block.splitlines():
        line = line.split("#", 1)[0]
        if line.startswith("ibkd "):
            words = line.split()
            path = [w for w in words[1:3] if re.fullmatch(r"[a-z][a-z0-9-]*", w)]
            out.append((path, line))
        elif line.strip():
            out[-1] = (out[-1][0], out[-1][1] + " " + line)
    return out


@pytest.mark.parametrize("page", ["docs/cli.md", "README.md"])
def test_the_documented_synopsis_matches_the_parser(page):
    parsers = {path[1:]: p for path, p in _parsers(build_parser())}
    commands = _synopsis(page)
    assert len(commands) >= 10
    for path, line in commands:
        key = tuple(path[:2]) if tuple(path[:2]) in parsers else tuple(path[:1])
        assert key in parsers, line
        options = {o: a for a in parsers[key]._actions for o in a.option_strings}
        for option, values in re.findall(r"(--[a-z][a-z0-9-]*)(?:[ =]([^\s\[\]]+))?", line):
            assert option in options, f"{' '.join(key)}: {option} is not an option"
            choices = options[option].choices
            if choices is not None and values and "|" in values:
                assert set(values.split("|")) == set(choices), f"{' '.join(key)} {option}"
    documented = {tuple(p[:2]) if tuple(p[:2]) in parsers else tuple(p[:1]) for p, _ in commands}
    leaves = {k for k in parsers if k and k != ("data",)}
    assert leaves <= documented, leaves - documented
