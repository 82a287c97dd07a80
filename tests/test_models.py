"""Tests of vaebook.models: shapes, the VAE's encoder and reparameterisation, the oracle, configs."""
from __future__ import annotations

import math

import pytest
import torch

from vaebook.models import (VAE, AutoEncoder, ModelConfig, Oracle, build_model, count_parameters)

B, S, L = 5, 16, 4
AE_CFG = ModelConfig("ae", latent_dim=L, channels=(4, 8), image_size=S)
VAE_CFG = ModelConfig("vae", latent_dim=L, channels=(4, 8), image_size=S)
ORACLE_CFG = ModelConfig("oracle", latent_dim=6, channels=(4, 8), image_size=S, factor_levels=(0, 3, 0, 2))


@pytest.fixture
def x():
    return torch.rand(B, 3, S, S, generator=torch.Generator().manual_seed(0))


# --- shapes ----------------------------------------------------------------------------------

def test_build_model_picks_the_class_of_the_kind():
    assert type(build_model(AE_CFG)) is AutoEncoder
    assert type(build_model(VAE_CFG)) is VAE
    assert type(build_model(ORACLE_CFG)) is Oracle


def test_autoencoder_shapes(x):
    model = build_model(AE_CFG).eval()
    h = model.encode(x)
    assert h.shape == (B, L)
    assert model.decode(h).shape == x.shape
    assert model(x).shape == x.shape


def test_vae_encode_returns_sample_mean_and_logvar(x):
    model = build_model(VAE_CFG).eval()
    out = model.encode(x)
    assert isinstance(out, tuple) and len(out) == 3
    z, mu, logvar = out
    assert z.shape == mu.shape == logvar.shape == (B, L)
    # mu and logvar are deterministic functions of x; z is a fresh sample each call
    z2, mu2, logvar2 = model.encode(x)
    torch.testing.assert_close(mu, mu2, rtol=0, atol=0)
    torch.testing.assert_close(logvar, logvar2, rtol=0, atol=0)
    assert not torch.equal(z, z2)
    # and z is mu + std * eps for some eps: with eps = 0 it is mu exactly
    torch.testing.assert_close(mu, model.to_latent(model.encoder(x)))
    torch.testing.assert_close(logvar, model.to_logvar(model.encoder(x)))


def test_vae_forward_shapes(x):
    x_hat, mu, logvar = build_model(VAE_CFG).eval()(x)
    assert x_hat.shape == x.shape and mu.shape == logvar.shape == (B, L)


def test_shapes_follow_the_config_not_constants():
    cfg = ModelConfig("vae", latent_dim=3, channels=(2, 4, 8), image_size=32, in_channels=1)
    model = build_model(cfg).eval()
    x = torch.rand(2, 1, 32, 32)
    x_hat, mu, _ = model(x)
    assert x_hat.shape == (2, 1, 32, 32) and mu.shape == (2, 3)
    assert cfg.feature_side == 32 // 2**3


@pytest.mark.parametrize("cfg", [AE_CFG, VAE_CFG], ids=["ae", "vae"])
def test_decode_is_in_unit_interval(cfg):
    model = build_model(cfg).eval()
    z = torch.randn(64, L, generator=torch.Generator().manual_seed(1)) * 50  # far outside the prior
    out = model.decode(z)
    assert out.shape == (64, 3, S, S)
    assert out.min() >= 0 and out.max() <= 1
    assert out.std() > 0  # not a constant image


def test_oracle_shapes_and_split(x):
    model = build_model(ORACLE_CFG).eval()
    out = model(x)
    assert out.shape == (B, 1 + 3 + 1 + 2)
    assert model.features(x).shape == (B, 6)
    parts = model.split_outputs(out)
    assert [tuple(p.shape) for p in parts] == [(B,), (B, 3), (B,), (B, 2)]
    torch.testing.assert_close(torch.cat([p.reshape(B, -1) for p in parts], 1), out)


def test_oracle_predict_gives_class_codes_for_categorical_factors(x):
    model = build_model(ORACLE_CFG).eval()
    pred = model.predict(x)
    assert pred.shape == (B, 4) and not pred.requires_grad
    parts = model.split_outputs(model(x))
    torch.testing.assert_close(pred[:, 0], parts[0])      # continuous: the value itself
    torch.testing.assert_close(pred[:, 2], parts[2])
    for col, part, k in ((1, parts[1], 3), (3, parts[3], 2)):  # categorical: argmax class code
        codes = pred[:, col]
        assert torch.equal(codes, part.argmax(1).float())
        assert torch.equal(codes, codes.round()) and codes.min() >= 0 and codes.max() <= k - 1


def test_build_model_seed_makes_weights_reproducible():
    a, b, c = build_model(VAE_CFG, seed=3), build_model(VAE_CFG, seed=3), build_model(VAE_CFG, seed=4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.to_latent.weight, c.to_latent.weight)


def test_vae_has_one_more_head_than_ae():
    extra = count_parameters(build_model(VAE_CFG)) - count_parameters(build_model(AE_CFG))
    flat = 8 * (S // 4) ** 2
    assert extra == flat * L + L


# --- ModelConfig validation ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, field", [
    (dict(kind="gan"), "kind"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(latent_dim=-3), "latent_dim"),
    (dict(image_size=20, channels=(4, 8, 16)), "image_size"),   # 20 is not a multiple of 8
    (dict(image_size=4, channels=(4, 8, 16)), "image_size"),    # smaller than 2**3
    (dict(channels=()), "channels"),
    (dict(channels=(4, 0)), "channels"),
    (dict(kind="oracle"), "factor_levels"),
])
def test_model_config_rejects_bad_values_naming_the_field(kwargs, field):
    base = dict(kind="vae", latent_dim=4, channels=(4, 8), image_size=16)
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{**base, **kwargs})


def test_model_config_round_trips_through_a_dict_and_json_lists():
    cfg = ORACLE_CFG
    d = cfg.to_dict()
    assert ModelConfig.from_dict(d) == cfg
    # JSON turns tuples into lists; the config must still compare equal after that
    as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
    back = ModelConfig.from_dict(as_json)
    assert back == cfg and isinstance(back.channels, tuple) and hash(back) == hash(cfg)


# --- reparameterisation ----------------------------------------------------------------------

def test_reparameterise_passes_gradient_to_mu_and_logvar():
    torch.manual_seed(0)
    mu = torch.randn(8, L, requires_grad=True)
    logvar = torch.randn(8, L, requires_grad=True)
    z = VAE.reparameterise(mu, logvar)
    z.sum().backward()
    # dz/dmu = 1; dz/dlogvar = 0.5 * sigma * eps = 0.5 * (z - mu)
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * (z - mu).detach())
    assert (logvar.grad != 0).all()


def test_reparameterise_samples_have_the_right_mean_and_std():
    n = 200_000
    mean = torch.tensor([1.5, -2.0, 0.0])
    std = torch.tensor([0.5, 2.0, 1.0])
    torch.manual_seed(0)
    z = VAE.reparameterise(mean.expand(n, 3), (2 * std.log()).expand(n, 3)).double()
    # standard errors of the sample mean (σ/√n) and of the sample std (≈ σ/√(2n)); 5 of them
    se_mean, se_std = std.double() / math.sqrt(n), std.double() / math.sqrt(2 * n)
    assert ((z.mean(0) - mean.double()).abs() < 5 * se_mean).all(), z.mean(0)
    assert ((z.std(0) - std.double()).abs() < 5 * se_std).all(), z.std(0)
    # the dimensions are independent
    corr = torch.corrcoef(z.T)
    assert (corr - torch.eye(3, dtype=corr.dtype)).abs().max() < 5 / math.sqrt(n)


def test_vae_encode_sample_uses_its_mean_and_logvar(x):
    """z from encode is distributed as N(mu, exp(logvar)): standardised, it looks like N(0, 1)."""
    model = build_model(VAE_CFG).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # eval mode: every copy of an image gets the same mu and logvar
        z, mu, logvar = model.encode(x.repeat(500, 1, 1, 1))
    torch.testing.assert_close(mu[:B], mu[-B:])
    eps = ((z - mu) / torch.exp(0.5 * logvar)).double()
    n = eps.numel()
    assert abs(eps.mean().item()) < 5 / math.sqrt(n)
    assert abs(eps.std().item() - 1) < 5 / math.sqrt(2 * n)
