"""The book's named models: one preset (model config + training config) per checkpoint.

The CLI (`python -m vaebook train NAME --save`) and `vaebook.store.checkpoints.load` both read this
dict, so a chapter that loads "vae" gets exactly the model this file describes: a checkpoint
whose record differs from its preset (another β, fewer epochs, part of the data) is refused.
Budgets are sized for a 2-core CPU (the machines the book was built on). Training longer, on a
GPU or not, is an experiment (`train NAME --epochs N`, kept in runs/) until the preset itself
is changed here.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models import ModelConfig
from ..train.config import TrainConfig

WIDTHS = (16, 32, 64, 128)  # conv widths: small enough to train on a laptop CPU
# Decoder std σ for the β sweep. β multiplies the KL against a reconstruction term scaled by
# 1/(2σ²), so β only means something next to σ: at σ=0.1 even β=16 weighs the KL like the
# plain ELBO at σ=0.4, too weak to change which factors the latents carry (MIG stayed flat
# at ~0.02 for β=1..16). At σ=0.6, the `vae`'s σ, the same β range spans a real trade-off.
SWEEP_SIGMA = 0.6


@dataclass(frozen=True)
class Preset:
    model: ModelConfig
    train: TrainConfig
    about: str


def oracle_config() -> ModelConfig:
    from ..data.faces import FACTOR_LEVELS, FACTOR_NAMES
    levels = tuple(FACTOR_LEVELS.get(n, 0) for n in FACTOR_NAMES)
    return ModelConfig("oracle", latent_dim=128, channels=WIDTHS, factor_levels=levels)


LONG_EPOCHS = 20  # the long runs: five times the sweep's 4 epochs (about 9,400 steps)


def beta_vae(beta: float, sigma: float = SWEEP_SIGMA, seed: int = 0, epochs: int = 4) -> Preset:
    if epochs != 4:
        where = f"chapter 6: {epochs} epochs, to see whether the 4-epoch sweep's findings hold"
    elif sigma != SWEEP_SIGMA:
        where = "chapters 5-6: the sweep's first attempt, at a small σ"
    elif seed != 0:
        where = f"chapter 6: the sweep again with seed {seed}, to tell β from luck"
    else:
        where = "chapter 6"
    return Preset(ModelConfig("vae", latent_dim=10, channels=WIDTHS),
                  TrainConfig(objective="elbo", beta=beta, sigma=sigma, epochs=epochs, seed=seed),
                  f"β-VAE with 10 latents, β={beta:g} and σ={sigma:g} ({where})")


def make_presets() -> dict[str, Preset]:
    presets = {
        "ae": Preset(ModelConfig("ae", latent_dim=128, channels=WIDTHS),
                     TrainConfig(objective="mse", epochs=6),
                     "autoencoder with a 128-d bottleneck (chapters 1-2)"),
        "vae": Preset(ModelConfig("vae", latent_dim=128, channels=WIDTHS),
                      TrainConfig(objective="elbo", beta=1.0, sigma=0.6, epochs=6),
                      "VAE, same encoder/decoder as 'ae' plus a log-variance head (chapter 5)"),
        # the decoder std that the article's loss (per-pixel mean MSE + 1e-5·KL) implies at 64×64:
        # losses.sigma_for_kl_weight(1e-5, 3 * 64 * 64) = 0.2479
        "vae-sigma0.248": Preset(ModelConfig("vae", latent_dim=128, channels=WIDTHS),
                                 TrainConfig(objective="elbo", beta=1.0, sigma=0.248, epochs=6),
                                 "the 'vae' at σ=0.248, the article's KL weight (chapter 5's likelihoods)"),
        **{f"beta{b}": beta_vae(b) for b in (1, 2, 4, 8, 16)},
        **{f"beta{b}-seed{seed}": beta_vae(b, seed=seed) for seed in (1, 2) for b in (1, 2, 4, 8, 16)},
        **{f"beta{b}-sigma0.1": beta_vae(b, sigma=0.1) for b in (1, 16)},
        # C rises over the first 1,000 of 3,744 steps and is then held for the other 73%, so the
        # model is measured after it has settled at its target (the loss is γ|batch-mean KL − C|)
        "capacity": Preset(ModelConfig("vae", latent_dim=10, channels=WIDTHS),
                           TrainConfig(objective="capacity", sigma=SWEEP_SIGMA, epochs=8,
                                       capacity_max=12.0, capacity_steps=1000, gamma=100.0),
                           "β-VAE with capacity annealing, Burgess et al. 2018 (chapter 6)"),
    }
    # the long runs (chapter 6's "are the models trained enough?"): the same models trained five
    # times longer; the capacity model's C rises slowly over 80% of its 9,360 steps, as in
    # Burgess et al., instead of reaching C_max at step 1,000
    presets.update({f"beta{b}-long": beta_vae(b, epochs=LONG_EPOCHS) for b in (1, 8, 16)})
    presets["capacity-long"] = Preset(
        ModelConfig("vae", latent_dim=10, channels=WIDTHS),
        TrainConfig(objective="capacity", sigma=SWEEP_SIGMA, epochs=LONG_EPOCHS,
                    capacity_max=12.0, capacity_steps=7500, gamma=100.0),
        "β-VAE with capacity annealing, C rising over 80% of 20 epochs (chapter 6)")
    presets["vae-long"] = Preset(
        ModelConfig("vae", latent_dim=128, channels=WIDTHS),
        TrainConfig(objective="elbo", beta=1.0, sigma=0.6, epochs=LONG_EPOCHS),
        "the 'vae' trained for 20 epochs instead of 6 (chapter 5: is it trained enough?)")
    presets["oracle"] = Preset(oracle_config(), TrainConfig(objective="factors", epochs=6),
                               "factor reader used to measure models (never a generative model)")
    return presets


def get_preset(name: str) -> Preset:
    presets = make_presets()
    if name not in presets:
        raise KeyError(f"no preset named {name!r}; the book's models are: {', '.join(presets)}")
    return presets[name]
