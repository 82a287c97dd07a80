"""The book's stored figures, one section per chapter: each function computes, from the fixed
checkpoints and data, supporting numbers that a chapter quotes but that would cost seconds at
every build (see :mod:`vaebook.metrics.stored`). A chapter reads one with
``stored.figure("name")``; ``python -m vaebook figures --update`` recomputes them all.
"""
from __future__ import annotations

from .stored import book_figure  # noqa: F401  (every section registers its figures with it)

# --- chapter 1

# --- chapter 2

# --- chapter 3

# --- chapter 4

# --- chapter 5

# --- chapter 6

# --- chapter 7

# --- chapter 8
