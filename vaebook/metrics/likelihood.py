"""How likely a VAE finds test images: the ELBO, the importance-weighted bound, and both at a
decoder σ fitted on other images.

With a Gaussian decoder p(x|z) = N(x̂(z), σ² I) over D pixels, every bound needs only two numbers
per posterior sample z_k ~ q(z|x): the squared error ||x − x̂(z_k)||² and the log-ratio
log p(z_k) − log q(z_k|x). :func:`importance_samples` computes them once (the expensive part: one
decode per sample); the bounds at any σ then follow without decoding again:

- the ELBO, E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) (closed-form KL), :func:`elbo_at`;
- the importance-weighted bound L_K (Burda, Grosse & Salakhutdinov 2015), :func:`iwae_at`:
  log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x). It rises with K towards log p(x), so the gap
  L_K − ELBO is a lower bound on the gap log p(x) − ELBO = KL(q(z|x) ‖ p(z|x));
- :func:`elbo_optimal_sigma`: the σ that maximises the ELBO of a trained decoder,
  σ² = E ||x − x̂(z)||² / D (set the derivative of the ELBO in σ² to zero; the analytic shared σ
  of Rybkin, Daniilidis & Levine 2021). This one, not the σ maximising L_K, is what evaluate fits.

Why fit σ? At the σ a model was trained with, the constant (D/2) log(2πσ²) dominates: at σ = 0.6
it is about 5,015 of the ~5,100 nats per image, the same for every model with that σ. A σ fitted
on validation images, then used on disjoint test images, makes the bounds compare models.

Shapes: N images, K samples per image, L latent dims, D pixels per image (3·64·64 = 12,288).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .batching import device_of, encode_posteriors, evaluating, posterior_sample
from ..losses import LOG_2PI, kl_per_dimension


def gaussian_log_density(z: torch.Tensor, mu, logvar) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dim: (..., L) -> (...).
    mu and logvar broadcast against z (pass zeros for the prior N(0, I))."""
    mu, logvar = torch.as_tensor(mu, dtype=z.dtype), torch.as_tensor(logvar, dtype=z.dtype)
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


def log_weights(log_px_given_z: torch.Tensor, log_pz: torch.Tensor, log_qz: torch.Tensor) -> torch.Tensor:
    """Importance log-weights log w = log p(x|z) + log p(z) − log q(z|x), elementwise (e.g. (N, K))."""
    return log_px_given_z + log_pz - log_qz


def iwae_from_log_weights(log_w: torch.Tensor) -> torch.Tensor:
    """(N, K) -> (N,): log (1/K) Σ_k w_k, with logsumexp in float64
    (the w_k under- or overflow)."""
    return torch.logsumexp(log_w.double(), dim=1) - math.log(log_w.shape[1])


# ------------------------------------------------------------------- samples, then bounds at any σ
class ImportanceSamples(NamedTuple):
    sq_error: torch.Tensor   # (N, K) float64: ||x − x̂(z_k)||², summed over the D pixels
    log_ratio: torch.Tensor  # (N, K) float64: log p(z_k) − log q(z_k|x)
    kl: torch.Tensor         # (N,) float64: KL(q(z|x) ‖ p(z)) in closed form
    num_pixels: int          # D


def importance_samples(vae, images: torch.Tensor, k: int, batch_size: int = 200,
                       seed: int = 0) -> ImportanceSamples:
    """Draw K samples z_k ~ q(z|x) for each image (N, 3, S, S), decode each, keep what the bounds need.

    Sample k of every image comes from the k-th draw of one (N, L) noise tensor from a generator
    seeded with `seed`, so the first sample is the same for any K and any batch size: the ELBO
    of :func:`elbo_terms` and column 0 here share their z (common random numbers)."""
    if k < 1:
        raise ValueError(f"k must be at least 1 importance sample per image, got {k}")
    mu, logvar = (t.double() for t in encode_posteriors(vae, images, batch_size))
    g = torch.Generator().manual_seed(seed)
    device = device_of(vae)
    sq_error, log_ratio = torch.empty(len(images), k, dtype=torch.float64), torch.empty(len(images), k, dtype=torch.float64)
    with evaluating(vae):
        for j in range(k):
            z = posterior_sample(mu.float(), logvar.float(), g)              # (N, L)
            log_ratio[:, j] = gaussian_log_density(z.double(), 0.0, 0.0) - gaussian_log_density(z.double(), mu, logvar)
            for rows in torch.arange(len(images)).split(batch_size):
                x, x_hat = images[rows].to(device), vae.decode(z[rows].to(device))
                sq_error[rows, j] = ((x_hat.double() - x.double()) ** 2).flatten(1).sum(1).cpu()
    return ImportanceSamples(sq_error, log_ratio, kl_per_dimension(mu, logvar).sum(1), images[0].numel())


def log_px_given_z(samples: ImportanceSamples, sigma: float) -> torch.Tensor:
    """(N, K): log N(x; x̂(z_k), σ² I) = −||x − x̂||² / (2σ²) − (D/2) log(2πσ²)."""
    log_normaliser = 0.5 * samples.num_pixels * (LOG_2PI + 2 * math.log(sigma))
    return -samples.sq_error / (2 * sigma**2) - log_normaliser


def elbo_at(samples: ImportanceSamples, sigma: float) -> torch.Tensor:
    """(N,) float64: the ELBO of each image at decoder std σ, from its first sample z_0 and the
    closed-form KL: log p(x|z_0) − KL(q(z|x) ‖ p(z))."""
    return log_px_given_z(samples, sigma)[:, 0] - samples.kl


def iwae_at(samples: ImportanceSamples, sigma: float) -> torch.Tensor:
    """(N,) float64: the importance-weighted bound L_K of each image at decoder std σ."""
    return iwae_from_log_weights(log_weights(log_px_given_z(samples, sigma), samples.log_ratio, 0.0))


def iwae_grouped(samples: ImportanceSamples, sigma: float, k: int) -> torch.Tensor:
    """(N,) float64: L_k of each image at decoder std σ from K samples, k dividing K: the
    log-weights split into K/k groups of k, the bound of each group averaged over the groups
    (the same expectation as one group, less noise)."""
    log_w = log_weights(log_px_given_z(samples, sigma), samples.log_ratio, 0.0)
    return torch.stack([iwae_from_log_weights(group) for group in log_w.split(k, dim=1)]).mean(dim=0)


def elbo_optimal_sigma(samples: ImportanceSamples) -> float:
    """The σ maximising the mean ELBO over these samples: σ² = mean of ||x − x̂(z)||² / D over images,
    samples and pixels (the KL does not depend on σ). Fit it on images other than those it scores."""
    return math.sqrt(float(samples.sq_error.mean()) / samples.num_pixels)


def bits_per_dim(nll: float, num_pixels: int) -> float:
    """−log₂ p(x) / D on the 8-bit scale: nats per image -> bits per pixel value, plus 8 bits for
    stretching [0, 1] to [0, 256] (a flat density over the pixel range scores exactly 8).

    The faces are uint8 levels divided by 255, scored here without dequantisation (adding uniform
    noise within each level; Theis, van den Oord & Bethge 2016): a continuous density evaluated
    at 256 discrete values is not a probability of those values, and can grow without limit if
    the model concentrates on them. Compare such numbers between models of this book, not with
    published discrete likelihoods."""
    return nll / (num_pixels * math.log(2)) + 8.0


# ------------------------------------------------------------------------ the classic entry points
def elbo_terms(vae, images: torch.Tensor, sigma: float, batch_size: int = 200, seed: int = 0) -> dict:
    """Mean nats per image of the ELBO and its two parts, with a Gaussian decoder of std sigma:
    {"elbo": −recon − kl, "recon": E_q[−log p(x|z)] (one seeded z per image), "kl": KL(q ‖ p(z))
    (closed form)}. The z of each image is the first sample :func:`iwae_bound` draws with the same
    seed (for any K and batch size), so the two bounds differ by the extra samples, not by luck."""
    samples = importance_samples(vae, images, 1, batch_size, seed)
    recon = -log_px_given_z(samples, sigma)[:, 0]
    return {"elbo": float((-recon - samples.kl).mean()), "recon": float(recon.mean()),
            "kl": float(samples.kl.mean())}


def iwae_bound(vae, images: torch.Tensor, sigma: float, k: int,
               batch_size: int = 200, seed: int = 0) -> torch.Tensor:
    """(N, 3, S, S) -> (N,) float64: the importance-weighted bound of Burda et al. (2015),
    log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x) with z_k ~ q(z|x), p(x|z) = N(x̂, σ² I), p(z) = N(0, I).
    K = 1 is the ELBO (in expectation); it rises with K towards log p(x)."""
    return iwae_at(importance_samples(vae, images, k, batch_size, seed), sigma)


def bounds(samples: ImportanceSamples, sigma: float) -> dict:
    """Mean nats per image at decoder std σ: {"elbo", "iwae", "gap" = mean(L_K − ELBO), "gap_se"
    (its standard error over images), "bpd" (bits per dim of −L_K)}, all from the same samples."""
    elbo, iwae = elbo_at(samples, sigma), iwae_at(samples, sigma)
    gap = iwae - elbo
    return {"elbo": float(elbo.mean()), "iwae": float(iwae.mean()), "gap": float(gap.mean()),
            "gap_se": float(gap.std() / math.sqrt(len(gap))) if len(gap) > 1 else math.nan,
            "bpd": bits_per_dim(-float(iwae.mean()), samples.num_pixels)}
