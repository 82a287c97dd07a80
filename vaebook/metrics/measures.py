"""Measurements of trained models: pure functions, no training, no plotting. One import for all:
``from vaebook import metrics`` gives this module's functions and those of its companions.

- reconstruction: :func:`reconstruction_mse`;
- use of the latent space: :func:`kl_per_dim`, :func:`latent_activity`, :func:`active_units`;
- sample quality: :func:`frechet_distance` (Heusel et al. 2017), measured in the oracle's feature
  space, since Inception weights are not available offline;
- what survives the bottleneck: :func:`factor_readout`, :func:`readout_loss`;
- likelihood (:mod:`vaebook.metrics.likelihood`): :func:`elbo_terms`, the importance-weighted bound
  :func:`iwae_bound` (Burda, Grosse & Salakhutdinov 2015), both at a σ fitted on other images,
  bits per dimension;
- the aggregate posterior (:mod:`vaebook.metrics.aggregate`): :func:`elbo_surgery` (Hoffman & Johnson 2016);
- disentanglement (:mod:`vaebook.metrics.disentanglement`): the Mutual Information Gap :func:`mig` (Chen et
  al. 2018) from posterior means or samples, the FactorVAE score :func:`factor_vae_score`.

Models are run in eval mode (BatchNorm then uses its running statistics, so a score does not
depend on the batch size) and restored to their previous mode afterwards; images go through in
batches of ``batch_size`` on the model's device, results come back on the CPU
(:mod:`vaebook.metrics.batching`). Shapes: N images, L latent dims, F factors.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import contextmanager
from typing import NamedTuple

import torch

from .aggregate import Surgery, elbo_surgery, log_aggregate_density, log_density_matrix
from .batching import (batched, decode, encode_means, encode_posteriors, evaluating, mean_code,
                       posterior_sample)
from .disentanglement import (FactorVAEScore, Interventions, discretize, encode_interventions, entropy_discrete,
                              factor_vae_score, faces_factor_vae_score, faces_interventions, faces_sampler,
                              FacesInterventions, intervention_factors, least_variable_dims,
                              majority_vote, mi_against_kl, mig, mig_estimators, mutual_info_discrete,
                              mutual_info_matrix, posterior_codes, render_interventions)
from .likelihood import (ImportanceSamples, bits_per_dim, bounds, elbo_at, elbo_optimal_sigma, elbo_terms,
                         gaussian_log_density, importance_samples, iwae_at, iwae_bound, iwae_from_log_weights,
                         iwae_grouped, log_weights)
from ..losses import kl_per_dimension

__all__ = [  # this module's own functions, then those it gathers from its companions
    "fit_gaussian", "feature_stats", "reconstruction_mse", "kl_per_dim", "latent_activity", "count_active", "active_units",
    "oracle_features", "one_thread", "frechet_from_stats", "frechet_distance", "readout_scores", "factor_readout",
    "ReadoutRow", "readout_loss", "principal_directions",
    "Surgery", "elbo_surgery", "log_aggregate_density", "log_density_matrix",
    "batched", "decode", "encode_means", "encode_posteriors", "evaluating", "mean_code", "posterior_sample",
    "FactorVAEScore", "Interventions", "discretize", "encode_interventions", "entropy_discrete",
    "factor_vae_score", "faces_factor_vae_score", "faces_interventions", "FacesInterventions",
    "faces_sampler", "intervention_factors", "least_variable_dims", "majority_vote",
    "mi_against_kl", "mig", "mig_estimators", "mutual_info_discrete", "mutual_info_matrix", "posterior_codes",
    "render_interventions",
    "ImportanceSamples", "bits_per_dim", "bounds", "elbo_at", "elbo_optimal_sigma", "elbo_terms",
    "gaussian_log_density", "importance_samples", "iwae_at", "iwae_bound", "iwae_from_log_weights",
    "iwae_grouped",
    "log_weights",
]


def fit_gaussian(z: torch.Tensor):
    """(N, L) -> mean (L,), covariance (L, L) (unbiased), in z's dtype (computed in float64)."""
    z64 = z.double()
    return z64.mean(0).to(z.dtype), torch.cov(z64.T).reshape(z.shape[1], z.shape[1]).to(z.dtype)


def feature_stats(feats: torch.Tensor):
    """(N, L) -> mean (L,), covariance (L, L), in float64: the statistics the Fréchet distance uses."""
    return fit_gaussian(feats.double())


# ------------------------------------------------------------------------------- reconstruction
def reconstruction_mse(model, images: torch.Tensor, batch_size: int = 200) -> float:
    """Mean squared error per pixel over images (N, 3, S, S), decoding the mean code (mu, not a
    sample, for a VAE): how much the deterministic encode-decode round trip loses."""
    def sse(x):
        return ((model.decode(mean_code(model, x)) - x).double() ** 2).sum().reshape(1)
    return float(batched(model, sse, images, batch_size).sum() / images.numel())


def principal_directions(images: torch.Tensor, k: int, block: int = 64, tol: float = 1e-6,
                         max_blocks: int = 50, seed: int = 0):
    """PCA of images (N, ...) run to convergence: their mean (D,) and first k principal
    directions (k, D), orthonormal rows. The best linear autoencoder through k numbers on these
    images (Baldi & Hornik 1989) encodes h = W (x - mean) and decodes mean + Wᵀ h.

    Block Krylov iteration on the centred images X: a random block of `block` directions
    XᵀΩ, then (XᵀX) applied to the newest block again and again, each new block made
    orthonormal to all the earlier ones (in float64); after each block, Rayleigh-Ritz on all
    the directions so far (the eigendecomposition of the small matrix (XQ)ᵀ(XQ)) gives the
    best k directions in their span. It stops when a new block raises the variance the top k
    capture by less than tol (relative): the optimum to that tolerance, where a randomised SVD
    with a fixed, small number of passes (torch.pca_lowrank) stops short of it. Keeping every
    block, not only the newest as subspace iteration does, converges in fewer products with X;
    each block costs two, and the D × D covariance is never formed. Nor is X: its products are
    those of the images less a rank-one term, X q = images q - 1 (meanᵀ q), which spares a copy
    of the images."""
    flat = images.reshape(len(images), -1)
    mean = flat.mean(dim=0)
    ones = flat.new_ones(len(flat), 1)

    def centred(q):                                                   # X q
        return flat @ q - ones @ (mean[None] @ q)

    def centred_t(p):                                                 # Xᵀ p
        return flat.T @ p - mean[:, None] @ p.sum(dim=0, keepdim=True)

    rank = min(len(flat) - 1, flat.shape[1])        # centring removes one dimension
    if not 0 < k <= min(rank, block * max_blocks):
        raise ValueError(f"{k} principal directions of {len(flat)} images of {flat.shape[1]} values")
    start = torch.randn(len(flat), min(block, rank), generator=torch.Generator().manual_seed(seed))
    new = centred_t(start.to(flat.dtype)).double()                    # (D, block)
    basis, products = [], []                # orthonormal blocks Q (D, b); X Q (N, b), float64
    gram = torch.zeros(0, 0, dtype=torch.float64)                     # (XQ)ᵀ(XQ)
    previous = 0.0
    for _ in range(max_blocks):
        for _ in range(2):                                            # twice is enough
            for q in basis:
                new -= q @ (q.T @ new)
        q = torch.linalg.qr(new).Q
        p = centred(q.to(flat.dtype)).double()
        cross = torch.cat([old.T @ p for old in products] + [gram.new_zeros(0, p.shape[1])])
        gram = torch.cat([torch.cat([gram, cross], 1), torch.cat([cross.T, p.T @ p], 1)])
        basis.append(q)
        products.append(p)
        width = len(gram)
        if width >= k:
            values, vectors = torch.linalg.eigh(gram)                 # Rayleigh-Ritz
            captured = values[-k:].sum().item()
            if captured - previous <= tol * captured or width == rank:
                break
            previous = captured
        new = centred_t(p[:, :min(block, rank - width)].to(flat.dtype)).double()
    top = vectors[:, -k:].flip(1)                                     # largest first
    return mean, (torch.cat(basis, 1) @ top).T.to(flat.dtype)


# ------------------------------------------------------------------------------ latent activity
def kl_per_dim(vae, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """(L,): KL(q(z_u|x) ‖ N(0, 1)) of each latent dim, averaged over the images (closed form).
    A dim with KL ≈ 0 carries no information about x: posterior collapse."""
    def kl(x):
        _, mu, logvar = vae.encode(x)
        return kl_per_dimension(mu.double(), logvar.double())
    return batched(vae, kl, images, batch_size).mean(0)


def latent_activity(vae, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """(L,) float64: A_u = Var_x(E_q[z_u|x]), how much each posterior mean moves across the data."""
    return encode_means(vae, images, batch_size).double().var(0, correction=0)


def count_active(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Number of columns of posterior means (N, L) with A_u = Var_x(mu_u) > threshold."""
    return int((means.double().var(0, correction=0) > threshold).sum())


def active_units(vae, images: torch.Tensor, threshold: float = 0.01, batch_size: int = 200) -> int:
    """Number of latent dims with A_u > threshold (Burda et al. 2015 use 0.01): the dims in use."""
    return count_active(encode_means(vae, images, batch_size), threshold)


# ---------------------------------------------------------------------------- Fréchet distance
def oracle_features(oracle, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """(N, 3, S, S) -> (N, L): the oracle's features, the space the Fréchet distance lives in."""
    return batched(oracle, oracle.features, images, batch_size)


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues clamped to 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp(min=0).sqrt()) @ v.T


@contextmanager
def one_thread():
    """Run the block on one CPU thread, then restore torch's thread count. For small dense linear
    algebra (the 128 × 128 eigendecompositions below): it gains nothing from threads, and on a
    busy machine LAPACK's threads wait for each other, so that a 2 ms eigh can take a second."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def frechet_from_stats(m_a, s_a, m_b, s_b) -> float:
    """||m_a − m_b||² + Tr(S_a + S_b − 2 (S_a S_b)^½): the 2-Wasserstein distance² between two
    Gaussians. Tr (S_a S_b)^½ = Σ sqrt(eig(S_a^½ S_b S_a^½)), a symmetric PSD matrix with the same
    eigenvalues as S_a S_b, so symmetric eigendecompositions suffice (no scipy.linalg.sqrtm)."""
    m_a, s_a, m_b, s_b = (torch.as_tensor(t, dtype=torch.float64) for t in (m_a, s_a, m_b, s_b))
    with one_thread():
        root_a = _sqrtm_psd(s_a)
        middle = root_a @ s_b @ root_a
        tr_sqrt = torch.linalg.eigvalsh(0.5 * (middle + middle.T)).clamp(min=0).sqrt().sum()
    fd = ((m_a - m_b) ** 2).sum() + s_a.trace() + s_b.trace() - 2 * tr_sqrt
    return max(float(fd), 0.0)  # float rounding can leave -1e-12 for identical sets


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance (Heusel et al. 2017) between Gaussians fitted to two feature sets (N_a, L),
    (N_b, L). Here the features are the oracle's, not Inception's: compare values within the book."""
    return frechet_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


# ------------------------------------------------------------------------------- factor readout
def readout_scores(predictions: torch.Tensor, factors: torch.Tensor, levels) -> list[float]:
    """(N, F), (N, F) -> one score per factor: R² = 1 − SSE/SST for a continuous factor (levels 0;
    nan if the factor is constant), accuracy for a categorical one (predictions are class codes)."""
    scores = []
    for pred, true, k in zip(predictions.double().T, factors.double().T, levels):
        if k == 0:
            sst = ((true - true.mean()) ** 2).sum()
            scores.append(float(1 - ((pred - true) ** 2).sum() / sst) if sst > 0 else math.nan)
        else:
            scores.append(float((pred.round() == true).double().mean()))
    return scores


def factor_readout(oracle, images, factors, levels, names=None, batch_size: int = 200) -> OrderedDict:
    """How well the oracle reads each ground-truth factor off these images (N, 3, S, S), or off
    their oracle features (N, L) when those are at hand, given the true factors (N, F):
    {name: R² or accuracy}, in factor order (names default to factor_j)."""
    names = names or [f"factor_{j}" for j in range(factors.shape[1])]
    predict = oracle.predict if images.dim() > 2 else oracle.predict_from_features
    predictions = batched(oracle, predict, images, batch_size)
    return OrderedDict(zip(names, readout_scores(predictions, factors, levels)))


class ReadoutRow(NamedTuple):
    name: str
    kind: str            # "R2" (continuous factor) or "accuracy" (categorical)
    original: float      # score on the original images
    reconstructed: float  # score on their reconstructions
    drop: float          # original − reconstructed: what the bottleneck lost


def readout_loss(oracle, originals, reconstructions, factors, names, levels,
                 batch_size: int = 200) -> list[ReadoutRow]:
    """Per factor, the oracle's score on the originals and on their reconstructions (images, or
    their oracle features), and the drop: which factors survive the bottleneck and which it
    throws away."""
    before = factor_readout(oracle, originals, factors, levels, names, batch_size)
    after = factor_readout(oracle, reconstructions, factors, levels, names, batch_size)
    return [ReadoutRow(n, "R2" if k == 0 else "accuracy", before[n], after[n], before[n] - after[n])
            for n, k in zip(before, levels)]
