"""Tests of vaebook.losses against torch.distributions, Monte Carlo estimates and each other."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from vaebook import losses

B, L = 4, 3


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images():
    """x and x̂ of shape (B, 3, 5, 6), pixels strictly inside (0, 1)."""
    x = torch.rand(B, 3, 5, 6, generator=gen(1), dtype=torch.float64) * 0.98 + 0.01
    x_hat = torch.rand(B, 3, 5, 6, generator=gen(2), dtype=torch.float64) * 0.98 + 0.01
    return x_hat, x


@pytest.fixture
def posterior():
    mu = torch.randn(B, L, generator=gen(3), dtype=torch.float64)
    logvar = torch.randn(B, L, generator=gen(4), dtype=torch.float64)
    return mu, logvar


# --- KL ----------------------------------------------------------------------------------------

def test_kl_matches_torch_distributions(posterior):
    mu, logvar = posterior
    expected = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    got = losses.kl_divergence(mu, logvar)
    assert got.shape == (B,)
    torch.testing.assert_close(got, expected)


def test_kl_matches_a_monte_carlo_estimate(posterior):
    """KL(q‖p) = E_q[log q(z) − log p(z)]: average over many z ~ q, within 5 standard errors."""
    mu, logvar = posterior
    n = 100_000
    q, p = Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
    torch.manual_seed(0)
    z = q.sample((n,))                                   # (n, B, L)
    terms = (q.log_prob(z) - p.log_prob(z)).sum(-1)      # (n, B)
    estimate, se = terms.mean(0), terms.std(0) / math.sqrt(n)
    exact = losses.kl_divergence(mu, logvar)
    assert ((estimate - exact).abs() < 5 * se).all(), (estimate, exact, se)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere(posterior):
    zero = losses.kl_divergence(torch.zeros(B, L), torch.zeros(B, L))
    assert zero.shape == (B,) and torch.equal(zero, torch.zeros(B))
    mu, logvar = posterior
    assert (losses.kl_divergence(mu, logvar) > 0).all()


def test_kl_per_dimension_sums_to_kl(posterior):
    mu, logvar = posterior
    per_dim = losses.kl_per_dimension(mu, logvar)
    assert per_dim.shape == (B, L) and (per_dim >= 0).all()
    torch.testing.assert_close(per_dim.sum(1), losses.kl_divergence(mu, logvar))


# --- reconstruction terms ----------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.05, 0.1, 1.0, 2.5])
def test_gaussian_nll_is_the_normal_log_likelihood(images, sigma):
    x_hat, x = images
    expected = -Normal(x_hat, sigma).log_prob(x).reshape(B, -1).sum(1)
    got = losses.gaussian_nll(x_hat, x, sigma)
    assert got.shape == (B,)
    torch.testing.assert_close(got, expected)


def test_bernoulli_nll_is_summed_binary_cross_entropy(images):
    x_hat, x = images
    expected = torch.stack([F.binary_cross_entropy(x_hat[i], x[i], reduction="sum") for i in range(B)])
    got = losses.bernoulli_nll(x_hat, x)
    assert got.shape == (B,)
    torch.testing.assert_close(got, expected)


def test_bernoulli_nll_is_finite_for_saturated_outputs():
    x = torch.tensor([[1.0, 0.0]])
    x_hat = torch.tensor([[0.0, 1.0]])  # confidently wrong
    out = losses.bernoulli_nll(x_hat, x)
    assert torch.isfinite(out).all() and out.item() > 0


def test_bernoulli_nll_on_grey_pixels_is_a_cross_entropy_with_the_entropy_as_minimum():
    """For x in (0, 1) the BCE is smallest at x̂ = x, and that minimum is Σ_d H(x_d) > 0: no
    normalised likelihood of x, whose best value would depend on how well x is predicted."""
    x = torch.tensor([[0.5, 0.2, 0.9]], dtype=torch.float64)
    entropy = -(x * x.log() + (1 - x) * (1 - x).log()).sum()
    torch.testing.assert_close(losses.bernoulli_nll(x, x)[0], entropy)
    for shift in (-0.05, 0.05):
        assert losses.bernoulli_nll((x + shift).clamp(0.01, 0.99), x)[0] > entropy


def integrate01(f, n=200_001):
    """Trapezoid rule on [0, 1] in float64: ∫ f(x) dx."""
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    return torch.trapezoid(f(x), x)


LAMBDAS = [1e-4, 0.03, 0.2, 0.45, 0.49, 0.4999, 0.5, 0.5001, 0.51, 0.7, 0.97, 1 - 1e-4]


@pytest.mark.parametrize("lam", LAMBDAS)
def test_continuous_bernoulli_normaliser_matches_numeric_integration(lam):
    """1 / C(λ) = ∫_0^1 λ^x (1 − λ)^(1−x) dx, and the mean ∫ x p(x) dx, on a fine grid."""
    l = torch.tensor(lam, dtype=torch.float64)
    unnormalised = integrate01(lambda x: l**x * (1 - l) ** (1 - x))
    log_c = losses.continuous_bernoulli_log_norm(l)
    assert log_c.item() == pytest.approx(-math.log(unnormalised.item()), abs=1e-9)
    mean = integrate01(lambda x: x * l**x * (1 - l) ** (1 - x)) / unnormalised
    assert losses.continuous_bernoulli_mean(l).item() == pytest.approx(mean.item(), abs=1e-9)


def test_continuous_bernoulli_is_smooth_and_stable_near_one_half_in_float32():
    lam = 0.5 + torch.linspace(-0.03, 0.03, 601)                       # float32, through λ = ½
    log_c = losses.continuous_bernoulli_log_norm(lam)
    exact = losses.continuous_bernoulli_log_norm(lam.double())
    assert torch.isfinite(log_c).all()
    torch.testing.assert_close(log_c.double(), exact, atol=2e-6, rtol=0)
    assert log_c.min() == pytest.approx(math.log(2), abs=1e-6)          # its minimum, at ½
    assert (log_c.double().diff().abs() < 1e-4).all()                   # no jump at the series' edge
    torch.testing.assert_close(losses.continuous_bernoulli_mean(lam).double(),
                               losses.continuous_bernoulli_mean(lam.double()), atol=1e-6, rtol=0)


def test_continuous_bernoulli_nll_is_a_normalised_density():
    """exp(−nll) integrates to 1 over one pixel, and nll = BCE − Σ log C."""
    for lam in (0.1, 0.5, 0.83):
        x = torch.linspace(0, 1, 100_001, dtype=torch.float64)
        nll = losses.continuous_bernoulli_nll(torch.full_like(x, lam)[:, None], x[:, None])
        assert torch.trapezoid((-nll).exp(), x).item() == pytest.approx(1.0, abs=1e-8)
    x_hat, x = torch.rand(2, 3, 4, 4, generator=gen(5)), torch.rand(2, 3, 4, 4, generator=gen(6))
    expected = losses.bernoulli_nll(x_hat, x) - losses.continuous_bernoulli_log_norm(x_hat).flatten(1).sum(1)
    torch.testing.assert_close(losses.continuous_bernoulli_nll(x_hat, x), expected)


def test_mse_is_the_per_example_pixel_mean(images):
    x_hat, x = images
    got = losses.mse(x_hat, x)
    assert got.shape == (B,)
    torch.testing.assert_close(got, torch.stack([F.mse_loss(x_hat[i], x[i]) for i in range(B)]))


# --- ELBO and capacity ---------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [0.0, 1.0, 4.0])
def test_negative_elbo_is_recon_plus_beta_kl(images, posterior, beta):
    x_hat, x = images
    mu, logvar = posterior
    loss, recon, kl = losses.negative_elbo(x_hat, x, mu, logvar, sigma=0.3, beta=beta)
    assert loss.shape == recon.shape == kl.shape == (B,)
    torch.testing.assert_close(recon, losses.gaussian_nll(x_hat, x, 0.3))
    torch.testing.assert_close(kl, losses.kl_divergence(mu, logvar))
    torch.testing.assert_close(loss, recon + beta * kl)


def test_capacity_schedule():
    assert losses.capacity(0, 25.0, 1000) == 0.0
    assert losses.capacity(250, 25.0, 1000) == pytest.approx(25.0 * 250 / 1000)
    assert losses.capacity(1000, 25.0, 1000) == 25.0
    assert losses.capacity(5000, 25.0, 1000) == 25.0   # held at c_max after the anneal
    assert losses.capacity(0, 25.0, 0) == 25.0         # no anneal: c_max at once
    steps = [losses.capacity(s, 7.0, 100) for s in range(0, 120, 10)]
    assert steps == sorted(steps)


def test_capacity_loss_penalises_the_batch_mean_kl_distance_from_the_target(images, posterior):
    x_hat, x = images
    mu, logvar = posterior
    kl = losses.kl_divergence(mu, logvar)
    for c in (0.0, kl.min().item() / 2, kl.max().item() * 2):  # KL above and below the target
        loss, recon, kl_out = losses.capacity_loss(x_hat, x, mu, logvar, sigma=0.2, gamma=10.0, c=c)
        assert loss.shape == recon.shape == kl_out.shape == (B,)
        torch.testing.assert_close(kl_out, kl)
        torch.testing.assert_close(recon, losses.gaussian_nll(x_hat, x, 0.2))
        torch.testing.assert_close(loss.mean(), recon.mean() + 10.0 * (kl.mean() - c).abs())
        assert (loss >= recon).all()
    # at C = the batch's mean KL the penalty vanishes, though no single image spends exactly C
    loss, recon, _ = losses.capacity_loss(x_hat, x, mu, logvar, sigma=0.2, gamma=10.0, c=kl.mean().item())
    torch.testing.assert_close(loss, recon)
    assert (kl - kl.mean()).abs().min() > 0.1


def test_capacity_loss_per_image_and_batch_mean_forms_differ_as_expected(images, posterior):
    """With KLs on both sides of C, the per-image form pays for every image's distance to C, the
    batch-mean form only for the mean's: Σ|KL_b − C| ≥ |Σ (KL_b − C)| (triangle inequality), with
    equality only when all KLs lie on one side of C. Their gradients in the KLs differ likewise."""
    x_hat, x = images
    mu, logvar = (t.clone().requires_grad_() for t in posterior)
    kl = losses.kl_divergence(mu, logvar).detach()
    c = kl.median().item()  # some images above the target, some below
    assert (kl > c).any() and (kl < c).any()
    mean_form, recon, _ = losses.capacity_loss(x_hat, x, mu, logvar, sigma=0.2, gamma=10.0, c=c)
    per_image, _, _ = losses.capacity_loss_per_image(x_hat, x, mu, logvar, sigma=0.2, gamma=10.0, c=c)
    torch.testing.assert_close(per_image, recon + 10.0 * (kl - c).abs())
    penalty_mean, penalty_each = (mean_form - recon).mean(), (per_image - recon).mean()
    assert penalty_each > penalty_mean + 0.1
    # all KLs above the target: the two forms agree
    low = kl.min().item() / 2
    same = [f(x_hat, x, mu, logvar, sigma=0.2, gamma=10.0, c=low)[0].mean()
            for f in (losses.capacity_loss, losses.capacity_loss_per_image)]
    torch.testing.assert_close(same[0], same[1])
    # gradient of the mean loss in each image's KL: γ·sign(mean KL − C)/B for all (batch-mean),
    # γ·sign(KL_b − C)/B image by image (per image)
    kl_leaf = losses.kl_divergence(mu, logvar).detach().requires_grad_()
    grad_mean = torch.autograd.grad((10.0 * (kl_leaf.mean() - c).abs()), kl_leaf)[0]
    grad_each = torch.autograd.grad((10.0 * (kl_leaf - c).abs()).mean(), kl_leaf)[0]
    assert len(set(grad_mean.tolist())) == 1
    torch.testing.assert_close(grad_each, 10.0 * torch.sign(kl - c) / B)


def test_train_compute_loss_uses_the_batch_mean_capacity_objective():
    """vaebook.train.compute_loss averages the per-example losses: with the batch-mean form that
    is mean recon + γ·|mean KL − C|, the objective of Burgess et al."""
    from vaebook.models import ModelConfig, build_model
    from vaebook.train import TrainConfig, compute_loss
    model = build_model(ModelConfig("vae", image_size=16, channels=(4, 8), latent_dim=3), seed=0)
    x = torch.rand(6, 3, 16, 16, generator=gen(9))
    cfg = TrainConfig(objective="capacity", sigma=0.3, gamma=7.0, capacity_max=5.0, capacity_steps=10)
    torch.manual_seed(0)
    loss, parts = compute_loss(model, x, None, cfg, step=4)
    c = losses.capacity(4, 5.0, 10)
    expected = parts["recon"] + 7.0 * (parts["kl"] - c).abs()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-3)


def test_factor_loss_mixes_squared_error_and_cross_entropy():
    levels = (0, 3)
    cont = torch.tensor([0.5, -1.0])
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]])
    factors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = losses.factor_loss([cont, logits], factors, levels)
    expected = (cont - factors[:, 0]) ** 2 + F.cross_entropy(logits, factors[:, 1].long(), reduction="none")
    assert got.shape == (2,)
    torch.testing.assert_close(got, expected)


# --- the KL weight is a decoder variance ---------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.1, 0.5, 0.763])
def test_mse_plus_weighted_kl_is_the_scaled_gaussian_elbo(images, posterior, sigma):
    """mse_mean + w·KL == w · (negative ELBO with N(x̂, σ²) − its constant), w = 2σ²/D:
    the same function up to a positive factor and a constant, so the same gradients up to w."""
    x_hat, x = (t.clone().requires_grad_() for t in images)
    mu, logvar = (t.clone().requires_grad_() for t in posterior)
    d = x[0].numel()
    w = losses.kl_weight_for_sigma(sigma, d)
    const = 0.5 * d * (math.log(2 * math.pi) + 2 * math.log(sigma))

    weighted = losses.mse(x_hat, x) + w * losses.kl_divergence(mu, logvar)
    elbo, _, _ = losses.negative_elbo(x_hat, x, mu, logvar, sigma=sigma, beta=1.0)
    torch.testing.assert_close(weighted, w * (elbo - const))

    g_weighted = torch.autograd.grad(weighted.sum(), (x_hat, mu, logvar))
    g_elbo = torch.autograd.grad(elbo.sum(), (x_hat, mu, logvar))
    flat_w = torch.cat([g.flatten() for g in g_weighted])
    flat_e = torch.cat([g.flatten() for g in g_elbo])
    cos = F.cosine_similarity(flat_w, flat_e, dim=0)
    assert cos.item() == pytest.approx(1.0, abs=1e-12)  # parallel
    torch.testing.assert_close(flat_w, w * flat_e)      # with ratio exactly w


@pytest.mark.parametrize("sigma, d", [(0.1, 3 * 64 * 64), (0.763, 3 * 218 * 178), (2.0, 10)])
def test_sigma_for_kl_weight_inverts_kl_weight_for_sigma(sigma, d):
    w = losses.kl_weight_for_sigma(sigma, d)
    assert w == pytest.approx(2 * sigma**2 / d)
    assert losses.sigma_for_kl_weight(w, d) == pytest.approx(sigma)
    assert losses.kl_weight_for_sigma(losses.sigma_for_kl_weight(1e-4, d), d) == pytest.approx(1e-4)


def test_seed_article_kl_weight_means_sigma_about_0_763():
    """The seed article trains CelebA crops of 218×178 RGB pixels with mse + 1e-5·KL."""
    w, d = 1e-5, 3 * 218 * 178
    sigma = losses.sigma_for_kl_weight(w, d)
    assert sigma == pytest.approx(math.sqrt(w * d / 2))
    assert round(sigma, 3) == 0.763  # the figure the book quotes


def test_leave_one_out_baseline_is_the_mean_of_the_other_samples():
    values = torch.randn(5, 3, generator=gen(4), dtype=torch.float64)
    baseline = losses.leave_one_out_baseline(values, dim=0)
    for k in range(5):
        others = torch.cat([values[:k], values[k + 1:]])
        torch.testing.assert_close(baseline[k], others.mean(dim=0))
    changed = values.clone()
    changed[2] += 100.0                      # a sample's own value never enters its baseline
    torch.testing.assert_close(losses.leave_one_out_baseline(changed)[2], baseline[2])
    torch.testing.assert_close(losses.leave_one_out_baseline(values.T, dim=1), baseline.T)
    with pytest.raises(ValueError):
        losses.leave_one_out_baseline(values[:1])


def test_leave_one_out_score_estimate_is_unbiased_and_less_noisy():
    """d/dmu E[(z - 3)^2], z ~ N(mu, 1) at mu = 0, is -6: the score-function estimate with the
    leave-one-out baseline averages to it, with less variance than the same K samples without."""
    repeats, k = 20_000, 4
    z = torch.randn(repeats, k, generator=gen(5), dtype=torch.float64)   # score at mu = 0 is z
    f = (z - 3) ** 2
    plain = (f * z).mean(dim=1)
    loo = ((f - losses.leave_one_out_baseline(f, dim=1)) * z).mean(dim=1)
    standard_error = loo.std() / math.sqrt(repeats)
    assert abs(loo.mean() + 6) < 4 * standard_error
    assert loo.var() < 0.5 * plain.var()
