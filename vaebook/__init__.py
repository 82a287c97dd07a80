"""vaebook: the companion package of *Variational Autoencoders, from autoencoders to β-VAE*.

Modules, one per concept: data (and faces, celeba), models, losses, train, checkpoints,
presets, metrics, plotting, widgets. Nothing runs at import.
"""
__version__ = "0.1.0"
