"""The unlabelled text pool and the large transfer set made from it.

**The pool** is every sentence of the corpora a data set is built from, no label needed: one
sentence a line, `source<TAB>tokens`, the tokens as the parser should see them (Brown's own
words, nlp-corpus's as spaCy tokenizes them, PTB's text as it is, with `<unk>` and `N`).
`ibkd data build --pool-out` writes one corpus's pool; `ibkd data merge` joins the parts'
pools (`pool.tsv.gz` in a part's folder, or `--pool FILE`), drops repeated sentences and every
sentence of the merged data's valid and test splits (`merge_pools`).

**The transfer set** (`build_transfer`, `ibkd data transfer`): the pool parsed with spaCy,
made PTB-like, and the prefix before every present-tense verb (VBZ/VBP, by the tagger)
written in the transfer-file format (`data/transfer.py`): a teacher labels each prefix for its
student, so no gold label is needed (the verb's tag is kept as the silver label the format
has). A prefix is *hard* when the parser finds a common-noun subject of that verb (Linzen's
procedure, `data/build.extract`) with, between subject and verb, an attractor (a noun of the
other number), a relative clause, or a prepositional phrase (`prep` / `case`). The set can be
enriched in hard prefixes (each written `hard_repeat` times: a weight in expectation under
shuffled batches, with no change to the loss) and thinned in easy ones (`easy_share`, chosen by
a hash of the prefix, so the same on every run).

**Kept out**: every test suite and every held-out sentence. A pool sentence equal to a suite
sentence (Marvin & Linzen's templates, which the shipped suite spells out in full, and any
suite given) or to a sentence of the data's valid or test split is dropped; so is any prefix
equal to a suite item's prefix or to the prefix before a held-out row's verb. Sentences are
compared as PTB-like lower-cased tokens (`sentence_key`). The counts dropped are reported.
"""

from __future__ import annotations

import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ibkd.data.build import (
    DEFAULT_PLACEHOLDERS,
    KeptWords,
    Token,
    extract,
    load_spacy,
    parse_text,
)
from ibkd.data.corpora import ptb_style, ptb_word
from ibkd.data.linzen import VERB_POS
from ibkd.data.splits import load_splits
from ibkd.data.suites import read_suite, suite_name
from ibkd.data.transfer import HEADER as TRANSFER_HEADER
from ibkd.data.transfer import POOL_HEADER, pool_line, read_pool
from ibkd.errors import IbkdError
from ibkd.files import atomic_write_all, check_output

POOL_FILES = ("pool.tsv.gz", "pool.tsv")  # a data folder's pool, as `merge` looks for it
PP_LABELS = {"prep", "case"}  # spaCy's and UD's label of a preposition
HARD_KINDS = ("attractor", "relative clause", "prepositional phrase")


def sentence_key(tokens: Iterable[str]) -> tuple[str, ...]:
    """Tokens compared as the data writes `orig_sentence`: PTB-like (`ptb_word`: lower-cased,
    numbers `N`, punctuation dropped), PTB's placeholders verbatim."""
    out = []
    for w in tokens:
        k = w if w in DEFAULT_PLACEHOLDERS else ptb_word(w)
        if k is not None:
            out.append(k)
    return tuple(out)


@dataclass
class Exclusions:
    """What a pool must not give: whole sentences (`sentences`) and prefixes before a scored
    verb (`prefixes`), as `sentence_key`s, each with where it came from (`what`: e.g.
    "suite marvin-linzen", "valid/test split")."""

    sentences: dict[tuple[str, ...], str] = field(default_factory=dict)
    prefixes: dict[tuple[str, ...], str] = field(default_factory=dict)

    def add_rows(self, rows: Iterable, what: str) -> None:
        """Every row's sentence (`orig_sentence`) and the prefix before its verb."""
        for r in rows:
            words = r.orig_sentence.split(" ")
            self.sentences.setdefault(sentence_key(words), what)
            self.prefixes.setdefault(sentence_key(words[: r.verb_index - 1]), what)

    def add_suite(self, items: Iterable, what: str) -> None:
        """Every suite item's sentences (the prefix with each verb form, the whole sentences
        where the suite has them) and its prefixes."""
        for it in items:
            for prefix in (it.prefix, it.prefix_bad):
                if prefix:
                    self.prefixes.setdefault(sentence_key(prefix), what)
                    for form in (it.good, it.bad):
                        if form:
                            self.sentences.setdefault(sentence_key(prefix + form), what)
            for sent in (it.sentence_good, it.sentence_bad):
                if sent:
                    self.sentences.setdefault(sentence_key(sent), what)


def exclusions_for(data: str | None, suites: Sequence[str]) -> Exclusions:
    """The exclusions of a data set's valid and test splits (`data`: `default`, a folder or a
    file, as `--data`; None for none) and of the given suites (names or paths, as `--suite`)."""
    ex = Exclusions()
    if data is not None:
        splits = load_splits(data)
        ex.add_rows(splits.valid, "valid split")
        ex.add_rows(splits.test, "test split")
    for suite in suites:
        ex.add_suite(read_suite(suite), f"suite {suite_name(suite)}")
    return ex


# ---------------------------------------------------------------------------------------------
# merging pools


@dataclass
class PoolReport:
    """What merging pools read and wrote: sentences read, repeats dropped, held-out
    sentences dropped (by where they are held out), sentences written (by source)."""

    read: int = 0
    repeats: int = 0
    held_out: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for the terminal."""
        held = ", ".join(f"{n:,} of the {w}" for w, n in sorted(self.held_out.items()))
        return (
            f"{sum(self.written.values()):,} pool sentences ("
            + ", ".join(f"{s} {n:,}" for s, n in self.written.items())
            + f") of {self.read:,} read; {self.repeats:,} repeats dropped; "
            + (f"held out: {held}" if held else "no held-out sentence found")
        )


def merge_pools(
    pools: Sequence[str | os.PathLike], out: str | os.PathLike, exclusions: Exclusions,
    *, force: bool = False,
) -> PoolReport:  # fmt: skip
    """Join pool files into `out`: each sentence once (the first time it is seen), without
    any sentence `exclusions` holds (a merged data set's valid and test rows). Written
    atomically. Raises IbkdError for a bad pool line or output path."""
    check_output(out, "--out (pool)", force=force)
    report = PoolReport()
    seen: set[tuple[str, ...]] = set()
    with atomic_write_all([out]) as (f,):
        f.write(POOL_HEADER + "\n")
        for path in pools:
            for s in read_pool(path):
                report.read += 1
                key = sentence_key(s.tokens)
                if key in exclusions.sentences:
                    report.held_out[exclusions.sentences[key]] += 1
                    continue
                if key in seen or not key:
                    report.repeats += 1
                    continue
                seen.add(key)
                f.write(pool_line(s.source, s.tokens))
                report.written[s.source] += 1
    return report


def part_pool(folder: str | os.PathLike) -> Path | None:
    """The pool file a data folder holds (`pool.tsv.gz` or `pool.tsv`), or None."""
    for name in POOL_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


# ---------------------------------------------------------------------------------------------
# the transfer set


@dataclass
class TransferReport:
    """What `build_transfer` read and wrote: pool sentences, those dropped as a suite's or a
    held-out sentence and prefixes dropped likewise (by where), prefixes found (by VBZ/VBP),
    hard ones (by kind; a prefix may be of several), easy ones left out by `easy_share`, and
    lines written (hard prefixes counted `hard_repeat` times)."""

    sentences: int = 0
    dropped_sentences: Counter[str] = field(default_factory=Counter)
    dropped_prefixes: Counter[str] = field(default_factory=Counter)
    prefixes: int = 0
    by_verb: Counter[str] = field(default_factory=Counter)
    hard: int = 0
    hard_kinds: Counter[str] = field(default_factory=Counter)
    easy_left_out: int = 0
    written: int = 0

    def summary(self) -> str:
        """Lines for the terminal."""

        def dropped(c: Counter[str]) -> str:
            return ", ".join(f"{n:,} ({w})" for w, n in sorted(c.items())) or "none"

        return (
            f"{self.sentences:,} pool sentences; dropped as a test-suite or held-out sentence: "
            f"{dropped(self.dropped_sentences)}\n"
            f"{self.prefixes:,} prefixes before a present-tense verb (VBZ {self.by_verb['VBZ']:,}"
            f", VBP {self.by_verb['VBP']:,}); dropped as a suite's or held-out prefix: "
            f"{dropped(self.dropped_prefixes)}\n"
            f"{self.hard:,} hard (" + ", ".join(f"{k} {self.hard_kinds[k]:,}" for k in HARD_KINDS)
            + f"); {self.easy_left_out:,} easy ones left out; {self.written:,} lines written"
        )  # fmt: skip


def hard_kinds(sent: Sequence[Token]) -> dict[int, set[str]]:
    """The hard configurations of a parsed (PTB-like) sentence: verb index (1-based) -> the
    kinds (`HARD_KINDS`) found between that verb and its common-noun subject; verbs with none
    are absent."""
    out: dict[int, set[str]] = {}
    for d in extract(sent):
        kinds = set()
        if d.n_diff_intervening:
            kinds.add("attractor")
        if d.has_rel:
            kinds.add("relative clause")
        if any(t.dep.lower() in PP_LABELS for t in sent[d.subj_index : d.verb_index - 1]):
            kinds.add("prepositional phrase")
        if kinds:
            out.setdefault(d.verb_index, set()).update(kinds)
    return out


def _kept_easy(prefix: str, share: float) -> bool:
    """Whether an easy prefix is kept at `share` (by a hash of its text: the same every run)."""
    return share >= 1 or zlib.crc32(prefix.encode()) / 2**32 < share


def build_transfer(
    pool: str | os.PathLike, out: str | os.PathLike, keep: KeptWords, exclusions: Exclusions,
    *, hard_repeat: int = 1, easy_share: float = 1.0, nlp=None, spacy_model: str | None = None,
    batch_size: int = 256, n_process: int = 1,
    progress: Callable[[Iterable, int], Iterable] | None = None, force: bool = False,
) -> TransferReport:  # fmt: skip
    """Write the transfer set of a pool to `out` (module note): every prefix before a VBZ/VBP,
    its words as `keep` writes them (a word it does not keep becomes its POS tag, as in the
    agreement rows), hard ones `hard_repeat` times, easy ones at `easy_share`, nothing that
    `exclusions` holds. Written atomically. Raises IbkdError for a bad option, pool line or
    output path."""
    if hard_repeat < 1:
        raise IbkdError(f"--hard-repeat {hard_repeat}: expected a whole number >= 1")
    if not 0 < easy_share <= 1:
        raise IbkdError(f"--easy-share {easy_share}: expected a share in (0, 1]")
    check_output(out, "--out", force=force)
    report = TransferReport()
    total = 0
    for _ in read_pool(pool):  # a first pass: check every line before parsing, and count
        total += 1
    nlp = nlp or load_spacy(spacy_model)
    placeholders = frozenset(DEFAULT_PLACEHOLDERS)

    def kept() -> Iterator[str]:
        for s in read_pool(pool):
            report.sentences += 1
            where = exclusions.sentences.get(sentence_key(s.tokens))
            if where is not None:
                report.dropped_sentences[where] += 1
                continue
            yield " ".join(s.tokens)

    parsed: Iterable[list[Token]] = parse_text(
        kept(), nlp, pretokenized=True, placeholders=placeholders, batch_size=batch_size,
        n_process=n_process,
    )  # fmt: skip
    if progress is not None:
        parsed = progress(parsed, total)
    with atomic_write_all([out]) as (f,):
        f.write(TRANSFER_HEADER + "\n")
        for raw in parsed:
            sent = ptb_style(raw, keep=placeholders)
            hard = hard_kinds(sent)
            for i, tok in enumerate(sent):
                if tok.tag not in VERB_POS or i == 0:
                    continue
                where = exclusions.prefixes.get(sentence_key(t.word for t in sent[:i]))
                if where is not None:
                    report.dropped_prefixes[where] += 1
                    continue
                report.prefixes += 1
                report.by_verb[tok.tag] += 1
                prefix = " ".join(keep.word(t) for t in sent[:i])
                kinds = hard.get(i + 1, set())
                if kinds:
                    report.hard += 1
                    report.hard_kinds.update(kinds)
                    times = hard_repeat
                elif _kept_easy(prefix, easy_share):
                    times = 1
                else:
                    report.easy_left_out += 1
                    continue
                f.write(f"{prefix}\t{tok.tag}\n" * times)
                report.written += times
    return report
