"""Jupyter widgets that compare: an attribute editor (add attribute directions to a face's code)
and the same traversal across the models of the β sweep. Their parts are listed in
:mod:`vaebook.explore.widgets`, which re-exports both."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as W
import torch

from .latents import _pick_columns, decode, decode_png, directions_from_codes, grid_png, to_png
from ..metrics.measures import encode_means, kl_per_dim
from ..models import VAE, AutoEncoder
from .widget_parts import SLIDER_STYLE, _check_model, _Holder, _image, _test_faces, _titled

DEFAULT_ATTRIBUTES = ("Smiling", "Eyeglasses", "Wearing_Earrings", "Wearing_Necktie",
                      "Blond_Hair", "Mouth_Slightly_Open")


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
        from ..store.checkpoints import load
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
