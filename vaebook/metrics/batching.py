"""Running a trained model over many images: eval mode, no gradients, fixed-size batches.

Every measurement in :mod:`vaebook.metrics`, :mod:`vaebook.metrics.likelihood`, :mod:`vaebook.metrics.aggregate`
and :mod:`vaebook.metrics.disentanglement` goes through these helpers, so that a score never depends on
the batch size: in eval mode BatchNorm uses its running statistics, where in train mode it would
normalise each batch by its own statistics (and overwrite the running ones). Results come back
on the CPU. Shapes: N images, L latent dims.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def evaluating(model: torch.nn.Module):
    """Eval mode and no gradients inside the block; the model's previous mode after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def batched(model, fn, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """torch.cat of fn(batch) over batches of images (N, ...), model in eval mode, on the CPU."""
    device = device_of(model)
    with evaluating(model):
        return torch.cat([fn(x.to(device)).cpu() for x in images.split(batch_size)])


def mean_code(model, x: torch.Tensor) -> torch.Tensor:
    """The deterministic code of x: mu for a VAE (encode returns (z, mu, logvar)), h for an AE."""
    out = model.encode(x)
    return out[1] if isinstance(out, tuple) else out


def encode_means(model, images: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """(N, 3, S, S) -> (N, L): posterior means E_q[z|x] for a VAE, codes h for an autoencoder."""
    return batched(model, lambda x: mean_code(model, x), images, batch_size)


def encode_posteriors(vae, images: torch.Tensor, batch_size: int = 200):
    """(N, 3, S, S) -> (mu, logvar), each (N, L): the fitted posteriors q(z|x) = N(mu, diag(exp(logvar)))."""
    both = batched(vae, lambda x: torch.cat(vae.encode(x)[1:], dim=1), images, batch_size)
    return both.chunk(2, dim=1)


def decode(model, z: torch.Tensor, batch_size: int = 200) -> torch.Tensor:
    """(N, L) -> (N, 3, S, S): decode codes in batches, in eval mode (prior samples, traversals)."""
    return batched(model, model.decode, z, batch_size)


def posterior_sample(mu: torch.Tensor, logvar: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """z = mu + sigma * eps, (N, L), with eps drawn from generator g on the CPU (so a seed gives the
    same z on any device) and then moved to mu's device."""
    eps = torch.randn(mu.shape, generator=g, dtype=torch.float32).to(mu.device, mu.dtype)
    return mu + (0.5 * logvar).exp() * eps
