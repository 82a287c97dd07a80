"""Book figures: the numbers a chapter quotes that take seconds to compute from the fixed
checkpoints (a bootstrap over fixed encodings, fits repeated in a loop, a table over many
models). Each is a function registered with :func:`book_figure`, computed once by
``python -m vaebook figures --update`` (``evaluate --update`` does it too) and stored beside
the checkpoints (:mod:`vaebook.store.figures`); a chapter reads it with :func:`figure`.

A stored figure is refused once a checkpoint it was computed from changes, and the test suite
recomputes every figure and compares it with the stored one (within the figure's tolerance),
so a stored number is always the number the code computes. The figures themselves live in
:mod:`vaebook.metrics.book_figures`, one module per chapter.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

from ..data.faces import RENDER_VERSION
from ..store import figures as files


@dataclass(frozen=True)
class BookFigure:
    name: str
    models: tuple[str, ...]       # the checkpoints it is computed from
    compute: Callable[[], object]
    rel_tol: float                # how far a fresh computation may differ (float rounding per CPU)
    abs_tol: float


REGISTRY: dict[str, BookFigure] = {}


def book_figure(name: str, models, rel_tol: float = 1e-6, abs_tol: float = 1e-9):
    """Register a function () -> JSON data (numbers, strings, lists, dicts) as figure `name`."""
    def register(compute):
        if name in REGISTRY:
            raise ValueError(f"two book figures are named {name!r}")
        REGISTRY[name] = BookFigure(name, tuple(models), compute, rel_tol, abs_tol)
        return compute
    return register


def inputs(models, root=None) -> dict[str, str]:
    """What a figure computed now would be computed from: its models' weights and the faces."""
    return {**files.model_digests(models, root), "faces": f"render version {RENDER_VERSION}"}


def figure(name: str, root=None):
    """The stored value of figure `name` (StaleFigureError, with the fix, when its models changed)."""
    stored = files.read_all(root).get(name)
    models = [k for k in (stored or {}).get("inputs", {}) if k != "faces"]
    return files.read(name, inputs(models, root) if stored else {}, root)


def compute(name: str):
    """Figure `name` computed afresh (nothing is stored)."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) or "none (import vaebook.metrics.book_figures)"
        raise KeyError(f"no book figure named {name!r}; known: {known}")
    return REGISTRY[name].compute()


def update(names=None, root=None) -> dict[str, float]:
    """Compute and store the named figures (default: all); seconds taken per figure."""
    seconds = {}
    for name in names or sorted(REGISTRY):
        start = time.perf_counter()
        value = compute(name)
        files.write(name, value, inputs(REGISTRY[name].models, root), root)
        seconds[name] = time.perf_counter() - start
    return seconds


def differences(fresh, stored, rel_tol: float, abs_tol: float, where: str = "") -> list[str]:
    """Where two JSON values differ, numbers compared with math.isclose: ["['fd'][2]: 1.5 vs 1.7"]."""
    if isinstance(fresh, dict) and isinstance(stored, dict):
        if set(fresh) != set(stored):
            return [f"{where}: keys {sorted(fresh)} vs {sorted(stored)}"]
        return [d for k in fresh for d in differences(fresh[k], stored[k], rel_tol, abs_tol, f"{where}[{k!r}]")]
    if isinstance(fresh, (list, tuple)) and isinstance(stored, (list, tuple)):
        if len(fresh) != len(stored):
            return [f"{where}: {len(fresh)} items vs {len(stored)}"]
        return [d for i, (a, b) in enumerate(zip(fresh, stored))
                for d in differences(a, b, rel_tol, abs_tol, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(fresh, numbers) and isinstance(stored, numbers) and not isinstance(fresh, bool):
        same = math.isclose(fresh, stored, rel_tol=rel_tol, abs_tol=abs_tol) or (fresh != fresh and stored != stored)
        return [] if same else [f"{where}: {fresh!r} computed, {stored!r} stored"]
    return [] if fresh == stored else [f"{where}: {fresh!r} computed, {stored!r} stored"]
