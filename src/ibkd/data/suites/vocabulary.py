"""A suite's words in a model's vocabulary, mapped the way the model's training data mapped
rare words, and the items that mapping leaves unscorable.

Three conventions:
- `unk`: a word outside the vocabulary is `<unk>` (PTB's convention; the shipped default data).
- `signature`: a word outside the vocabulary is its unknown-word signature (`<unk-s>`, ...;
  `ibkd.data.vocab.unk_signature`), in a vocabulary built with them (`--unk-signatures`).
- `pos`: a word outside the vocabulary is its POS tag (Linzen, Dupoux & Goldberg 2016, whose
  `agr_50_mostcommon_10K` file keeps the 10K most frequent words and writes the rest as their
  tag, so that a rare plural noun keeps its number: NN/NNS, VBZ/VBP, ...). The tags come from
  the parser `ibkd data build` uses (spaCy's tagger, on the whole sentence); a tag the
  vocabulary lacks, or any word when spaCy is not installed, becomes `<unk>`.
The convention is read off the vocabulary: it is `pos` when NN, NNS, VBZ and VBP are entries,
`signature` when the signature tokens are.

An item whose two alternatives become identical after mapping cannot be scored (both verbs of
"All mirrors disgust / disgusts Suzanne." are `<unk>`): it is skipped and counted, as is, with
signatures, an item whose two verb forms are both unknown-word classes (`<unk-s>` against
`<unk-ing>`). A verb given
as a placeholder tag (`VBZ`, as Linzen's data writes a rare verb) is compared with the other
placeholder (`VBP`); see `ibkd.data.verbs.other_form`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ibkd.data.build import load_spacy
from ibkd.data.suites.item import SENTENCE, SuiteItem, pair_number
from ibkd.data.verbs import other_form
from ibkd.data.vocab import CLASS_TOKENS, SPECIALS, UNK, Vocab
from ibkd.errors import IbkdError

UNK_STYLE, POS_STYLE, SIGNATURE_STYLE = "unk", "pos", "signature"
POS_PLACEHOLDERS = ("NN", "NNS", "VBZ", "VBP")
UNK_TOKEN = SPECIALS[UNK]
Tagger = Callable[[Sequence[tuple[str, ...]]], list[list[str]]]

SKIP_SENTENCE_PAIR = "a sentence pair only (scored by language models)"
SKIP_NUMBER = "number of the verb form unknown"
SKIP_IDENTICAL = "alternatives identical after vocabulary mapping"
SKIP_NO_WORD = "both verb forms outside the vocabulary"


def oov_style(vocab: Vocab) -> str:
    """`pos` when the vocabulary holds the POS placeholders NN, NNS, VBZ, VBP (data built with
    Linzen's convention), `signature` when it holds the unknown-word signatures, else `unk`."""
    if all(t in vocab for t in POS_PLACEHOLDERS):
        return POS_STYLE
    return SIGNATURE_STYLE if vocab.has_signatures else UNK_STYLE


@dataclass
class Coverage:
    """Word tokens of the suite's sentences (the grammatical one, and each wrong form): how many
    are in the vocabulary, written as a POS tag, as an unknown-word signature other than
    `<unk>`, or `<unk>`. `tagger`: what gave the tags."""

    tokens: int = 0
    known: int = 0
    as_pos: int = 0
    as_signature: int = 0
    as_unk: int = 0
    style: str = UNK_STYLE
    tagger: str = "none"

    def as_dict(self) -> dict:
        """The counts, their shares of `tokens`, the convention and the tagger (JSON-ready)."""
        n = max(1, self.tokens)
        return dataclasses.asdict(self) | {
            "known_share": self.known / n,
            "pos_share": self.as_pos / n,
            "signature_share": self.as_signature / n,
            "unk_share": self.as_unk / n,
        }


@dataclass
class MappedSuite:
    """The scorable items with their words mapped (`items`), what was skipped and why
    (`skipped`: reason -> count; `skipped_items`: (suite, index) of each skipped item -> its
    reason), and the vocabulary coverage."""

    items: list[SuiteItem]
    skipped: Counter[str] = field(default_factory=Counter)
    coverage: Coverage = field(default_factory=Coverage)
    skipped_items: dict[tuple[str, int], str] = field(default_factory=dict)

    def skip(self, item: SuiteItem, reason: str) -> None:
        """Count `item` as skipped for `reason`."""
        self.skipped[reason] += 1
        self.skipped_items[(item.suite, item.index)] = reason


def spacy_tagger(nlp=None) -> Tagger | None:
    """A tagger from the builder's spaCy pipeline (PTB tags of pre-tokenised sentences); None
    when spaCy or its model is not installed."""
    if nlp is None:
        try:
            nlp = load_spacy()
        except IbkdError:
            return None
    from spacy.tokens import Doc

    def tag(sentences: Sequence[tuple[str, ...]]) -> list[list[str]]:
        with nlp.select_pipes(enable=[p for p in ("tok2vec", "tagger") if p in nlp.pipe_names]):
            docs = nlp.pipe(Doc(nlp.vocab, words=list(s)) for s in sentences)
            return [[t.tag_ for t in doc] for doc in docs]

    return tag


class _Mapper:
    """Maps token sequences, tagging sentences (once each) only where a word is unknown."""

    def __init__(self, vocab: Vocab, style: str, tagger: Tagger | None):
        self.vocab, self.style, self.tagger = vocab, style, tagger
        self.tags: dict[tuple[str, ...], list[str]] = {}
        self.coverage = Coverage(style=style, tagger="spacy" if tagger else "none")

    def prepare(self, sentences: list[tuple[str, ...]]) -> None:
        """Tag, in one batch, the sentences holding a word outside the vocabulary."""
        if self.style != POS_STYLE or self.tagger is None:
            return
        todo = list(dict.fromkeys(
            s for s in sentences if s not in self.tags and any(w not in self.vocab for w in s)
        ))  # fmt: skip
        for s, tags in zip(todo, self.tagger(todo)):
            self.tags[s] = tags

    def word(self, sentence: tuple[str, ...], i: int, count: bool) -> str:
        """Word `i` of `sentence` as the training data wrote it (counted when `count`)."""
        w = sentence[i]
        if w in self.vocab:
            self.coverage.known += count
            out = w
        else:
            tag = self.tags.get(sentence, [None] * len(sentence))[i]
            if self.style == POS_STYLE:
                out = tag if tag in self.vocab else UNK_TOKEN
                self.coverage.as_pos += count and out != UNK_TOKEN
            else:
                out = self.vocab.unknown_token(w) if self.style == SIGNATURE_STYLE else UNK_TOKEN
                self.coverage.as_signature += count and out != UNK_TOKEN
            self.coverage.as_unk += count and out == UNK_TOKEN
        self.coverage.tokens += count
        return out

    def sentence(self, s: tuple[str, ...]) -> tuple[str, ...]:
        """Every word of `s` mapped (not counted)."""
        return tuple(self.word(s, i, False) for i in range(len(s)))

    def count(self, s: tuple[str, ...], skip: slice) -> None:
        """Count the words of `s` outside `skip` (the forms are counted where mapped)."""
        for i in range(len(s)):
            if not skip.start <= i < skip.stop:
                self.word(s, i, True)


def _full(prefix: tuple[str, ...], form: tuple[str, ...] | None) -> tuple[str, ...]:
    return prefix + (form or ())


def map_suite(
    items: Sequence[SuiteItem], vocab: Vocab, setup: str, *, style: str | None = None,
    tagger: Tagger | None = None,
) -> MappedSuite:  # fmt: skip
    """Map `items` into `vocab` for scoring in `setup` ("cls" or "lm").

    `style`: `unk`, `pos` or `signature` (default: `oov_style(vocab)`); `tagger` gives POS tags
    for the `pos` style (default: spaCy's, when installed). Skipped, with the reason counted:
    sentence-only pairs in the classification setup, items whose verb number cannot be told
    (classification), items whose two alternatives are identical after mapping, and (signature
    convention) items whose two one-word forms are both unknown-word classes. Linzen-format
    items (no wrong form) get the other-number form of their verb (`other_form`: `VBZ` <->
    `VBP` for a placeholder). Returns the mapped items with `number` filled in where it is known."""
    style = style or oov_style(vocab)
    if style == POS_STYLE and tagger is None:
        tagger = spacy_tagger()
    m = _Mapper(vocab, style, tagger)
    out = MappedSuite([], coverage=m.coverage)
    todo = []
    for it in items:
        number = it.number
        if number is None and it.bad:
            number = pair_number(it.good[0], it.bad[0])
        if setup == "cls" and it.kind == SENTENCE:
            out.skip(it, SKIP_SENTENCE_PAIR)
        elif setup == "cls" and number is None:
            out.skip(it, SKIP_NUMBER)
        else:
            bad = it.bad or ((other_form(it.good[0], number),) if number else None)
            todo.append((it, number, bad))
    m.prepare(
        [it.sentence_good or _full(it.prefix, it.good) for it, _, _ in todo]
        + [it.sentence_bad or _full(it.prefix_bad or it.prefix, bad) for it, _, bad in todo]
    )
    for it, number, bad in todo:
        good_s = it.sentence_good or _full(it.prefix, it.good)
        bad_s = it.sentence_bad or _full(it.prefix_bad or it.prefix, bad)
        prefix_bad = it.prefix_bad if it.prefix_bad is not None else it.prefix
        mapped = dataclasses.replace(
            it,
            prefix=_part(m, good_s, 0, it.prefix, ()),
            good=_part(m, good_s, len(it.prefix), it.good, it.prefix, count=True),
            bad=None if bad is None else _part(m, bad_s, len(prefix_bad), bad, prefix_bad,
                                               count=True),
            prefix_bad=None if it.prefix_bad is None else _part(m, bad_s, 0, it.prefix_bad, ()),
            sentence_good=None if it.sentence_good is None else m.sentence(good_s),
            sentence_bad=None if it.sentence_bad is None else m.sentence(bad_s),
            number=number,
        )  # fmt: skip
        m.count(good_s, skip=slice(len(it.prefix), len(it.prefix) + len(it.good)))
        if _identical(mapped, setup):
            out.skip(it, SKIP_IDENTICAL)
        elif style == SIGNATURE_STYLE and _both_classes(mapped):
            out.skip(it, SKIP_NO_WORD)
        else:
            out.items.append(mapped)
    return out


def _part(
    m: _Mapper, sentence: tuple[str, ...], start: int, part: tuple[str, ...],
    before: tuple[str, ...], count: bool = False,
) -> tuple[str, ...]:  # fmt: skip
    """`part` mapped in the context of `sentence`, where it sits at `start`; otherwise (a suite
    whose sentence differs from prefix + form) in the context of `before` + `part`."""
    if sentence[start : start + len(part)] != part:
        sentence, start = before + part, len(before)
        m.prepare([sentence])
    return tuple(m.word(sentence, i, count) for i in range(start, start + len(part)))


def _both_classes(it: SuiteItem) -> bool:
    """Whether both one-word forms of a mapped item are unknown-word classes (`<unk>` or a
    signature): comparing `<unk-s>` with `<unk-ing>` (`brings` / `bring`, both rare) says
    nothing about agreement, so such an item is not scored."""
    return bool(it.bad) and len(it.good) == len(it.bad) == 1 and {
        it.good[0], it.bad[0]} <= set(CLASS_TOKENS)  # fmt: skip


def _identical(it: SuiteItem, setup: str) -> bool:
    """Whether the two alternatives an item is scored on are the same token sequences: the
    prefixes (classification; only two-prefix items can collapse), the whole sentences (LM,
    where both are given) or the two forms after the prefix (LM, unless both are `<unk>`)."""
    if setup == "cls":
        return it.prefix_bad is not None and it.prefix_bad == it.prefix
    if it.sentence_good is not None and it.sentence_bad is not None and it.bad:
        return it.sentence_good == it.sentence_bad
    # forms compared at one position: two `<unk>` forms are left to the scorer, which counts
    # every item with a form out of the vocabulary (as the LM test-split metric does)
    return it.good == it.bad != (UNK_TOKEN,) and (
        it.prefix_bad is None or it.prefix_bad == it.prefix
    )
