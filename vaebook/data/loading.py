"""One entry point to the book's datasets: ``load_dataset(name, split)``.

- ``faces`` (the default): cartoon faces rendered on the fly from their index, with ground-truth
  factors; needs nothing (see :mod:`vaebook.data.faces`).
- ``celeba``: the real CelebA, read from a folder the reader already has (see :mod:`vaebook.data.celeba`).

The whole book switches dataset with the environment variable ``VAEBOOK_DATASET``.
"""
from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

DATASETS = ("faces", "celeba")
# Images per split, written out so that checking a checkpoint's record ("trained on the whole
# training split") does not have to build a dataset. tests/test_data.py checks them against
# the datasets: faces' index ranges, and CelebA's official partition (list_eval_partition).
SPLIT_SIZES = {"faces": {"train": 60_000, "valid": 5_000, "test": 10_000},
               "celeba": {"train": 162_770, "valid": 19_867, "test": 19_962}}


def default_dataset() -> str:
    """$VAEBOOK_DATASET, or "faces"."""
    return os.environ.get("VAEBOOK_DATASET", "faces")


def split_size(name, split: str) -> int | None:
    """Images in `split` of dataset `name`, or None for a name the book does not know."""
    return SPLIT_SIZES.get(name, {}).get(split) if isinstance(name, str) else None


def load_dataset(name: str | None = None, split: str = "train", root=None, limit: int | None = None) -> Dataset:
    """A split ("train", "valid" or "test") of dataset `name`; items are (image, attributes).

    `limit` keeps only the first `limit` images (quick experiments, chapters); `root` is where
    CelebA lives (default: $VAEBOOK_CELEBA_ROOT)."""
    name = name or default_dataset()
    if name == "faces":
        from .faces import FacesDataset
        return FacesDataset(split, limit=limit)
    if name == "celeba":
        from .celeba import CelebA
        data = CelebA(root, split)
        return data if limit is None else Limited(data, limit)
    raise ValueError(f"unknown dataset {name!r}: choose one of {DATASETS} "
                     f"(or set VAEBOOK_DATASET to one of them)")


class Limited(Dataset):
    """The first `n` items of a dataset, keeping its attributes (attr_names, factors, ...);
    per-item arrays (attrs, factors, filenames) are cut to the same `n` items."""

    def __init__(self, data: Dataset, n: int):
        self.data, self.n = data, min(n, len(data))
        for key in ("attrs", "factors", "filenames"):
            value = getattr(data, key, None)
            if value is not None:
                setattr(self, key, value[:self.n])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        return self.data[i % self.n]

    def __getattr__(self, key):
        return getattr(self.__dict__["data"], key)

    def check_images(self, indices=None) -> None:
        """Check only the kept items' images (see :func:`check_images`)."""
        kept = range(self.n) if indices is None else [i % self.n for i in indices]
        check_images(self.data, kept)


def check_images(data: Dataset, indices=None) -> None:
    """Check up front that the images of `data` can be read (CelebA: on disk and decodable,
    the bad file named), so a broken copy stops training before it starts, not hours into an
    epoch. Rendered datasets (faces) have nothing to check."""
    check = getattr(data, "check_images", None)
    if check is not None:
        check() if indices is None else check(indices)


class FactorTargets(Dataset):
    """Pairs each image with its ground-truth factors instead of its attributes (to train the
    oracle). Needs a dataset with a ``factors`` tensor, i.e. ``faces``."""

    def __init__(self, data: Dataset):
        if getattr(data, "factors", None) is None:
            raise ValueError(f"{type(data).__name__} has no ground-truth factors; "
                             "the oracle can only be trained on the faces dataset")
        self.data, self.factors = data, data.factors

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i][0], self.factors[i]

    def __getitems__(self, indices):
        return [(img, self.factors[i]) for (img, _), i in zip(self.data.__getitems__(indices), indices)]


def stack_images(data: Dataset, indices=None) -> torch.Tensor:
    """The images at `indices` (default: all) as one (N, 3, H, W) float tensor."""
    indices = list(range(len(data))) if indices is None else [int(i) for i in indices]
    getitems = getattr(data, "__getitems__", None)
    items = getitems(indices) if getitems else [data[i] for i in indices]
    return torch.stack([img for img, _ in items])
