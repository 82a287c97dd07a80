"""Parts shared by the Jupyter widgets (:mod:`vaebook.explore.widgets`, :mod:`vaebook.explore.widgets_compare`):
model checks, the test faces a widget encodes, image widgets, and holding redraws while several
controls are set at once."""
from __future__ import annotations

import io
from contextlib import contextmanager

import ipywidgets as W
import torch
from PIL import Image

from ..data.loading import load_dataset, stack_images
from ..models import VAE, AutoEncoder

SLIDER_STYLE = {"description_width": "110px"}


def _check_model(model, need_vae: bool = False) -> bool:
    """True for a VAE, False for a plain autoencoder; a TypeError for anything else."""
    if not isinstance(model, AutoEncoder):
        raise TypeError(f"the widgets explore an AutoEncoder or a VAE, not {type(model).__name__}")
    if need_vae and not isinstance(model, VAE):
        raise TypeError(f"{type(model).__name__} has no KL per dim to rank its latents by; pass VAEs")
    return isinstance(model, VAE)


def _test_faces(data, n_faces: int):
    """(images (N, 3, S, S), attrs (N, A) or None, attr_names or None): the first n_faces of
    `data`, by default of the test split of the book's dataset ($VAEBOOK_DATASET)."""
    if data is None:
        data = load_dataset(None, "test", limit=n_faces)
    n = min(len(data), n_faces)
    if n < 2:
        raise ValueError(f"the widgets need at least 2 faces, got {n}")
    images = stack_images(data, range(n))
    attrs = getattr(data, "attrs", None)
    return images, (attrs[:n] if attrs is not None else None), getattr(data, "attr_names", None)


def _image(png: bytes) -> W.Image:
    w, h = Image.open(io.BytesIO(png)).size
    return W.Image(value=png, format="png", width=w, height=h)


def _blank_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (235, 235, 235)).save(buf, format="PNG")
    return buf.getvalue()


def _titled(title: str, image: W.Image) -> W.VBox:
    return W.VBox([W.HTML(f"<b>{title}</b>"), image], layout=W.Layout(align_items="center"))


class _Holder:
    """Suspends redraws while several controls are set programmatically (one redraw at the end
    instead of one per slider)."""

    def __init__(self):
        self.depth = 0

    @contextmanager
    def __call__(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    @property
    def held(self) -> bool:
        return self.depth > 0


def _psd_root(cov: torch.Tensor) -> torch.Tensor:
    """A matrix R with R Rᵀ = cov for a symmetric PSD (possibly singular) covariance."""
    w, v = torch.linalg.eigh(cov.double())
    return (v * w.clamp(min=0).sqrt()).float()
