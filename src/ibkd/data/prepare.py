"""A run's data, ready to train on: `prepare_data` asks the run's task (`ibkd.tasks`) for it;
`RunData` is what every task gives (vocabulary, training, validation and test sets, encoded by
`ibkd.data.batching`). The agreement tasks (`cls`, `lm`) share the pieces here: their splits
(`agreement_rows`), a vocabulary built from the training rows and checked against a teacher's
(`rows_vocab`, `check_same`), and the distinct sentences a language model trains on
(`lm_sentences`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ibkd.config import DataConfig, RunConfig
from ibkd.data.batching import Encoded, ImageSet
from ibkd.data.linzen import AgreementRow
from ibkd.data.splits import load_splits
from ibkd.data.vocab import Vocab, build_vocab
from ibkd.errors import IbkdError
from ibkd.tasks import get_task


@dataclass
class RunData:
    """A run's encoded data: vocabulary (None for images), training and validation sets, and
    the test sets by name ("test", and for MNIST its shifted versions). A task's own kind of
    set works too: anything with `__len__`, `lengths`, `meta()`, `rows` and `batch(index)`."""

    vocab: Vocab | None
    train: Encoded | ImageSet
    valid: Encoded | ImageSet
    tests: dict[str, Encoded | ImageSet]


def prepare_data(cfg: RunConfig, vocab: Vocab | None = None) -> RunData:
    """The run's data, as its task loads it (`ibkd.tasks`: `get_task(cfg.setup).prepare`):
    the splits loaded, the vocabulary built from the training split (or checked to be the
    given one, e.g. the teacher's) and everything encoded. Raises IbkdError for unusable data,
    an unknown setup or a vocabulary that differs from `vocab`."""
    return get_task(cfg.setup).prepare(cfg, vocab)


def agreement_rows(d: DataConfig):
    """The agreement splits of `d` (`ibkd.data.splits.Splits`) and the rows the run trains
    on (the first `max_train_rows`); IbkdError when there are no training or validation
    rows."""
    splits = load_splits(d.data, seed=d.split_seed, fractions=(d.train_fraction, d.valid_fraction))
    train_rows = splits.train[: d.max_train_rows] if d.max_train_rows else splits.train
    if not train_rows or not splits.valid:
        raise IbkdError(
            f"--data {d.data}: needs training and validation rows "
            f"(got {len(train_rows)} and {len(splits.valid)})"
        )
    return splits, train_rows


def rows_vocab(train_rows: list[AgreementRow], d: DataConfig, vocab: Vocab | None) -> Vocab:
    """The vocabulary of the training rows (capped at `d.vocab_size`, with unknown-word
    signatures when `d.unk_signatures`), refused when a given
    `vocab` (the teacher's) differs from it (`check_same`)."""
    sig = d.unk_signatures
    own = build_vocab(train_rows, max_size=d.vocab_size, signatures=sig)
    check_same(vocab, own, lambda n: build_vocab(train_rows, max_size=n, signatures=sig),
               d.vocab_size)  # fmt: skip
    return own


def check_same(
    vocab: Vocab | None, own: Vocab, capped: Callable[[int], Vocab], cap: int | None
) -> None:
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
