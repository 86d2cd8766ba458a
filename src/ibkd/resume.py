"""What a resumed run must find as it was started, beside its config.yaml.

A resume gives the numbers of an uninterrupted run only on the same inputs and with the same
settings. config.yaml holds what a run computes; `started.json` (written when a run starts,
kept on every resume) holds the rest:

    threads       torch's intra-op CPU threads (sums are split by thread: other counts, other
                  numbers); a resume runs with them
    tensorboard   whether TensorBoard event files are written; a resume keeps writing them
    inputs        SHA-256 fingerprints of what the run reads: each data split as loaded and
                  encoded (`train`, with any transfer prefixes; `valid`; every test set) and a
                  finished teacher's checkpoint.pt and config.yaml (`teacher`)

A resume whose inputs changed is refused with one line naming what changed (`check_inputs`).
A run folder written before this file existed resumes without these checks, and the file is
written then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ibkd.errors import IbkdError
from ibkd.files import atomic_write

STARTED = "started.json"
CHUNK = 1 << 20


def _tensor_digest(h, t: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes into the hash `h`."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the bytes, not copied


def split_fingerprint(split) -> str:
    """SHA-256 (hex) of one encoded split (`ibkd.data.batching.Encoded` or `ImageSet`): its
    tensors (inputs, lengths, labels, verb positions or images) and the per-example metadata
    the metrics group by (`meta()`: distance, attractors). Equal fingerprints: the run trains
    or is scored on the same examples."""
    h = hashlib.sha256()
    for name in ("tokens", "images", "lengths", "labels", "verb_input_index"):
        value = getattr(split, name, None)
        if isinstance(value, torch.Tensor):
            h.update(name.encode())
            _tensor_digest(h, value)
    for key, values in sorted(split.meta().items()):
        h.update(key.encode())
        _tensor_digest(h, torch.from_numpy(values))
    return h.hexdigest()


def file_fingerprint(paths: list[Path]) -> str:
    """SHA-256 (hex) of the named files' contents, in order (a missing file counts as empty
    and named so)."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        if not path.is_file():
            h.update(b"<missing>")
            continue
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
    return h.hexdigest()


def input_fingerprints(data, teacher_folder: str | Path | None) -> dict[str, str]:
    """The fingerprints of a run's inputs: `train`, `valid`, each test set by name
    (`split_fingerprint` of `data`, an `ibkd.data.prepare.RunData`) and, for a finished
    teacher, `teacher` (`file_fingerprint` of its checkpoint.pt and config.yaml)."""
    out = {"train": split_fingerprint(data.train), "valid": split_fingerprint(data.valid)}
    out.update({name: split_fingerprint(split) for name, split in data.tests.items()})
    if teacher_folder:
        folder = Path(teacher_folder)
        out["teacher"] = file_fingerprint([folder / "checkpoint.pt", folder / "config.yaml"])
    return out


def read_started(out: Path) -> dict | None:
    """The run folder's started.json ({threads, tensorboard, inputs}); None when the folder has
    none (a run written before it existed). An unreadable file raises IbkdError naming it."""
    path = out / STARTED
    if not path.is_file():
        return None
    try:
        started = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise IbkdError(f"{path}: unreadable ({str(e).splitlines()[0]})") from None
    if not isinstance(started, dict) or not isinstance(started.get("inputs", {}), dict):
        raise IbkdError(f"{path}: expected a mapping with threads, tensorboard and inputs")
    return started


def write_started(out: Path, threads: int, tensorboard: bool, inputs: dict[str, str]) -> None:
    """Write started.json (atomically)."""
    with atomic_write(out / STARTED) as f:
        json.dump({"threads": threads, "tensorboard": tensorboard, "inputs": inputs}, f,
                  indent=2)  # fmt: skip
        f.write("\n")


def check_inputs(out: Path, recorded: dict[str, str], now: dict[str, str], cfg) -> None:
    """Refuse (IbkdError, one line) a resume whose inputs differ from those the run in `out`
    started with, naming each changed split (with `--data`, and an LM's `--lm-text`) or the
    teacher (`--teacher`). The splits are fingerprinted as encoded with the training split's
    vocabulary, so a changed training split is named alone (the other splits' encodings change
    with it)."""
    changed = []
    source = f"--data {cfg.data.data}"
    if cfg.data.lm_text:  # an LM's splits hold its text's sentences too
        source += f" and --lm-text {cfg.data.lm_text}"
    train_changed = recorded.get("train") != now.get("train")
    for key in sorted(set(recorded) | set(now), key=lambda k: (k != "teacher", k != "train", k)):
        encoded_with_another_vocabulary = train_changed and key not in ("train", "teacher")
        if recorded.get(key) == now.get(key) or encoded_with_another_vocabulary:
            continue
        if key == "teacher":
            changed.append(
                f"the teacher {cfg.distill.teacher if cfg.distill else '?'} (its checkpoint.pt "
                "or config.yaml)"
            )
        elif key not in now:
            changed.append(f"the {key} split of {source} (now absent)")
        elif key not in recorded:
            changed.append(f"the {key} split of {source} (new)")
        else:
            changed.append(
                f"the {key} split of {source} (SHA-256 {recorded[key][:12]} -> {now[key][:12]})"
            )
    if changed:
        raise IbkdError(
            f"--resume {out}: changed since the run started: {'; '.join(changed)}; resume "
            "with the inputs it started with, or start a new run in another folder"
        )
