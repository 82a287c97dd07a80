"""``faces``: the book's default dataset of 64×64 cartoon faces with known ground-truth factors.

Image ``i`` is drawn from its integer index alone: :mod:`vaebook.data.factors` turns the index into 19
factors (gaze, smile, glasses, ...), and :mod:`vaebook.data.renderer` draws them, with a background
texture seeded by the index. Nothing is downloaded.

**The same images on every machine.** The renderer uses only float operations whose results the
IEEE-754 standard fixes to the bit (see :mod:`vaebook.data.renderer`), so the uint8 images are
identical on every CPU, whatever its vector instructions. ``faces-checksums.json`` beside this
file records the sha256 of every block of ``CHUNK`` images of each split; a freshly rendered
cache is checked against it (a mismatch is a warning that names the blocks), and the test suite
renders blocks and compares them, so a change of the renderer can never pass unnoticed.

The rendered split is cached as one uint8 ``.npy`` file whose name carries the first 16 hex
digits of the sha256 of its pixels (``faces-r{RENDER_VERSION}-{split}-{n}-{digest}.npy``): the
file is written under a temporary name and renamed into place (atomic), and it is read only after
its pixels hash to its name, so a damaged cache is rendered again, never served.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .factors import (ATTR_NAMES, FACTOR_LEVELS, FACTOR_NAMES, HAIR_COLOURS, HAIR_STYLES,  # noqa: F401
                      attributes, face_box, sample_factors)
from .renderer import IMAGE_SIZE, PX, render, render_uint8  # noqa: F401

RENDER_VERSION = 2  # bump whenever the drawing changes (and re-record faces-checksums.json)
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 60_000), "valid": (60_000, 65_000),
                                      "test": (65_000, 75_000)}
CHUNK = 1000        # images per recorded checksum
CHECKSUMS = Path(__file__).with_name("faces-checksums.json")
_DIGITS = 16        # hex digits of the sha256 kept in a cache file's name


def render_indices(indices: torch.Tensor) -> torch.Tensor:
    """The images of global indices: render(sample_factors(indices), noise_seed=indices)."""
    idx = torch.as_tensor(indices, dtype=torch.int64)
    return render(sample_factors(idx), noise_seed=idx)


def default_cache_dir() -> Path:
    """$VAEBOOK_CACHE, or ~/.cache/vaebook."""
    return Path(os.environ.get("VAEBOOK_CACHE") or Path.home() / ".cache" / "vaebook")


def digest(images: np.ndarray) -> str:
    """sha256 (hex) of a uint8 image array's pixels, in C order."""
    return hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()


@lru_cache(maxsize=1)
def recorded_checksums() -> dict:
    """The committed {"render_version", "chunk", "splits": {split: [sha256 per chunk]}}."""
    return json.loads(CHECKSUMS.read_text())


def chunk_mismatches(split: str, images: np.ndarray) -> list[int]:
    """Numbers of the complete CHUNK-image blocks of `images` (the first images of `split`)
    whose sha256 differs from the recorded one."""
    recorded = recorded_checksums()
    if recorded["render_version"] != RENDER_VERSION or recorded["chunk"] != CHUNK:
        raise RuntimeError(f"{CHECKSUMS.name} records render version {recorded['render_version']}, "
                           f"this is version {RENDER_VERSION}: re-record it (tools/record_faces.py)")
    sums = recorded["splits"][split]
    return [c for c in range(len(images) // CHUNK) if digest(images[c * CHUNK:(c + 1) * CHUNK]) != sums[c]]


def _to_float(arr: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1]. numpy does it on one thread: torch would spread
    this small job over all cores, which costs more than it saves next to a training loop."""
    return torch.from_numpy(np.multiply(arr, np.float32(1 / 255), dtype=np.float32))


def _write_atomically(folder: Path, name_of, array_chunks, shape) -> Path:
    """Stream uint8 chunks into a temporary .npy in `folder`, then rename it to name_of(sha256).
    The rename is the commit: a reader sees the whole file under its checksum name, or nothing."""
    fd, tmp = tempfile.mkstemp(prefix=".faces-", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        h, i = hashlib.sha256(), 0
        for chunk in array_chunks:
            out[i:i + len(chunk)] = chunk
            h.update(np.ascontiguousarray(chunk).data)
            i += len(chunk)
        out.flush()
        del out
        os.chmod(tmp, 0o666 & ~_umask())
        path = folder / name_of(h.hexdigest())
        os.replace(tmp, path)
        return path
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_VERIFIED: dict[tuple, bool] = {}  # (path, size, mtime) -> pixels hash to the name, this process


class FacesDataset(Dataset):
    """One split of faces. Item i -> (image float32 (3,64,64) in [0,1], attrs float32 (A,) 0/1).

    Factors and attributes are computed at once (cheap); the images are rendered the first
    time they are needed and cached (see the module docstring)."""

    RENDER_BATCH = 64  # images per render call: small batches stay in the CPU's cache

    def __init__(self, split: str = "train", cache_dir: str | os.PathLike | None = None,
                 limit: int | None = None):
        if split not in SPLITS:
            raise ValueError(f"unknown faces split {split!r}: choose one of {', '.join(SPLITS)}")
        lo, hi = SPLITS[split]
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, got {limit}")
            hi = min(hi, lo + limit)
        self.split = split
        self.indices = torch.arange(lo, hi, dtype=torch.int64)
        self.factors = sample_factors(self.indices)
        self.attrs = attributes(self.factors)
        self.factor_names, self.attr_names = FACTOR_NAMES, ATTR_NAMES
        self.factor_levels = dict(FACTOR_LEVELS)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._images: np.ndarray | None = None

    def cache_prefix(self, n: int | None = None) -> str:
        return f"faces-r{RENDER_VERSION}-{self.split}-{len(self) if n is None else n}-"

    def cache_files(self, n: int | None = None) -> list[Path]:
        """The cache files of the first n images of the split (default: this dataset's)."""
        return sorted(self.cache_dir.glob(self.cache_prefix(n) + "*.npy"))

    def _cached(self, n_file: int, n: int) -> np.ndarray | None:
        """The first n images from a valid cache file of n_file images, or None."""
        for path in self.cache_files(n_file):
            arr = self._load(path, n)
            if arr is not None:
                return arr
        return None

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):  # DataLoader workers reopen the memmap instead of pickling it
        return {**self.__dict__, "_images": None}

    def _load(self, path: Path, n: int) -> np.ndarray | None:
        """The first n images of a cache file, or None if it is missing, not a valid cache, or
        its pixels do not hash to its name (then it is deleted, to be rendered again)."""
        try:
            arr = np.load(path, mmap_mode="r")
            stat = path.stat()
        except (OSError, ValueError, EOFError):  # missing, truncated or garbage
            arr = None
        if arr is None or arr.dtype != np.uint8 or arr.ndim != 4 \
                or arr.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE) or arr.shape[0] < n:
            return None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if not _VERIFIED.get(key):
            if not path.stem.endswith("-" + digest(arr)[:_DIGITS]):
                warnings.warn(f"faces cache {path} fails its checksum (damaged?); deleting it",
                              stacklevel=4)
                path.unlink(missing_ok=True)
                return None
            _VERIFIED[key] = True
        return arr[:n]

    def _render_cache(self) -> Path:
        """Render every image of this dataset into a new cache file; check it against the
        recorded checksums. Returns the file."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        step = self.RENDER_BATCH
        chunks = (render_uint8(self.factors[i:i + step], self.indices[i:i + step])
                  for i in range(0, len(self), step))
        path = _write_atomically(self.cache_dir, lambda h: f"{self.cache_prefix()}{h[:_DIGITS]}.npy",
                                 chunks, (len(self), 3, IMAGE_SIZE, IMAGE_SIZE))
        stat = path.stat()
        _VERIFIED[(str(path), stat.st_size, stat.st_mtime_ns)] = True  # hashed while writing
        bad = chunk_mismatches(self.split, np.load(path, mmap_mode="r"))
        if bad:
            warnings.warn(
                f"{len(bad)} of {len(self) // CHUNK} blocks of {CHUNK} {self.split} faces rendered on "
                f"this machine differ from the recorded ones (blocks {bad[:5]}...): the book's recorded "
                f"numbers may not reproduce exactly here. Please report it with your CPU and numpy "
                f"version.", stacklevel=3)
        return path

    def images_uint8(self) -> np.ndarray:
        """All images of the split as a read-only (N, 3, 64, 64) uint8 array (a memmap)."""
        if self._images is None:
            n, full = len(self), SPLITS[self.split][1] - SPLITS[self.split][0]
            # a limited dataset can read the first rows of an existing full-split cache
            arr = self._cached(full, n) if n < full else None
            if arr is None:
                arr = self._cached(n, n)
            if arr is None:
                arr = self._load(self._render_cache(), n)
                if arr is None:
                    raise RuntimeError(f"could not read back the faces cache in {self.cache_dir}")
            self._images = arr
        return self._images

    def _index(self, i) -> int:
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} faces")
        return i % len(self)

    def __getitem__(self, i):
        i = self._index(i)
        img = _to_float(self.images_uint8()[i])
        return img, self.attrs[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Batched fetch (used by DataLoader): one fancy index into the uint8 array."""
        idx = np.fromiter((self._index(i) for i in indices), dtype=np.int64, count=len(indices))
        imgs = _to_float(self.images_uint8()[idx])
        attrs = torch.from_numpy(self.attrs.numpy()[idx])  # numpy again: one thread
        return list(zip(imgs.unbind(0), attrs.unbind(0)))
