"""Interactive widgets to explore a trained model's latent space in Jupyter (ipywidgets only).

Four builders, each returning its top-level widget (a ``VBox``; the last expression of a cell
displays it):

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

Building blocks usable on their own (they live in :mod:`vaebook.latents` and are importable from
here too): :func:`to_png`, :func:`decode`, :func:`decode_png`, :func:`lerp`, :func:`slerp`,
:func:`attribute_directions`, :func:`directions_from_codes`. The explorer that runs in the
rendered book's pages, without a kernel, is :mod:`vaebook.webexport`.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import ipywidgets as W
import torch
from PIL import Image

from .data import load_dataset, stack_images
from .latents import (_pick_columns, attribute_directions, decode, decode_png,  # noqa: F401
                      directions_from_codes, grid_png, lerp, slerp, to_png)
from .metrics import encode_means, fit_gaussian, kl_per_dim
from .models import VAE, AutoEncoder

DEFAULT_ATTRIBUTES = ("Smiling", "Eyeglasses", "Wearing_Earrings", "Wearing_Necktie",
                      "Blond_Hair", "Mouth_Slightly_Open")
SLIDER_STYLE = {"description_width": "110px"}


# ----------------------------------------------------------------------------------- plumbing
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


# ----------------------------------------------------------------------------- attribute editor
def attribute_editor(model: AutoEncoder, data=None, attributes: Sequence[str] = DEFAULT_ATTRIBUTES, *,
                     n_faces: int = 1000, scale: int = 3, seed: int = 0, index: int = 0) -> W.VBox:
    """Edit a test face by adding attribute directions to its code.

    Each direction is the mean code (posterior mean) of the test faces with the attribute minus
    the mean code of those without (:func:`directions_from_codes`); the edited code is
    z = code(face) + Σ strength_a · direction_a, strengths in −2..2 (1 = the average difference
    between the two groups). Needs a dataset with ``attrs`` and ``attr_names``.
    Parts: see the module docstring."""
    _check_model(model)
    images, attrs, attr_names = _test_faces(data, n_faces)
    if attrs is None or attr_names is None:
        raise ValueError("attribute_editor needs a dataset with `attrs` and `attr_names`")
    attributes = tuple(attributes)
    codes = encode_means(model, images)
    directions = directions_from_codes(codes, _pick_columns(attrs, attributes, attr_names), attributes)
    n = len(codes)
    gen = torch.Generator().manual_seed(seed)
    hold = _Holder()
    index_box = W.BoundedIntText(value=index % n, min=0, max=n - 1, description="face #",
                                 style={"description_width": "50px"}, layout=W.Layout(width="140px"))
    random_button = W.Button(description="Random face", icon="random")
    reset_button = W.Button(description="Reset sliders", icon="undo")
    sliders = {a: W.FloatSlider(value=0.0, min=-2.0, max=2.0, step=0.05, description=a,
                                readout_format="+.2f", continuous_update=True, style=SLIDER_STYLE,
                                layout=W.Layout(width="430px"))
               for a in attributes}
    z = torch.zeros(codes.shape[1])

    def edited():
        out = codes[index_box.value].clone()
        for a, s in sliders.items():
            out += s.value * directions[a]
        return out

    z.copy_(edited())
    original = _image(to_png(images[index_box.value], scale))
    image = _image(decode_png(model, z, scale))

    def redraw(_=None):
        if hold.held:
            return
        original.value = to_png(images[index_box.value], scale)
        z.copy_(edited())
        image.value = decode_png(model, z, scale)

    def reset(_=None):
        with hold():
            for s in sliders.values():
                s.value = 0.0
        redraw()

    def pick_random(_=None):
        with hold():
            index_box.value = int(torch.randint(n, (1,), generator=gen))
        redraw()

    index_box.observe(redraw, names="value")
    for s in sliders.values():
        s.observe(redraw, names="value")
    random_button.on_click(pick_random)
    reset_button.on_click(reset)

    counts = {a: int(c.sum()) for a, c in zip(attributes, _pick_columns(attrs, attributes, attr_names).T > 0.5)}
    note = W.HTML(f"<span style='color:#555'>directions from {n} test faces "
                  f"({', '.join(f'{a}: {k}' for a, k in counts.items())} have the attribute)</span>")
    box = W.VBox([
        W.HBox([index_box, random_button, reset_button]),
        W.HBox([W.HBox([_titled("test face", original), _titled("edited, decoded", image)]),
                W.VBox([W.HTML("<b>attribute strengths</b>"), *sliders.values()])]),
        note,
    ])
    box.sliders, box.directions, box.index, box.random_button, box.reset_button = \
        sliders, directions, index_box, random_button, reset_button
    box.original, box.image, box.z, box.codes = original, image, z, codes
    return box


# --------------------------------------------------------------------------------- beta compare
def beta_compare(names: Sequence[str] = ("beta1", "beta4", "beta16"),
                 models: Mapping[str, VAE] | None = None, data=None, *, n_faces: int = 500,
                 scale: int = 2, strip_scale: int = 1, steps: int = 7, seed: int = 0, index: int = 0) -> W.VBox:
    """The same traversal in every model of the β sweep, one row per model.

    Pick a rank k (k = 1: each model's most active dim by KL, which need not be the same dim
    number in different models) and a value: each row shows the code (posterior mean) of test
    face `index` with that dim set to the value, decoded, next to a strip of the whole traversal
    from −3 to 3 (`steps` images). `models` (name -> VAE) skips loading the checkpoints `names`.
    Parts: see the module docstring."""
    if models is None:
        from .checkpoints import load
        models = {name: load(name) for name in names}
    models = dict(models)
    if not models:
        raise ValueError("beta_compare needs at least one model")
    for m in models.values():
        _check_model(m, need_vae=True)
    images, _, _ = _test_faces(data, n_faces)
    n = len(images)
    codes = {name: encode_means(m, images) for name, m in models.items()}
    kls = {name: kl_per_dim(m, images).float() for name, m in models.items()}
    orders = {name: torch.argsort(kl, descending=True) for name, kl in kls.items()}
    n_rank = min(len(o) for o in orders.values())
    gen = torch.Generator().manual_seed(seed)
    hold = _Holder()

    rank = W.IntSlider(value=1, min=1, max=n_rank, description="rank k", continuous_update=True,
                       layout=W.Layout(width="330px"))
    value = W.FloatSlider(value=2.0, min=-3.0, max=3.0, step=0.05, description="value", readout_format=".2f",
                          continuous_update=True, layout=W.Layout(width="330px"))
    index_box = W.BoundedIntText(value=index % n, min=0, max=n - 1, description="face #",
                                 style={"description_width": "50px"}, layout=W.Layout(width="140px"))
    random_button = W.Button(description="Random face", icon="random")
    sweep = torch.linspace(-3, 3, steps)

    def dim(name):
        return int(orders[name][rank.value - 1])

    def code(name, v):
        z = codes[name][index_box.value].clone()
        z[dim(name)] = v
        return z

    def label_html(name):
        d = dim(name)
        return f"<b>{name}</b><br>dim z{d}<br>KL {kls[name][d]:.2f} nats"

    labels = {name: W.HTML(label_html(name), layout=W.Layout(width="110px")) for name in models}
    image_widgets = {name: _image(decode_png(m, code(name, value.value), scale)) for name, m in models.items()}

    def strip(name):
        base = codes[name][index_box.value]
        zs = base.repeat(steps, 1)
        zs[:, dim(name)] = sweep
        return grid_png(decode(models[name], zs), strip_scale)

    strips = {name: _image(strip(name)) for name in models}

    def redraw_values(_=None):
        if hold.held:
            return
        for name, m in models.items():
            image_widgets[name].value = decode_png(m, code(name, value.value), scale)

    def redraw_all(_=None):
        if hold.held:
            return
        for name in models:
            labels[name].value = label_html(name)
            strips[name].value = strip(name)
        redraw_values()

    def pick_random(_=None):
        with hold():
            index_box.value = int(torch.randint(n, (1,), generator=gen))
        redraw_all()

    value.observe(redraw_values, names="value")
    rank.observe(redraw_all, names="value")
    index_box.observe(redraw_all, names="value")
    random_button.on_click(pick_random)

    header = W.HTML(f"<span style='color:#555'>right: the traversal of that dim from −3 to 3 "
                    f"({steps} steps) from the same face</span>")
    rows = [W.HBox([labels[name], image_widgets[name], strips[name]],
                   layout=W.Layout(align_items="center")) for name in models]
    box = W.VBox([W.HBox([rank, value]), W.HBox([index_box, random_button]), header, *rows])
    box.rank, box.value, box.index, box.random_button = rank, value, index_box, random_button
    box.images, box.strips, box.labels, box.orders, box.models = image_widgets, strips, labels, orders, models
    box.kls, box.codes = kls, codes
    return box
