"""The saved-predictions contract: what `predictions/<split>.npz` in a run folder holds.

Evaluation writes these files (the run's task, `ibkd.tasks`: `Task.predict`, holding at least
its `prediction_keys`); metrics and reports read them, never a model, so a report rebuilds in
seconds and a new metric applies to old runs. One
`np.savez_compressed` archive per split (`valid`, `test`, and for MNIST the shifted test sets),
N = the split's examples, in the split's order. Numpy only: loading needs no torch.

Every setup (task):
    label                int64   [N]     gold class: verb number (VBZ 0, VBP 1), digit 0-9, ...
    features             float32 [N, H]  penultimate representation (classification: the
                                         readout; LM: at the position that predicts the verb)
Agreement rows (cls and lm) also:
    distance             int64   [N]     words from subject to verb
    n_intervening        int64   [N]     nouns between subject and verb
    n_diff_intervening   int64   [N]     of them, attractors (number differs from the subject)
Classification (cls) and images (mnist, any image task):
    probs                float32 [N, C]  softmax probabilities (C = 2 classes, 10 digits, ...)
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
import zlib
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
"""The groupings of agreement rows; which keys a task's files hold: `Task.prediction_keys`."""


# what each dtype of the contract may be read as: numpy's dtype kinds (integers of any width,
# floats of any width, booleans or integers for flags, unicode strings)
_KINDS = {"int64": "iu", "float32": "f", "float64": "f", "bool": "biu", "str": "U"}
SUITE_ARRAYS: dict[str, tuple[str, int]] = {
    "item": ("int64", 1), "construction": ("str", 1), "n_attractors": ("int64", 1),
    "score_good": ("float64", 1), "score_bad": ("float64", 1), "skip_reason": ("str", 1),
}  # fmt: skip
"""A suite's saved per-item arrays (`RUN/suites/NAME.npz`, `ibkd.metrics.SUITE_KEYS`)."""
MAX_STRING = 1000  # characters in one string of a saved file (construction, skip reason)
MAX_GROUPS = 1000  # distinct constructions in one suite file (BLiMP has 67 paradigms)


def check_arrays(
    path: str | os.PathLike, what: str, arrays: dict[str, np.ndarray],
    spec: dict[str, tuple[str, int]],
) -> None:  # fmt: skip
    """Check the arrays of a saved file against its contract before anything uses them: each
    known key's dtype kind and number of dimensions (`spec`: key -> (dtype, ndim), as `KEYS`
    and `SUITE_ARRAYS`), one length N shared by every known array's first axis, strings of at
    most `MAX_STRING` characters and at most `MAX_GROUPS` distinct constructions. The `text_`
    arrays (an LM's held-out text, one entry per sentence: M) share a length of their own.
    IbkdError naming the file and the array otherwise (a tampered or foreign file)."""
    lengths: dict[bool, tuple[int, str]] = {}  # per group (text_ or not): (length, first key)
    for key, a in arrays.items():
        if key not in spec:
            continue
        dtype, ndim = spec[key]
        if a.dtype.kind not in _KINDS[dtype] or a.ndim != ndim:
            shape = "[" + ", ".join(["N", "C", "H"][:ndim]) + "]" if ndim else "a scalar"
            raise IbkdError(
                f"{path}: not a {what} (`{key}` is {a.dtype} with shape {list(a.shape)}; "
                f"expected {dtype} {shape})"
            )
        if dtype == "str" and a.dtype.itemsize // 4 > MAX_STRING:
            raise IbkdError(
                f"{path}: not a {what} (`{key}` holds strings longer than {MAX_STRING} characters)"
            )
        n, first = lengths.setdefault(key.startswith("text_"), (len(a), key))
        if len(a) != n:
            raise IbkdError(f"{path}: not a {what} (`{key}` has {len(a)} rows, `{first}` has {n})")
    if "construction" in spec and "construction" in arrays:
        groups = len(np.unique(arrays["construction"]))
        if groups > MAX_GROUPS:
            raise IbkdError(
                f"{path}: not a {what} (`construction` has {groups:,} distinct values; "
                f"expected at most {MAX_GROUPS:,})"
            )


def save_predictions(path: str | os.PathLike, predictions: dict[str, np.ndarray]) -> None:
    """Write one split's predictions atomically (temporary file, then rename)."""
    with atomic_write(path, text=False) as f:
        np.savez_compressed(f, **predictions)


def load_arrays(
    path: str | os.PathLike, what: str, required: tuple[str, ...],
    spec: dict[str, tuple[str, int]] | None = None,
) -> dict:  # fmt: skip
    """Read a saved `.npz` of per-example arrays ({key: array}, no pickles); IbkdError naming
    the file when it is missing, unreadable or cut short, lacks one of the `required` arrays,
    or breaks the contract `spec` (`check_arrays`; `what` names the kind of file in the
    message)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("a single array, not an .npz archive")
            out = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise IbkdError(f"{path}: no such {what}") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise IbkdError(f"{path}: not a readable {what} ({_reason(e)})") from None
    missing = [k for k in required if k not in out]
    if missing:
        raise IbkdError(f"{path}: not a {what} (no {', '.join(f'`{k}`' for k in missing)} array)")
    if spec is not None:
        check_arrays(path, what, out, spec)
    return out


def load_predictions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read one split's predictions: {key: array} as described in the module docstring,
    checked against it (`check_arrays` with `KEYS`). A missing, unreadable, cut or tampered
    file raises IbkdError naming it."""
    return load_arrays(path, "predictions file", ("label",), KEYS)


def load_suite_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a suite's saved per-item predictions (`SUITE_ARRAYS`), checked against the
    contract; IbkdError naming the file otherwise."""
    required = tuple(k for k in SUITE_ARRAYS if k != "skip_reason")
    return load_arrays(path, "suite predictions file", required, SUITE_ARRAYS)


def _reason(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
