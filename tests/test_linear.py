"""Tests of vaebook.exact.linear, the linear-Gaussian model, against Bayes' rule, Monte Carlo estimates,
torch.distributions and each other."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, kl_divergence

from vaebook.exact import linear
from vaebook.exact.linear import LinearGaussian

K, D = 3, 7


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def model():
    W = torch.randn(D, K, generator=gen(1), dtype=torch.float64)
    b = torch.randn(D, generator=gen(2), dtype=torch.float64)
    return LinearGaussian(W, b, 0.3)


@pytest.fixture
def xs(model):
    return model.sample(5, gen(3))[1]


def random_gaussian(seed, k=K):
    g = gen(seed)
    A = torch.randn(k, k, generator=g, dtype=torch.float64)
    return torch.randn(k, generator=g, dtype=torch.float64), A @ A.T + 0.1 * torch.eye(k, dtype=torch.float64)


def test_bad_shapes_and_noise_are_rejected():
    W = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="b must have shape"):
        LinearGaussian(W, torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"\(d, k\) matrix"):
        LinearGaussian(torch.zeros(4), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="positive"):
        LinearGaussian(W, torch.zeros(4), 0.0)


def test_bayes_rule_holds_at_every_z(model, xs):
    """log P(x) = log P(x|z) + log P(z) − log P(z|x) for arbitrary z: evidence and posterior agree."""
    z = 3 * torch.randn(100, 1, K, generator=gen(4), dtype=torch.float64)       # (100, 1, K) vs (5, D)
    rhs = model.log_joint(xs, z) - model.posterior(xs).log_prob(z)
    torch.testing.assert_close(rhs, model.log_evidence(xs).expand(100, 5), rtol=1e-12, atol=1e-10)


def test_log_likelihood_of_many_codes_in_blocks_is_the_formula(model, xs):
    """More codes than one block (z (n, k), one x): the blocks give the row-by-row formula."""
    z = torch.randn(2 * linear._BLOCK + 5, K, generator=gen(4), dtype=torch.float64)
    residual = xs[0] - z @ model.W.T - model.b
    direct = -0.5 * (residual**2).sum(-1) / model.s**2 - 0.5 * D * math.log(2 * math.pi * model.s**2)
    blocked = model.log_likelihood(xs[0], z)
    assert blocked.shape == (len(z),)
    torch.testing.assert_close(blocked, direct, rtol=1e-13, atol=0)


def test_evidence_matches_naive_monte_carlo_on_a_broad_likelihood():
    model = LinearGaussian(torch.tensor([[0.5], [0.2]], dtype=torch.float64),
                           torch.zeros(2, dtype=torch.float64), 1.0)
    x = torch.tensor([0.3, -0.4], dtype=torch.float64)
    z = torch.randn(400_000, 1, generator=gen(5), dtype=torch.float64)
    w = model.log_likelihood(x, z).exp()
    estimate, se = w.mean(), w.std() / math.sqrt(len(w))
    assert abs(estimate - model.log_evidence(x).exp()) < 4 * se


def test_samples_have_the_evidence_covariance(model):
    _, x = model.sample(200_000, gen(6))
    torch.testing.assert_close(torch.cov(x.T), model.evidence().covariance_matrix, atol=0.05, rtol=0.02)


def test_closed_form_elbo_matches_monte_carlo_and_the_gap_is_the_kl(model, xs):
    x = xs[0]
    mu, cov = random_gaussian(7)
    Q = MultivariateNormal(mu, cov)
    torch.manual_seed(0)
    z = Q.sample((200_000,))
    terms = model.log_joint(x, z) - Q.log_prob(z)
    elbo = model.elbo(x, mu, cov)
    assert abs(terms.mean() - elbo) < 4 * terms.std() / math.sqrt(len(z))
    gap = model.log_evidence(x) - elbo
    assert abs(gap - kl_divergence(Q, model.posterior(x))) < 1e-9 * abs(gap)


def test_elbo_equals_log_evidence_at_the_posterior_only(model, xs):
    post = model.posterior(xs)
    torch.testing.assert_close(model.elbo(xs, post.loc, post.covariance_matrix), model.log_evidence(xs),
                               rtol=1e-12, atol=1e-10)
    assert (model.elbo(xs, post.loc + 0.01, post.covariance_matrix) < model.log_evidence(xs)).all()


def test_elbo_is_batched_and_differentiable(model, xs):
    mu = torch.zeros(5, K, dtype=torch.float64, requires_grad=True)
    cov = torch.eye(K, dtype=torch.float64).expand(5, K, K)
    out = model.elbo(xs, mu, cov)
    assert out.shape == (5,)
    out.sum().backward()
    assert mu.grad.abs().sum() > 0


def test_kl_to_standard_normal_matches_torch():
    mu, cov = random_gaussian(8)
    expected = kl_divergence(MultivariateNormal(mu, cov),
                             MultivariateNormal(torch.zeros(K, dtype=torch.float64), torch.eye(K, dtype=torch.float64)))
    torch.testing.assert_close(linear.kl_to_standard_normal(mu, cov), expected)


def test_best_diagonal_cov_minimises_the_kl():
    mu, cov = random_gaussian(9)
    target = MultivariateNormal(mu, cov)
    best = linear.best_diagonal_cov(cov)
    assert torch.count_nonzero(best - torch.diag(best.diagonal())) == 0

    def kl(diag):
        return kl_divergence(MultivariateNormal(mu, torch.diag(diag)), target)

    for j in range(K):
        for factor in (0.9, 1.1):
            other = best.diagonal().clone()
            other[j] *= factor
            assert kl(other) > kl(best.diagonal())
    assert (best.diagonal() <= cov.diagonal()).all()    # narrower than the marginals


def test_entropy_matches_torch():
    _, cov = random_gaussian(10)
    torch.testing.assert_close(linear.gaussian_entropy(cov),
                               MultivariateNormal(torch.zeros(K, dtype=torch.float64), cov).entropy())


def test_log_mean_exp_groups_and_rejects_ragged_input():
    log_w = torch.log(torch.tensor([1.0, 3.0, 2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(linear.log_mean_exp(log_w, 2), torch.log(torch.tensor([2.0, 2.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="multiple of 3"):
        linear.log_mean_exp(log_w, 3)


def test_diagonal_posterior_decoder_keeps_the_evidence(model, xs):
    rotated = model.with_diagonal_posterior()
    torch.testing.assert_close(rotated.log_evidence(xs), model.log_evidence(xs))
    cov = rotated.posterior_cov()
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 1e-12
    post = rotated.posterior(xs)
    torch.testing.assert_close(rotated.elbo(xs, post.loc, linear.best_diagonal_cov(cov)), rotated.log_evidence(xs))


def test_kl_decomposition_adds_up_and_matches_monte_carlo(model):
    """E_x KL(Q(z|x) ‖ P(z)) = I(x; z) + KL(q(z) ‖ P(z)), and each piece against sampling."""
    data = model.evidence()
    A = torch.randn(K, D, generator=gen(11), dtype=torch.float64) * 0.3
    c = torch.randn(K, generator=gen(12), dtype=torch.float64)
    _, cov = random_gaussian(13)
    expected_kl, info, marginal_kl = linear.kl_decomposition(A, c, cov, data)
    assert abs(expected_kl - info - marginal_kl) < 1e-10 * expected_kl
    assert info > 0 and marginal_kl > 0
    torch.manual_seed(0)
    x = data.sample((200_000,))
    per_x = linear.kl_to_standard_normal(x @ A.T + c, cov)
    assert abs(per_x.mean() - expected_kl) < 4 * per_x.std() / math.sqrt(len(x))


def test_exact_posterior_encoder_has_the_prior_as_aggregate(model):
    """With Q the exact posterior and data from the model, q(z) = P(z): all of the KL is information."""
    A = model.posterior_cov() @ model.W.T / model.s**2
    expected_kl, info, marginal_kl = linear.kl_decomposition(A, -A @ model.b, model.posterior_cov(), model.evidence())
    assert abs(marginal_kl) < 1e-10
    torch.testing.assert_close(info, 0.5 * torch.logdet(torch.eye(K, dtype=torch.float64) + model.W.T @ model.W / model.s**2))


def test_maximum_likelihood_recovers_a_model_and_collapses_unneeded_columns(model):
    _, x = model.sample(100_000, gen(14))
    fitted = linear.fit_maximum_likelihood(x, K)
    torch.testing.assert_close(fitted.W @ fitted.W.T, model.W @ model.W.T, atol=0.05, rtol=0.05)
    assert abs(fitted.s - model.s) < 0.01
    # more latent dimensions than the data need, and s fixed at the true noise: the extra columns
    # are (nearly) zero, so their posterior is the prior
    extra = linear.fit_maximum_likelihood(x, K + 2, s=model.s)
    norms = extra.W.norm(dim=0)
    assert (norms[:K] > 0.5).all() and (norms[K:] < 0.05).all()
    # the ML fit scores at least as well as the true model on the data it was fitted to
    assert fitted.log_evidence(x).mean() >= model.log_evidence(x).mean()


def test_maximum_likelihood_rejects_bad_sizes():
    x = torch.randn(10, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="between 1 and"):
        linear.fit_maximum_likelihood(x, 4)
    with pytest.raises(ValueError, match="k < d"):
        linear.fit_maximum_likelihood(x, 3)


def test_cross_entropy_is_entropy_plus_kl_and_matches_sampling():
    m, C = random_gaussian(15)
    mu, S = random_gaussian(16)
    data, model = MultivariateNormal(m, C), MultivariateNormal(mu, S)
    ce = linear.gaussian_cross_entropy(data, model)
    torch.testing.assert_close(ce, linear.gaussian_entropy(C) + kl_divergence(data, model))
    torch.manual_seed(0)
    x = data.sample((200_000,))
    nll = -model.log_prob(x)
    assert abs(nll.mean() - ce) < 4 * nll.std() / math.sqrt(len(x))
