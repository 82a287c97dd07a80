"""Loss functions: pure functions of tensors, one value per example unless the name says mean.

Shapes: x and x_hat are (B, C, H, W) with pixels in [0, 1]; mu and logvar are (B, L).

A note on scale, because it is the most asked question about VAE code. With a Gaussian decoder
P(x|z) = N(x̂, σ² I) over D pixels, the negative ELBO of one image is

    Σ_d (x_d - x̂_d)² / (2σ²) + (D/2) log(2πσ²) + KL(Q(z|x) ‖ P(z)).

Code that writes ``mse_mean + w * kl`` instead (MSE averaged over the D pixels) minimises the
same thing multiplied by the constant 1/w, as long as

    w = 2σ² / D,   i.e.  σ² = w·D / 2.

So a small KL weight is not a hack on top of the ELBO: it *is* the ELBO, with a particular
decoder variance. :func:`kl_weight_for_sigma` and :func:`sigma_for_kl_weight` convert.

Other decoders: :func:`bernoulli_nll` is the binary cross-entropy that much VAE code uses on
[0, 1] pixels, a likelihood only for binary data; :func:`continuous_bernoulli_nll` is its
normalised version on [0, 1] (Loaiza-Ganem & Cunningham 2019).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def flat(t: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, prod(...))."""
    return t.reshape(t.shape[0], -1)


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error per example, averaged over pixels: (B,)."""
    return flat((x_hat - x) ** 2).mean(dim=1)


def gaussian_nll(x_hat: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """-log N(x; x̂, σ² I) per example in nats, summed over pixels: (B,)."""
    d = flat(x).shape[1]
    sq = flat((x_hat - x) ** 2).sum(dim=1)
    return sq / (2 * sigma**2) + 0.5 * d * (LOG_2PI + 2 * math.log(sigma))


def bernoulli_nll(x_hat: torch.Tensor, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """-Σ_d [x_d log x̂_d + (1 − x_d) log(1 − x̂_d)] per example (the 'BCE' loss most VAE code
    uses), summed over pixels: (B,). x̂ is clamped to [eps, 1 − eps].

    For binary x it is −log Bernoulli(x; x̂). For x in (0, 1) it is a cross-entropy, not a
    normalised likelihood: the Bernoulli puts mass on {0, 1} only, its minimum over x̂ (at x̂ = x)
    is the entropy Σ_d H(x_d) > 0, not a log-density, and it is not comparable with a Gaussian's
    −log p(x). :func:`continuous_bernoulli_nll` adds the missing normaliser."""
    p = x_hat.clamp(eps, 1 - eps)
    return flat(F.binary_cross_entropy(p, x, reduction="none")).sum(dim=1)


def continuous_bernoulli_log_norm(lam: torch.Tensor, eps: float = 1e-6, taylor: float = 1e-2) -> torch.Tensor:
    """log C(λ), elementwise, for the continuous Bernoulli of Loaiza-Ganem & Cunningham (2019),
    p(x|λ) = C(λ) λ^x (1 − λ)^(1−x) on x ∈ [0, 1]:

        C(λ) = 2 artanh(1 − 2λ) / (1 − 2λ)   (λ ≠ ½),   C(½) = 2.

    The formula is 0/0 at λ = ½, so within `taylor` of ½ it uses the series
    log C = log 2 + (4/3) u² + (104/45) u⁴ with u = λ − ½ (error O(u⁶)). λ is clamped to
    [eps, 1 − eps], where C grows without bound."""
    lam = lam.clamp(eps, 1 - eps)
    u = lam - 0.5
    near = u.abs() < taylor
    t = torch.where(near, torch.full_like(lam, 0.25), 1 - 2 * lam)        # a safe value near ½
    exact = torch.log(2 * torch.atanh(t) / t)
    series = math.log(2) + 4 / 3 * u**2 + 104 / 45 * u**4
    return torch.where(near, series, exact)


def continuous_bernoulli_nll(x_hat: torch.Tensor, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """-log CB(x; λ = x̂) per example, summed over pixels: (B,) = the BCE minus Σ_d log C(x̂_d).
    A normalised density on [0, 1]^D, so unlike the BCE it can be compared with other densities.
    Its mean is not λ (see :func:`continuous_bernoulli_mean`)."""
    p = x_hat.clamp(eps, 1 - eps)
    return bernoulli_nll(p, x, eps) - flat(continuous_bernoulli_log_norm(p, eps)).sum(dim=1)


def continuous_bernoulli_mean(lam: torch.Tensor, eps: float = 1e-6, taylor: float = 1e-2) -> torch.Tensor:
    """E[x] under CB(λ), elementwise: λ/(2λ − 1) + 1/(2 artanh(1 − 2λ)); near λ = ½ the series
    ½ + u/3 + (16/45) u³ (u = λ − ½). Pulled towards ½: λ = 0.9 has mean ≈ 0.67, so x̂ = λ is not
    the picture the decoder expects. The two terms nearly cancel close to ½, so the sum is taken
    in float64 and returned in λ's dtype."""
    lam64 = lam.double().clamp(eps, 1 - eps)
    u = lam64 - 0.5
    near = u.abs() < taylor
    safe = torch.where(near, torch.full_like(lam64, 0.25), lam64)
    exact = safe / (2 * safe - 1) + 1 / (2 * torch.atanh(1 - 2 * safe))
    return torch.where(near, 0.5 + u / 3 + 16 / 45 * u**3, exact).to(lam.dtype)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) ‖ N(0, I)) per example, summed over latent dims: (B,).

    Closed form (Kingma & Welling 2013, appendix B): for each dimension
    KL = ½ (σ² + μ² − 1 − log σ²).
    """
    return kl_per_dimension(mu, logvar).sum(dim=1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The summands of `kl_divergence`, one per latent dimension: (B, L)."""
    return 0.5 * (logvar.exp() + mu**2 - 1.0 - logvar)


def negative_elbo(x_hat, x, mu, logvar, *, sigma: float = 0.1, beta: float = 1.0):
    """β-weighted negative ELBO per example: recon + β·KL, Gaussian decoder of std σ.

    Returns (loss, recon, kl), each (B,), in nats. β = 1 is the VAE (the loss is then
    a true negative ELBO); β > 1 is the β-VAE of Higgins et al. (2017)."""
    recon = gaussian_nll(x_hat, x, sigma)
    kl = kl_divergence(mu, logvar)
    return recon + beta * kl, recon, kl


def leave_one_out_baseline(values: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """For each of the K values along `dim`, the mean of the other K - 1: same shape as values.

    The baseline of the multi-sample score-function estimator (Kool et al. 2019): with K
    samples z_k of Q, (f(z_k) - b_k) ∇ log Q(z_k) stays unbiased because b_k does not depend
    on z_k, and b_k tracks E_Q[f] without a running average that lags behind training."""
    k = values.shape[dim]
    if k < 2:
        raise ValueError(f"a leave-one-out baseline needs at least 2 samples along dim {dim}, got {k}")
    return (values.sum(dim=dim, keepdim=True) - values) / (k - 1)


def capacity(step: int, c_max: float, anneal_steps: int) -> float:
    """The target KL C of Burgess et al. (2018), rising linearly from 0 to c_max nats."""
    if anneal_steps <= 0:
        return c_max
    return c_max * min(1.0, step / anneal_steps)


def capacity_loss(x_hat, x, mu, logvar, *, sigma: float, gamma: float, c: float):
    """Capacity-annealed objective (Burgess et al. 2018): recon + γ·|KL − C|, with the KL averaged
    over the batch *before* the absolute value: γ·|mean_b KL_b − C|.

    Instead of pushing the KL down with a constant β, the KL is held near a target C that grows
    during training, so the code gains information a little at a time. C is a target for the
    *average* rate, as in Burgess et al.'s own code and most public ones: images may spend more or
    less than C as long as the batch spends C on average. Penalising each image, γ·mean_b |KL_b − C|,
    would ask every image to spend exactly C, a stronger constraint that keeps the model away
    from the rate-distortion frontier (simple images overpay, complex ones underpay).

    The penalty is one number per batch; it is added to every example's recon so that the
    per-example losses keep the shape (B,) and ``loss.mean()`` is the objective
    mean_b recon_b + γ·|mean_b KL_b − C|. Returns (loss, recon, kl), each (B,)."""
    recon = gaussian_nll(x_hat, x, sigma)
    kl = kl_divergence(mu, logvar)
    return recon + gamma * (kl.mean() - c).abs(), recon, kl


def capacity_loss_per_image(x_hat, x, mu, logvar, *, sigma: float, gamma: float, c: float):
    """The per-image variant, recon + γ·|KL − C| for each image: every image must spend exactly C.
    Kept to show the difference with :func:`capacity_loss`; the book trains with that one.
    Returns (loss, recon, kl), each (B,)."""
    recon = gaussian_nll(x_hat, x, sigma)
    kl = kl_divergence(mu, logvar)
    return recon + gamma * (kl - c).abs(), recon, kl


def factor_loss(outputs: list[torch.Tensor], factors: torch.Tensor, levels) -> torch.Tensor:
    """The oracle's loss, per example: squared error for continuous factors (levels 0) plus
    cross-entropy for categorical ones. outputs: one (B,) or (B, K) tensor per factor."""
    total = torch.zeros(factors.shape[0], device=factors.device)
    for j, (out, k) in enumerate(zip(outputs, levels)):
        target = factors[:, j]
        if k == 0:
            total = total + (out.float() - target) ** 2
        else:
            total = total + F.cross_entropy(out.float(), target.long(), reduction="none")
    return total


def kl_weight_for_sigma(sigma: float, num_pixels: int) -> float:
    """The weight w in ``mse_mean + w·KL`` that matches a Gaussian decoder of std σ: 2σ²/D."""
    return 2 * sigma**2 / num_pixels


def sigma_for_kl_weight(weight: float, num_pixels: int) -> float:
    """The decoder std σ implied by ``mse_mean + weight·KL`` on D pixels:
    sqrt(weight·D/2)."""
    return math.sqrt(weight * num_pixels / 2)
