"""Shared fixtures. Real data sets under ../shared/data (or $IBKD_SHARED_DATA) are used where
present; tests that need them are skipped elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ibkd.data.linzen import AgreementRow

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
