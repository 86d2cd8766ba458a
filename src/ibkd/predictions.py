"""The saved-predictions contract: what `predictions/<split>.npz` in a run folder holds.

Evaluation writes these files (`ibkd.evaluate.predict`); metrics and reports read them, never a
model, so a report rebuilds in seconds and a new metric applies to old runs. One
`np.savez_compressed` archive per split (`valid`, `test`, and for MNIST the shifted test sets),
N = the split's examples, in the split's order. Numpy only: loading needs no torch.

Every setup:
    label                int64   [N]     gold class: verb number (VBZ 0, VBP 1) or digit 0-9
    features             float32 [N, H]  penultimate representation (classification: the
                                         readout; LM: at the position that predicts the verb)
Agreement rows (cls and lm) also:
    distance             int64   [N]     words from subject to verb
    n_intervening        int64   [N]     nouns between subject and verb
    n_diff_intervening   int64   [N]     of them, attractors (number differs from the subject)
Classification (cls) and images (mnist):
    probs                float32 [N, C]  softmax probabilities (C = 2 classes, or 10 digits)
Language model (lm):
    sum_nll              float64 [N]     summed next-token negative log-likelihood, nats
    n_tokens             int64   [N]     scored tokens (sentence + <eos>)
    verb_logprob         float64 [N]     log P(actual verb | prefix), nats
    other_logprob        float64 [N]     log P(the verb's other-number form | prefix), nats
    other_known          bool    [N]     both forms are in the vocabulary (else not scored)
  with an LM text (`DataConfig.lm_text`), the held-out sentences of the split (M of them):
    text_sum_nll         float64 [M]     summed next-token negative log-likelihood, nats
    text_n_tokens        int64   [M]     scored tokens (sentence + <eos>)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ibkd.errors import IbkdError
from ibkd.files import atomic_write

# key -> (dtype, number of dimensions); the module docstring says what each means
KEYS: dict[str, tuple[str, int]] = {
    "label": ("int64", 1), "features": ("float32", 2),
    "distance": ("int64", 1), "n_intervening": ("int64", 1), "n_diff_intervening": ("int64", 1),
    "probs": ("float32", 2),
    "sum_nll": ("float64", 1), "n_tokens": ("int64", 1), "verb_logprob": ("float64", 1),
    "other_logprob": ("float64", 1), "other_known": ("bool", 1),
    "text_sum_nll": ("float64", 1), "text_n_tokens": ("int64", 1),
}  # fmt: skip
AGREEMENT_KEYS = ("distance", "n_intervening", "n_diff_intervening")
SETUP_KEYS = {
    "cls": ("label", "features", *AGREEMENT_KEYS, "probs"),
    "mnist": ("label", "features", "probs"),
    "lm": ("label", "features", *AGREEMENT_KEYS, "sum_nll", "n_tokens", "verb_logprob",
           "other_logprob", "other_known"),
}  # fmt: skip


def save_predictions(path: str | os.PathLike, predictions: dict[str, np.ndarray]) -> None:
    """Write one split's predictions atomically (temporary file, then rename)."""
    with atomic_write(path, text=False) as f:
        np.savez_compressed(f, **predictions)


def load_arrays(path: str | os.PathLike, what: str, required: tuple[str, ...]) -> dict:
    """Read a saved `.npz` of per-example arrays ({key: array}, no pickles); IbkdError naming
    the file when it is missing, unreadable or lacks one of the `required` arrays (`what`
    names the kind of file in the message)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise IbkdError(f"{path}: no such {what}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IbkdError(f"{path}: not a readable {what} ({_reason(e)})") from None
    missing = [k for k in required if k not in out]
    if missing:
        raise IbkdError(f"{path}: not a {what} (no {', '.join(f'`{k}`' for k in missing)} array)")
    return out


def load_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one split's predictions: {key: array} as described in the module docstring. A
    missing or unreadable file raises IbkdError naming it."""
    return load_arrays(path, "predictions file", ("label",))


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
