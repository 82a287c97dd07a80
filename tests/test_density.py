"""Tests of vaebook.metrics.density against answers known in advance: Gaussians and mixtures drawn with
known parameters, closed-form densities, and the published Lilliefors critical values."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MixtureSameFamily, MultivariateNormal

from vaebook.metrics import density


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def two_blobs(n=4000, seed=0):
    """Codes from 0.3 N((-4, 0), I) + 0.7 N((4, 1), diag(1, 4)), in 2-D."""
    g = torch.Generator().manual_seed(seed)
    first = torch.rand(n, generator=g, dtype=torch.float64) < 0.3
    noise = torch.randn(n, 2, generator=g, dtype=torch.float64)
    a = noise + torch.tensor([-4.0, 0.0], dtype=torch.float64)
    b = noise * torch.tensor([1.0, 2.0], dtype=torch.float64) + torch.tensor([4.0, 1.0], dtype=torch.float64)
    return torch.where(first[:, None], a, b)


# ------------------------------------------------------------------------------ full Gaussian
def test_fit_gaussian_recovers_mean_and_covariance():
    cov = torch.tensor([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]], dtype=torch.float64)
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    codes = mean + randn(20000, 3) @ torch.linalg.cholesky(cov).T
    fitted = density.fit_gaussian(codes)
    assert isinstance(fitted, MultivariateNormal)
    assert torch.allclose(fitted.loc, mean, atol=0.05)
    assert torch.allclose(fitted.covariance_matrix, cov + density.RIDGE * torch.eye(3, dtype=torch.float64), atol=0.06)


def test_fit_gaussian_is_the_sample_statistics_plus_the_ridge():
    codes = randn(50, 4, seed=1)
    fitted = density.fit_gaussian(codes, ridge=0.5)
    assert torch.allclose(fitted.loc, codes.mean(0))
    assert torch.allclose(fitted.covariance_matrix, torch.cov(codes.T) + 0.5 * torch.eye(4, dtype=torch.float64))


def test_ridge_makes_a_flat_direction_invertible():
    codes = torch.cat([randn(100, 1), torch.zeros(100, 1, dtype=torch.float64)], dim=1)  # no spread in dim 2
    log_p = density.fit_gaussian(codes).log_prob(codes)
    assert torch.isfinite(log_p).all()
    with pytest.raises(ValueError):  # without the ridge the covariance is singular
        density.fit_gaussian(codes, ridge=0.0).log_prob(codes)


def test_gaussian_log_density_matches_the_formula():
    codes = randn(7, 3, seed=2)
    fitted = density.fit_gaussian(randn(200, 3, seed=3))
    centred = codes - fitted.loc
    maha = (centred @ torch.linalg.inv(fitted.covariance_matrix) * centred).sum(1)
    expected = -0.5 * (maha + torch.logdet(fitted.covariance_matrix) + 3 * math.log(2 * math.pi))
    assert torch.allclose(fitted.log_prob(codes), expected)


# ------------------------------------------------------------------------------------ mixture
def test_fit_mixture_recovers_two_blobs():
    codes = two_blobs()
    mix, log_likelihood = density.fit_mixture(codes, 2, tol=1e-8)
    assert isinstance(mix, MixtureSameFamily)
    order = mix.component_distribution.loc[:, 0].argsort()
    weights = mix.mixture_distribution.probs[order]
    means = mix.component_distribution.loc[order]
    covs = mix.component_distribution.covariance_matrix[order]
    assert torch.allclose(weights, torch.tensor([0.3, 0.7], dtype=torch.float64), atol=0.03)
    assert torch.allclose(means, torch.tensor([[-4.0, 0.0], [4.0, 1.0]], dtype=torch.float64), atol=0.15)
    assert torch.allclose(covs[1].diagonal(), torch.tensor([1.0, 4.0], dtype=torch.float64), atol=0.3)
    assert len(log_likelihood) < 200


def test_em_never_lowers_the_likelihood_here_and_stops_at_tol():
    codes = two_blobs(seed=1)
    _, log_likelihood = density.fit_mixture(codes, 3, tol=1e-3)
    steps = torch.tensor(log_likelihood).diff()
    assert (steps > -1e-9).all(), steps
    assert steps[-1] < 1e-3 and (steps[:-1] >= 1e-3).all()


def test_log_likelihood_history_ends_at_the_returned_mixture():
    codes = two_blobs(n=500, seed=2)
    for max_steps in (0, 3):
        mix, log_likelihood = density.fit_mixture(codes, 2, max_steps=max_steps, tol=0.0)
        assert len(log_likelihood) == max_steps + 1
        assert math.isclose(mix.log_prob(codes).mean().item(), log_likelihood[-1], rel_tol=1e-9)


def test_one_component_mixture_is_the_maximum_likelihood_gaussian():
    codes = randn(300, 3, seed=4)
    mix, _ = density.fit_mixture(codes, 1, ridge=0.0)
    assert torch.allclose(mix.component_distribution.loc[0], codes.mean(0))
    assert torch.allclose(mix.component_distribution.covariance_matrix[0], torch.cov(codes.T, correction=0))


def test_mixture_log_density_is_the_logsumexp_of_its_parts():
    weights = torch.tensor([0.2, 0.8], dtype=torch.float64)
    means = torch.tensor([[0.0, 0.0], [3.0, -1.0]], dtype=torch.float64)
    covs = torch.stack([torch.eye(2, dtype=torch.float64), 2 * torch.eye(2, dtype=torch.float64)])
    mix = density.mixture(weights, means, covs)
    codes = randn(5, 2, seed=5)
    parts = [MultivariateNormal(mu, c).log_prob(codes) + w.log() for w, mu, c in zip(weights, means, covs)]
    assert torch.allclose(mix.log_prob(codes), torch.logsumexp(torch.stack(parts), dim=0))


def test_fit_mixture_works_in_one_dimension():
    codes = torch.cat([randn(1000, 1, seed=6) - 5, randn(1000, 1, seed=7) + 5])
    mix, _ = density.fit_mixture(codes, 2, tol=1e-8)
    assert torch.allclose(mix.component_distribution.loc.flatten().sort().values,
                          torch.tensor([-5.0, 5.0], dtype=torch.float64), atol=0.15)


def test_a_component_nobody_claims_stays_finite():
    codes = torch.cat([randn(50, 2, seed=8), torch.full((1, 2), 1e3, dtype=torch.float64)])
    mix, log_likelihood = density.fit_mixture(codes, 3, max_steps=20)
    assert all(math.isfinite(v) for v in log_likelihood)
    assert torch.isfinite(mix.component_distribution.loc).all()


# -------------------------------------------------------------------------------- sampling, BIC
def test_sample_is_reproducible_and_leaves_the_global_rng_alone():
    mix, _ = density.fit_mixture(two_blobs(n=500), 2)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = density.sample(mix, 1000, seed=5)
    assert torch.equal(torch.rand(3), expected_next)
    assert torch.equal(a, density.sample(mix, 1000, seed=5))
    assert not torch.equal(a, density.sample(mix, 1000, seed=6))


def test_sample_of_a_mixture_is_torchs_own_draw():
    """sample() draws a mixture without torch's (n, K, D, D) copy, but the very same codes."""
    for d, k, n in [(2, 2, 1000), (1, 3, 7), (16, 5, 300)]:
        codes = randn(2000, d, seed=d) * (1 + torch.arange(d)) + randn(1, d, seed=k)
        mix, _ = density.fit_mixture(codes, k)
        for m in (mix, density.mixture(*(t.float() for t in (
                mix.mixture_distribution.probs, mix.component_distribution.loc,
                mix.component_distribution.covariance_matrix)))):
            torch.manual_seed(4)
            assert torch.equal(density.sample(m, n, seed=4), m.sample((n,)))


def test_samples_follow_the_fitted_density():
    codes = two_blobs()
    mix, _ = density.fit_mixture(codes, 2)
    drawn = density.sample(mix, 20000, seed=0)
    assert torch.allclose(drawn.mean(0), codes.mean(0), atol=0.1)
    assert torch.allclose(torch.cov(drawn.T), torch.cov(codes.T), atol=0.3)
    gauss = density.fit_gaussian(codes)
    assert torch.allclose(density.sample(gauss, 20000).mean(0), gauss.loc, atol=0.1)


def test_n_parameters():
    assert density.n_parameters(1, 1) == 2              # a mean and a variance
    assert density.n_parameters(2, 1) == 5              # one weight, two means, two variances
    assert density.n_parameters(5, 128) == 4 + 5 * 128 + 5 * 128 * 129 // 2


def test_bic_prefers_two_components_for_two_blobs_and_one_for_one():
    codes = two_blobs()
    one, two = density.fit_gaussian(codes), density.fit_mixture(codes, 2)[0]
    assert density.bic(two, codes) < density.bic(one, codes) - 100
    bell = randn(4000, 2, seed=9)
    one, two = density.fit_gaussian(bell), density.fit_mixture(bell, 2)[0]
    assert density.bic(one, bell) < density.bic(two, bell)
    expected = -2 * one.log_prob(bell).sum() + 5 * math.log(4000)
    assert math.isclose(density.bic(one, bell), float(expected), rel_tol=1e-12)


# ------------------------------------------------------------------------------- KS, Lilliefors
def test_ks_distance_by_hand():
    values = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)      # mean 0, std 1
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(values[:, 0])
    expected = max(max(k / 3 - c.item(), c.item() - (k - 1) / 3) for k, c in zip((1, 2, 3), cdf))
    assert math.isclose(density.ks_distance(values).item(), expected, rel_tol=1e-12)


def test_ks_distance_is_small_for_normal_and_large_for_uniform_values():
    normal = density.ks_distance(randn(5000, 3))
    uniform = density.ks_distance(torch.rand(5000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert (normal < 0.02).all() and uniform.item() > 0.05


def test_lilliefors_critical_matches_the_published_values():
    # Lilliefors (1967), n > 30: 0.886/sqrt(n) at 5%, 1.031/sqrt(n) at 1%
    for level, constant in [(0.05, 0.886), (0.01, 1.031)]:
        value = density.lilliefors_critical(400, level=level, draws=4000)
        assert abs(value / (constant / math.sqrt(400)) - 1) < 0.08, (level, value)
    # fitting the normal to the values lowers the threshold below the fully specified one
    assert density.lilliefors_critical(400, 0.01, draws=1000) < 1.63 / math.sqrt(400)


# -------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("codes", [torch.zeros(5), torch.zeros(1, 3), torch.zeros(2, 3, 4)])
def test_codes_must_be_a_matrix_of_several_rows(codes):
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        density.fit_gaussian(codes)


@pytest.mark.parametrize("k", [0, 11])
def test_k_must_fit_the_number_of_codes(k):
    with pytest.raises(ValueError, match="k must be between 1 and the number of codes"):
        density.fit_mixture(randn(10, 2), k)


def test_lilliefors_rejects_too_few_draws():
    with pytest.raises(ValueError, match="draws"):
        density.lilliefors_critical(100, level=0.01, draws=100)
