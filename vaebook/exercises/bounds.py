"""Chapters 3 and 4: the Gaussian KL, the ELBO's gap in the linear-Gaussian model, the
importance-weighted bound, and the two gradient estimators."""
from __future__ import annotations

import math

import torch

from ..exact.linear import LinearGaussian
from ..losses import kl_divergence
from ..metrics.likelihood import iwae_from_log_weights
from .autoencoders import stub_function
from .checker import Wrong, call, compare_functions, exercise, fresh_generator, same_tensor


def randint(g, low, high) -> int:
    return int(torch.randint(low, high, (), generator=g))


# ---------------------------------------------------------------------- chapter 3
@exercise("ex-kl-closed-form", 3, "code", "the KL of a diagonal Gaussian to N(0, I)",
          reference=lambda: kl_divergence, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(3):
        b, k = randint(g, 1, 6), randint(g, 1, 12)
        cases.append(dict(mu=torch.randn(b, k, generator=g) * 2,
                          logvar=torch.randn(b, k, generator=g)))
    return compare_functions(answer, kl_divergence, cases, "per dimension ½(σ² + μ² − 1 − log σ²) "
                             "with σ² = exp(logvar), summed over dim=1")


def kl_gaussians(m1, s1, m2, s2):
    return torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5


@exercise("ex-kl-two-gaussians", 3, "derivation", "KL between two one-dimensional Gaussians",
          reference=lambda: kl_gaussians, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    n = 6
    p = dict(m1=torch.randn(n, generator=g, dtype=torch.float64),
             s1=torch.rand(n, generator=g, dtype=torch.float64) * 1.5 + 0.5,
             m2=torch.randn(n, generator=g, dtype=torch.float64),
             s2=torch.rand(n, generator=g, dtype=torch.float64) * 1.5 + 0.5)
    got = call(answer, p, "on random parameters")
    x = p["m1"] + p["s1"] * torch.randn(40_000, n, generator=g, dtype=torch.float64)
    log_ratio = (torch.distributions.Normal(p["m1"], p["s1"]).log_prob(x)
                 - torch.distributions.Normal(p["m2"], p["s2"]).log_prob(x))
    mc, se = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(x))
    same_tensor(got, mc, "against Monte Carlo", "", rtol=0, atol=1e9)    # shape and dtype only
    worst = int(((got - mc).abs() / se).argmax())
    if not ((got - mc).abs() <= 5 * se + 1e-6).all():
        raise Wrong(f"wrong value at m1={p['m1'][worst]:.3f}, s1={p['s1'][worst]:.3f}, "
                    f"m2={p['m2'][worst]:.3f}, s2={p['s2'][worst]:.3f}: you have "
                    f"{got[worst]:.4f}, Monte Carlo gives {mc[worst]:.4f} ± {se[worst]:.2g}; hint: "
                    "write E_q[log q − log p] and use E_q[(x − m2)²] = s1² + (m1 − m2)²")
    return f"agrees with Monte Carlo (40,000 draws) at {n} random parameter sets"


def elbo_gap(model: LinearGaussian, x, mu, cov):
    """KL(N(mu, cov) ‖ P(z|x)): the gap log P(x) − ELBO, from the exact posterior."""
    m, post = model.posterior_mean(x), model.posterior_cov()
    inv = torch.linalg.inv(post)
    d = m - mu
    return 0.5 * (torch.trace(inv @ cov) + d @ inv @ d - len(mu)
                  + torch.logdet(post) - torch.logdet(cov))


def random_linear_case(g) -> dict:
    d, k = randint(g, 3, 7), randint(g, 1, 3)
    f64 = dict(generator=g, dtype=torch.float64)
    model = LinearGaussian(torch.randn(d, k, **f64), torch.randn(d, **f64), 0.3 + float(torch.rand(1, **f64)))
    root = torch.randn(k, k, **f64) * 0.3
    return dict(model=model, x=torch.randn(d, **f64), mu=torch.randn(k, **f64),
                cov=root @ root.T + 0.1 * torch.eye(k, dtype=torch.float64))


@exercise("ex-linear-elbo-gap", 3, "derivation", "the ELBO's gap where everything is known",
          reference=lambda: elbo_gap, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    for n in range(1, 4):
        case = random_linear_case(g)
        where = f"on random model {n} of 3 (d={case['model'].d}, k={case['model'].k})"
        got = call(answer, case, where)
        exact = case["model"].log_evidence(case["x"]) - case["model"].elbo(case["x"], case["mu"], case["cov"])
        same_tensor(got, exact, f"{where}, against log P(x) − ELBO", "the gap is KL(Q ‖ P(z|x)): "
                    "use the posterior's mean and covariance in the multivariate Gaussian KL",
                    rtol=1e-6, atol=1e-8)
    return "equals log P(x) − ELBO of the exact model on 3 random linear-Gaussian models"


@exercise("ex-iwae-bound", 3, "code", "the importance-weighted bound from log-weights",
          reference=lambda: iwae_from_log_weights, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = [dict(log_w=torch.randn(randint(g, 1, 5), randint(g, 1, 40), generator=g,
                                    dtype=torch.float64) * scale + shift)
             for scale, shift in ((1, 0), (30, -5000), (5, 800))]
    return compare_functions(answer, iwae_from_log_weights, cases, "log of the mean of exp(log_w) "
                             "over K, computed with torch.logsumexp so nothing overflows",
                             rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------- chapter 4
def reparameterise(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


@exercise("ex-reparameterise", 4, "code", "the reparameterised sample",
          reference=lambda: reparameterise, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(3):
        shape = (randint(g, 1, 5), randint(g, 1, 9))
        cases.append(dict(mu=torch.randn(shape, generator=g).requires_grad_(),
                          logvar=torch.randn(shape, generator=g).requires_grad_(),
                          eps=torch.randn(shape, generator=g)))
    passed = compare_functions(answer, reparameterise, cases, "z = μ + σ ε with σ = exp(½ logvar)")
    z = call(answer, cases[0], "with gradients on")
    if not z.requires_grad:
        raise Wrong("no gradient reaches mu and logvar: build z from them with arithmetic "
                    "(no .detach(), no torch.normal)")
    return passed + ", with gradients to mu and logvar"


def score_gradient(f_values, z, mu, sigma, baseline):
    return ((f_values - baseline) * (z - mu) / sigma**2).mean()


@exercise("ex-score-baseline", 4, "code", "a score-function gradient with a baseline",
          reference=lambda: score_gradient, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(3):
        mu, sigma, n = torch.randn((), generator=g), torch.rand((), generator=g) + 0.3, randint(g, 2, 50)
        z = mu + sigma * torch.randn(n, generator=g)
        cases.append(dict(f_values=z**2, z=z, mu=mu, sigma=sigma, baseline=torch.randn((), generator=g)))
    return compare_functions(answer, score_gradient, cases, "average (f(z) − b) ∂/∂μ log N(z; μ, σ²) "
                             "over the samples, with ∂/∂μ log N = (z − μ)/σ²")


def gradient_of_mean_exp(mu, sigma):
    value = math.exp(mu + sigma**2 / 2)
    return value, sigma * value


@exercise("ex-gradient-mean-exp", 4, "derivation", "the gradient of E[exp z], derived and sampled",
          reference=lambda: gradient_of_mean_exp, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    for n in (1, 2):
        mu, sigma = float(torch.rand(1, generator=g)) * 2 - 1, float(torch.rand(1, generator=g)) * 0.8 + 0.2
        got = call(answer, dict(mu=mu, sigma=sigma), f"at mu={mu:.3f}, sigma={sigma:.3f}")
        if not (isinstance(got, tuple) and len(got) == 2):
            raise Wrong(f"expected a pair (d/dmu, d/dsigma), got {type(got).__name__}")
        eps = torch.randn(200_000, generator=g, dtype=torch.float64)
        samples = torch.exp(mu + sigma * eps)                    # f(z) = exp z, z = μ + σ ε
        per_sample = torch.stack([samples, eps * samples])        # each sample's gradient
        mc, se = per_sample.mean(1), per_sample.std(1) / math.sqrt(len(eps))
        for i, name in enumerate(("d/dmu", "d/dsigma")):
            if not abs(float(got[i]) - float(mc[i])) <= 5 * float(se[i]) + 1e-6:
                raise Wrong(f"wrong {name} at mu={mu:.3f}, sigma={sigma:.3f}: you have "
                            f"{float(got[i]):.5g}, the reparameterised Monte Carlo gives "
                            f"{float(mc[i]):.5g} ± {float(se[i]):.2g}; hint: E[exp z] = exp(μ + σ²/2)")
    return "agrees with the reparameterised Monte Carlo gradient (200,000 draws) at 2 random points"
