"""Reading plain or gzipped files, and writing files atomically (temp file, then rename)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import gzip
import io
import json
import math
import os
import re
import socket
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
    remove_stale_temps(path)
    prefix = f".{path.name}.{os.getpid()}@{HOST}."  # tells a later writer whether it is stale
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
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
    A failure inside the block leaves every target as it was, and removes the temporary files
    and any folder made for them. Check the targets first
    (`check_output`) so that no rename can fail half-way."""
    staged: list[tuple[str, Path]] = []
    created = sorted({f for p in paths for f in _missing_folders(Path(p).parent)},
                     key=lambda f: -len(f.parts))  # fmt: skip
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
        for folder in created:  # the folders made for the set, innermost first, where empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and its ancestors that do not exist yet, innermost first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


# this machine's name as temporary file names carry it (letters, digits and -)
HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def temp_owner(temp: Path, path: Path) -> tuple[int, str] | None:
    """(process id, host) of the writer of `temp`, when it is a temporary file of `path` as
    `atomic_write` names them (`.NAME.PID@HOST.RANDOM.tmp`); None for any other file."""
    pattern = re.escape(f".{path.name}.") + r"(\d+)@([A-Za-z0-9-]+)\.[^.]+\.tmp"
    m = re.fullmatch(pattern, temp.name)
    return (int(m.group(1)), m.group(2)) if m else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of `path` left by writers that died (killed mid-write): those
    named `.NAME.PID@HOST.RANDOM.tmp` whose HOST is this machine and whose PID is no running
    process. A live writer's file, or one written from another machine (a shared folder), is
    left alone. Returns the files removed."""
    path = Path(path)
    removed = []
    with contextlib.suppress(OSError):
        for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            owner = temp_owner(temp, path)
            if owner is None or owner[1] != HOST:
                continue
            if owner[0] != os.getpid() and not _alive(owner[0]):
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
                removed.append(temp)
    return removed


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def no_space_error(paths: Sequence[str | os.PathLike]) -> Iterator[None]:
    """Turn a full disk (or quota) while writing `paths` into one IbkdError line, "no space left
    on device writing FILE" (the file the OSError names, else the paths written)."""
    try:
        yield
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        where = e.filename or ", ".join(str(p) for p in paths)
        raise IbkdError(f"no space left on device writing {where}") from None


LOCK = ".lock"


@contextlib.contextmanager
def locked_folder(
    out: str | os.PathLike, option: str = "--out", what: str = "run folder", *,
    keep_lock: bool = True,
) -> Iterator[None]:  # fmt: skip
    """Hold a folder's lock (an exclusive flock on `out/.lock`, holding the pid) for the block;
    another process holding it is refused with an IbkdError naming `option`. A folder this call
    created and that is still empty afterwards (refused or failed before writing) is removed
    again, with any parent folders it created. `what` names the folder in messages.
    `keep_lock=False` removes `.lock` at the end (a data folder holds only its data); a process
    that opened the removed file before is told apart by its inode and tries again."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise IbkdError(f"{option} {out}: is a file, expected a {what}")
    created = _missing_folders(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        _remove_empty(created)
        raise IbkdError(f"{option} {out}: cannot write there ({e.strerror})") from None
    fd = _lock(out, option, created)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        if not keep_lock or {p.name for p in out.iterdir()} == {LOCK}:
            (out / LOCK).unlink(missing_ok=True)
        if not any(out.iterdir()):  # nothing was written: leave no trace
            _remove_empty(created)
        os.close(fd)  # releases the lock


def _lock(out: Path, option: str, created: list[Path]) -> int:
    """An fd holding the flock of `out/.lock` (the file that is there now, by inode)."""
    while True:
        try:
            fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            _remove_empty(created)
            raise IbkdError(f"{option} {out}: cannot write there ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise IbkdError(
                f"{option} {out}: in use by another ibkd process (pid {holder}); wait for it "
                "to finish or choose another folder"
            ) from None
        try:
            same = os.stat(out / LOCK).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed that file as it finished: lock the new one


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (innermost first) where they are empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def finite_json(value):
    """`value` (dicts, lists, tuples, numbers, strings, numpy scalars) with every NaN or
    infinite float made None, which JSON writes as `null`: JSON has no NaN, and a file holding
    one is not JSON to other readers."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dump_json(value, f: IO[str], *, indent: int | None = 2) -> None:
    """Write `value` as strict JSON (`allow_nan=False`; NaN and infinities as `null`, see
    `finite_json`) followed by a newline."""
    json.dump(finite_json(value), f, indent=indent, allow_nan=False)
    f.write("\n")


def dumps_json(value, *, indent: int | None = 2) -> str:
    """`value` as a strict JSON string (see `dump_json`)."""
    return json.dumps(finite_json(value), indent=indent, allow_nan=False)


def gz_or_plain(path: str | os.PathLike) -> Path | None:
    """The one file of `path` (plain, without `.gz`) and `path.gz` that exists, or None when
    neither does. IbkdError naming both when both exist: one would silently shadow the other."""
    plain = Path(path)
    gz = plain.with_name(plain.name + ".gz")
    existing = [p for p in (gz, plain) if p.is_file()]
    if len(existing) > 1:
        raise IbkdError(
            f"{gz} and {plain}: both exist; remove or rename one (it is not clear which holds "
            "the data)"
        )
    return existing[0] if existing else None


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
