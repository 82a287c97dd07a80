"""Tests of vaebook.exact.linear_vae: the exact objective against Monte Carlo, training against the
closed form (reverse water-filling), and the rule that β and σ only enter through βσ²."""
from __future__ import annotations

import math

import pytest
import torch

from vaebook.exact import linear_vae as lv
from vaebook.exact.linear import LinearGaussian

VARIANCES = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.25], dtype=torch.float64)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_exact_terms_match_monte_carlo():
    """Rate and distortion of a random linear VAE on non-centred correlated data, against sampling."""
    d, k, sigma = 4, 3, 0.7
    g = gen(0)
    L = torch.randn(d, d, generator=g, dtype=torch.float64)
    data = torch.distributions.MultivariateNormal(torch.randn(d, generator=g, dtype=torch.float64),
                                                  L @ L.T + 0.1 * torch.eye(d, dtype=torch.float64))
    A, c = torch.randn(k, d, generator=g, dtype=torch.float64), torch.randn(k, generator=g, dtype=torch.float64)
    logvar = torch.randn(k, generator=g, dtype=torch.float64)
    W, b = torch.randn(d, k, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    rate, distortion = lv.rate_distortion_terms(A, c, logvar, W, b, sigma, data)

    n = 200_000
    torch.manual_seed(1)
    x = data.sample((n,))
    mu = x @ A.T + c
    z = mu + (0.5 * logvar).exp() * torch.randn(n, k, dtype=torch.float64)
    sq = ((x - z @ W.T - b) ** 2).sum(1) / (2 * sigma**2)
    kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(1)
    assert abs(float(sq.mean()) - float(distortion)) < 4 * float(sq.std()) / math.sqrt(n)
    assert abs(float(kl.mean()) - float(rate)) < 4 * float(kl.std()) / math.sqrt(n)


@pytest.mark.parametrize("sigma, beta, active", [(1.0, 0.7, 4), (1.0, 3.0, 2), (0.5, 1.5, 5)])
def test_training_lands_on_the_closed_form(sigma, beta, active):
    """L-BFGS from random weights finds reverse water-filling: the same rate, distortion and decoder
    column lengths √(λ − βσ²)₊, with the directions of variance below βσ² collapsed."""
    data = lv.gaussian_data(VARIANCES)
    vae = lv.fit(data, k=6, sigma=sigma, beta=beta, seed=2)
    got, want = lv.rate_distortion(vae, data), lv.closed_form(VARIANCES, 6, sigma, beta)
    assert got.active == want.active == active
    assert got.rate == pytest.approx(want.rate, abs=1e-5)
    assert got.distortion == pytest.approx(want.distortion, abs=1e-5)
    lengths = vae.decoder.W.norm(dim=0).sort(descending=True).values
    torch.testing.assert_close(lengths, lv.column_lengths(VARIANCES, 6, sigma, beta), atol=1e-4, rtol=0)


def test_fewer_latents_than_directions_keep_the_largest():
    data = lv.gaussian_data(VARIANCES)
    vae = lv.fit(data, k=2, sigma=0.5, beta=1.0, seed=3)
    got, want = lv.rate_distortion(vae, data), lv.closed_form(VARIANCES, 2, 0.5, 1.0)
    assert got.active == want.active == 2
    assert got.rate == pytest.approx(want.rate, abs=1e-5)
    assert got.distortion == pytest.approx(want.distortion, abs=1e-5)
    assert want.distortion == pytest.approx((2 * 0.25 + float(VARIANCES[2:].sum())) / (2 * 0.25))


def test_beta_and_sigma_only_enter_through_their_product():
    """β = 3 at σ = 1 and β = 12 at σ = 0.5 (both βσ² = 3): the same decoder and rate; the distortion,
    measured in units of σ², four times larger at σ = 0.5."""
    data = lv.gaussian_data(VARIANCES)
    a, b = lv.fit(data, 6, 1.0, 3.0, seed=4), lv.fit(data, 6, 0.5, 12.0, seed=4)
    ra, rb = lv.rate_distortion(a, data), lv.rate_distortion(b, data)
    assert ra.rate == pytest.approx(rb.rate, abs=1e-5) and ra.active == rb.active == 2
    assert rb.distortion == pytest.approx(4 * ra.distortion, rel=1e-5)
    torch.testing.assert_close(a.decoder.W.norm(dim=0).sort().values, b.decoder.W.norm(dim=0).sort().values,
                               atol=1e-4, rtol=0)


def test_closed_form_slope_is_minus_beta():
    """Per direction: rate ½ log(λ/βσ²) and distortion β/2, so dD/dR = −β; between β and 2β the
    chord's slope lies between them."""
    for beta in (0.3, 1.0, 2.5):
        eps = 1e-6
        lo, hi = lv.closed_form(VARIANCES, 6, 0.8, beta), lv.closed_form(VARIANCES, 6, 0.8, beta * (1 + eps))
        assert (hi.distortion - lo.distortion) / (lo.rate - hi.rate) == pytest.approx(beta, rel=1e-4)
        far = lv.closed_form(VARIANCES, 6, 0.8, 2 * beta)
        assert beta <= (far.distortion - lo.distortion) / (lo.rate - far.rate) <= 2 * beta


def test_principal_variances_match_the_covariance_either_way_round():
    x = torch.randn(30, 5, generator=gen(5), dtype=torch.float64) * torch.tensor([3.0, 2, 1, 0.5, 0.1])
    want = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)
    torch.testing.assert_close(lv.principal_variances(x), want)                       # N > D
    torch.testing.assert_close(lv.principal_variances(x[:4])[:4],
                               torch.linalg.eigvalsh(torch.cov(x[:4].T, correction=0)).flip(0)[:4])  # N ≤ D
    assert lv.surviving_directions(torch.tensor([5.0, 2.0, 0.5]), sigma=1.0, beta=1.0) == 2


def test_rate_distortion_counts_nonzero_columns():
    vae = lv.LinearVAE(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2),
                       LinearGaussian(torch.tensor([[1.0, 0], [0, 0], [0, 0]], dtype=torch.float64),
                                      torch.zeros(3, dtype=torch.float64), 1.0))
    out = lv.rate_distortion(vae._replace(A=vae.A.double(), c=vae.c.double(), logvar=vae.logvar.double()),
                             lv.gaussian_data(torch.ones(3)))
    assert out.active == 1 and out.rate == pytest.approx(0.0)


def test_posterior_gap_matches_the_trained_model_and_grows_with_beta():
    """The closed-form gap E_x KL(Q(z|x) ‖ P(z|x)) equals the one computed from a trained linear VAE
    and its decoder's exact posterior (vaebook.exact.linear), is zero at β = 1 and grows with β."""
    from torch.distributions import MultivariateNormal, kl_divergence
    data, sigma, beta = lv.gaussian_data(VARIANCES), 0.5, 4.0
    vae = lv.fit(data, 6, sigma, beta, seed=5)
    torch.manual_seed(6)
    x = data.sample((4000,))
    q = MultivariateNormal(x @ vae.A.T + vae.c, torch.diag(vae.logvar.exp()))
    measured = kl_divergence(q, vae.decoder.posterior(x))
    assert float(measured.mean()) == pytest.approx(lv.posterior_gap(VARIANCES, 6, sigma, beta),
                                                   abs=4 * float(measured.std()) / math.sqrt(len(x)))
    gaps = [lv.posterior_gap(VARIANCES, 6, sigma, b) for b in (1.0, 2.0, 4.0, 8.0)]
    assert gaps[0] == pytest.approx(0.0, abs=1e-12) and all(b > a for a, b in zip(gaps, gaps[1:])), gaps
