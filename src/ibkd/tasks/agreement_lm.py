"""The `lm` task: subject-verb agreement in a language model (Linzen et al. 2016; Abnar et al.
2020, scenario 1). The model reads `<bos>` + a sentence and predicts every next token (the
loss is over every non-pad target token); it trains on each distinct training sentence once
per epoch. Its agreement is whether the actual verb is more probable than its other-number
form at the verb's position.

With an LM text (`DataConfig.lm_text`, `ibkd.data.lm_text`) the model trains on every sentence
of the text's training split that is not a held-out sentence, its vocabulary is that text's,
its validation loss and perplexity are over the text's held-out sentences, and its agreement
is still scored on the agreement rows of the validation and test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ibkd.config import RunConfig
from ibkd.data import lm_text
from ibkd.data.batching import Encoded, encode, encode_sentences
from ibkd.data.prepare import RunData, agreement_rows, check_same, lm_sentences, rows_vocab
from ibkd.data.splits import Splits
from ibkd.data.verbs import other_form
from ibkd.data.vocab import UNK, Vocab, build_text_vocab
from ibkd.errors import IbkdError
from ibkd.evaluate import Features, infer
from ibkd.losses import masked_cross_entropy
from ibkd.predictions import AGREEMENT_KEYS
from ibkd.tasks import Shapes, register_task


@dataclass(frozen=True)
class AgreementLM:
    """The `lm` task (module note; `ibkd.tasks.Task`)."""

    name: str = "lm"
    description: str = "language-model"
    per_token: bool = True
    has_vocab: bool = True
    options: frozenset[str] = frozenset({"lm_text", "unk_signatures"})
    prediction_keys: tuple[str, ...] = ("label", "features", *AGREEMENT_KEYS, "sum_nll",
                                        "n_tokens", "verb_logprob", "other_logprob",
                                        "other_known")  # fmt: skip

    def prepare(self, cfg: RunConfig, vocab: Vocab | None = None) -> RunData:
        """The training rows' distinct sentences (or the LM text's training sentences) and the
        agreement splits, encoded as whole sentences; the vocabulary of the training rows or
        of the LM text (equal to `vocab` when one is given). IbkdError for unusable data."""
        d = cfg.data
        splits, train_rows = agreement_rows(d)
        if d.lm_text is not None:
            return _lm_text_data(cfg, splits, vocab)
        own = rows_vocab(train_rows, d, vocab)
        return RunData(
            own,
            encode(lm_sentences(train_rows), own, self.name),
            encode(splits.valid, own, self.name),
            {"test": encode(splits.test, own, self.name)},
        )

    def shapes(self, vocab: Vocab) -> Shapes:
        """Token inputs over `vocab`, one logit per vocabulary entry at every position."""
        return Shapes(n_classes=len(vocab), vocab_size=len(vocab), per_token=True)

    def predict(
        self, model: nn.Module, data: Encoded, vocab: Vocab, device: torch.device
    ) -> dict[str, np.ndarray]:
        """The agreement and perplexity predictions of every example (`predict`)."""
        return predict(model, data, vocab, device)


def predict(
    model: nn.Module, data: Encoded, vocab: Vocab, device: torch.device, batch_size: int = 256,
    features: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """A language model's per-example predictions on the agreement rows of `data`, in the
    format of `ibkd.predictions`: the rows' `meta()`; per sentence the summed next-token
    negative log-likelihood and token count; at the verb's position the log-probabilities of
    the actual verb and of its other-number form (`other_known` False where either is `<unk>`,
    both are one token, or both are unknown-word classes: a form outside a vocabulary with
    signatures is its signature, and `<unk-s>` against `<unk-ing>` says nothing) and, with
    `features`, the representation there [N, H]; with held-out text (`data.text`), its
    per-sentence sums (`text_nll`)."""
    n = len(data)
    rows = data.rows
    out: dict[str, np.ndarray] = data.meta()
    verb_ids = torch.tensor(vocab.encode([r.tokens[r.verb_index - 1] for r in rows]))
    others = [other_form(r.verb, r.verb_pos) for r in rows]
    other_ids = torch.tensor(vocab.encode(others))
    classes = torch.tensor(sorted(vocab.class_ids))
    both_classes = torch.isin(verb_ids, classes) & torch.isin(other_ids, classes)
    out["other_known"] = ((other_ids != UNK) & (verb_ids != UNK) & (other_ids != verb_ids)
                          & ~both_classes).numpy()  # fmt: skip
    for key in ("sum_nll", "verb_logprob", "other_logprob"):
        out[key] = np.zeros(n, dtype=np.float64)
    out["n_tokens"] = np.zeros(n, dtype=np.int64)
    feats = Features(n) if features else None
    for b in infer(model, data, device, batch_size):
        idx = b.index.numpy()
        nll = masked_cross_entropy(b.logits, b.targets, b.mask, "none")
        out["sum_nll"][idx] = nll.sum(1).double().cpu().numpy()
        out["n_tokens"][idx] = b.mask.sum(1).cpu().numpy()
        at = torch.arange(len(idx), device=device)
        pos = data.verb_input_index[b.index].to(device)
        logp = F.log_softmax(b.logits[at, pos], -1)
        out["verb_logprob"][idx] = logp[at, verb_ids[b.index].to(device)].cpu().numpy()
        out["other_logprob"][idx] = logp[at, other_ids[b.index].to(device)].cpu().numpy()
        if feats is not None:
            feats.put(idx, b.features[at, pos])
    if feats is not None:
        out |= feats.saved()
    if data.text is not None:
        out |= text_nll(model, data.text, device, batch_size)
    return out


def text_nll(
    model: nn.Module, text: Encoded, device: torch.device, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Per held-out sentence of an LM's text: `text_sum_nll` (summed next-token negative
    log-likelihood, nats, float64 [M]) and `text_n_tokens` (scored tokens, int64 [M])."""
    n = len(text)
    out = {"text_sum_nll": np.zeros(n, dtype=np.float64),
           "text_n_tokens": np.zeros(n, dtype=np.int64)}  # fmt: skip
    for b in infer(model, text, device, batch_size):
        idx = b.index.numpy()
        nll = masked_cross_entropy(b.logits, b.targets, b.mask, "none")
        out["text_sum_nll"][idx] = nll.sum(1).double().cpu().numpy()
        out["text_n_tokens"][idx] = b.mask.sum(1).cpu().numpy()
    return out


def _lm_text_data(cfg: RunConfig, splits: Splits, vocab: Vocab | None) -> RunData:
    """A language model's data with an LM text (the module note): the text's training
    sentences less every held-out one (its own validation and test sentences and those of the
    agreement rows' validation and test splits); the vocabulary is that whole text's, and
    with `max_train_rows` the first that many sentences are trained on."""
    d = cfg.data
    text = lm_text.read_text(d.lm_text)
    held = [tuple(r.tokens) for r in (*splits.valid, *splits.test)]
    sentences, _ = lm_text.training_sentences(text, held)
    if not sentences:
        raise IbkdError(f"--lm-text {d.lm_text}: no training sentences")
    sig = d.unk_signatures
    own = build_text_vocab(sentences, max_size=d.vocab_size, signatures=sig)
    sentences = sentences[: d.max_train_rows] if d.max_train_rows else sentences
    check_same(vocab, own, lambda n: build_text_vocab(sentences, max_size=n, signatures=sig),
               d.vocab_size)  # fmt: skip

    def rows_and_text(rows, held_out):
        out = encode(rows, own, "lm")
        out.text = encode_sentences(held_out, own)
        return out

    return RunData(
        own,
        encode_sentences(sentences, own),
        rows_and_text(splits.valid, text.valid),
        {"test": rows_and_text(splits.test, text.test)},
    )


TASK = register_task(AgreementLM())
