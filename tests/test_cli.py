"""Tests of the command line, in-process (`vaebook.cli.main([...])`) to stay fast. Checkpoints
go to temporary folders (VAEBOOK_CHECKPOINTS), never the repo's checkpoints/."""
from __future__ import annotations

import argparse
import errno
import json
import os
import re
from pathlib import Path

import pytest
import torch

import vaebook.models
import vaebook.store.presets
from vaebook.data import faces
import vaebook.cli.retrain as retrain
import vaebook.train.loop as train_mod
from vaebook.store import checkpoints
from vaebook.cli import commands as cli
from vaebook.cli import main, parser
from vaebook.models import ModelConfig
from vaebook.store.presets import Preset, make_presets
from vaebook.train import TrainConfig

REPO = Path(__file__).resolve().parent.parent
TINY = Preset(ModelConfig("vae", latent_dim=4, channels=(4, 8, 16, 32)),
              TrainConfig(objective="elbo", epochs=2, batch_size=32, sigma=0.6, train_size=64),
              "a tiny VAE for testing the command line")


@pytest.fixture(autouse=True)
def folders(tmp_path, monkeypatch):
    """Checkpoints and runs in throwaway folders; CelebA and the dataset choice unset."""
    monkeypatch.setenv("VAEBOOK_CHECKPOINTS", str(tmp_path / "checkpoints"))
    monkeypatch.setenv("VAEBOOK_RUNS", str(tmp_path / "runs"))
    for var in ("VAEBOOK_DATASET", "VAEBOOK_CELEBA_ROOT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def tiny(monkeypatch):
    """A preset 'tiny' next to the book's, trained on 64 faces with 64 validation images."""
    presets = {**make_presets(), "tiny": TINY}
    monkeypatch.setattr(vaebook.store.presets, "make_presets", lambda: presets)
    monkeypatch.setattr(retrain, "make_presets", lambda: presets)
    monkeypatch.setattr(cli, "make_presets", lambda: presets)
    monkeypatch.setattr(retrain, "VALID_IMAGES", 64)


def fails(argv, capsys) -> tuple[int, str]:
    """Run the CLI expecting a failure; return (exit status, stderr) after checking its form."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err and 1 <= len(err.strip().splitlines()) <= 2, err
    return e.value.code, err


def store_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def subparser(name: str) -> argparse.ArgumentParser:
    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return actions[0].choices[name]


def test_train_choices_are_the_presets():
    name = next(a for a in subparser("train")._actions if a.dest == "name")
    assert list(name.choices) == list(make_presets())


def test_list_shows_every_preset_and_whether_it_is_cached(folders, capsys):
    (folders / "checkpoints").mkdir()
    (folders / "checkpoints" / "manifest.json").write_text(json.dumps({"ae": {"file": "ae.safetensors"}}))
    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    presets = make_presets()
    assert [line.split()[0] for line in lines] == list(presets)
    status = {line.split()[0]: line.split()[1] for line in lines}
    assert status["ae"] == "cached" and all(status[n] == "missing" for n in presets if n != "ae")
    main(["list", "--names"])
    assert capsys.readouterr().out.split() == list(presets)


# --- bad input: one or two lines, exit 2, before any data is loaded (finding 7) -------------------

BAD = [
    (["train", "vae", "--beta", "nan"], "argument --beta: nan is not a finite number above 0"),
    (["train", "vae", "--beta", "inf"], "inf is not a finite number above 0"),
    (["train", "vae", "--sigma", "0"], "argument --sigma: 0 is not a finite number above 0"),
    (["train", "vae", "--train-size", "0"], "argument --train-size: 0 is not a finite number above 0"),
    (["train", "vae", "--epochs", "0"], "argument --epochs: 0 is not"),
    (["train", "vae", "--epochs", "1.5"], "'1.5' is not a whole number"),
    (["train", "vae", "--train-size", "64"], "less than one batch (128 images)"),
    (["train", "vae", "--device", "meta"], "training runs on cpu or cuda, not on 'meta'"),
    (["train", "vae", "--device", "nonsense"], "'nonsense' is not a device name"),
    (["train", "ae", "--sigma", "0.5"], "--sigma does not apply to 'ae'"),
    (["train", "oracle", "--beta", "2"], "--beta does not apply to 'oracle'"),
    (["train", "capacity", "--beta", "2"], "--beta does not apply to 'capacity'"),
    (["train", "beta1", "--epochs", "1", "--save"], "--save stores only the preset's own training"),
    (["train", "beta1", "--beta", "16", "--train-size", "512", "--save"], "--train-size, --beta would change"),
    (["train", "oracle", "--dataset", "celeba"], "only faces has"),
    (["train", "vae", "--root", "/data"], "add --dataset celeba"),
    (["train", "vae", "--dataset", "mnist"], "invalid choice: 'mnist'"),
    (["train", "nosuchname"], "invalid choice: 'nosuchname'"),
    ([], "the following arguments are required"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) or "nothing" for a, _ in BAD])
def test_bad_input_is_two_lines_and_exit_2_before_loading_data(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    code, err = fails(argv, capsys)
    assert code == 2 and message in err, err


def test_cuda_without_a_gpu_is_refused_up_front(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    for device in ("cuda", "cuda:1"):
        code, err = fails(["train", "vae", "--device", device], capsys)
        assert code == 2 and "PyTorch sees no GPU on this machine; use --device cpu" in err


def test_celeba_cannot_be_saved_into_the_books_folder(capsys, monkeypatch):
    monkeypatch.delenv("VAEBOOK_CHECKPOINTS")
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    code, err = fails(["train", "vae", "--dataset", "celeba", "--save"], capsys)
    assert code == 2 and "set VAEBOOK_CHECKPOINTS to a folder of your own" in err


def test_celeba_missing_is_two_lines(capsys, tmp_path):
    code, err = fails(["train", "vae", "--dataset", "celeba", "--root", str(tmp_path / "none")], capsys)
    assert code == 2 and "does not exist" in err and "jessicali9530/celeba-dataset" in err


def test_a_missing_manifest_is_named_by_evaluate(capsys):
    code, err = fails(["evaluate"], capsys)
    assert code == 2 and "has no manifest.json" in err


# --- runs/ versus checkpoints/ (findings 1 and 3) ----------------------------------------------------

def test_an_experiment_writes_only_to_runs(tiny, folders, capsys):
    main(["train", "tiny", "--save", "--quiet"])
    store = folders / "checkpoints"
    before = store_bytes(store)
    main(["train", "tiny", "--beta", "16", "--epochs", "1", "--quiet"])
    assert store_bytes(store) == before  # the store is not touched
    assert (folders / "runs" / "tiny-epochs1-beta16.safetensors").exists()
    assert "the run is in" in capsys.readouterr().out
    model = checkpoints.load("tiny", expect=TINY.model)
    assert model.record["train"] == json.loads(json.dumps(TINY.train.to_dict()))


def test_save_stores_the_preset_run_once(tiny, folders, capsys):
    main(["train", "tiny", "--quiet"])
    assert not (folders / "checkpoints").exists()  # no --save: nothing stored
    assert "`python -m vaebook train tiny --save` makes it the book's tiny" in capsys.readouterr().out
    # the finished run is stored, not retrained; an option equal to the preset's changes nothing
    main(["train", "tiny", "--epochs", str(TINY.train.epochs), "--save", "--quiet"])
    out = capsys.readouterr().out
    assert "saved" in out
    record = checkpoints.load("tiny").record
    assert record["data"] == {"dataset": "faces", "split": "train", "images": 64, "images_seen": 128,
                              "render_version": faces.RENDER_VERSION}
    before = store_bytes(folders / "checkpoints")
    main(["train", "tiny", "--save", "--quiet"])
    assert "already this run; nothing to save" in capsys.readouterr().out
    assert store_bytes(folders / "checkpoints") == before


def test_an_interrupted_run_resumes_with_the_same_command(tiny, folders, capsys, monkeypatch):
    real, epochs = train_mod.run_epoch, []

    def interrupted(model, loader, cfg, device, optimiser=None, step=0, desc=""):
        if optimiser is not None:
            epochs.append(step)
            if len(epochs) == 2:
                raise KeyboardInterrupt
        return real(model, loader, cfg, device, optimiser, step, desc)

    monkeypatch.setattr(train_mod, "run_epoch", interrupted)
    code, err = fails(["train", "tiny", "--save", "--quiet"], capsys)
    assert code == 130 and "the same command resumes" in err
    assert not (folders / "checkpoints").exists()
    epochs.clear()
    monkeypatch.setattr(train_mod, "run_epoch", real)
    main(["train", "tiny", "--save", "--quiet"])
    assert len(checkpoints.load("tiny").record["history"]) == 2


def test_fresh_discards_a_finished_run(tiny, monkeypatch):
    main(["train", "tiny", "--quiet"])
    real, steps = train_mod.run_epoch, []

    def counted(model, loader, cfg, device, optimiser=None, step=0, desc=""):
        steps.append(optimiser is not None)
        return real(model, loader, cfg, device, optimiser, step, desc)

    monkeypatch.setattr(train_mod, "run_epoch", counted)
    main(["train", "tiny", "--quiet"])
    assert steps == []  # finished: nothing to do
    main(["train", "tiny", "--quiet", "--fresh"])
    assert steps.count(True) == TINY.train.epochs  # trained again from the start


def test_make_checkpoints_resumes_and_saves_explicitly():
    """The rebuild keeps half-finished runs (no --fresh) and stores through --save."""
    text = (REPO / "Makefile").read_text()
    recipe = re.search(r"^checkpoints:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    assert "vaebook train" in recipe and "--save" in recipe and "--fresh" not in recipe


# --- CelebA is checked before training (finding 6) ---------------------------------------------------

def test_a_truncated_celeba_image_stops_training_before_it_starts(tmp_path, capsys, monkeypatch):
    from celeba_fixture import filename, make_celeba_fixture
    root = make_celeba_fixture(tmp_path / "celeba", "torchvision", 12)
    path = root / "celeba" / "img_align_celeba" / filename(4)
    path.write_bytes(path.read_bytes()[:2000])
    monkeypatch.setattr(retrain, "fit", lambda *a, **k: pytest.fail("training started"))
    code, err = fails(["train", "vae", "--dataset", "celeba", "--root", str(root)], capsys)
    assert code == 2 and f"{filename(4)} cannot be decoded" in err and "truncated" in err


# --- failures that are not bad input ------------------------------------------------------------------

def test_a_bug_says_so_and_debug_shows_the_traceback(capsys, monkeypatch):
    def broken(args):
        raise TypeError("unsupported operand")
    monkeypatch.setattr(retrain, "train", broken)
    code, err = fails(["train", "vae"], capsys)
    assert code == 1 and "TypeError: unsupported operand" in err and "--debug" in err
    with pytest.raises(TypeError):
        main(["train", "vae", "--debug"])


def test_a_diverging_run_exits_1_with_its_message(tiny, capsys, monkeypatch):
    def diverges(*args, **kwargs):
        raise train_mod.NonFiniteLossError("loss became nan at step 3: lower lr (now 0.001)")
    monkeypatch.setattr(retrain, "fit", diverges)
    code, err = fails(["train", "tiny", "--quiet"], capsys)
    assert code == 1 and "loss became nan at step 3" in err
    assert "please report it" in err and "lr" not in err  # the preset's own run: no option to change


# --- issue 24: nothing lost, even by mistake; messages that say what to do ----------------------------

def a_store(folder: Path) -> dict:
    """A checkpoint store holding one model (not a preset: only its form is checked)."""
    checkpoints.save(vaebook.models.build_model(TINY.model, seed=0), "other", {"about": "x"}, root=folder)
    return store_bytes(folder)


@pytest.mark.parametrize("how", ["--out", "VAEBOOK_RUNS", "inside", "another store"])
def test_a_run_folder_in_a_store_is_refused_before_anything_is_written(tiny, folders, capsys,
                                                                       monkeypatch, how):
    """Defect 1: `train NAME --out checkpoints --fresh` deleted the committed checkpoint."""
    store = folders / "checkpoints"
    before = a_store(store)
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    argv = ["train", "tiny", "--fresh"]
    if how == "--out":
        argv += ["--out", str(store)]
    elif how == "VAEBOOK_RUNS":
        monkeypatch.setenv("VAEBOOK_RUNS", str(store))
    elif how == "inside":
        argv += ["--out", str(store / "runs")]
    else:  # a store of the reader's own, not the one VAEBOOK_CHECKPOINTS names
        a_store(folders / "mine")
        argv += ["--out", str(folders / "mine")]
    code, err = fails(argv, capsys)
    assert code == 2 and "the checkpoint store" in err and "name another folder with --out" in err
    assert store_bytes(store) == before and not (store / "runs").exists()


def test_the_books_own_folder_is_never_a_run_folder(tiny, capsys, monkeypatch):
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    code, err = fails(["train", "tiny", "--fresh", "--out", str(REPO / "checkpoints")], capsys)
    assert code == 2 and f"the run folder {REPO / 'checkpoints'} is the checkpoint store" in err


@pytest.mark.parametrize("problem", ["a file", "a damaged manifest", "a parent that is a file"])
def test_save_checks_its_destination_before_any_data_is_loaded(tiny, folders, capsys, monkeypatch, problem):
    """Defect 5: --save found a bad checkpoint folder only after training."""
    store = folders / "checkpoints"
    if problem == "a file":
        store.write_text("not a folder")
        said = f"--save cannot store into {store}: {store} is a file, not a folder"
    elif problem == "a damaged manifest":
        store.mkdir()
        (store / "manifest.json").write_text('{"tiny": {')
        said = "manifest.json is not valid JSON"
    else:
        (folders / "file").write_text("")
        monkeypatch.setenv("VAEBOOK_CHECKPOINTS", str(folders / "file" / "checkpoints"))
        said = f"{folders / 'file'} is a file, so {folders / 'file' / 'checkpoints'} cannot be made"
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    code, err = fails(["train", "tiny", "--save"], capsys)
    assert code == 2 and said in err, err


def test_evaluate_checks_names_and_entries_before_loading_data(folders, capsys, monkeypatch):
    """Defect 6: `error: 'nosuch'` after loading the test data; `error: 'model'`."""
    from vaebook.metrics import evaluate
    monkeypatch.setattr(evaluate, "test_set", lambda *a, **k: pytest.fail("data loaded"))
    store = folders / "checkpoints"
    a_store(store)
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["oracle"] = manifest["other"]
    manifest["broken"] = {k: v for k, v in manifest["other"].items() if k != "model"}
    (store / "manifest.json").write_text(json.dumps(manifest))
    code, err = fails(["evaluate", "nosuch", "other"], capsys)
    assert code == 2 and "no checkpoint named 'nosuch'" in err and "it has: broken, oracle, other" in err
    code, err = fails(["evaluate", "broken"], capsys)
    assert code == 2 and "the entry 'broken'" in err and "has no valid 'model' field" in err
    del manifest["oracle"]
    (store / "manifest.json").write_text(json.dumps(manifest))
    code, err = fails(["evaluate", "other"], capsys)
    assert code == 2 and "has no 'oracle', which every measurement needs" in err


def test_an_experiment_says_its_own_values(tiny, capsys):
    """Defect 10: the start-up line showed the preset's description (its β), not the β given."""
    main(["train", "tiny", "--beta", "16", "--epochs", "1", "--quiet"])
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("training tiny-epochs1-beta16, an experiment: tiny with --epochs 1 "
                            "(the preset's: 2), --beta 16 (the preset's: 1); ")
    assert TINY.about not in first


def test_a_beta_that_overflows_names_beta_not_sigma(tiny, capsys):
    code, err = fails(["train", "tiny", "--beta", "1e308", "--epochs", "1", "--quiet"], capsys)
    assert code == 1 and "with --beta 1e+308; try a smaller --beta (the preset's is 1)" in err
    assert "sigma" not in err and " lr " not in err


def test_fewer_images_than_one_batch_is_said_in_the_command_lines_terms(tmp_path, capsys, monkeypatch):
    from celeba_fixture import make_celeba_fixture
    root = make_celeba_fixture(tmp_path / "celeba", "torchvision", 12)
    monkeypatch.setattr(retrain, "fit", lambda *a, **k: pytest.fail("training started"))
    code, err = fails(["train", "vae", "--dataset", "celeba", "--root", str(root)], capsys)
    assert code == 2 and "training split has 6 images, fewer than one batch of 128" in err
    assert "list_eval_partition.txt against the archive" in err and "batch_size" not in err


def test_a_cache_that_is_a_file_is_refused_up_front(tiny, tmp_path, capsys, monkeypatch):
    (tmp_path / "cache").write_text("")
    monkeypatch.setenv("VAEBOOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(retrain, "load_dataset", lambda *a, **k: pytest.fail("data loaded"))
    code, err = fails(["train", "tiny"], capsys)
    assert code == 2 and f"the faces cache {tmp_path / 'cache'} is a file" in err and "Errno" not in err


def test_a_full_disk_names_the_run_file(tiny, folders, capsys, monkeypatch):
    """Fault-injected: ENOSPC when the run file is flushed after the first epoch."""
    real = os.fsync

    def full_under_runs(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folders / "runs")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os, "fsync", full_under_runs)
    code, err = fails(["train", "tiny", "--quiet"], capsys)
    assert code == 1 and f"no space left on the disk of {folders / 'runs'} to write tiny.safetensors" in err
    assert "Errno" not in err and not list((folders / "runs").iterdir())
