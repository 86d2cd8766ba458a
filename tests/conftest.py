"""Shared fixtures and helpers: tiny rows, run configs and grids, the shipped data's first rows
(`small_data`), random MNIST files (`tiny_mnist`). Test modules import helpers from here, never
from each other. Real data sets under ../shared/data (or $IBKD_SHARED_DATA) are used where
present; tests that need them are skipped elsewhere.

Tests that take more than a few seconds are marked `slow` (registered in pyproject.toml):
`python -m pytest -m "not slow"` is the quick inner loop, `python -m pytest` runs everything."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ibkd.config import DataConfig, DistillConfig, ModelConfig, RunConfig, TrainConfig
from ibkd.data.linzen import AgreementRow
from ibkd.data.mnist import FILES, write_idx
from ibkd.predictions import load_predictions

# language models in tests train on the agreement rows' sentences unless a test gives an LM
# text: a PTB copy in the user's cache must not change what the tests compute
os.environ["IBKD_LM_TEXT"] = "none"

SHARED = Path(os.environ.get("IBKD_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def make_row(
    sentence: str,
    subj_index: int,
    verb_index: int,
    verb_pos: str = "VBZ",
    n_intervening: int = 0,
    n_diff: int = 0,
) -> AgreementRow:
    """A consistent row for tests (POS and noun columns filled in plausibly)."""
    tokens = sentence.split()
    pos = " ".join(
        "VBZ" if i == verb_index else "NN" if i == subj_index else "DT"
        for i in range(1, len(tokens) + 1)
    )
    return AgreementRow(
        sentence=sentence,
        orig_sentence=sentence,
        pos_sentence=pos,
        subj=tokens[subj_index - 1],
        verb=tokens[verb_index - 1],
        subj_pos="NN" if verb_pos == "VBZ" else "NNS",
        has_rel=False,
        has_nsubj=False,
        verb_pos=verb_pos,
        subj_index=subj_index,
        verb_index=verb_index,
        n_intervening=n_intervening,
        last_intervening="na",
        n_diff_intervening=n_diff,
        distance=verb_index - subj_index,
        max_depth=0,
        all_nouns=tokens[subj_index - 1],
        nouns_up_to_verb=tokens[subj_index - 1],
    )


@pytest.fixture(scope="session")
def nlp():
    """spaCy's English pipeline, loaded once (skipped where spaCy is not installed)."""
    pytest.importorskip("spacy")
    from ibkd.data.build import load_spacy

    return load_spacy()


# ------------------------------------------------------------------------ runs and grids, tiny


def tiny_config(setup="cls", arch="lstm", seed=0, rows=300, **distill):
    """A run config of a tiny LSTM or Transformer (16 units, one layer), 2 epochs of batches of
    32 on the shipped data's first `rows` training rows, CPU; distilled with `distill` set."""
    model = (
        ModelConfig(
            "lstm",
            "lstm",
            dim=16,
            hidden=16,
            layers=1,
            embed_dropout=0.1,
            dropout=0.2,
            recurrent_dropout=0.2,
        )
        if arch == "lstm"
        else ModelConfig(
            "transformer",
            "transformer",
            dim=16,
            layers=1,
            heads=2,
            pool="cls",
            dropout=0.1,
            attn_dropout=0.1,
            embed_dropout=0.1,
        )
    )
    return RunConfig(
        setup=setup,
        model=model,
        seed=seed,
        data=DataConfig(max_train_rows=rows),
        train=TrainConfig(
            epochs=2,
            batch_size=32,
            lr=1e-2,
            warmup_steps=5,
            checkpoint_every=3,
            patience=5,
            device="cpu",
        ),
        distill=DistillConfig(**distill) if distill else None,
    )


class Killed(Exception):
    """Raised by `kill_at`'s hook: a run stopped mid-training, as if killed."""


def kill_at(step):
    """A step hook (`train_run(..., on_step=...)`) that raises `Killed` at `step`."""

    def hook(s):
        if s == step:
            raise Killed

    return hook


def tiny(runs, rows=250):
    """The runs with tiny models, one epoch, `rows` training rows (and transfer prefixes)."""
    for r in runs:
        m, t = r.config.model, r.config.train
        m.dim, m.hidden, m.layers, m.heads = 16, 16, 1, 2
        t.epochs, t.batch_size, t.warmup_steps, t.device = 1, 32, 5, "cpu"
        r.config.data.max_train_rows = rows  # also caps the transfer prefixes
    return runs


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """The first 80 / 24 / 24 rows of the shipped splits, as a data folder."""
    from ibkd.data.splits import Splits, load_splits, write_splits

    s = load_splits("default")
    folder = tmp_path_factory.mktemp("data")
    write_splits(Splits(s.train[:80], s.valid[:24], s.test[:24], "test"), folder)
    return folder


def mini_grid(data, seeds=1):
    """lstm, transformer and lstm -> transformer per seed, tiny, on `data`, no transfer set."""
    from ibkd.experiments.scenario1 import grid

    keep = {"lstm", "transformer", "transformer--from-lstm"}
    runs = [r for r in tiny(grid("cls", "quick", seeds=seeds)) if r.name.split("/")[0] in keep]
    for r in runs:
        r.config.data.data, r.config.data.transfer = str(data), None
        r.config.model.dim = r.config.model.hidden = 8
    return runs


@pytest.fixture(scope="module")
def tiny_mnist(tmp_path_factory):
    """Random 28 x 28 'digits' in the four MNIST IDX files: 110 training, 30 test images."""
    from ibkd.data.mnist import FILES, write_idx

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("mnist")
    arrays = {
        "train_images": rng.integers(0, 256, (110, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 110, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 30, dtype=np.uint8),
    }
    for key, name in FILES.items():
        write_idx(folder / name.removesuffix(".gz"), arrays[key])
    return folder


def tiny_data(folder, rows=(600, 150, 150)):
    """The first rows of each shipped split, as a data folder."""
    from ibkd.data.splits import Splits, load_splits, write_splits

    s = load_splits("default")
    write_splits(Splits(s.train[: rows[0]], s.valid[: rows[1]], s.test[: rows[2]], "test"), folder)
    return folder


def without(path, *columns):
    """A CSV file's rows without the named (timing) columns."""
    import csv

    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in columns} for r in csv.DictReader(f)]


@pytest.mark.slow
def same_predictions(a, b):
    """Assert that two run folders saved identical validation and test predictions."""
    for split in ("valid", "test"):
        pa = load_predictions(a / "predictions" / f"{split}.npz")
        pb = load_predictions(b / "predictions" / f"{split}.npz")
        assert pa.keys() == pb.keys()
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


# ------------------------------------------------------------------ suites, images, treebanks

SUITE = {  # Marvin & Linzen's layout (CLAMS en_evalset); `is`/`are` are in every vocabulary
    "simple_agrmt": ["the author is here", "the author are here", "the authors are here",
                     "the authors is here"],
    "prep_anim": ["the author next to the guards is here", "the author next to the guards are here",
                  "the authors next to the guard are here", "the authors next to the guard is here",
                  "the author next to the guard is here", "the author next to the guard are here"],
    "subj_rel": ["the author that likes the guards is here",
                 "the author that likes the guards are here",
                 "the authors that like the guard are here",
                 "the authors that like the guard is here"],
}  # fmt: skip


def write_suite(folder):
    """`SUITE` as a CLAMS folder (`folder/en_evalset/NAME.txt`); returns `folder`."""
    (folder / "en_evalset").mkdir(parents=True)
    for name, lines in SUITE.items():
        text = "".join(f"{'True' if i % 2 == 0 else 'False'}\t{s}\n" for i, s in enumerate(lines))
        (folder / "en_evalset" / f"{name}.txt").write_text(text)
    return folder


def fake_mnist(folder, n_train=700, n_test=200, seed=0):
    """A small MNIST-shaped data set: a bright square whose position codes the label."""
    rng = np.random.default_rng(seed)

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        for i, y in enumerate(labels):
            r, c = 4 + 2 * (y // 5) * 4, 4 + 4 * (y % 5)
            images[i, r : r + 6, c : c + 4] = 255
        return images, labels

    (tr, trl), (te, tel) = make(n_train), make(n_test)
    for key, array in (
        ("train_images", tr),
        ("train_labels", trl),
        ("test_images", te),
        ("test_labels", tel),
    ):
        write_idx(folder / FILES[key], array)
    return folder


CONLLU = """# sent_id = s1
# text = The keys to the cabinet are here.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tkeys\tkey\tNOUN\tNNS\tNumber=Plur\t7\tnsubj\t_\t_
3\tto\tto\tADP\tIN\t_\t5\tcase\t_\t_
4\tthe\tthe\tDET\tDT\t_\t5\tdet\t_\t_
5\tcabinet\tcabinet\tNOUN\tNN\tNumber=Sing\t2\tnmod\t_\t_
6\tare\tbe\tAUX\tVBP\t_\t7\tcop\t_\t_
7\there\there\tADV\tRB\t_\t0\troot\t_\tSpaceAfter=No
8\t.\t.\tPUNCT\t.\t_\t7\tpunct\t_\t_

# sent_id = s2
# text = The dog doesn't bark.
1\tThe\tthe\tDET\t_\t_\t2\tdet\t_\t_
2\tdog\tdog\tNOUN\t_\tNumber=Sing\t5\tnsubj\t_\t_
3-4\tdoesn't\t_\t_\t_\t_\t_\t_\t_\t_
3\tdoes\tdo\tAUX\t_\tMood=Ind|Number=Sing|Person=3|Tense=Pres|VerbForm=Fin\t5\taux\t_\t_
4\tn't\tnot\tPART\t_\t_\t5\tadvmod\t_\t_
5\tbark\tbark\tVERB\t_\tVerbForm=Inf\t0\troot\t_\tSpaceAfter=No
6\t.\t.\tPUNCT\t_\t_\t5\tpunct\t_\t_
"""


# ------------------------------------------------- metrics recomputed independently of ibkd's


def saved_predictions(run, split="test"):
    """A run folder's saved predictions of `split` ({key: array})."""
    return load_predictions(Path(run) / "predictions" / f"{split}.npz")


def accuracy_by_hand(run, split="test"):
    """Top-1 accuracy of a classification or image run's saved predictions (scikit-learn)."""
    from sklearn.metrics import accuracy_score

    pred = saved_predictions(run, split)
    return float(accuracy_score(pred["label"], pred["probs"].argmax(1)))


def top1_match_by_hand(student, teacher, split="test"):
    """The share of examples where two runs' saved predictions have the same top class."""
    a, b = saved_predictions(student, split), saved_predictions(teacher, split)
    return float(np.mean(a["probs"].argmax(1) == b["probs"].argmax(1)))


def ece_by_hand(probs, labels, bins=20):
    """Expected calibration error (Guo et al. 2017): `bins` equal-width bins of the top-class
    confidence, |accuracy - mean confidence| weighted by each bin's share of the examples."""
    conf, top = probs.max(1), probs.argmax(1)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap = (top[inside] == labels[inside]).mean() - conf[inside].mean()
            total += inside.mean() * abs(gap)
    return float(total)


# ------------------------------------------------------------------ reports, read as structure


def markdown_tables(text):
    """Every table of a markdown text, in order: a list of rows, each a list of cell strings
    (the header row first, the |---| rule left out)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def table_under(text, heading):
    """The first table after the line that starts with `heading` ({row label: {column: cell}},
    the header row's first cell dropped)."""
    start = next(i for i, line in enumerate(text.splitlines()) if line.startswith(heading))
    rows = markdown_tables("\n".join(text.splitlines()[start:]))[0]
    header = rows[0][1:]
    return {r[0]: dict(zip(header, r[1:])) for r in rows[1:]}


def cell_text(stats, digits=3, paper=None):
    """A report cell as the summary's {mean, std} give it: `mean ± std`, the mean alone with one
    seed (std NaN), then the paper's number in brackets where given."""
    import math

    text = f"{stats['mean']:.{digits}f}"
    if stats.get("std") is not None and not math.isnan(stats["std"]):
        text += f" ± {stats['std']:.{digits}f}"
    return text + (f" ({paper:g})" if paper is not None else "")


BROWN_DOC = (
    "\n\n\tThe/at keys/nns to/in the/at cabinet/nn are/ber on/in the/at table/nn ./.\n\n\n"
    "\tIn/in 1961/cd ,/, the/at jury/nn didn't/dod* say/vb it's/pps+bez Atlanta's/np$ ./.\n\n"
)


def brown_folder(tmp_path, n_docs=10):
    """A tiny tagged Brown corpus of `n_docs` documents (ca01 ...) in `tmp_path/brown`."""
    folder = tmp_path / "brown"
    folder.mkdir()
    for i in range(1, n_docs + 1):
        (folder / f"ca{i:02d}").write_text(BROWN_DOC.replace("table", f"table{i}"))
    (folder / "cats.txt").write_text("ca01 news\n")  # not a document: ignored
    return folder


@pytest.fixture(scope="module")
def tiny_cls_run(tmp_path_factory):
    """A finished tiny classification run (1 epoch on the shipped data's first 100 rows)."""
    from ibkd.train import train_run

    folder = tmp_path_factory.mktemp("cls") / "run"
    cfg = tiny_config(rows=100)
    cfg.train.epochs = 1
    train_run(cfg, folder, progress=False)
    return folder
