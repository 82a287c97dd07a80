"""Tests of vaebook.metrics.disentanglement beyond plain MIG (in test_metrics.py): the two MIG estimators,
the KL bound the sampled code respects and the mean code does not, and the FactorVAE score on
synthetic codes whose answer is known (a copy of the factors, a rotated copy, too few dims)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebook.metrics import disentanglement as D
from vaebook import metrics
from vaebook.models import ModelConfig, build_model


def uniform_factors(n: int, g: torch.Generator, num_factors: int = 4) -> torch.Tensor:
    return torch.rand(n, num_factors, generator=g, dtype=torch.float64)


def idle_dim_posteriors(n=20_000):
    """Two continuous factors. Dim 0 encodes factor 0 sharply (std 0.01); dim 1 is idle: its mean
    moves by 1e-3 · factor 1 and its std is 1, so its KL is ~1e-7 nats."""
    g = torch.Generator().manual_seed(0)
    f = torch.rand(n, 2, generator=g, dtype=torch.float64)
    mu = torch.stack([4 * f[:, 0] - 2, 1e-3 * f[:, 1]], dim=1)
    logvar = torch.stack([torch.full((n,), math.log(1e-4)), torch.zeros(n)], dim=1).double()
    return mu, logvar, f, (0, 0)


def test_posterior_codes_mean_or_one_seeded_sample():
    mu, logvar, _, _ = idle_dim_posteriors(100)
    assert D.posterior_codes(mu, logvar, "mean") is mu
    a, b = D.posterior_codes(mu, logvar, "sample", seed=1), D.posterior_codes(mu, logvar, "sample", seed=1)
    assert torch.equal(a, b) and not torch.equal(a, D.posterior_codes(mu, logvar, "sample", seed=2))
    assert (a[:, 0] - mu[:, 0]).abs().max() < 0.05 and (a[:, 1] - mu[:, 1]).std() > 0.5
    with pytest.raises(ValueError, match="estimator"):
        D.posterior_codes(mu, logvar, "median")


def test_idle_dim_shows_mi_above_its_kl_with_means_but_not_with_samples():
    mu, logvar, f, levels = idle_dim_posteriors()
    check = D.mi_against_kl(mu, logvar, f, levels, seed=3)
    assert check["kl"][1] < 1e-6
    assert check["mi_mean"][1] > 1.0                   # binning stretches the 1e-3 wiggle to 20 bins
    bias = 19 * 19 / (2 * len(f))                     # the plug-in estimator's upward bias, ≈ 0.009
    assert check["mi_sample"][1] < 3 * bias           # the code the decoder sees: no information
    assert check["mi_mean"][0] > 1.0 and check["mi_sample"][0] > 1.0  # the used dim, both ways
    migs = D.mig_estimators(mu, logvar, f, levels, seed=3)
    # means credit factor 1 to the idle dim (gap ≈ 1); samples give factor 1 no dim at all (gap ≈ 0)
    assert set(migs) == {"mean", "sample"} and migs["mean"] > 0.9 and 0.4 < migs["sample"] < 0.55


def test_intervention_factors_hold_one_factor_fixed_per_vote():
    k, f = D.intervention_factors(uniform_factors, num_votes=30, batch_size=16, seed=4)
    assert k.shape == (30,) and f.shape == (30, 16, 4)
    for v in range(30):
        assert (f[v, :, k[v]] == f[v, 0, k[v]]).all()
        others = [j for j in range(4) if j != k[v]]
        assert (f[v, :, others].std(0) > 0.1).all()
    assert set(k.tolist()) == {0, 1, 2, 3}
    assert torch.equal(D.intervention_factors(uniform_factors, 30, 16, seed=4).factors, f)


def synthetic_score(encode, num_train=400, num_eval=400, num_factors=4, seed=0):
    """The FactorVAE score of codes = encode(factors) on uniform factors."""
    train = D.intervention_factors(lambda n, g: uniform_factors(n, g, num_factors), num_train, 64, seed)
    evaluation = D.intervention_factors(lambda n, g: uniform_factors(n, g, num_factors), num_eval, 64, seed + 1)
    reference = encode(uniform_factors(5000, torch.Generator().manual_seed(seed + 2), num_factors))
    return D.factor_vae_score(encode(train.factors), train.k, encode(evaluation.factors), evaluation.k,
                              reference, num_factors)


def test_factor_vae_score_is_one_for_a_disentangled_code_in_any_units_and_order():
    """Units do not matter once a dim is active (standard deviation over the data at least 0.05)."""
    scales = torch.tensor([3.0, 0.9, 10.0, 1.0], dtype=torch.float64)
    result = synthetic_score(lambda f: (f * scales)[..., [2, 0, 3, 1]])
    assert result.score == 1.0 and result.train_accuracy == 1.0
    assert result.assignment.tolist() == [2, 0, 3, 1]
    assert result.votes.shape == (4, 4) and result.votes.sum() == 400


def test_factor_vae_score_drops_for_a_rotated_code():
    """Each dim the sum or difference of two factors: fixing one factor leaves both of its dims
    equally variable, so votes split between them and about half are mispredicted."""
    def rotated(f):
        return torch.stack([f[..., 0] + f[..., 1], f[..., 0] - f[..., 1],
                            f[..., 2] + f[..., 3], f[..., 2] - f[..., 3]], dim=-1) / math.sqrt(2)
    result = synthetic_score(rotated)
    assert 0.3 < result.score < 0.65


def test_factor_vae_score_with_fewer_dims_than_factors_and_idle_dims():
    """Two of four factors encoded, plus an idle dim: at most half the votes can be right, and
    the idle dim is never chosen."""
    def partial(f):
        return torch.stack([f[..., 0], f[..., 1], 1e-3 * f[..., 2]], dim=-1)
    result = synthetic_score(partial)
    assert 0.4 < result.score <= 0.55
    assert result.assignment[2] == -1 and result.votes[2].sum() == 0


def test_idle_dims_are_pruned_by_their_standard_deviation_as_in_disentanglement_lib():
    """disentanglement_lib keeps a dim when sqrt(variance) >= 0.05: a dim of std 0.1 (variance
    0.01, which a variance threshold of 0.05 would drop) takes part, one of std 0.04 does not."""
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(20_000, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.1, 0.04])
    codes = torch.randn(6, 64, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.1, 0.04])
    codes[:3, :, 1] *= 0.1                       # votes 0-2 hold dim 1 nearly still, votes 3-5
    codes[3:, :, 0] *= 0.1                       # dim 0, and every vote holds dim 2 stiller still
    codes[:, :, 2] *= 0.01
    assert D.least_variable_dims(codes, reference).tolist() == [1, 1, 1, 0, 0, 0]
    assert D.least_variable_dims(codes, reference, threshold=0.0).tolist() == [2] * 6
    assert D.least_variable_dims(codes, reference, threshold=0.2).tolist() == [0] * 6


def test_factor_vae_score_without_active_dims_is_zero():
    result = synthetic_score(lambda f: 1e-3 * f)
    assert result.score == 0.0 and (result.assignment == -1).all()


def test_faces_interventions_render_once_and_encode_like_the_dataset():
    rendered = D.faces_interventions(n_train=2, n_eval=1, batch_size=3, seed=5)
    assert rendered.train_images.shape == (2, 3, 3, 64, 64) and rendered.train_images.dtype == torch.uint8
    assert rendered.eval_images.shape == (1, 3, 3, 64, 64) and rendered.num_factors >= 10
    model = build_model(ModelConfig("vae", image_size=64, channels=(4, 8), latent_dim=3), seed=0)
    codes = D.encode_interventions(model, rendered.train_images, batch_size=4)
    floats = rendered.train_images.flatten(0, 1).float() * (1 / 255)
    torch.testing.assert_close(codes.flatten(0, 1), metrics.encode_means(model, floats), rtol=1e-5, atol=1e-6)
    reference = metrics.encode_means(model, floats)
    result = D.faces_factor_vae_score(model, rendered, reference, threshold=0.0)
    assert 0.0 <= result.score <= 1.0 and result.votes.shape == (3, rendered.num_factors)
    again = D.faces_interventions(n_train=2, n_eval=1, batch_size=3, seed=5)
    assert torch.equal(again.train_images, rendered.train_images)  # seeded: same faces for every model
    assert np.array_equal(again.train_k.numpy(), rendered.train_k.numpy())
