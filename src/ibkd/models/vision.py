"""Scenario 2's models: an MLP (weak bias) and a CNN (translation equivariance, locality).

Both take images [B, C, H, W] and return `n_classes` logits, the shapes their task gives
(`ibkd.models.Shapes.image`, `.n_classes`; MNIST: 1 x 28 x 28 and 10 digits), ignore the
`lengths` the training loop passes, and expose `features()`, the penultimate representation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ibkd.models import ModelConfig, Shapes, register


@dataclass
class VisionConfig(ModelConfig):
    """The options of scenario 2's image models (`arch: mlp` or `arch: cnn`)."""

    widths: list[int] = field(default_factory=list)
    """MLP: units per hidden layer; CNN: filters per convolution layer (one layer each)"""
    dropout: float = 0.0
    """dropout probability after every hidden layer"""


# scenario 2 (PAPER.md): MLP 512-128-32 with dropout 0.1; CNN 3x3 convolutions with 128, 64,
# 64 filters (its dropout rate is not given: 0.1 as the MLP's)
CNN_PRESETS = {
    ("mnist", "paper"): [VisionConfig("cnn", "cnn", widths=[128, 64, 64], dropout=0.1)],
    ("mnist", "quick"): [VisionConfig("cnn", "cnn", widths=[32, 32, 32], dropout=0.1)],
}
MLP_PRESETS = {
    ("mnist", budget): [VisionConfig("mlp", "mlp", widths=[512, 128, 32], dropout=0.1)]
    for budget in ("paper", "quick")
}


class MLP(nn.Module):
    """Dense -> ReLU -> BatchNorm -> Dropout per hidden layer (the paper: 512-128-32, 0.1).
    Images [B, C, H, W] (`shapes.image`) -> `shapes.n_classes` logits; `features`
    [B, widths[-1]]."""

    def __init__(self, cfg: VisionConfig, shapes: Shapes):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(_image(shapes))
        for w in cfg.widths:
            layers += [nn.Linear(width, w), nn.ReLU(), nn.BatchNorm1d(w), nn.Dropout(cfg.dropout)]
            width = w
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, shapes.n_classes)

    def features(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        """The last hidden layer: [B, widths[-1]] (`lengths` is ignored)."""
        return self.body(images)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        """Logits [B, n_classes] (`lengths` is ignored)."""
        return self.head(self.features(images))


class CNN(nn.Module):
    """3x3 conv -> BatchNorm -> ReLU -> 2x2 max-pool -> Dropout per layer (the paper: 128, 64,
    64 filters), global average pooling, a linear output. Images [B, C, H, W] (`shapes.image`)
    -> `shapes.n_classes` logits; `features` [B, widths[-1]]."""

    def __init__(self, cfg: VisionConfig, shapes: Shapes):
        super().__init__()
        layers: list[nn.Module] = []
        channels = _image(shapes)[0]
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
        self.head = nn.Linear(channels, shapes.n_classes)
        # channels-last convolutions (oneDNN on CPU, cuDNN on GPU): the quick scenario-2 grid
        # took 9.6 instead of 13 minutes on 2 CPU cores
        self.to(memory_format=torch.channels_last)

    def features(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        """The pooled last convolution: [B, widths[-1]] (`lengths` is ignored)."""
        return self.body(images.contiguous(memory_format=torch.channels_last))

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None):
        """Logits [B, n_classes] (`lengths` is ignored)."""
        return self.head(self.features(images))


def _image(shapes: Shapes) -> tuple[int, int, int]:
    """(channels, height, width) of the task's images; ValueError for a task without images."""
    if shapes.image is None:
        raise ValueError("an image model needs image inputs; this task's inputs are tokens")
    return shapes.image


# the CNN first: the order `ibkd train --help` and benchmarks list them in
register("cnn", VisionConfig, CNN, presets=CNN_PRESETS)
register("mlp", VisionConfig, MLP, presets=MLP_PRESETS)
