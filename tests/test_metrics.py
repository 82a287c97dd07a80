"""Tests of vaebook.metrics, each against an answer known in advance: tractable linear-Gaussian
likelihoods, hand-built fake encoders and oracles, Gaussians with closed-form distances,
variables whose mutual information is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vaebook import losses
from vaebook import metrics as M
from vaebook.models import ModelConfig, build_model


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ------------------------------------------------------------------------------------- fakes
class FakeVAE(nn.Module):
    """Images whose pixels all equal t (one value per image). mu = (t, 0, 0.1 t), logvar = (0, 0,
    log 0.25); the sample z is mu + 1, so anything decoding z instead of mu shows. decode(z) fills
    an image with z[:, 0]."""

    def __init__(self, side=4):
        super().__init__()
        self.side = side

    def encode(self, x):
        t = x.mean(dim=(1, 2, 3))
        mu = torch.stack([t, torch.zeros_like(t), 0.1 * t], dim=1)
        logvar = torch.stack([torch.zeros_like(t), torch.zeros_like(t), torch.full_like(t, math.log(0.25))], 1)
        return mu + 1.0, mu, logvar

    def decode(self, z):
        return z[:, :1, None, None].expand(-1, 3, self.side, self.side)


class FakeAE(FakeVAE):
    """An autoencoder (encode returns h only) whose decoder always paints grey 0.5."""

    def encode(self, x):
        return super().encode(x)[1]

    def decode(self, h):
        return torch.full((h.shape[0], 3, self.side, self.side), 0.5)


def constant_images(t: torch.Tensor, side=4) -> torch.Tensor:
    return t[:, None, None, None].expand(-1, 3, side, side).contiguous()


def tiny(kind, **kw):
    return build_model(ModelConfig(kind=kind, image_size=16, channels=(4, 8), latent_dim=3, **kw), seed=0)


# ------------------------------------------------------------------------------ reconstruction
def test_reconstruction_mse_decodes_the_mean_code():
    t = torch.linspace(0, 1, 11)
    x = constant_images(t)
    assert M.reconstruction_mse(FakeVAE(), x, batch_size=3) == pytest.approx(0.0, abs=1e-12)
    grey_error = float(((t - 0.5) ** 2).mean())
    assert M.reconstruction_mse(FakeAE(), x, batch_size=3) == pytest.approx(grey_error, rel=1e-6)


def test_reconstruction_mse_real_model_eval_mode_and_batch_independent():
    ae, x = tiny("ae"), rand(20, 3, 16, 16)
    ae.train()
    a, b = M.reconstruction_mse(ae, x, batch_size=20), M.reconstruction_mse(ae, x, batch_size=3)
    assert a == pytest.approx(b, rel=1e-5)  # BatchNorm used running stats, not batch stats
    assert ae.training  # mode restored
    with torch.no_grad():
        ae.eval()
        assert a == pytest.approx(float(((ae(x) - x) ** 2).mean()), rel=1e-5)


def test_encode_means_and_fit_gaussian():
    t = torch.linspace(0, 1, 9)
    assert torch.allclose(M.encode_means(FakeVAE(), constant_images(t), 2)[:, 0], t)
    assert torch.allclose(M.encode_means(FakeAE(), constant_images(t), 2)[:, 2], 0.1 * t)
    vae, x = tiny("vae"), rand(10, 3, 16, 16)
    with torch.no_grad():
        _, mu, _ = vae.eval().encode(x)
    assert torch.allclose(M.encode_means(vae, x, batch_size=4), mu, atol=1e-6)
    z = randn(5000, 2, seed=1) @ torch.tensor([[2.0, 0.0], [1.0, 0.5]]) + torch.tensor([3.0, -1.0])
    mean, cov = M.fit_gaussian(z)
    assert mean.dtype == torch.float32
    assert torch.allclose(mean, torch.tensor([3.0, -1.0]), atol=0.1)
    assert torch.allclose(cov, torch.tensor([[5.0, 0.5], [0.5, 0.25]]), atol=0.2)  # AᵀA
    assert np.allclose(M.feature_stats(z)[1].numpy(), np.cov(z.double().numpy().T))


# --------------------------------------------------------------------------------- likelihoods
def test_gaussian_log_density_matches_torch_distributions():
    z, mu, logvar = randn(4, 5, 3, seed=1), randn(5, 3, seed=2), randn(5, 3, seed=3)
    expected = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert M.gaussian_log_density(z, mu, logvar).shape == (4, 5)
    assert torch.allclose(M.gaussian_log_density(z, mu, logvar), expected, atol=1e-5)
    prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(M.gaussian_log_density(z, 0.0, 0.0), prior, atol=1e-5)


def test_iwae_from_log_weights_known_values_and_stable():
    constant = M.iwae_from_log_weights(torch.full((3, 7), -2.5))
    assert torch.allclose(constant, torch.full((3,), -2.5, dtype=torch.float64))
    log_w = torch.log(torch.tensor([[1.0, 3.0]], dtype=torch.float64)) - 1e5  # exp underflows to 0
    out = M.iwae_from_log_weights(log_w)
    assert out.dtype == torch.float64 and out.item() == pytest.approx(math.log(2.0) - 1e5, abs=1e-6)
    assert torch.equal(M.log_weights(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(5.0)), torch.tensor(-2.0))


class LinearGaussian:
    """p(z) = N(0, I_L), p(x|z) = N(Wz + b, s² I_D), W with orthogonal columns, so the exact
    posterior is diagonal: var_u = 1 / (1 + c_u²/s²), mean = var * Wᵀ(x − b) / s²."""

    def __init__(self, d=6, scales=(2.0, 0.7), s=0.5):
        q, _ = torch.linalg.qr(randn(d, len(scales), seed=5, dtype=torch.float64))
        self.W = q * torch.tensor(scales, dtype=torch.float64)
        self.b, self.s = randn(d, seed=6, dtype=torch.float64), s
        self.post_var = 1 / (1 + torch.tensor(scales, dtype=torch.float64) ** 2 / s**2)

    def sample_x(self, n):
        z = randn(n, self.W.shape[1], seed=7, dtype=torch.float64)
        return z @ self.W.T + self.b + self.s * randn(n, self.W.shape[0], seed=8, dtype=torch.float64)

    def log_px(self, x):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(x)

    def posterior(self, x):
        return self.post_var * ((x - self.b) @ self.W) / self.s**2, self.post_var.log().expand(x.shape[0], -1)

    def log_w(self, x, q_mu, q_logvar, k, seed=0):
        """(N, K) importance log-weights with z_k ~ N(q_mu, exp(q_logvar))."""
        eps = randn(x.shape[0], k, q_mu.shape[1], seed=seed, dtype=torch.float64)
        z = q_mu[:, None] + (0.5 * q_logvar[:, None]).exp() * eps
        log_px_z = M.gaussian_log_density(x[:, None], z @ self.W.T + self.b, math.log(self.s**2))
        return M.log_weights(log_px_z, M.gaussian_log_density(z, 0.0, 0.0),
                             M.gaussian_log_density(z, q_mu[:, None], q_logvar[:, None]))


def test_iwae_with_exact_posterior_equals_log_likelihood_for_every_k():
    model = LinearGaussian()
    x = model.sample_x(200)
    mu, logvar = model.posterior(x)
    for k in (1, 5, 50):
        bound = M.iwae_from_log_weights(model.log_w(x, mu, logvar, k))
        assert torch.allclose(bound, model.log_px(x), rtol=1e-5, atol=0)


def test_iwae_with_worse_posterior_is_below_and_rises_with_k():
    model = LinearGaussian()
    x = model.sample_x(2000)
    mu, logvar = model.posterior(x)
    q_mu, q_logvar = mu + 0.5, logvar + math.log(2.0)  # shifted, twice as wide
    gaps = {k: model.log_px(x) - M.iwae_from_log_weights(model.log_w(x, q_mu, q_logvar, k, seed=k))
            for k in (1, 5, 50)}
    mean_gap = {k: float(g.mean()) for k, g in gaps.items()}
    assert mean_gap[1] > mean_gap[5] > mean_gap[50] > 0
    assert mean_gap[50] < 0.1 * mean_gap[1]
    # K = 1: the gap log p(x) − ELBO is KL(q ‖ p(z|x)), here in closed form
    v = model.post_var
    kl = float(0.5 * (2 + 0.25 / v - 1 - math.log(2.0)).sum())
    assert abs(mean_gap[1] - kl) < 4 * float(gaps[1].std()) / math.sqrt(len(x))


def test_iwae_bound_on_a_real_vae_matches_elbo_and_rises_with_k():
    vae, x, sigma = tiny("vae"), rand(200, 3, 16, 16, seed=3), 0.3
    with torch.no_grad():  # an informative posterior: means spread out, std ≈ 0.37, KL ≈ 2.8 nats
        vae.to_latent.weight.mul_(30)
        vae.to_logvar.bias.fill_(-2.0)
    vae.train()
    seeds = range(4)
    terms = [M.elbo_terms(vae, x, sigma, batch_size=100, seed=s) for s in seeds]
    iwae1 = [M.iwae_bound(vae, x, sigma, 1, batch_size=100, seed=s) for s in seeds]
    assert iwae1[0].shape == (200,) and iwae1[0].dtype == torch.float64
    assert torch.equal(iwae1[0], M.iwae_bound(vae, x, sigma, 1, batch_size=100, seed=0))  # seeded
    assert not torch.equal(iwae1[0], iwae1[1])
    # same seed, same z: K = 1 differs from the ELBO only by estimating the KL (≈ 2.8 nats) from
    # one sample instead of in closed form; unbiased, so the mean over 800 draws agrees (SE ≈ 0.04)
    diff = np.mean([float(i.mean()) - t["elbo"] for i, t in zip(iwae1, terms)])
    assert terms[0]["kl"] > 2 and abs(diff) < 0.15
    iwae20 = M.iwae_bound(vae, x, sigma, 20, batch_size=100, seed=9)
    assert float(iwae20.mean()) > float(torch.cat(iwae1).mean()) + 0.5
    assert vae.training


def test_elbo_terms_add_up_and_match_the_losses():
    vae, x, sigma = tiny("vae"), rand(30, 3, 16, 16, seed=4), 0.2
    terms = M.elbo_terms(vae, x, sigma, batch_size=7, seed=1)
    assert terms == M.elbo_terms(vae, x, sigma, batch_size=7, seed=1)
    assert terms["elbo"] == pytest.approx(-terms["recon"] - terms["kl"], rel=1e-9)
    with torch.no_grad():
        _, mu, logvar = vae.eval().encode(x)
        recon_of_mean = losses.gaussian_nll(vae.decode(mu).double(), x.double(), sigma).mean()
    assert terms["kl"] == pytest.approx(float(losses.kl_per_dimension(mu, logvar).sum(1).mean()), rel=1e-5)
    assert terms["recon"] == pytest.approx(float(recon_of_mean), rel=0.05)  # z close to mu here


# ---------------------------------------------------------------------------- latent activity
def test_kl_per_dim_and_active_units_on_a_fake_encoder():
    t = torch.linspace(0, 1, 101)
    x, vae = constant_images(t), FakeVAE()
    kl = M.kl_per_dim(vae, x, batch_size=7)
    expected = [0.5 * float((t.double() ** 2).mean()), 0.0,
                float((0.5 * (0.25 + 0.01 * t.double() ** 2 - 1 - math.log(0.25))).mean())]
    assert torch.allclose(kl, torch.tensor(expected, dtype=torch.float64), atol=1e-6)
    activity = M.latent_activity(vae, x, batch_size=7)
    var_t = float(t.double().var(correction=0))  # ≈ 0.085
    assert torch.allclose(activity, torch.tensor([var_t, 0.0, 0.01 * var_t], dtype=torch.float64), atol=1e-7)
    assert M.active_units(vae, x) == 1
    assert M.active_units(vae, x, threshold=1e-4) == 2
    assert M.active_units(vae, x, threshold=0.1) == 0


# --------------------------------------------------------------------------- Fréchet distance
def test_frechet_from_stats_diagonal_closed_form():
    m_a, m_b = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, -1.0])
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = float(((a.sqrt() - b.sqrt()) ** 2).sum() + ((m_a - m_b) ** 2).sum())  # 4 + 1 + 0 + 10
    assert M.frechet_from_stats(m_a, torch.diag(a), m_b, torch.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_from_stats_full_covariances_match_eigenvalues_of_product():
    A, B = randn(4, 4, seed=1, dtype=torch.float64), randn(4, 4, seed=2, dtype=torch.float64)
    s_a, s_b = A @ A.T + 0.1 * torch.eye(4), B @ B.T
    m = torch.zeros(4, dtype=torch.float64)
    # Tr (S_a S_b)^½ = Σ sqrt(eig(S_a S_b)): the eigenvalues of the non-symmetric product are real, ≥ 0
    tr_sqrt = torch.linalg.eigvals(s_a @ s_b).real.clamp(min=0).sqrt().sum()
    expected = float(s_a.trace() + s_b.trace() - 2 * tr_sqrt)
    assert M.frechet_from_stats(m, s_a, m, s_b) == pytest.approx(expected, rel=1e-8)
    assert M.frechet_from_stats(m, s_a, m, s_b) == pytest.approx(M.frechet_from_stats(m, s_b, m, s_a), rel=1e-8)


def test_frechet_distance_on_samples():
    feats = randn(3000, 5, seed=1) * torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0])
    assert M.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([0.3, 0.0, -0.4, 0.0, 0.0])
    distances = [M.frechet_distance(feats, feats + s * shift) for s in (0.5, 1.0, 2.0)]
    assert distances == pytest.approx([0.0625, 0.25, 1.0], rel=1e-6)  # same covariance: |Δm|²
    other = randn(3000, 5, seed=2) * 2.0 + 1.0
    assert M.frechet_distance(feats, other) == pytest.approx(M.frechet_distance(other, feats), rel=1e-8)
    # large samples approach the population value Σ (sqrt a − sqrt b)² + |Δm|²
    a, b = torch.tensor([1.0, 4.0, 0.25, 1.0, 9.0]), torch.full((5,), 4.0)
    population = float(((a.sqrt() - b.sqrt()) ** 2).sum() + 5.0)
    assert M.frechet_distance(feats, other) == pytest.approx(population, rel=0.05)


def test_frechet_runs_on_one_thread_and_restores_the_thread_count():
    feats, other = randn(500, 8, seed=3), randn(500, 8, seed=4) + 0.5
    threads = torch.get_num_threads()
    expected = M.frechet_distance(feats, other)
    seen = []
    with M.one_thread():
        seen.append(torch.get_num_threads())
        assert M.frechet_distance(feats, other) == pytest.approx(expected, rel=1e-12)
    assert seen == [1] and torch.get_num_threads() == threads
    with pytest.raises(ZeroDivisionError), M.one_thread():
        1 / 0
    assert torch.get_num_threads() == threads, "restored after an error too"


def test_frechet_distance_with_singular_covariance_is_finite():
    feats = randn(5, 10, seed=3)  # fewer samples than dims: rank-4 covariance
    assert M.frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert math.isfinite(M.frechet_distance(feats, feats + 1.0))


def test_oracle_features_batched_in_eval_mode():
    oracle, x = tiny("oracle", factor_levels=(0, 3)), rand(9, 3, 16, 16)
    oracle.train()
    feats = M.oracle_features(oracle, x, batch_size=4)
    assert oracle.training and feats.shape == (9, 3)
    with torch.no_grad():
        assert torch.allclose(feats, oracle.eval().features(x), atol=1e-6)


# ----------------------------------------------------------------------------- factor readout
class FakeOracle(nn.Module):
    """Reads its 'predictions' off the first pixel row of channel 0."""

    def predict(self, x):
        return x[:, 0, 0, :4]


def readout_fixture(n=40):
    g = torch.Generator().manual_seed(0)
    factors = torch.stack([torch.rand(n, generator=g), torch.rand(n, generator=g),
                           torch.randint(0, 3, (n,), generator=g).float(),
                           torch.randint(0, 2, (n,), generator=g).float()], dim=1)
    preds = factors.clone()
    preds[:, 1] = 2 * factors[:, 1].mean() - factors[:, 1]  # reflected: SSE = 4 SST, R² = −3
    preds[: n // 4, 3] = 1 - factors[: n // 4, 3]  # a quarter of the binary factor wrong
    return factors, preds


def as_images(preds):
    x = torch.zeros(preds.shape[0], 3, 4, 4)
    x[:, 0, 0, :4] = preds
    return x


def test_factor_readout_r2_and_accuracy():
    factors, preds = readout_fixture()
    names, levels = ("width", "hue", "style", "glasses"), (0, 0, 3, 2)
    scores = M.factor_readout(FakeOracle(), as_images(preds), factors, levels, names, batch_size=6)
    assert list(scores) == list(names)
    assert list(scores.values()) == pytest.approx([1.0, -3.0, 1.0, 0.75], abs=1e-5)
    unnamed = M.factor_readout(FakeOracle(), as_images(preds), factors, levels)
    assert list(unnamed) == ["factor_0", "factor_1", "factor_2", "factor_3"]
    assert list(unnamed.values()) == list(scores.values())


def test_readout_loss_reports_what_the_reconstruction_lost():
    factors, preds = readout_fixture()
    names, levels = ("width", "hue", "style", "glasses"), (0, 0, 3, 2)
    damaged = factors.clone()
    damaged[:, 0] = factors[:, 0].mean()  # reconstructions lose the width entirely: R² = 0
    damaged[:, 2] = (factors[:, 2] + 1) % 3  # ...and every style
    rows = M.readout_loss(FakeOracle(), as_images(factors), as_images(damaged), factors, names, levels)
    assert [r.name for r in rows] == list(names)
    assert [r.kind for r in rows] == ["R2", "R2", "accuracy", "accuracy"]
    assert [r.original for r in rows] == pytest.approx([1, 1, 1, 1], abs=1e-6)
    assert [r.reconstructed for r in rows] == pytest.approx([0, 1, 0, 1], abs=1e-6)
    assert [r.drop for r in rows] == pytest.approx([1, 0, 1, 0], abs=1e-6)
    name, kind, original, reconstructed, drop = rows[0]  # rows unpack as tuples
    assert (name, kind) == ("width", "R2")


# ----------------------------------------------------------------------------- MI and MIG
def test_discretize_equal_width_bins_per_column():
    v = np.stack([np.linspace(0, 1, 11), np.linspace(-5, 5, 11), np.full(11, 3.0)], axis=1)
    codes = M.discretize(v, bins=5)
    assert codes.dtype == np.int64
    assert codes[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]  # the maximum joins the last bin
    assert np.array_equal(codes[:, 0], codes[:, 1])  # per-column range
    assert (codes[:, 2] == 0).all()
    assert M.discretize(torch.linspace(0, 1, 11), bins=5).tolist() == codes[:, 0].tolist()


def test_mutual_info_known_values():
    a = np.array([0, 0, 1, 1, 1, 2])
    h = -(2 / 6 * math.log(2 / 6) + 3 / 6 * math.log(3 / 6) + 1 / 6 * math.log(1 / 6))
    assert M.entropy_discrete(a) == pytest.approx(h)
    assert M.mutual_info_discrete(a, a) == pytest.approx(h)
    assert M.mutual_info_discrete(a, np.array([7, 7, -3, -3, -3, 100])) == pytest.approx(h)  # codes are labels
    rng = np.random.default_rng(0)
    u = rng.integers(0, 4, 100_000)
    assert M.mutual_info_discrete(u, u // 2) == pytest.approx(M.entropy_discrete(u // 2), rel=1e-9)
    assert M.mutual_info_discrete(u, rng.integers(0, 4, 100_000)) < 1e-3  # independent
    assert M.mutual_info_discrete(torch.tensor(a), torch.tensor(a)) == pytest.approx(h)


def mig_factors(n=20_000):
    rng = np.random.default_rng(1)
    return np.stack([rng.random(n), rng.integers(0, 4, n), rng.random(n)], axis=1), (0, 4, 0), rng


def test_mig_is_one_for_copies_of_distinct_factors():
    f, levels, _ = mig_factors()
    latents = torch.tensor(np.stack([3 * f[:, 2] - 1, 0.5 * f[:, 0] + 7, f[:, 1]], axis=1))
    score, gaps, mi = M.mig(latents, torch.tensor(f), levels)
    assert mi.shape == (3, 3)
    assert score > 0.99 and (gaps > 0.99).all()
    assert mi[0, 1] == pytest.approx(M.entropy_discrete(M.discretize(f[:, 0])), rel=0.01)
    assert np.argmax(mi, axis=1).tolist() == [1, 2, 0]


def test_mig_is_near_zero_for_shared_rotated_or_noise_latents():
    f, levels, rng = mig_factors()
    duplicated = np.stack([f[:, 0], f[:, 0], f[:, 1], f[:, 2]], axis=1)  # factor 0 in two dims
    _, gaps, _ = M.mig(duplicated, f, levels)
    assert gaps[0] == pytest.approx(0.0, abs=1e-9) and gaps[1] > 0.99 and gaps[2] > 0.99
    rotated = np.stack([f[:, 0] + f[:, 2], f[:, 0] - f[:, 2]], axis=1)  # each dim half of both
    score, gaps, _ = M.mig(rotated, f[:, [0, 2]], (0, 0))
    assert score < 0.05
    score, _, mi = M.mig(rng.normal(size=(len(f), 3)), f, levels)
    assert score < 0.01 and mi.max() < 0.02


def test_mig_skips_constant_factors():
    f, levels, _ = mig_factors(2000)
    f = np.concatenate([f, np.zeros((len(f), 1))], axis=1)
    score, gaps, _ = M.mig(f[:, :3], f, levels + (2,))
    assert np.isnan(gaps[3]) and score == pytest.approx(np.mean(gaps[:3]))


def test_principal_directions_are_the_exact_pca_and_the_best_linear_autoencoder():
    g = torch.Generator().manual_seed(3)
    images = torch.randn(40, 2, 5, 6, generator=g, dtype=torch.float64)
    images[:, 0] *= 3.0                                          # unequal variances
    mean, w = M.principal_directions(images, k=7)
    flat = images.reshape(40, -1)
    assert torch.allclose(mean, flat.mean(0))
    assert torch.allclose(w @ w.T, torch.eye(7, dtype=w.dtype), atol=1e-10)
    _, s, vt = torch.linalg.svd(flat - mean, full_matrices=False)
    assert torch.allclose(w.T @ w, vt[:7].T @ vt[:7], atol=1e-10)   # the same subspace as the SVD
    residual = flat - mean - (flat - mean) @ w.T @ w
    assert torch.isclose(residual.pow(2).sum(), s[7:].pow(2).sum())  # Eckart-Young: the optimum
    q, _ = torch.linalg.qr(torch.randn(60, 7, generator=g, dtype=torch.float64))
    other = flat - mean - (flat - mean) @ q @ q.T                    # any other 7-dim projection
    assert other.pow(2).sum() > residual.pow(2).sum()
    with pytest.raises(ValueError):
        M.principal_directions(images, k=41)


@pytest.mark.parametrize("n, block", [(40, 16), (400, 4), (400, 8)])
def test_principal_directions_over_several_krylov_blocks(n, block):
    """Blocks narrower than k, and a last block cut at the rank (n = 40: 16 + 16 + 7 = 39)."""
    g = torch.Generator().manual_seed(4)
    scales = torch.logspace(0, -2, 60, dtype=torch.float64)          # a decaying spectrum
    images = (torch.randn(n, 60, generator=g, dtype=torch.float64) * scales).reshape(n, 3, 4, 5)
    mean, w = M.principal_directions(images, k=7, block=block, tol=1e-12)
    centred = images.reshape(n, -1) - mean
    _, s, _ = torch.linalg.svd(centred, full_matrices=False)
    assert torch.allclose(w @ w.T, torch.eye(7, dtype=w.dtype), atol=1e-10)
    captured = (centred @ w.T).pow(2).sum()
    assert captured <= s[:7].pow(2).sum() * (1 + 1e-12)
    assert torch.isclose(captured, s[:7].pow(2).sum(), rtol=1e-9)    # the optimum, to tol
