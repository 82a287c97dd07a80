"""Drawing primitives for the faces renderer, in portable float64 arithmetic.

Signed distances turned into coverage (:func:`cover`), shapes (:func:`ellipse`,
:func:`rounded_box`, :func:`segment`), compositing (:func:`paint`), colours (:func:`hsv`),
smooth value noise, and sine and cosine built from + and × only. Every function keeps to the
operations listed in :mod:`vaebook.data.renderer`'s docstring, so its results are the same bits on
every CPU. Coordinates run from -1 to 1 across the image, y downwards; one pixel is PX wide.
"""
from __future__ import annotations

import math

import numpy as np

IMAGE_SIZE = 64
PX = 2.0 / IMAGE_SIZE

# ------------------------------------------------------------------------- portable arithmetic
# Sine and cosine from + and × only: Cody–Waite reduction by π/2 (the first part of π/2 has 33
# significant bits, so k·PIO2_HI is exact for |k| < 2**20), then fdlibm's kernel polynomials on
# [-π/4, π/4] (accurate to about 1e-16; what matters here is that they are the same everywhere).
PIO2_HI, PIO2_LO = 1.57079632673412561417e+00, 6.07710050650619224932e-11
_SIN = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
        2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
        -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


def horner(z: np.ndarray, coefs) -> np.ndarray:
    acc = np.full_like(z, coefs[-1])
    for c in coefs[-2::-1]:
        acc = acc * z + c
    return acc


def sin(x: np.ndarray, shift: int = 0) -> np.ndarray:
    """sin(x) (or cos(x) with shift=1, as sin(x + π/2)) for |x| < 1e5, elementwise, from + and ×."""
    x = np.asarray(x, dtype=np.float64)
    k = np.floor(x * (2.0 / math.pi) + 0.5)
    r = (x - k * PIO2_HI) - k * PIO2_LO                   # x − kπ/2, in [-π/4, π/4]
    z = r * r
    s = r + (r * z) * horner(z, _SIN)
    c = (1.0 - 0.5 * z) + (z * z) * horner(z, _COS)
    quadrant = (k.astype(np.int64) + shift) & 3           # sin(r + qπ/2) = s, c, −s, −c
    return np.where(quadrant == 0, s, np.where(quadrant == 1, c, np.where(quadrant == 2, -s, -c)))


def cos(x: np.ndarray) -> np.ndarray:
    return sin(x, shift=1)

# ------------------------------------------------------------------------------- primitives


def cover(d: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Signed distance -> coverage in [0, 1], ramping over `soft` pixels."""
    return np.clip(d * (-1.0 / (soft * PX)) + 0.5, 0.0, 1.0)


def ellipse(x, y, cx, cy, rx, ry, soft: float = 1.0) -> np.ndarray:
    """Coverage of an axis-aligned ellipse (approximate distance, exact on circles)."""
    dx, dy = (x - cx) / rx, (y - cy) / ry
    return cover((np.sqrt(dx * dx + dy * dy) - 1.0) * np.sqrt(np.multiply(rx, ry)), soft)


def crop(a: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """The rows and columns of an array that broadcasts over (..., h, w); axes of size 1 stay."""
    return a[..., rows if a.shape[-2] > 1 else slice(None), cols if a.shape[-1] > 1 else slice(None)]


def paint(img: np.ndarray, alpha: np.ndarray, rgb) -> None:
    """Composite colour `rgb` ((N,3,1,1), (1,3,1,1) or per pixel) over img with coverage alpha
    (N,h,w), in place: img + alpha·(rgb − img). A colour that varies per pixel may be given as
    a function of the (rows, cols) slices painted, so that it is computed there only.

    Only the rectangle where some image of the batch has alpha ≠ 0 is painted: elsewhere the
    expression is img + (±0), which is img exactly, so skipping it changes no bit, only the time
    (most parts cover a tenth of their band). One temporary, updated in place: the same three
    roundings as the expression, without allocating three image-sized arrays."""
    alpha = np.broadcast_to(alpha, img.shape[:1] + img.shape[2:])
    touched = np.any(alpha, axis=0)                                   # (h, w): alpha ≠ 0 somewhere
    rows, cols = np.flatnonzero(touched.any(axis=1)), np.flatnonzero(touched.any(axis=0))
    if len(rows) == 0:
        return
    r, c = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    sub = img[:, :, r, c]
    colour = rgb(r, c) if callable(rgb) else crop(np.asarray(rgb), r, c)
    change = np.subtract(colour, sub)
    change *= alpha[:, None, r, c]
    sub += change


def rgb(r: float, g: float, b: float) -> np.ndarray:
    return np.array([r, g, b]).reshape(1, 3, 1, 1)


def hsv(h: np.ndarray, s: float, v: float) -> np.ndarray:
    """HSV -> RGB for (N,) hues and fixed saturation/value; returns (N,3,1,1)."""
    t = np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0
    k = t - 6.0 * np.floor(t / 6.0)                      # t mod 6
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb[:, :, None, None]


def hash32(x: np.ndarray) -> np.ndarray:
    """A 32-bit integer hash in int64 arithmetic (every product stays below 2**63)."""
    m = 0xFFFFFFFF
    x = x & m
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & m
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & m
    return x ^ (x >> 16)


def bilinear(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source cells i0, i1 and weight w of each output pixel (as F.interpolate, align_corners=False)."""
    src = np.clip((np.arange(IMAGE_SIZE) + 0.5) * (cells / IMAGE_SIZE) - 0.5, 0.0, cells - 1.0)
    i0 = np.floor(src).astype(np.int64)
    return i0, np.minimum(i0 + 1, cells - 1), src - i0


def value_noise(seed: np.ndarray, cells: int, salt: int) -> np.ndarray:
    """(N,) int64 seeds -> (N,S,S) smooth noise in [-1, 1], from a hashed cells×cells grid,
    upsampled bilinearly (rows, then columns; elementwise, so no summation order to vary).
    The grid is held transposed, (N, column, row), so that both gathers copy whole rows."""
    grid = np.arange(cells * cells, dtype=np.int64).reshape(1, cells, cells)
    h = hash32(hash32(seed.reshape(-1, 1, 1) * 0x9E37 + salt) + grid)
    v = (h.astype(np.float64) * (2.0 / 2 ** 32) - 1.0).transpose(0, 2, 1).copy()
    i0, _, w = bilinear(cells)
    rows = v[:, :, i0] + w * step(v, axis=2)[:, :, i0]                     # (N, column, S)
    out = np.take(rows, i0, axis=1) + w[:, None] * np.take(step(rows, axis=1), i0, axis=1)
    return out.transpose(0, 2, 1)


def step(v: np.ndarray, axis: int) -> np.ndarray:
    """v[i1] − v[i0] for each source cell i0 along `axis` (i1 = i0 + 1, or i0 itself at the
    last cell, see :func:`bilinear`): the subtractions of the upsampling, once per cell."""
    d = np.zeros_like(v)
    lo, hi = [slice(None)] * v.ndim, [slice(None)] * v.ndim
    lo[axis], hi[axis] = slice(0, -1), slice(1, None)
    np.subtract(v[tuple(hi)], v[tuple(lo)], out=d[tuple(lo)])
    return d


def band(lo: float, hi: float) -> slice:
    """The pixels covering image coordinates lo..hi. Bands are fixed numbers, never computed
    from the batch, so an image is drawn the same whatever else is in its batch; each band
    contains every pixel its part can touch (painting with coverage 0 leaves a pixel exactly as
    it was, so a band changes only the time taken, never the image)."""
    return slice(max(0, int((lo + 1) / PX)), min(IMAGE_SIZE, math.ceil((hi + 1) / PX)))


def region(img, x, y, rows=(-1.0, 1.0), cols=(-1.0, 1.0)):
    """A view of img for the given bands of rows and columns, and the x and y grids of that view."""
    r, c = band(*rows), band(*cols)
    return img[:, :, r, c], x[:, :, c], y[:, r]


def rounded_box(dx, dy, half_w, half_h, radius):
    """Coverage of a box centred at dx = dy = 0 with rounded corners (exact distance)."""
    qx, qy = np.abs(dx) - (half_w - radius), np.abs(dy) - (half_h - radius)
    ox, oy = np.maximum(qx, 0.0), np.maximum(qy, 0.0)
    return cover(np.sqrt(ox * ox + oy * oy) + np.minimum(np.maximum(qx, qy), 0.0) - radius)


def segment(px_, py_, ax, ay, bx, by, half):
    """Signed distance to a segment A-B drawn `half` thick on each side."""
    pax, pay = px_ - ax, py_ - ay
    bax, bay = bx - ax, by - ay
    h = np.clip((pax * bax + pay * bay) / (bax * bax + bay * bay), 0.0, 1.0)
    qx, qy = pax - bax * h, pay - bay * h
    return np.sqrt(qx * qx + qy * qy) - half
