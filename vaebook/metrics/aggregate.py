"""The aggregate posterior q(z) and ELBO surgery (Hoffman & Johnson 2016).

The KL term of the ELBO, averaged over the data, splits into two parts:

    E_x KL(q(z|x) ‖ p(z)) = I(x; z) + KL(q(z) ‖ p(z)),

with q(z) = (1/N) Σ_n q(z|x_n) the *aggregate posterior* of N images and I(x; z) the mutual
information between the image index and the code under q(x, z) = (1/N) q(z|x_n). The first part
pays for information about the image; the second for q(z) not matching the prior, which is what
decides whether decoding z ~ p(z) gives images like the data. Since the index takes N values,
I(x; z) ≤ log N: with 2,000 images at most 7.6 nats, whatever the KL term.

Neither part has a closed form, because q(z) is a mixture of N Gaussians; but log q(z) does, as a
logsumexp over the N posteriors, so Monte Carlo over z is all that is needed: :func:`elbo_surgery`.
Shapes: N posteriors, M points z, L latent dims.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ..losses import LOG_2PI, kl_per_dimension


def log_density_matrix(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(M, L), (N, L), (N, L) -> (M, N) float64: log N(z_m; mu_n, diag(exp(logvar_n))) for every pair.

    Expanding Σ_l (z_l − μ_l)² / v_l = z² · (1/v) − 2 z · (μ/v) + μ² · (1/v) turns the M·N·L
    differences into two matrix products, so no (M, N, L) tensor is ever built."""
    z, mu, logvar = z.double(), mu.double(), logvar.double()
    precision = (-logvar).exp()                                            # (N, L)
    quad = (z**2) @ precision.T - 2 * z @ (mu * precision).T + (mu**2 * precision).sum(1)
    return -0.5 * (quad + (LOG_2PI + logvar).sum(1))


def log_aggregate_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                          chunk: int = 1024) -> torch.Tensor:
    """(M, L) -> (M,) float64: log q(z_m) = logsumexp_n log q(z_m|x_n) − log N, in chunks of
    `chunk` points (memory chunk·N instead of M·N)."""
    return torch.cat([torch.logsumexp(log_density_matrix(part, mu, logvar), dim=1)
                      for part in z.split(chunk)]) - math.log(len(mu))


class Surgery(NamedTuple):
    mean_kl: float         # E_x KL(q(z|x) ‖ p(z)), closed form: the ELBO's KL term (the rate)
    mutual_info: float     # I(x; z), Monte Carlo; at most log_n
    kl_aggregate: float    # KL(q(z) ‖ p(z)) = mean_kl − mutual_info
    mutual_info_se: float  # standard error of the Monte Carlo estimate (of both parts)
    log_n: float           # log N, the largest I(x; z) can be


def information_terms(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(M, L) points, z_m drawn from posterior n = m mod N -> (M,) float64: log q(z_m|x_n) − log q(z_m).

    Both logs come from the same row of :func:`log_density_matrix`, so each term is at most log N
    exactly (the logsumexp includes the term itself), whatever the rounding."""
    n, terms = len(mu), []
    for start in range(0, len(z), chunk):
        rows = log_density_matrix(z[start:start + chunk], mu, logvar)              # (chunk, N)
        own = rows[torch.arange(len(rows)), torch.arange(start, start + len(rows)) % n]
        terms.append(own - torch.logsumexp(rows, dim=1))
    return torch.cat(terms) + math.log(n)


def elbo_surgery(mu: torch.Tensor, logvar: torch.Tensor, samples_per_posterior: int = 1,
                 seed: int = 0, chunk: int = 1024) -> Surgery:
    """Split the mean KL of N fitted posteriors (mu, logvar: (N, L)) into I(x; z) + KL(q(z) ‖ p(z)).

    Draws `samples_per_posterior` points z from each q(z|x_n) (a seeded generator on the CPU: an
    unbiased, stratified sample of q(z)) and averages log q(z|x_n) − log q(z), with log q(z) exact
    (a logsumexp over all N posteriors, in chunks). Each term is at most log N, since
    q(z) ≥ q(z|x_n) / N, so the estimate never exceeds log N. KL(q(z) ‖ p(z)) is the closed-form
    mean KL minus it. The standard error treats the terms as independent (conservative: the sample
    is stratified). Cost: M·N·L multiply-adds for M = samples_per_posterior·N points."""
    mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
    g = torch.Generator().manual_seed(seed)
    mu_s = mu.repeat(samples_per_posterior, 1)                             # (S·N, L): row m from posterior m mod N
    logvar_s = logvar.repeat(samples_per_posterior, 1)
    z = mu_s + (0.5 * logvar_s).exp() * torch.randn(mu_s.shape, generator=g, dtype=torch.float64)
    terms = information_terms(z, mu, logvar, chunk)
    mean_kl = float(kl_per_dimension(mu, logvar).sum(1).mean())
    mutual_info = float(terms.mean())
    se = float(terms.std() / math.sqrt(len(terms))) if len(terms) > 1 else math.nan
    return Surgery(mean_kl, mutual_info, mean_kl - mutual_info, se, math.log(len(mu)))


class TCSplit(NamedTuple):
    total_correlation: float  # KL(q(z) ‖ Π_j q(z_j)): how far the coordinates of q(z) are from independent
    dimensionwise_kl: float   # Σ_j KL(q(z_j) ‖ p(z_j)): each coordinate's own mismatch with the prior
    kl_aggregate: float       # their sum, KL(q(z) ‖ p(z)) estimated on the same points
    se: float                 # standard error of the total correlation's Monte Carlo estimate


def total_correlation(mu: torch.Tensor, logvar: torch.Tensor, samples_per_posterior: int = 1,
                      seed: int = 0, chunk: int = 1024) -> TCSplit:
    """β-TCVAE's split (Chen et al. 2018) of the mismatch KL(q(z) ‖ p(z)), for p = N(0, I):

        KL(q(z) ‖ p(z)) = KL(q(z) ‖ Π_j q(z_j)) + Σ_j KL(q(z_j) ‖ p(z_j)),

    total correlation plus dimension-wise KL. Like :func:`elbo_surgery`, with q(z) the mixture of
    the N posteriors, exact as a logsumexp; each marginal q(z_j) is the 1-D mixture of the same
    posteriors' coordinate j. Monte Carlo over z drawn from each q(z|x_n) (seeded, on the CPU)."""
    mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
    g = torch.Generator().manual_seed(seed)
    mu_s, logvar_s = mu.repeat(samples_per_posterior, 1), logvar.repeat(samples_per_posterior, 1)
    z = mu_s + (0.5 * logvar_s).exp() * torch.randn(mu_s.shape, generator=g, dtype=torch.float64)
    log_q = log_aggregate_density(z, mu, logvar, chunk)                                   # (M,)
    log_marginals = torch.stack([log_aggregate_density(z[:, j:j + 1], mu[:, j:j + 1], logvar[:, j:j + 1],
                                                       chunk) for j in range(mu.shape[1])], 1)  # (M, L)
    log_prior = -0.5 * (z**2 + LOG_2PI)                                                   # (M, L)
    tc_terms = log_q - log_marginals.sum(1)
    se = float(tc_terms.std() / math.sqrt(len(z))) if len(z) > 1 else math.nan
    tc, dimwise = float(tc_terms.mean()), float((log_marginals - log_prior).sum(1).mean())
    return TCSplit(tc, dimwise, tc + dimwise, se)
