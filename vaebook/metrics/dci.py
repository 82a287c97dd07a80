"""DCI: disentanglement, completeness and informativeness (Eastwood & Williams 2018).

Fit a regressor that predicts every ground-truth factor from the code, and read off how important
each latent dim is for each factor: an importance matrix R (L dims × K factors). Then

- disentanglement of dim j: 1 − H_K(P_j·), with P_j· its row of R normalised to sum 1 and H_K the
  entropy in base K: 1 when the dim matters for one factor only, 0 when for all alike. The code's
  score weights each dim by its share of the total importance.
- completeness of factor k: 1 − H_L(P_·k), its column normalised, in base L: 1 when one dim alone
  predicts the factor. Weighted by the factor's share of the importance, as disentanglement_lib does.
- informativeness: how well the factors are predicted at all, here the held-out R² (1 is perfect).

The regressor is this module's choice, so it is named: ridge regression of standardised targets on
standardised codes, importance |weight|. A linear read-out, as Eastwood & Williams' lasso; their
random forest (and disentanglement_lib's boosted trees) would also credit nonlinear relations.
Targets per factor (:func:`factor_targets`): a continuous factor is one column, a categorical one
its one-hot columns, a circular one (a hue in [0, 1)) its cos and sin; a factor's importance for a
dim is the sum over its columns. Shapes: N images, L latent dims, K factors.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, float)


def factor_targets(factors, levels, circular=()) -> list[np.ndarray]:
    """(N, K) factors -> K arrays (N, c_k): one column for a continuous factor (levels 0), one-hot
    columns for a categorical one (levels > 0), (cos, sin) of 2π·value for the indices in `circular`."""
    f = _numpy(factors)
    out = []
    for k, n_levels in enumerate(levels):
        if k in circular:
            out.append(np.stack([np.cos(2 * math.pi * f[:, k]), np.sin(2 * math.pi * f[:, k])], 1))
        elif n_levels:
            out.append(np.eye(n_levels)[f[:, k].round().astype(int)])
        else:
            out.append(f[:, k:k + 1])
    return out


class DCI(NamedTuple):
    disentanglement: float       # importance-weighted mean over dims of 1 − H_K(P_j·)
    completeness: float          # importance-weighted mean over factors of 1 − H_L(P_·k)
    informativeness: float       # mean held-out R² over factors
    importance: np.ndarray       # (L, K) R
    per_dim: np.ndarray          # (L,) disentanglement of each dim
    per_factor: np.ndarray       # (K,) completeness of each factor
    r2: np.ndarray               # (K,) held-out R² of each factor


def _entropy_rows(p: np.ndarray, base: int) -> np.ndarray:
    """Rows of non-negative weights -> (rows,) entropy of each normalised row, in base `base`."""
    p = p / np.maximum(p.sum(1, keepdims=True), 1e-300)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(1) / math.log(base)


def _standardise(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (a - ref.mean(0)) / np.maximum(ref.std(0), 1e-12)


def dci(codes, targets: list, train_fraction: float = 0.8, ridge: float = 1e-3) -> DCI:
    """DCI of codes (N, L) against per-factor targets (:func:`factor_targets`). The first
    `train_fraction` of the rows fits one ridge regression (penalty `ridge` × N on the standardised
    weights) per target column; the rest give the held-out R²."""
    z = _numpy(codes)
    n_train = int(train_fraction * len(z))
    z_train, z_test = _standardise(z[:n_train], z[:n_train]), _standardise(z[n_train:], z[:n_train])
    gram = z_train.T @ z_train + ridge * n_train * np.eye(z.shape[1])
    importance, r2 = [], []
    for t in targets:
        t = _numpy(t).reshape(len(z), -1)
        scale = np.maximum(t[:n_train].std(0), 1e-12)
        y_train = (t[:n_train] - t[:n_train].mean(0)) / scale
        y_test = (t[n_train:] - t[:n_train].mean(0)) / scale
        w = np.linalg.solve(gram, z_train.T @ y_train)                      # (L, c_k)
        importance.append(np.abs(w).sum(1))
        residual = ((y_test - z_test @ w) ** 2).sum()
        r2.append(1 - residual / max(((y_test - y_test.mean(0)) ** 2).sum(), 1e-300))
    r = np.stack(importance, 1)                                             # (L, K)
    num_dims, num_factors = r.shape
    per_dim = 1 - _entropy_rows(r, num_factors)
    per_factor = 1 - _entropy_rows(r.T, num_dims)
    total = max(r.sum(), 1e-300)
    return DCI(float((per_dim * r.sum(1)).sum() / total), float((per_factor * r.sum(0)).sum() / total),
               float(np.mean(r2)), r, per_dim, per_factor, np.array(r2))
