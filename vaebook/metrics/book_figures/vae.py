"""Stored figures of chapter 5, the VAE: its samplers' and midpoints' Fréchet distances, the long VAE's, the importance-weighted bounds of the β-VAEs, the σ comparison (see :mod:`vaebook.metrics.stored`)."""
from __future__ import annotations

from ..stored import book_figure


CH5_SAMPLES = 2000  # images per Fréchet distance; the prior draws, and each fitted sampler's
# Built on float32 network outputs: computed with torch's and oneDNN's baseline kernels instead
# of the AVX-512 ones, every chapter 5 figure moved by at most 4e-7 relative, and the stored
# sample codes (of size 0.003 to 13) by at most 2.1e-6. Chapter 5 holds the numbers it computes
# itself to the same relative tolerance.
CH5_REL_TOL = 1e-4


def ch5_test_faces():
    """Chapter 5's first 4,000 test faces, split as the chapter splits them: (x_fit, x_ref), the
    2,000 faces it encodes and fits things to, and the 2,000 held-out reference faces of its
    Fréchet distances."""
    from ...data import load_dataset, stack_images
    x = stack_images(load_dataset("faces", "test", limit=4000))
    return x[:2000], x[2000:]


def ch5_prior_draws(latent_dim: int, n: int = CH5_SAMPLES):
    """The chapter's prior draws z ~ N(0, I), (n, latent_dim): torch.manual_seed(2), then
    torch.randn, as the chapter draws them (torch's global random state is left as it was)."""
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        return torch.randn(n, latent_dim)


def ch5_ex_post_samples(codes, mixture: bool = True) -> dict:
    """The chapter's ex_post_samples: 2,000 draws from each of chapter 2's densities fitted to
    codes (5000, L) float64, with chapter 2's seeds (per-coordinate Gaussian 0, full-covariance
    Gaussian 1, mixture of 5 full-covariance Gaussians 2)."""
    from torch.distributions import Normal
    from .. import density
    draws = {
        "per-coordinate Gaussian": density.sample(
            Normal(codes.mean(dim=0), codes.std(dim=0)), CH5_SAMPLES, seed=0),
        "full-covariance Gaussian": density.sample(density.fit_gaussian(codes), CH5_SAMPLES, seed=1),
    }
    if mixture:
        draws["mixture of 5 Gaussians"] = density.sample(
            density.fit_mixture(codes, 5)[0], CH5_SAMPLES, seed=2)
    return draws


def ch5_load(name: str):
    from ... import store
    return store.load(name, expect=store.get_preset(name).model)


# the differences of Fréchet distance whose bootstrap errors chapter 5 reports (first − second)
CH5_COMPARISONS = {
    "VAE prior − AE full covariance": (("VAE", "prior N(0, I)"), ("AE", "full-covariance Gaussian")),
    "VAE prior − AE mixture": (("VAE", "prior N(0, I)"), ("AE", "mixture of 5 Gaussians")),
    "VAE prior − VAE full covariance": (("VAE", "prior N(0, I)"), ("VAE", "full-covariance Gaussian")),
    "VAE reconstructions − AE full covariance": (("VAE", "reconstructions"),
                                                 ("AE", "full-covariance Gaussian")),
    "VAE reconstructions − AE mixture": (("VAE", "reconstructions"), ("AE", "mixture of 5 Gaussians")),
}


@book_figure("ch5-fd-samplers", models=("ae", "vae", "oracle"), rel_tol=CH5_REL_TOL, abs_tol=1e-4)
def fd_samplers() -> dict:
    """Chapter 5's table of Fréchet distances (oracle features; 2,000 images per set against the
    2,000 reference faces; lower is better), keyed "AE / kind" and "VAE / kind": each model's
    reconstructions of the 2,000 encoded test faces (decoded codes, posterior means for the VAE), the
    VAE's decoded prior draws (:func:`ch5_prior_draws`), and decoded draws from chapter 2's
    densities fitted to the codes (posterior means) of 5,000 training faces
    (:func:`ch5_ex_post_samples`; no mixture for the VAE); the floor, the distance of the 2,000
    encoded test faces themselves. Then the bootstrap: 30 times, the same resample (with
    replacement) of the 2,000 features of every set and of the reference, and the standard
    deviation of each difference of :data:`CH5_COMPARISONS` over the 30 replicates. And
    "shown": the codes of the first 12 draws from the autoencoder's per-coordinate Gaussian and
    mixture, which the chapter decodes for its figure of samples."""
    import torch
    from ...data import load_dataset, stack_images
    from ..batching import decode, encode_means
    from ..measures import feature_stats, frechet_distance, frechet_from_stats, oracle_features
    models = {"AE": ch5_load("ae"), "VAE": ch5_load("vae")}
    oracle = ch5_load("oracle")
    x_fit, x_ref = ch5_test_faces()
    reference = oracle_features(oracle, x_ref)
    floor = frechet_distance(oracle_features(oracle, x_fit), reference)
    features = {(name, "reconstructions"): oracle_features(oracle, decode(m, encode_means(m, x_fit)))
                for name, m in models.items()}
    vae = models["VAE"]
    features["VAE", "prior N(0, I)"] = oracle_features(
        oracle, decode(vae, ch5_prior_draws(vae.config.latent_dim)))
    x_train = stack_images(load_dataset("faces", "train", limit=5000))
    shown = {}
    for name, m in models.items():
        codes = encode_means(m, x_train).double()
        for kind, draws in ch5_ex_post_samples(codes, mixture=name == "AE").items():
            features[name, kind] = oracle_features(oracle, decode(m, draws.float()))
            if name == "AE" and kind != "full-covariance Gaussian":
                shown[kind] = draws[:12].tolist()
    fd = {key: frechet_distance(f, reference) for key, f in features.items()}
    compared = {key for pair in CH5_COMPARISONS.values() for key in pair}
    g = torch.Generator().manual_seed(0)
    boot = {name: [] for name in CH5_COMPARISONS}
    for _ in range(30):
        pick = torch.randint(0, CH5_SAMPLES, (CH5_SAMPLES,), generator=g)
        ref = feature_stats(reference[pick])
        dist = {key: frechet_from_stats(*feature_stats(features[key][pick]), *ref) for key in compared}
        for name, (a, b) in CH5_COMPARISONS.items():
            boot[name].append(dist[a] - dist[b])
    return {"floor": floor,
            "fd": {f"{name} / {kind}": value for (name, kind), value in fd.items()},
            "bootstrap_se": {name: torch.tensor(v).std().item() for name, v in boot.items()},
            "comparisons": {name: [" / ".join(a), " / ".join(b)] for name, (a, b) in CH5_COMPARISONS.items()},
            "resamplings": 30,
            "shown": shown}


@book_figure("ch5-midpoints", models=("ae", "vae", "oracle"), rel_tol=CH5_REL_TOL)
def fd_midpoints() -> dict:
    """Chapter 5's midpoints table: for the autoencoder's codes and the VAE's posterior means of
    the 2,000 encoded test faces, 1,000 random pairs (torch.manual_seed(3), then a permutation split
    in two halves, as the chapter draws them); the Fréchet distance to the 2,000 reference faces
    of the decoded ends (the reconstructions of the first face of each pair), of the decoded
    straight midpoints, and of the midpoints rescaled to the mean of the ends' distances from the
    centre of the codes; and the straight midpoints' mean length relative to the first end's."""
    import torch
    from ..batching import decode, encode_means
    from ..measures import frechet_distance, oracle_features
    models = {"AE": ch5_load("ae"), "VAE": ch5_load("vae")}
    oracle = ch5_load("oracle")
    x_fit, x_ref = ch5_test_faces()
    reference = oracle_features(oracle, x_ref)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        first, second = torch.randperm(len(x_fit)).view(2, 1000)
    fd, length_ratio = {}, {}
    for name, m in models.items():
        codes = encode_means(m, x_fit)
        centre = codes.mean(dim=0)
        ends = oracle_features(oracle, decode(m, codes))[first]
        fd[f"{name} / ends (reconstructions)"] = frechet_distance(ends, reference)
        a, b = codes[first] - centre, codes[second] - centre
        straight = 0.5 * (a + b)
        length = 0.5 * (a.norm(dim=1) + b.norm(dim=1))[:, None]
        rescaled = straight / straight.norm(dim=1, keepdim=True) * length
        length_ratio[name] = (straight.norm(dim=1) / a.norm(dim=1)).mean().item()
        for kind, mid in {"straight midpoints": straight, "length-kept midpoints": rescaled}.items():
            fd[f"{name} / {kind}"] = frechet_distance(
                oracle_features(oracle, decode(m, mid + centre)), reference)
    return {"fd": fd, "length_ratio": length_ratio}


@book_figure("ch5-vae-long", models=("vae-long", "oracle"), rel_tol=CH5_REL_TOL)
def fd_vae_long() -> dict:
    """Chapter 5's Fréchet distances of vae-long (the VAE trained for 20 epochs) to the 2,000
    reference faces: its decoded prior draws (the same z as the chapter's VAE,
    :func:`ch5_prior_draws`) and its reconstructions (decoded posterior means) of the 2,000
    encoded test faces."""
    from ..batching import decode, encode_means
    from ..measures import frechet_distance, oracle_features
    model, oracle = ch5_load("vae-long"), ch5_load("oracle")
    x_fit, x_ref = ch5_test_faces()
    reference = oracle_features(oracle, x_ref)
    sets = {"prior": decode(model, ch5_prior_draws(model.config.latent_dim)),
            "reconstructions": decode(model, encode_means(model, x_fit))}
    return {k: frechet_distance(oracle_features(oracle, v), reference) for k, v in sets.items()}


CH5_KS = (1, 2, 4, 8, 16)


@book_figure("ch5-iw-beta", models=("beta16", "beta1"), rel_tol=CH5_REL_TOL, abs_tol=1e-6)
def iw_beta() -> dict:
    """Chapter 5's importance-weighted bounds of the β-VAEs β = 16 and β = 1 (the sweep's seed 0,
    ten latents) on the chapter's first 100 test faces: 16 draws z_k ~ Q(z|x) per face (seed 0),
    and for K = 1, 2, 4, 8, 16 (:func:`~vaebook.metrics.likelihood.iwae_grouped`, at each model's training σ) the mean
    bound L_K, the mean gain L_K − L_1 and the standard error of that gain across the faces."""
    import math
    from ...data import load_dataset, stack_images
    from .. import likelihood
    x_ll = stack_images(load_dataset("faces", "test", limit=100))
    value = {}
    for name in ("beta16", "beta1"):
        model = ch5_load(name)
        sigma = model.record["train"]["sigma"]
        samples = likelihood.importance_samples(model, x_ll, 16, seed=0)
        per_image = {k: likelihood.iwae_grouped(samples, sigma, k) for k in CH5_KS}
        gains = [per_image[k] - per_image[1] for k in CH5_KS]
        value[name] = {"sigma": sigma, "latent_dim": model.config.latent_dim, "faces": len(x_ll),
                       "K": list(CH5_KS),
                       "bound": [per_image[k].mean().item() for k in CH5_KS],
                       "gain": [g.mean().item() for g in gains],
                       "gain_se": [g.std().item() / math.sqrt(len(x_ll)) for g in gains]}
    return value


def ch5_sigma_scores(model, samples, fitted_sigma: float, means, recon, x_fit, prior_fd: float) -> dict:
    """The chapter's scores(): one column of its table of two VAEs that differ in σ. The bounds
    (ELBO, L₁₆ of :func:`~vaebook.metrics.likelihood.iwae_grouped`, bits per dimension) at the training σ, at σ = 0.6
    and at the σ fitted on 500 validation faces; then the KL term, the active coordinates of the
    posterior means `means`, the reconstruction MSE of `recon` (500 faces) and the Fréchet
    distance of the prior samples."""
    import math
    from ... import losses
    from .. import likelihood
    from ..measures import count_active
    D = samples.num_pixels
    s_train = model.record["train"]["sigma"]
    column = {"training σ": s_train,
              "(D/2) log 2πσ² at training σ": 0.5 * D * math.log(2 * math.pi * s_train**2)}
    for label, s in [("training σ", s_train), ("σ = 0.6", 0.6), ("fitted σ", fitted_sigma)]:
        if label == "fitted σ":
            column["σ fitted on 500 validation faces"] = s
        column[f"ELBO at {label}"] = likelihood.elbo_at(samples, s).mean().item()
        column[f"L₁₆ at {label}"] = likelihood.iwae_grouped(samples, s, 16).mean().item()
        if label != "σ = 0.6":
            column[f"bits per dimension, {label}"] = likelihood.bits_per_dim(
                -column[f"L₁₆ at {label}"], D)
    column.update({
        "KL term (nats per image)": samples.kl.mean().item(),
        "active coordinates (of 128)": count_active(means),
        "reconstruction MSE per pixel value (500 faces)": losses.mse(recon, x_fit[:500]).mean().item(),
        "Fréchet distance of 2,000 prior samples": prior_fd,
    })
    return column


@book_figure("ch5-sigma-compare", models=("vae", "vae-sigma0.248", "oracle"), rel_tol=CH5_REL_TOL)
def sigma_compare() -> dict:
    """Chapter 5's comparison of two VAEs that differ only in the decoder σ they were trained with,
    `vae` (σ = 0.6) and `vae-sigma0.248`: one column each (:func:`ch5_sigma_scores`), from 16
    draws z_k ~ Q(z|x) (seed 0) for each of the chapter's first 100 test faces, the σ fitted on
    one draw (seed 0) for each of the first 500 validation faces, the posterior means and
    reconstructions of the 2,000 encoded test faces, and the decoded prior draws
    (:func:`ch5_prior_draws`) against the 2,000 reference faces."""
    from ...data import load_dataset, stack_images
    from .. import likelihood
    from ..batching import decode, encode_means
    from ..measures import frechet_distance, oracle_features
    oracle = ch5_load("oracle")
    x_fit, x_ref = ch5_test_faces()
    x_valid = stack_images(load_dataset("faces", "valid", limit=500))
    reference = oracle_features(oracle, x_ref)
    value = {}
    for name in ("vae", "vae-sigma0.248"):
        model = ch5_load(name)
        means = encode_means(model, x_fit)
        prior = decode(model, ch5_prior_draws(model.config.latent_dim))
        value[name] = ch5_sigma_scores(
            model, likelihood.importance_samples(model, x_fit[:100], 16, seed=0),
            likelihood.elbo_optimal_sigma(likelihood.importance_samples(model, x_valid, 1, seed=0)),
            means, decode(model, means[:500]), x_fit,
            frechet_distance(oracle_features(oracle, prior), reference))
    return value
