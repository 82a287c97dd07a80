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

Coordinates run from -1 to 1 across the image, y downwards; one pixel is PX wide. Each part
computes a signed distance d (negative inside) and turns it into coverage with a one-pixel
linear ramp, which is what anti-aliasing by box filtering gives for a straight edge. Work that
depends only on x (shape (N,1,W)) or only on y ((1,H,1)) stays 1-D; only the final combination is
per pixel. Parts that live in a known band of rows are drawn on that band only.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .factors import F, HAIR_STYLES, as_float64, box_arrays

IMAGE_SIZE = 64
PX = 2.0 / IMAGE_SIZE
_HAIR_RGB = np.array([[0.13, 0.11, 0.11], [0.93, 0.79, 0.47], [0.46, 0.29, 0.16],
                      [0.70, 0.70, 0.72], [0.74, 0.32, 0.14]])
_SKIN_RGB = np.array([[1.00, 0.88, 0.79], [0.94, 0.74, 0.60], [0.78, 0.55, 0.40],
                      [0.47, 0.31, 0.22]])
# hair cap (drawn over the face) and hair volume behind the head, per style:
# extra half-width, extra half-height of the cap; back volume: extra width, height, drop of centre
_CAP = np.array([[0.04, 0.06], [0.05, 0.07], [0.04, 0.06], [0.0, 0.0], [0.07, 0.09], [0.03, 0.045]])
_BACK = np.array([[0.0, 0.0, 0.0], [0.11, 0.38, 0.30], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                  [0.13, 0.13, 0.04], [0.0, 0.0, 0.0]])

# ------------------------------------------------------------------------- portable arithmetic
# Sine and cosine from + and × only: Cody–Waite reduction by π/2 (the first part of π/2 has 33
# significant bits, so k·PIO2_HI is exact for |k| < 2**20), then fdlibm's kernel polynomials on
# [-π/4, π/4] (accurate to about 1e-16; what matters here is that they are the same everywhere).
PIO2_HI, PIO2_LO = 1.57079632673412561417e+00, 6.07710050650619224932e-11
_SIN = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
        2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_COS = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
        -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)


def _horner(z: np.ndarray, coefs) -> np.ndarray:
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
    s = r + (r * z) * _horner(z, _SIN)
    c = (1.0 - 0.5 * z) + (z * z) * _horner(z, _COS)
    quadrant = (k.astype(np.int64) + shift) & 3           # sin(r + qπ/2) = s, c, −s, −c
    return np.where(quadrant == 0, s, np.where(quadrant == 1, c, np.where(quadrant == 2, -s, -c)))


def cos(x: np.ndarray) -> np.ndarray:
    return sin(x, shift=1)

# ------------------------------------------------------------------------------ drawing parts


def _cover(d: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Signed distance -> coverage in [0, 1], ramping over `soft` pixels."""
    return np.clip(d * (-1.0 / (soft * PX)) + 0.5, 0.0, 1.0)


def _ellipse(x, y, cx, cy, rx, ry, soft: float = 1.0) -> np.ndarray:
    """Coverage of an axis-aligned ellipse (approximate distance, exact on circles)."""
    dx, dy = (x - cx) / rx, (y - cy) / ry
    return _cover((np.sqrt(dx * dx + dy * dy) - 1.0) * np.sqrt(np.multiply(rx, ry)), soft)


def _paint(img: np.ndarray, alpha: np.ndarray, rgb) -> None:
    """Composite colour `rgb` ((N,3,1,1), (1,3,1,1) or per pixel) over img with coverage alpha
    (N,h,w), in place: img + alpha·(rgb − img). One temporary, updated in place: the same
    three roundings as the expression, without allocating three image-sized arrays."""
    change = np.subtract(rgb, img)
    change *= alpha[:, None]
    img += change


def _rgb(r: float, g: float, b: float) -> np.ndarray:
    return np.array([r, g, b]).reshape(1, 3, 1, 1)


def _hsv(h: np.ndarray, s: float, v: float) -> np.ndarray:
    """HSV -> RGB for (N,) hues and fixed saturation/value; returns (N,3,1,1)."""
    t = np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0
    k = t - 6.0 * np.floor(t / 6.0)                      # t mod 6
    rgb = v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return rgb[:, :, None, None]


def _hash32(x: np.ndarray) -> np.ndarray:
    """A 32-bit integer hash in int64 arithmetic (every product stays below 2**63)."""
    m = 0xFFFFFFFF
    x = x & m
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & m
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & m
    return x ^ (x >> 16)


def _bilinear(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source cells i0, i1 and weight w of each output pixel (as F.interpolate, align_corners=False)."""
    src = np.clip((np.arange(IMAGE_SIZE) + 0.5) * (cells / IMAGE_SIZE) - 0.5, 0.0, cells - 1.0)
    i0 = np.floor(src).astype(np.int64)
    return i0, np.minimum(i0 + 1, cells - 1), src - i0


def _value_noise(seed: np.ndarray, cells: int, salt: int) -> np.ndarray:
    """(N,) int64 seeds -> (N,S,S) smooth noise in [-1, 1], from a hashed cells×cells grid,
    upsampled bilinearly (rows, then columns; elementwise, so no summation order to vary)."""
    grid = np.arange(cells * cells, dtype=np.int64).reshape(1, cells, cells)
    h = _hash32(_hash32(seed.reshape(-1, 1, 1) * 0x9E37 + salt) + grid)
    v = h.astype(np.float64) * (2.0 / 2 ** 32) - 1.0
    i0, i1, w = _bilinear(cells)
    rows = v[:, i0, :] + w[None, :, None] * (v[:, i1, :] - v[:, i0, :])
    return rows[:, :, i0] + w * (rows[:, :, i1] - rows[:, :, i0])


def _band(lo: float, hi: float) -> slice:
    """The pixels covering image coordinates lo..hi. Bands are fixed numbers, never computed
    from the batch, so an image is drawn the same whatever else is in its batch; each band
    contains every pixel its part can touch (painting with coverage 0 leaves a pixel exactly as
    it was, so a band changes only the time taken, never the image)."""
    return slice(max(0, int((lo + 1) / PX)), min(IMAGE_SIZE, math.ceil((hi + 1) / PX)))


def _region(img, x, y, rows=(-1.0, 1.0), cols=(-1.0, 1.0)):
    """A view of img for the given bands of rows and columns, and the x and y grids of that view."""
    r, c = _band(*rows), _band(*cols)
    return img[:, :, r, c], x[:, :, c], y[:, r]


def _background(g, x, y, seed):
    """Pastel colour with a soft vertical gradient (lighter towards the top) and blotchy texture."""
    base = _hsv(g["bg_hue"], 0.35, 0.9)
    tex = 0.06 * _value_noise(seed, 6, 1) + 0.025 * _value_noise(seed, 24, 2) + (1.04 - 0.05 * (y + 1))
    return np.clip(base * tex[:, None], 0.0, 1.0)


def _hair_back(img, g, x, y):
    """Hair volume behind the head: long hair falls to the shoulders, curls puff out, a bun."""
    back = _BACK[g["style"]]
    rx, ry = (g["a"] + back[:, 0]).reshape(-1, 1, 1), (g["b"] + back[:, 1]).reshape(-1, 1, 1)
    cy = (g["cy"] + back[:, 2]).reshape(-1, 1, 1)
    alpha = _ellipse(x, y, g["cx3"], cy, rx, ry) * (back[:, 1] > 0).reshape(-1, 1, 1)
    is_bun = (g["style"] == HAIR_STYLES.index("bun")).reshape(-1, 1, 1)
    bun = _ellipse(x, y, g["cx3"], g["cy3"] - g["b3"] - 0.07, 0.14, 0.12) * is_bun
    _paint(img, np.maximum(alpha, bun), g["hair_rgb"] * (0.82 + 0.1 * g["strands"]))


def _rounded_box(dx, dy, half_w, half_h, radius):
    """Coverage of a box centred at dx = dy = 0 with rounded corners (exact distance)."""
    qx, qy = np.abs(dx) - (half_w - radius), np.abs(dy) - (half_h - radius)
    ox, oy = np.maximum(qx, 0.0), np.maximum(qy, 0.0)
    return _cover(np.sqrt(ox * ox + oy * oy) + np.minimum(np.maximum(qx, qy), 0.0) - radius)


def _neck_and_shirt(img, g, x, y):
    """Neck, then a jacket over the shoulders with a V showing a white shirt, then the tie."""
    nx, top = g["cx3"] * 0.8, g["shirt_top"].reshape(-1, 1, 1)
    sub, xs, ys = _region(img, x, y, cols=(-0.3, 0.3))
    neck = _cover(np.abs(xs - nx) - g["neck_w"]) * (ys > g["cy3"])
    shade = 0.72 + 0.18 * np.clip((ys - g["cy3"] - g["b3"]) / 0.2, 0.0, 1.0)  # shadow under the chin
    _paint(sub, neck, g["skin"] * shade[:, None])
    sub, _, ys = _region(img, x, y, rows=(0.35, 1.0))
    jacket = _rounded_box(x - g["cx3"] * 0.5, ys - top - 0.6, 0.98, 0.6, 0.45)
    _paint(sub, jacket, g["shirt_rgb"] * (1.0 - 0.25 * np.clip(ys - top, 0.0, 1.0))[:, None])
    # the V opening: |x - nx| < 0.42 (apex - y); 0.92 = 1/sqrt(1 + 0.42²) makes it a distance
    v_dist = (np.abs(x - nx) - 0.42 * (top + 0.3 - ys)) * 0.92
    v = _cover(v_dist) * jacket
    _paint(sub, v, _rgb(0.95, 0.95, 0.96))
    _paint(sub, _cover(np.abs(v_dist) - 0.012) * jacket, g["shirt_rgb"] * 0.6)  # lapel edges
    # the tie: a knot, then a blade widening downwards, only inside the V
    t = ys - top
    width = np.where(t < 0.07, 0.045 - 0.1 * np.abs(t - 0.035), 0.022 + 0.12 * (t - 0.07))
    tie = _cover(np.abs(x - nx) - width) * (t > 0.0) * v * g["tie3"]
    _paint(sub, tie, g["tie_rgb"] * (1.0 - 0.35 * (t < 0.07))[:, None])


def _face(img, g, x, y):
    """Ears, then the face: an egg shape (narrower jaw) with a soft radial light from top left."""
    sub, x, ys = _region(img, x, y, rows=(-0.4, 0.2), cols=(-0.7, 0.7))
    xm = np.abs(x - g["cx3"])
    ear_x, ear_y = g["a3"] * 0.97, g["cy3"] + 0.03
    _paint(sub, _ellipse(xm, ys, ear_x, ear_y, 0.065, 0.1), g["skin"] * 0.9)
    _paint(sub, _ellipse(xm, ys, ear_x + 0.01, ear_y, 0.03, 0.055, soft=2.0) * 0.5, g["skin"] * 0.7)
    dx, dy = (x - g["cx3"]) / g["a3"], (y - g["cy3"]) / g["b3"]
    low = np.clip(dy, 0.0, 1.0)
    dx = dx * (1.0 / (1.0 - 0.22 * (low * low)))          # taper the lower half
    r2 = dx * dx + dy * dy
    face = _cover((np.sqrt(r2) - 1.0) * np.sqrt(g["a3"] * g["b3"]))
    lx, ly = dx + 0.35, dy + 0.45
    light = 1.07 - 0.12 * (lx * lx + ly * ly) * 0.5 - 0.06 * (r2 * r2)
    _paint(img[:, :, :, _band(-0.7, 0.7)], face, g["skin"] * light[:, None])
    blush = _ellipse(xm, ys, g["ex3"] + 0.03, g["ey3"] + 0.17, 0.075, 0.05, soft=4.0)
    _paint(sub, blush * (0.55 * g["blush3"]), _rgb(0.96, 0.42, 0.48))
    nose = _ellipse(x, ys, g["cx3"] + 0.015, g["cy3"] + 0.2 * g["b3"], 0.035, 0.05, soft=2.5)
    _paint(sub, nose * 0.45, g["skin"] * 0.68)


def _earrings(img, g, x, y):
    """A gold dot with a darker rim hanging under each ear lobe."""
    sub, x, ys = _region(img, x, y, rows=(-0.2, 0.3), cols=(-0.7, 0.7))
    xm = np.abs(x - g["cx3"])
    ex, ey, on = g["a3"] * 0.98, g["cy3"] + 0.14, g["earrings3"]
    _paint(sub, _ellipse(xm, ys, ex, ey, 0.05, 0.05) * on, _rgb(0.55, 0.38, 0.05))
    _paint(sub, _ellipse(xm, ys, ex, ey, 0.03, 0.03) * on, _rgb(1.0, 0.86, 0.25))


def _eyes(img, g, x, y):
    """Eye whites with a dark lid line, pupils moved by the gaze (clipped to the whites)."""
    sub, x, ys = _region(img, x, y, rows=(-0.4, 0.05), cols=(-0.5, 0.5))
    xm = np.abs(x - g["cx3"])
    dark = _rgb(0.12, 0.09, 0.09)
    _paint(sub, _ellipse(xm, ys, g["ex3"], g["ey3"] - 0.006, 0.1, 0.075), dark * 0.8 + g["skin"] * 0.2)
    white = _ellipse(xm, ys, g["ex3"], g["ey3"], 0.085, 0.062)
    _paint(sub, white, _rgb(0.98, 0.98, 0.98))
    # pupils are mirror images about the face axis moved by the gaze, so one shape draws both
    pm = np.abs(x - g["cx3"] - g["gaze_x3"])
    _paint(sub, _ellipse(pm, ys, g["ex3"], g["ey3"] + g["gaze_y3"], 0.045, 0.05) * white, dark)


def _segment(px_, py_, ax, ay, bx, by, half):
    """Signed distance to a segment A-B drawn `half` thick on each side."""
    pax, pay = px_ - ax, py_ - ay
    bax, bay = bx - ax, by - ay
    h = np.clip((pax * bax + pay * bay) / (bax * bax + bay * bay), 0.0, 1.0)
    qx, qy = pax - bax * h, pay - bay * h
    return np.sqrt(qx * qx + qy * qy) - half


def _brows(img, g, x, y):
    """Eyebrows in a darker shade of the hair colour, tilted by eyebrow_angle."""
    sub, x, ys = _region(img, x, y, rows=(-0.55, -0.05), cols=(-0.5, 0.5))
    xm = np.abs(x - g["cx3"])
    by, tilt = g["ey3"] - 0.125, g["brow_tilt3"]
    d = _segment(xm, ys, g["ex3"] - 0.075, by - tilt, g["ex3"] + 0.075, by + tilt * 0.6, 0.02)
    _paint(sub, _cover(d), g["hair_rgb"] * 0.6 + 0.06)


def _glasses(img, g, x, y):
    """Round dark frames with a faint blue lens tint, a bridge and arms to the ears."""
    sub, x, ys = _region(img, x, y, rows=(-0.4, 0.1), cols=(-0.7, 0.7))
    xm = np.abs(x - g["cx3"])
    on, radius, cyl = g["glasses3"], g["lens_r3"], g["ey3"] + 0.005
    dx, dy = xm - g["ex3"], ys - cyl
    r = np.sqrt(dx * dx + dy * dy)
    _paint(sub, _cover(r - radius) * on * 0.25, _rgb(0.75, 0.88, 1.0))
    ring = _cover(np.abs(r - radius) - 0.02)
    band = _cover(np.abs(ys - cyl + 0.02) - 0.016)  # a thin horizontal line at lens height
    inner = xm < g["ex3"] - radius + 0.01
    outer = (xm > g["ex3"] + radius - 0.01) & (xm < g["a3"] * 1.02)
    frame = np.maximum(ring, band * (inner | outer)) * on
    _paint(sub, frame, _rgb(0.1, 0.1, 0.12))


def _mouth(img, g, x, y):
    """Mouth as a curve y(u) = centre - lift u² - tilt u; the opening below it shows teeth."""
    sub, x, ys = _region(img, x, y, rows=(-0.15, 0.55), cols=(-0.4, 0.4))
    w, lift, tilt, gap = g["mouth_w3"], g["lift3"], g["tilt3"], g["gap3"]
    u = np.clip((x - g["cx3"]) / w, -1.0, 1.0)
    curve = g["mouth_y3"] - lift * u * u - tilt * u                 # (N,1,W), y is down
    slope = (-tilt - 2.0 * lift * u) / w
    ends = _cover(np.abs(x - g["cx3"]) - w)                         # rounded-off corners
    open_ = (1.0 - u * u) * gap
    inside = _cover(np.maximum(curve - ys, ys - curve - open_)) * ends
    _paint(sub, inside, _rgb(0.42, 0.1, 0.12))
    teeth = _cover(np.maximum(curve - ys, ys - curve - 0.45 * open_)) * ends * (gap > 0.04)
    _paint(sub, teeth, _rgb(0.97, 0.96, 0.92))
    line = np.abs(ys - curve) / np.sqrt(1.0 + slope * slope) - 0.024
    _paint(sub, _cover(line) * ends, _rgb(0.62, 0.22, 0.24) * 0.8 + g["skin"] * 0.2)


def _hairline(style, u, cy, b):
    """(N,1,W) y of the hairline for each face's style, as a function of u = x/half-width."""
    u2 = u * u
    au = np.abs(u)
    lines = [
        cy - 0.6 * b + 0.75 * b * (u2 * u2),                                       # short
        cy - 0.68 * b + 0.3 * b * au + 1.2 * b * np.maximum(au - 0.55, 0.0),       # long
        cy - 0.32 * b - 0.025 * np.abs(sin(u * 19.0)) + 0.8 * b * (u2 * u2 * u2),  # bangs
        np.full_like(u, -9.0),                                                     # bald
        cy - 0.52 * b + 0.7 * b * (u2 * u2) + 0.02 * sin(u * 23.0),                # curly
        cy - 0.62 * b + 0.55 * b * (u2 * u2),                                      # bun
    ]
    return np.stack(lines)[style, np.arange(len(style))]


def _hair_front(img, g, x, y):
    """The hair cap over the top of the head, cut along a hairline that depends on the style."""
    rows = _band(-1.0, 0.5)
    sub, ys = img[:, :, rows], y[:, rows]
    cap = _CAP[g["style"]]
    cx, cy, a, b = g["cx3"], g["cy3"], g["a3"], g["b3"]
    rx, ry = a + cap[:, 0].reshape(-1, 1, 1), b + cap[:, 1].reshape(-1, 1, 1)
    dx, dy = (x - cx) / rx, (ys - cy + 0.03) / ry
    curly = (g["style"] == HAIR_STYLES.index("curly")).reshape(-1, 1, 1)
    r2 = np.maximum(dx * dx + dy * dy + curly * (0.07 * g["curls"][:, 0, rows]), 0.0)
    alpha = _cover((np.sqrt(r2) - 1.0) * np.sqrt(rx * ry))
    u = np.clip((x - cx) / a, -1.3, 1.3)
    alpha = alpha * _cover(ys - _hairline(g["style"], u, cy, b))
    colour = g["hair_rgb"] * (0.95 + 0.12 * g["strands"][:, :, rows]
                              - 0.25 * np.clip((ys - cy + b) / b, 0.0, 1.0)[:, None])
    _paint(sub, alpha, colour)


def _geometry(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image drawing parameters; names ending in 3 are (N,1,1) for broadcasting."""
    g = box_arrays(f)
    col = lambda name: f[:, F[name]]
    v3 = lambda t: np.asarray(t, dtype=np.float64).reshape(-1, 1, 1)
    style = np.clip(np.rint(col("hair_style")), 0, len(HAIR_STYLES) - 1).astype(np.int64)
    colour = np.clip(np.rint(col("hair_colour")), 0, len(_HAIR_RGB) - 1).astype(np.int64)
    tone = np.clip(col("skin_tone"), 0.0, 1.0) * 3.0
    i = np.minimum(np.floor(tone), 2.0).astype(np.int64)
    skin = _SKIN_RGB[i] + (tone - i)[:, None] * (_SKIN_RGB[i + 1] - _SKIN_RGB[i])
    smile, asym = col("smile"), col("smile_asymmetry")
    g.update({k + "3": v3(g[k]) for k in ("cx", "cy", "a", "b", "ex", "ey")})
    g.update(
        style=style, bg_hue=col("background_hue"),
        hair_rgb=_HAIR_RGB[colour][:, :, None, None], skin=skin[:, :, None, None],
        shirt_rgb=_hsv(col("shirt_hue"), 0.5, 0.55),
        tie_rgb=_hsv(np.where(col("shirt_hue") < 0.5, col("shirt_hue") + 0.5, col("shirt_hue") - 0.5),
                     0.75, 0.7),
        shirt_top=np.minimum(g["cy"] + g["b"] + 0.13, 0.7), neck_w=v3(0.09 + 0.1 * g["a"]),
        gaze_x3=v3((col("gaze_x") - 0.5) * 0.095), gaze_y3=v3((col("gaze_y") - 0.5) * 0.045),
        brow_tilt3=v3((col("eyebrow_angle") - 0.5) * 0.07), blush3=v3(col("blush")),
        mouth_w3=v3(0.12 + 0.06 * smile), lift3=v3((smile - 0.35) * 0.15),
        tilt3=v3((asym - 0.5) * 0.085), mouth_y3=v3(g["cy"] + 0.56 * g["b"]),
        gap3=v3(0.13 * np.clip((col("mouth_open") - 0.35) / 0.65, 0.0, 1.0)),
        glasses3=v3(col("eyeglasses") > 0.5), lens_r3=v3(np.minimum(0.12, g["ex"] - 0.025)),
        earrings3=v3(col("earrings") > 0.5), tie3=v3(col("necktie") > 0.5),
    )
    # hair texture: fine vertical strands for straight hair, a bumpy pattern for curls
    # curls = cos(30x + 2 sin 23y) cos(26y + 2 sin 19x), expanded with cos(A+B) so that
    # the trigonometry runs on 1-D x and y grids and only products are per pixel
    xc, yb = x - g["cx3"], 2.0 * sin(y * 23.0)
    xa, xb = xc * 30.0, 2.0 * sin(xc * 19.0)
    wave_x = cos(xa) * cos(yb) - sin(xa) * sin(yb)
    wave_y = cos(y * 26.0) * cos(xb) - sin(y * 26.0) * sin(xb)
    g["curls"] = (wave_x * wave_y)[:, None]                              # (N,1,H,W)
    straight = (0.5 * sin(xc * 70.0))[:, None]                          # (N,1,1,W)
    g["strands"] = np.where((style == HAIR_STYLES.index("curly")).reshape(-1, 1, 1, 1),
                            g["curls"], straight)
    return g


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
    g = _geometry(f, x, y)
    img = _background(g, x, y, seed)
    for part in (_hair_back, _neck_and_shirt, _face, _earrings, _eyes, _brows, _glasses, _mouth,
                 _hair_front):
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
