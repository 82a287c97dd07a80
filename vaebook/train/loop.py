"""One training loop, `fit`, for the autoencoder, the VAEs and the oracle.

What it does beyond the textbook loop, and why:
- every epoch's randomness (shuffling, the VAE's noise) is seeded from (seed, epoch), so a run
  resumed from an epoch checkpoint continues exactly as the uninterrupted run would have;
- on CUDA it uses bf16 autocast and channels_last (fast on tensor cores); on CPU plain float32;
- gradients are clipped, and a NaN/inf loss stops training with a message instead of silently
  writing a broken model;
- after each epoch the state (weights, optimiser, history) is written atomically to `run_file`,
  once before the validation pass and once after, and `fit` resumes from it when it exists
  (after the run file has checked that it was made by the same config, model and data).
"""
from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import losses
from .config import OBJECTIVES, History, NonFiniteLossError, TrainConfig  # noqa: F401


def pick_device(device=None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_loss(model, x, target, cfg: TrainConfig, step: int) -> tuple[torch.Tensor, dict]:
    """Mean loss over the batch and its parts (detached 0-d tensors, left on the device so that
    reading them does not wait for the GPU), for cfg.objective."""
    if cfg.objective == "mse":
        loss = losses.mse(model(x), x).mean()
        return loss, {"loss": loss.detach()}
    if cfg.objective == "factors":
        loss = losses.factor_loss(model.split_outputs(model(x)), target, model.config.factor_levels).mean()
        return loss, {"loss": loss.detach()}
    x_hat, mu, logvar = model(x)
    x_hat, mu, logvar = x_hat.float(), mu.float(), logvar.float()
    if cfg.objective == "elbo":
        loss, recon, kl = losses.negative_elbo(x_hat, x, mu, logvar, sigma=cfg.sigma, beta=cfg.beta)
    else:
        c = losses.capacity(step, cfg.capacity_max, cfg.capacity_steps)
        loss, recon, kl = losses.capacity_loss(x_hat, x, mu, logvar, sigma=cfg.sigma, gamma=cfg.gamma, c=c)
    loss = loss.mean()
    return loss, {"loss": loss.detach(), "recon": recon.detach().mean(), "kl": kl.detach().mean()}


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


# On a GPU, reading a number back (`.item()`, `if tensor:`) waits for all queued work, so the
# loss is checked for NaN/inf only every CHECK_EVERY steps there; on the CPU every step is free.
CHECK_EVERY = 25


def check_loss(loss_ok: torch.Tensor, last: torch.Tensor, step: int, since: int, cfg: TrainConfig) -> None:
    """Raise NonFiniteLossError if any loss since step `since` was NaN or infinite."""
    if not bool(loss_ok):
        where = f"at step {step}" if since >= step else f"between steps {since} and {step}"
        raise NonFiniteLossError(
            f"loss became {float(last)} {where}: lower lr (now {cfg.lr}) or raise "
            f"sigma (now {cfg.sigma}); the last good checkpoint is kept")


def run_epoch(model, loader, cfg, device, optimiser=None, step=0, desc="", check_every=None):
    """One pass over `loader`; trains when an optimiser is given. Returns (averages, step).
    The loss is checked for NaN/inf every `check_every` batches (default: 1 on the CPU,
    CHECK_EVERY on a GPU) and at the end."""
    training = optimiser is not None
    model.train(training)
    cuda = device.type == "cuda"
    every = check_every or (CHECK_EVERY if cuda else 1)
    sums, count, batches = {}, 0, 0
    loss_ok, since = torch.ones((), dtype=torch.bool, device=device), step
    # tqdm.auto's notebook/asyncio bar calls iter() on a plain iterable when it is built and
    # again when it is iterated: with a DataLoader that starts two epochs' worth of workers and
    # draws two shuffle seeds. Handing it one iterator makes the loader start exactly once.
    batches_iter = tqdm(iter(loader), total=len(loader), desc=desc, leave=False, disable=not desc)
    for x, target in batches_iter:
        x = x.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.set_grad_enabled(training), torch.autocast("cuda", torch.bfloat16, enabled=cuda):
            loss, parts = compute_loss(model, x, target, cfg, step)
        loss_ok &= torch.isfinite(parts["loss"])
        batches += 1
        if batches % every == 0:
            check_loss(loss_ok, parts["loss"], step, since, cfg)
            since = step + 1
        if training:
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimiser.step()
            step += 1
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v.double() * len(x)
        count += len(x)
    if count == 0:
        raise ValueError(f"no full batch to train on: the dataset has fewer images than "
                         f"batch_size={cfg.batch_size}; lower batch_size or use more data")
    check_loss(loss_ok, parts["loss"], step - training, since, cfg)
    return {k: float(v) / count for k, v in sums.items()}, step


MODEL_KINDS = {"mse": ("ae",), "elbo": ("vae",), "capacity": ("vae",), "factors": ("oracle",)}


def check_objective(model, cfg: TrainConfig) -> None:
    kind = getattr(getattr(model, "config", None), "kind", None)
    if kind is not None and kind not in MODEL_KINDS[cfg.objective]:
        raise ValueError(f"objective {cfg.objective!r} trains a {' or '.join(MODEL_KINDS[cfg.objective])} "
                         f"model, not a {kind!r}")


def check_finite(model, epoch: int) -> None:
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteLossError(f"weights became NaN/inf after epoch {epoch} ({', '.join(bad[:3])}); "
                                 "the last good run file is kept")


def fit(model, train_data, valid_data=None, config: TrainConfig = TrainConfig(), *,
        device=None, run_file=None, progress: bool = True, num_workers: int = 0,
        data: dict | None = None) -> History:
    """Train `model` on `train_data` (a Dataset of (image, target) pairs) for config.epochs.

    `run_file` keeps the run between epochs: any object with ``exists()``, ``save(model,
    optimiser, history, step, config, data, rng)`` and ``restore(model, optimiser, config, data)``
    (:class:`vaebook.store.runs.RunFile` is the book's; the loop itself knows no file format).
    The state is saved after every epoch's training pass (before its validation, so a validation
    that fails loses no epoch) and again after validation. An existing run is resumed from (a
    finished run returns at once) once the run file has checked that it was made with this
    config, model and `data`, a description of the training data such as
    ``{"dataset": "faces", "images": 60000}``. Returns the per-epoch History."""
    check_objective(model, config)
    device = pick_device(device)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    history, step = History(), 0
    loader_kw = dict(batch_size=config.batch_size, num_workers=num_workers,
                     pin_memory=device.type == "cuda")

    def save(rng=None):
        if run_file is not None:
            run_file.save(model, optimiser, history, step, config, data, rng)

    if run_file is not None and run_file.exists():
        rows, step, record, rng = run_file.restore(model, optimiser, config, data)
        history = History(rows)
        if record.get("pending_validation") and valid_data is not None:
            if "cpu" in rng:
                set_rng_state(rng, device)  # as if the interruption had not happened
            validate_epoch(model, valid_data, history.epochs[-1], config, device, step, loader_kw)
            save()
    for epoch in range(len(history.epochs), config.epochs):
        start = time.perf_counter()
        seed = epoch_seed(config.seed, epoch)
        torch.manual_seed(seed)  # the VAE's noise for this epoch
        shuffle = torch.Generator().manual_seed(seed)
        loader = DataLoader(train_data, shuffle=True, generator=shuffle, drop_last=True, **loader_kw)
        desc = f"epoch {epoch + 1}/{config.epochs}" if progress else ""
        train_avg, step = run_epoch(model, loader, config, device, optimiser, step, desc)
        row = {"epoch": epoch + 1, "step": step, **{f"train_{k}": v for k, v in train_avg.items()},
               "seconds": time.perf_counter() - start}
        history.epochs.append(row)
        if run_file is not None:
            check_finite(model, epoch + 1)  # never overwrite a good run with broken weights
            save(rng_state(device) if valid_data is not None else None)
        if valid_data is not None:
            validate_epoch(model, valid_data, row, config, device, step, loader_kw)
            save()
        if progress:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    model.eval()
    return history


def validate_epoch(model, valid_data, row: dict, config, device, step: int, loader_kw: dict) -> None:
    """Add the validation averages to an epoch's history row, and their time to its seconds."""
    start = time.perf_counter()
    with torch.no_grad():
        averages, _ = run_epoch(model, DataLoader(valid_data, **loader_kw), config, device, step=step)
    seconds = row.pop("seconds", 0.0) + time.perf_counter() - start
    row.update({f"valid_{k}": v for k, v in averages.items()}, seconds=seconds)


def rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
