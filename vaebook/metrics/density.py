"""Ex-post density estimation: densities fitted to an autoencoder's codes after training.

A plain autoencoder has no rule for choosing codes to decode. Fitting a density to the codes of
real images afterwards gives it one (chapter 2; Ghosh et al. 2020 do this for regularised
autoencoders). This module holds chapter 2's densities and the checks it runs on the codes:

- :func:`fit_gaussian`: one Gaussian with a full covariance matrix;
- :func:`fit_mixture`: a mixture of K full-covariance Gaussians, fitted by expectation-maximisation;
- :func:`sample`: seeded draws from either, so that chapter 5 can decode exactly chapter 2's samples;
- :func:`bic`: the Bayesian information criterion, to compare mixtures with different K;
- :func:`ks_distance` and :func:`lilliefors_critical`: how far values are from the normal fitted
  to them, and how far is too far when that normal's mean and std were fitted (Lilliefors 1967).

The fits return ``torch.distributions`` objects (``MultivariateNormal``, ``MixtureSameFamily``):
``log_prob(codes)`` is the log density of each code, ``sample((n,))`` draws codes. Everything is
computed in float64. Shapes: N codes of D numbers, K mixture components.
"""
from __future__ import annotations

import math

import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

RIDGE = 1e-3  # added to every covariance's diagonal: keeps it invertible in directions that hardly vary


def _check_codes(codes: torch.Tensor) -> torch.Tensor:
    codes = torch.as_tensor(codes)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"codes must be a (N, D) tensor with N >= 2, got shape {tuple(codes.shape)}; "
                         "for one column of values pass values[:, None]")
    return codes.double()


def weighted_covariance(codes: torch.Tensor, weights: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Σ_i w_i (h_i − mean)(h_i − mean)ᵀ / Σ_i w_i for codes (N, D) and weights (N,): (D, D)."""
    centred = codes - mean
    return (weights[:, None] * centred).T @ centred / weights.sum()


def fit_gaussian(codes: torch.Tensor, ridge: float = RIDGE) -> MultivariateNormal:
    """N(m, Σ + ridge·I) with the mean m and the unbiased covariance Σ of codes (N, D)."""
    codes = _check_codes(codes)
    d = codes.shape[1]
    cov = torch.cov(codes.T).reshape(d, d) + ridge * torch.eye(d, dtype=codes.dtype)
    return MultivariateNormal(codes.mean(dim=0), covariance_matrix=cov)


def mixture(weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> MixtureSameFamily:
    """The mixture Σ_j π_j N(μ_j, Σ_j) of weights (K,), means (K, D) and covariances (K, D, D)."""
    return MixtureSameFamily(Categorical(probs=weights), MultivariateNormal(means, covariance_matrix=covs))


def fit_mixture(codes: torch.Tensor, k: int, ridge: float = RIDGE, tol: float = 0.01,
                max_steps: int = 200, seed: int = 0) -> tuple[MixtureSameFamily, list[float]]:
    """A mixture of k full-covariance Gaussians fitted to codes (N, D) by EM. Returns the
    mixture and the mean log-likelihood of the codes before each round (the last entry: the
    returned mixture's).

    Starts from k randomly chosen codes as means and the covariance of all codes for every
    component; stops when a round raises the mean log-likelihood by less than `tol` nats (or
    lowers it), or after max_steps rounds. The ridge added in the M-step keeps a component
    that takes only a few codes from collapsing onto them, but it also means the M-step no
    longer maximises what EM maximises: the likelihood is no longer guaranteed to rise every
    round, so check the returned history."""
    codes = _check_codes(codes)
    n, d = codes.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of codes ({n}), got {k}")
    eye = ridge * torch.eye(d, dtype=codes.dtype)
    gen = torch.Generator().manual_seed(seed)
    weights = torch.full((k,), 1 / k, dtype=codes.dtype)
    means = codes[torch.randperm(n, generator=gen)[:k]]
    everyone = torch.ones(n, dtype=codes.dtype)
    covs = (weighted_covariance(codes, everyone, codes.mean(0)) + eye).expand(k, d, d)
    log_likelihood = []
    for step in range(max_steps + 1):
        # E-step: log π_j + log N(h_i; μ_j, Σ_j) for every code i and component j, (N, K)
        components = MultivariateNormal(means, covariance_matrix=covs)
        log_joint = weights.log() + components.log_prob(codes[:, None, :])
        log_likelihood.append(torch.logsumexp(log_joint, dim=1).mean().item())
        gain = log_likelihood[-1] - log_likelihood[-2] if step > 0 else math.inf
        if step == max_steps or gain < tol:
            break
        r = log_joint.softmax(dim=1)                    # responsibilities r_ij, (N, K)
        # M-step: each component refitted to the codes, code i weighted by r_ij
        n_j = r.sum(dim=0).clamp(min=1e-300)            # a component nobody claims stays finite
        weights, means = n_j / n, (r.T @ codes) / n_j[:, None]
        covs = torch.stack([weighted_covariance(codes, r[:, j], means[j])
                            for j in range(k)]) + eye
    return mixture(weights, means, covs), log_likelihood


def n_parameters(k: int, d: int) -> int:
    """Free numbers in a mixture of k full-covariance Gaussians in d dimensions:
    k − 1 weights, k·d means and k·d(d + 1)/2 covariances."""
    return (k - 1) + k * d + k * d * (d + 1) // 2


def bic(density, codes: torch.Tensor) -> float:
    """Bayesian information criterion, −2 Σ_i log p(h_i) + (free parameters)·log N (Schwarz 1978),
    of a density from :func:`fit_gaussian` or :func:`fit_mixture` on codes (N, D): lower is better."""
    codes = _check_codes(codes)
    n, d = codes.shape
    k = density.mixture_distribution.probs.numel() if isinstance(density, MixtureSameFamily) else 1
    return float(-2 * density.log_prob(codes).sum() + n_parameters(k, d) * math.log(n))


def sample(density, n: int, seed: int = 0) -> torch.Tensor:
    """n codes (n, D) drawn from a fitted density, reproducibly: the same seed gives the same codes,
    and torch's global random state is left as it was. A mixture of Gaussians gives exactly the
    codes of ``density.sample((n,))`` (see :func:`_sample_mixture`)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if (isinstance(density, MixtureSameFamily) and density.batch_shape == ()
                and isinstance(density.component_distribution, MultivariateNormal)):
            return _sample_mixture(density, n)
        return density.sample((n,))


def _sample_mixture(mix: MixtureSameFamily, n: int) -> torch.Tensor:
    """``mix.sample((n,))`` for a mixture of K MultivariateNormals in D dimensions: the same random
    draws (n component labels, then (n, K, D) standard normals) and the same arithmetic on each
    draw's own component, without torch's broadcasting matmul, which copies the (K, D, D)
    Cholesky factors once per draw (2,000 draws of 5 components in 128 dimensions: 1.3 GB)."""
    with torch.no_grad():
        components = mix.component_distribution
        which = mix.mixture_distribution.sample((n,))                  # (n,) labels
        eps = torch.empty((n, *components.batch_shape, *components.event_shape),
                          dtype=components.loc.dtype).normal_()       # (n, K, D)
        picked = eps[torch.arange(n), which]                           # (n, D)
        k, d = components.batch_shape[0], components.event_shape[0]
        tril, loc = components.scale_tril.expand(k, d, d), components.loc.expand(k, d)
        codes = torch.empty_like(picked)
        for j in range(k):                                             # m + L ε, per component
            mine = which == j
            eps_j = picked[mine]
            codes[mine] = loc[j] + torch.matmul(tril[j].expand(len(eps_j), d, d),
                                                eps_j[..., None])[..., 0]
        return codes


def ks_distance(values: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (D,): Kolmogorov-Smirnov distance between each column's empirical CDF and the
    CDF of the normal with that column's mean and standard deviation (the largest gap between them)."""
    values = _check_codes(values)
    n = len(values)
    fitted = torch.distributions.Normal(values.mean(dim=0), values.std(dim=0))
    cdf = fitted.cdf(values.sort(dim=0).values)
    above = torch.arange(1, n + 1, dtype=values.dtype)[:, None] / n   # the ECDF just after each value
    return torch.maximum(above - cdf, cdf - (above - 1 / n)).amax(dim=0)


def lilliefors_critical(n: int, level: float = 0.01, draws: int = 2000, seed: int = 0) -> float:
    """The KS distance that normal samples of size n exceed with probability `level` when the
    normal's mean and std are fitted to the same values (Lilliefors 1967), by simulation: the
    (1 − level) quantile of :func:`ks_distance` over `draws` normal samples. It is smaller
    than the critical value for a fully specified normal (about 1.63/√n at 1%), because
    fitting brings the normal closer to the values."""
    if n < 5 or not 0 < level < 1 or draws * level < 5:
        raise ValueError(f"need n >= 5, 0 < level < 1 and at least 5 draws beyond the quantile "
                         f"(draws * level >= 5); got n={n}, level={level}, draws={draws}")
    gen = torch.Generator().manual_seed(seed)
    distances = []
    for _ in range(math.ceil(draws / 250)):                     # 250 samples at a time
        distances.append(ks_distance(torch.randn(n, 250, generator=gen, dtype=torch.float64)))
    return torch.cat(distances)[:draws].quantile(1 - level).item()
