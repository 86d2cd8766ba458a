"""Every run config the budgets give: each grid of each scenario and budget, and `ibkd train|
distill --preset` for each setup, preset, model and teacher (with some overrides). Compared
with tests/data/run_configs.json.gz (gzipped JSON) by tests/test_recipes.py; a change of a
budget's numbers shows there as a failing test. Regenerate the file (only when a change of
the numbers is meant) with

    python tests/recipe_cases.py

Paths that depend on the machine are written as placeholders: <tmp> for the test's folder.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).parent / "data" / "run_configs.json.gz"
TMP = "<tmp>"


def _grid_rows(runs) -> list[dict]:
    return [
        {"name": r.name, "teacher": r.teacher, "group": r.group, "row": r.row,
         "config": r.config.to_dict()}
        for r in runs
    ]  # fmt: skip


def _lm_text(root: Path) -> Path:
    """A tiny LM text folder (train, valid, test sentences)."""
    folder = root / "lm-text"
    folder.mkdir(exist_ok=True)
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text("the key is here\nthe keys are here\n")
    return folder


def _standard_data(root: Path) -> Path:
    """A data folder with the standard budget's large transfer set and text pool (only their
    presence counts)."""
    from ibkd.data.lm_text import POOL_HEADER

    folder = root / "merged"
    folder.mkdir(exist_ok=True)
    with gzip.open(folder / "transfer-pool.tsv.gz", "wt") as f:
        f.write("")
    with gzip.open(folder / "pool.tsv.gz", "wt") as f:
        f.write(f"{POOL_HEADER}\nptb\tthe key is here\n")
    return folder


def grid_cases(root: Path) -> dict[str, list[dict]]:
    """`scenario/grid/setup/budget[/variant]` -> the runs of that grid (default seeds), and
    `.../note` -> the budget's note the report shows for them."""
    from ibkd.experiments import get

    merged = str(_standard_data(root))
    text = str(_lm_text(root))
    out = {}
    cases = [
        ("scenario1", "main", "cls", "quick", "default", None),
        ("scenario1", "main", "cls", "paper", "default", None),
        ("scenario1", "main", "cls", "standard", merged, None),
        ("scenario1", "main", "lm", "quick", "default", "none"),
        ("scenario1", "main", "lm", "paper", "default", "none"),
        ("scenario1", "main", "lm", "quick", "default", text),
        ("scenario1", "main", "lm", "paper", "default", text),
        ("scenario1", "main", "lm", "standard", merged, "budget"),  # the budget's own text
        ("scenario2", "main", "mnist", "quick", "default", None),
        ("scenario2", "main", "mnist", "paper", "default", None),
        ("scenario1", "kd-methods", "cls", "quick", "default", None),
        ("scenario1", "kd-methods", "cls", "paper", "default", None),
        ("scenario1", "kd-methods", "cls", "standard", merged, None),
        ("scenario2", "kd-methods", "mnist", "quick", "default", None),
        ("scenario2", "kd-methods", "mnist", "paper", "default", None),
    ]
    old = os.environ.get("IBKD_LM_TEXT")
    try:
        for scenario, grid, setup, budget, data, lm in cases:
            if lm == "budget":
                os.environ.pop("IBKD_LM_TEXT", None)
            else:
                os.environ["IBKD_LM_TEXT"] = lm or "none"
            key = f"{scenario}/{grid}/{setup}/{budget}" + (
                "/lm-text" if lm not in (None, "none", "budget") else "")  # fmt: skip
            found = get(scenario, grid)
            runs = found.grid(budget=budget, seeds=None, data=data, setup=setup)
            out[key] = _grid_rows(runs)
            out[key + "/note"] = found.notes(budget, [r.config.to_dict() for r in runs])
    finally:
        if old is None:
            os.environ.pop("IBKD_LM_TEXT", None)
        else:
            os.environ["IBKD_LM_TEXT"] = old
    return out


MODELS = {
    "cls": ("lstm", "transformer", "transformer-seq", "utransformer-seq"),
    "lm": ("lstm", "small-lstm", "transformer", "small-transformer"),
    "mnist": ("cnn", "mlp"),
}


def cli_argvs(root: Path) -> dict[str, list[str]]:
    """Command lines of `ibkd train|distill` (without --out), by a readable key."""
    text = str(_lm_text(root))
    out = {}
    for setup, models in MODELS.items():
        for preset in ("paper", "quick"):
            for m in models:
                base = ["--setup", setup, "--model", m, "--preset", preset]
                out[f"train/{setup}/{preset}/{m}"] = ["train", *base]
                for t in models:
                    teacher = str(root / "teachers" / f"{setup}-{preset}-{t}")
                    out[f"distill/{setup}/{preset}/{t}->{m}"] = [
                        "distill",
                        "--teacher",
                        teacher,
                        "--model",
                        m,
                        "--preset",
                        preset,
                    ]
                    out[f"online/{setup}/{preset}/{t}->{m}"] = [
                        "distill", "--setup", setup, "--online", t, "--model", m,
                        "--preset", preset]  # fmt: skip
            m = models[0]
            teacher = str(root / "teachers" / f"{setup}-{preset}-{models[-1]}")
            out[f"train/{setup}/{preset}/{m}/overrides"] = [
                "train", "--setup", setup, "--model", m, "--preset", preset, "--seed", "3",
                "--epochs", "2", "--batch-size", "16", "--lr", "0.01", "--precision", "bf16",
                "--compile"]  # fmt: skip
            out[f"distill/{setup}/{preset}/overrides"] = [
                "distill", "--teacher", teacher, "--model", m, "--preset", preset, "--seed", "2",
                "--temperature", "2", "--alpha", "0.5", "--kd-scale", "inv-t2",
                "--teacher-dropout", "--no-teacher-cache", "--kd-loss", "hard"]  # fmt: skip
    out["train/cls/quick/lstm/transfer"] = [
        "train", "--setup", "cls", "--model", "lstm", "--preset", "quick", "--transfer",
        "default", "--aux-lm", "0.5"]  # fmt: skip
    out["distill/cls/quick/transfer-none"] = [
        "distill", "--teacher", str(root / "teachers" / "cls-quick-lstm"), "--model",
        "transformer", "--preset", "quick", "--transfer", "none"]  # fmt: skip
    out["distill/cls/paper/calibrated"] = [
        "distill", "--teacher", str(root / "teachers" / "cls-paper-lstm"), "--model",
        "transformer", "--teacher-calibration", "temperature"]  # fmt: skip
    out["distill/cls/quick/other-data"] = [
        "distill", "--teacher", str(root / "teachers" / "cls-quick-lstm"), "--model",
        "transformer", "--preset", "quick", "--data", str(root / "merged")]  # fmt: skip
    for preset in ("paper", "quick"):
        for key, setup, option, value in (
            ("lm/{}/lstm/lm-text", "lm", "--lm-text", text),
            ("lm/{}/lstm/vocab-size", "lm", "--vocab-size", "50"),
            ("cls/{}/lstm/vocab-size-0", "cls", "--vocab-size", "0"),
        ):
            argv = ["train", "--setup", setup, "--model", "lstm", "--preset", preset, option]
            out["train/" + key.format(preset)] = [*argv, value]
    out["train/cls/default-preset/lstm"] = ["train", "--setup", "cls", "--model", "lstm"]
    out["online/lm/quick/lstm->transformer/text-options"] = [
        "distill", "--setup", "lm", "--online", "lstm", "--model", "transformer", "--preset",
        "quick", "--lm-text", text, "--vocab-size", "50", "--unk-signatures"]  # fmt: skip
    return out


def write_teachers(root: Path) -> None:
    """The teachers' config.yaml that the distill command lines name: each setup, preset and
    model's `ibkd train --preset` config."""
    from ibkd.cli import build_parser, run_config

    parser = build_parser()
    for setup, models in MODELS.items():
        for preset in ("paper", "quick"):
            for t in models:
                folder = root / "teachers" / f"{setup}-{preset}-{t}"
                argv = ["train", "--setup", setup, "--model", t, "--preset", preset,
                        "--out", str(folder)]  # fmt: skip
                run_config(parser.parse_args(argv)).save(folder / "config.yaml")


def cli_cases(root: Path) -> dict[str, dict]:
    """Key -> the run config (`to_dict()`) of each command line of `cli_argvs`."""
    from ibkd.cli import build_parser, run_config

    old = os.environ.get("IBKD_LM_TEXT")
    os.environ["IBKD_LM_TEXT"] = "none"
    try:
        _standard_data(root)
        write_teachers(root)
        out = {}
        parser = build_parser()  # one parser: parse_args gives a fresh namespace each time
        for key, argv in cli_argvs(root).items():
            args = parser.parse_args([*argv, "--out", str(root / "runs" / "x")])
            out[key] = run_config(args).to_dict()
        return out
    finally:
        if old is None:
            os.environ.pop("IBKD_LM_TEXT", None)
        else:
            os.environ["IBKD_LM_TEXT"] = old


def placeholders(value, root: Path):
    """`value` (nested dicts and lists) with the folder `root` written as <tmp>."""
    text = json.dumps(value, sort_keys=True)
    return json.loads(text.replace(str(root.resolve()), TMP).replace(str(root), TMP))


def all_cases(root: Path) -> dict:
    """{"grids": grid_cases, "cli": cli_cases}, machine paths as placeholders."""
    return placeholders({"grids": grid_cases(root), "cli": cli_cases(root)}, root)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory() as tmp:
        cases = all_cases(Path(tmp))
    FIXTURE.parent.mkdir(exist_ok=True)
    text = json.dumps(cases, indent=1, sort_keys=True) + "\n"
    FIXTURE.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    n = sum(len(v) for v in cases["grids"].values() if isinstance(v, list))
    print(f"{FIXTURE}: {n} grid runs, {len(cases['cli'])} command lines")
