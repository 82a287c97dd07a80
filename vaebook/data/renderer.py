"""Drawing a ``faces`` image from its factors, with the same bits on every machine.

Why numpy, float64 and so few kinds of operation. The book promises that an index gives the same
uint8 image everywhere, and its recorded numbers rest on that. A float computation gives the same
bits on every CPU only if every step does: the IEEE-754 operations +, −, ×, ÷ and sqrt are
correctly rounded by the standard, and comparisons, min/max, abs and floor are exact, so numpy
applying them elementwise, one operation per call (never fused into a multiply-add), returns the
same bits whether the CPU uses SSE, AVX2, AVX-512 or NEON. What can differ between CPUs, and is
therefore never used here: transcendental functions (numpy's and torch's sin, cos, exp use
vector approximations chosen per instruction set; sine and cosine here are polynomials built from
+ and ×, see :func:`sin`), matrix products and reductions (their summation order depends on the
BLAS kernel and the vector width; the bilinear upsampling is written out elementwise), and fused
multiply-adds (torch's lerp uses one). ``tests/test_faces.py`` checks the rendered splits
against committed checksums, and CI renders again under a forced lower instruction set.

The drawing lives in two modules: :mod:`vaebook.data.drawing` (primitives: each part computes a signed
distance, negative inside, and turns it into coverage with a one-pixel linear ramp, which is what
anti-aliasing by box filtering gives for a straight edge) and :mod:`vaebook.data.faceparts` (the parts
of a face, in painting order).
"""
from __future__ import annotations

import numpy as np
import torch

from . import faceparts
from .drawing import IMAGE_SIZE, PX, cos, sin  # noqa: F401  (part of the public API)
from .factors import F, as_float64


def seed_from_factors(f: np.ndarray) -> np.ndarray:
    """Default noise seed: a function of background_hue only, so that editing any other factor
    leaves the background texture as it was."""
    return np.rint(f[:, F["background_hue"]] * 2.0 ** 31).astype(np.int64)


def render_array(factors, noise_seed=None) -> np.ndarray:
    """(N, F) factors -> (N, 3, 64, 64) float64 images in [0, 1] (numpy, CPU)."""
    f = as_float64(factors)
    if noise_seed is None:
        seed = seed_from_factors(f)
    else:
        seed = np.asarray(torch.as_tensor(noise_seed, dtype=torch.int64).cpu(), dtype=np.int64).reshape(-1)
    c = (np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5) * PX - 1.0
    x, y = c.reshape(1, 1, -1), c.reshape(1, -1, 1)
    g = faceparts.geometry(f, x, y)
    img = faceparts.background(g, x, y, seed)
    for part in faceparts.PARTS:
        part(img, g, x, y)
    return np.clip(img, 0.0, 1.0)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float64 images in [0, 1] -> uint8, rounding half up (floor(255·v + 0.5): exact ops)."""
    return np.floor(img * 255.0 + 0.5).astype(np.uint8)


def render(factors, noise_seed=None) -> torch.Tensor:
    """(N, F) factors -> (N, 3, 64, 64) float32 images in [0, 1], on the factors' device.

    `noise_seed` ((N,) int64) picks the background texture; by default it is derived from
    ``background_hue``, so equal factors always give equal images and editing any other factor
    leaves the background untouched. The dataset passes the image index. Drawing runs on the
    CPU in float64 (see the module docstring); the result is moved to the factors' device."""
    device = factors.device if isinstance(factors, torch.Tensor) else torch.device("cpu")
    return torch.from_numpy(render_array(factors, noise_seed).astype(np.float32)).to(device)


def render_uint8(factors, noise_seed=None) -> np.ndarray:
    """(N, F) factors -> (N, 3, 64, 64) uint8 images: what the dataset stores."""
    return to_uint8(render_array(factors, noise_seed))
