"""The book's stored figures: numbers a chapter quotes that cost seconds to compute from fixed
checkpoints and data (bootstraps, repeated fits, tables over many models), kept in
``figures.json`` beside the manifest so that every build of the book need not recompute them.

Each figure is stored with what it was computed from (``inputs``: the sha256 of each
checkpoint's weights, and the faces' render version), so a figure whose models have changed is
refused with the command that recomputes it, never quoted stale. Writes go through the same
lock and atomic rename as the manifest. Which figures exist, and how each is computed, is
:mod:`vaebook.metrics.stored`'s business; this module only keeps them.
"""
from __future__ import annotations

import json
from pathlib import Path

from .files import CheckpointError, atomic_write_bytes, locked, read_manifest, root_dir

FIGURES = "figures.json"
UPDATE = "python -m vaebook figures --update"


class StaleFigureError(CheckpointError):
    """A stored figure is missing, or was computed from other checkpoints than the current ones."""


def read_all(root=None) -> dict:
    """{name: {"value": ..., "inputs": {...}}} of every stored figure ({} when there are none)."""
    path = root_dir(root) / FIGURES
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}: {e}); restore it with "
                              f"`git checkout -- {path}` or recompute it with `{UPDATE}`") from None
    if not isinstance(figures, dict):
        raise CheckpointError(f"{path} is not a JSON object; recompute it with `{UPDATE}`")
    return figures


def model_digests(models, root=None) -> dict[str, str]:
    """{model: sha256 of its weights} from the manifest, for each named checkpoint."""
    folder = root_dir(root)
    manifest = read_manifest(folder, required=True)
    missing = [m for m in models if m not in manifest]
    if missing:
        raise CheckpointError(f"no checkpoint named {', '.join(map(repr, missing))} in {folder}")
    return {m: manifest[m]["sha256"] for m in models}


def changed_inputs(stored: dict, current: dict) -> list[str]:
    """The inputs whose stored fingerprint differs from the current one ("vae", "faces")."""
    return [k for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k)]


def read(name: str, current: dict, root=None):
    """The stored value of figure `name`, if it was computed from the `current` inputs."""
    entry = read_all(root).get(name)
    if not isinstance(entry, dict) or "value" not in entry:
        raise StaleFigureError(f"no stored figure {name!r} in {root_dir(root) / FIGURES}; "
                               f"compute it with `{UPDATE} {name}`")
    changed = changed_inputs(entry.get("inputs", {}), current)
    if changed:
        raise StaleFigureError(f"the stored figure {name!r} was computed from other versions of "
                               f"{', '.join(changed)}; recompute it with `{UPDATE} {name}`")
    return entry["value"]


def write(name: str, value, inputs: dict, root=None) -> None:
    """Store `value` (plain JSON data) as figure `name`, computed from `inputs`."""
    folder = root_dir(root)
    text = json.dumps(value)  # fails here, before anything is written, if it is not JSON
    with locked(folder):
        figures = {**read_all(folder), name: {"inputs": inputs, "value": json.loads(text)}}
        data = json.dumps(dict(sorted(figures.items())), indent=1) + "\n"
        atomic_write_bytes(Path(folder) / FIGURES, data.encode(), step="figures")
