"""Checkpoint files: written atomically, read with `torch.load(weights_only=True)` (tensors and
plain containers only; never arbitrary objects)."""

from __future__ import annotations

from pathlib import Path

import torch

from ibkd.errors import IbkdError
from ibkd.files import atomic_write

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, **state) -> None:
    with atomic_write(path, text=False) as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise IbkdError(f"{path}: no such checkpoint") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise IbkdError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise IbkdError(f"{path}: not an ibkd checkpoint of format {CHECKPOINT_FORMAT}")
    return ckpt
