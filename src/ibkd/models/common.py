"""Small pieces the models share."""

from __future__ import annotations

import torch


def last_index(lengths: torch.Tensor) -> torch.Tensor:
    """The position of each sequence's last non-pad token: lengths [B] -> [B] (right padding,
    so `lengths - 1`)."""
    return lengths - 1


def padding_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """lengths [B] -> [B, max_len] bool: True at real tokens, False at padding (right padding)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
