"""Stored figures of chapter 6, β-VAE: rate and distortion over the sweep, the idle dimension's information, total correlation, the spread of the aggregate posterior (see :mod:`vaebook.metrics.stored`)."""
from __future__ import annotations

from ..stored import book_figure


BETA_SWEEP = tuple(f"beta{b}{s}" for s in ("", "-seed1", "-seed2") for b in (1, 2, 4, 8, 16))


def beta_rate_distortion(model, images, sigma: float):
    """Per image, (N,) each: the KL in closed form and ||x - x_hat(z)||^2 / 2 sigma^2 for one
    z ~ Q(z|x), drawn with the evaluation's seed (the same noise for every model)."""
    from .. import evaluate, likelihood
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
    from ... import store
    from ...data import load_dataset, stack_images
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
    from ... import store
    from ...data import faces, load_dataset, stack_images
    from .. import disentanglement, evaluate
    from ..batching import encode_posteriors
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
    from ... import store
    from ...data import load_dataset, stack_images
    from .. import aggregate, evaluate
    from ..batching import encode_posteriors
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
    from ... import store
    from ...data import load_dataset, stack_images
    from ..batching import encode_posteriors
    x = stack_images(load_dataset("faces", "test", limit=2000))
    return {name: aggregate_std_range(*encode_posteriors(store.load(name, expect=store.get_preset(name).model), x))
            for name in ("beta1", "beta16", "beta1-sigma0.1", "beta16-sigma0.1")}
