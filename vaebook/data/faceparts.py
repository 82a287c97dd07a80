"""The parts of a face, drawn in order over a background: hair behind the head, neck and jacket,
face, earrings, eyes, brows, glasses, mouth, hair in front. Each part paints into the batch of
images in place; :func:`geometry` turns factors into the parameters the parts read.

Work that depends only on x (shape (N,1,W)) or only on y ((1,H,1)) stays 1-D; only the final
combination is per pixel. Parts that live in a known band of rows and columns are drawn there only.
"""
from __future__ import annotations

import numpy as np

from .drawing import (band, cos, cover, crop, ellipse, hsv, paint, region, rgb, rounded_box, segment,
                      sin, value_noise)
from .factors import F, HAIR_STYLES, box_arrays

_HAIR_RGB = np.array([[0.13, 0.11, 0.11], [0.93, 0.79, 0.47], [0.46, 0.29, 0.16],
                      [0.70, 0.70, 0.72], [0.74, 0.32, 0.14]])
_SKIN_RGB = np.array([[1.00, 0.88, 0.79], [0.94, 0.74, 0.60], [0.78, 0.55, 0.40],
                      [0.47, 0.31, 0.22]])
# hair cap (drawn over the face) and hair volume behind the head, per style:
# extra half-width, extra half-height of the cap; back volume: extra width, height, drop of centre
_CAP = np.array([[0.04, 0.06], [0.05, 0.07], [0.04, 0.06], [0.0, 0.0], [0.07, 0.09], [0.03, 0.045]])
_BACK = np.array([[0.0, 0.0, 0.0], [0.11, 0.38, 0.30], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                  [0.13, 0.13, 0.04], [0.0, 0.0, 0.0]])


def background(g, x, y, seed):
    """Pastel colour with a soft vertical gradient (lighter towards the top) and blotchy texture."""
    base = hsv(g["bg_hue"], 0.35, 0.9)
    tex = 0.06 * value_noise(seed, 6, 1) + 0.025 * value_noise(seed, 24, 2) + (1.04 - 0.05 * (y + 1))
    img = base * tex[:, None]
    return np.clip(img, 0.0, 1.0, out=img)


def _hair_back(img, g, x, y):
    """Hair volume behind the head: long hair falls to the shoulders, curls puff out, a bun.
    Each shape is computed for the faces that have it; the others' coverage stays 0."""
    back = _BACK[g["style"]]
    alpha = np.zeros(img.shape[:1] + img.shape[2:])
    n = np.flatnonzero(back[:, 1] > 0)
    rx, ry, cy = g["a"][n] + back[n, 0], g["b"][n] + back[n, 1], g["cy"][n] + back[n, 2]
    alpha[n] = ellipse(x, y, g["cx3"][n], cy.reshape(-1, 1, 1), rx.reshape(-1, 1, 1), ry.reshape(-1, 1, 1))
    n = np.flatnonzero(g["style"] == HAIR_STYLES.index("bun"))
    bun = ellipse(x, y, g["cx3"][n], g["cy3"][n] - g["b3"][n] - 0.07, 0.14, 0.12)
    alpha[n] = np.maximum(alpha[n], bun)
    colour = lambda r, c: g["hair_rgb"] * (0.82 + 0.1 * crop(g["strands"], r, c))
    paint(img, alpha, colour)


def _neck_and_shirt(img, g, x, y):
    """Neck, then a jacket over the shoulders with a V showing a white shirt, then the tie."""
    nx, top = g["cx3"] * 0.8, g["shirt_top"].reshape(-1, 1, 1)
    sub, xs, ys = region(img, x, y, cols=(-0.3, 0.3))
    neck = cover(np.abs(xs - nx) - g["neck_w"]) * (ys > g["cy3"])
    shade = 0.72 + 0.18 * np.clip((ys - g["cy3"] - g["b3"]) / 0.2, 0.0, 1.0)  # shadow under the chin
    paint(sub, neck, g["skin"] * shade[:, None])
    sub, _, ys = region(img, x, y, rows=(0.35, 1.0))
    jacket = rounded_box(x - g["cx3"] * 0.5, ys - top - 0.6, 0.98, 0.6, 0.45)
    paint(sub, jacket, g["shirt_rgb"] * (1.0 - 0.25 * np.clip(ys - top, 0.0, 1.0))[:, None])
    # the V opening: |x - nx| < 0.42 (apex - y); 0.92 = 1/sqrt(1 + 0.42²) makes it a distance
    v_dist = (np.abs(x - nx) - 0.42 * (top + 0.3 - ys)) * 0.92
    v = cover(v_dist) * jacket
    paint(sub, v, rgb(0.95, 0.95, 0.96))
    paint(sub, cover(np.abs(v_dist) - 0.012) * jacket, g["shirt_rgb"] * 0.6)  # lapel edges
    # the tie: a knot, then a blade widening downwards, only inside the V
    t = ys - top
    width = np.where(t < 0.07, 0.045 - 0.1 * np.abs(t - 0.035), 0.022 + 0.12 * (t - 0.07))
    tie = cover(np.abs(x - nx) - width) * (t > 0.0) * v * g["tie3"]
    paint(sub, tie, g["tie_rgb"] * (1.0 - 0.35 * (t < 0.07))[:, None])


def _face(img, g, x, y):
    """Ears, then the face: an egg shape (narrower jaw) with a soft radial light from top left."""
    sub, x, ys = region(img, x, y, rows=(-0.4, 0.2), cols=(-0.7, 0.7))
    xm = np.abs(x - g["cx3"])
    ear_x, ear_y = g["a3"] * 0.97, g["cy3"] + 0.03
    paint(sub, ellipse(xm, ys, ear_x, ear_y, 0.065, 0.1), g["skin"] * 0.9)
    paint(sub, ellipse(xm, ys, ear_x + 0.01, ear_y, 0.03, 0.055, soft=2.0) * 0.5, g["skin"] * 0.7)
    rows = band(-0.8, 0.6)       # the face's extent (cy ± b) for every factor in [0, 1], and more
    dx, dy = (x - g["cx3"]) / g["a3"], (y[:, rows] - g["cy3"]) / g["b3"]
    low = np.clip(dy, 0.0, 1.0)
    dx = dx * (1.0 / (1.0 - 0.22 * (low * low)))          # taper the lower half
    r2 = dx * dx + dy * dy
    face = cover((np.sqrt(r2) - 1.0) * np.sqrt(g["a3"] * g["b3"]))
    lx, ly = dx + 0.35, dy + 0.45
    light = 1.07 - 0.12 * (lx * lx + ly * ly) * 0.5 - 0.06 * (r2 * r2)
    paint(img[:, :, rows, band(-0.7, 0.7)], face, lambda r, c: g["skin"] * light[:, None, r, c])
    blush = ellipse(xm, ys, g["ex3"] + 0.03, g["ey3"] + 0.17, 0.075, 0.05, soft=4.0)
    paint(sub, blush * (0.55 * g["blush3"]), rgb(0.96, 0.42, 0.48))
    nose = ellipse(x, ys, g["cx3"] + 0.015, g["cy3"] + 0.2 * g["b3"], 0.035, 0.05, soft=2.5)
    paint(sub, nose * 0.45, g["skin"] * 0.68)


def _earrings(img, g, x, y):
    """A gold dot with a darker rim hanging under each ear lobe."""
    sub, x, ys = region(img, x, y, rows=(-0.2, 0.3), cols=(-0.7, 0.7))
    xm = np.abs(x - g["cx3"])
    ex, ey, on = g["a3"] * 0.98, g["cy3"] + 0.14, g["earrings3"]
    paint(sub, ellipse(xm, ys, ex, ey, 0.05, 0.05) * on, rgb(0.55, 0.38, 0.05))
    paint(sub, ellipse(xm, ys, ex, ey, 0.03, 0.03) * on, rgb(1.0, 0.86, 0.25))


def _eyes(img, g, x, y):
    """Eye whites with a dark lid line, pupils moved by the gaze (clipped to the whites)."""
    sub, x, ys = region(img, x, y, rows=(-0.4, 0.05), cols=(-0.5, 0.5))
    xm = np.abs(x - g["cx3"])
    dark = rgb(0.12, 0.09, 0.09)
    paint(sub, ellipse(xm, ys, g["ex3"], g["ey3"] - 0.006, 0.1, 0.075), dark * 0.8 + g["skin"] * 0.2)
    white = ellipse(xm, ys, g["ex3"], g["ey3"], 0.085, 0.062)
    paint(sub, white, rgb(0.98, 0.98, 0.98))
    # pupils are mirror images about the face axis moved by the gaze, so one shape draws both
    pm = np.abs(x - g["cx3"] - g["gaze_x3"])
    paint(sub, ellipse(pm, ys, g["ex3"], g["ey3"] + g["gaze_y3"], 0.045, 0.05) * white, dark)


def _brows(img, g, x, y):
    """Eyebrows in a darker shade of the hair colour, tilted by eyebrow_angle."""
    sub, x, ys = region(img, x, y, rows=(-0.55, -0.05), cols=(-0.5, 0.5))
    xm = np.abs(x - g["cx3"])
    by, tilt = g["ey3"] - 0.125, g["brow_tilt3"]
    d = segment(xm, ys, g["ex3"] - 0.075, by - tilt, g["ex3"] + 0.075, by + tilt * 0.6, 0.02)
    paint(sub, cover(d), g["hair_rgb"] * 0.6 + 0.06)


def _glasses(img, g, x, y):
    """Round dark frames with a faint blue lens tint, a bridge and arms to the ears."""
    sub, x, ys = region(img, x, y, rows=(-0.4, 0.1), cols=(-0.7, 0.7))
    xm = np.abs(x - g["cx3"])
    on, radius, cyl = g["glasses3"], g["lens_r3"], g["ey3"] + 0.005
    dx, dy = xm - g["ex3"], ys - cyl
    r = np.sqrt(dx * dx + dy * dy)
    paint(sub, cover(r - radius) * on * 0.25, rgb(0.75, 0.88, 1.0))
    ring = cover(np.abs(r - radius) - 0.02)
    band = cover(np.abs(ys - cyl + 0.02) - 0.016)  # a thin horizontal line at lens height
    inner = xm < g["ex3"] - radius + 0.01
    outer = (xm > g["ex3"] + radius - 0.01) & (xm < g["a3"] * 1.02)
    frame = np.maximum(ring, band * (inner | outer)) * on
    paint(sub, frame, rgb(0.1, 0.1, 0.12))


def _mouth(img, g, x, y):
    """Mouth as a curve y(u) = centre - lift u² - tilt u; the opening below it shows teeth."""
    sub, x, ys = region(img, x, y, rows=(-0.15, 0.55), cols=(-0.4, 0.4))
    w, lift, tilt, gap = g["mouth_w3"], g["lift3"], g["tilt3"], g["gap3"]
    u = np.clip((x - g["cx3"]) / w, -1.0, 1.0)
    curve = g["mouth_y3"] - lift * u * u - tilt * u                 # (N,1,W), y is down
    slope = (-tilt - 2.0 * lift * u) / w
    ends = cover(np.abs(x - g["cx3"]) - w)                         # rounded-off corners
    open_ = (1.0 - u * u) * gap
    inside = cover(np.maximum(curve - ys, ys - curve - open_)) * ends
    paint(sub, inside, rgb(0.42, 0.1, 0.12))
    teeth = cover(np.maximum(curve - ys, ys - curve - 0.45 * open_)) * ends * (gap > 0.04)
    paint(sub, teeth, rgb(0.97, 0.96, 0.92))
    line = np.abs(ys - curve) / np.sqrt(1.0 + slope * slope) - 0.024
    paint(sub, cover(line) * ends, rgb(0.62, 0.22, 0.24) * 0.8 + g["skin"] * 0.2)


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
    rows = band(-1.0, 0.5)
    sub, ys = img[:, :, rows], y[:, rows]
    cap = _CAP[g["style"]]
    cx, cy, a, b = g["cx3"], g["cy3"], g["a3"], g["b3"]
    rx, ry = a + cap[:, 0].reshape(-1, 1, 1), b + cap[:, 1].reshape(-1, 1, 1)
    dx, dy = (x - cx) / rx, (ys - cy + 0.03) / ry
    curly = (g["style"] == HAIR_STYLES.index("curly")).reshape(-1, 1, 1)
    r2 = np.maximum(dx * dx + dy * dy + curly * (0.07 * g["curls"][:, 0, rows]), 0.0)
    alpha = cover((np.sqrt(r2) - 1.0) * np.sqrt(rx * ry))
    u = np.clip((x - cx) / a, -1.3, 1.3)
    alpha = alpha * cover(ys - _hairline(g["style"], u, cy, b))
    shade = lambda r, c: 0.25 * np.clip((ys[:, r] - cy + b) / b, 0.0, 1.0)[:, None]
    strands = g["strands"][:, :, rows]
    paint(sub, alpha, lambda r, c: g["hair_rgb"] * (0.95 + 0.12 * crop(strands, r, c) - shade(r, c)))


def geometry(f: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
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
        shirt_rgb=hsv(col("shirt_hue"), 0.5, 0.55),
        tie_rgb=hsv(np.where(col("shirt_hue") < 0.5, col("shirt_hue") + 0.5, col("shirt_hue") - 0.5),
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
    # (computed for the curly faces only: the others' curls are 0, and every use of them
    # multiplies them by 0 or drops them, so their value never reaches a pixel)
    curly = style == HAIR_STYLES.index("curly")
    xc, yb = x - g["cx3"], 2.0 * sin(y * 23.0)
    xa, xb = xc[curly] * 30.0, 2.0 * sin(xc[curly] * 19.0)
    wave_x = cos(xa) * cos(yb) - sin(xa) * sin(yb)
    wave_y = cos(y * 26.0) * cos(xb) - sin(y * 26.0) * sin(xb)
    g["curls"] = np.zeros((len(f), 1, y.shape[1], x.shape[2]))          # (N,1,H,W)
    g["curls"][curly, 0] = wave_x * wave_y
    straight = (0.5 * sin(xc * 70.0))[:, None]                          # (N,1,1,W)
    g["strands"] = np.where(curly.reshape(-1, 1, 1, 1), g["curls"], straight)
    return g


PARTS = (_hair_back, _neck_and_shirt, _face, _earrings, _eyes, _brows, _glasses, _mouth, _hair_front)
