"""The book's stored figures, one section per chapter: each function computes, from the fixed
checkpoints and data, supporting numbers that a chapter quotes but that would cost seconds at
every build (see :mod:`vaebook.metrics.stored`). A chapter reads one with
``stored.figure("name")``; ``python -m vaebook figures --update`` recomputes them all.
"""
from __future__ import annotations

from .stored import book_figure  # noqa: F401  (every section registers its figures with it)

# --- chapter 1

# --- chapter 2
@book_figure("ch2-lilliefors", models=())
def lilliefors_threshold() -> dict:
    """Chapter 2's threshold for the KS distance of 5,000 codes from the normal fitted to them:
    the distance that only 1% of samples of 5,000 truly normal values exceed when the normal's
    mean and standard deviation are fitted to the same values, simulated with 2,000 such samples
    (:func:`vaebook.metrics.density.lilliefors_critical`, seed 0)."""
    from . import density
    n, level, draws = 5000, 0.01, 2000
    return {"n": n, "level": level, "draws": draws,
            "critical": density.lilliefors_critical(n, level=level, draws=draws)}


# Built on float32 network outputs: computed with torch's and oneDNN's baseline kernels instead of
# the AVX-512 ones, chapter 2's Fréchet figures moved by at most 7e-7 relative.
CH2_REL_TOL = 1e-4


def ch2_faces():
    """Chapter 2's faces: the first 5,000 training faces, and 2,000 held-out and 2,000 reference
    test faces (the first and the next 2,000)."""
    from ..data import load_dataset, stack_images
    test = load_dataset("faces", "test", limit=4000)
    return (load_dataset("faces", "train", limit=5000), stack_images(test, range(2000)),
            stack_images(test, range(2000, 4000)))


def ch2_features(model, images):
    """The oracle's features of images (N, 3, 64, 64), 200 at a time, as chapter 2 computes them."""
    from .measures import oracle_features
    return oracle_features(model, images, batch_size=200)


def damaged_faces(images) -> dict:
    """Two defects anyone sees, on images (N, 3, 64, 64): visible grain (noise of standard
    deviation 0.05 on every pixel) and a black 10×10 square in the bottom right corner."""
    import torch
    seeded = torch.Generator().manual_seed(0)
    grain = (images + 0.05 * torch.randn(images.shape, generator=seeded)).clamp(0, 1)
    square = images.clone()
    square[:, :, -10:, -10:] = 0.0                                # bottom right corner
    return {"grain": grain, "black square": square}


@book_figure("ch2-fd-blind", models=("oracle",), rel_tol=CH2_REL_TOL)
def fd_blind_spots() -> dict:
    """Chapter 2's blind spots of the Fréchet distance: the distance, in the oracle's features,
    from the 2,000 reference faces to the 2,000 held-out faces (the floor), and to the same
    faces with each defect of :func:`damaged_faces`."""
    from .. import store
    from .measures import frechet_distance
    oracle = store.load("oracle", expect=store.get_preset("oracle").model)
    _, x_held, x_ref = ch2_faces()
    reference = ch2_features(oracle, x_ref)
    sets = {"floor": x_held, **damaged_faces(x_held)}
    return {name: frechet_distance(ch2_features(oracle, x), reference) for name, x in sets.items()}


def fd_difference_bootstrap(features_a, features_b, reference, draws=30, seed=0) -> list:
    """FD(a) − FD(b), each against the reference, for `draws` bootstrap resamples: each time
    the same resample (with replacement) of the rows of all three feature sets (N, L)."""
    import torch
    from .measures import frechet_distance
    g = torch.Generator().manual_seed(seed)
    differences = []
    for _ in range(draws):
        pick = torch.randint(0, len(reference), (len(reference),), generator=g)
        differences.append(frechet_distance(features_a[pick], reference[pick])
                           - frechet_distance(features_b[pick], reference[pick]))
    return differences


@book_figure("ch2-fd-bootstrap", models=("ae", "oracle"), rel_tol=CH2_REL_TOL)
def fitted_densities_bootstrap() -> dict:
    """Chapter 2's bootstrap of the lead of its mixture of 5 Gaussians over its full-covariance
    Gaussian: both fitted to the autoencoder's codes of the 5,000 training faces, 2,000 draws of
    each (seeds 1 and 2) decoded; their Fréchet distances to the 2,000 reference faces, and
    :func:`fd_difference_bootstrap` of the two (30 resamples, seed 0)."""
    from .. import store
    from ..data import stack_images
    from . import density
    from .batching import decode, encode_means
    from .measures import frechet_distance
    ae = store.load("ae", expect=store.get_preset("ae").model)
    oracle = store.load("oracle", expect=store.get_preset("oracle").model)
    train, _, x_ref = ch2_faces()
    codes = encode_means(ae, stack_images(train)).double()
    fits = {"full-covariance Gaussian": (density.fit_gaussian(codes), 1),
            "mixture of 5 Gaussians": (density.fit_mixture(codes, 5)[0], 2)}
    features = {name: ch2_features(oracle, decode(ae, density.sample(fit, 2000, seed).float()))
                for name, (fit, seed) in fits.items()}
    reference = ch2_features(oracle, x_ref)
    return {"fd": {name: frechet_distance(f, reference) for name, f in features.items()},
            "differences": fd_difference_bootstrap(*features.values(), reference)}


# --- chapter 3

# --- chapter 4

# --- chapter 5
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
    from ..data import load_dataset, stack_images
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
    from . import density
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
    from .. import store
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
    reconstructions of the 2,000 fitting faces (decoded codes, posterior means for the VAE), the
    VAE's decoded prior draws (:func:`ch5_prior_draws`), and decoded draws from chapter 2's
    densities fitted to the codes (posterior means) of 5,000 training faces
    (:func:`ch5_ex_post_samples`; no mixture for the VAE); the floor, the distance of the 2,000
    fitting faces themselves. Then the bootstrap: 30 times, the same resample (with
    replacement) of the 2,000 features of every set and of the reference, and the standard
    deviation of each difference of :data:`CH5_COMPARISONS` over the 30 replicates. And
    "shown": the codes of the first 12 draws from the autoencoder's per-coordinate Gaussian and
    mixture, which the chapter decodes for its figure of samples."""
    import torch
    from ..data import load_dataset, stack_images
    from .batching import decode, encode_means
    from .measures import feature_stats, frechet_distance, frechet_from_stats, oracle_features
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
    the 2,000 fitting faces, 1,000 random pairs (torch.manual_seed(3), then a permutation split
    in two halves, as the chapter draws them); the Fréchet distance to the 2,000 reference faces
    of the decoded ends (the reconstructions of the first face of each pair), of the decoded
    straight midpoints, and of the midpoints rescaled to the mean of the ends' distances from the
    centre of the codes; and the straight midpoints' mean length relative to the first end's."""
    import torch
    from .batching import decode, encode_means
    from .measures import frechet_distance, oracle_features
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
    fitting faces."""
    from .batching import decode, encode_means
    from .measures import frechet_distance, oracle_features
    model, oracle = ch5_load("vae-long"), ch5_load("oracle")
    x_fit, x_ref = ch5_test_faces()
    reference = oracle_features(oracle, x_ref)
    sets = {"prior": decode(model, ch5_prior_draws(model.config.latent_dim)),
            "reconstructions": decode(model, encode_means(model, x_fit))}
    return {k: frechet_distance(oracle_features(oracle, v), reference) for k, v in sets.items()}


def ch5_iwae_grouped(samples, sigma: float, k: int):
    """The chapter's iwae_grouped: L_K per image, (N,), at decoder std sigma, the samples'
    log-weights split into groups of k and the bound of each group averaged over the groups."""
    import torch
    from . import likelihood
    log_w = likelihood.log_weights(likelihood.log_px_given_z(samples, sigma), samples.log_ratio, 0.0)
    return torch.stack([likelihood.iwae_from_log_weights(group)
                        for group in log_w.split(k, dim=1)]).mean(dim=0)


CH5_KS = (1, 2, 4, 8, 16)


@book_figure("ch5-iw-beta", models=("beta16", "beta1"), rel_tol=CH5_REL_TOL, abs_tol=1e-6)
def iw_beta() -> dict:
    """Chapter 5's importance-weighted bounds of the β-VAEs β = 16 and β = 1 (the sweep's seed 0,
    ten latents) on the chapter's first 100 test faces: 16 draws z_k ~ Q(z|x) per face (seed 0),
    and for K = 1, 2, 4, 8, 16 (:func:`ch5_iwae_grouped`, at each model's training σ) the mean
    bound L_K, the mean gain L_K − L_1 and the standard error of that gain across the faces."""
    import math
    from ..data import load_dataset, stack_images
    from . import likelihood
    x_ll = stack_images(load_dataset("faces", "test", limit=100))
    value = {}
    for name in ("beta16", "beta1"):
        model = ch5_load(name)
        sigma = model.record["train"]["sigma"]
        samples = likelihood.importance_samples(model, x_ll, 16, seed=0)
        per_image = {k: ch5_iwae_grouped(samples, sigma, k) for k in CH5_KS}
        gains = [per_image[k] - per_image[1] for k in CH5_KS]
        value[name] = {"sigma": sigma, "latent_dim": model.config.latent_dim, "faces": len(x_ll),
                       "K": list(CH5_KS),
                       "bound": [per_image[k].mean().item() for k in CH5_KS],
                       "gain": [g.mean().item() for g in gains],
                       "gain_se": [g.std().item() / math.sqrt(len(x_ll)) for g in gains]}
    return value


def ch5_sigma_scores(model, samples, fitted_sigma: float, means, recon, x_fit, prior_fd: float) -> dict:
    """The chapter's scores(): one column of its table of two VAEs that differ in σ. The bounds
    (ELBO, L₁₆ of :func:`ch5_iwae_grouped`, bits per dimension) at the training σ, at σ = 0.6
    and at the σ fitted on 500 validation faces; then the KL term, the active coordinates of the
    posterior means `means`, the reconstruction MSE of `recon` (500 faces) and the Fréchet
    distance of the prior samples."""
    import math
    from .. import losses
    from . import likelihood
    from .measures import count_active
    D = samples.num_pixels
    s_train = model.record["train"]["sigma"]
    column = {"training σ": s_train,
              "(D/2) log 2πσ² at training σ": 0.5 * D * math.log(2 * math.pi * s_train**2)}
    for label, s in [("training σ", s_train), ("σ = 0.6", 0.6), ("fitted σ", fitted_sigma)]:
        if label == "fitted σ":
            column["σ fitted on 500 validation faces"] = s
        column[f"ELBO at {label}"] = likelihood.elbo_at(samples, s).mean().item()
        column[f"L₁₆ at {label}"] = ch5_iwae_grouped(samples, s, 16).mean().item()
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
    reconstructions of the 2,000 fitting faces, and the decoded prior draws
    (:func:`ch5_prior_draws`) against the 2,000 reference faces."""
    from ..data import load_dataset, stack_images
    from . import likelihood
    from .batching import decode, encode_means
    from .measures import frechet_distance, oracle_features
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


# --- chapter 6
BETA_SWEEP = tuple(f"beta{b}{s}" for s in ("", "-seed1", "-seed2") for b in (1, 2, 4, 8, 16))


def beta_rate_distortion(model, images, sigma: float):
    """Per image, (N,) each: the KL in closed form and ||x - x_hat(z)||^2 / 2 sigma^2 for one
    z ~ Q(z|x), drawn with the evaluation's seed (the same noise for every model)."""
    from . import evaluate, likelihood
    samples = likelihood.importance_samples(model, images, 1, seed=evaluate.SEED)
    return samples.kl, samples.sq_error[:, 0] / (2 * sigma**2)


# tolerances: 30 times or more the largest relative difference measured between this machine's
# AVX2/AVX-512 kernels and the baseline ones (ATEN_CPU_CAPABILITY=default, ONEDNN_MAX_CPU_ISA=SSE41)
@book_figure("ch6-rate-distortion", models=BETA_SWEEP + ("capacity",), rel_tol=1e-5)  # 3e-7
def beta_rate_distortion_sweep() -> dict:
    """Chapter 6's rate-distortion plane: the rate (mean KL) and distortion (mean squared error
    / 2 sigma^2, one posterior sample) of every model of the beta sweep (three seeds) and of the
    capacity model on the first 500 test faces, with common random numbers
    (:func:`beta_rate_distortion`); and, from 1,000 bootstrap resamples of the faces (the same
    resample for every model), the middle 95% of each model's rate and, for each doubling of beta
    within a seed, of the rate given up, the distortion paid and their ratio (the slope)."""
    import torch
    from .. import store
    from ..data import load_dataset, stack_images
    names = BETA_SWEEP + ("capacity",)
    x = stack_images(load_dataset("faces", "test", limit=500))
    per_image = {}
    for name in names:
        model = store.load(name, expect=store.get_preset(name).model)
        per_image[name] = beta_rate_distortion(model, x, model.record["train"]["sigma"])
    resample = torch.randint(len(x), (1000, len(x)), generator=torch.Generator().manual_seed(0))
    boot_rate = {n: r[resample].mean(dim=1) for n, (r, _) in per_image.items()}      # (1000,)
    boot_distortion = {n: d[resample].mean(dim=1) for n, (_, d) in per_image.items()}

    def interval(values):
        q = torch.tensor([0.025, 0.975], dtype=torch.float64)
        return [float(v) for v in torch.quantile(values.double(), q)]

    steps = {}
    for seed in range(3):
        group = BETA_SWEEP[5 * seed:5 * seed + 5]
        drop = [boot_rate[n] - boot_rate[m] for n, m in zip(group, group[1:])]
        rise = [boot_distortion[m] - boot_distortion[n] for n, m in zip(group, group[1:])]
        steps[str(seed)] = {"drop": [interval(v) for v in drop],
                            "rise": [interval(v) for v in rise],
                            "slope": [interval(r / d) for r, d in zip(rise, drop)]}
    return {"faces": len(x),
            "rate": {n: float(r.mean()) for n, (r, _) in per_image.items()},
            "distortion": {n: float(d.mean()) for n, (_, d) in per_image.items()},
            "rate_interval": {n: interval(v) for n, v in boot_rate.items()},
            "steps": steps}


# KL 2e-8 apart, the binned MI equal; one of 10,000 codes crossing a bin edge would move an
# MI by about 1e-4 nats
@book_figure("ch6-idle-mi", models=("beta16",), rel_tol=1e-3, abs_tol=1e-4)
def beta16_idle_mi() -> dict:
    """Chapter 6's idle dimensions: for each latent dimension of beta16 on all 10,000 test
    faces, its mean KL beside the largest mutual information with a ground-truth factor estimated
    from posterior means and from one posterior sample
    (:func:`vaebook.metrics.disentanglement.mi_against_kl`, the evaluation's seed)."""
    from .. import store
    from ..data import faces, load_dataset, stack_images
    from . import disentanglement, evaluate
    from .batching import encode_posteriors
    data = load_dataset("faces", "test")
    levels = [faces.FACTOR_LEVELS.get(f, 0) for f in data.factor_names]
    model = store.load("beta16", expect=store.get_preset("beta16").model)
    posteriors = encode_posteriors(model, stack_images(data))
    idle = disentanglement.mi_against_kl(*posteriors, data.factors, levels, seed=evaluate.SEED)
    return {"faces": len(data), **{k: [float(v) for v in values] for k, values in idle.items()}}


@book_figure("ch6-total-correlation", models=BETA_SWEEP[:5] + ("capacity",), rel_tol=1e-5)  # 1e-7
def beta_total_correlation() -> dict:
    """Chapter 6's split of the mismatch KL(q(z) || P(z)) into total correlation and dimension-wise
    KL (:func:`vaebook.metrics.aggregate.total_correlation`, the evaluation's seed), for the sweep
    of seed 0 and the capacity model, on the aggregate posterior of the first 2,000 test faces."""
    from .. import store
    from ..data import load_dataset, stack_images
    from . import aggregate, evaluate
    from .batching import encode_posteriors
    x = stack_images(load_dataset("faces", "test", limit=2000))
    split = {}
    for name in BETA_SWEEP[:5] + ("capacity",):
        model = store.load(name, expect=store.get_preset(name).model)
        split[name] = aggregate.total_correlation(*encode_posteriors(model, x), seed=evaluate.SEED)._asdict()
    return {"faces": len(x), "split": split}


def aggregate_std_range(mu, logvar) -> list[float]:
    """[smallest, largest] standard deviation of a coordinate of the aggregate posterior q(z), the
    mixture of the posteriors N(mu, diag exp(logvar)) (N, L): Var = Var_x[mu_j] + E_x[sigma_j^2]."""
    std = (mu.var(dim=0) + logvar.exp().mean(dim=0)).sqrt()
    return [float(std.min()), float(std.max())]


@book_figure("ch6-q-spread", models=("beta1", "beta16", "beta1-sigma0.1", "beta16-sigma0.1"),
             rel_tol=1e-5)  # 6e-8, one float32 rounding
def beta_q_spread() -> dict:
    """Chapter 6's sigma = 0.1 experiment: how wide the aggregate posterior q(z) of the first 2,000
    test faces spreads (:func:`aggregate_std_range`) for the two models trained at sigma = 0.1 and
    the two ends of the sweep beside them (the prior's standard deviation is 1)."""
    from .. import store
    from ..data import load_dataset, stack_images
    from .batching import encode_posteriors
    x = stack_images(load_dataset("faces", "test", limit=2000))
    return {name: aggregate_std_range(*encode_posteriors(store.load(name, expect=store.get_preset(name).model), x))
            for name in ("beta1", "beta16", "beta1-sigma0.1", "beta16-sigma0.1")}


# --- chapter 7

# --- chapter 8
