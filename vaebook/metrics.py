"""Measurements of trained models: pure functions, no training, no plotting.

- reconstruction: :func:`reconstruction_mse`;
- likelihood: :func:`elbo_terms` and the tighter importance-weighted bound :func:`iwae_bound`
  (Burda, Grosse & Salakhutdinov 2015);
- use of the latent space: :func:`kl_per_dim`, :func:`latent_activity`, :func:`active_units`;
- sample quality: :func:`frechet_distance` (Heusel et al. 2017), measured in the oracle's feature
  space, since Inception weights are not available offline;
- what survives the bottleneck: :func:`factor_readout`, :func:`readout_loss`;
- disentanglement: the Mutual Information Gap :func:`mig` (Chen et al. 2018).

Models are run in eval mode (BatchNorm then uses its running statistics, so a score does not
depend on the batch size) and restored to their previous mode afterwards; images go through in
batches of ``batch_size`` on the model's device, results come back on the CPU.
Shapes: N images, L latent dims, F factors, K importance samples, D pixels per image.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch

from .losses import LOG_2PI, gaussian_nll, kl_per_dimension, negative_elbo


# ------------------------------------------------------------------------------------- plumbing
@contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode and no gradients inside the block; the model's previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def _device(model: torch.nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def batched(model, fn, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """torch.cat of fn(batch) over batches of images (N, ...), model in eval mode, on the CPU."""
    device = _device(model)
    with evaluating(model):
        return torch.cat([fn(x.to(device)).cpu() for x in images.split(batch_size)])


def _mean_code(model, x: torch.Tensor) -> torch.Tensor:
    """The deterministic code of x: mu for a VAE (encode returns (z, mu, logvar)), h for an AE."""
    out = model.encode(x)
    return out[1] if isinstance(out, tuple) else out


def encode_means(model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, 3, S, S) -> (N, L): posterior means E_q[z|x] for a VAE, codes h for an autoencoder."""
    return batched(model, lambda x: _mean_code(model, x), images, batch_size)


def fit_gaussian(z: torch.Tensor):
    """(N, L) -> mean (L,), covariance (L, L) (unbiased), in z's dtype (computed in float64)."""
    z64 = z.double()
    return z64.mean(0).to(z.dtype), torch.cov(z64.T).reshape(z.shape[1], z.shape[1]).to(z.dtype)


def feature_stats(feats: torch.Tensor):
    """(N, L) -> mean (L,), covariance (L, L), in float64: the statistics the Fréchet distance uses."""
    return fit_gaussian(feats.double())


# ------------------------------------------------------------------------------- reconstruction
def reconstruction_mse(model, images: torch.Tensor, batch_size: int = 500) -> float:
    """Mean squared error per pixel over images (N, 3, S, S), decoding the mean code (mu, not a
    sample, for a VAE): how much the deterministic encode-decode round trip loses."""
    def sse(x):
        return ((model.decode(_mean_code(model, x)) - x).double() ** 2).sum().reshape(1)
    return float(batched(model, sse, images, batch_size).sum() / images.numel())


# ---------------------------------------------------------------------------------- likelihoods
def gaussian_log_density(z: torch.Tensor, mu, logvar) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim: (..., L) -> (...).
    mu and logvar broadcast against z (pass zeros for the prior N(0, I))."""
    mu, logvar = torch.as_tensor(mu, dtype=z.dtype), torch.as_tensor(logvar, dtype=z.dtype)
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


def log_weights(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """Importance log-weights log w = log p(x|z) + log p(z) − log q(z|x), elementwise (e.g. (N, K))."""
    return log_px_given_z + log_pz - log_qz


def iwae_from_log_weights(log_w: torch.Tensor) -> torch.Tensor:
    """(N, K) -> (N,): log (1/K) Σ_k w_k, with logsumexp in float64 (the w_k under- or overflow)."""
    return torch.logsumexp(log_w.double(), dim=1) - math.log(log_w.shape[1])


def _posterior_sample(mu: torch.Tensor, logvar: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """z = mu + sigma * eps, eps drawn from generator g on the CPU (so a seed means the same z anywhere)."""
    eps = torch.randn(mu.shape, generator=g).to(mu.device, mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


def elbo_terms(vae, images: torch.Tensor, sigma: float, batch_size: int = 500, seed: int = 0) -> dict:
    """Mean nats per image of the ELBO and its two parts, with a Gaussian decoder of std sigma:
    {"elbo": −recon − kl, "recon": E_q[−log p(x|z)] (one seeded z per image), "kl": KL(q ‖ p(z))
    (closed form)}. Same seed and batch size as :func:`iwae_bound` = the same first z."""
    g = torch.Generator().manual_seed(seed)

    def terms(x):
        _, mu, logvar = vae.encode(x)
        x_hat = vae.decode(_posterior_sample(mu, logvar, g))
        loss, recon, kl = negative_elbo(x_hat.double(), x.double(), mu.double(), logvar.double(), sigma=sigma)
        return torch.stack([-loss, recon, kl], dim=1)

    means = batched(vae, terms, images, batch_size).mean(0)
    return {"elbo": float(means[0]), "recon": float(means[1]), "kl": float(means[2])}


def iwae_bound(vae, images: torch.Tensor, sigma: float, k: int,
               batch_size: int = 500, seed: int = 0) -> torch.Tensor:
    """(N, 3, S, S) -> (N,) float64: the importance-weighted bound of Burda et al. (2015),
    log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) with z_k ~ q(z|x), p(x|z) = N(x̂, σ² I), p(z) = N(0, I).
    K = 1 is the ELBO (in expectation); it rises with K towards log p(x)."""
    g = torch.Generator().manual_seed(seed)

    def bound(x):
        _, mu, logvar = vae.encode(x)
        columns = []
        for _ in range(k):  # one decode of B images per sample keeps memory at one batch
            z = _posterior_sample(mu, logvar, g)
            log_px = -gaussian_nll(vae.decode(z).double(), x.double(), sigma)
            z, mu64, logvar64 = z.double(), mu.double(), logvar.double()
            columns.append(log_weights(log_px, gaussian_log_density(z, 0.0, 0.0),
                                       gaussian_log_density(z, mu64, logvar64)))
        return iwae_from_log_weights(torch.stack(columns, dim=1))

    return batched(vae, bound, images, batch_size)


# ------------------------------------------------------------------------------ latent activity
def kl_per_dim(vae, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(L,): KL(q(z_u|x) ‖ N(0, 1)) of each latent dim, averaged over the images (closed form).
    A dim with KL ≈ 0 carries no information about x: posterior collapse."""
    def kl(x):
        _, mu, logvar = vae.encode(x)
        return kl_per_dimension(mu.double(), logvar.double())
    return batched(vae, kl, images, batch_size).mean(0)


def latent_activity(vae, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(L,) float64: A_u = Var_x(E_q[z_u|x]), how much each posterior mean moves across the data."""
    return encode_means(vae, images, batch_size).double().var(0, correction=0)


def active_units(vae, images: torch.Tensor, threshold: float = 0.01, batch_size: int = 500) -> int:
    """Number of latent dims with A_u > threshold (Burda et al. 2015 use 0.01): the dims in use."""
    return int((latent_activity(vae, images, batch_size) > threshold).sum())


# ---------------------------------------------------------------------------- Fréchet distance
def oracle_features(oracle, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """(N, 3, S, S) -> (N, L): the oracle's features, the space the Fréchet distance lives in."""
    return batched(oracle, oracle.features, images, batch_size)


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues clamped to 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_from_stats(m_a, s_a, m_b, s_b) -> float:
    """||m_a − m_b||² + Tr(S_a + S_b − 2 (S_a S_b)^½): the 2-Wasserstein distance² between two
    Gaussians. Tr (S_a S_b)^½ = Σ sqrt(eig(S_a^½ S_b S_a^½)), a symmetric PSD matrix with the same
    eigenvalues as S_a S_b, so symmetric eigendecompositions suffice (no scipy.linalg.sqrtm)."""
    m_a, s_a, m_b, s_b = (torch.as_tensor(t, dtype=torch.float64) for t in (m_a, s_a, m_b, s_b))
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


def factor_readout(oracle, images, factors, levels, names=None, batch_size: int = 500) -> OrderedDict:
    """How well the oracle reads each ground-truth factor off these images (N, 3, S, S), given the
    true factors (N, F): {name: R² or accuracy}, in factor order (names default to factor_j)."""
    names = names or [f"factor_{j}" for j in range(factors.shape[1])]
    predictions = batched(oracle, oracle.predict, images, batch_size)
    return OrderedDict(zip(names, readout_scores(predictions, factors, levels)))


class ReadoutRow(NamedTuple):
    name: str
    kind: str            # "R2" (continuous factor) or "accuracy" (categorical)
    original: float      # score on the original images
    reconstructed: float  # score on their reconstructions
    drop: float          # original − reconstructed: what the bottleneck lost


def readout_loss(oracle, originals, reconstructions, factors, names, levels,
                 batch_size: int = 500) -> list[ReadoutRow]:
    """Per factor, the oracle's score on the originals and on their reconstructions, and the drop:
    which factors survive the bottleneck and which it throws away."""
    before = factor_readout(oracle, originals, factors, levels, names, batch_size)
    after = factor_readout(oracle, reconstructions, factors, levels, names, batch_size)
    return [ReadoutRow(n, "R2" if k == 0 else "accuracy", before[n], after[n], before[n] - after[n])
            for n, k in zip(before, levels)]


# ----------------------------------------------------------------------- mutual information, MIG
def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def discretize(values, bins: int = 20) -> np.ndarray:
    """(N,) or (N, D) -> int64 codes in 0..bins-1: equal-width bins on each column's [min, max]
    (a constant column gets code 0)."""
    v = _numpy(values).astype(np.float64)
    lo, width = v.min(0), v.max(0) - v.min(0)
    scaled = np.divide(v - lo, width, out=np.zeros_like(v), where=width > 0)
    return np.minimum((scaled * bins).astype(np.int64), bins - 1)


def entropy_discrete(a) -> float:
    """H(a) in nats of the empirical distribution of integer codes (N,)."""
    p = np.unique(_numpy(a), return_counts=True)[1] / len(a)
    return float(-(p * np.log(p)).sum())


def mutual_info_discrete(a, b) -> float:
    """I(a; b) = Σ p(a, b) log p(a, b) / (p(a) p(b)) in nats, for two integer-coded arrays (N,)."""
    ia = np.unique(_numpy(a), return_inverse=True)[1].ravel()
    ib = np.unique(_numpy(b), return_inverse=True)[1].ravel()
    nb = ib.max() + 1
    joint = np.bincount(ia * nb + ib, minlength=(ia.max() + 1) * nb).reshape(-1, nb) / len(ia)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mig(latents, factors, levels, bins: int = 20):
    """Mutual Information Gap (Chen et al. 2018) of codes (N, L) against true factors (N, F).

    For each factor v_k: the MI with every (discretised) latent dim, and the gap between the largest
    and the second largest, divided by H(v_k): 1 when one dim alone captures the factor, 0 when two
    dims share it. Continuous factors (levels 0) are discretised into `bins`. Returns
    (MIG = mean gap over factors with H > 0, gaps (F,) with nan for constant factors, MI (F, L))."""
    z = discretize(latents, bins)
    f = _numpy(factors)
    mi = np.zeros((f.shape[1], z.shape[1]))
    gaps = np.full(f.shape[1], np.nan)
    for j, k in enumerate(levels):
        v = discretize(f[:, j], bins) if k == 0 else f[:, j].round().astype(np.int64)
        mi[j] = [mutual_info_discrete(v, z[:, u]) for u in range(z.shape[1])]
        h = entropy_discrete(v)
        if h > 0:
            top = np.sort(mi[j])[::-1]
            gaps[j] = (top[0] - (top[1] if len(top) > 1 else 0.0)) / h
    score = float(np.nanmean(gaps)) if np.isfinite(gaps).any() else math.nan
    return score, gaps, mi
