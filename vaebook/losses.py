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
    """-log Bernoulli(x; x̂) per example, summed over pixels (the 'BCE' loss): (B,).
    For x in (0, 1) this is a cross-entropy rather than a normalised likelihood."""
    p = x_hat.clamp(eps, 1 - eps)
    return flat(F.binary_cross_entropy(p, x, reduction="none")).sum(dim=1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) ‖ N(0, I)) per example, summed over latent dims: (B,).

    Closed form (Kingma & Welling 2013, appendix B): for each dimension
    KL = ½ (σ² + μ² − 1 − log σ²).
    """
    return kl_per_dimension(mu, logvar).sum(dim=1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The summands of :func:`kl_divergence`, one per latent dimension: (B, L)."""
    return 0.5 * (logvar.exp() + mu**2 - 1.0 - logvar)


def negative_elbo(x_hat, x, mu, logvar, *, sigma: float = 0.1, beta: float = 1.0):
    """β-weighted negative ELBO per example: recon + β·KL, with a Gaussian decoder of std σ.

    Returns (loss, recon, kl), each (B,), in nats. β = 1 is the VAE (the loss is then a true
    negative ELBO); β > 1 is the β-VAE of Higgins et al. (2017)."""
    recon = gaussian_nll(x_hat, x, sigma)
    kl = kl_divergence(mu, logvar)
    return recon + beta * kl, recon, kl


def capacity(step: int, c_max: float, anneal_steps: int) -> float:
    """The target KL C of Burgess et al. (2018), rising linearly from 0 to c_max nats."""
    if anneal_steps <= 0:
        return c_max
    return c_max * min(1.0, step / anneal_steps)


def capacity_loss(x_hat, x, mu, logvar, *, sigma: float, gamma: float, c: float):
    """Capacity-annealed objective (Burgess et al. 2018): recon + γ·|KL − C|.

    Instead of pushing the KL down with a constant β, the KL is held near a target C that grows
    during training, so the code gains information a little at a time.
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
    """The decoder std σ implied by ``mse_mean + weight·KL`` on D pixels: sqrt(weight·D/2)."""
    return math.sqrt(weight * num_pixels / 2)
