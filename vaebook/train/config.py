"""What a training run is: its configuration (:class:`TrainConfig`) and its per-epoch record
(:class:`History`). Plain data with no training code, so that the store (presets, run files)
can describe runs without importing the training loop."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

OBJECTIVES = ("mse", "elbo", "capacity", "factors")


@dataclass(frozen=True)
class TrainConfig:
    objective: str = "mse"        # "mse" (autoencoder), "elbo" (β-VAE), "capacity" (Burgess), "factors" (oracle)
    epochs: int = 10              # passes over the training images
    batch_size: int = 128         # images per step
    lr: float = 1e-3              # Adam learning rate
    beta: float = 1.0             # KL weight; 1 is the plain VAE
    sigma: float = 0.1            # decoder std σ of the Gaussian likelihood, in pixel units [0, 1]
    capacity_max: float = 25.0    # capacity objective: final target KL C, in nats
    capacity_steps: int = 20_000  # capacity objective: steps over which C rises from 0
    gamma: float = 100.0          # capacity objective: weight γ on |KL − C|
    grad_clip: float = 10.0       # max gradient norm; 0 turns clipping off
    train_size: int | None = None  # use only the first N training images (None: the whole split)
    seed: int = 0                 # seeds init, shuffling and noise

    def __post_init__(self):
        for name in ("lr", "beta", "sigma", "capacity_max", "gamma", "grad_clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"TrainConfig.{name} must be a finite number, got {value!r}")
        if self.train_size is not None and self.train_size < 1:
            raise ValueError(f"TrainConfig.train_size must be >= 1 (or None: the whole split), "
                             f"got {self.train_size}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"TrainConfig.objective={self.objective!r} is not one of {OBJECTIVES}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.beta < 0 or self.gamma < 0 or self.grad_clip < 0:
            raise ValueError("TrainConfig.beta, gamma and grad_clip must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


@dataclass
class History:
    """Per-epoch averages of the loss and its parts, for training and validation."""
    epochs: list[dict] = field(default_factory=list)

    def column(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs]
