import json
import subprocess
import sys

import pytest
from conftest import tiny_config

from ibkd.cli import main
from ibkd.train import train_run

CONLLU = (
    "1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tkey\tkey\tNOUN\tNN\t_\t3\tnsubj\t_\t_\n"
    "3\tis\tbe\tAUX\tVBZ\t_\t0\troot\t_\t_\n"
)


def test_stats_default_json(capsys):
    assert main(["data", "stats", "default", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rows"] >= 12_000
    assert set(stats["splits"]) == {"train", "valid", "test"}
    train = stats["splits"]["train"]
    assert sum(train["by_distance"].values()) == train["rows"]
    assert sum(train["by_attractors"].values()) == train["rows"]
    assert stats["vocabulary_size"] > 5_000


def test_stats_text(capsys):
    assert main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    assert "distance" in out and "attractors" in out and "total rows" in out


def test_build_then_split(tmp_path, capsys):
    corpus = tmp_path / "c.conllu"
    # 50 different sentences: a split keeps all rows of one sentence together
    corpus.write_text("".join(CONLLU.replace("\tThe\t", f"\tThe{i}\t") + "\n" for i in range(50)))
    out = tmp_path / "rows.tsv.gz"
    assert (
        main(["data", "build", "--corpus", str(corpus), "--format", "conllu", "--out", str(out)])
        == 0
    )
    assert "50 rows" in capsys.readouterr().out
    assert (
        main(["data", "build", "--corpus", str(corpus), "--format", "conllu", "--out", str(out)])
        == 2
    )
    assert "exists already" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "split",
                str(out),
                "--out",
                str(tmp_path / "s"),
                "--train",
                "0.5",
                "--valid",
                "0.2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert {p.name for p in (tmp_path / "s").iterdir()} == {
        "train.tsv.gz",
        "valid.tsv.gz",
        "test.tsv.gz",
        "vocab.json",
    }
    assert main(["data", "stats", str(tmp_path / "s"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert [stats["splits"][s]["rows"] for s in ("train", "valid", "test")] == [25, 10, 15]


@pytest.mark.slow
def test_bad_input_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"\x00\x01binary")
    proc = subprocess.run(
        [sys.executable, "-m", "ibkd", "data", "stats", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"ibkd: error: {bad}: looks like a binary file")
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_skip_bad_rows_reports(tmp_path, capsys):
    from ibkd.data.linzen import COLUMNS

    good = (
        "the key{i} is here\tthe key{i} is here\tDT NN VBZ RB\tkey{i}\tis\tNN\tFalse\tFalse"
        "\tVBZ\t2\t3\t0\tna\t0\t1\t0\tkey{i}\tkey{i}"
    )
    path = tmp_path / "f.tsv"
    rows = "".join(good.format(i=i) + "\n" for i in range(40))
    path.write_text("\t".join(COLUMNS) + "\n" + rows + "oops\n")
    assert main(["data", "stats", str(path)]) == 2
    assert f"{path}:42: has 1 tab-separated columns" in capsys.readouterr().err
    argv = ["data", "stats", str(path), "--skip-bad-rows", "--train", "0.5", "--valid", "0.1"]
    assert main(argv) == 0
    assert "skipped 1 bad row; first: line 42" in capsys.readouterr().err


@pytest.mark.parametrize(
    "scenario, cell, argv",
    [("scenario1", "lstm/seed0", ["train", "--setup", "cls", "--model", "lstm"]),
     ("scenario1", "transformer--from-lstm/seed1",
      ["distill", "--teacher", "{grid}/lstm/seed1", "--model", "transformer", "--seed", "1"]),
     ("scenario1", "transformer--transfer/seed0",
      ["train", "--setup", "cls", "--model", "transformer", "--transfer", "default"]),
     ("scenario1-lm", "small-lstm/seed1",
      ["train", "--setup", "lm", "--model", "small-lstm", "--seed", "1"]),
     ("scenario1-lm", "transformer--from-lstm/seed0",
      ["distill", "--teacher", "{grid}/lstm/seed0", "--model", "transformer"]),
     ("scenario2", "mlp/seed0", ["train", "--setup", "mnist", "--model", "mlp"]),
     ("scenario2", "mlp--from-cnn/seed0", ["distill", "--teacher", "{grid}/cnn/seed0",
                                           "--model", "mlp"])],
)  # fmt: skip
def test_preset_quick_is_the_quick_grids_cell(tmp_path, scenario, cell, argv):
    """`ibkd train|distill --preset quick` writes the config.yaml of the quick grid's cell."""
    from ibkd.cli import build_parser, run_config
    from ibkd.config import RunConfig
    from ibkd.experiments import scenario1, scenario2
    from ibkd.experiments.grid import resolved

    grid_dir = tmp_path / "grid"
    runs = {
        "scenario1": lambda: scenario1.grid("cls", "quick"),
        "scenario1-lm": lambda: scenario1.grid("lm", "quick"),
        "scenario2": lambda: scenario2.grid("quick"),
    }[scenario]()
    by_name = {r.name: r for r in runs}
    for run in runs:  # the teachers' config.yaml, as the grid writes them
        if run.teacher is None:
            resolved(run, grid_dir).save(grid_dir / run.name / "config.yaml")
    argv = [a.replace("{grid}", str(grid_dir)) for a in argv]
    args = build_parser().parse_args([*argv, "--preset", "quick", "--out", str(tmp_path / "x")])
    run_config(args).save(tmp_path / "cli.yaml")
    resolved(by_name[cell], grid_dir).save(tmp_path / "grid.yaml")
    assert (tmp_path / "cli.yaml").read_text() == (tmp_path / "grid.yaml").read_text()
    assert RunConfig.load(tmp_path / "cli.yaml").train.epochs in (3, 5, 6, 20)


def test_train_config_file_reruns_a_grid_cell_exactly(tmp_path, capsys):
    """`ibkd train --config RUN/config.yaml --out RUN2` trains exactly the run of that config:
    the same config.yaml and, same config and seed on one machine, the same numbers; an option
    that would change the run is refused naming it, before anything is written."""
    first, again = tmp_path / "run", tmp_path / "again"
    cfg = tiny_config(rows=120)
    cfg.train.epochs = 1
    train_run(cfg, first, progress=False, threads=1)
    assert main(["train", "--config", str(first / "config.yaml"), "--out", str(again),
                 "--no-progress", "--threads", "1"]) == 0  # fmt: skip
    assert (again / "config.yaml").read_text() == (first / "config.yaml").read_text()
    ours, theirs = (json.loads((r / "metrics.json").read_text()) for r in (first, again))
    assert ours["test"] == theirs["test"] and ours["valid"] == theirs["valid"]
    capsys.readouterr()
    out = tmp_path / "refused"
    code = main(["train", "--config", str(first / "config.yaml"), "--out", str(out),
                 "--lr", "0.1", "--preset", "quick"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--lr, --preset" in err, err
    assert not out.exists()
    for option in ("--epochs", "--lr", "--vocab-size", "--aux-lm"):  # 0 is given, not absent
        code = main(["train", "--config", str(first / "config.yaml"), "--out", str(out), option,
                     "0"])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert code == 2 and f"edit it instead of giving {option}" in err, err
        assert not out.exists()
