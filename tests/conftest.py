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
