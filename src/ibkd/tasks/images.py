"""Image classification tasks: `ImageClassification`, and its one built-in instance `mnist`
(Abnar et al. 2020, scenario 2: MNIST, 1 x 28 x 28 images of 10 digits, tested also on its
scaled, translated, rotated and sheared test sets; `ibkd.data.mnist`).

An image task has no vocabulary; its sets are `ibkd.data.batching.ImageSet`s (images
[N, C, H, W] float32, labels [N]); the loss is one cross-entropy per image; its predictions are
the classes' probabilities and the penultimate representation. A new image data set is one
`ImageClassification` with its own shapes and loader, registered (docs/extending.md, "Adding a
task")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ibkd.config import DataConfig, RunConfig
from ibkd.data.batching import ImageSet
from ibkd.data.mnist import image_sets
from ibkd.data.prepare import RunData
from ibkd.errors import IbkdError
from ibkd.evaluate import class_predictions
from ibkd.tasks import Shapes, register_task

Loader = Callable[[DataConfig], tuple[ImageSet, ImageSet, dict[str, ImageSet]]]
"""A run's data settings -> (train, valid, test sets by name) of an image task."""


@dataclass(frozen=True)
class ImageClassification:
    """An image classification task (module note; `ibkd.tasks.Task`): images of `image`
    (channels, height, width) in `n_classes` classes, loaded by `load` from the run's data
    settings. `prepare` refuses sets whose images have another shape or labels outside
    [0, n_classes)."""

    name: str
    image: tuple[int, int, int]
    n_classes: int
    load: Loader
    description: str = "image classification"
    per_token: bool = False
    has_vocab: bool = False
    options: frozenset[str] = frozenset({"calibration"})
    prediction_keys: tuple[str, ...] = ("label", "features", "probs")

    def prepare(self, cfg: RunConfig, vocab: None = None) -> RunData:
        """The task's sets from `load(cfg.data)`, their shapes and labels checked (IbkdError
        naming the set otherwise)."""
        train, valid, tests = self.load(cfg.data)
        for what, split in [("train", train), ("valid", valid), *tests.items()]:
            shape = tuple(split.images.shape[1:])
            if shape != tuple(self.image):
                raise IbkdError(
                    f"--data {cfg.data.data} ({what}): images of shape {list(shape)}, "
                    f"expected {list(self.image)} for the {self.name} setup"
                )
            labels = split.labels
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.n_classes):
                raise IbkdError(
                    f"--data {cfg.data.data} ({what}): labels outside [0, {self.n_classes}) "
                    f"for the {self.name} setup"
                )
        return RunData(None, train, valid, tests)

    def shapes(self, vocab: None = None) -> Shapes:
        """Image inputs of `image`, `n_classes` logits per image."""
        return Shapes(n_classes=self.n_classes, image=tuple(self.image))

    def predict(
        self, model: nn.Module, data: ImageSet, vocab: None, device: torch.device
    ) -> dict[str, np.ndarray]:
        """The classes' probabilities, the representation and the label of every image
        (`ibkd.evaluate.class_predictions`)."""
        return class_predictions(model, data, device)


def mnist_sets(d: DataConfig) -> tuple[ImageSet, ImageSet, dict[str, ImageSet]]:
    """MNIST's sets for the data settings `d` (`ibkd.data.mnist.image_sets`: the first
    `max_train_rows` training images, the last 5,000 for validation, the test set and its
    shifted versions)."""
    return image_sets(d.data, d.max_train_rows)


MNIST = register_task(
    ImageClassification("mnist", (1, 28, 28), 10, mnist_sets, description="MNIST image")
)
