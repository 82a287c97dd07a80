"""Chapters 5 and 6: the VAE's loss at a given σ, slerp, latent traversals, rate and
distortion of the β models, and the linear β-VAE's rate in closed form."""
from __future__ import annotations

import functools

import torch

from ..exact.linear_vae import closed_form
from ..explore.latents import slerp
from ..losses import flat, kl_divergence, kl_per_dimension, negative_elbo
from .autoencoders import book_model, stub_function
from .bounds import randint
from .checker import Wrong, call, close_number, compare_functions, exercise, fresh_generator, test_faces
from .training import VAE, in_range, measure, train_small


# ---------------------------------------------------------------------- chapter 5
def loss_at_sigma(x_hat, x, mu, logvar, sigma):
    return negative_elbo(x_hat, x, mu, logvar, sigma=sigma)[0]


@exercise("ex-vae-loss", 5, "code", "the negative ELBO at a given σ",
          reference=lambda: loss_at_sigma, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(3):
        b, side, k = randint(g, 1, 5), randint(g, 2, 9), randint(g, 1, 9)
        cases.append(dict(x_hat=torch.rand(b, 3, side, side, generator=g),
                          x=torch.rand(b, 3, side, side, generator=g),
                          mu=torch.randn(b, k, generator=g), logvar=torch.randn(b, k, generator=g),
                          sigma=float(torch.rand(1, generator=g)) + 0.05))
    return compare_functions(answer, loss_at_sigma, cases, "−log N(x; x̂, σ² I) summed over pixels, "
                             "with its constant ½ D log(2πσ²), plus the KL", rtol=1e-4, atol=1e-3)


@exercise("ex-slerp", 5, "code", "spherical interpolation between two codes",
          reference=lambda: slerp, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(4):
        k = randint(g, 2, 129)
        cases.append(dict(a=torch.randn(k, generator=g), b=torch.randn(k, generator=g),
                          t=float(torch.rand(1, generator=g))))
    return compare_functions(answer, slerp, cases, "Ω is the angle between a and b; "
                             "(sin((1−t)Ω) a + sin(tΩ) b) / sin Ω", rtol=1e-4, atol=1e-5)


@functools.cache
def posterior(name: str, n: int = 256):
    with torch.no_grad():
        _, mu, logvar = book_model(name).encode(test_faces(n))
    return mu, logvar


def active_dimensions() -> int:
    return int((kl_per_dimension(*posterior("vae")).mean(0) > 0.1).sum())


@exercise("ex-vae-active-dims", 5, "predict", "how many latent dimensions does the VAE use?",
          reference=active_dimensions, stub=lambda: ...)
def _(answer):
    return close_number(answer, active_dimensions(), "the number of dimensions above 0.1 nats",
                        rtol=0, atol=1)


@exercise("ex-vae-train-small", 5, "training", "train a small VAE",
          reference=lambda: train_small("vae", "elbo", sigma=0.6), stub=lambda: ...)
def _(answer):
    # measured on 10 draws of 128 faces, seeds 0-4: error 0.46-0.57 x the mean face's, KL 19.5-24
    # after 128 steps (0.74-0.83 after 64); at the default sigma = 0.1, KL 65-85
    return in_range(measure(answer, VAE), most=0.7, kl_range=(5, 45))


# ---------------------------------------------------------------------- chapter 6
def rate_distortion(model, images):
    with torch.no_grad():
        _, mu, logvar = model.encode(images)
        error = flat((model.decode(mu) - images) ** 2).sum(dim=1)
    return kl_divergence(mu, logvar).mean(), error.mean()


@exercise("ex-rate-distortion", 6, "code", "rate and distortion of a β model",
          reference=lambda: rate_distortion, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    names = [f"beta{b}" for b in (1, 2, 4, 8, 16)]
    cases = [dict(model=book_model(names[randint(g, 0, 5)]), images=test_faces(16, g)) for _ in range(2)]
    return compare_functions(answer, rate_distortion, cases, "rate: the mean closed-form KL; "
                             "distortion: the mean over images of the squared error summed over "
                             "pixels, decoding the posterior mean", rtol=1e-3, atol=1e-3)


def traversal(z, dim, values):
    codes = z.repeat(len(values), 1)
    codes[:, dim] = values
    return codes


@exercise("ex-traversal", 6, "code", "the codes of a latent traversal",
          reference=lambda: traversal, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(3):
        k, n = randint(g, 2, 12), randint(g, 2, 9)
        cases.append(dict(z=torch.randn(k, generator=g), dim=randint(g, 0, k),
                          values=torch.linspace(-3, 3, n)))
    return compare_functions(answer, traversal, cases, "one row per value: a copy of z whose "
                             "coordinate `dim` is set to that value", rtol=0, atol=0)


def linear_rate(variances, k, sigma, beta):
    return closed_form(variances, k, sigma, beta).rate


@exercise("ex-linear-rate", 6, "derivation", "the rate of the optimal linear β-VAE",
          reference=lambda: linear_rate, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    for n in range(1, 4):
        inputs = dict(variances=torch.rand(randint(g, 3, 12), generator=g, dtype=torch.float64) * 2,
                      k=randint(g, 1, 6), sigma=float(torch.rand(1, generator=g)) * 0.5 + 0.2,
                      beta=float(torch.rand(1, generator=g)) * 4 + 0.5)
        got = call(answer, inputs, f"on random case {n}")
        want = closed_form(**inputs).rate
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Wrong(f"expected a number on random case {n}, got {type(got).__name__}") from None
        if not abs(got - want) <= 1e-6 * max(1, abs(want)):
            raise Wrong(f"wrong value on random case {n} (k={inputs['k']}, σ={inputs['sigma']:.3f}, "
                        f"β={inputs['beta']:.3f}): you have {got:.6g}, the exact optimum has "
                        f"{want:.6g}; hint: only the k largest variances λ above βσ² are used, "
                        "each with ½ log(λ / βσ²)")
    return "equals the exact optimum's rate on 3 random spectra"


def kl_doubling() -> float:
    return float(kl_divergence(*posterior("beta4")).mean() - kl_divergence(*posterior("beta8")).mean())


@exercise("ex-beta-doubling", 6, "predict", "what doubling β from 4 to 8 costs in rate",
          reference=kl_doubling, stub=lambda: ...)
def _(answer):
    return close_number(answer, kl_doubling(), "rate(β=4) − rate(β=8) in nats", rtol=1e-3, atol=0.01)


@exercise("ex-beta-train-small", 6, "training", "train a small β-VAE",
          reference=lambda: train_small("vae", "elbo", sigma=0.6, beta=4.0), stub=lambda: ...)
def _(answer):
    # measured as for ex-vae-train-small: error 0.54-0.61 x the mean face's, KL 9.9-12.5 after
    # 128 steps (0.80-0.87 after 64); KL 19.5-24 at beta = 1, 44-54 at the default sigma = 0.1
    return in_range(measure(answer, VAE), most=0.75, kl_range=(4, 16))
