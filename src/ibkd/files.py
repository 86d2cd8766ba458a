"""Reading plain or gzipped files, and writing files atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from ibkd.errors import IbkdError

GZIP_MAGIC = b"\x1f\x8b"
BOM = "\ufeff"


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """Open `path` for reading bytes, decompressing it when it is gzipped (by content, not name)."""
    path = Path(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except FileNotFoundError:
        raise IbkdError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise IbkdError(f"{path}: is a directory, expected a file") from None
    except OSError as e:
        raise IbkdError(f"{path}: cannot open ({e.strerror})") from None
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its newline) of a UTF-8 text file, plain or
    gzipped. A byte-order mark opening the file is dropped. A file that is not UTF-8 text raises
    an IbkdError naming the line."""
    path = Path(path)
    with open_binary(path) as f:
        lineno = 0
        try:
            if b"\x00" in f.peek(4096)[:4096]:
                raise IbkdError(
                    f"{path}: looks like a binary file (NUL bytes near the start), "
                    "expected UTF-8 text"
                )
            for lineno, raw in enumerate(f, 1):
                if b"\x00" in raw:
                    raise IbkdError(
                        f"{path}:{lineno}: contains NUL bytes; this looks like a binary file, "
                        "expected UTF-8 text"
                    )
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise IbkdError(
                        f"{path}:{lineno}: not valid UTF-8 (byte {e.start + 1} of the line); "
                        "expected UTF-8 text"
                    ) from None
                if lineno == 1:
                    line = line.removeprefix(BOM)  # the UTF-8 signature some editors write
                yield lineno, line.rstrip("\r\n")
        except (gzip.BadGzipFile, EOFError, OSError) as e:
            raise IbkdError(f"{path}:{lineno + 1}: corrupt or truncated gzip data ({e})") from None


@contextlib.contextmanager
def _staged(path: Path, text: bool, staged: list[tuple[str, Path]]) -> Iterator[IO]:
    """Write to a temporary file beside `path`; on success append (temp, path) to `staged`
    (the caller renames it), on failure remove the temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            stream: IO[bytes] = raw
            gz = None
            if path.suffix == ".gz":
                # mtime=0 and no file name: the same content gives byte-identical files.
                gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
                stream = gz
            handle: IO = (
                io.TextIOWrapper(stream, encoding="utf-8", newline="\n") if text else stream
            )
            yield handle
            handle.flush()
            if text:
                handle.detach()
            if gz is not None:
                gz.close()
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it private; give it the usual mode
        staged.append((tmp, path))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, text: bool = True) -> Iterator[IO]:
    """Write `path` through a temporary file in the same folder, renamed over `path` only when
    the block succeeds; a failure leaves any earlier file untouched. A `.gz` name is gzipped."""
    with atomic_write_all([path], text=text) as (handle,):
        yield handle


@contextlib.contextmanager
def atomic_write_all(
    paths: Sequence[str | os.PathLike], *, text: bool = True
) -> Iterator[list[IO]]:
    """Write a set of files all or nothing: one handle per path (temporary files beside each),
    and only when the block succeeds are they renamed over their targets, one after another.
    A failure inside the block leaves every target as it was. Check the targets first
    (`check_output`) so that no rename can fail half-way."""
    staged: list[tuple[str, Path]] = []
    try:
        with contextlib.ExitStack() as stack:
            handles = [stack.enter_context(_staged(Path(p), text, staged)) for p in paths]
            yield handles
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def check_output(path: str | os.PathLike, option: str, *, force: bool = False) -> Path:
    """Refuse an output file before anything is written: `path` must not be a directory, must
    not exist unless `force`, and its folder must be (or can be made) a writable directory.
    Raises an IbkdError naming `option` (e.g. "--out"); returns the path."""
    path = Path(path)
    if path.is_dir():
        raise IbkdError(f"{option} {path}: is a directory, expected a file name")
    if path.exists() and not force:
        raise IbkdError(f"{option} {path}: exists already (pass --force to replace it)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise IbkdError(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise IbkdError(f"{option} {path}: the folder {parent} is not writable")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
