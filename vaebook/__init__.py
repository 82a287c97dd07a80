"""vaebook: the companion package of *Variational Autoencoders, from autoencoders to β-VAE*.

The layout is a map of the book; each folder's ``__init__`` says what lives there.

==================  ==========================================================  ==========
where               what                                                        chapters
==================  ==========================================================  ==========
``models.py``       the autoencoder, the VAE and the factor-reading oracle     1, 5, 6
``losses.py``       reconstruction losses, the Gaussian KL, the ELBO, β, C      1, 4, 5, 6
``train/``          TrainConfig and the one training loop, ``fit``              1, 5, 6
``data/``           the `faces` dataset and its renderer; CelebA                every one
``store/``          checkpoints, presets, run files, stored figures             every one
``metrics/``        Fréchet, likelihood bounds, MIG ...; the book's figures     2, 3, 5, 6
``exact/``          linear-Gaussian models with closed forms                    3, 6
``explore/``        latent arithmetic, Jupyter and in-page explorers            5, 6, 8
``plotting.py``     image grids and the chapters' common set-up                 every one
``exercises/``      the chapters' exercises and their checker                  1-6
``cli/``            ``python -m vaebook`` (train, evaluate, figures, ...)       7, 8
==================  ==========================================================  ==========

Imports run one way, down this list's layers: models, losses, data and exact import nothing
of the others; train imports losses; store imports models, data and train's config (never the
loop); metrics, explore, exercises and cli sit on top. ``tests/test_layout.py`` keeps it so.
Nothing runs at import.
"""
__version__ = "0.1.0"
