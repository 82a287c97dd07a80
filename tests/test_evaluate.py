"""The cached checkpoints: every one loads, and its recorded metrics can be re-measured."""
from __future__ import annotations

import math

import pytest
import torch

from vaebook.store import checkpoints

from vaebook.metrics import evaluate

from vaebook import metrics
from vaebook.store.presets import make_presets

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


# Tolerances for re-measured metrics. The images are bit-identical on every machine (the renderer
# is checked against recorded checksums), so what remains is the model's float rounding across
# instruction sets and thread counts, plus the manifest's rounding to 7 significant digits.
# Measured on fixed images, AMD EPYC (AVX2), torch threads 1 and 2 x ATEN_CPU_CAPABILITY
# default/avx2 x ONEDNN_MAX_CPU_ISA SSE41/AVX2/native (9 configurations):
#   ae test_recon_mse      relative spread 2.2e-8      (7-digit rounding: up to 2.5e-7)
#   beta4 test_recon_mse   relative spread 1.4e-8      (rounding up to 9.2e-8)
#   beta4 test_elbo        absolute spread 9.2e-7 nats (rounding up to 5e-4 nats at -5141)
#   beta4 active_units     always 10 (the least active dim: 0.787, threshold 0.01)
# Threads 1 and 2 gave identical bits. The tolerances are ~4x rounding + spread, ~100x the
# spread alone, for instruction sets that could not be emulated here (AVX-512).
RECON_MSE_REL_TOL = 2e-6
ELBO_ABS_TOL = 5e-3  # nats per image


def test_recorded_reconstruction_error_is_reproduced():
    """Loading the AE and measuring again gives the manifest's number."""
    images, _, _ = evaluate.test_set()
    ae = checkpoints.load("ae")
    measured = metrics.reconstruction_mse(ae, images)
    recorded = ae.record["metrics"]["test_recon_mse"]
    assert math.isclose(measured, recorded, rel_tol=RECON_MSE_REL_TOL), (measured, recorded)


def test_recorded_vae_metrics_are_reproduced():
    images, factors, _ = evaluate.test_set()
    vae = checkpoints.load("beta4")
    sigma = vae.record["train"]["sigma"]
    recorded = vae.record["metrics"]
    assert math.isclose(metrics.reconstruction_mse(vae, images), recorded["test_recon_mse"],
                        rel_tol=RECON_MSE_REL_TOL)
    # the ELBO evaluate records: the first of its K samples per image, on the first N_LL images
    terms = metrics.elbo_terms(vae, images[:evaluate.N_LL], sigma, seed=evaluate.SEED)
    assert math.isclose(terms["elbo"], recorded["test_elbo"], rel_tol=0, abs_tol=ELBO_ABS_TOL), \
        (terms["elbo"], recorded["test_elbo"])
    assert metrics.active_units(vae, images) == recorded["active_units"]


VAE_KEYS = {"test_elbo", "test_iwae", "test_iwae_gap", "test_bpd", "fitted_sigma", "test_elbo_fitted",
            "test_iwae_fitted", "test_bpd_fitted", "mig", "mig_sampled", "factor_vae", "mutual_info",
            "kl_aggregate"}


@pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.model.kind == "vae"))
def test_every_vae_record_has_both_likelihoods_and_both_mig_estimators(name):
    if name not in MANIFEST:
        pytest.skip(f"no checkpoint {name} yet: test_every_preset_has_a_cached_checkpoint says so")
    recorded = MANIFEST[name].get("metrics", {})
    missing = VAE_KEYS - set(recorded)
    assert not missing, f"{name} lacks {sorted(missing)}: run `python -m vaebook evaluate --update {name}`"
    assert recorded["test_iwae_gap"] > 0 and recorded["test_iwae"] > recorded["test_elbo"]
    assert 0 < recorded["mutual_info"] <= math.log(evaluate.N_SURGERY) + 1e-6


def tiny_vae():
    from vaebook.models import ModelConfig, build_model
    return build_model(ModelConfig("vae", image_size=16, channels=(4, 8), latent_dim=3), seed=0)


def test_prior_and_gaussian_samples_decode_in_eval_mode():
    """BatchNorm in train mode would normalise each chunk by its own statistics and overwrite the
    running ones: samples must not depend on the chunk, nor change the model."""
    vae = tiny_vae().train()
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    samples = evaluate.prior_samples(vae, 7, seed=3)
    assert vae.training, "mode restored"
    assert all(torch.equal(v, vae.state_dict()[k]) for k, v in before.items()), "running stats untouched"
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = vae.eval().decode(z)
    vae.train()
    torch.testing.assert_close(samples, expected)
    codes = torch.randn(50, 3, generator=torch.Generator().manual_seed(4))
    drawn = evaluate.gaussian_samples(vae, codes, 5, seed=6)
    assert vae.training and drawn.shape == (5, 3, 16, 16)
    assert all(torch.equal(v, vae.state_dict()[k]) for k, v in before.items())


def test_evaluate_prints_a_table(capsys):
    results = evaluate.evaluate_all(["ae"], limit=600)
    out = capsys.readouterr().out
    assert "test_recon_mse" in out and "\nae " in out
    assert results["ae"]["test_recon_mse"] > 0


def test_evaluate_measures_a_vae_with_every_column(capsys, monkeypatch):
    """The whole pipeline on a real checkpoint, made small: the ELBO is elbo_terms on the same first
    N_LL images the bound uses, the bound is above the ELBO, and the fitted σ gives higher bounds."""
    for name, value in (("N_LL", 40), ("K_IWAE", 4), ("N_VALID", 60), ("N_FD", 100), ("N_SURGERY", 50),
                        ("FACTOR_VAE_VOTES", (8, 8))):
        monkeypatch.setattr(evaluate, name, value)
    results = evaluate.evaluate_all(["beta4"], limit=200)
    m = results["beta4"]
    assert VAE_KEYS <= set(m)
    images, _, _ = evaluate.test_set(200)
    vae = checkpoints.load("beta4")
    elbo = metrics.elbo_terms(vae, images[:40], vae.record["train"]["sigma"], seed=evaluate.SEED)["elbo"]
    assert m["test_elbo"] == float(f"{elbo:.7g}")
    assert m["test_iwae"] > m["test_elbo"] and m["test_iwae_gap"] > 0
    assert m["fitted_sigma"] < vae.record["train"]["sigma"] and m["test_elbo_fitted"] > m["test_elbo"]
    assert m["test_bpd_fitted"] < m["test_bpd"]
    assert 0 < m["mutual_info"] <= math.log(50) + 1e-6 and 0 <= m["factor_vae"] <= 1
    out = capsys.readouterr().out
    assert "test_iwae_fitted" in out and "mig_sampled" in out and "factor_vae" in out


def test_results_table_keeps_its_columns_aligned_for_long_names(capsys):
    results = {"ae": {"test_recon_mse": 0.004, "sample_fd": 250.0},
               "beta16-sigma0.1": {"test_recon_mse": 0.005, "mig": 0.02, "test_kl": 27.4,
                                   "test_elbo": 14056.04}}
    evaluate.print_table(results)
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("likelihood") + 1
    header, *rows = lines[start:start + 3]
    assert {len(header)} == {len(r) for r in rows}, "every row as wide as the header"
    column = header.index("test_kl") + len("test_kl")          # right edge of the test_kl column
    assert rows[1][:column].endswith("27.4") and rows[0][:column].endswith("-")
    assert rows[1].startswith("beta16-sigma0.1 ")
    assert " 14056 " in rows[1], "bounds of thousands of nats as whole numbers"
    second = lines.index("latents, samples and disentanglement") + 1
    assert lines[second].split() == ["model", "sample_fd", "mig"]
