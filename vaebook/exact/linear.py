"""The linear-Gaussian latent variable model (probabilistic PCA): a VAE whose every quantity is exact.

    z ~ N(0, I_k),    x | z ~ N(W z + b, s² I_d)

The evidence P(x), the posterior P(z | x) and the ELBO of any Gaussian Q(z | x) all have closed
forms, so the chapters use this model to check, to rounding error, what they can only estimate
for a neural VAE: the ELBO identity and its gap (chapter 3), the decomposition of the KL term
into information and a prior mismatch (Hoffman & Johnson 2016), and posterior collapse in a
linear VAE (Lucas et al. 2019), whose maximum-likelihood decoder :func:`fit_maximum_likelihood`
gives in closed form (Tipping & Bishop 1999).

Shapes: z (..., k), x (..., d); W (d, k), b (d,); covariances (k, k) or (..., k, k).
Work in float64: several checks compare numbers that agree to twelve digits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import MultivariateNormal

LOG_2PI = math.log(2 * math.pi)
_BLOCK = 2**16      # rows of z per block in LinearGaussian.log_likelihood


@dataclass(frozen=True)
class LinearGaussian:
    """The decoder P(x | z) = N(W z + b, s² I) with the prior P(z) = N(0, I)."""

    W: torch.Tensor     # (d, k) loading matrix: the decoder's weights
    b: torch.Tensor     # (d,) offset: the mean of x
    s: float            # standard deviation of the decoder's noise

    def __post_init__(self):
        if self.W.dim() != 2:
            raise ValueError(f"W must be a (d, k) matrix, got shape {tuple(self.W.shape)}")
        if self.b.shape != (self.W.shape[0],):
            raise ValueError(f"b must have shape (d,) = ({self.W.shape[0]},) to match W, "
                             f"got {tuple(self.b.shape)}")
        if not self.s > 0:
            raise ValueError(f"the noise standard deviation s must be positive, got {self.s}")

    @property
    def d(self) -> int:
        return self.W.shape[0]

    @property
    def k(self) -> int:
        return self.W.shape[1]

    # ------------------------------------------------------------------ the generative model
    def sample(self, n: int, generator: torch.Generator | None = None):
        """Ancestral sampling: z ~ P(z), then x ~ P(x | z). Returns (z (n, k), x (n, d))."""
        z = torch.randn(n, self.k, generator=generator, dtype=self.W.dtype)
        noise = torch.randn(n, self.d, generator=generator, dtype=self.W.dtype)
        return z, z @ self.W.T + self.b + self.s * noise

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I): (..., k) -> (...)."""
        return -0.5 * (z**2).sum(-1) - 0.5 * self.k * LOG_2PI

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; W z + b, s² I); x (..., d) and z (..., k) broadcast against each other."""
        if x.dim() == 1 and z.dim() == 2 and len(z) > _BLOCK:
            # many codes for one x: the same numbers, row by row, computed in blocks of rows,
            # several times faster than through (n, d) temporaries that do not fit the cache
            return torch.cat([self.log_likelihood(x, block) for block in z.split(_BLOCK)])
        residual = x - z @ self.W.T - self.b
        return -0.5 * (residual**2).sum(-1) / self.s**2 - 0.5 * self.d * (LOG_2PI + 2 * math.log(self.s))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log P(x, z) = log P(x | z) + log P(z)."""
        return self.log_likelihood(x, z) + self.log_prior(z)

    # ------------------------------------------------------------------ exact inference
    def evidence(self) -> MultivariateNormal:
        """P(x) = N(b, W Wᵀ + s² I): x = W z + b + s ε is linear in Gaussians."""
        noise = self.s**2 * torch.eye(self.d, dtype=self.W.dtype)
        return MultivariateNormal(self.b, self.W @ self.W.T + noise)

    def log_evidence(self, x: torch.Tensor) -> torch.Tensor:
        """log P(x): (..., d) -> (...)."""
        return self.evidence().log_prob(x)

    def posterior_cov(self) -> torch.Tensor:
        """Σ_post = (I + WᵀW / s²)⁻¹, the same for every x: (k, k)."""
        eye = torch.eye(self.k, dtype=self.W.dtype)
        return torch.linalg.inv(eye + self.W.T @ self.W / self.s**2)

    def posterior_mean(self, x: torch.Tensor) -> torch.Tensor:
        """m_post = Σ_post Wᵀ (x − b) / s², linear in x: (..., d) -> (..., k)."""
        return (x - self.b) @ (self.posterior_cov() @ self.W.T).T / self.s**2

    def posterior(self, x: torch.Tensor) -> MultivariateNormal:
        """P(z | x) = N(m_post, Σ_post), by completing the square in log P(x | z) + log P(z)."""
        return MultivariateNormal(self.posterior_mean(x), self.posterior_cov())

    # ------------------------------------------------------------------ the ELBO of a Gaussian Q
    def expected_log_likelihood(self, x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """E_{z ~ N(mu, cov)} log P(x | z), in closed form: the squared error of the mean decoding
        plus tr(W cov Wᵀ), the spread the decoder sees from Q's uncertainty. Returns (...)."""
        residual = x - mu @ self.W.T - self.b
        spread = (cov * (self.W.T @ self.W)).sum((-2, -1))             # tr(W cov Wᵀ), cov symmetric
        return (-0.5 * ((residual**2).sum(-1) + spread) / self.s**2
                - 0.5 * self.d * (LOG_2PI + 2 * math.log(self.s)))

    def elbo(self, x: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """The ELBO of Q(z | x) = N(mu, cov): E_Q log P(x | z) − KL(Q ‖ P(z)), in closed form.
        Differentiable in mu and cov, so an encoder can be trained on it. Returns (...)."""
        return self.expected_log_likelihood(x, mu, cov) - kl_to_standard_normal(mu, cov)

    def with_diagonal_posterior(self) -> "LinearGaussian":
        """The same evidence P(x) with an uncorrelated posterior: W R for the rotation R that
        makes (W R)ᵀ(W R) diagonal. P(x) depends on W only through W Wᵀ = (W R)(W R)ᵀ, so no
        likelihood can tell the two decoders apart; the ELBO of a diagonal Q can."""
        _, rotation = torch.linalg.eigh(self.W.T @ self.W)
        return LinearGaussian(self.W @ rotation, self.b, self.s)


# ---------------------------------------------------------------------- Gaussian helpers
def kl_to_standard_normal(mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, cov) ‖ N(0, I)) = ½ (tr cov + ‖mu‖² − k − log det cov): (...)."""
    k = mu.shape[-1]
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1)
    return 0.5 * (trace + (mu**2).sum(-1) - k - torch.logdet(cov))


def best_diagonal_cov(cov: torch.Tensor) -> torch.Tensor:
    """The covariance of the diagonal Gaussian Q that minimises KL(Q ‖ N(m, cov)) (same mean):
    the inverse of the diagonal of the precision matrix. It is narrower than cov's own diagonal
    whenever the coordinates are correlated (mode-seeking)."""
    return torch.diag_embed(1 / torch.linalg.inv(cov).diagonal(dim1=-2, dim2=-1))


def gaussian_entropy(cov: torch.Tensor) -> torch.Tensor:
    """H[N(m, cov)] = ½ log det(2πe cov), in nats."""
    k = cov.shape[-1]
    return 0.5 * (k * (LOG_2PI + 1) + torch.logdet(cov))


def log_mean_exp(log_w: torch.Tensor, group: int) -> torch.Tensor:
    """Split log weights (n,) into groups of `group` and return log((1/group) Σ w) per group,
    computed with logsumexp: the importance-weighted bound's estimates, one per group. (n / group,)"""
    if log_w.dim() != 1 or len(log_w) % group:
        raise ValueError(f"need a 1-d tensor whose length is a multiple of {group}, got {tuple(log_w.shape)}")
    return torch.logsumexp(log_w.view(-1, group), dim=1) - math.log(group)


# ---------------------------------------------------------------------- amortised inference, data
def kl_decomposition(A: torch.Tensor, c: torch.Tensor, cov: torch.Tensor, data: MultivariateNormal):
    """The average KL term of a linear Gaussian encoder Q(z | x) = N(A x + c, cov) over Gaussian
    data x ~ N(m, C), split as in Hoffman & Johnson (2016):

        E_x KL(Q(z|x) ‖ N(0, I)) = I(x; z) + KL(q(z) ‖ N(0, I)),

    where q(z) = E_x Q(z | x) = N(A m + c, A C Aᵀ + cov) is the aggregate posterior and
    I(x; z) = ½ log det(A C Aᵀ + cov) − ½ log det cov the mutual information of the pair.
    Every term is exact here. Returns (expected_kl, mutual_information, marginal_kl)."""
    m, C = data.loc, data.covariance_matrix
    mean_mu = A @ m + c
    expected_kl = 0.5 * (torch.trace(cov) + mean_mu @ mean_mu + torch.trace(A @ C @ A.T)
                         - len(c) - torch.logdet(cov))
    q_cov = A @ C @ A.T + cov
    mutual_information = 0.5 * (torch.logdet(q_cov) - torch.logdet(cov))
    return expected_kl, mutual_information, kl_to_standard_normal(mean_mu, q_cov)


def fit_maximum_likelihood(x: torch.Tensor, k: int, s: float | None = None) -> LinearGaussian:
    """The maximum-likelihood linear-Gaussian model of data x (n, d), in closed form (Tipping &
    Bishop 1999): b is the data mean; with λ_1 ≥ … ≥ λ_d the eigenvalues of the data covariance
    and U their eigenvectors, W = U_k (Λ_k − s² I)₊^{1/2}. With s=None, s² is also fitted, as
    the mean of the d − k discarded eigenvalues. A direction whose variance λ_j is at most s²
    gets a zero column: that latent coordinate is unused and its posterior equals the prior
    (posterior collapse in a linear VAE, Lucas et al. 2019)."""
    n, d = x.shape
    if not 1 <= k <= d:
        raise ValueError(f"k must be between 1 and the data dimension {d}, got {k}")
    if s is None and k == d:
        raise ValueError("fitting s needs k < d: s² is the mean variance of the discarded directions")
    b = x.mean(0)
    eigvals, eigvecs = torch.linalg.eigh(torch.cov(x.T, correction=0))
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)                 # largest first
    s2 = eigvals[k:].mean().item() if s is None else s**2
    W = eigvecs[:, :k] * (eigvals[:k] - s2).clamp(min=0).sqrt()
    return LinearGaussian(W, b, math.sqrt(s2))


def gaussian_cross_entropy(data: MultivariateNormal, model: MultivariateNormal) -> torch.Tensor:
    """−E_{x ~ data} log model(x), exact for two Gaussians N(m, C) (data) and N(μ, Σ) (model):
    ½ [d log 2π + log det Σ + tr(Σ⁻¹ C) + (m − μ)ᵀ Σ⁻¹ (m − μ)]. It is what the average
    negative log-likelihood of the model tends to on ever more draws from the data."""
    m, C = data.loc, data.covariance_matrix
    mu, Sigma = model.loc, model.covariance_matrix
    diff = m - mu
    return 0.5 * (len(m) * LOG_2PI + torch.logdet(Sigma) + torch.trace(torch.linalg.solve(Sigma, C))
                  + diff @ torch.linalg.solve(Sigma, diff))
