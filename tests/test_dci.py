"""Tests of vaebook.metrics.dci on codes whose answer is known: a copy of the factors (every score
1), a code whose dims each mix two factors equally (disentanglement and completeness 1/2 with four
factors), a circular factor read as (cos, sin), and categorical factors as one-hot columns."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vaebook.metrics import dci as DCI


def factors(n=4000, k=4, seed=0):
    return torch.rand(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_a_permuted_rescaled_copy_of_the_factors_scores_one():
    f = factors()
    codes = (f * torch.tensor([3.0, 0.2, 10.0, 1.0], dtype=torch.float64))[:, [2, 0, 3, 1]]
    result = DCI.dci(codes, DCI.factor_targets(f, [0, 0, 0, 0]))
    assert result.disentanglement > 0.99 and result.completeness > 0.99
    assert result.informativeness > 0.99
    assert result.importance.argmax(1).tolist() == [2, 0, 3, 1]


def test_dims_that_each_mix_two_factors_score_one_half():
    """Each dim is f_a ± f_b: its importance splits equally over two of four factors, entropy
    log 2 in base 4 = 1/2; each factor is split over two dims likewise."""
    f = factors(seed=1)
    codes = torch.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2] + f[:, 3], f[:, 2] - f[:, 3]], 1)
    result = DCI.dci(codes, DCI.factor_targets(f, [0, 0, 0, 0]))
    assert result.disentanglement == pytest.approx(0.5, abs=0.02)
    assert result.completeness == pytest.approx(0.5, abs=0.02)
    assert result.informativeness > 0.99, "all the information is there, only mixed"


def test_a_missing_factor_lowers_informativeness_not_disentanglement():
    f = factors(seed=2)
    result = DCI.dci(f[:, :3], DCI.factor_targets(f, [0, 0, 0, 0]))
    assert result.r2[3] < 0.01 and result.r2[:3].min() > 0.99
    assert result.informativeness == pytest.approx(0.75, abs=0.01)
    assert result.importance[:, 3].sum() < 0.05 * result.importance[:, :3].sum(), "noise weights only"
    assert result.disentanglement > 0.9


def test_a_circular_factor_is_read_from_cos_and_sin_and_categories_from_one_hot():
    g = torch.Generator().manual_seed(3)
    hue, colour = torch.rand(4000, generator=g, dtype=torch.float64), torch.randint(3, (4000,), generator=g)
    f = torch.stack([hue, colour.double()], 1)
    targets = DCI.factor_targets(f, [0, 3], circular=(0,))
    assert [t.shape for t in targets] == [(4000, 2), (4000, 3)]
    np.testing.assert_array_equal(targets[1].sum(1), np.ones(4000))
    ring = torch.stack([torch.cos(2 * math.pi * hue), torch.sin(2 * math.pi * hue)], 1)
    one_hot = torch.nn.functional.one_hot(colour, 3).double()
    result = DCI.dci(torch.cat([ring, one_hot[:, :2]], 1), targets)
    assert result.r2.min() > 0.99
    assert result.importance[:2, 0].min() > 10 * result.importance[:2, 1].max(), "the ring is the hue's"
    as_a_line = DCI.dci(torch.cat([ring, one_hot[:, :2]], 1), DCI.factor_targets(f, [0, 3]))
    assert as_a_line.r2[0] < 0.9, "a linear read-out of the raw hue cannot follow the circle"
