"""Chapters 1 and 2: the autoencoder's loss and reconstructions, the codes of real faces and
how to fit and compare Gaussians to them."""
from __future__ import annotations

import functools
import math

import torch

from ..losses import mse
from .checker import (Wrong, call, close_number, compare_functions, exercise, fresh_generator,
                      test_faces)
from .training import AutoEncoder, in_range, measure, train_small


@functools.cache
def book_model(name: str):
    from .. import store
    return store.load(name)


@functools.cache
def first_codes(n: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return book_model("ae").encode(test_faces(n))


def image_pair(g, dtype=torch.float32) -> dict:
    """Two random batches of images of the same random shape: (x_hat, x)."""
    b, side = int(torch.randint(1, 6, (), generator=g)), int(torch.randint(2, 9, (), generator=g))
    return {k: torch.rand(b, 3, side, side, generator=g, dtype=dtype) for k in ("x_hat", "x")}


def stub_function(*args, **kwargs):
    raise NotImplementedError


# ---------------------------------------------------------------------- chapter 1
@exercise("ex-ae-mse", 1, "code", "the squared error per image", reference=lambda: mse,
          stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = [image_pair(g), image_pair(g), image_pair(g, torch.float64)]
    return compare_functions(answer, mse, cases, "average (x̂ − x)² over the channels and pixels "
                             "of each image, keeping one number per image")


def reconstruct(model, images):
    with torch.no_grad():
        return model.decode(model.encode(images))


@exercise("ex-ae-reconstruct", 1, "code", "reconstruct faces with the trained autoencoder",
          reference=lambda: reconstruct, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = [dict(model=book_model("ae"), images=test_faces(n, g)) for n in (3, 8)]
    return compare_functions(answer, reconstruct, cases, "decode the code: "
                             "model.decode(model.encode(images))", rtol=1e-3, atol=1e-4)


def mean_face_ratio() -> float:
    x = test_faces(256)
    with torch.no_grad():
        ae = float(mse(book_model("ae")(x), x).mean())
    return float(mse(x.mean(0, keepdim=True).expand_as(x), x).mean()) / ae


@exercise("ex-ae-mean-face", 1, "predict", "how much better than the average face?",
          reference=mean_face_ratio, stub=lambda: ...)
def _(answer):
    return close_number(answer, mean_face_ratio(), "the mean face's error / the ae's error",
                        rtol=2e-3)


@exercise("ex-ae-train-small", 1, "training", "train a small autoencoder",
          reference=lambda: train_small("ae", "mse"), stub=lambda: ...)
def _(answer):
    # measured on 10 draws of 128 faces: 0.39-0.62 after 128 steps (seeds 0-9), 0.79-0.87
    # after 64 (seeds 0-2); an untrained model is far above 1
    return in_range(measure(answer, AutoEncoder), most=0.7)


# ---------------------------------------------------------------------- chapter 2
def fit_diagonal_gaussian(codes):
    return codes.mean(dim=0), codes.std(dim=0)


@exercise("ex-fit-diagonal", 2, "code", "one Gaussian per coordinate",
          reference=lambda: fit_diagonal_gaussian, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = [dict(codes=torch.randn(int(torch.randint(5, 50, (), generator=g)),
                                    int(torch.randint(2, 9, (), generator=g)), generator=g) * 3 + 1)
             for _ in range(3)]
    return compare_functions(answer, fit_diagonal_gaussian, cases, "mean and standard deviation "
                             "over the faces (dim=0), one pair per coordinate; torch's default std")


def frechet_diagonal(mean1, std1, mean2, std2):
    return ((mean1 - mean2) ** 2).sum() + ((std1 - std2) ** 2).sum()


@exercise("ex-frechet-diagonal", 2, "code", "the Fréchet distance of two diagonal Gaussians",
          reference=lambda: frechet_diagonal, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    cases = []
    for _ in range(3):
        n = int(torch.randint(1, 9, (), generator=g))
        cases.append(dict(mean1=torch.randn(n, generator=g), std1=torch.rand(n, generator=g) + 0.1,
                          mean2=torch.randn(n, generator=g), std2=torch.rand(n, generator=g) + 0.1))
    return compare_functions(answer, frechet_diagonal, cases, "for diagonal covariances the trace "
                             "term tr(S1 + S2 − 2 (S1 S2)^½) is Σ (σ1 − σ2)²")


def expected_norm(L: int) -> float:
    return math.sqrt(2) * math.exp(math.lgamma((L + 1) / 2) - math.lgamma(L / 2))


@exercise("ex-gaussian-norm", 2, "derivation", "how long is a standard normal vector?",
          reference=lambda: expected_norm, stub=lambda: stub_function)
def _(answer):
    g = fresh_generator()
    dims = [int(torch.randint(1, 4, (), generator=g)), int(torch.randint(100, 200, (), generator=g))]
    for L in dims:
        got = call(answer, dict(L=L), f"at L={L}")
        norms = torch.randn(100_000, L, generator=g, dtype=torch.float64).norm(dim=1)
        mc, se = float(norms.mean()), float(norms.std()) / math.sqrt(len(norms))
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Wrong(f"expected a number at L={L}, got {type(got).__name__}") from None
        if not abs(got - mc) <= 5 * se + 1e-4:
            raise Wrong(f"wrong value at L={L}: you have {got:.5g}, Monte Carlo gives {mc:.5g} ± "
                        f"{se:.2g}; hint: ‖z‖ has a chi distribution; √L is only its large-L limit")
    return f"agrees with Monte Carlo (100,000 draws) at L = {dims[0]} and {dims[1]}"


def code_spread() -> float:
    std = first_codes().std(dim=0)
    return float(std.max() / std.min())


@exercise("ex-ae-code-spread", 2, "predict", "how unequal are the code coordinates?",
          reference=code_spread, stub=lambda: ...)
def _(answer):
    return close_number(answer, code_spread(), "largest / smallest std of the ae's codes", rtol=2e-3)

