"""Measuring trained models: reconstruction, latent use and Fréchet distances (``measures``),
likelihood bounds (``likelihood``), the aggregate posterior (``aggregate``), disentanglement
(``disentanglement``), densities fitted to codes (``density``), ``evaluate``, which runs
them all on every stored model, and the book's stored figures (``stored``, ``book_figures``). ``from vaebook import metrics`` gives every function by name."""
from .measures import *  # noqa: F401,F403  (its __all__ gathers the companions' functions too)
from .measures import __all__  # noqa: F401
