"""The `cls` task: subject-verb agreement as classification (Linzen et al. 2016; Abnar et al.
2020, scenario 1). The input is `<bos>` + the sentence up to the verb, the label the verb's
number (VBZ 0, VBP 1; `ibkd.data.batching.encode`); the loss is one cross-entropy per example.
The vocabulary is the training rows'; a transfer set (`DataConfig.transfer`: the prefix before
every VBZ/VBP of the training corpus) adds training inputs. Predictions: the two classes'
probabilities, the readout representation and the agreement groupings (distance, attractors)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ibkd.config import RunConfig
from ibkd.data.batching import Encoded, concat, encode, encode_prefixes
from ibkd.data.prepare import RunData, agreement_rows, rows_vocab
from ibkd.data.splits import default_dir
from ibkd.data.transfer import read_transfer
from ibkd.data.vocab import Vocab
from ibkd.evaluate import class_predictions
from ibkd.predictions import AGREEMENT_KEYS
from ibkd.tasks import Shapes, register_task

N_CLASSES = 2  # the verb's number: VBZ, VBP


@dataclass(frozen=True)
class AgreementClassification:
    """The `cls` task (module note; `ibkd.tasks.Task`)."""

    name: str = "cls"
    description: str = "classification"
    per_token: bool = False
    has_vocab: bool = True
    options: frozenset[str] = frozenset({"aux_lm", "transfer", "calibration", "unk_signatures"})
    prediction_keys: tuple[str, ...] = ("label", "features", *AGREEMENT_KEYS, "probs")

    def prepare(self, cfg: RunConfig, vocab: Vocab | None = None) -> RunData:
        """The agreement splits encoded as prefixes labelled by the verb's number, the training
        set extended with the transfer set's new prefixes; the vocabulary of the training rows
        (equal to `vocab` when one is given). IbkdError for unusable data."""
        d = cfg.data
        splits, train_rows = agreement_rows(d)
        own = rows_vocab(train_rows, d, vocab)
        train = encode(train_rows, own, self.name)
        if d.transfer is not None:
            train = concat(train, transfer_examples(d.transfer, train_rows, own, d.max_train_rows))
        return RunData(
            own,
            train,
            encode(splits.valid, own, self.name),
            {"test": encode(splits.test, own, self.name)},
        )

    def shapes(self, vocab: Vocab) -> Shapes:
        """Token inputs over `vocab`, 2 logits per example (VBZ, VBP)."""
        return Shapes(n_classes=N_CLASSES, vocab_size=len(vocab))

    def predict(
        self, model: nn.Module, data: Encoded, vocab: Vocab, device: torch.device
    ) -> dict[str, np.ndarray]:
        """P(VBZ), P(VBP), the readout representation and the groupings of every example
        (`ibkd.evaluate.class_predictions`)."""
        return class_predictions(model, data, device)


def transfer_examples(spec: str, train_rows, vocab: Vocab, limit: int | None = None) -> Encoded:
    """The transfer prefixes that are not already training examples (the first `limit`),
    encoded for classification (`spec`: `default` for the shipped set, or a file)."""
    path = default_dir() / "transfer.tsv.gz" if spec == "default" else Path(spec)
    seen = {tuple(r.tokens[: r.verb_index - 1]) for r in train_rows}
    extra = [p for p in read_transfer(path) if p.tokens not in seen][:limit]
    return encode_prefixes([p.tokens for p in extra], [p.label for p in extra], vocab)


TASK = register_task(AgreementClassification())
