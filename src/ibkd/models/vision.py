"""Scenario 2's models: an MLP (weak bias) and a CNN (translation equivariance, locality).

Both take images [B, 1, 28, 28] (and ignore the `lengths` the training loop passes), return
10 logits, and expose `features()`, the penultimate representation.
"""

from __future__ import annotations

import torch
from torch import nn

from ibkd.config import ModelConfig

N_CLASSES = 10


class MLP(nn.Module):
    """Dense -> ReLU -> BatchNorm -> Dropout per hidden layer (the paper: 512-128-32, 0.1)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int = 0, setup: str = "mnist"):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = 28 * 28
        for w in cfg.widths:
            layers += [nn.Linear(width, w), nn.ReLU(), nn.BatchNorm1d(w), nn.Dropout(cfg.dropout)]
            width = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, N_CLASSES)

    def features(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        return self.body(images)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        return self.head(self.features(images))


class CNN(nn.Module):
    """3x3 conv -> BatchNorm -> ReLU -> 2x2 max-pool -> Dropout per layer (the paper: 128, 64,
    64 filters), global average pooling, a linear output."""

    def __init__(self, cfg: ModelConfig, vocab_size: int = 0, setup: str = "mnist"):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for w in cfg.widths:
            layers += [
                nn.Conv2d(channels, w, 3, padding=1),
                nn.BatchNorm2d(w),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Dropout(cfg.dropout),
            ]
            channels = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, N_CLASSES)
        # channels-last convolutions (oneDNN on CPU, cuDNN on GPU): the quick scenario-2 grid
        # took 9.6 instead of 13 minutes on 2 CPU cores
        self.to(memory_format=torch.channels_last)

    def features(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        return self.body(images.contiguous(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        return self.head(self.features(images))
