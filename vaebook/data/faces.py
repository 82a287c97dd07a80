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

Each split is cached as one uint8 ``.npy`` file holding its first n images, n a multiple of
``CHUNK`` (or the whole split), whose name carries n and the first 16 hex digits of the sha256 of
its pixels (``faces-r{RENDER_VERSION}-{split}-{n}-{digest}.npy``). A dataset of the first N images
of a split is a slice of that file; when N is more than it holds, only the missing images are
drawn, and a longer file (the old images, then the new) replaces it. So every face is drawn once,
and a machine that only builds the book draws the faces its chapters use, not all 75,000
(``bench/fresh-clone.json`` records how many). Every file is written under a temporary name and
renamed into place (see :mod:`vaebook.data.facecache`). The first time a process opens a cache
file, its blocks are hashed and compared with the recorded checksums, so a damaged cache, or a
wrong one copied from elsewhere, is drawn again, never served.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .facecache import (CacheFolderError, CacheSpaceError, check_cache_dir, check_space,  # noqa: F401
                        default_cache_dir, digest, release_pages, remove_stale_temporaries,
                        write_atomically)
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
    bad = []
    for c in range(len(images) // CHUNK):
        if digest(images[c * CHUNK:(c + 1) * CHUNK]) != sums[c]:
            bad.append(c)
        release_pages(images)  # a memory-mapped split: hashed, not kept (737 MB for train)
    return bad


def _to_float(arr: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1]. numpy does it on one thread: torch would spread
    this small job over all cores, which costs more than it saves next to a training loop."""
    return torch.from_numpy(np.multiply(arr, np.float32(1 / 255), dtype=np.float32))


def warn_drawn_differently(split: str, bad: list[int], n: int) -> None:
    warnings.warn(
        f"{len(bad)} of {n // CHUNK} blocks of {CHUNK} {split} faces drawn on this machine differ "
        f"from the recorded ones (blocks {bad[:5]}...): the book's recorded numbers may not reproduce "
        "exactly here. Please report it with your CPU and numpy version.", stacklevel=4)


def cache_problem(split: str, images: np.ndarray, name_digest: str) -> str | None:
    """Why the cached `images` of a whole split cannot be used, or None. Every block of CHUNK
    images is hashed and compared with its recorded checksum (cheap: one pass of sha256). The
    first block that differs, and the images after the last whole block (which have none), are
    drawn again here and compared pixel for pixel: a cache that differs from this machine's own
    drawing is wrong (damaged, or copied from a machine that draws differently). One that equals
    it means that this machine draws differently from the record: the cache is then used if its
    pixels still hash to its name, with the warning drawing gives."""
    bad = chunk_mismatches(split, images)
    whole, lo = len(images) // CHUNK * CHUNK, SPLITS[split][0]
    spans = [(c * CHUNK, (c + 1) * CHUNK) for c in bad[:1]] + ([(whole, len(images))] * (whole < len(images)))
    for a, b in spans:
        idx = torch.arange(lo + a, lo + b)
        if not np.array_equal(render_uint8(sample_factors(idx), idx), images[a:b]):
            return f"its images {a:,} to {b - 1:,} differ from the faces drawn here"
    if bad:
        if not digest(images).startswith(name_digest):
            return "its pixels do not hash to its name"
        warn_drawn_differently(split, bad, len(images))
    return None


_VERIFIED: dict[tuple, bool] = {}  # (path, size, mtime) -> checked in this process


class FacesDataset(Dataset):
    """One split of faces. Item i -> (image float32 (3,64,64) in [0,1], attrs float32 (A,) 0/1).

    Factors and attributes are computed at once (cheap); the images are rendered the first
    time they are needed and cached (see the module docstring)."""

    RENDER_BATCH = 2000  # images per render call: the renderer draws them in small batches, on every core

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

    def cache_name(self, n: int, sha256: str) -> str:
        return f"faces-r{RENDER_VERSION}-{self.split}-{n}-{sha256[:_DIGITS]}.npy"

    def cache_files(self) -> list[Path]:
        """The cache files of this dataset's split, the longest first (normally one: the file
        that holds the split's first n images; a dataset of its first N ≤ n is a slice of it)."""
        files = self.cache_dir.glob(f"faces-r{RENDER_VERSION}-{self.split}-*-*.npy")
        return sorted((p for p in files if self._length(p) is not None), key=self._length, reverse=True)

    def _length(self, path: Path) -> int | None:
        """n, the number of images a cache file's name says it holds; None for another name
        (an n that is neither a multiple of CHUNK nor the whole split cannot be checked)."""
        n = path.stem.split("-")[-2]
        if not n.isdigit() or not 0 < int(n) <= self.split_size:
            return None
        return int(n) if int(n) % CHUNK == 0 or int(n) == self.split_size else None

    @property
    def needed(self) -> int:
        """How many of the split's first images a cache file must hold for this dataset: its
        length rounded up to a whole block of CHUNK (the unit of the recorded checksums)."""
        return min(self.split_size, -(-len(self) // CHUNK) * CHUNK)

    @property
    def split_size(self) -> int:
        lo, hi = SPLITS[self.split]
        return hi - lo

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):  # DataLoader workers reopen the memmap instead of pickling it
        return {**self.__dict__, "_images": None}

    def _open(self, path: Path) -> np.ndarray | None:
        """The whole split from a cache file, or None if it is missing or not a valid cache.
        The first time a process opens a file, its pixels are checked (see :func:`cache_problem`);
        a file that fails is deleted, to be drawn again."""
        try:
            arr = np.load(path, mmap_mode="r")
            stat = path.stat()
        except (OSError, ValueError, EOFError):  # missing, truncated or garbage
            return None
        if arr.dtype != np.uint8 or arr.shape != (self._length(path), 3, IMAGE_SIZE, IMAGE_SIZE):
            return None
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if not _VERIFIED.get(key):
            problem = cache_problem(self.split, arr, path.stem[-_DIGITS:])
            if problem:
                warnings.warn(f"faces cache {path} fails its checksum ({problem}); deleting it, "
                              "to draw the split again", stacklevel=4)
                path.unlink(missing_ok=True)
                return None
            _VERIFIED[key] = True
            release_pages(arr)  # what the check read beyond the hashing; keep only what is used
        return arr

    def _render_cache(self, n: int, drawn: np.ndarray | None) -> Path:
        """Write a cache file of the split's first n images: `drawn` (the first images, from
        a shorter cache file, or None), then the rest, drawn now; check the new images against
        the recorded checksums. Returns the file."""
        check_cache_dir(self.cache_dir)
        remove_stale_temporaries(self.cache_dir)  # of writers killed before their rename
        lo, start = SPLITS[self.split][0], 0 if drawn is None else len(drawn)
        shape = (n, 3, IMAGE_SIZE, IMAGE_SIZE)
        what = (f"drawing the {n:,} {self.split} faces" if start == 0 else
                f"drawing {self.split} faces {start:,} to {n - 1:,} (a file of the first {n:,})")
        check_space(self.cache_dir, what, int(np.prod(shape)) + 128)
        indices = torch.arange(lo + start, lo + n, dtype=torch.int64)
        factors = sample_factors(indices)
        step = self.RENDER_BATCH
        old = [] if drawn is None else (drawn[i:i + CHUNK] for i in range(0, start, CHUNK))
        new = (render_uint8(factors[i:i + step], indices[i:i + step]) for i in range(0, n - start, step))
        path = write_atomically(self.cache_dir, lambda h: self.cache_name(n, h),
                                itertools.chain(old, new), shape, what)
        stat = path.stat()
        _VERIFIED[(str(path), stat.st_size, stat.st_mtime_ns)] = True  # drawn here, just now
        bad = [c for c in chunk_mismatches(self.split, np.load(path, mmap_mode="r")) if c * CHUNK >= start]
        if bad:
            warn_drawn_differently(self.split, bad, n)
        return path

    def images_uint8(self) -> np.ndarray:
        """The images of this dataset as a read-only (N, 3, 64, 64) uint8 array: the first N
        rows of the memory-mapped cache file of its split. The first time, or when the file
        holds fewer than N images, the missing ones are drawn into a longer file, which
        replaces the shorter."""
        if self._images is None:
            if len(self) == 0:
                return np.zeros((0, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
            arr = next((a for a in map(self._open, self.cache_files()) if a is not None), None)
            if arr is None or len(arr) < self.needed:  # the longest file is too short, or none
                arr = self._open(self._render_cache(self.needed, arr))
                if arr is None:
                    raise RuntimeError(f"could not read back the faces cache in {self.cache_dir}")
                for path in self.cache_files():   # the shorter files the new one replaces
                    if self._length(path) < len(arr):
                        with contextlib.suppress(OSError):  # a reader's memory map keeps its pages
                            path.unlink()
            self._images = arr[:len(self)]
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
