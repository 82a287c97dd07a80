"""Tests of vaebook.metrics.likelihood: shared samples, bounds at any σ, the fitted σ, bits per dimension.
Known answers come from a linear-Gaussian model whose posterior and likelihood are exact."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vaebook.metrics import likelihood as LL
from vaebook import losses
from vaebook.models import ModelConfig, build_model


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def tiny_vae():
    vae = build_model(ModelConfig(kind="vae", image_size=16, channels=(4, 8), latent_dim=3), seed=0)
    with torch.no_grad():  # an informative posterior, so that samples differ visibly
        vae.to_latent.weight.mul_(30)
        vae.to_logvar.bias.fill_(-2.0)
    return vae


def images(n=40, seed=3):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


class LinearVAE(nn.Module):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s² I) on flat x (N, D), with W's columns orthogonal, and an
    encoder that returns the exact posterior N(var·Wᵀ(x − b)/s², var), var_u = 1/(1 + c_u²/s²).
    Then every importance weight equals p(x), so L_K = log p(x) for every K."""

    def __init__(self, d=6, scales=(2.0, 0.7), s=0.5):
        super().__init__()
        q, _ = torch.linalg.qr(randn(d, len(scales), seed=5, dtype=torch.float64))
        self.W = q * torch.tensor(scales, dtype=torch.float64)
        self.b, self.s = randn(d, seed=6, dtype=torch.float64), s
        self.var = 1 / (1 + torch.tensor(scales, dtype=torch.float64) ** 2 / s**2)
        self.dummy = nn.Parameter(torch.zeros(1))  # a parameter, so the model has a device

    def encode(self, x):
        mu = self.var * ((x.double() - self.b) @ self.W) / self.s**2
        return mu, mu.float(), self.var.log().expand_as(mu).float()

    def decode(self, z):
        return (z.double() @ self.W.T + self.b).float()

    def sample_x(self, n):
        z = randn(n, self.W.shape[1], seed=7, dtype=torch.float64)
        return (z @ self.W.T + self.b + self.s * randn(n, self.W.shape[0], seed=8, dtype=torch.float64)).float()

    def log_px(self, x):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x.double())


def test_iwae_at_the_true_sigma_with_the_exact_posterior_is_log_px_for_every_k():
    model = LinearVAE()
    x = model.sample_x(300)
    for k in (1, 4, 16):
        samples = LL.importance_samples(model, x, k, batch_size=64, seed=k)
        assert samples.sq_error.shape == samples.log_ratio.shape == (300, k)
        torch.testing.assert_close(LL.iwae_at(samples, model.s), model.log_px(x), rtol=0, atol=2e-4)


def test_first_sample_is_the_same_for_any_k_and_batch_size_and_elbo_terms_uses_it():
    vae, x = tiny_vae(), images()
    one = LL.importance_samples(vae, x, 1, batch_size=7, seed=11)
    five = LL.importance_samples(vae, x, 5, batch_size=7, seed=11)
    assert torch.equal(one.sq_error[:, 0], five.sq_error[:, 0])
    assert torch.equal(one.log_ratio[:, 0], five.log_ratio[:, 0])
    assert (five.sq_error[:, 0] - five.sq_error[:, 1]).abs().max() > 0.05  # other z, other error
    # another batch size: the same z (the network's float rounding may differ in the last digits)
    other_batches = LL.importance_samples(vae, x, 1, batch_size=40, seed=11)
    torch.testing.assert_close(other_batches.sq_error, one.sq_error, rtol=0, atol=1e-3)
    terms = LL.elbo_terms(vae, x, 0.3, batch_size=7, seed=11)
    assert terms["elbo"] == float(LL.elbo_at(five, 0.3).mean())
    assert terms["kl"] == float(five.kl.mean())
    assert LL.iwae_bound(vae, x, 0.3, 5, batch_size=7, seed=11).equal(LL.iwae_at(five, 0.3))
    other = LL.importance_samples(vae, x, 1, seed=12)
    assert not torch.equal(other.sq_error, one.sq_error)


def test_samples_hold_what_the_losses_compute():
    """sq_error and log_ratio, turned into log p(x|z) + log p(z) − log q(z|x) at some σ, equal the
    decoder's Gaussian log-likelihood and the two densities, recomputed from the same z."""
    vae, x, sigma = tiny_vae(), images(12), 0.25
    samples = LL.importance_samples(vae, x, 2, seed=4)
    vae.eval()
    with torch.no_grad():
        _, mu, logvar = vae.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(4))
        log_px = -losses.gaussian_nll(vae.decode(z).double(), x.double(), sigma)
    torch.testing.assert_close(LL.log_px_given_z(samples, sigma)[:, 0], log_px, rtol=1e-6, atol=1e-6)
    ratio = LL.gaussian_log_density(z.double(), 0.0, 0.0) - LL.gaussian_log_density(z.double(), mu.double(), logvar.double())
    torch.testing.assert_close(samples.log_ratio[:, 0], ratio, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(samples.kl, losses.kl_divergence(mu.double(), logvar.double()))
    assert samples.num_pixels == 3 * 16 * 16


def test_samples_use_eval_mode_and_restore_the_mode():
    vae, x = tiny_vae(), images(20)
    vae.train()
    a = LL.importance_samples(vae, x, 2, batch_size=20, seed=0)
    b = LL.importance_samples(vae, x, 2, batch_size=3, seed=0)
    torch.testing.assert_close(a.sq_error, b.sq_error, rtol=1e-5, atol=1e-4)  # running stats, not batch stats
    assert vae.training
    with pytest.raises(ValueError, match="at least 1"):
        LL.importance_samples(vae, x, 0)


def test_elbo_optimal_sigma_maximises_the_mean_elbo():
    samples = LL.importance_samples(tiny_vae(), images(), 3, seed=1)
    best = LL.elbo_optimal_sigma(samples)
    assert best == pytest.approx(math.sqrt(float(samples.sq_error.mean()) / samples.num_pixels))
    # its first-sample ELBO is highest among nearby σ (the KL does not depend on σ)
    first = samples._replace(sq_error=samples.sq_error.mean(1, keepdim=True))
    values = {f: float(LL.elbo_at(first, best * f).mean()) for f in (0.9, 0.99, 1.0, 1.01, 1.1)}
    assert max(values, key=values.get) == 1.0


def test_bounds_at_a_sigma_share_their_samples():
    samples = LL.importance_samples(tiny_vae(), images(), 8, seed=2)
    out = LL.bounds(samples, 0.3)
    elbo, iwae = LL.elbo_at(samples, 0.3), LL.iwae_at(samples, 0.3)
    assert out["elbo"] == pytest.approx(float(elbo.mean())) and out["iwae"] == pytest.approx(float(iwae.mean()))
    assert out["gap"] == pytest.approx(out["iwae"] - out["elbo"])
    assert out["gap"] > 0 and out["gap_se"] > 0
    assert out["bpd"] == pytest.approx(LL.bits_per_dim(-out["iwae"], samples.num_pixels))
    # a smaller σ changes every bound, not the samples
    assert LL.bounds(samples, 0.1)["elbo"] != out["elbo"]


def test_bits_per_dim_on_the_8_bit_scale():
    d = 12288
    assert LL.bits_per_dim(0.0, d) == 8.0                      # a flat density on [0, 1]^D
    assert LL.bits_per_dim(d * math.log(2), d) == pytest.approx(9.0)
    assert LL.bits_per_dim(-d * math.log(2), d) == pytest.approx(7.0)


def test_iwae_grouped_averages_the_bound_over_groups_of_k():
    samples = LL.importance_samples(tiny_vae(), images(), 8, seed=3)
    log_w = LL.log_weights(LL.log_px_given_z(samples, 0.3), samples.log_ratio, 0.0)
    assert torch.allclose(LL.iwae_grouped(samples, 0.3, 8), LL.iwae_at(samples, 0.3))
    assert torch.allclose(LL.iwae_grouped(samples, 0.3, 1), log_w.double().mean(1))
    by_hand = (LL.iwae_from_log_weights(log_w[:, :4]) + LL.iwae_from_log_weights(log_w[:, 4:])) / 2
    assert torch.allclose(LL.iwae_grouped(samples, 0.3, 4), by_hand)
    # groups of more samples give a higher bound on average (Burda et al.)
    assert LL.iwae_grouped(samples, 0.3, 8).mean() >= LL.iwae_grouped(samples, 0.3, 1).mean()
