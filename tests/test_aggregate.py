"""Tests of vaebook.metrics.aggregate (ELBO surgery) on posteriors whose split is known: all equal to the
prior (nothing learnt), far apart points (all information), and a 1-D mixture of two Gaussians
whose KL to the prior is integrated numerically."""
from __future__ import annotations

import math

import pytest
import torch

from vaebook.metrics import aggregate as A
from vaebook import metrics
from vaebook.metrics.likelihood import gaussian_log_density


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_log_density_matrix_matches_the_pairwise_densities():
    z, mu, logvar = randn(5, 3, seed=1), randn(7, 3, seed=2), randn(7, 3, seed=3)
    expected = gaussian_log_density(z[:, None, :], mu[None], logvar[None])        # (5, 7)
    torch.testing.assert_close(A.log_density_matrix(z, mu, logvar), expected, rtol=1e-10, atol=1e-10)
    log_q = A.log_aggregate_density(z, mu, logvar, chunk=2)
    torch.testing.assert_close(log_q, torch.logsumexp(expected, dim=1) - math.log(7))


def test_posteriors_equal_to_the_prior_carry_no_information():
    mu, logvar = torch.zeros(100, 4), torch.zeros(100, 4)
    s = A.elbo_surgery(mu, logvar, samples_per_posterior=3)
    assert s.mean_kl == 0 and s.mutual_info == pytest.approx(0, abs=1e-12)
    assert s.kl_aggregate == pytest.approx(0, abs=1e-12) and s.log_n == pytest.approx(math.log(100))


def test_far_apart_points_carry_log_n_nats():
    n = 50
    mu, logvar = 100 * randn(n, 3, seed=4), torch.full((n, 3), math.log(1e-4), dtype=torch.float64)
    s = A.elbo_surgery(mu, logvar, samples_per_posterior=2, seed=1)
    assert s.mutual_info == pytest.approx(math.log(n), abs=1e-9)
    assert s.kl_aggregate == pytest.approx(s.mean_kl - math.log(n), rel=1e-12)
    assert s.mean_kl > 1000  # most of the KL term: q(z) is a spiky mixture, far from N(0, I)


def test_one_dimensional_mixture_matches_numeric_integration():
    """q(z) = ½ N(−1, 0.5²) + ½ N(1, 0.5²) in 1-D: KL(q ‖ N(0, 1)) by the trapezoid rule."""
    mu = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    logvar = torch.full((2, 1), math.log(0.25), dtype=torch.float64)
    z = torch.linspace(-10, 10, 400_001, dtype=torch.float64)
    log_q = torch.logsumexp(gaussian_log_density(z[:, None, None], mu[None], logvar[None]), dim=1) - math.log(2)
    log_p = gaussian_log_density(z[:, None], 0.0, 0.0)
    kl_exact = float(torch.trapezoid(log_q.exp() * (log_q - log_p), z))
    s = A.elbo_surgery(mu, logvar, samples_per_posterior=20_000, seed=3)
    assert abs(s.kl_aggregate - kl_exact) < 4 * s.mutual_info_se, (s, kl_exact)
    assert 0 < s.mutual_info < math.log(2)
    mean_kl = 0.5 * (0.25 + 1 - 1 - math.log(0.25))
    assert s.mean_kl == pytest.approx(mean_kl)


def test_estimate_is_seeded_chunk_free_and_never_above_log_n():
    mu, logvar = randn(300, 5, seed=5), randn(300, 5, seed=6) - 2
    a = A.elbo_surgery(mu, logvar, seed=7)
    assert a == A.elbo_surgery(mu, logvar, seed=7)
    assert a != A.elbo_surgery(mu, logvar, seed=8)
    b = A.elbo_surgery(mu, logvar, seed=7, chunk=13)
    assert b.mutual_info == pytest.approx(a.mutual_info, rel=1e-12)
    assert a.mutual_info <= a.log_n and a.mean_kl == pytest.approx(a.mutual_info + a.kl_aggregate)
    assert metrics.elbo_surgery is A.elbo_surgery  # reachable as metrics.elbo_surgery


# ------------------------------------------------------------ total correlation (β-TCVAE's split)
def test_prior_posteriors_have_no_total_correlation_and_no_mismatch():
    s = A.total_correlation(torch.zeros(40, 3), torch.zeros(40, 3), samples_per_posterior=2)
    assert s.total_correlation == pytest.approx(0, abs=1e-12)
    assert s.dimensionwise_kl == pytest.approx(0, abs=1e-12) and s.kl_aggregate == pytest.approx(0, abs=1e-12)


def test_a_product_grid_of_posteriors_has_independent_coordinates():
    """Means on every pair of {-1, 0, 1} × {-2, 2}: q(z) is exactly the product of its marginals,
    so the total correlation is zero at every point, while the marginals still miss the prior."""
    grid = torch.tensor([[a, b] for a in (-1.0, 0.0, 1.0) for b in (-2.0, 2.0)], dtype=torch.float64)
    s = A.total_correlation(grid, torch.full((6, 2), math.log(0.3), dtype=torch.float64), 50, seed=2)
    assert s.total_correlation == pytest.approx(0, abs=1e-10)
    assert s.dimensionwise_kl > 0.5


def test_identical_coordinates_carry_log_m_nats_of_total_correlation():
    """z_1 = z_2 on M well-separated values: q(z) puts 1/M on each, each marginal too, so
    log q(z) − log q(z_1) − log q(z_2) = log M at every point."""
    m = 8
    values = 50 * torch.arange(m, dtype=torch.float64)[:, None]
    s = A.total_correlation(values.repeat(1, 2), torch.full((m, 2), math.log(1e-2), dtype=torch.float64), 10)
    assert s.total_correlation == pytest.approx(math.log(m), abs=1e-9)


def test_the_split_adds_up_to_elbo_surgerys_mismatch():
    """Total correlation + dimension-wise KL estimates the same KL(q(z) ‖ p(z)) as ELBO surgery,
    from the same points (same seed), up to Monte Carlo error."""
    mu, logvar = randn(300, 4, seed=8), randn(300, 4, seed=9) - 2
    s = A.total_correlation(mu, logvar, samples_per_posterior=10, seed=3)
    surgery = A.elbo_surgery(mu, logvar, samples_per_posterior=10, seed=3)
    assert s.kl_aggregate == pytest.approx(s.total_correlation + s.dimensionwise_kl)
    assert abs(s.kl_aggregate - surgery.kl_aggregate) < 4 * surgery.mutual_info_se + 0.02, (s, surgery)
    assert s.total_correlation > 0 and s.dimensionwise_kl > 0
