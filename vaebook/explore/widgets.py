"""Interactive widgets to explore a trained model's latent space in Jupyter (ipywidgets only).

Four builders, each returning its top-level widget (a ``VBox``; the last expression of a cell
displays it); the last two live in :mod:`vaebook.explore.widgets_compare` and are importable from here:

- :func:`latent_explorer` — one slider per latent dim (the dims with the largest KL for a VAE,
  the first ones for an autoencoder) and the decoded face, live; buttons to draw a random code
  and to encode a random test face.
- :func:`interpolator` — slide between the codes of two test faces (linear or spherical path).
- :func:`attribute_editor` — add attribute directions ("Smiling", "Eyeglasses", ...) to a face's
  code, one strength slider per attribute.
- :func:`beta_compare` — the same one-dim traversal in each model of the β sweep, one row each.

Everything runs on the CPU at interactive speed: the test faces are encoded once when a widget
is built (``n_faces`` of them, the first ones of the test split), then each slider move decodes
one image (a few milliseconds) with gradients off and the model in eval mode (its previous
mode is restored afterwards, so a widget never changes the model). No JavaScript beyond
ipywidgets' own.

**Parts exposed for tests and scripting.** Each returned widget carries its parts as
attributes. Images are ``ipywidgets.Image`` holding PNG bytes in ``.value``; setting a
control's ``.value`` or calling ``button.click()`` has the same effect as a reader's click.

==========================  ==============================================================
``latent_explorer``         ``sliders`` (list of FloatSlider, most informative dim first),
                            ``dims`` (latent index of each slider), ``image`` (decoding of
                            ``z``), ``original`` (the encoded face, blank after a resample),
                            ``resample_button``, ``encode_button``, ``caption`` (HTML),
                            ``z`` (the current full code, a (L,) tensor), ``codes`` (N, L),
                            ``face`` (index of the encoded face, None after a resample),
                            ``kl`` (L,) nats per dim (VAE only, else None)
``interpolator``            ``start_index``, ``end_index`` (BoundedIntText), ``random_button``,
                            ``t`` (FloatSlider in [0, 1]), ``path`` ("linear"/"spherical"),
                            ``start_image``, ``image``, ``end_image``, ``z``, ``codes``
``attribute_editor``        ``sliders`` (dict attribute -> FloatSlider, strength −2..2),
                            ``directions`` (dict attribute -> (L,) tensor), ``index``,
                            ``random_button``, ``reset_button``, ``original``, ``image``,
                            ``z``, ``codes``
``beta_compare``            ``rank`` (IntSlider, 1 = most active dim), ``value`` (FloatSlider),
                            ``index``, ``random_button``, ``images`` / ``strips`` / ``labels``
                            (dicts model name -> widget, one row per model), ``orders``
                            (dict name -> latent dims sorted by KL), ``models``
==========================  ==============================================================

Building blocks usable on their own (they live in :mod:`vaebook.explore.latents` and are importable from
here too): :func:`to_png`, :func:`decode`, :func:`decode_png`, :func:`lerp`, :func:`slerp`,
:func:`attribute_directions`, :func:`directions_from_codes`. The explorer that runs in the
rendered book's pages, without a kernel, is :mod:`vaebook.explore.webexport`.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from .latents import (attribute_directions, decode, decode_png, directions_from_codes,  # noqa: F401
                      grid_png, lerp, slerp, to_png)
from ..metrics.measures import encode_means, fit_gaussian, kl_per_dim
from ..models import AutoEncoder
from .widget_parts import (SLIDER_STYLE, _blank_png, _check_model, _Holder, _image, _psd_root,
                           _test_faces, _titled)
from .widgets_compare import DEFAULT_ATTRIBUTES, attribute_editor, beta_compare  # noqa: F401


# ------------------------------------------------------------------------------ latent explorer
def latent_explorer(model: AutoEncoder, data=None, n_sliders: int = 8, *, n_faces: int = 1000,
                    scale: int = 3, seed: int = 0) -> W.VBox:
    """Sliders for the most informative latent dims and the decoded face, live.

    VAE: the sliders are the `n_sliders` dims with the largest KL(q(z_u|x) ‖ N(0, 1)) on the
    test faces (the dims the model uses), range −3..3 (the prior's ±3σ); "Resample" draws
    z ~ N(0, I). Autoencoder: the first `n_sliders` dims (an AE has no KL to rank them by),
    range mean ± 3 std of the codes; "Resample" draws from a Gaussian fitted to the codes of the
    test faces. "Encode a test face" sets z to a random face's code (posterior mean) and shows
    the face next to its decoding. The dims without a slider keep their last value.
    Parts: see the module docstring."""
    is_vae = _check_model(model)
    images, _, _ = _test_faces(data, n_faces)
    codes = encode_means(model, images)
    n_dims = codes.shape[1]
    gen = torch.Generator().manual_seed(seed)
    if is_vae:
        kl = kl_per_dim(model, images).float()
        dims = torch.argsort(kl, descending=True)[:n_sliders].tolist()
        mean, root = torch.zeros(n_dims), torch.eye(n_dims)
        lo, hi = torch.full((n_dims,), -3.0), torch.full((n_dims,), 3.0)
        labels = [f"z{d} (KL {kl[d]:.2f})" for d in dims]
    else:
        kl = None
        dims = list(range(min(n_sliders, n_dims)))
        mean, cov = fit_gaussian(codes)
        root = _psd_root(cov)
        std = cov.diagonal().clamp(min=1e-6).sqrt()
        lo, hi = mean - 3 * std, mean + 3 * std
        labels = [f"h{d}" for d in dims]

    first = 0
    z = codes[first].clone()
    hold = _Holder()
    sliders = [W.FloatSlider(value=float(z[d]), min=float(lo[d]), max=float(hi[d]),
                             step=float(hi[d] - lo[d]) / 120, description=label, readout_format=".2f",
                             continuous_update=True, style=SLIDER_STYLE, layout=W.Layout(width="430px"))
               for d, label in zip(dims, labels)]
    image = _image(decode_png(model, z, scale))
    original = _image(to_png(images[first], scale))
    side = images.shape[-1] * scale
    blank = _blank_png(side)
    button_layout = W.Layout(width=f"{side - 2}px")
    resample_button = W.Button(description="Resample", icon="random", layout=button_layout,
                               tooltip="draw z from the prior N(0, I)" if is_vae else
                               "draw z from a Gaussian fitted to the codes of the test faces")
    encode_button = W.Button(description="Encode a test face", icon="user", layout=button_layout,
                             tooltip="set z to the code of a random test face")
    caption = W.HTML()

    def describe(text):
        caption.value = f"<span style='color:#555'>{text}</span>"

    def redraw():
        image.value = decode_png(model, z, scale)

    def set_z(new):
        z.copy_(new)
        with hold():  # the sliders show z (clipped to their range); z itself stays exact
            for d, s in zip(dims, sliders):
                s.value = float(new[d].clamp(s.min, s.max))
        redraw()

    def on_slide(change, d):
        if hold.held:
            return
        z[d] = change["new"]
        redraw()

    for d, s in zip(dims, sliders):
        s.observe(lambda change, d=d: on_slide(change, d), names="value")

    def resample(_=None):
        eps = torch.randn(n_dims, generator=gen)
        set_z(mean + root @ eps)
        box.face = None
        original.value = blank
        describe("a random code: " + ("z ~ N(0, I), the prior" if is_vae else
                                      "drawn from a Gaussian fitted to the codes of the test faces"))

    def encode_face(_=None):
        i = int(torch.randint(len(codes), (1,), generator=gen))
        box.face = i
        original.value = to_png(images[i], scale)
        set_z(codes[i])
        describe(f"test face #{i} and the decoding of its {'posterior mean' if is_vae else 'code'}")

    resample_button.on_click(resample)
    encode_button.on_click(encode_face)
    describe(f"test face #{first} and the decoding of its {'posterior mean' if is_vae else 'code'}")

    what = (f"{len(dims)} of {n_dims} dims, largest KL first" if is_vae
            else f"the first {len(dims)} of {n_dims} dims")
    left = W.VBox([W.HBox([_titled("encoded face", original), _titled("decoded z", image)]),
                   W.HBox([resample_button, encode_button]), caption],
                  layout=W.Layout(width=f"{2 * side + 30}px"))
    right = W.VBox([W.HTML(f"<b>latent sliders</b> ({what})"), *sliders])
    box = W.VBox([W.HBox([left, right])])
    box.sliders, box.dims, box.image, box.original = sliders, dims, image, original
    box.resample_button, box.encode_button, box.caption = resample_button, encode_button, caption
    box.z, box.codes, box.kl, box.face = z, codes, kl, first
    return box


# --------------------------------------------------------------------------------- interpolator
def interpolator(model: AutoEncoder, data=None, *, n_faces: int = 1000, scale: int = 3, seed: int = 0,
                 start: int = 0, end: int = 1) -> W.VBox:
    """Slide between the codes (posterior means) of two test faces: z(t) = (1 − t)·z_a + t·z_b,
    or along the great circle ("spherical", see :func:`slerp`). Shows the two faces and the
    decoding of z(t); at t = 0 and 1 that is the model's reconstruction of each face.
    Parts: see the module docstring."""
    _check_model(model)
    images, _, _ = _test_faces(data, n_faces)
    codes = encode_means(model, images)
    n = len(codes)
    gen = torch.Generator().manual_seed(seed)
    hold = _Holder()
    index_style = {"description_width": "50px"}
    start_index = W.BoundedIntText(value=start % n, min=0, max=n - 1, description="start #",
                                   style=index_style, layout=W.Layout(width="140px"))
    end_index = W.BoundedIntText(value=end % n, min=0, max=n - 1, description="end #",
                                 style=index_style, layout=W.Layout(width="140px"))
    random_button = W.Button(description="Two random faces", icon="random")
    t = W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.02, description="t", readout_format=".2f",
                      continuous_update=True, layout=W.Layout(width="420px"))
    path = W.ToggleButtons(options=["linear", "spherical"], value="linear",
                           tooltips=["straight line between the codes", "great circle (slerp)"])
    z = torch.zeros(codes.shape[1])

    def current():
        a, b = codes[start_index.value], codes[end_index.value]
        return (lerp if path.value == "linear" else slerp)(a, b, t.value)

    start_image = _image(to_png(images[start_index.value], scale))
    end_image = _image(to_png(images[end_index.value], scale))
    z.copy_(current())
    image = _image(decode_png(model, z, scale))

    def redraw(_=None):
        if hold.held:
            return
        start_image.value = to_png(images[start_index.value], scale)
        end_image.value = to_png(images[end_index.value], scale)
        z.copy_(current())
        image.value = decode_png(model, z, scale)

    def pick_random(_=None):
        a, b = torch.randperm(n, generator=gen)[:2].tolist()
        with hold():
            start_index.value, end_index.value = a, b
        redraw()

    for control in (start_index, end_index, t, path):
        control.observe(redraw, names="value")
    random_button.on_click(pick_random)

    box = W.VBox([
        W.HBox([start_index, end_index, random_button]),
        W.HBox([_titled("start (t = 0)", start_image), _titled("z(t), decoded", image),
                _titled("end (t = 1)", end_image)]),
        t, W.HBox([W.HTML("path&nbsp;"), path]),
    ])
    box.start_index, box.end_index, box.random_button, box.t, box.path = start_index, end_index, random_button, t, path
    box.start_image, box.image, box.end_image, box.z, box.codes = start_image, image, end_image, z, codes
    return box
