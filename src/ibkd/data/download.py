"""Fetching public data files once into the cache, verified by SHA-256.

The cache folder is `$IBKD_CACHE` (default `~/.cache/ibkd`). A file is downloaded to a temporary
name beside its target (one per process, so concurrent fetches do not clash), its digest is
checked, and only then is it renamed into place; a failed or unverified download leaves nothing.

Digests are of the decompressed content (`content_digest`): mirrors may recompress `.gz` files,
so their bytes differ while their content does not. Where no digest is pinned, the first fetch
records the digest it saw in `SHA256SUMS` beside the file, and every later fetch must match it.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
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


def fetch(urls: Sequence[str], target: Path, sha256: str | None = None, *, hint: str = "") -> Path:
    """Download `target` (a file path) from the first of `urls` that gives the right content,
    unless it exists already. `sha256`: the expected `content_digest`; None pins the digest of
    the first fetch (see the module note). Raises IbkdError naming every URL tried and why,
    followed by `hint` (e.g. how to point at a local copy). Returns `target`."""
    target = Path(target)
    if target.exists():
        return target
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    expected = sha256 or _recorded(folder).get(target.name)
    errors = []
    for url in urls:
        tmp = folder / f".{target.name}.{os.getpid()}.download"  # several processes may fetch
        try:
            urllib.request.urlretrieve(url, tmp)  # noqa: S310 - fixed, documented sources
            digest = content_digest(tmp)
            if expected is not None and digest != expected:
                raise ValueError(f"checksum {digest[:12]}... does not match")
            os.replace(tmp, target)
            if sha256 is None:
                _record(folder, target.name, digest)
            return target
        except (OSError, ValueError, IbkdError) as e:
            errors.append(f"{url}: {e}")
            tmp.unlink(missing_ok=True)
    raise IbkdError(f"could not download {target.name} into {folder}: " + "; ".join(errors) + hint)
