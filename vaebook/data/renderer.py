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

import mmap
import multiprocessing
import os
import sys
import warnings

import numpy as np
import torch

from . import faceparts
from .drawing import IMAGE_SIZE, PX, cos, sin  # noqa: F401  (part of the public API)
from .factors import F, as_float64


def seed_from_factors(f: np.ndarray) -> np.ndarray:
    """Default noise seed: a function of background_hue only, so that editing any other factor
    leaves the background texture as it was."""
    return np.rint(f[:, F["background_hue"]] * 2.0 ** 31).astype(np.int64)


def noise_seeds(f: np.ndarray, noise_seed=None) -> np.ndarray:
    """(N,) int64 background seeds: the given ones, or :func:`seed_from_factors`."""
    if noise_seed is None:
        return seed_from_factors(f)
    return np.asarray(torch.as_tensor(noise_seed, dtype=torch.int64).cpu(), dtype=np.int64).reshape(-1)


def render_array(factors, noise_seed=None) -> np.ndarray:
    """(N, F) factors -> (N, 3, 64, 64) float64 images in [0, 1], drawn as one batch (numpy, CPU)."""
    f = as_float64(factors)
    seed = noise_seeds(f, noise_seed)
    c = (np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5) * PX - 1.0
    x, y = c.reshape(1, 1, -1), c.reshape(1, -1, 1)
    g = faceparts.geometry(f, x, y)
    img = faceparts.background(g, x, y, seed)
    for part in faceparts.PARTS:
        part(img, g, x, y)
    return np.clip(img, 0.0, 1.0, out=img)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float64 images in [0, 1] -> uint8, rounding half up (floor(255·v + 0.5): exact ops).
    Overwrites `img` (the same three roundings, without two image-sized temporaries)."""
    img *= 255.0
    img += 0.5
    return np.floor(img, out=img).astype(np.uint8)


def render(factors, noise_seed=None, workers: int | None = None) -> torch.Tensor:
    """(N, F) factors -> (N, 3, 64, 64) float32 images in [0, 1], on the factors' device.

    `noise_seed` ((N,) int64) picks the background texture; by default it is derived from
    ``background_hue``, so equal factors always give equal images and editing any other factor
    leaves the background untouched. The dataset passes the image index. Drawing runs on the
    CPU in float64 (see the module docstring), in batches over `workers` processes
    (:func:`draw`); the result is moved to the factors' device."""
    device = factors.device if isinstance(factors, torch.Tensor) else torch.device("cpu")
    f = as_float64(factors)
    images = draw(f, noise_seeds(f, noise_seed), np.float32, workers)
    return torch.from_numpy(images).to(device)


def render_uint8(factors, noise_seed=None, workers: int | None = None) -> np.ndarray:
    """(N, F) factors -> (N, 3, 64, 64) uint8 images: what the dataset stores."""
    f = as_float64(factors)
    return draw(f, noise_seeds(f, noise_seed), np.uint8, workers)


def draw(f: np.ndarray, seed: np.ndarray, dtype, workers: int | None = None) -> np.ndarray:
    """Draw (N, F) float64 factors into (N, 3, 64, 64) images of `dtype` (uint8 or float32).

    Two kinds of speed, neither of which can change a bit. Across images: each call to
    :func:`render_array` draws ``BATCH`` images at once, a batch small enough that its float64
    arrays stay in the CPU's cache, and every image's pixels depend on its own factors only.
    Across cores: from ``PARALLEL_FROM`` images on, `workers` processes (default: every core
    this process may use) each draw a contiguous range of whole batches into one shared output
    array. The processes are forked, so they start with the factors in memory and nothing is
    pickled; they run the same numpy code as a single process would, so the images are the same
    whatever the number of workers."""
    n = len(f)
    workers = usable_cores() if workers is None else max(1, int(workers))
    if n < PARALLEL_FROM or not _can_fork():
        workers = 1
    k = min(workers, -(-n // BATCH)) or 1
    ends = [min(n, BATCH * (-(-n // BATCH) * j // k)) for j in range(k + 1)]   # whole batches
    shape = (n, 3, IMAGE_SIZE, IMAGE_SIZE)
    if k == 1:
        out = np.empty(shape, dtype)
        _draw_range(out, f, seed, 0, n)
        return out
    buf = mmap.mmap(-1, max(1, int(np.prod(shape)) * np.dtype(dtype).itemsize))  # shared by fork
    out = np.frombuffer(buf, dtype).reshape(shape)
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():   # Python ≥ 3.12 warns on forking a threaded process; the
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        children = [ctx.Process(target=_draw_range, args=(out, f, seed, lo, hi), daemon=True)
                    for lo, hi in zip(ends[1:-1], ends[2:])]   # children run numpy only
        for child in children:
            child.start()
    try:
        _draw_range(out, f, seed, ends[0], ends[1])
    finally:
        for child in children:
            child.join()
    if any(child.exitcode != 0 for child in children):
        raise RuntimeError("a faces drawing process failed (its error is printed above)")
    images = out.copy()
    del out
    buf.close()
    return images


BATCH = 64             # images per render_array call
PARALLEL_FROM = 256    # fewer images are drawn in this process: a fork would cost more than it saves


def _draw_range(out: np.ndarray, f: np.ndarray, seed: np.ndarray, lo: int, hi: int) -> None:
    for i in range(lo, hi, BATCH):
        j = min(i + BATCH, hi)
        img = render_array(f[i:j], seed[i:j])
        out[i:j] = to_uint8(img) if out.dtype == np.uint8 else img


def usable_cores() -> int:
    """The number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _can_fork() -> bool:
    """Forking is safe on Linux, and allowed outside daemon processes (DataLoader workers)."""
    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon
