"""Measure every cached model on the test split: the numbers the manifest records and the
chapters quote. ``python -m vaebook evaluate`` prints them as one table.

Every measurement is seeded and uses fixed subsets, so re-measuring a loaded checkpoint gives
the value in the manifest (a test checks this).
"""
from __future__ import annotations

import torch

from . import checkpoints, metrics
from .data import load_dataset, stack_images

N_FD = 5000        # images (and samples) per Fréchet distance
N_IWAE = 500       # test images for the importance-weighted bound
K_IWAE = 64        # importance samples per image
SEED = 1234


def test_set(limit: int | None = None):
    """The faces test split: (images (N, 3, 64, 64), factors (N, F), dataset)."""
    data = load_dataset("faces", "test", limit=limit)
    return stack_images(data), data.factors, data


def prior_samples(vae, n: int, seed: int = SEED) -> torch.Tensor:
    """Decode n draws z ~ N(0, I): the VAE's way of making new images."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, vae.config.latent_dim, generator=g)
    with torch.no_grad():
        return torch.cat([vae.decode(c) for c in z.split(500)])


def gaussian_samples(model, codes: torch.Tensor, n: int, per_dimension: bool = True, seed: int = SEED):
    """Decode n draws from a Gaussian fitted to encoded images: one mean and std for all
    dimensions (per_dimension=False), or one per dimension. Chapter 2's naive samplers."""
    g = torch.Generator().manual_seed(seed)
    if per_dimension:
        mean, std = codes.mean(0), codes.std(0)
    else:
        mean, std = codes.mean(), codes.std()
    z = mean + std * torch.randn(n, codes.shape[1], generator=g)
    with torch.no_grad():
        return torch.cat([model.decode(c) for c in z.split(500)])


def sample_fd(oracle, samples: torch.Tensor, reference_feats: torch.Tensor) -> float:
    return metrics.frechet_distance(metrics.oracle_features(oracle, samples), reference_feats)


def measure(name: str, model, oracle, images, factors, levels) -> dict:
    """The metrics that apply to `model` (a loaded checkpoint), on the test images."""
    kind = model.config.kind
    if kind == "oracle":
        scores = metrics.factor_readout(oracle, images, factors, levels)
        return {"test_readout_mean": round(float(sum(scores.values()) / len(scores)), 4)}
    torch.manual_seed(SEED)
    out = {"test_recon_mse": metrics.reconstruction_mse(model, images)}
    reference = metrics.oracle_features(oracle, images[:N_FD])
    if kind == "ae":
        codes = metrics.encode_means(model, images)
        out["sample_fd_global"] = sample_fd(oracle, gaussian_samples(model, codes, N_FD, False), reference)
        out["sample_fd"] = sample_fd(oracle, gaussian_samples(model, codes, N_FD, True), reference)
        return {k: float(f"{float(v):.7g}") for k, v in out.items()}
    sigma = model.record["train"]["sigma"]
    terms = metrics.elbo_terms(model, images, sigma, seed=SEED)
    out.update({"test_elbo": terms["elbo"], "test_recon_nll": terms["recon"], "test_kl": terms["kl"]})
    iwae = metrics.iwae_bound(model, images[:N_IWAE], sigma, K_IWAE, seed=SEED)
    out["test_iwae_nll"] = -float(iwae.mean())
    out["active_units"] = metrics.active_units(model, images)
    out["sample_fd"] = sample_fd(oracle, prior_samples(model, N_FD), reference)
    score, _, _ = metrics.mig(metrics.encode_means(model, images), factors, levels)
    out["mig"] = score
    return {k: float(f"{float(v):.7g}") for k, v in out.items()}


def evaluate_all(names=None, update: bool = False, limit: int | None = None) -> dict[str, dict]:
    """Measure each cached checkpoint (all of them by default); print one row per model."""
    manifest = checkpoints.read_manifest()
    names = names or [n for n in manifest if n != "oracle"] + (["oracle"] if "oracle" in manifest else [])
    oracle = checkpoints.load("oracle")
    levels = oracle.config.factor_levels
    images, factors, _ = test_set(limit)
    half = min(N_FD, len(images) // 2)
    data_fd = metrics.frechet_distance(metrics.oracle_features(oracle, images[:half]),
                                       metrics.oracle_features(oracle, images[half:2 * half]))
    results = {}
    for name in names:
        model = checkpoints.load(name)
        results[name] = measure(name, model, oracle, images, factors, levels)
        if update:
            checkpoints.update_metrics(name, results[name])
    print_table(results, data_fd)
    return results


def print_table(results: dict[str, dict], data_fd: float | None = None) -> None:
    cols = ["test_recon_mse", "test_elbo", "test_iwae_nll", "test_kl", "active_units", "sample_fd", "mig",
            "test_readout_mean"]
    print("test split of faces; test_elbo is the ELBO and test_iwae_nll the negative importance-weighted "
          f"bound (K={K_IWAE}), both in nats per image; sample_fd in the oracle's feature space")
    width = {c: max(12, len(c) + 2) for c in cols}
    first = max([len("model"), *map(len, results)]) + 1
    print(f"{'model':{first}s}" + "".join(f"{c:>{width[c]}s}" for c in cols))
    for name, m in results.items():
        cells = "".join(f"{m[c]:>{width[c]}.4g}" if c in m else f"{'-':>{width[c]}s}" for c in cols)
        print(f"{name:{first}s}{cells}")
    if data_fd is not None:
        print(f"(Fréchet distance between two halves of the test set, the floor: {data_fd:.4g})")
