"""Plotting helpers shared by the chapters: the set-up every chapter runs, and image grids."""
from __future__ import annotations

import os
import random

import matplotlib.pyplot as plt
import numpy as np
import torch


def setup(seed: int = 0, threads: int | None = None) -> None:
    """What every chapter runs first: fixed seeds, a quiet plot style, few CPU threads.

    Seeding makes the numbers in the text the numbers the reader gets."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads or min(4, os.cpu_count() or 1))
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (7, 4),
        "axes.spines.top": False, "axes.spines.right": False, "axes.grid": False,
        "font.size": 10, "image.interpolation": "nearest",
    })


def to_numpy_image(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) array for imshow."""
    return img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def image_grid(images: torch.Tensor, ncols: int = 8, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """(N, 3, H, W) -> one (rows*H, cols*W, 3) array with `pad` white pixels between images."""
    n, c, h, w = images.shape
    nrows = -(-n // ncols)
    grid = torch.full((c, nrows * (h + pad) - pad, ncols * (w + pad) - pad), pad_value)
    for i, img in enumerate(images.detach().float().clamp(0, 1).cpu()):
        r, q = divmod(i, ncols)
        grid[:, r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = img
    return to_numpy_image(grid)


def show_images(images: torch.Tensor, ncols: int = 8, title: str | None = None, ax=None, scale: float = 0.9):
    """Show a batch of images as one grid, without axes. Returns the Axes."""
    grid = image_grid(images, ncols)
    if ax is None:
        nrows = -(-len(images) // ncols)
        _, ax = plt.subplots(figsize=(scale * ncols, scale * nrows))
    ax.imshow(grid)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def show_rows(rows: dict[str, torch.Tensor], scale: float = 0.9):
    """Several batches of the same length, one labelled row each (e.g. originals vs
    reconstructions). Returns the Figure."""
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), 1, figsize=(scale * ncols, scale * 1.15 * len(rows)), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], rows.items()):
        ax.imshow(image_grid(imgs, ncols))
        ax.set_xticks([]), ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig
