"""The small training exercises (chapters 1, 5 and 6): 128 steps on a subset of the faces,
under a minute on two CPU cores, and the checks of the trained model's range."""
from __future__ import annotations

import torch

from ..losses import kl_divergence, mse
from ..models import AutoEncoder, VAE, ModelConfig, build_model
from .checker import Wrong, fresh_generator, test_faces

SMALL = dict(latent_dim=10, channels=(8, 16, 32, 64))   # a quarter of the book's widths
STEPS = dict(train_size=2048, batch_size=32, epochs=2)   # 2 x 64 = 128 steps


def train_small(kind: str, objective: str, **train) -> torch.nn.Module:
    """The reference solution: a small model of `kind` trained for 128 steps on 2,048 faces."""
    from ..data.loading import load_dataset
    from ..train import TrainConfig, fit
    model = build_model(ModelConfig(kind, **SMALL), seed=0)
    config = TrainConfig(objective=objective, lr=2e-3, **STEPS, **train)
    data = load_dataset("faces", "train", limit=config.train_size)
    fit(model, data, None, config, device="cpu", progress=False)
    return model


def measure(model, cls, n: int = 128) -> dict:
    """MSE of the reconstructions (of the posterior mean for a VAE), the mean face's MSE, and
    for a VAE the mean KL, on `n` random test faces."""
    if not isinstance(model, cls):
        raise Wrong(f"expected a trained {cls.__name__}, got {type(model).__name__}")
    x = test_faces(n, fresh_generator())
    model.eval()
    with torch.no_grad():
        if isinstance(model, VAE):
            _, mu, logvar = model.encode(x)
            x_hat, kl = model.decode(mu), float(kl_divergence(mu, logvar).mean())
        else:
            x_hat, kl = model(x), None
    mean_face = x.mean(0, keepdim=True).expand_as(x)
    return dict(mse=float(mse(x_hat, x).mean()), baseline=float(mse(mean_face, x).mean()), kl=kl)


def in_range(m: dict, most: float, kl_range=None) -> str:
    """Raise Wrong unless the model beats `most` x the mean face's error (and its KL is in range)."""
    ratio = m["mse"] / m["baseline"]
    if not ratio < most:
        raise Wrong(f"not trained enough: its squared error is {ratio:.2f} x the mean face's, "
                    f"expected below {most}; hint: train for the steps the exercise gives")
    text = f"squared error {ratio:.2f} x the mean face's"
    if kl_range is not None:
        low, high = kl_range
        if not low <= m["kl"] <= high:
            raise Wrong(f"its KL is {m['kl']:.3g} nats per image, expected between {low} and {high}; "
                        "hint: check β and σ in the TrainConfig")
        text += f", KL {m['kl']:.1f} nats"
    return text + " on 128 random test faces"


__all__ = ["AutoEncoder", "VAE", "train_small", "measure", "in_range"]
