"""The interactive widgets, driven without a browser: set a control's value or click a button,
then check the images (valid PNGs of the expected size) and the codes behind them.

Tiny random-weight models and the first 64 test faces keep it fast; no checkpoint is needed."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from vaebook.explore import widgets as wg
from vaebook.data import load_dataset, stack_images
from vaebook.models import ModelConfig, build_model

CHANNELS = (8, 16, 32, 64)
N_FACES = 64


@pytest.fixture(scope="module")
def data():
    return load_dataset("faces", "test", limit=N_FACES)


@pytest.fixture(scope="module")
def images(data):
    return stack_images(data)


def tiny(kind="vae", latent_dim=10, seed=0):
    return build_model(ModelConfig(kind, latent_dim=latent_dim, channels=CHANNELS), seed=seed).eval()


@pytest.fixture(scope="module")
def vae():
    return tiny("vae")


def png_size(png: bytes) -> tuple[int, int]:
    img = Image.open(io.BytesIO(png))
    img.load()  # fails on a truncated or invalid PNG
    assert img.format == "PNG"
    return img.size


def png_array(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def means(model, images):
    """Posterior means computed by hand, the reference for the widgets' cached codes."""
    with torch.no_grad():
        return model.encode(images)[1]


def count_changes(image_widget) -> list:
    changes = []
    image_widget.observe(lambda ch: changes.append(ch["new"]), names="value")
    return changes


# ----------------------------------------------------------------------------- building blocks
def test_to_png_upscales_with_nearest_pixels():
    img = torch.zeros(3, 4, 4)
    img[0, 1, 2] = 1.0                     # one red pixel at row 1, column 2
    png = wg.to_png(img, scale=3)
    assert png_size(png) == (12, 12)
    arr = png_array(png)
    assert (arr[3:6, 6:9] == [255, 0, 0]).all()     # the pixel became a 3x3 block
    assert (arr[:3] == 0).all() and (arr[6:] == 0).all()
    with pytest.raises(ValueError):
        wg.to_png(torch.zeros(2, 3, 4, 4))


def test_decode_png_size_and_dependence_on_z(vae):
    z = torch.zeros(10)
    png = wg.decode_png(vae, z, scale=3)
    assert png_size(png) == (192, 192)
    assert wg.decode_png(vae, z, scale=3) == png        # deterministic
    assert wg.decode_png(vae, z + 3.0, scale=3) != png


def test_lerp_and_slerp():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(wg.lerp(a, b, 0.5), torch.tensor([0.5, 0.5]))
    assert torch.allclose(wg.slerp(a, b, 0.0), a) and torch.allclose(wg.slerp(a, b, 1.0), b)
    assert torch.allclose(wg.slerp(a, b, 0.5), torch.tensor([1.0, 1.0]) / 2 ** 0.5, atol=1e-6)
    assert torch.allclose(wg.slerp(a, 2 * a, 0.5), 1.5 * a)      # parallel: the straight line


def test_directions_are_differences_of_class_means(vae, images, data):
    names = ["Smiling", "Eyeglasses"]
    cols = [data.attr_names.index(n) for n in names]
    dirs = wg.attribute_directions(vae, images, data.attrs, names, attr_names=data.attr_names)
    mu = means(vae, images)
    for name, col in zip(names, cols):
        has = data.attrs[:, col] == 1
        assert 0 < has.sum() < len(has)
        expected = mu[has].mean(0) - mu[~has].mean(0)
        assert torch.allclose(dirs[name], expected, atol=1e-5)
    # without attr_names the columns are the names, in order
    same = wg.attribute_directions(vae, images, data.attrs[:, cols], names)
    assert all(torch.allclose(same[n], dirs[n]) for n in names)


def test_directions_need_both_groups():
    codes = torch.randn(5, 3)
    with pytest.raises(ValueError, match="with and without"):
        wg.directions_from_codes(codes, torch.ones(5, 1), ["Smiling"])
    with pytest.raises(ValueError, match="shape"):
        wg.directions_from_codes(codes, torch.ones(4, 1), ["Smiling"])


# ------------------------------------------------------------------------------ latent explorer
def test_explorer_vae_sliders_follow_kl_and_redraw(vae, data, images):
    w = wg.latent_explorer(vae, data, n_sliders=4)
    assert len(w.sliders) == 4 and len(set(w.dims)) == 4
    kl = w.kl
    assert [float(kl[d]) for d in w.dims] == sorted(kl.tolist(), reverse=True)[:4]
    assert torch.allclose(w.codes, means(vae, images), atol=1e-5)
    assert png_size(w.image.value) == (192, 192)
    before, z_before = w.image.value, w.z.clone()
    slider, d = w.sliders[1], w.dims[1]
    slider.value = slider.max if slider.value < 0 else slider.min
    assert w.image.value != before
    assert png_size(w.image.value) == (192, 192)
    assert float(w.z[d]) == pytest.approx(slider.value)
    others = [u for u in range(10) if u != d]
    assert torch.equal(w.z[others], z_before[others])        # only that dim moved
    assert w.image.value == wg.decode_png(vae, w.z, 3)       # the image is the decoding of z


def test_explorer_buttons(vae, data, images, monkeypatch):
    w = wg.latent_explorer(vae, data, n_sliders=4, seed=1)
    changes = count_changes(w.image)
    decodes = []
    real_decode_png = wg.decode_png
    monkeypatch.setattr(wg, "decode_png", lambda *a, **k: decodes.append(1) or real_decode_png(*a, **k))
    w.resample_button.click()
    assert len(decodes) == 1                                  # one redraw, not one per slider
    assert w.face is None and len(changes) == 1
    assert (png_array(w.original.value) == 235).all()        # no original for a sample
    z_sampled = w.z.clone()
    w.resample_button.click()
    assert not torch.equal(w.z, z_sampled)
    w.encode_button.click()
    i = w.face
    assert i is not None and len(changes) == 3
    assert torch.equal(w.z, w.codes[i])
    assert w.original.value == wg.to_png(images[i], 3)
    for s, d in zip(w.sliders, w.dims):
        assert s.value == pytest.approx(float(w.z[d].clamp(s.min, s.max)), abs=1e-6)
    assert f"#{i}" in w.caption.value


def test_explorer_keeps_codes_beyond_the_slider_range(data):
    model = tiny("vae")
    with torch.no_grad():
        model.to_latent.bias.fill_(5.0)                       # posterior means near 5, sliders stop at 3
    w = wg.latent_explorer(model, data, n_sliders=3)
    w.encode_button.click()
    assert torch.equal(w.z, w.codes[w.face])                  # the code itself is not clipped
    assert all(s.value == s.max == 3.0 for s in w.sliders)
    assert w.image.value == wg.decode_png(model, w.codes[w.face], 3)


def test_explorer_autoencoder_samples_from_fitted_gaussian(data, images):
    ae = tiny("ae", latent_dim=128)          # 128 dims > 63: the fitted covariance is singular
    w = wg.latent_explorer(ae, data, n_sliders=5)
    assert w.dims == [0, 1, 2, 3, 4] and w.kl is None
    w.resample_button.click()
    codes = w.codes.double()
    centred = codes - codes.mean(0)
    # a draw from N(mean, cov) lies in mean + span of the centred codes (rank <= 63 of 128);
    # a draw from N(0, I) would not
    basis = torch.linalg.svd(centred, full_matrices=False).Vh         # (64, 128)
    offset = w.z.double() - codes.mean(0)
    residual = offset - basis.T @ (basis @ offset)
    assert offset.norm() > 0 and residual.norm() < 1e-3 * offset.norm()
    before = w.image.value
    w.sliders[0].value = w.sliders[0].max
    assert w.image.value != before


def test_explorer_leaves_model_mode_alone(data):
    model = tiny("vae").train()
    stats = model.encoder[1].running_mean.clone()
    w = wg.latent_explorer(model, data, n_sliders=2)
    w.sliders[0].value = 1.0
    assert model.training
    assert torch.equal(model.encoder[1].running_mean, stats)


def test_widgets_reject_other_models(data):
    oracle = build_model(ModelConfig("oracle", latent_dim=8, channels=CHANNELS, factor_levels=(0, 2)))
    with pytest.raises(TypeError):
        wg.latent_explorer(oracle, data)
    with pytest.raises(TypeError, match="KL"):
        wg.beta_compare(models={"ae": tiny("ae")}, data=data)


# --------------------------------------------------------------------------------- interpolator
def test_interpolator_path_and_controls(vae, data, images):
    w = wg.interpolator(vae, data, start=3, end=7)
    a, b = w.codes[3], w.codes[7]
    assert torch.allclose(w.z, (a + b) / 2)                  # t starts at 0.5, linear
    assert w.start_image.value == wg.to_png(images[3], 3)
    assert w.end_image.value == wg.to_png(images[7], 3)
    before = w.image.value
    w.t.value = 0.0
    assert torch.allclose(w.z, a) and w.image.value != before
    assert w.image.value == wg.decode_png(vae, a, 3)
    w.t.value = 1.0
    assert torch.allclose(w.z, b)
    w.t.value = 0.3
    w.path.value = "spherical"
    assert torch.allclose(w.z, wg.slerp(a, b, 0.3), atol=1e-6)
    assert not torch.allclose(w.z, wg.lerp(a, b, 0.3))
    w.start_index.value = 10
    assert w.start_image.value == wg.to_png(images[10], 3)
    assert torch.allclose(w.z, wg.slerp(w.codes[10], b, 0.3), atol=1e-6)
    pairs = set()
    for _ in range(3):
        w.random_button.click()
        pairs.add((w.start_index.value, w.end_index.value))
        assert w.start_index.value != w.end_index.value
        assert w.end_image.value == wg.to_png(images[w.end_index.value], 3)
    assert len(pairs) > 1
    assert png_size(w.image.value) == (192, 192)


# ----------------------------------------------------------------------------- attribute editor
def test_attribute_editor(vae, data, images):
    names = ("Smiling", "Eyeglasses", "Wearing_Necktie")
    w = wg.attribute_editor(vae, data, attributes=names, index=5)
    assert list(w.sliders) == list(names)
    mu = means(vae, images)
    col = data.attr_names.index("Smiling")
    has = data.attrs[:, col] == 1
    smiling = mu[has].mean(0) - mu[~has].mean(0)
    assert torch.allclose(w.directions["Smiling"], smiling, atol=1e-5)
    assert torch.allclose(w.z, mu[5], atol=1e-5)             # all strengths start at 0
    before = w.image.value
    w.sliders["Smiling"].value = 1.5
    w.sliders["Eyeglasses"].value = -1.0
    expected = w.codes[5] + 1.5 * w.directions["Smiling"] - 1.0 * w.directions["Eyeglasses"]
    assert torch.allclose(w.z, expected, atol=1e-6)
    assert w.image.value != before and png_size(w.image.value) == (192, 192)
    w.index.value = 9
    assert w.original.value == wg.to_png(images[9], 3)
    assert torch.allclose(w.z, w.codes[9] + 1.5 * w.directions["Smiling"] - w.directions["Eyeglasses"], atol=1e-6)
    w.reset_button.click()
    assert all(s.value == 0 for s in w.sliders.values())
    assert torch.equal(w.z, w.codes[9])
    w.random_button.click()
    assert torch.equal(w.z, w.codes[w.index.value])
    with pytest.raises(ValueError, match="unknown attribute"):
        wg.attribute_editor(vae, data, attributes=("Smiling", "Moustache_Twirl"))


# --------------------------------------------------------------------------------- beta compare
def test_beta_compare_one_row_per_model(data):
    models = {"beta1": tiny(seed=1), "beta4": tiny(seed=4), "beta16": tiny(seed=16)}
    w = wg.beta_compare(models=models, data=data, scale=2, steps=5)
    assert list(w.images) == list(models) == list(w.strips) == list(w.labels)
    for name in models:
        assert png_size(w.images[name].value) == (128, 128)
        assert png_size(w.strips[name].value) == (5 * 64 + 4 * 2, 64)    # 5 faces, 2 px gaps
    before = {name: im.value for name, im in w.images.items()}
    w.value.value = -2.5
    assert all(w.images[n].value != before[n] for n in models)
    w.rank.value = 2
    for name, m in models.items():
        d = int(w.orders[name][1])
        kl = w.kls[name]
        assert float(kl[d]) == sorted(kl.tolist(), reverse=True)[1]
        assert f"z{d}<" in w.labels[name].value
        z = w.codes[name][w.index.value].clone()
        z[d] = -2.5
        assert w.images[name].value == wg.decode_png(m, z, 2)
    strips = {name: s.value for name, s in w.strips.items()}
    w.index.value = 11
    assert all(w.strips[n].value != strips[n] for n in models)
