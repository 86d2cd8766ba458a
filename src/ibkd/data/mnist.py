"""MNIST for scenario 2: the IDX format, a download for online users, and the shifted test sets.

Where the files come from, in order: `--data-dir`, the `IBKD_MNIST_DIR` environment variable,
then the cache folder (`~/.cache/ibkd/mnist`, or `$IBKD_CACHE/mnist`), filled by a download from
the usual mirrors when the files are missing. Downloads are verified against SHA-256 digests of
the decompressed IDX content (mirrors recompress the .gz files, so their bytes differ; the
content does not).

The shifted test sets follow MNIST-C (Mu & Gilmer 2019) at its default severities, applied to the
10,000 test digits with a seeded generator, each transform about the image centre (13.5, 13.5),
bilinear, zero fill, in the 28 x 28 frame:
- `scale`: the digit shrunk to 0.7 of its size (MNIST-C severity 3);
- `translate`: shifted 3 pixels along each axis, each direction a random sign (severity 3);
- `rotate`: rotated by 0.4 rad (23 degrees), random direction (severity 2);
- `shear`: sheared by 0.4, random direction (severity 2).
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibkd.data.download import cache_dir, fetch
from ibkd.errors import IbkdError
from ibkd.files import atomic_write, gz_or_plain, open_binary

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# SHA-256 of the decompressed files (the canonical 60,000 / 10,000 images)
CONTENT_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}  # fmt: skip
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
SHIFTS = ("scale", "translate", "rotate", "shear")


# ---------------------------------------------------------------------------------------------
# IDX


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An IDX file of unsigned bytes (images [N, 28, 28] or labels [N]), plain or gzipped,
    with its magic number checked and its length checked against the header's dimensions
    before any array is made (IbkdError naming the file otherwise)."""
    path = Path(path)
    with open_binary(path) as f:
        try:
            data = f.read()
        except (gzip.BadGzipFile, EOFError, OSError) as e:
            raise IbkdError(f"{path}: corrupt or truncated gzip data ({e})") from None
    if len(data) < 8:
        raise IbkdError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise IbkdError(
            f"{path}: magic number {magic:#010x}, expected {IMAGE_MAGIC:#010x} "
            f"(images) or {LABEL_MAGIC:#010x} (labels) of an IDX file of bytes"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IbkdError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + math.prod(dims)  # Python integers: no overflow for huge dimensions
    if len(data) != expected:
        raise IbkdError(
            f"{path}: {len(data)} bytes, expected {expected} for dimensions "
            f"{' x '.join(map(str, dims))} (truncated or wrong file)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzipped when the name ends in .gz), atomically."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x00000800 | array.ndim
    with atomic_write(path, text=False) as f:
        f.write(struct.pack(f">I{array.ndim}I", magic, *array.shape))
        f.write(array.tobytes())


# ---------------------------------------------------------------------------------------------
# finding, downloading, loading


def default_dir() -> Path:
    """Where MNIST is looked for when no folder is given: `$IBKD_MNIST_DIR`, else the cache's
    `mnist` folder."""
    if os.environ.get("IBKD_MNIST_DIR"):
        return Path(os.environ["IBKD_MNIST_DIR"])
    return cache_dir("mnist")


def download(folder: Path, mirrors: tuple[str, ...] = MIRRORS, names=None) -> None:
    """Fetch the four files (or those of `names`) that `folder` lacks from the first mirror
    that has each, verifying each against its content digest; a file there already is verified
    and, if it does not match, fetched again (see data/download.py)."""
    for name in names or FILES.values():
        fetch(
            [mirror + name for mirror in mirrors],
            folder / name,
            CONTENT_SHA256[name],
            hint=" (or point --data-dir / IBKD_MNIST_DIR at a local copy)",
        )


@dataclass
class Mnist:
    """The four MNIST arrays (uint8 images [N, 28, 28], labels [N] in 0..9) and their folder."""

    train_images: np.ndarray  # [60000, 28, 28] uint8
    train_labels: np.ndarray
    test_images: np.ndarray  # [10000, 28, 28] uint8
    test_labels: np.ndarray
    folder: Path


def load_mnist(data_dir: str | os.PathLike | None = None, *, allow_download: bool = True
               ) -> Mnist:  # fmt: skip
    """MNIST from `data_dir` (or the default folder, downloading what is missing there). Files
    in the cache folder (ibkd's own downloads) are verified every time (`download.fetch`: one
    that no longer matches is fetched again); a folder given by the user is read as it is.
    IbkdError for a missing, ambiguous (`NAME` beside `NAME.gz`) or malformed file, or an
    empty set."""
    folder = Path(data_dir) if data_dir else default_dir()
    found = {n: gz_or_plain(folder / n.removesuffix(".gz")) for n in FILES.values()}
    missing = [n for n, path in found.items() if path is None]
    cached = [n for n, path in found.items() if path is not None and path.name == n]
    if not data_dir and allow_download and folder == cache_dir("mnist") and cached:
        download(folder, names=cached)  # the cached downloads verified (and fetched again if bad)
    if missing:
        if data_dir or not allow_download:
            raise IbkdError(
                f"{folder}: no {', '.join(missing)} (expected the four MNIST IDX "
                "files, gzipped or not)"
            )
        download(folder)
        found = {n: gz_or_plain(folder / n.removesuffix(".gz")) for n in FILES.values()}
    arrays = {key: read_idx(found[name]) for key, name in FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise IbkdError(
                f"{folder}: {split} images of shape {images.shape}, expected N x 28 x 28"
            )
        if not len(images):
            raise IbkdError(f"{folder}: the {split} set has no images (0 x 28 x 28)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise IbkdError(f"{folder}: {len(labels)} {split} labels for {len(images)} images")
        if labels.max(initial=0) > 9:
            raise IbkdError(f"{folder}: {split} label {int(labels.max())}, expected 0..9")
    return Mnist(
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
        folder,
    )


# ---------------------------------------------------------------------------------------------
# shifted test sets (MNIST-C's affine corruptions)

CENTER = np.array([13.5, 13.5])
SCALE_FACTOR = 0.7
TRANSLATE_PIXELS = 3
ROTATE_RADIANS = 0.4
SHEAR = 0.4


def _warp(image: np.ndarray, matrix: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Output pixel (r, c) takes the input at matrix @ (r, c) + offset (bilinear, zero fill)."""
    from scipy.ndimage import affine_transform

    return affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)


def _about_center(matrix: np.ndarray) -> np.ndarray:
    return CENTER - matrix @ CENTER


def shift(images: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """The MNIST-C `kind` version of `images` (uint8 or float), as float32 in [0, 1]."""
    if kind not in SHIFTS:
        raise IbkdError(f"shift {kind!r}: expected one of {', '.join(SHIFTS)}")
    x = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    rng = np.random.default_rng(seed)
    n = len(x)
    out = np.empty_like(x)
    if kind == "scale":  # sample the input 1/0.7 as far from the centre: the digit shrinks
        m = np.eye(2) / SCALE_FACTOR
        for i in range(n):
            out[i] = _warp(x[i], m, _about_center(m))
    elif kind == "translate":
        signs = rng.choice([-1, 1], size=(n, 2))
        for i in range(n):
            out[i] = _warp(x[i], np.eye(2), TRANSLATE_PIXELS * signs[i])
    elif kind == "rotate":
        angles = ROTATE_RADIANS * rng.choice([-1, 1], size=n)
        for i in range(n):
            c, s = np.cos(angles[i]), np.sin(angles[i])
            m = np.array([[c, -s], [s, c]])
            out[i] = _warp(x[i], m, _about_center(m))
    else:  # shear: rows scaled by cos, columns shifted by -sin times the row (skimage's shear)
        amounts = SHEAR * rng.choice([-1, 1], size=n)
        for i in range(n):
            m = np.array([[np.cos(amounts[i]), 0.0], [-np.sin(amounts[i]), 1.0]])
            out[i] = _warp(x[i], m, _about_center(m))
    return np.clip(out, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# the sets a run trains and is tested on

VALID_SIZE = 5_000  # the last 5,000 training images (a tenth of a smaller set)
SHIFT_SEED = 0


@functools.lru_cache(maxsize=2)
def _cached(data: str) -> Mnist:
    return load_mnist(None if data == "default" else data)


@functools.lru_cache(maxsize=len(SHIFTS) * 2)
def _shifted(data: str, kind: str) -> np.ndarray:
    """The shifted test set (the same for every run; computed once per process)."""
    return shift(_cached(data).test_images, kind, seed=SHIFT_SEED + SHIFTS.index(kind))


def image_sets(data: str = "default", max_train: int | None = None):
    """(train, valid, tests) for scenario 2: the last 5,000 training images for validation,
    the first 55,000 (or the first `max_train`) for training, and the test set with its shifted
    versions {"test", "scale", "translate", "rotate", "shear"}."""
    import torch

    from ibkd.data.batching import ImageSet

    m = _cached(data)

    def images(x: np.ndarray) -> torch.Tensor:
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.int64))

    n_train = len(m.train_images) - min(VALID_SIZE, len(m.train_images) // 10)
    if n_train == len(m.train_images):
        raise IbkdError(
            f"{m.folder}: {len(m.train_images)} training images leave none for validation "
            "(a tenth of them, at most 5,000, is the validation set); give at least 10"
        )
    train_slice = slice(0, min(n_train, max_train) if max_train else n_train)
    train = ImageSet(images(m.train_images[train_slice]), labels(m.train_labels[train_slice]))
    valid = ImageSet(images(m.train_images[n_train:]), labels(m.train_labels[n_train:]))
    tests = {"test": ImageSet(images(m.test_images), labels(m.test_labels))}
    for kind in SHIFTS:
        tests[kind] = ImageSet(images(_shifted(data, kind)), labels(m.test_labels))
    return train, valid, tests
