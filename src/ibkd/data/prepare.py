"""A run's data, ready to train on: the splits loaded, the vocabulary built from the training
split (or checked against the teacher's), the transfer set added, everything encoded for the
run's setup (`ibkd.data.batching`); for images, MNIST and its shifted test sets.

A language model with an LM text (`DataConfig.lm_text`, `ibkd.data.lm_text`) trains on every
sentence of the text's training split that is not a held-out sentence, its vocabulary is that
text's, its validation loss and perplexity are over the text's held-out sentences, and its
agreement is still scored on the agreement rows of the validation and test splits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ibkd.config import RunConfig
from ibkd.data import lm_text
from ibkd.data.batching import (
    Encoded,
    ImageSet,
    concat,
    encode,
    encode_prefixes,
    encode_sentences,
)
from ibkd.data.linzen import AgreementRow
from ibkd.data.mnist import image_sets
from ibkd.data.splits import default_dir, load_splits
from ibkd.data.transfer import read_transfer
from ibkd.data.vocab import Vocab, build_text_vocab, build_vocab
from ibkd.errors import IbkdError


@dataclass
class RunData:
    """A run's encoded data: vocabulary (None for images), training and validation sets, and
    the test sets by name ("test", and for images its shifted versions)."""

    vocab: Vocab | None
    train: Encoded | ImageSet
    valid: Encoded | ImageSet
    tests: dict[str, Encoded | ImageSet]


def prepare_data(cfg: RunConfig, vocab: Vocab | None = None) -> RunData:
    """Load the splits, build the vocabulary from the training split (or check that a given
    one, e.g. the teacher's, is the same) and encode everything for the run's setup. Raises
    IbkdError for unusable data or a vocabulary that differs from `vocab`."""
    d = cfg.data
    if cfg.setup == "mnist":
        return RunData(None, *image_sets(d.data, d.max_train_rows))
    splits = load_splits(d.data, seed=d.split_seed, fractions=(d.train_fraction, d.valid_fraction))
    train_rows = splits.train[: d.max_train_rows] if d.max_train_rows else splits.train
    if not train_rows or not splits.valid:
        raise IbkdError(
            f"--data {d.data}: needs training and validation rows "
            f"(got {len(train_rows)} and {len(splits.valid)})"
        )
    if cfg.setup == "lm" and d.lm_text is not None:
        return _lm_text_data(cfg, splits, vocab)
    own = build_vocab(train_rows, max_size=d.vocab_size)
    _check_same(vocab, own, lambda n: build_vocab(train_rows, max_size=n), d.vocab_size)
    train = encode(lm_sentences(train_rows) if cfg.setup == "lm" else train_rows, own, cfg.setup)
    if d.transfer is not None:
        extra = transfer_examples(d.transfer, train_rows, own, cfg.setup, d.max_train_rows)
        train = concat(train, extra)
    return RunData(
        own,
        train,
        encode(splits.valid, own, cfg.setup),
        {"test": encode(splits.test, own, cfg.setup)},
    )


def _lm_text_data(cfg: RunConfig, splits, vocab: Vocab | None) -> RunData:
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
    own = build_text_vocab(sentences, max_size=d.vocab_size)
    sentences = sentences[: d.max_train_rows] if d.max_train_rows else sentences
    _check_same(vocab, own, lambda n: build_text_vocab(sentences, max_size=n), d.vocab_size)

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


def _check_same(vocab: Vocab | None, own: Vocab, capped, cap: int | None) -> None:
    """Refuse a given (teacher's) vocabulary that differs from the run's own, saying so when
    only the vocabulary cap differs (`capped(n)`: the run's data's vocabulary of n entries;
    `cap`: the run's own cap, None or 0 for every word)."""
    if vocab is not None and vocab != own:
        if capped(len(vocab)) == vocab:  # same data, another cap
            raise IbkdError(
                f"the vocabulary cap (--vocab-size, data.vocab_size) differs: the teacher's "
                f"vocabulary is this data's {len(vocab)} most frequent entries, the student's "
                f"cap {cap or 0} gives {len(own)} (0: every word); a student shares "
                "its teacher's cap"
            )
        raise IbkdError(
            f"the teacher's vocabulary ({len(vocab)} entries, fingerprint {vocab.fingerprint}) "
            f"differs from the one of the student's training data ({len(own)} entries, "
            f"{own.fingerprint}): teacher and student must be trained on the same data"
        )


def lm_sentences(rows: list[AgreementRow]) -> list[AgreementRow]:
    """The rows of distinct sentences, each sentence's first row: a language model trains on
    each training sentence once per epoch, however many of its verbs are agreement rows (the
    builder writes one row per verb; Linzen et al.'s file has one row per sentence)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for r in rows:
        key = tuple(r.tokens)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def transfer_examples(
    spec: str, train_rows, vocab: Vocab, setup: str, limit: int | None = None
) -> Encoded:
    """The transfer prefixes that are not already training examples (the first `limit`),
    encoded for classification (`spec`: `default` for the shipped set, or a file)."""
    if setup != "cls":
        raise IbkdError("--transfer: transfer sets are for the classification setup")
    path = default_dir() / "transfer.tsv.gz" if spec == "default" else Path(spec)
    seen = {tuple(r.tokens[: r.verb_index - 1]) for r in train_rows}
    extra = [p for p in read_transfer(path) if p.tokens not in seen][:limit]
    return encode_prefixes([p.tokens for p in extra], [p.label for p in extra], vocab)
