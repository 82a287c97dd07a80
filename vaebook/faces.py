"""``faces``: the book's default dataset of 64×64 cartoon faces with known ground-truth factors.

Every image is drawn from its integer index alone: :func:`sample_factors` hashes
``(index, factor number)`` with splitmix64 into uniform numbers, so factor ``j`` of image ``i``
is the same on every machine and in every batch, and :func:`render` draws the factors with
anti-aliased signed-distance shapes, vectorised over the batch in torch (on the factors' device).
Nothing is downloaded; the rendered images are cached as one uint8 ``.npy`` file per split.

Factors (columns of :func:`sample_factors`, in this order). Continuous factors are uniform
in [0, 1]; categorical ones hold an integer code stored as a float (see ``FACTOR_LEVELS``).

====================  =====================================================================
``face_width``        0 = narrow face (half-width 11 px) ... 1 = wide face (15 px).
``face_height``       0 = short face (half-height 14 px) ... 1 = long face (18 px).
                      Together they set face size and shape (``Oval_Face``: height/width > 1.3).
``face_x``            0 = face 3 px left of centre ... 1 = 3 px right.
``face_y``            0 = face 2 px higher ... 1 = 2 px lower.
``skin_tone``         0 = very pale ... 1 = dark brown (``Pale_Skin``: below 0.15).
``hair_colour``       5 classes: 0 black, 1 blond, 2 brown, 3 gray, 4 red. When bald, only the
                      eyebrows (a darker shade of it) show it.
``hair_style``        6 classes: 0 short, 1 long, 2 bangs (fringe over the brows), 3 bald,
                      4 curly (big and bumpy), 5 bun (slicked back, bun on top).
``background_hue``    hue of the pastel background; circular: 0 and 1 are both red. It also
                      seeds the background texture when ``render`` gets no ``noise_seed``.
``shirt_hue``         hue of the jacket at the bottom (circular); the tie gets the opposite hue.
``gaze_x``            0 = pupils 1.5 px to the (image) left ... 0.5 ahead ... 1 = 1.5 px right.
``gaze_y``            0 = pupils 0.7 px up ... 1 = 0.7 px down.
``smile``             0 = frown (mouth corners 1.7 px down) ... 0.35 flat ... 1 = big smile
                      (corners 3 px up, wider mouth). ``Smiling``: above 0.6.
``smile_asymmetry``   0 = left mouth corner (image left) 1.4 px higher than the right one ...
                      0.5 symmetric ... 1 = right corner higher.
``mouth_open``        below 0.35 closed; above, the lips part, up to 4 px at 1; teeth show
                      from 0.55. ``Mouth_Slightly_Open``: above 0.5.
``eyebrow_angle``     0 = inner ends down (cross) ... 0.5 level ... 1 = inner ends up (worried).
``blush``             0 = none ... 1 = strong pink cheeks (``Rosy_Cheeks``: above 0.6).
``eyeglasses``        binary (25 % of faces): round dark frames with faintly tinted lenses.
``earrings``          binary (30 %): a gold dot about 3 px across under each ear.
``necktie``           binary (30 %): a tie of about 25 px in the V of the jacket, bottom centre.
====================  =====================================================================

The small parts (pupils, mouth-corner asymmetry, earrings, tie) cover a few pixels each, so a
plain autoencoder tends to drop them; face shape, hair, skin and background are big.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

IMAGE_SIZE = 64
RENDER_VERSION = 1  # bump whenever the drawing changes, so old caches are not reused
SPLITS: dict[str, tuple[int, int]] = {"train": (0, 60_000), "valid": (60_000, 65_000),
                                      "test": (65_000, 75_000)}
FACTOR_NAMES: tuple[str, ...] = (
    "face_width", "face_height", "face_x", "face_y", "skin_tone", "hair_colour", "hair_style",
    "background_hue", "shirt_hue", "gaze_x", "gaze_y", "smile", "smile_asymmetry", "mouth_open",
    "eyebrow_angle", "blush", "eyeglasses", "earrings", "necktie")
HAIR_COLOURS = ("black", "blond", "brown", "gray", "red")
HAIR_STYLES = ("short", "long", "bangs", "bald", "curly", "bun")
FACTOR_LEVELS: dict[str, int] = {"hair_colour": len(HAIR_COLOURS), "hair_style": len(HAIR_STYLES),
                                 "eyeglasses": 2, "earrings": 2, "necktie": 2}
# how often each class is drawn; binary factors list P(no), P(yes)
_WEIGHTS = {"hair_colour": (0.3, 0.2, 0.3, 0.1, 0.1),
            "hair_style": (0.25, 0.22, 0.15, 0.08, 0.15, 0.15),
            "eyeglasses": (0.75, 0.25), "earrings": (0.7, 0.3), "necktie": (0.7, 0.3)}
ATTR_NAMES: tuple[str, ...] = (
    "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald", "Bangs", "Wavy_Hair",
    "Eyeglasses", "Wearing_Earrings", "Wearing_Necktie", "Smiling", "Mouth_Slightly_Open",
    "Pale_Skin", "Oval_Face", "Rosy_Cheeks")
_F = {name: j for j, name in enumerate(FACTOR_NAMES)}
_SEED = 0x5EED_FACE5  # changes the whole dataset; fixed forever

# ---------------------------------------------------------------------------------------- factors


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 (wrapping arithmetic): a counter-based hash."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(indices: np.ndarray, j: int) -> np.ndarray:
    """Uniform [0, 1) float64 for factor j of each index: depends on nothing else."""
    with np.errstate(over="ignore"):
        key = _splitmix64(indices.astype(np.uint64) ^ np.uint64(_SEED))
        bits = _splitmix64(key + np.uint64(j + 1) * np.uint64(0xD1B54A32D192ED03))
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def sample_factors(indices: torch.Tensor) -> torch.Tensor:
    """(N,) int64 global indices -> (N, F) float32 factors (see the module docstring)."""
    idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).cpu(), dtype=np.int64).reshape(-1)
    cols = []
    for j, name in enumerate(FACTOR_NAMES):
        u = _uniform(idx, j)
        if name in _WEIGHTS:  # categorical: invert the cumulative distribution
            cdf = np.cumsum(_WEIGHTS[name])[:-1]
            u = np.searchsorted(cdf, u, side="right").astype(np.float64)
        cols.append(u)
    return torch.from_numpy(np.stack(cols, axis=1).astype(np.float32))


def face_box(factors: torch.Tensor) -> dict[str, torch.Tensor]:
    """Geometry shared by render() and attributes(), in image units (-1..1, y down): each (N,)."""
    f = factors.to(torch.float32)
    a = 0.35 + 0.12 * f[:, _F["face_width"]]   # half-width
    b = 0.44 + 0.12 * f[:, _F["face_height"]]  # half-height
    cx = (f[:, _F["face_x"]] - 0.5) * 0.2
    cy = -0.12 + (f[:, _F["face_y"]] - 0.5) * 0.12
    ex = 0.40 * a + 0.015                      # eye centre distance from the face axis
    ey = cy - 0.04
    return {"cx": cx, "cy": cy, "a": a, "b": b, "ex": ex, "ey": ey}


def attributes(factors: torch.Tensor) -> torch.Tensor:
    """(N, F) factors -> (N, len(ATTR_NAMES)) float32 0/1 CelebA-style attributes."""
    f = factors.to(torch.float32)
    colour, style = f[:, _F["hair_colour"]].round(), f[:, _F["hair_style"]].round()
    has_hair = style != HAIR_STYLES.index("bald")
    box = face_box(f)
    a = {"Black_Hair": has_hair & (colour == 0), "Blond_Hair": has_hair & (colour == 1),
         "Brown_Hair": has_hair & (colour == 2), "Gray_Hair": has_hair & (colour == 3),
         "Bald": ~has_hair, "Bangs": style == HAIR_STYLES.index("bangs"),
         "Wavy_Hair": style == HAIR_STYLES.index("curly"),
         "Eyeglasses": f[:, _F["eyeglasses"]] > 0.5, "Wearing_Earrings": f[:, _F["earrings"]] > 0.5,
         "Wearing_Necktie": f[:, _F["necktie"]] > 0.5, "Smiling": f[:, _F["smile"]] > 0.6,
         "Mouth_Slightly_Open": f[:, _F["mouth_open"]] > 0.5, "Pale_Skin": f[:, _F["skin_tone"]] < 0.15,
         "Oval_Face": box["b"] / box["a"] > 1.3, "Rosy_Cheeks": f[:, _F["blush"]] > 0.6}
    return torch.stack([a[name] for name in ATTR_NAMES], dim=1).to(torch.float32)

# ---------------------------------------------------------------------------------------- drawing
# Coordinates run from -1 to 1 across the image, y downwards; one pixel is PX wide. Each part
# computes a signed distance d (negative inside) and turns it into coverage with a one-pixel
# linear ramp, which is what anti-aliasing by box filtering gives for a straight edge.
# Work that depends only on x (shape (N,1,W)) or only on y ((N,H,1)) stays 1-D; only the final
# combination is per pixel. Parts that live in a known band of rows are drawn on that band only.


PX = 2.0 / IMAGE_SIZE
_HAIR_RGB = torch.tensor([[0.13, 0.11, 0.11], [0.93, 0.79, 0.47], [0.46, 0.29, 0.16],
                          [0.70, 0.70, 0.72], [0.74, 0.32, 0.14]])
_SKIN_RGB = torch.tensor([[1.00, 0.88, 0.79], [0.94, 0.74, 0.60], [0.78, 0.55, 0.40],
                          [0.47, 0.31, 0.22]])
# hair cap (drawn over the face) and hair volume behind the head, per style:
# extra half-width, extra half-height of the cap; back volume: extra width, height, drop of centre
_CAP = torch.tensor([[0.04, 0.06], [0.05, 0.07], [0.04, 0.06], [0.0, 0.0], [0.07, 0.09],
                     [0.03, 0.045]])
_BACK = torch.tensor([[0.0, 0.0, 0.0], [0.11, 0.38, 0.30], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                      [0.13, 0.13, 0.04], [0.0, 0.0, 0.0]])


def _cover(d: torch.Tensor, soft: float = 1.0) -> torch.Tensor:
    """Signed distance -> coverage in [0, 1], ramping over `soft` pixels (in place on d)."""
    return d.mul_(-1.0 / (soft * PX)).add_(0.5).clamp_(0.0, 1.0)


def _ellipse(x, y, cx, cy, rx, ry, soft: float = 1.0) -> torch.Tensor:
    """Coverage of an axis-aligned ellipse (approximate distance, exact on circles)."""
    dx, dy = (x - cx) / rx, (y - cy) / ry
    r = (dx * dx + dy * dy).sqrt_()
    return _cover(r.sub_(1.0).mul_((rx * ry) ** 0.5), soft)


def _paint(img: torch.Tensor, alpha: torch.Tensor, rgb: torch.Tensor) -> None:
    """Composite colour `rgb` ((N,3,1,1) or per pixel) over img with coverage alpha (N,h,w)."""
    img.lerp_(rgb, alpha.unsqueeze(1))


def _hsv(h: torch.Tensor, s: float, v: float) -> torch.Tensor:
    """HSV -> RGB for (N,) hues and fixed saturation/value; returns (N,3,1,1)."""
    n = torch.tensor([5.0, 3.0, 1.0], device=h.device)
    k = (n + h[:, None] * 6.0) % 6.0
    rgb = v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return rgb[:, :, None, None]


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash in int64 arithmetic (every product stays below 2**63)."""
    m = 0xFFFFFFFF
    x = x & m
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & m
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & m
    return x ^ (x >> 16)


def _upsampler(cells: int, device) -> torch.Tensor:
    """(S, cells) matrix of bilinear interpolation weights (as F.interpolate, align_corners=False)."""
    src = ((torch.arange(IMAGE_SIZE, device=device) + 0.5) * (cells / IMAGE_SIZE) - 0.5)
    src = src.clamp(0.0, cells - 1.0)
    i0 = src.floor().long()
    w = (src - i0)[:, None]
    cols = torch.arange(cells, device=device)
    return (cols == i0[:, None]) * (1.0 - w) + (cols == (i0 + 1).clamp(max=cells - 1)[:, None]) * w


def _value_noise(seed: torch.Tensor, cells: int, salt: int) -> torch.Tensor:
    """(N,) int64 seeds -> (N,S,S) smooth noise in [-1, 1], from a hashed cells×cells grid.
    Bilinear upsampling is two small matrix products (much faster than F.interpolate here)."""
    grid = torch.arange(cells * cells, device=seed.device).view(1, cells, cells)
    h = _hash32(_hash32(seed.view(-1, 1, 1) * 0x9E37 + salt) + grid)
    v = h.to(torch.float32) * (2.0 / 2 ** 32) - 1.0
    up = _upsampler(cells, seed.device)
    return up @ v @ up.T


def _seed_from_factors(f: torch.Tensor) -> torch.Tensor:
    """Default noise seed: a function of background_hue only, so that editing any other factor
    leaves the background texture as it was."""
    return (f[:, _F["background_hue"]].double() * 2 ** 31).round().to(torch.int64)


def _rows(lo: float, hi: float) -> slice:
    """The rows covering image coordinates lo..hi. Bands are fixed numbers, never computed
    from the batch, so an image is drawn the same whatever else is in its batch."""
    return slice(max(0, int((lo + 1) / PX)), min(IMAGE_SIZE, math.ceil((hi + 1) / PX)))


def _background(g, x, y, seed):
    """Pastel colour with a soft vertical gradient and deterministic blotchy texture."""
    base = _hsv(g["bg_hue"], 0.35, 0.9)
    tex = 0.06 * _value_noise(seed, 6, 1) + 0.025 * _value_noise(seed, 24, 2) + (1.04 - 0.05 * (y + 1))
    return (base * tex.unsqueeze(1)).clamp_(0.0, 1.0)  # lighter towards the top


def _hair_back(img, g, x, y):
    """Hair volume behind the head: long hair falls to the shoulders, curls puff out, a bun."""
    back = _BACK.to(x.device)[g["style"]]
    rx, ry = (g["a"] + back[:, 0]).view(-1, 1, 1), (g["b"] + back[:, 1]).view(-1, 1, 1)
    cy = (g["cy"] + back[:, 2]).view(-1, 1, 1)
    alpha = _ellipse(x, y, g["cx3"], cy, rx, ry) * (back[:, 1] > 0).view(-1, 1, 1)
    is_bun = (g["style"] == HAIR_STYLES.index("bun")).view(-1, 1, 1)
    bun = _ellipse(x, y, g["cx3"], g["cy3"] - g["b3"] - 0.07, 0.14, 0.12) * is_bun
    _paint(img, torch.maximum(alpha, bun), g["hair_rgb"] * (0.82 + 0.1 * g["strands"]))


def _rounded_box(dx, dy, half_w, half_h, radius):
    """Coverage of a box centred at dx = dy = 0 with rounded corners (exact distance)."""
    qx, qy = dx.abs() - (half_w - radius), dy.abs() - (half_h - radius)
    outside = torch.hypot(qx.clamp(min=0.0), qy.clamp(min=0.0))
    return _cover(outside + torch.maximum(qx, qy).clamp_(max=0.0) - radius)


def _neck_and_shirt(img, g, x, y):
    """Neck, then a jacket over the shoulders with a V showing a white shirt, then the tie."""
    nx, top = g["cx3"] * 0.8, g["shirt_top"].view(-1, 1, 1)
    neck = _cover((x - nx).abs_() - g["neck_w"]) * (y > g["cy3"]).float()
    shade = 0.72 + 0.18 * ((y - g["cy3"] - g["b3"]) / 0.2).clamp(0.0, 1.0)  # shadow under the chin
    _paint(img, neck, g["skin"] * shade.unsqueeze(1))
    rows = _rows(0.35, 1.0)
    sub, ys = img[:, :, rows], y[:, rows]
    jacket = _rounded_box(x - g["cx3"] * 0.5, ys - top - 0.6, 0.98, 0.6, 0.45)
    _paint(sub, jacket, g["shirt_rgb"] * (1.0 - 0.25 * (ys - top).clamp(0, 1)).unsqueeze(1))
    # the V opening: |x - nx| < 0.42 (apex - y); 0.92 = 1/sqrt(1 + 0.42²) makes it a distance
    v_dist = ((x - nx).abs() - 0.42 * (top + 0.3 - ys)) * 0.92
    v = _cover(v_dist.clone()) * jacket
    _paint(sub, v, torch.tensor([0.95, 0.95, 0.96], device=x.device).view(1, 3, 1, 1))
    _paint(sub, _cover(v_dist.abs_().sub_(0.012)) * jacket, g["shirt_rgb"] * 0.6)  # lapel edges
    # the tie: a knot, then a blade widening downwards, only inside the V
    t = (ys - top)
    width = torch.where(t < 0.07, 0.045 - 0.1 * (t - 0.035).abs(), 0.022 + 0.12 * (t - 0.07))
    tie = _cover((x - nx).abs() - width) * (t > 0.0).float() * v * g["tie3"]
    _paint(sub, tie, g["tie_rgb"] * (1.0 - 0.35 * (t < 0.07).float()).unsqueeze(1))


def _face(img, g, x, y):
    """Ears, then the face: an egg shape (narrower jaw) with a soft radial light from top left."""
    rows = _rows(-0.4, 0.2)
    sub, ys = img[:, :, rows], y[:, rows]
    xm = (x - g["cx3"]).abs()
    ear_x, ear_y = g["a3"] * 0.97, g["cy3"] + 0.03
    _paint(sub, _ellipse(xm, ys, ear_x, ear_y, 0.065, 0.1), g["skin"] * 0.9)
    _paint(sub, _ellipse(xm, ys, ear_x + 0.01, ear_y, 0.03, 0.055, soft=2.0) * 0.5, g["skin"] * 0.7)
    dx, dy = (x - g["cx3"]) / g["a3"], (y - g["cy3"]) / g["b3"]
    dx = dx * (1.0 / (1.0 - 0.22 * dy.clamp(0.0, 1.0) ** 2))  # taper the lower half
    r2 = dx * dx + dy * dy
    face = _cover((r2.sqrt() - 1.0) * torch.sqrt(g["a3"] * g["b3"]))
    light = 1.07 - 0.12 * ((dx + 0.35) ** 2 + (dy + 0.45) ** 2) * 0.5 - 0.06 * r2 ** 2
    _paint(img, face, g["skin"] * light.unsqueeze(1))
    blush = _ellipse(xm, ys, g["ex3"] + 0.03, g["ey3"] + 0.17, 0.075, 0.05, soft=4.0)
    _paint(sub, blush * (0.55 * g["blush3"]), torch.tensor([0.96, 0.42, 0.48], device=x.device)
           .view(1, 3, 1, 1))
    nose = _ellipse(x, ys, g["cx3"] + 0.015, g["cy3"] + 0.2 * g["b3"], 0.035, 0.05, soft=2.5)
    _paint(sub, nose * 0.45, g["skin"] * 0.68)


def _earrings(img, g, x, y):
    """A gold dot with a darker rim hanging under each ear lobe."""
    rows = _rows(-0.2, 0.3)
    sub, ys = img[:, :, rows], y[:, rows]
    xm = (x - g["cx3"]).abs()
    ex, ey = g["a3"] * 0.98, g["cy3"] + 0.14
    on = g["earrings3"]
    _paint(sub, _ellipse(xm, ys, ex, ey, 0.05, 0.05) * on, torch.tensor(
        [0.55, 0.38, 0.05], device=x.device).view(1, 3, 1, 1))
    _paint(sub, _ellipse(xm, ys, ex, ey, 0.03, 0.03) * on, torch.tensor(
        [1.0, 0.86, 0.25], device=x.device).view(1, 3, 1, 1))


def _eyes(img, g, x, y):
    """Eye whites with a dark lid line, pupils moved by the gaze (clipped to the whites)."""
    rows = _rows(-0.4, 0.05)
    sub, ys = img[:, :, rows], y[:, rows]
    xm = (x - g["cx3"]).abs()
    dark = torch.tensor([0.12, 0.09, 0.09], device=x.device).view(1, 3, 1, 1)
    _paint(sub, _ellipse(xm, ys, g["ex3"], g["ey3"] - 0.006, 0.1, 0.075), dark * 0.8 + g["skin"] * 0.2)
    white = _ellipse(xm, ys, g["ex3"], g["ey3"], 0.085, 0.062)
    _paint(sub, white, torch.tensor([0.98, 0.98, 0.98], device=x.device).view(1, 3, 1, 1))
    gx, gy = g["gaze_x3"], g["gaze_y3"]
    # pupils are mirror images about the face axis moved by gx, so one shape draws both
    pm = (x - g["cx3"] - gx).abs()
    pupil = _ellipse(pm, ys, g["ex3"], g["ey3"] + gy, 0.045, 0.05) * white
    _paint(sub, pupil, dark)


def _segment(px_, py_, ax, ay, bx, by, half):
    """Signed distance to a segment A-B drawn `half` thick on each side."""
    pax, pay = px_ - ax, py_ - ay
    bax, bay = bx - ax, by - ay
    h = ((pax * bax + pay * bay) / (bax * bax + bay * bay)).clamp_(0.0, 1.0)
    return ((pax - bax * h) ** 2 + (pay - bay * h) ** 2).sqrt_().sub_(half)


def _brows(img, g, x, y):
    """Eyebrows in a darker shade of the hair colour, tilted by eyebrow_angle."""
    rows = _rows(-0.55, -0.05)
    sub, ys = img[:, :, rows], y[:, rows]
    xm = (x - g["cx3"]).abs()
    by, tilt = g["ey3"] - 0.125, g["brow_tilt3"]
    d = _segment(xm, ys, g["ex3"] - 0.075, by - tilt, g["ex3"] + 0.075, by + tilt * 0.6, 0.02)
    _paint(sub, _cover(d), g["hair_rgb"] * 0.6 + 0.06)


def _glasses(img, g, x, y):
    """Round dark frames with a faint blue lens tint, a bridge and arms to the ears."""
    rows = _rows(-0.4, 0.1)
    sub, ys = img[:, :, rows], y[:, rows]
    xm = (x - g["cx3"]).abs()
    on, R, cyl = g["glasses3"], g["lens_r3"], g["ey3"] + 0.005
    r = ((xm - g["ex3"]) ** 2 + (ys - cyl) ** 2).sqrt()
    lens = _cover(r - R) * on
    _paint(sub, lens * 0.25, torch.tensor([0.75, 0.88, 1.0], device=x.device).view(1, 3, 1, 1))
    ring = _cover((r - R).abs_().sub_(0.02))
    band = _cover((ys - cyl + 0.02).abs() - 0.016)  # a thin horizontal line at lens height
    inner = (xm < g["ex3"] - R + 0.01).float()
    outer = ((xm > g["ex3"] + R - 0.01) & (xm < g["a3"] * 1.02)).float()
    frame = torch.maximum(ring, band * (inner + outer)) * on
    _paint(sub, frame, torch.tensor([0.1, 0.1, 0.12], device=x.device).view(1, 3, 1, 1))


def _mouth(img, g, x, y):
    """Mouth as a curve y(u) = centre - lift u² - tilt u; the opening below it shows teeth."""
    rows = _rows(-0.15, 0.55)
    sub, ys = img[:, :, rows], y[:, rows]
    w, lift, tilt, gap = g["mouth_w3"], g["lift3"], g["tilt3"], g["gap3"]
    u = ((x - g["cx3"]) / w).clamp(-1.0, 1.0)
    curve = g["mouth_y3"] - lift * u * u - tilt * u                 # (N,1,W), y is down
    slope = (-tilt - 2.0 * lift * u) / w
    ends = _cover((x - g["cx3"]).abs() - w)                          # rounded-off corners
    open_ = (1.0 - u * u) * gap
    inside = _cover(torch.maximum(curve - ys, ys - curve - open_)) * ends
    _paint(sub, inside, torch.tensor([0.42, 0.1, 0.12], device=x.device).view(1, 3, 1, 1))
    teeth = _cover(torch.maximum(curve - ys, ys - curve - 0.45 * open_)) * ends * (gap > 0.04)
    _paint(sub, teeth, torch.tensor([0.97, 0.96, 0.92], device=x.device).view(1, 3, 1, 1))
    line = (ys - curve).abs_().mul_(torch.rsqrt(1.0 + slope * slope)).sub_(0.024)
    lip = torch.tensor([0.62, 0.22, 0.24], device=x.device).view(1, 3, 1, 1)
    _paint(sub, _cover(line) * ends, lip * 0.8 + g["skin"] * 0.2)


def _hair_front(img, g, x, y):
    """The hair cap over the top of the head, cut along a hairline that depends on the style."""
    rows = _rows(-1.0, 0.5)
    sub, ys = img[:, :, rows], y[:, rows]
    cap = _CAP.to(x.device)[g["style"]]
    cx, cy, a, b = g["cx3"], g["cy3"], g["a3"], g["b3"]
    rx, ry = a + cap[:, 0].view(-1, 1, 1), b + cap[:, 1].view(-1, 1, 1)
    dx, dy = (x - cx) / rx, (ys - cy + 0.03) / ry
    curly = (g["style"] == HAIR_STYLES.index("curly")).view(-1, 1, 1)
    r2 = (dx * dx + dy * dy + curly * (0.07 * g["curls"][:, 0, rows])).clamp_(min=0.0)
    alpha = _cover((r2.sqrt_() - 1.0) * torch.sqrt(rx * ry))
    u = ((x - cx) / a).clamp(-1.3, 1.3)
    s = g["style"].view(-1, 1, 1)
    hairline = torch.stack([
        cy - 0.6 * b + 0.75 * b * u ** 4,                                        # short
        cy - 0.68 * b + 0.3 * b * u.abs() + 1.2 * b * (u.abs() - 0.55).clamp(min=0),  # long
        cy - 0.32 * b - 0.025 * torch.sin(u * 19.0).abs() + 0.8 * b * u ** 6,    # bangs
        torch.full_like(u, -9.0),                                               # bald
        cy - 0.52 * b + 0.7 * b * u ** 4 + 0.02 * torch.sin(u * 23.0),           # curly
        cy - 0.62 * b + 0.55 * b * u ** 4,                                       # bun
    ]).gather(0, s.view(1, -1, 1, 1).expand(1, -1, 1, u.shape[-1])).squeeze(0)
    alpha = alpha * _cover(ys - hairline)
    colour = g["hair_rgb"] * (0.95 + 0.12 * g["strands"][:, :, rows]
                              - 0.25 * ((ys - cy + b) / b).clamp(0, 1).unsqueeze(1))
    _paint(sub, alpha, colour)


def _geometry(f: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image drawing parameters; names ending in 3 are (N,1,1) for broadcasting."""
    g = face_box(f)
    col = lambda name: f[:, _F[name]]
    v3 = lambda t: t.view(-1, 1, 1)
    dev = f.device
    style = col("hair_style").round().long().clamp(0, len(HAIR_STYLES) - 1)
    colour = col("hair_colour").round().long().clamp(0, len(HAIR_COLOURS) - 1)
    tone = col("skin_tone").clamp(0, 1) * 3.0
    i = tone.floor().clamp(max=2).long()
    skin_tab = _SKIN_RGB.to(dev)
    skin = torch.lerp(skin_tab[i], skin_tab[i + 1], (tone - i)[:, None])
    smile, asym = col("smile"), col("smile_asymmetry")
    g.update({k + "3": v3(g[k]) for k in ("cx", "cy", "a", "b", "ex", "ey")})
    g.update(
        style=style, bg_hue=col("background_hue"),
        hair_rgb=_HAIR_RGB.to(dev)[colour][:, :, None, None], skin=skin[:, :, None, None],
        shirt_rgb=_hsv(col("shirt_hue"), 0.5, 0.55),
        tie_rgb=_hsv((col("shirt_hue") + 0.5) % 1.0, 0.75, 0.7),
        shirt_top=(g["cy"] + g["b"] + 0.13).clamp(max=0.7), neck_w=v3(0.09 + 0.1 * g["a"]),
        gaze_x3=v3((col("gaze_x") - 0.5) * 0.095), gaze_y3=v3((col("gaze_y") - 0.5) * 0.045),
        brow_tilt3=v3((col("eyebrow_angle") - 0.5) * 0.07), blush3=v3(col("blush")),
        mouth_w3=v3(0.12 + 0.06 * smile), lift3=v3((smile - 0.35) * 0.15),
        tilt3=v3((asym - 0.5) * 0.085), mouth_y3=v3(g["cy"] + 0.56 * g["b"]),
        gap3=v3(0.13 * ((col("mouth_open") - 0.35) / 0.65).clamp(0.0, 1.0)),
        glasses3=v3((col("eyeglasses") > 0.5).float()), lens_r3=v3(torch.minimum(
            torch.full_like(g["ex"], 0.12), g["ex"] - 0.025)),
        earrings3=v3((col("earrings") > 0.5).float()), tie3=v3((col("necktie") > 0.5).float()),
    )
    # hair texture: fine vertical strands for straight hair, a bumpy pattern for curls
    # curls = cos(30x + 2 sin 23y) cos(26y + 2 sin 19x), expanded with cos(A+B) so that
    # the trigonometry runs on 1-D x and y grids and only products are per pixel
    xc, yb = x - g["cx3"], 2.0 * torch.sin(y * 23.0)
    xa, xb = xc * 30.0, 2.0 * torch.sin(xc * 19.0)
    wave_x = torch.cos(xa) * torch.cos(yb) - torch.sin(xa) * torch.sin(yb)
    wave_y = torch.cos(y * 26.0) * torch.cos(xb) - torch.sin(y * 26.0) * torch.sin(xb)
    g["curls"] = (wave_x * wave_y).unsqueeze(1)                          # (N,1,H,W)
    is_curly = (style == HAIR_STYLES.index("curly")).view(-1, 1, 1, 1)
    straight = 0.5 * torch.sin(xc * 70.0).unsqueeze(1)                    # (N,1,1,W)
    g["strands"] = torch.where(is_curly, g["curls"], straight)
    return g


def render(factors: torch.Tensor, noise_seed: torch.Tensor | None = None) -> torch.Tensor:
    """(N, F) factors -> (N, 3, 64, 64) float32 images in [0, 1], computed on factors.device.

    `noise_seed` ((N,) int64) picks the background texture; by default it is derived from
    ``background_hue``, so equal factors always give equal images and editing any other factor
    leaves the background untouched. The dataset passes the image index."""
    f = torch.as_tensor(factors, dtype=torch.float32)
    if f.ndim != 2 or f.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must be (N, {len(FACTOR_NAMES)}), got {tuple(f.shape)}")
    dev = f.device
    seed = _seed_from_factors(f) if noise_seed is None else torch.as_tensor(
        noise_seed, dtype=torch.int64, device=dev).view(-1)
    c = (torch.arange(IMAGE_SIZE, device=dev, dtype=torch.float32) + 0.5) * PX - 1.0
    x, y = c.view(1, 1, -1), c.view(1, -1, 1)
    g = _geometry(f, x, y)
    img = _background(g, x, y, seed)
    for part in (_hair_back, _neck_and_shirt, _face, _earrings, _eyes, _brows, _glasses, _mouth,
                 _hair_front):
        part(img, g, x, y)
    return img.clamp_(0.0, 1.0)


def render_indices(indices: torch.Tensor) -> torch.Tensor:
    """The images of global indices: render(sample_factors(indices), noise_seed=indices)."""
    idx = torch.as_tensor(indices, dtype=torch.int64)
    return render(sample_factors(idx), noise_seed=idx)

# ---------------------------------------------------------------------------------------- dataset


def default_cache_dir() -> Path:
    """$VAEBOOK_CACHE, or ~/.cache/vaebook."""
    return Path(os.environ.get("VAEBOOK_CACHE") or Path.home() / ".cache" / "vaebook")


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return img.mul(255.0).round_().to(torch.uint8).cpu().numpy()


def _to_float(arr: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1]. numpy does it on one thread: torch would spread
    this small job over all cores, which costs more than it saves next to a training loop."""
    return torch.from_numpy(np.multiply(arr, np.float32(1 / 255), dtype=np.float32))


@contextlib.contextmanager
def _single_thread():
    """Run torch on one CPU thread for a while. Rendering is hundreds of small tensor ops, and
    splitting each over cores costs more than it saves: on 2 cores one thread renders as fast
    as two, and 4× faster when other processes keep the cores busy."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class FacesDataset(Dataset):
    """One split of faces. Item i -> (image float32 (3,64,64) in [0,1], attrs float32 (A,) 0/1).

    Factors and attributes are computed at once (cheap); the images are rendered the first
    time they are needed and cached as ``faces-r{RENDER_VERSION}-{split}-{n}.npy`` (uint8)."""

    CHUNK = 128  # images per render call when filling the cache: small chunks stay in CPU cache

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

    def cache_path(self, n: int | None = None) -> Path:
        n = len(self) if n is None else n
        return self.cache_dir / f"faces-r{RENDER_VERSION}-{self.split}-{n}.npy"

    def __len__(self) -> int:
        return len(self.indices)

    def __getstate__(self):  # DataLoader workers reopen the memmap instead of pickling it
        return {**self.__dict__, "_images": None}

    def _load(self, path: Path, n: int) -> np.ndarray | None:
        """The first n images of a cache file, or None if it is missing or not a valid cache."""
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError):  # missing, truncated or garbage
            return None
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (3, IMAGE_SIZE, IMAGE_SIZE) \
                or arr.shape[0] < n:
            return None
        return arr[:n]

    def _render_cache(self, path: Path) -> None:
        """Render every image into a temporary file next to `path`, then rename it into place
        (atomic: a reader never sees a half-written cache, even with two writers)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(len(self), 3, IMAGE_SIZE, IMAGE_SIZE))
            with torch.no_grad(), _single_thread():
                for i in range(0, len(self), self.CHUNK):
                    j = min(i + self.CHUNK, len(self))
                    out[i:j] = _to_uint8(render(self.factors[i:j], noise_seed=self.indices[i:j]))
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def images_uint8(self) -> np.ndarray:
        """All images of the split as a read-only (N, 3, 64, 64) uint8 array (a memmap)."""
        if self._images is None:
            n, full = len(self), SPLITS[self.split][1] - SPLITS[self.split][0]
            # a limited dataset can read the first rows of an existing full-split cache
            arr = self._load(self.cache_path(full), n) if n < full else None
            if arr is None:
                arr = self._load(self.cache_path(), n)
            if arr is None:
                self._render_cache(self.cache_path())
                arr = self._load(self.cache_path(), n)
                if arr is None:
                    raise RuntimeError(f"could not read back the faces cache {self.cache_path()}")
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
