"""Measure every cached model on the test split: the numbers the manifest records and the
chapters quote. ``python -m vaebook evaluate`` prints them as two tables.

Every measurement is seeded and uses fixed subsets, so re-measuring a loaded checkpoint gives
the value in the manifest (a test checks this). The metrics of a VAE, by name:

- likelihood, nats per image on the first N_LL test images, all from the same K_IWAE posterior
  samples per image: ``test_elbo`` (the ELBO, the first sample and the closed-form KL, split into
  ``test_recon_nll`` + ``test_kl``), ``test_iwae`` (the importance-weighted bound L_K) and
  ``test_iwae_gap`` = L_K − ELBO, a lower bound on how far the ELBO lies below log p(x), with its
  standard error over images ``test_iwae_gap_se``;
  ``test_bpd`` is −L_K in bits per dimension (8-bit scale, no dequantisation). These use the σ
  the model was trained with, whose constant (D/2)·log(2πσ²) makes them nearly equal for all
  models with one σ. ``fitted_sigma`` is the ELBO-optimal σ of the trained decoder, measured on
  N_VALID validation images; ``test_elbo_fitted``, ``test_iwae_fitted``, ``test_bpd_fitted`` are the
  same bounds at that σ, on the same test images. **Compare models with the fitted ones.** At the
  fitted σ (smaller than the training σ) the encoder's posteriors are too wide for the decoder,
  so the gap L_K − ELBO is large and still rising with K: both numbers are lower bounds on the
  same log-likelihood, the IWAE the tighter.
- latent space, on all test images: ``active_units``; ``kl_aggregate`` = KL(q(z) ‖ p(z)) and
  ``mutual_info`` = I(x; z) by ELBO surgery on the first N_SURGERY images (I ≤ log N_SURGERY).
- samples: ``sample_fd``, the Fréchet distance of prior samples to test images (oracle features).
- disentanglement: ``mig`` (from posterior means), ``mig_sampled`` (from one posterior sample per
  image), ``factor_vae`` (the FactorVAE score on freshly rendered interventions).
"""
from __future__ import annotations

import time

import torch

from ..models import ModelConfig
from ..store import checkpoints, files
from . import measures as metrics
from ..data.loading import load_dataset, stack_images
from .likelihood import bounds, elbo_optimal_sigma, importance_samples, log_px_given_z

N_FD = 5000         # images (and samples) per Fréchet distance
N_LL = 1000         # test images for the ELBO and the importance-weighted bound (the same images)
K_IWAE = 32         # importance samples per image (64 would add ~3 nats to β=16's gap of ~47, at twice the time)
N_VALID = 1000      # validation images to fit the decoder σ on (disjoint from the test images)
N_SURGERY = 2000    # test images whose posteriors make the aggregate posterior q(z)
FACTOR_VAE_VOTES = (300, 200)  # training and evaluation votes of the FactorVAE score, 64 images each
SEED = 1234


def test_set(limit: int | None = None):
    """The faces test split: (images (N, 3, 64, 64), factors (N, F), dataset)."""
    data = load_dataset("faces", "test", limit=limit)
    return stack_images(data), data.factors, data


def validation_images(n: int | None = None) -> torch.Tensor:
    """The first n (default N_VALID) images of the faces validation split: where σ is fitted,
    never scored."""
    return stack_images(load_dataset("faces", "valid", limit=n or N_VALID))


def prior_samples(vae, n: int, seed: int = SEED) -> torch.Tensor:
    """Decode n draws z ~ N(0, I) in eval mode: the VAE's way of making new images."""
    z = torch.randn(n, vae.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    return metrics.decode(vae, z)


def gaussian_samples(model, codes: torch.Tensor, n: int, per_dimension: bool = True, seed: int = SEED):
    """Decode n draws from a Gaussian fitted to encoded images: one mean and std for all
    dimensions (per_dimension=False), or one per dimension. Chapter 2's naive samplers."""
    g = torch.Generator().manual_seed(seed)
    if per_dimension:
        mean, std = codes.mean(0), codes.std(0)
    else:
        mean, std = codes.mean(), codes.std()
    return metrics.decode(model, mean + std * torch.randn(n, codes.shape[1], generator=g))


def sample_fd(oracle, samples: torch.Tensor, reference_feats: torch.Tensor) -> float:
    return metrics.frechet_distance(metrics.oracle_features(oracle, samples), reference_feats)


def likelihood_metrics(vae, images: torch.Tensor, valid: torch.Tensor) -> dict:
    """The bounds at the training σ and at the σ fitted on `valid`, on the first N_LL `images`."""
    sigma = vae.record["train"]["sigma"]
    samples = importance_samples(vae, images[:N_LL], K_IWAE, seed=SEED)
    fitted = elbo_optimal_sigma(importance_samples(vae, valid, 1, seed=SEED))
    at_train, at_fit = bounds(samples, sigma), bounds(samples, fitted)
    return {"test_elbo": at_train["elbo"], "test_recon_nll": -float(log_px_given_z(samples, sigma)[:, 0].mean()),
            "test_kl": float(samples.kl.mean()), "test_iwae": at_train["iwae"], "test_iwae_gap": at_train["gap"],
            "test_iwae_gap_se": at_train["gap_se"], "test_bpd": at_train["bpd"], "fitted_sigma": fitted, "test_elbo_fitted": at_fit["elbo"],
            "test_iwae_fitted": at_fit["iwae"], "test_bpd_fitted": at_fit["bpd"]}


def interventions() -> metrics.FacesInterventions:
    """The FactorVAE score's interventions, rendered once for all models."""
    n_train, n_eval = FACTOR_VAE_VOTES
    return metrics.faces_interventions(n_train, n_eval, seed=SEED)


def latent_metrics(vae, images, factors, levels, rendered: metrics.FacesInterventions) -> dict:
    """Active units, ELBO surgery, MIG (both estimators) and the FactorVAE score."""
    mu, logvar = metrics.encode_posteriors(vae, images)
    surgery = metrics.elbo_surgery(mu[:N_SURGERY], logvar[:N_SURGERY], seed=SEED)
    migs = metrics.mig_estimators(mu, logvar, factors, levels, seed=SEED)
    fvae = metrics.faces_factor_vae_score(vae, rendered, mu)
    return {"active_units": metrics.count_active(mu), "kl_aggregate": surgery.kl_aggregate,
            "mutual_info": surgery.mutual_info, "mig": migs["mean"], "mig_sampled": migs["sample"],
            "factor_vae": fvae.score}


def measure(name: str, model, oracle, images, factors, levels, valid=None, rendered=None) -> dict:
    """The metrics that apply to `model` (a loaded checkpoint), on the test images; a VAE's σ is
    fitted on `valid` (default: the first N_VALID validation images), its FactorVAE score uses the
    `rendered` interventions (default: :func:`interventions`)."""
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
    out.update(likelihood_metrics(model, images, validation_images() if valid is None else valid))
    out["sample_fd"] = sample_fd(oracle, prior_samples(model, N_FD), reference)
    out.update(latent_metrics(model, images, factors, levels, interventions() if rendered is None else rendered))
    return {k: float(f"{float(v):.7g}") for k, v in out.items()}


def checked_names(names=None) -> dict[str, str]:
    """{name: model kind} of the checkpoints to measure (default: all, the oracle last), each
    checked in the manifest before any data is loaded: unknown names are listed with the names
    that exist, and an entry without its weights file or model config is named."""
    folder = files.root_dir()
    manifest = files.read_manifest(folder, required=True)
    where = folder / files.MANIFEST
    unknown = [n for n in names or [] if n not in manifest]
    if unknown:
        raise files.CheckpointError(f"no checkpoint named {', '.join(map(repr, unknown))} in {where}; "
                                    f"it has: {', '.join(sorted(manifest)) or 'none'}")
    if "oracle" not in manifest:
        raise files.CheckpointError(f"{where} has no 'oracle', which every measurement needs; train it "
                                    "with `python -m vaebook train oracle --save`")
    names = names or [n for n in manifest if n != "oracle"] + ["oracle"]
    kinds = {}
    for name in dict.fromkeys([*names, "oracle"]):
        entry = manifest[name]
        problem = files.entry_problem(entry)
        try:
            kinds[name] = ModelConfig.from_dict(entry["model"]).kind if not problem else None
        except (KeyError, TypeError, ValueError) as e:
            problem = f"it has no valid 'model' field ({type(e).__name__}: {str(e)[:60]})"
        if problem:
            raise files.CheckpointError(f"the entry {name!r} in {where} is malformed: {problem}; "
                                        f"{files.restore_hint(folder, name)}")
    return {n: kinds[n] for n in names}


def evaluate_all(names=None, update: bool = False, limit: int | None = None) -> dict[str, dict]:
    """Measure each cached checkpoint (all of them by default); print the tables and the time per model."""
    kinds = checked_names(names)
    names = list(kinds)
    oracle = checkpoints.load("oracle")
    levels = oracle.config.factor_levels
    images, factors, _ = test_set(limit)
    any_vae = "vae" in kinds.values()
    valid, rendered = (validation_images(), interventions()) if any_vae else (None, None)
    half = min(N_FD, len(images) // 2)
    data_fd = metrics.frechet_distance(metrics.oracle_features(oracle, images[:half]),
                                       metrics.oracle_features(oracle, images[half:2 * half]))
    results, seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        model = checkpoints.load(name)
        results[name] = measure(name, model, oracle, images, factors, levels, valid, rendered)
        seconds[name] = time.perf_counter() - start
        if update:
            checkpoints.update_metrics(name, results[name])
    print_table(results, data_fd)
    print("seconds per model: " + ", ".join(f"{n} {s:.0f}" for n, s in seconds.items()))
    return results


TABLES = {
    "likelihood": ["test_recon_mse", "test_elbo", "test_iwae", "test_iwae_gap", "test_kl", "test_bpd",
                   "fitted_sigma", "test_elbo_fitted", "test_iwae_fitted", "test_bpd_fitted"],
    "latents, samples and disentanglement": ["active_units", "mutual_info", "kl_aggregate", "sample_fd",
                                             "sample_fd_global", "mig", "mig_sampled", "factor_vae",
                                             "test_readout_mean"],
}


def _cell(value: float) -> str:
    """4 significant digits, but whole numbers for bounds of thousands of nats (no 1.406e+04)."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def print_table(results: dict[str, dict], data_fd: float | None = None) -> None:
    """Two tables, one row per model: likelihood; latents, samples and disentanglement."""
    print(f"test split of faces. Bounds in nats per image on the first {N_LL} test images, K={K_IWAE} for "
          "test_iwae, at each model's training σ and at the σ fitted on validation images (*_fitted: the "
          "ones that compare models); bpd in bits per dimension (8-bit scale, no dequantisation); "
          "sample_fd in the oracle's feature space")
    first = max([len("model"), *map(len, results)]) + 1
    for title, cols in TABLES.items():
        cols = [c for c in cols if any(c in m for m in results.values())]
        if not cols:
            continue
        width = {c: max(12, len(c) + 2) for c in cols}
        print(f"\n{title}")
        print(f"{'model':{first}s}" + "".join(f"{c:>{width[c]}s}" for c in cols))
        for name, m in results.items():
            cells = "".join(f"{_cell(m[c]):>{width[c]}s}" if c in m else f"{'-':>{width[c]}s}" for c in cols)
            print(f"{name:{first}s}{cells}")
    if data_fd is not None:
        print(f"\n(Fréchet distance between two halves of the test set, the floor: {data_fd:.4g})")
