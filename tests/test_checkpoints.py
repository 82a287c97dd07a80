"""Tests of vaebook.store.checkpoints, always in a temporary folder. The repo's checkpoints/ is only
read (the test that every committed record matches its preset); nothing is saved into it."""
from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch

import vaebook.store.checkpoints as ck
from vaebook.store import records
from vaebook.store import files as store
from vaebook.store import places
from vaebook.store.checkpoints import CheckpointError
from vaebook.models import ModelConfig, build_model
from vaebook.store.presets import make_presets

CFG = ModelConfig("vae", latent_dim=4, channels=(4, 8), image_size=16)
RECORD = {"about": "a test model", "train": {"epochs": 1}, "metrics": {"mse": 0.01}}
NAME = "tiny"  # not a preset: only the form of its record is checked
PRESETS = make_presets()


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


def preset_record(name, **train_changes):
    """The record `python -m vaebook train NAME --save` writes, with `train_changes` applied."""
    train = {**PRESETS[name].train.to_dict(), **train_changes}
    images = records.expected_images("faces", train["train_size"])
    return {"about": PRESETS[name].about, "train": train,
            "data": {"dataset": "faces", "split": "train", "images": images, "images_seen": images * 4}}


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def forge(folder, name, record, tensors=None):
    """Register `record` (and tensors) as checkpoint `name` without save()'s checks: what a
    hand-edited or older store could hold."""
    tensors = tensors if tensors is not None else trained_like().state_dict()
    entry = record if isinstance(record, dict) else {}
    return store.commit(folder, name, ck.serialise(tensors, record), entry)


@pytest.mark.parametrize("half", [True, False])
def test_save_load_round_trip(tmp_path, half):
    model = trained_like()
    path = ck.save(model, NAME, RECORD, root=tmp_path, half=half)
    assert path.parent == tmp_path and path.exists()
    loaded = ck.load(NAME, root=tmp_path)
    assert type(loaded) is type(model) and loaded.config == CFG and not loaded.training
    original = model.state_dict()
    for k, v in loaded.state_dict().items():
        assert v.dtype == original[k].dtype, k  # float32 again after loading
        expected = original[k].half().to(v.dtype) if half and v.is_floating_point() else original[k]
        assert torch.equal(v, expected), k
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
    path = ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    entry = json.loads((tmp_path / "manifest.json").read_text())[NAME]
    assert entry["sha256"] == digest and entry["bytes"] == path.stat().st_size
    assert entry["file"] == path.name == f"{NAME}-{digest[:16]}.safetensors"  # named by content
    assert entry["name"] == NAME and entry["about"] == RECORD["about"] and entry["metrics"] == RECORD["metrics"]
    assert ModelConfig.from_dict(entry["model"]) == CFG
    assert json.loads((tmp_path / f"{NAME}.json").read_text()) == entry
    _, inside = ck.read_tensors(path)  # the record also travels inside the weights file
    assert inside["about"] == RECORD["about"] and inside["name"] == NAME


def test_saving_again_replaces_the_old_file(tmp_path):
    first = ck.save(trained_like(seed=0), NAME, RECORD, root=tmp_path)
    second = ck.save(trained_like(seed=1), NAME, RECORD, root=tmp_path)
    assert first != second and not first.exists() and second.exists()
    assert files_in(tmp_path) == sorted(["manifest.json", f"{NAME}.json", second.name])


def test_manifest_keeps_every_checkpoint(tmp_path):
    ck.save(trained_like(), "b", RECORD, root=tmp_path)
    ck.save(trained_like(seed=1), "a", RECORD, root=tmp_path)
    assert list(ck.read_manifest(tmp_path)) == ["a", "b"]
    assert ck.read_manifest(tmp_path / "nothing-here") == {}


def test_root_defaults_to_the_environment_variable(tmp_path):
    path = ck.save(trained_like(), "env", RECORD)
    assert path.parent == tmp_path / "default-root"
    assert ck.load("env").config == CFG


def test_update_metrics_keeps_the_weights_file_valid(tmp_path):
    path = ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    before = path.read_bytes()
    ck.update_metrics(NAME, {"fid": 12.5}, root=tmp_path)
    assert path.read_bytes() == before
    assert ck.read_manifest(tmp_path)[NAME]["metrics"] == {"fid": 12.5}
    assert json.loads((tmp_path / f"{NAME}.json").read_text())["metrics"] == {"fid": 12.5}
    assert ck.load(NAME, root=tmp_path).record["metrics"] == {"fid": 12.5}


def test_checkpoint_names_cannot_escape_the_folder(tmp_path):
    for bad in ("../evil", "a/b", ".hidden", ""):
        with pytest.raises(CheckpointError, match="cannot name a checkpoint"):
            ck.save(trained_like(), bad, RECORD, root=tmp_path)
    assert not tmp_path.exists() or files_in(tmp_path) == []


# --- finding 1: the book's models are the presets' ---------------------------------------------

def test_a_preset_model_with_the_presets_record_round_trips(tmp_path):
    model = trained_like(PRESETS["beta4"].model)
    ck.save(model, "beta4", preset_record("beta4"), root=tmp_path)
    assert ck.load("beta4", root=tmp_path, expect=PRESETS["beta4"].model).config == PRESETS["beta4"].model


@pytest.mark.parametrize("changes, named", [
    (dict(beta=16.0), "train.beta is 16.0, the preset's is 4"),
    (dict(epochs=1), "train.epochs is 1"),
    (dict(train_size=512), "train.train_size is 512, the preset's is None"),
])
def test_save_refuses_a_preset_name_for_an_experiment(tmp_path, changes, named):
    """`train beta4 --epochs 1 --beta 16 --train-size 512` must not become the book's beta4."""
    model = trained_like(PRESETS["beta4"].model)
    with pytest.raises(CheckpointError, match="is not the book's 'beta4'") as e:
        ck.save(model, "beta4", preset_record("beta4", **changes), root=tmp_path)
    assert named in str(e.value)
    assert not tmp_path.exists() or files_in(tmp_path) == []  # refused before anything is written


def test_load_refuses_a_replaced_preset_and_says_how_to_restore(tmp_path, monkeypatch):
    """A beta1 overwritten by a quick experiment (as an older CLI did) is caught on loading, in
    the book's folder with the advice to restore it from git."""
    monkeypatch.setattr(places, "DEFAULT_ROOT", tmp_path)  # this folder plays the book's
    record = {**preset_record("beta1", beta=16.0, train_size=512), "name": "beta1",
              "model": PRESETS["beta1"].model.to_dict()}
    record["data"]["images"] = 512
    forge(tmp_path, "beta1", json.loads(json.dumps(record)), trained_like(PRESETS["beta1"].model).state_dict())
    with pytest.raises(CheckpointError) as e:
        ck.load("beta1", root=tmp_path, expect=PRESETS["beta1"].model)  # the shapes do match
    message = str(e.value)
    assert "train.beta is 16.0, the preset's is 1" in message and "train.train_size is 512" in message
    assert "git checkout checkpoints/" in message


@pytest.mark.parametrize("change, named", [
    (lambda r: r.update(name="beta2"), "is for a model named 'beta2', not 'beta1'"),
    (lambda r: r["data"].update(dataset="celeba", images=162_770), "data.dataset is 'celeba', the book expects 'faces'"),
    (lambda r: r["data"].update(images=1000), "data.images is 1000, the whole split has 60000"),
    (lambda r: r["data"].update(dataset="mnist"), "data.dataset is 'mnist', not a dataset the book knows"),
    (lambda r: r.pop("data"), "says nothing about the data"),
    (lambda r: r["model"].update(latent_dim=12), "model.latent_dim is 12, the preset's is 10"),
])
def test_load_names_what_differs_from_the_preset(tmp_path, monkeypatch, change, named):
    monkeypatch.setattr(places, "DEFAULT_ROOT", tmp_path)
    record = {**preset_record("beta1"), "name": "beta1", "model": PRESETS["beta1"].model.to_dict()}
    record = json.loads(json.dumps(record))
    change(record)
    forge(tmp_path, "beta1", record, trained_like(PRESETS["beta1"].model).state_dict())
    with pytest.raises(CheckpointError, match="is not|is for") as e:
        ck.load("beta1", root=tmp_path)
    assert named in str(e.value)


def test_celeba_models_load_from_a_folder_of_their_own(tmp_path):
    """Outside the book's folder any dataset the book knows is fine, unless one is asked for."""
    record = preset_record("beta1")
    record["data"].update(dataset="celeba", images=162_770)
    ck.save(trained_like(PRESETS["beta1"].model), "beta1", record, root=tmp_path)
    assert ck.load("beta1", root=tmp_path).record["data"]["dataset"] == "celeba"
    assert ck.load("beta1", root=tmp_path, dataset="celeba").config == PRESETS["beta1"].model
    with pytest.raises(CheckpointError, match="data.dataset is 'celeba', the book expects 'faces'"):
        ck.load("beta1", root=tmp_path, dataset="faces")


def test_every_committed_record_is_its_presets():
    """The checkpoints in the repo (16 when this was written) pass the same check (read only)."""
    manifest = store.read_manifest(store.DEFAULT_ROOT)
    committed = [name for name in PRESETS if name in manifest]
    assert len(committed) >= 16, committed
    for name in committed:
        assert records.differences(manifest[name], name, "faces") == [], name
        records.check_record(name, manifest[name], store.DEFAULT_ROOT)


def test_every_committed_entry_is_the_record_inside_its_file():
    """What load now checks (issue 24, defect 8), for the repo's checkpoints (read only)."""
    folder = store.DEFAULT_ROOT
    for name in store.read_manifest(folder):
        data, entry = store.read_blob(folder, name)
        assert ck.entry_differences(entry, ck.deserialise(data, name)[1]) == [], name


# --- failures say what is wrong and how to fix it (finding 8) ------------------------------------

def test_missing_name_says_how_to_train_it(tmp_path):
    ck.save(trained_like(), "other", RECORD, root=tmp_path)
    with pytest.raises(CheckpointError, match=r"python -m vaebook train beta4 --save") as e:
        ck.load("beta4", root=tmp_path)
    assert "other" in str(e.value)  # and lists what there is
    with pytest.raises(CheckpointError) as e:  # a name that no command trains gets no command
        ck.load("nosuch", root=tmp_path)
    assert "train nosuch" not in str(e.value) and "'nosuch' is not one of the book's presets" in str(e.value)


def test_missing_manifest_is_reported_as_such(tmp_path):
    with pytest.raises(CheckpointError) as e:
        ck.load("vae", root=tmp_path / "empty")
    message = str(e.value)
    assert "has no manifest.json" in message and "VAEBOOK_CHECKPOINTS" in message
    assert "no checkpoint named" not in message and "train" not in message  # no hours of retraining


def test_corrupted_file_is_caught_by_its_sha256(tmp_path):
    path = ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte inside the tensor data: still a readable safetensors file
    path.write_bytes(bytes(data))
    ck.read_tensors(path)  # readable, so only the checksum can tell
    with pytest.raises(CheckpointError, match="sha256") as e:
        ck.load(NAME, root=tmp_path)
    assert "corrupted" in str(e.value) and f"{NAME!r} is not one of the book's presets" in str(e.value)


def test_truncated_file_is_caught(tmp_path):
    path = ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupted"):
        ck.load(NAME, root=tmp_path)


def test_deleted_file_is_reported_missing(tmp_path):
    path = ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    path.unlink()
    with pytest.raises(CheckpointError, match="missing") as e:
        ck.load(NAME, root=tmp_path)
    assert "save it again with the code that made it" in str(e.value)


def test_expect_a_different_config_is_an_error(tmp_path):
    ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    assert ck.load(NAME, root=tmp_path, expect=CFG).config == CFG
    with pytest.raises(CheckpointError, match="expects"):
        ck.load(NAME, root=tmp_path, expect=ModelConfig("vae", latent_dim=8, channels=(4, 8), image_size=16))


def test_weights_that_do_not_fit_the_config_are_an_error(tmp_path):
    tensors = trained_like().state_dict()
    del tensors["to_logvar.weight"]
    forge(tmp_path, NAME, {"name": NAME, "model": json.loads(json.dumps(CFG.to_dict()))}, tensors)
    with pytest.raises(CheckpointError, match="does not fit"):
        ck.load(NAME, root=tmp_path)


@pytest.mark.parametrize("entry, named", [
    ([1, 2], "is a list, not an object"),
    ({"sha256": "0" * 64}, "'file' (None)"),
    ({"file": "../outside.safetensors", "sha256": "0" * 64}, "'file' ('../outside.safetensors')"),
    ({"file": "tiny.safetensors", "sha256": 42}, "'sha256' ('42') is not 64 hex digits"),
])
def test_malformed_manifest_entries_are_checkpoint_errors(tmp_path, entry, named):
    (tmp_path / "manifest.json").write_text(json.dumps({NAME: entry}))
    with pytest.raises(CheckpointError, match="is malformed") as e:
        ck.load(NAME, root=tmp_path)
    assert named in str(e.value)


@pytest.mark.parametrize("record, named", [
    ([1, 2, 3], "is not a JSON object"),
    ({"name": NAME}, "has no valid model config (KeyError"),
    ({"name": NAME, "model": {"kind": "vae", "latent_dim": "ten"}}, "has no valid model config (TypeError"),
    ({"name": NAME, "model": ["vae"]}, "has no valid model config"),
])
def test_malformed_records_are_checkpoint_errors(tmp_path, record, named):
    forge(tmp_path, NAME, record)
    with pytest.raises(CheckpointError) as e:
        ck.load(NAME, root=tmp_path)
    assert named in str(e.value)


def test_a_deeply_nested_record_is_a_checkpoint_error(tmp_path):
    blob = bytearray(ck.serialise(trained_like().state_dict(), {}))
    header_len = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + header_len])
    header["__metadata__"]["record"] = "[" * 100_000 + "]" * 100_000
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    data = len(text).to_bytes(8, "little") + text + bytes(blob[8 + header_len:])
    store.commit(tmp_path, NAME, data, {})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        ck.load(NAME, root=tmp_path)
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        ck.load(NAME, root=tmp_path)


def test_damaged_manifest_is_a_clear_error_and_is_never_overwritten(tmp_path):
    ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    (tmp_path / "manifest.json").write_text('{"tiny": {')
    with pytest.raises(CheckpointError, match="not valid JSON.*move .*manifest.json aside"):
        ck.load(NAME, root=tmp_path)
    with pytest.raises(CheckpointError, match="not valid JSON"):  # others' entries may be in it
        ck.save(trained_like(), "other", RECORD, root=tmp_path)
    assert (tmp_path / "manifest.json").read_text() == '{"tiny": {'
    (tmp_path / "manifest.json").write_text('["tiny"]')
    with pytest.raises(CheckpointError, match="not a JSON object"):
        ck.load(NAME, root=tmp_path)


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
    path = tmp_path / "pickled.bin"
    torch.save(trained_like().state_dict(), path)
    store.commit(tmp_path, NAME, path.read_bytes(), {"name": NAME})  # the checksum agrees
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        ck.load(NAME, root=tmp_path)


def test_write_read_tensors_round_trip(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor(7, dtype=torch.int64),
               "c": torch.zeros(0)}
    record = {"nested": {"list": [1, 2.5, None]}, "text": "σ ≈ 0.763"}
    ck.write_tensors(tmp_path / "t.safetensors", tensors, record)
    back, rec = ck.read_tensors(tmp_path / "t.safetensors")
    assert rec == record and back.keys() == tensors.keys()
    for k in tensors:
        assert torch.equal(back[k], tensors[k]) and back[k].dtype == tensors[k].dtype


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


# --- issue 24: the manifest's copy of a record, reserved names, hints that work as printed ----------

@pytest.mark.parametrize("edit, field", [
    (lambda e: e.update(about="edited by hand"), "about"),
    (lambda e: e["train"].update(epochs=99), "train"),
    (lambda e: e.pop("about"), "about"),
])
def test_a_manifest_entry_unlike_the_files_record_is_refused(tmp_path, edit, field):
    """Readers such as the explorer's export and `evaluate` read the manifest's copy of a record:
    a copy that differs from the record inside the weights file is refused at load."""
    ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    ck.update_metrics(NAME, {"mse": 0.02}, root=tmp_path)  # metrics are the manifest's alone
    assert ck.load(NAME, root=tmp_path).record["metrics"] == {"mse": 0.02}
    manifest = store.read_manifest(tmp_path)
    edit(manifest[NAME])
    store.write_manifest(tmp_path, manifest)  # the weights file and its sha256 are unchanged
    with pytest.raises(CheckpointError, match=f"differs from the record inside .* \\(in {field}\\)") as e:
        ck.load(NAME, root=tmp_path)
    assert "save it again" in str(e.value)


@pytest.mark.parametrize("name", ["manifest", "Manifest", "MANIFEST"])
def test_the_stores_own_names_are_reserved(tmp_path, name):
    """A checkpoint named `manifest` wrote manifest.json as its side file and wiped the store."""
    ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=f"{name!r} cannot name a checkpoint: the store keeps"):
        ck.save(trained_like(seed=1), name, RECORD, root=tmp_path)
    with pytest.raises(CheckpointError, match="cannot name a checkpoint"):
        store.commit(tmp_path, name, b"bytes", {})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert ck.load(NAME, root=tmp_path)


def test_names_that_differ_only_in_case_are_refused(tmp_path):
    """On a case-insensitive disk Tiny.json is tiny.json: one would overwrite the other's."""
    ck.save(trained_like(), NAME, RECORD, root=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match="'Tiny' differs from the checkpoint 'tiny' only in case"):
        ck.save(trained_like(seed=1), "Tiny", RECORD, root=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    ck.save(trained_like(seed=1), NAME, RECORD, root=tmp_path)  # the same name is replaced as before


def test_restore_hints_print_commands_that_work(tmp_path, monkeypatch):
    """No literal `train NAME --save`, and no train command for a name that is not a preset."""
    hints = [places.restore_hint(tmp_path), places.restore_hint(tmp_path, "tiny"),
             places.restore_hint(tmp_path, "beta4")]
    assert not any("NAME" in h for h in hints) and "train tiny" not in hints[1]
    assert hints[2] == f"retrain it with `VAEBOOK_CHECKPOINTS={tmp_path} python -m vaebook train beta4 --save`"
    monkeypatch.setattr(places, "DEFAULT_ROOT", tmp_path)
    assert places.restore_hint(tmp_path) == "restore the book's checkpoints with `git checkout checkpoints/`"
    assert places.restore_hint(tmp_path, "beta4").endswith("(or retrain with `python -m vaebook train beta4 --save`)")
