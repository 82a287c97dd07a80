"""A tiny fake CelebA on disk, in either real layout, for testing :mod:`vaebook.data.celeba`.

Every image is 178×218 like the aligned CelebA images: a green frame (``BORDER``) around the
148×148 centre square that :class:`vaebook.data.celeba.CelebA` should keep. That square is filled
with a colour unique to the image (:func:`centre_colour`) inside a ``RING_WIDTH``-pixel black
ring along its edge, so a crop that is too large shows green and one too small loses the ring.
The sizes are written out here, not taken from the module, so the tests check its CROP.
Annotation files use the exact formats of the real ones.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vaebook.data.celeba import ATTR_NAMES

WIDTH, HEIGHT = 178, 218
SQUARE = 148  # the centre square a correct crop keeps
BORDER = (0, 255, 0)
RING, RING_WIDTH = (0, 0, 0), 8


def filename(i: int) -> str:
    """CelebA's name for image ``i`` (0-based): 000001.jpg, 000002.jpg, ..."""
    return f"{i + 1:06d}.jpg"


def centre_colour(i: int) -> tuple[int, int, int]:
    """The RGB colour of image ``i``'s centre; red and blue tell the images apart."""
    return ((40 + 17 * i) % 256, 40, (220 - 13 * i) % 256)


def partition_code(i: int) -> int:
    """Interleaved split: pattern train, valid, train, test (n=12 -> 6 / 3 / 3)."""
    return (0, 1, 0, 2)[i % 4]


def attr_values(n: int) -> np.ndarray:
    """The (n, 40) attributes in CelebA's -1/1 coding: 1 where (image + attribute) % 3 == 0."""
    i, j = np.meshgrid(np.arange(n), np.arange(len(ATTR_NAMES)), indexing="ij")
    return np.where((i + j) % 3 == 0, 1, -1)


def _image(i: int) -> Image.Image:
    pixels = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    pixels[:] = BORDER
    top, left = (HEIGHT - SQUARE) // 2, (WIDTH - SQUARE) // 2
    pixels[top:top + SQUARE, left:left + SQUARE] = RING
    w = RING_WIDTH
    pixels[top + w:top + SQUARE - w, left + w:left + SQUARE - w] = centre_colour(i)
    return Image.fromarray(pixels)


def make_celeba_fixture(root, layout: str = "torchvision", n: int = 12) -> Path:
    """Write ``n`` images and both annotation files under ``root`` in the given layout
    ("torchvision" or "kaggle"); return the root to hand to ``CelebA(root=...)``."""
    root = Path(root)
    if layout == "torchvision":
        base = root / "celeba"
        images = base / "img_align_celeba"
    elif layout == "kaggle":
        base = root
        images = root / "img_align_celeba" / "img_align_celeba"
    else:
        raise ValueError(f"layout must be 'torchvision' or 'kaggle', got {layout!r}")
    images.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _image(i).save(images / filename(i), quality=95, subsampling=0)
    values, names = attr_values(n), [filename(i) for i in range(n)]
    if layout == "torchvision":
        # Real format: count, names (with a trailing space), then width-2 right-aligned values.
        rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, values)]
        (base / "list_attr_celeba.txt").write_text(
            "\n".join([str(n), " ".join(ATTR_NAMES) + " ", *rows]) + "\n")
        (base / "list_eval_partition.txt").write_text(
            "".join(f"{name} {partition_code(i)}\n" for i, name in enumerate(names)))
    else:
        rows = [",".join([name, *map(str, row)]) for name, row in zip(names, values)]
        (base / "list_attr_celeba.csv").write_text(
            "\n".join([",".join(["image_id", *ATTR_NAMES]), *rows]) + "\n")
        (base / "list_eval_partition.csv").write_text(
            "image_id,partition\n"
            + "".join(f"{name},{partition_code(i)}\n" for i, name in enumerate(names)))
    return root
