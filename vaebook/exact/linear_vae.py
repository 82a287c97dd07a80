"""A linear β-VAE on Gaussian data, where training has a closed-form answer (Lucas et al. 2019).

Encoder Q(z | x) = N(A x + c, diag(exp(logvar))), the same variance for every x; decoder
P(x | z) = N(W z + b, σ² I); data x ~ N(m, C). Both terms of the β-VAE objective are then exact
averages over the data (:func:`rate_distortion`), so gradient descent can be run on the objective
itself, with no sampling (:func:`fit`).

Dividing the β-VAE loss D + β R by β gives the plain ELBO of a decoder with variance βσ² (up to a
constant), so its optimum is the maximum-likelihood probabilistic PCA at noise v = βσ² (Tipping &
Bishop 1999), whose posterior is diagonal in the right rotation. With λ_1 ≥ λ_2 ≥ … the variances
of the data along its principal directions, each of the k latent coordinates takes one direction:

- it is used only if λ_j > v: its decoder column has length √(λ_j − v), else zero (collapse);
- a used coordinate spends ½ log(λ_j / v) nats and leaves a squared error of exactly v along its
  direction, β/2 nats of distortion; a direction left out costs λ_j / (2σ²) nats.

This is reverse water-filling, the Gaussian rate–distortion curve, and :func:`closed_form` computes
it. β and σ enter only through βσ²: a direction collapses when its variance falls below βσ².
Shapes: x (d,), z (k,); A (k, d), W (d, k). Work in float64.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.distributions import MultivariateNormal

from .linear import LinearGaussian, kl_decomposition


class LinearVAE(NamedTuple):
    A: torch.Tensor        # (k, d) encoder weights: the posterior mean is A x + c
    c: torch.Tensor        # (k,)
    logvar: torch.Tensor   # (k,) log of the posterior variances, the same for every x
    decoder: LinearGaussian


class RateDistortion(NamedTuple):
    rate: float            # E_x KL(Q(z|x) ‖ N(0, I)), nats
    distortion: float      # E_x E_Q ||x − W z − b||² / (2σ²), nats (without the Gaussian constant)
    active: int            # latent coordinates whose decoder column is not zero


def rate_distortion_terms(A, c, logvar, W, b, sigma: float, data: MultivariateNormal):
    """The exact averages over x ~ data (tensors, differentiable): (rate, distortion) as above.

    With x = m + e, e ~ N(0, C): x − W(Ax + c) − b = (I − WA) e + (I − WA) m − W c − b, whose mean
    square is tr((I − WA) C (I − WA)ᵀ) + ‖(I − WA) m − W c − b‖²; the posterior noise adds
    tr(W diag(exp(logvar)) Wᵀ). The rate is :func:`vaebook.exact.linear.kl_decomposition`'s first term."""
    m, C = data.loc, data.covariance_matrix
    residual = torch.eye(len(m), dtype=m.dtype) - W @ A
    offset = residual @ m - W @ c - b
    squared = torch.trace(residual @ C @ residual.T) + offset @ offset + (W**2 * logvar.exp()).sum()
    rate = kl_decomposition(A, c, torch.diag(logvar.exp()), data)[0]
    return rate, squared / (2 * sigma**2)


def rate_distortion(vae: LinearVAE, data: MultivariateNormal, tol: float = 1e-3) -> RateDistortion:
    """Rate, distortion and the number of decoder columns longer than `tol` of a linear VAE."""
    dec = vae.decoder
    with torch.no_grad():
        rate, distortion = rate_distortion_terms(vae.A, vae.c, vae.logvar, dec.W, dec.b, dec.s, data)
    return RateDistortion(float(rate), float(distortion), int((dec.W.norm(dim=0) > tol).sum()))


def fit(data: MultivariateNormal, k: int, sigma: float, beta: float = 1.0, seed: int = 0,
        max_iter: int = 300) -> LinearVAE:
    """Minimise D + β R of a linear VAE with k latents on data x ~ N(m, C) by L-BFGS, from small
    random weights (seeded). Returns the trained encoder and decoder."""
    d = len(data.loc)
    g = torch.Generator().manual_seed(seed)
    params = [0.1 * torch.randn(k, d, generator=g, dtype=torch.float64), torch.zeros(k, dtype=torch.float64),
              torch.zeros(k, dtype=torch.float64), 0.1 * torch.randn(d, k, generator=g, dtype=torch.float64),
              torch.zeros(d, dtype=torch.float64)]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.LBFGS(params, max_iter=max_iter, tolerance_grad=1e-12, tolerance_change=1e-15,
                                  history_size=50, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        rate, distortion = rate_distortion_terms(*params, sigma, data)
        value = distortion + beta * rate
        value.backward()
        return value

    optimiser.step(loss)
    A, c, logvar, W, b = (p.detach() for p in params)
    return LinearVAE(A, c, logvar, LinearGaussian(W, b, sigma))


def closed_form(variances, k: int, sigma: float, beta: float = 1.0) -> RateDistortion:
    """The optimum of D + β R for data with these variances along its principal directions (any
    order) and k latents: reverse water-filling at v = βσ² (see the module docstring)."""
    lam = torch.as_tensor(variances, dtype=torch.float64).sort(descending=True).values
    v = beta * sigma**2
    used = torch.zeros_like(lam, dtype=torch.bool)
    used[:k] = lam[:k] > v
    active = int(used.sum())
    rate = float(0.5 * torch.log(lam[used] / v).sum())
    distortion = (active * v + float(lam[~used].sum())) / (2 * sigma**2)
    return RateDistortion(rate, distortion, active)


def posterior_gap(variances, k: int, sigma: float, beta: float = 1.0) -> float:
    """E_x KL(Q(z|x) ‖ P(z|x)) in nats for the optimal linear β-VAE (:func:`closed_form`), where
    P(z|x) is the exact posterior of its own decoder at noise σ: the gap log P(x) − ELBO that an
    importance-weighted bound can only bound from below. Zero at β = 1, growing with β.

    Along a used direction (y = its coordinate of x − b, variance λ; column length w = √(λ − v),
    v = βσ²) the encoder has mean (w/λ) y and variance v/λ, the posterior at σ mean w y/(σ² + w²)
    and variance σ²/(σ² + w²): Q is the posterior of a decoder with noise v, too wide at σ."""
    lam = torch.as_tensor(variances, dtype=torch.float64).sort(descending=True).values[:k]
    v = beta * sigma**2
    lam = lam[lam > v]
    w2 = lam - v
    q_var, p_var = v / lam, sigma**2 / (sigma**2 + w2)
    mean_diff = w2.sqrt() / lam - w2.sqrt() / (sigma**2 + w2)            # coefficient of y in the difference
    ratio = q_var / p_var
    return float(0.5 * (ratio - 1 - ratio.log() + mean_diff**2 * lam / p_var).sum())


def column_lengths(variances, k: int, sigma: float, beta: float = 1.0) -> torch.Tensor:
    """(k,) the optimal decoder's column lengths √(λ_j − βσ²)₊ for the k largest variances."""
    lam = torch.as_tensor(variances, dtype=torch.float64).sort(descending=True).values[:k]
    return (lam - beta * sigma**2).clamp(min=0).sqrt()


def surviving_directions(variances, sigma: float, beta: float = 1.0) -> int:
    """How many directions a linear VAE with latents to spare would use: those with λ_j > βσ²."""
    return int((torch.as_tensor(variances, dtype=torch.float64) > beta * sigma**2).sum())


def principal_variances(x: torch.Tensor) -> torch.Tensor:
    """(N, ...) data -> (min(N, D),) float64 variances along its principal directions, largest first
    (1/N normalisation). Through the N × N Gram matrix when N ≤ D, so D may be large (pixels).
    The products run in x's own precision (float32 images: half the time of float64, and errors
    near 1e-6 of the largest variance), the eigenvalues in float64."""
    centred = x.flatten(1)
    centred = centred - centred.mean(0)
    gram = centred @ centred.T if len(centred) <= centred.shape[1] else centred.T @ centred
    return torch.linalg.eigvalsh(gram.double() / len(centred)).flip(0).clamp(min=0)


def gaussian_data(variances) -> MultivariateNormal:
    """Zero-mean Gaussian data with these variances along the coordinate axes (its principal
    directions): what a linear VAE sees of a data set, up to a rotation and an offset."""
    lam = torch.as_tensor(variances, dtype=torch.float64)
    return MultivariateNormal(torch.zeros_like(lam), torch.diag(lam))


__all__ = ["LinearVAE", "RateDistortion", "closed_form", "column_lengths", "fit", "gaussian_data",
           "posterior_gap", "principal_variances", "rate_distortion", "rate_distortion_terms",
           "surviving_directions"]

