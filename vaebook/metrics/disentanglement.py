"""Disentanglement scores against ground-truth factors: the Mutual Information Gap (Chen et al.
2018) with two estimators, and the FactorVAE score (Kim & Mnih 2018).

Scores depend on how they are estimated, so the conventions are named:

- MI between a latent dimension and a factor is the plug-in estimate on a 2-D histogram. Each
  latent dimension, and each continuous factor, is cut into `bins` equal-width bins over *its own*
  [min, max] (:func:`discretize`); categorical factors keep their classes.
- The latent value is either the posterior mean E_q[z_j|x] (disentanglement_lib's convention) or
  one sample of q(z_j|x) per image (Chen et al. use q(z_j|x)). With means, a dimension the model
  does not use (KL ≈ 0, mean wiggling by 1e-3 around 0) is stretched to fill all bins, and can show
  more "MI" with a factor than its KL allows: I(v; z_j) ≤ I(x; z_j) ≤ E_x KL(q(z_j|x) ‖ p(z_j)) holds
  for the sampled code, not for the mean (:func:`mi_against_kl` shows it).
- The plug-in estimate is biased upwards by about (bins_z − 1)(bins_v − 1) / (2N) nats.

Shapes: N images, L latent dims, F factors.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch

from .batching import batched
from ..losses import kl_per_dimension


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ----------------------------------------------------------------------------- MI and MIG
def discretize(values, bins: int = 20) -> np.ndarray:
    """(N,) or (N, D) -> int64 codes in 0..bins-1: equal-width bins on each column's own [min, max]
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


def factor_codes(factors, levels, bins: int = 20) -> np.ndarray:
    """(N, F) -> (N, F) int64: continuous factors (levels 0) binned like latents, classes kept."""
    f = _numpy(factors)
    return np.stack([discretize(f[:, j], bins) if k == 0 else f[:, j].round().astype(np.int64)
                     for j, k in enumerate(levels)], axis=1)


def mutual_info_matrix(latents, factors, levels, bins: int = 20) -> np.ndarray:
    """(N, L) codes, (N, F) factors -> (F, L): I(v_k; z_j) in nats, both discretised."""
    z, v = discretize(latents, bins), factor_codes(factors, levels, bins)
    return np.array([[mutual_info_discrete(v[:, k], z[:, j]) for j in range(z.shape[1])]
                     for k in range(v.shape[1])])


def mig(latents, factors, levels, bins: int = 20):
    """Mutual Information Gap (Chen et al. 2018) of codes (N, L) against true factors (N, F).

    For each factor v_k: the MI with every (discretised) latent dim, and the gap between the largest
    and the second largest, divided by H(v_k): 1 when one dim alone captures the factor, 0 when two
    dims share it. Returns (MIG = mean gap over factors with H > 0, gaps (F,) with nan for constant
    factors, MI (F, L)). Which codes to pass (means or samples) is the caller's choice; see
    :func:`posterior_codes`."""
    mi = mutual_info_matrix(latents, factors, levels, bins)
    v = factor_codes(factors, levels, bins)
    gaps = np.full(mi.shape[0], np.nan)
    for k in range(mi.shape[0]):
        h = entropy_discrete(v[:, k])
        if h > 0:
            top = np.sort(mi[k])[::-1]
            gaps[k] = (top[0] - (top[1] if len(top) > 1 else 0.0)) / h
    score = float(np.nanmean(gaps)) if np.isfinite(gaps).any() else math.nan
    return score, gaps, mi


ESTIMATORS = ("mean", "sample")


def posterior_codes(mu: torch.Tensor, logvar: torch.Tensor, estimator: str = "mean", seed: int = 0):
    """(N, L) codes for MIG: the posterior means ("mean") or one seeded draw of q(z|x) per image
    ("sample")."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "mean":
        return mu
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return mu.double() + (0.5 * logvar.double()).exp() * eps


def mig_estimators(mu, logvar, factors, levels, bins: int = 20, seed: int = 0) -> dict[str, float]:
    """MIG with both estimators: {"mean": from posterior means, "sample": from one sample each}."""
    return {e: mig(posterior_codes(mu, logvar, e, seed), factors, levels, bins)[0] for e in ESTIMATORS}


def mi_against_kl(mu, logvar, factors, levels, bins: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Per latent dim (L,): its mean KL E_x KL(q(z_j|x) ‖ N(0, 1)) in nats, an upper bound on the
    information z_j carries about x and so about any factor, next to the largest MI with a factor
    measured from posterior means and from one sample. An idle dim's "MI" from means can exceed
    its KL: the means are not the code the decoder receives. The sampled estimate respects the
    bound up to the plug-in bias, about (bins − 1)²/(2N) nats for a binned factor (0.018 for 20
    bins and N = 10,000)."""
    kl = kl_per_dimension(mu.double(), logvar.double()).mean(0).numpy()
    mi = {e: mutual_info_matrix(posterior_codes(mu, logvar, e, seed), factors, levels, bins).max(0)
          for e in ESTIMATORS}
    return {"kl": kl, "mi_mean": mi["mean"], "mi_sample": mi["sample"]}


# ------------------------------------------------------------------------- FactorVAE score
class FactorVAEScore(NamedTuple):
    score: float              # accuracy of the majority-vote classifier on held-out votes
    train_accuracy: float     # its accuracy on the votes it was built from
    assignment: np.ndarray    # (L,) the factor each latent dim votes for (-1: never chosen, or idle)
    votes: np.ndarray         # (L, F) training votes: dim j had the least variance when factor k was fixed


class Interventions(NamedTuple):
    k: torch.Tensor        # (V,) the factor each vote holds fixed
    factors: torch.Tensor  # (V, B, F) the factors of its B inputs, all equal in factor k


def intervention_factors(sample: Callable, num_votes: int, batch_size: int = 64, seed: int = 0) -> Interventions:
    """Kim & Mnih's interventions: for each vote a factor k (uniform) and batch_size factor vectors
    drawn by sample(n, generator) -> (n, F), all given the first one's value of factor k."""
    g = torch.Generator().manual_seed(seed)
    f = sample(num_votes * batch_size, g).reshape(num_votes, batch_size, -1).clone()
    k = torch.randint(f.shape[2], (num_votes,), generator=g)
    rows = torch.arange(num_votes)
    f[rows, :, k] = f[rows, :1, k]
    return Interventions(k, f)


def least_variable_dims(codes: torch.Tensor, reference_codes: torch.Tensor, threshold: float = 0.05) -> torch.Tensor:
    """(V, B, L) codes of each vote's inputs -> (V,): the dim of least variance after dividing each
    dim by its std over `reference_codes` (N, L), codes of ordinary data (so units do not matter).
    Only dims whose standard deviation over the reference is at least `threshold` take part; the
    others are idle and never chosen (disentanglement_lib's `_prune_dims`: sqrt(variance) >=
    0.05). With no active dim at all, every vote is -1."""
    ref = reference_codes.double()
    active = ref.std(0) >= threshold
    if not bool(active.any()):
        return torch.full((codes.shape[0],), -1)
    variance = (codes.double() / ref.std(0).clamp(min=1e-12)).var(dim=1)
    return variance.masked_fill(~active, math.inf).argmin(dim=1)


def majority_vote(dims: torch.Tensor, k: torch.Tensor, num_dims: int, num_factors: int):
    """Training votes -> (counts (L, F), assignment (L,): each dim's most frequent factor, -1 if none)."""
    counts = np.zeros((num_dims, num_factors), dtype=np.int64)
    chosen = _numpy(dims) >= 0
    np.add.at(counts, (_numpy(dims)[chosen], _numpy(k)[chosen]), 1)
    return counts, np.where(counts.sum(1) > 0, counts.argmax(1), -1)


def factor_vae_score(train_codes: torch.Tensor, train_k: torch.Tensor, eval_codes: torch.Tensor,
                     eval_k: torch.Tensor, reference_codes: torch.Tensor, num_factors: int,
                     threshold: float = 0.05) -> FactorVAEScore:
    """The FactorVAE disentanglement score (Kim & Mnih 2018) from codes (V, B, L) of interventions.

    Each vote holds one factor k fixed over B inputs that vary in every other factor; the dim of
    least normalised variance (:func:`least_variable_dims`) is its vote. A dim that encodes factor
    k alone is still when k is fixed, so in a disentangled code each dim always votes with the same
    factor. The majority-vote classifier maps each dim to its most frequent factor in the training
    votes; the score is its accuracy on the evaluation votes. It reaches 1 only if each factor has
    a dim of its own: with fewer active dims than factors, some factors can never be predicted."""
    train_dims = least_variable_dims(train_codes, reference_codes, threshold)
    eval_dims = least_variable_dims(eval_codes, reference_codes, threshold)
    counts, assignment = majority_vote(train_dims, train_k, reference_codes.shape[1], num_factors)
    eval_dims, eval_k = _numpy(eval_dims), _numpy(eval_k)
    predicted = np.where(eval_dims >= 0, assignment[np.maximum(eval_dims, 0)], -1)
    train_accuracy = counts.max(1).sum() / max(len(train_dims), 1)
    return FactorVAEScore(float((predicted == eval_k).mean()), float(train_accuracy), assignment, counts)


# ------------------------------------------------------------------ interventions on the faces
def faces_sampler(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, F) factors from the faces dataset's own distribution: those of random indices far beyond
    its splits (every index has its own factors, see :func:`vaebook.data.faces.sample_factors`)."""
    from ..data.faces import sample_factors
    return sample_factors(torch.randint(2**40, 2**62, (n,), generator=g))


def render_interventions(interventions: Interventions, seed: int = 0) -> torch.Tensor:
    """(V, B, 3, 64, 64) uint8: the faces of the interventions, quantised like the dataset's, each
    with its own seeded background texture (independent of the factors, as in the dataset). Render
    once and encode with every model: the same interventions for all (common random numbers)."""
    from ..data.faces import render
    v, b, f = interventions.factors.shape
    factors = interventions.factors.reshape(v * b, f)
    noise = torch.randint(0, 2**62, (v * b,), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = [render(part, noise_seed=s).mul(255).round().to(torch.uint8)
                  for part, s in zip(factors.split(128), noise.split(128))]
    return torch.cat(images).reshape(v, b, *images[0].shape[1:])


def encode_interventions(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(V, B, 3, S, S) uint8 -> (V, B, L) posterior means, each batch turned into floats as the dataset
    does (× 1/255 in float32) just before encoding."""
    from .batching import mean_code
    flat_images = images.flatten(0, 1)
    codes = batched(model, lambda x: mean_code(model, x.float() * (1 / 255)), flat_images, batch_size)
    return codes.reshape(*images.shape[:2], -1)


class FacesInterventions(NamedTuple):
    train_k: torch.Tensor       # (V_train,) fixed factor of each training vote
    train_images: torch.Tensor  # (V_train, B, 3, 64, 64) uint8
    eval_k: torch.Tensor        # (V_eval,)
    eval_images: torch.Tensor   # (V_eval, B, 3, 64, 64) uint8
    num_factors: int


def faces_interventions(n_train: int = 300, n_eval: int = 200, batch_size: int = 64,
                        seed: int = 0) -> FacesInterventions:
    """Training and evaluation votes of the FactorVAE score on faces, rendered once (uint8) to be
    encoded by every model. 64 inputs per vote as in disentanglement_lib; fewer votes than its
    10,000 + 5,000, for time: with V_eval votes the score's standard error is at most ½/√V_eval."""
    train = intervention_factors(faces_sampler, n_train, batch_size, seed)
    evaluation = intervention_factors(faces_sampler, n_eval, batch_size, seed + 1)
    return FacesInterventions(train.k, render_interventions(train, seed), evaluation.k,
                              render_interventions(evaluation, seed + 1), train.factors.shape[2])


def faces_factor_vae_score(model, interventions: FacesInterventions, reference_codes: torch.Tensor,
                           threshold: float = 0.05) -> FactorVAEScore:
    """The FactorVAE score of `model` on rendered interventions; reference_codes (N, L) are its
    posterior means of ordinary test images (they set each dim's scale and which dims are idle)."""
    iv = interventions
    return factor_vae_score(encode_interventions(model, iv.train_images), iv.train_k,
                            encode_interventions(model, iv.eval_images), iv.eval_k,
                            reference_codes, iv.num_factors, threshold)
