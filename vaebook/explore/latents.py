"""Operations on a model's codes, shared by the Jupyter widgets (:mod:`vaebook.explore.widgets`) and
the page export (:mod:`vaebook.explore.webexport`): decode codes to images and PNG bytes, walk between
two codes (straight line or great circle), and attribute directions (mean code of the faces
with an attribute minus the mean code of those without). PyTorch and Pillow only.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import torch
from PIL import Image

from ..metrics.measures import encode_means, evaluating
from ..models import AutoEncoder
from ..plotting import image_grid

RESAMPLE = {"nearest": Image.NEAREST, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def to_png(img: torch.Tensor, scale: int = 3, resample: str = "nearest") -> bytes:
    """(3, H, W) (or (1, 3, H, W)) tensor in [0, 1] -> PNG bytes of a (scale·H, scale·W) RGB image.

    Upscaling with "nearest" keeps the model's pixels visible as they are; "bicubic" smooths."""
    img = img.detach().float().cpu()
    if img.dim() == 4 and img.shape[0] == 1:
        img = img[0]
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"to_png wants one image (3, H, W) or (1, H, W), got shape {tuple(img.shape)}")
    arr = img.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    if scale != 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), RESAMPLE[resample])
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=1)  # level 1: fast, the images are tiny anyway
    return buf.getvalue()


def grid_png(images: torch.Tensor, scale: int = 1, ncols: int | None = None) -> bytes:
    """(N, 3, H, W) -> PNG bytes of one row (or `ncols` columns) with white gaps between images."""
    grid = image_grid(images, ncols=ncols or len(images))
    return to_png(torch.from_numpy(grid).permute(2, 0, 1), scale)


def decode(model: AutoEncoder, z) -> torch.Tensor:
    """Code(s) (L,) or (B, L) -> images (B, 3, S, S) on the CPU; no gradients, eval mode."""
    z = torch.as_tensor(z, dtype=torch.float32).reshape(-1, model.config.latent_dim)
    with evaluating(model):
        return model.decode(z.to(_device(model))).float().cpu()


def decode_png(model: AutoEncoder, z, scale: int = 3, resample: str = "nearest") -> bytes:
    """One code (L,) -> PNG bytes of its decoded image, upscaled `scale` times."""
    return to_png(decode(model, z)[0], scale, resample)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The straight line from a (t = 0) to b (t = 1)."""
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models): follows the
    great circle between a and b, so the norm of the code stays typical of N(0, I) samples
    instead of dipping in the middle as on the straight line. Falls back to :func:`lerp` when a
    and b are (nearly) parallel or one of them is zero."""
    a64, b64 = a.double(), b.double()
    na, nb = a64.norm(), b64.norm()
    if na == 0 or nb == 0:
        return lerp(a, b, t)
    omega = torch.acos((a64 @ b64 / (na * nb)).clamp(-1.0, 1.0))
    if omega < 1e-4:
        return lerp(a, b, t)
    out = (torch.sin((1 - t) * omega) * a64 + torch.sin(t * omega) * b64) / torch.sin(omega)
    return out.to(a.dtype)


def directions_from_codes(codes: torch.Tensor, attrs: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Codes (N, L) and 0/1 attributes (N, len(names)) -> {name: mean code of the faces with the
    attribute − mean code of those without}, each (L,). Adding it to a code adds the attribute
    on average; subtracting removes it."""
    attrs = torch.as_tensor(attrs)
    if attrs.dim() != 2 or attrs.shape != (codes.shape[0], len(names)):
        raise ValueError(f"attrs must be (N={codes.shape[0]}, {len(names)}) for attributes {list(names)}, "
                         f"got shape {tuple(attrs.shape)}")
    out = {}
    for j, name in enumerate(names):
        has = attrs[:, j] > 0.5
        n_yes = int(has.sum())
        if n_yes == 0 or n_yes == len(has):
            raise ValueError(f"attribute {name!r}: {n_yes} of {len(has)} faces have it; a direction "
                             "needs faces with and without it (use more faces)")
        out[name] = codes[has].double().mean(0).float() - codes[~has].double().mean(0).float()
    return out


def attribute_directions(model: AutoEncoder, images: torch.Tensor, attrs: torch.Tensor,
                         names: Sequence[str], attr_names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """Attribute directions in `model`'s latent space from labelled images (N, 3, S, S).

    The codes are posterior means (VAE) or codes h (autoencoder). `attrs` is (N, A) 0/1: its
    columns are `names` in order, or, when `attr_names` is given, the dataset's attributes in
    that order (the columns of `names` are then picked by name)."""
    attrs = _pick_columns(torch.as_tensor(attrs), names, attr_names)
    return directions_from_codes(encode_means(model, images), attrs, names)


def _device(model: torch.nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _pick_columns(attrs: torch.Tensor, names, attr_names) -> torch.Tensor:
    if attr_names is None:
        return attrs
    attr_names = list(attr_names)
    missing = [n for n in names if n not in attr_names]
    if missing:
        raise ValueError(f"unknown attribute(s) {missing}; this dataset has: {', '.join(attr_names)}")
    return attrs[:, [attr_names.index(n) for n in names]]
