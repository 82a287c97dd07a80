"""The cached checkpoints: every one loads, and its recorded metrics can be re-measured."""
from __future__ import annotations

import math

import pytest
import torch

from vaebook import checkpoints, evaluate, metrics
from vaebook.presets import make_presets

MANIFEST = checkpoints.read_manifest()
PRESETS = make_presets()


def test_every_preset_has_a_cached_checkpoint():
    missing = sorted(set(PRESETS) - set(MANIFEST))
    assert not missing, f"no checkpoint for {missing}: run `make checkpoints`"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_checkpoint_loads_as_its_preset_with_an_honest_record(name):
    model = checkpoints.load(name, expect=PRESETS[name].model)  # sha256 and config checked
    record = model.record
    assert record["trained_on"].startswith(("CPU", "GPU"))
    assert record["wall_seconds"] > 0
    assert record["data"]["images_seen"] >= record["data"]["images"]
    assert len(record["history"]) == record["train"]["epochs"]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert record["metrics"], f"{name} has no metrics: run `python -m vaebook evaluate --update`"


def test_recorded_reconstruction_error_is_reproduced():
    """Loading the AE and measuring again gives the manifest's number."""
    images, _, _ = evaluate.test_set()
    ae = checkpoints.load("ae")
    measured = metrics.reconstruction_mse(ae, images)
    recorded = ae.record["metrics"]["test_recon_mse"]
    assert math.isclose(measured, recorded, rel_tol=1e-4), (measured, recorded)


def test_recorded_vae_metrics_are_reproduced():
    images, factors, _ = evaluate.test_set()
    vae = checkpoints.load("beta4")
    sigma = vae.record["train"]["sigma"]
    recorded = vae.record["metrics"]
    assert math.isclose(metrics.reconstruction_mse(vae, images), recorded["test_recon_mse"], rel_tol=1e-4)
    terms = metrics.elbo_terms(vae, images, sigma, seed=evaluate.SEED)
    assert math.isclose(terms["elbo"], recorded["test_elbo"], rel_tol=1e-4)
    assert metrics.active_units(vae, images) == recorded["active_units"]


def test_evaluate_prints_a_table(capsys):
    results = evaluate.evaluate_all(["ae"], limit=600)
    out = capsys.readouterr().out
    assert "test_recon_mse" in out and "\nae " in out
    assert results["ae"]["test_recon_mse"] > 0


def test_results_table_keeps_its_columns_aligned_for_long_names(capsys):
    results = {"ae": {"test_recon_mse": 0.004, "sample_fd": 250.0},
               "beta16-sigma0.1": {"test_recon_mse": 0.005, "mig": 0.02, "test_kl": 27.4}}
    evaluate.print_table(results)
    header, *rows = capsys.readouterr().out.splitlines()[1:]
    assert {len(header)} == {len(r) for r in rows}, "every row as wide as the header"
    column = header.index("test_kl") + len("test_kl")          # right edge of the test_kl column
    assert rows[1][:column].endswith("27.4") and rows[0][:column].endswith("-")
    assert rows[1].startswith("beta16-sigma0.1 ")
