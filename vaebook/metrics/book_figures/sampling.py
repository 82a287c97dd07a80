"""Stored figures of chapter 2, sampling an autoencoder's codes: the Lilliefors threshold, the bootstrap of the fitted densities' Fréchet distances, the damaged faces' distances (see :mod:`vaebook.metrics.stored`)."""
from __future__ import annotations

from ..stored import book_figure


@book_figure("ch2-lilliefors", models=())
def lilliefors_threshold() -> dict:
    """Chapter 2's threshold for the KS distance of 5,000 codes from the normal fitted to them:
    the distance that only 1% of samples of 5,000 truly normal values exceed when the normal's
    mean and standard deviation are fitted to the same values, simulated with 2,000 such samples
    (:func:`vaebook.metrics.density.lilliefors_critical`, seed 0)."""
    from .. import density
    n, level, draws = 5000, 0.01, 2000
    return {"n": n, "level": level, "draws": draws,
            "critical": density.lilliefors_critical(n, level=level, draws=draws)}


# Built on float32 network outputs: computed with torch's and oneDNN's baseline kernels instead of
# the AVX-512 ones, chapter 2's Fréchet figures moved by at most 7e-7 relative.
CH2_REL_TOL = 1e-4


def ch2_faces():
    """Chapter 2's faces: the first 5,000 training faces, and 2,000 held-out and 2,000 reference
    test faces (the first and the next 2,000)."""
    from ...data import load_dataset, stack_images
    test = load_dataset("faces", "test", limit=4000)
    return (load_dataset("faces", "train", limit=5000), stack_images(test, range(2000)),
            stack_images(test, range(2000, 4000)))


def ch2_features(model, images):
    """The oracle's features of images (N, 3, 64, 64), 200 at a time, as chapter 2 computes them."""
    from ..measures import oracle_features
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
    from ... import store
    from ..measures import frechet_distance
    oracle = store.load("oracle", expect=store.get_preset("oracle").model)
    _, x_held, x_ref = ch2_faces()
    reference = ch2_features(oracle, x_ref)
    sets = {"floor": x_held, **damaged_faces(x_held)}
    return {name: frechet_distance(ch2_features(oracle, x), reference) for name, x in sets.items()}


def fd_difference_bootstrap(features_a, features_b, reference, draws=30, seed=0) -> list:
    """FD(a) − FD(b), each against the reference, for `draws` bootstrap resamples: each time
    the same resample (with replacement) of the rows of all three feature sets (N, L)."""
    import torch
    from ..measures import frechet_distance
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
    from ... import store
    from ...data import stack_images
    from .. import density
    from ..batching import decode, encode_means
    from ..measures import frechet_distance
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
