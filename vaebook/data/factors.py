"""The ground truth behind every ``faces`` image: 19 factors drawn from the image's index.

:func:`sample_factors` hashes ``(index, factor number)`` with splitmix64 into uniform numbers, so
factor ``j`` of image ``i`` is the same on every machine and in every batch (integer arithmetic
only). :func:`attributes` turns factors into CelebA-style 0/1 attributes, and :func:`face_box`
gives the geometry that the renderer (:mod:`vaebook.data.renderer`) and the attributes share.
Besides its factors, each image has a background texture seeded by its index (see
:func:`vaebook.data.renderer.render`), which is not a factor.

Continuous factors are uniform in [0, 1]; categorical ones hold an integer code stored as a
float (see ``FACTOR_LEVELS``).

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
``smile_asymmetry``   tilts the mouth line and nothing else: 0 = left mouth corner (image
                      left) 1.4 px higher than the right one ... 0.5 level ... 1 = right corner higher.
``mouth_open``        below 0.35 closed; above, the lips part, up to 4 px at 1; teeth show
                      from 0.55. ``Mouth_Slightly_Open``: above 0.5.
``eyebrow_angle``     0 = inner ends down (cross) ... 0.5 level ... 1 = inner ends up (worried).
``blush``             0 = none ... 1 = strong pink cheeks (``Rosy_Cheeks``: above 0.6).
``eyeglasses``        binary (25 % of faces): round dark frames with faintly tinted lenses.
``earrings``          binary (30 %): a gold dot about 3 px across under each ear.
``necktie``           binary (30 %): a tie of about 25 px in the V of the jacket, bottom centre.
====================  =====================================================================
"""
from __future__ import annotations

import numpy as np
import torch

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
F = {name: j for j, name in enumerate(FACTOR_NAMES)}  # factor name -> column
_SEED = 0x5EED_FACE5  # changes the whole dataset; fixed forever


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


def _cdf(weights) -> np.ndarray:
    """Cumulative class probabilities, summed left to right in Python (no vectorised sum whose
    order could depend on the CPU)."""
    total, out = 0.0, []
    for w in weights[:-1]:
        total += w
        out.append(total)
    return np.array(out)


def sample_factors(indices: torch.Tensor) -> torch.Tensor:
    """(N,) int64 global indices -> (N, F) float32 factors (see the module docstring)."""
    idx = np.asarray(torch.as_tensor(indices, dtype=torch.int64).cpu(), dtype=np.int64).reshape(-1)
    cols = []
    for j, name in enumerate(FACTOR_NAMES):
        u = _uniform(idx, j)
        if name in _WEIGHTS:  # categorical: invert the cumulative distribution
            u = np.searchsorted(_cdf(_WEIGHTS[name]), u, side="right").astype(np.float64)
        cols.append(u)
    return torch.from_numpy(np.stack(cols, axis=1).astype(np.float32))


def as_float64(factors) -> np.ndarray:
    """Factors (tensor or array, any float dtype, any device) -> (N, F) float64 numpy array."""
    if isinstance(factors, torch.Tensor):
        factors = factors.detach().cpu().double().numpy()
    f = np.asarray(factors, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must be (N, {len(FACTOR_NAMES)}), got {tuple(f.shape)}")
    return f


def box_arrays(f: np.ndarray) -> dict[str, np.ndarray]:
    """Geometry shared by the renderer and attributes(), in image units (-1..1, y down), float64."""
    a = 0.35 + 0.12 * f[:, F["face_width"]]   # half-width
    b = 0.44 + 0.12 * f[:, F["face_height"]]  # half-height
    cx = (f[:, F["face_x"]] - 0.5) * 0.2
    cy = -0.12 + (f[:, F["face_y"]] - 0.5) * 0.12
    ex = 0.40 * a + 0.015                     # eye centre distance from the face axis
    ey = cy - 0.04
    return {"cx": cx, "cy": cy, "a": a, "b": b, "ex": ex, "ey": ey}


def face_box(factors) -> dict[str, torch.Tensor]:
    """:func:`box_arrays` of (N, F) factors, as (N,) float64 tensors."""
    return {k: torch.from_numpy(v) for k, v in box_arrays(as_float64(factors)).items()}


def attributes(factors) -> torch.Tensor:
    """(N, F) factors -> (N, len(ATTR_NAMES)) float32 0/1 CelebA-style attributes."""
    f = as_float64(factors)
    colour, style = np.rint(f[:, F["hair_colour"]]), np.rint(f[:, F["hair_style"]])
    has_hair = style != HAIR_STYLES.index("bald")
    box = box_arrays(f)
    a = {"Black_Hair": has_hair & (colour == 0), "Blond_Hair": has_hair & (colour == 1),
         "Brown_Hair": has_hair & (colour == 2), "Gray_Hair": has_hair & (colour == 3),
         "Bald": ~has_hair, "Bangs": style == HAIR_STYLES.index("bangs"),
         "Wavy_Hair": style == HAIR_STYLES.index("curly"),
         "Eyeglasses": f[:, F["eyeglasses"]] > 0.5, "Wearing_Earrings": f[:, F["earrings"]] > 0.5,
         "Wearing_Necktie": f[:, F["necktie"]] > 0.5, "Smiling": f[:, F["smile"]] > 0.6,
         "Mouth_Slightly_Open": f[:, F["mouth_open"]] > 0.5, "Pale_Skin": f[:, F["skin_tone"]] < 0.15,
         "Oval_Face": box["b"] / box["a"] > 1.3, "Rosy_Cheeks": f[:, F["blush"]] > 0.6}
    return torch.from_numpy(np.stack([a[name] for name in ATTR_NAMES], axis=1).astype(np.float32))
