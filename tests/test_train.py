"""Tests of vaebook.train.fit on tiny models and tiny tensor datasets (CPU, a few seconds)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.utils.data import TensorDataset

import vaebook.train.loop as train_mod
from vaebook.store.tensorfile import read_tensors, write_tensors
from vaebook.models import ModelConfig, build_model
from vaebook.store import ResumeError, RunFile, load_run
from vaebook.train import NonFiniteLossError, TrainConfig, fit

S = 16
AE = ModelConfig("ae", latent_dim=4, channels=(4, 8), image_size=S)
VAE = ModelConfig("vae", latent_dim=4, channels=(4, 8), image_size=S)
ORACLE = ModelConfig("oracle", latent_dim=8, channels=(4, 8), image_size=S, factor_levels=(0, 3))
ELBO = TrainConfig("elbo", epochs=3, batch_size=8, lr=1e-2, sigma=0.3)


def blob_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of a bright square on a dark background: position, size and colour vary.
    Returns (images (n, 3, S, S), factors (n, 2)): brightness (continuous) and colour (3 classes)."""
    g = torch.Generator().manual_seed(seed)
    imgs = torch.full((n, 3, S, S), 0.1)
    colour = torch.randint(0, 3, (n,), generator=g)
    bright = torch.rand(n, generator=g) * 0.6 + 0.4
    for i in range(n):
        side = int(torch.randint(4, 9, (1,), generator=g))
        r, c = (int(v) for v in torch.randint(0, S - side + 1, (2,), generator=g))
        imgs[i, colour[i], r:r + side, c:c + side] = bright[i]
    return imgs, torch.stack([bright, colour.float()], 1)


@pytest.fixture(scope="module")
def data():
    imgs, _ = blob_images(32)
    return TensorDataset(imgs, torch.zeros(len(imgs)))


def run(model_cfg, cfg, train_data, valid=None, **kw):
    model = build_model(model_cfg, seed=0)
    history = fit(model, train_data, valid, cfg, device="cpu", progress=False, **kw)
    return model, history


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history.epochs]


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --- learning ------------------------------------------------------------------------------------

def test_autoencoder_mse_loss_goes_down(data):
    cfg = TrainConfig("mse", epochs=4, batch_size=8, lr=1e-2)
    model, history = run(AE, cfg, data, valid=data)
    train_loss, valid_loss = history.column("train_loss"), history.column("valid_loss")
    assert len(history.epochs) == 4 and history.column("epoch") == [1, 2, 3, 4]
    assert history.column("step") == [4, 8, 12, 16]  # 32 images / 8 per batch
    assert train_loss[-1] < 0.7 * train_loss[0], train_loss
    assert valid_loss[-1] < valid_loss[0], valid_loss
    assert not model.training  # fit leaves the model in eval mode


def test_vae_elbo_loss_goes_down_and_reports_its_parts(data):
    cfg = dataclasses.replace(ELBO, epochs=4)
    _, history = run(VAE, cfg, data, valid=data)
    loss = history.column("train_loss")  # in nats, with the Gaussian's constant: may go below 0
    assert loss[0] - loss[-1] > 0.3 * abs(loss[0]), loss
    for row in history.epochs:  # loss = recon + β·KL holds for the averages too
        assert row["train_loss"] == pytest.approx(row["train_recon"] + cfg.beta * row["train_kl"], rel=1e-5)
        assert row["train_kl"] >= 0 and {"valid_loss", "valid_recon", "valid_kl"} <= row.keys()


def test_capacity_objective_trains(data):
    cfg = TrainConfig("capacity", epochs=2, batch_size=8, lr=1e-2, sigma=0.3,
                      capacity_max=5.0, capacity_steps=4, gamma=10.0)
    _, history = run(VAE, cfg, data)
    assert all(math.isfinite(v) for v in history.column("train_loss"))
    assert history.column("step") == [4, 8]


def test_oracle_learns_factors():
    imgs, factors = blob_images(48, seed=1)
    data = TensorDataset(imgs, factors)
    cfg = TrainConfig("factors", epochs=8, batch_size=8, lr=3e-3)
    model, history = run(ORACLE, cfg, data, valid=data)
    loss = history.column("valid_loss")
    assert loss[-1] < 0.7 * loss[0], loss
    # it reads the colour class better than chance (1/3) on the images it saw
    with torch.no_grad():
        pred = model.predict(imgs)
    accuracy = (pred[:, 1] == factors[:, 1]).float().mean().item()
    assert accuracy > 0.6, accuracy


# --- reproducibility -----------------------------------------------------------------------------

def test_same_seed_gives_identical_losses_and_weights(data):
    m1, h1 = run(VAE, ELBO, data, valid=data)
    m2, h2 = run(VAE, ELBO, data, valid=data)
    assert without_seconds(h1) == without_seconds(h2)
    assert_same_weights(m1, m2)


def test_different_seed_gives_different_losses(data):
    _, h1 = run(VAE, ELBO, data)
    _, h2 = run(VAE, dataclasses.replace(ELBO, seed=1), data)  # same initial weights, other shuffles/noise
    assert h1.column("train_loss") != h2.column("train_loss")


class Recorded(torch.utils.data.Dataset):
    """A dataset that logs the order its items are read in."""

    def __init__(self, data):
        self.data, self.order = data, []

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.order.append(i)
        return self.data[i]


def test_each_epoch_shuffles_differently_and_by_the_seed(data):
    orders = {}
    for seed in (0, 1):
        rec = Recorded(data)
        run(AE, TrainConfig("mse", epochs=2, batch_size=8, seed=seed), rec)
        n = len(data)
        assert len(rec.order) == 2 * n
        first, second = rec.order[:n], rec.order[n:]
        assert sorted(first) == sorted(second) == list(range(n))  # every image once per epoch
        assert first != second and first != list(range(n))
        orders[seed] = rec.order
    assert orders[0] != orders[1]


def test_each_epoch_starts_the_loader_once(data, monkeypatch):
    """One iterator per pass: a second one would start a second set of worker processes and
    draw a second shuffle seed (tqdm's notebook bar calls iter() on a plain iterable twice)."""
    started = []
    real_iter = torch.utils.data.DataLoader.__iter__
    monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__",
                        lambda self: started.append(1) or real_iter(self))
    run(AE, TrainConfig("mse", epochs=2, batch_size=8), data, data)
    assert len(started) == 4  # two epochs, each one training pass and one validation pass
    started.clear()
    model = build_model(AE, seed=0)
    fit(model, data, data, TrainConfig("mse", epochs=1, batch_size=8), device="cpu", progress=True)
    assert len(started) == 2  # with the progress bar shown too


# --- resuming --------------------------------------------------------------------------------------

def test_resume_gives_the_uninterrupted_run(data, tmp_path):
    """2 epochs, then the same run asked for 3: identical to 3 epochs in one go."""
    full_model, full = run(VAE, ELBO, data, valid=data)
    run_file = tmp_path / "run.safetensors"
    _, first = run(VAE, dataclasses.replace(ELBO, epochs=2), data, valid=data, run_file=RunFile(run_file))
    assert len(first.epochs) == 2 and run_file.exists()
    resumed_model = build_model(VAE, seed=123)  # a fresh process would build it anew
    resumed = fit(resumed_model, data, data, ELBO, device="cpu", progress=False, run_file=RunFile(run_file))
    assert without_seconds(resumed) == without_seconds(full)
    assert_same_weights(resumed_model, full_model)


def test_resume_after_an_interruption_mid_run(data, tmp_path, monkeypatch):
    """A 3-epoch run killed during epoch 3, then started again with the same command."""
    full_model, full = run(VAE, ELBO, data)
    run_file = tmp_path / "run.safetensors"
    real_run_epoch, calls = train_mod.run_epoch, []

    def interrupted(model, loader, cfg, device, optimiser=None, step=0, desc=""):
        calls.append(step)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_epoch(model, loader, cfg, device, optimiser, step, desc)

    monkeypatch.setattr(train_mod, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(VAE, ELBO, data, run_file=RunFile(str(run_file)))  # a str path works too
    monkeypatch.setattr(train_mod, "run_epoch", real_run_epoch)
    _, record = read_tensors(run_file)
    assert len(record["history"]) == 2 and record["step"] == 8

    resumed_model, resumed = run(VAE, ELBO, data, run_file=RunFile(run_file))
    assert without_seconds(resumed) == without_seconds(full)
    assert_same_weights(resumed_model, full_model)
    # a finished run returns at once, with its history and weights
    again_model = build_model(VAE, seed=7)
    again = fit(again_model, data, None, ELBO, device="cpu", progress=False, run_file=RunFile(run_file))
    assert without_seconds(again) == without_seconds(full)
    assert_same_weights(again_model, full_model)


def test_run_file_restores_the_optimiser_state(data, tmp_path):
    run_file = tmp_path / "run.safetensors"
    model, _ = run(VAE, dataclasses.replace(ELBO, epochs=1), data, run_file=RunFile(run_file))
    other = build_model(VAE, seed=9)
    opt = torch.optim.Adam(other.parameters(), lr=ELBO.lr)
    history, step, saved_cfg = load_run(run_file, other, opt)
    assert step == 4 and len(history.epochs) == 1
    assert saved_cfg == dataclasses.replace(ELBO, epochs=1).to_dict()
    assert_same_weights(other, model)
    state = opt.state_dict()["state"]
    assert len(state) == len(list(other.parameters()))
    assert all(float(s["step"]) == 4 and s["exp_avg_sq"].abs().sum() > 0 for s in state.values())


def test_resume_with_a_different_config_is_refused(data, tmp_path):
    run_file = tmp_path / "run.safetensors"
    run(VAE, dataclasses.replace(ELBO, epochs=1), data, run_file=RunFile(run_file))
    before = run_file.read_bytes()
    model = build_model(VAE, seed=0)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ResumeError, match="different TrainConfig: lr=0.01 there, 0.001 now"):
        fit(model, data, None, dataclasses.replace(ELBO, lr=1e-3), device="cpu", progress=False,
            run_file=RunFile(run_file))
    for k, v in model.state_dict().items():  # the refused run did not touch the model
        assert torch.equal(v, weights[k]), k
    assert run_file.read_bytes() == before


def test_resume_with_a_different_model_is_refused(data, tmp_path):
    run_file = tmp_path / "run.safetensors"
    run(VAE, dataclasses.replace(ELBO, epochs=1), data, run_file=RunFile(run_file))
    other = dataclasses.replace(VAE, latent_dim=5)
    with pytest.raises(ValueError, match="different model: latent_dim=4 there, 5 now"):
        run(other, ELBO, data, run_file=RunFile(run_file))


def test_resume_with_fewer_epochs_than_done_is_refused(data, tmp_path):
    run_file = tmp_path / "run.safetensors"
    run(VAE, dataclasses.replace(ELBO, epochs=2), data, run_file=RunFile(run_file))
    with pytest.raises(ValueError, match="epochs"):
        run(VAE, dataclasses.replace(ELBO, epochs=1), data, run_file=RunFile(run_file))


def test_resume_on_different_data_is_refused_and_names_the_field(data, tmp_path):
    """A CelebA run must not continue on faces (and be recorded as faces)."""
    run_file = tmp_path / "run.safetensors"
    celeba = {"dataset": "celeba", "images": 32}
    run(VAE, dataclasses.replace(ELBO, epochs=1), data, run_file=RunFile(run_file), data=celeba)
    with pytest.raises(ResumeError, match="different data: dataset='celeba' there, 'faces' now"):
        run(VAE, ELBO, data, run_file=RunFile(run_file), data={"dataset": "faces", "images": 32})
    with pytest.raises(ResumeError, match="images=32 there, 64 now"):
        run(VAE, ELBO, data, run_file=RunFile(run_file), data={"dataset": "celeba", "images": 64})
    run(VAE, ELBO, data, run_file=RunFile(run_file), data=celeba)  # the same data resumes


def test_a_damaged_run_file_is_a_clear_error(data, tmp_path):
    run_file = tmp_path / "run.safetensors"
    run_file.write_bytes(b"not a run")
    with pytest.raises(ResumeError, match="not a readable safetensors.*--fresh"):
        run(VAE, ELBO, data, run_file=RunFile(run_file))
    write_tensors(run_file, {}, {"train": ELBO.to_dict(), "history": []})  # no param_groups, no step
    with pytest.raises(ResumeError, match="damaged or from another version.*--fresh"):
        run(VAE, ELBO, data, run_file=RunFile(run_file))


class FailsOnce(torch.utils.data.Dataset):
    """Validation images of which one cannot be read, until it is repaired."""

    def __init__(self, data, bad: int):
        self.data, self.bad = data, bad

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        if i == self.bad:
            raise OSError(f"image {i} cannot be read")
        return self.data[i]


def test_an_unreadable_validation_image_loses_no_epoch(data, tmp_path):
    """The epoch is saved before validation; after the image is fixed, resuming validates it
    and the run ends exactly as an uninterrupted one (the same validation numbers too)."""
    full_model, full = run(VAE, dataclasses.replace(ELBO, epochs=2), data, valid=data)
    run_file = tmp_path / "run.safetensors"
    broken = FailsOnce(data, bad=5)
    with pytest.raises(OSError, match="image 5"):
        run(VAE, dataclasses.replace(ELBO, epochs=2), data, valid=broken, run_file=RunFile(run_file))
    _, record = read_tensors(run_file)
    assert len(record["history"]) == 1 and record["pending_validation"]
    resumed_model, resumed = run(VAE, dataclasses.replace(ELBO, epochs=2), data, valid=data, run_file=RunFile(run_file))
    assert without_seconds(resumed) == without_seconds(full)
    assert_same_weights(resumed_model, full_model)
    assert not read_tensors(run_file)[1]["pending_validation"]


# --- failures ----------------------------------------------------------------------------------------

def test_nan_data_raises_and_keeps_the_last_good_run_file(data, tmp_path):
    run_file = tmp_path / "run.safetensors"
    good_model, _ = run(VAE, dataclasses.replace(ELBO, epochs=1), data, run_file=RunFile(run_file))
    before = run_file.read_bytes()
    imgs = data.tensors[0].clone()
    imgs[5, 0, 3, 3] = float("nan")
    bad = TensorDataset(imgs, data.tensors[1])
    with pytest.raises(NonFiniteLossError, match="nan"):
        run(VAE, dataclasses.replace(ELBO, epochs=2), bad, run_file=RunFile(run_file))
    assert run_file.read_bytes() == before
    restored = build_model(VAE, seed=1)
    history, step, _ = load_run(run_file, restored, torch.optim.Adam(restored.parameters()))
    assert len(history.epochs) == 1 and step == 4
    assert_same_weights(restored, good_model)
    assert all(torch.isfinite(v).all() for v in restored.state_dict().values())


def test_infinite_loss_mid_epoch_raises(data, tmp_path, monkeypatch):
    real, calls = train_mod.compute_loss, []

    def blows_up(model, x, target, cfg, step):
        loss, parts = real(model, x, target, cfg, step)
        calls.append(step)
        if len(calls) == 3:
            loss = loss * float("inf")
            parts = {**parts, "loss": loss.detach()}
        return loss, parts

    monkeypatch.setattr(train_mod, "compute_loss", blows_up)
    run_file = tmp_path / "run.safetensors"
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        run(AE, TrainConfig("mse", epochs=1, batch_size=8), data, run_file=RunFile(run_file))
    assert not run_file.exists()  # nothing half-trained was written
    assert issubclass(NonFiniteLossError, FloatingPointError)


def test_sparse_loss_checks_still_catch_a_bad_step(data, monkeypatch):
    """On a GPU the loss is checked every few steps (no sync per step); a NaN in between is
    still caught, by the next check or the end of the epoch, and the message gives the range."""
    real, calls = train_mod.compute_loss, []

    def blows_up(model, x, target, cfg, step):
        loss, parts = real(model, x, target, cfg, step)
        calls.append(step)
        if len(calls) == 2:
            parts = {**parts, "loss": parts["loss"] * float("nan")}
        return loss, parts

    monkeypatch.setattr(train_mod, "compute_loss", blows_up)
    cfg = TrainConfig("mse", epochs=1, batch_size=8)
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model = build_model(AE, seed=1)
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(NonFiniteLossError, match="between steps 0 and 2"):
        train_mod.run_epoch(model, loader, cfg, torch.device("cpu"), opt, check_every=3)
    assert calls == [0, 1, 2]                       # caught at the third batch, not the second
    calls.clear()
    with pytest.raises(NonFiniteLossError, match="between steps 0 and 3"):   # 4 batches, none a multiple of 5
        train_mod.run_epoch(model, loader, cfg, torch.device("cpu"), opt, check_every=5)
    assert len(calls) == len(loader) == 4


def test_epoch_averages_match_a_per_step_float_sum(data, monkeypatch):
    """The on-device sums give the same averages as adding each step's parts as Python floats."""
    real, seen = train_mod.compute_loss, []

    def recording(model, x, target, cfg, step):
        loss, parts = real(model, x, target, cfg, step)
        seen.append((len(x), {k: float(v) for k, v in parts.items()}))
        return loss, parts

    monkeypatch.setattr(train_mod, "compute_loss", recording)
    cfg = TrainConfig("elbo", epochs=1, batch_size=8, sigma=0.3)
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    model = build_model(VAE, seed=1)
    averages, _ = train_mod.run_epoch(model, loader, cfg, torch.device("cpu"), torch.optim.Adam(model.parameters()))
    assert len(seen) == 4 and set(averages) == {"loss", "recon", "kl"}
    for k in averages:
        assert averages[k] == pytest.approx(sum(n * p[k] for n, p in seen) / len(data), rel=1e-6), k


def test_dataset_smaller_than_a_batch_is_an_error():
    tiny = TensorDataset(torch.rand(5, 3, S, S), torch.zeros(5))
    with pytest.raises(ValueError, match="batch_size"):
        run(AE, TrainConfig("mse", epochs=1, batch_size=8), tiny)


@pytest.mark.parametrize("kwargs, field", [
    (dict(epochs=0), "epochs"),
    (dict(batch_size=0), "batch_size"),
    (dict(lr=0.0), "lr"),
    (dict(lr=-1e-3), "lr"),
    (dict(sigma=0.0), "sigma"),
    (dict(lr=float("nan")), "lr"),
    (dict(objective="adversarial"), "objective"),
    (dict(beta=-1.0), "beta"),
    (dict(beta=float("nan")), "beta must be a finite number"),
    (dict(sigma=float("inf")), "sigma must be a finite number"),
    (dict(gamma=float("-inf")), "gamma"),
    (dict(train_size=0), "train_size must be >= 1"),
])
def test_train_config_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**kwargs)


def test_objective_for_another_model_kind_is_refused(data):
    cfg = TrainConfig(objective="elbo", epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="trains a vae model, not a 'ae'"):
        run(ModelConfig("ae", latent_dim=4, channels=(4, 8), image_size=16), cfg, data)


def test_weights_that_turn_nan_are_not_saved(data, tmp_path, monkeypatch):
    run_file = tmp_path / "run.safetensors"
    cfg = TrainConfig(objective="mse", epochs=1, batch_size=8)
    model_cfg = ModelConfig("ae", latent_dim=4, channels=(4, 8), image_size=16)
    run(model_cfg, cfg, data, run_file=RunFile(run_file))
    good = run_file.read_bytes()
    real_step = torch.optim.Adam.step

    def poisoned_step(self, *a, **k):  # the loss stays finite, the weights do not
        out = real_step(self, *a, **k)
        for group in self.param_groups:
            group["params"][0].data.fill_(float("nan"))
        return out
    monkeypatch.setattr(torch.optim.Adam, "step", poisoned_step)
    with pytest.raises(NonFiniteLossError):
        run(model_cfg, dataclasses.replace(cfg, epochs=2), data, run_file=RunFile(run_file))
    assert run_file.read_bytes() == good
