"""Tests of vaebook.checkpoints, always in a temporary folder (never the repo's checkpoints/)."""
from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch

import vaebook.checkpoints as ck
from vaebook.checkpoints import CheckpointError
from vaebook.models import ModelConfig, build_model

CFG = ModelConfig("vae", latent_dim=4, channels=(4, 8), image_size=16)
RECORD = {"about": "a test model", "train": {"epochs": 1}, "metrics": {"mse": 0.01}}


@pytest.fixture(autouse=True)
def no_default_root(monkeypatch, tmp_path):
    """Any call that forgets root= lands in a throwaway folder, not the repo's checkpoints/."""
    monkeypatch.setenv("VAEBOOK_CHECKPOINTS", str(tmp_path / "default-root"))


def trained_like(cfg=CFG, seed=0):
    """A model whose BatchNorm statistics are not the defaults (as after training)."""
    model = build_model(cfg, seed=seed)
    with torch.no_grad():
        model.train()(torch.rand(4, 3, cfg.image_size, cfg.image_size))
    return model.eval()


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("half", [True, False])
def test_save_load_round_trip(tmp_path, half):
    model = trained_like()
    path = ck.save(model, "vae", RECORD, root=tmp_path, half=half)
    assert path == tmp_path / "vae.safetensors" and path.exists()
    loaded = ck.load("vae", root=tmp_path)
    assert type(loaded) is type(model) and loaded.config == CFG and not loaded.training
    original = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert v.dtype == original[k].dtype, k  # float32 again after loading
        expected = original[k].half().to(v.dtype) if half and v.is_floating_point() else original[k]
        assert torch.equal(v, expected), k
    # and the same model: same outputs (up to float16 rounding)
    torch.testing.assert_close(loaded.decode(torch.ones(2, 4)), model.decode(torch.ones(2, 4)),
                               atol=2e-3 if half else 0, rtol=0)
    assert loaded.record["about"] == "a test model" and loaded.record["model"] == json.loads(json.dumps(CFG.to_dict()))
    assert loaded.record["dtype"] == ("float16" if half else "float32")


def test_half_file_is_about_half_the_size(tmp_path):
    model = trained_like()
    half = ck.save(model, "h", RECORD, root=tmp_path, half=True).stat().st_size
    full = ck.save(model, "f", RECORD, root=tmp_path, half=False).stat().st_size
    assert 0.45 < half / full < 0.6


def test_manifest_and_sidecar_hold_the_sha256_and_the_record(tmp_path):
    path = ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    entry = manifest["vae"]
    assert entry["sha256"] == digest and entry["bytes"] == path.stat().st_size
    assert entry["file"] == "vae.safetensors" and entry["name"] == "vae"
    assert entry["about"] == RECORD["about"] and entry["metrics"] == RECORD["metrics"]
    assert ModelConfig.from_dict(entry["model"]) == CFG
    assert json.loads((tmp_path / "vae.json").read_text()) == entry
    # the record also travels inside the weights file
    _, inside = ck.read_tensors(path)
    assert inside["about"] == RECORD["about"] and inside["name"] == "vae"


def test_manifest_keeps_every_checkpoint(tmp_path):
    ck.save(trained_like(), "b", RECORD, root=tmp_path)
    ck.save(trained_like(seed=1), "a", RECORD, root=tmp_path)
    assert list(ck.read_manifest(tmp_path)) == ["a", "b"]
    assert ck.read_manifest(tmp_path / "nothing-here") == {}


def test_root_defaults_to_the_environment_variable(tmp_path):
    ck.save(trained_like(), "env", RECORD)
    assert (tmp_path / "default-root" / "env.safetensors").exists()
    assert ck.load("env").config == CFG


def test_update_metrics_keeps_the_weights_file_valid(tmp_path):
    path = ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    before = path.read_bytes()
    ck.update_metrics("vae", {"fid": 12.5}, root=tmp_path)
    assert path.read_bytes() == before
    assert ck.read_manifest(tmp_path)["vae"]["metrics"] == {"fid": 12.5}
    assert json.loads((tmp_path / "vae.json").read_text())["metrics"] == {"fid": 12.5}
    assert ck.load("vae", root=tmp_path).record["metrics"] == {"fid": 12.5}


# --- failures say what is wrong and how to fix it ------------------------------------------------

def test_missing_name_says_how_to_train_it(tmp_path):
    ck.save(trained_like(), "other", RECORD, root=tmp_path)
    with pytest.raises(CheckpointError, match="python -m vaebook train nosuch") as e:
        ck.load("nosuch", root=tmp_path)
    assert "other" in str(e.value)  # and lists what there is
    with pytest.raises(CheckpointError, match="python -m vaebook train vae"):
        ck.load("vae", root=tmp_path / "empty")


def test_corrupted_file_is_caught_by_its_sha256(tmp_path):
    path = ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte inside the tensor data: still a readable safetensors file
    path.write_bytes(bytes(data))
    ck.read_tensors(path)  # readable, so only the checksum can tell
    with pytest.raises(CheckpointError, match="sha256") as e:
        ck.load("vae", root=tmp_path)
    assert "corrupted" in str(e.value) and "python -m vaebook train vae" in str(e.value)


def test_truncated_file_is_caught(tmp_path):
    path = ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted"):
        ck.load("vae", root=tmp_path)


def test_deleted_file_is_reported_missing(tmp_path):
    path = ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    path.unlink()
    with pytest.raises(CheckpointError, match="missing") as e:
        ck.load("vae", root=tmp_path)
    assert "python -m vaebook train vae" in str(e.value)


def test_expect_a_different_config_is_an_error(tmp_path):
    ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    assert ck.load("vae", root=tmp_path, expect=CFG).config == CFG
    with pytest.raises(CheckpointError, match="expects"):
        ck.load("vae", root=tmp_path, expect=ModelConfig("vae", latent_dim=8, channels=(4, 8), image_size=16))


def test_weights_that_do_not_fit_the_config_are_an_error(tmp_path):
    """A file whose tensors do not match the model its record names (and a manifest that agrees)."""
    ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    path = tmp_path / "vae.safetensors"
    tensors, record = ck.read_tensors(path)
    del tensors["to_logvar.weight"]
    ck.write_tensors(path, tensors, record)
    entry = ck.read_manifest(tmp_path)["vae"]
    ck.update_manifest("vae", {**entry, "sha256": ck.sha256(path)}, root=tmp_path)
    with pytest.raises(CheckpointError, match="does not fit"):
        ck.load("vae", root=tmp_path)


# --- atomic writes ---------------------------------------------------------------------------------

def test_failed_rename_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    old_model = trained_like(seed=0)
    path = ck.save(old_model, "vae", RECORD, root=tmp_path)
    old_bytes, old_manifest, old_files = path.read_bytes(), ck.read_manifest(tmp_path), files_in(tmp_path)

    def no_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ck.os, "replace", no_replace)
    with pytest.raises(OSError, match="disk full"):
        ck.save(trained_like(seed=1), "vae", RECORD, root=tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert ck.read_manifest(tmp_path) == old_manifest
    assert files_in(tmp_path) == old_files  # no temporary file left behind
    loaded = ck.load("vae", root=tmp_path)
    assert torch.equal(loaded.to_latent.weight, old_model.to_latent.weight.half().float())


def test_failed_serialisation_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = ck.save(trained_like(seed=0), "vae", RECORD, root=tmp_path)
    old_bytes, old_files = path.read_bytes(), files_in(tmp_path)

    def broken_save(*args, **kwargs):
        raise RuntimeError("crashed while serialising")

    monkeypatch.setattr(ck, "st_save", broken_save)
    with pytest.raises(RuntimeError, match="crashed"):
        ck.save(trained_like(seed=1), "vae", RECORD, root=tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes and files_in(tmp_path) == old_files
    ck.load("vae", root=tmp_path)


def test_failed_write_midway_leaves_the_old_bytes(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    ck.atomic_write_bytes(target, b"old contents")

    def failing_fsync(fd):
        raise OSError("I/O error after a partial write")

    monkeypatch.setattr(ck.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        ck.atomic_write_bytes(target, b"new contents that never arrive")
    monkeypatch.undo()
    assert target.read_bytes() == b"old contents" and files_in(tmp_path) == ["data.bin"]
    ck.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"


# --- read_tensors never unpickles ------------------------------------------------------------------

class Boom:
    """Unpickling this runs code: it must never happen."""
    def __reduce__(self):
        return (exec, ("raise SystemExit('unpickled!')",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_read_tensors_refuses_pickles(tmp_path, writer):
    path = tmp_path / "vae.safetensors"
    if writer == "pickle":
        path.write_bytes(pickle.dumps({"w": Boom()}))
    else:
        torch.save({"w": torch.zeros(3), "boom": Boom()}, path)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        ck.read_tensors(path)


def test_a_pickle_registered_in_the_manifest_is_still_refused(tmp_path):
    ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    path = tmp_path / "vae.safetensors"
    torch.save(trained_like().state_dict(), path)
    entry = ck.read_manifest(tmp_path)["vae"]
    ck.update_manifest("vae", {**entry, "sha256": ck.sha256(path)}, root=tmp_path)  # checksum agrees
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        ck.load("vae", root=tmp_path)


def test_write_read_tensors_round_trip(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor(7, dtype=torch.int64),
               "c": torch.zeros(0)}
    record = {"nested": {"list": [1, 2.5, None]}, "text": "σ ≈ 0.763"}
    ck.write_tensors(tmp_path / "t.safetensors", tensors, record)
    back, rec = ck.read_tensors(tmp_path / "t.safetensors")
    assert rec == record and back.keys() == tensors.keys()
    for k in tensors:
        assert torch.equal(back[k], tensors[k]) and back[k].dtype == tensors[k].dtype


def test_damaged_manifest_is_a_clear_error(tmp_path):
    ck.save(trained_like(), "vae", RECORD, root=tmp_path)
    (tmp_path / "manifest.json").write_text('{"vae": {')
    with pytest.raises(CheckpointError, match="not valid JSON.*make checkpoints"):
        ck.load("vae", root=tmp_path)


def test_half_precision_changes_test_metrics_by_under_one_percent(tmp_path):
    """The book stores float16 weights; that is only fine if the numbers barely move."""
    from vaebook import metrics
    from vaebook.data import load_dataset, stack_images
    from vaebook.train import TrainConfig, fit
    data = load_dataset("faces", "test", limit=512)
    cfg = ModelConfig("vae", latent_dim=8, channels=(8, 16, 32, 64))
    model = build_model(cfg, seed=0)
    fit(model, data, None, TrainConfig(objective="elbo", epochs=2, batch_size=64, sigma=0.6), progress=False)
    ck.save(model, "full", RECORD, root=tmp_path, half=False)
    ck.save(model, "half", RECORD, root=tmp_path, half=True)
    images = stack_images(data)
    full = ck.load("full", root=tmp_path)
    half = ck.load("half", root=tmp_path)
    for measure in (metrics.reconstruction_mse, metrics.kl_per_dim):
        a, b = torch.as_tensor(measure(full, images)), torch.as_tensor(measure(half, images))
        assert torch.allclose(a, b, rtol=0.01, atol=1e-6), (measure.__name__, a, b)
