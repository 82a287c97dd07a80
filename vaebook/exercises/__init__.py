"""The chapters' exercises and their checker: ``check("ex-id", answer)`` prints one line (``checker``);
the exercises of chapters 1-2 (``autoencoders``), 3-4 (``bounds``), 5-6 (``vae``), the small
training runs (``training``), and ``python -m vaebook exercises [--check]`` (``catalogue``)."""
from . import autoencoders, bounds, vae  # noqa: F401  (importing them registers the exercises)
from .checker import EXERCISES, ExerciseFailed, Verdict, check, require, verdict

__all__ = ["EXERCISES", "ExerciseFailed", "Verdict", "check", "require", "verdict"]
