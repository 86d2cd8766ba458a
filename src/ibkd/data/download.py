"""Fetching public data files once into the cache, verified by SHA-256.

The cache folder is `$IBKD_CACHE` (default `~/.cache/ibkd`). A file is downloaded to a temporary
name beside its target (one per process, so concurrent fetches do not clash), its digest is
checked, and only then is it renamed into place; a failed or unverified download leaves nothing.
A file already in the cache is checked again every time it is used: one that no longer matches
(truncated, altered) is removed and fetched again.

Digests are of the decompressed content (`content_digest`): mirrors may recompress `.gz` files,
so their bytes differ while their content does not. Where no digest is pinned, the first fetch
records the digest it saw in `SHA256SUMS` beside the file, and every later fetch must match it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

from ibkd.errors import IbkdError
from ibkd.files import open_binary

SUMS_FILE = "SHA256SUMS"


def cache_dir(*parts: str) -> Path:
    """`$IBKD_CACHE/parts...` (default `~/.cache/ibkd/parts...`); not created here."""
    root = Path(os.environ.get("IBKD_CACHE", Path.home() / ".cache" / "ibkd"))
    return root.joinpath(*parts)


def content_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's content, decompressed when it is gzipped."""
    h = hashlib.sha256()
    with open_binary(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _recorded(folder: Path) -> dict[str, str]:
    sums = folder / SUMS_FILE
    if not sums.is_file():
        return {}
    pairs = (line.split(maxsplit=1) for line in sums.read_text().splitlines() if line.strip())
    return {name.strip(): digest for digest, name in pairs}


def _record(folder: Path, name: str, digest: str) -> None:
    recorded = _recorded(folder) | {name: digest}
    tmp = folder / f".{SUMS_FILE}.{os.getpid()}.tmp"
    tmp.write_text("".join(f"{d}  {n}\n" for n, d in sorted(recorded.items())))
    os.replace(tmp, folder / SUMS_FILE)


def verify(path: Path, expected: str | None) -> str | None:
    """Why the file at `path` is not the one expected (its `content_digest` is not `expected`,
    or it cannot be read: truncated, corrupt gzip), or None when it is (or nothing is
    expected)."""
    if expected is None:
        return None
    try:
        digest = content_digest(path)
    except (OSError, EOFError, zlib.error, IbkdError) as e:
        return f"unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
    if digest != expected:
        return f"checksum {digest[:12]}... does not match {expected[:12]}..."
    return None


def fetch(urls: Sequence[str], target: Path, sha256: str | None = None, *, hint: str = "") -> Path:
    """`target` (a file path), verified: a file there already is used when its content digest
    is the expected one (`sha256`, else the digest recorded by its first fetch), and otherwise
    removed (a truncated or altered copy, said on stderr) and fetched again; a missing file is
    downloaded from the first of `urls` that gives the right content. `sha256`: the expected
    `content_digest`; None pins the digest of the first fetch (see the module note). Raises
    IbkdError naming every URL tried and why, followed by `hint` (e.g. how to point at a local
    copy). Returns `target`."""
    target = Path(target)
    folder = target.parent
    expected = sha256 or _recorded(folder).get(target.name)
    if target.exists():
        problem = verify(target, expected)
        if problem is None:
            return target
        print(f"ibkd: {target}: {problem}; removed, fetching it again", file=sys.stderr)
        target.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        tmp = folder / f".{target.name}.{os.getpid()}.download"  # several processes may fetch
        try:
            urllib.request.urlretrieve(url, tmp)  # noqa: S310 - fixed, documented sources
            digest = content_digest(tmp)
            if expected is not None and digest != expected:
                raise ValueError(f"checksum {digest[:12]}... does not match {expected[:12]}...")
            os.replace(tmp, target)
            if sha256 is None:
                _record(folder, target.name, digest)
            return target
        except (OSError, ValueError, EOFError, zlib.error, IbkdError) as e:
            errors.append(f"{url}: {e}")
            tmp.unlink(missing_ok=True)
    raise IbkdError(f"could not download {target.name} into {folder}: " + "; ".join(errors) + hint)
