"""Where checkpoint stores are, which names they may hold, and what to tell a reader who lost one.

The store (:mod:`vaebook.store.files`) owns its folder: it writes ``manifest.json`` and one
``NAME.json`` per checkpoint there, and it deletes weights files that no entry names. So nothing
else may live in it, and a checkpoint's name must not collide with the store's own files:

* ``manifest`` is reserved (its ``NAME.json`` would be the manifest itself), in any case;
* two names that differ only in case are one file on a case-insensitive disk (macOS, Windows);
* a run folder (``runs/``) must not be, or be inside, a store, where the clean-up after a save
  would treat run files as its own leftovers.

This module needs no torch (the store's crash tests start writer processes that import it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "checkpoints"
MANIFEST = "manifest.json"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a file name stem: no path, no hidden file
RESERVED = {Path(MANIFEST).stem}  # names of the store's own files (compared in lower case)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or does not match the model the book expects."""


def root_dir(root=None) -> Path:
    """The checkpoint folder: `root`, else $VAEBOOK_CHECKPOINTS, else the repo's checkpoints/."""
    return Path(root or os.environ.get("VAEBOOK_CHECKPOINTS") or DEFAULT_ROOT)


def is_book_folder(folder: Path) -> bool:
    """Whether `folder` is the book's own checkpoints/ (committed to git, faces models only)."""
    return Path(folder).resolve() == DEFAULT_ROOT.resolve()


def name_problem(name, existing=()) -> str | None:
    """Why `name` cannot name a new checkpoint in a store holding `existing` names, or None."""
    if not isinstance(name, str) or not NAME.match(name):
        return f"{name!r} cannot name a checkpoint: use letters, digits, '.', '_', '-'"
    if name.lower() in RESERVED:
        return f"{name!r} cannot name a checkpoint: the store keeps its {MANIFEST} under that name"
    twin = next((n for n in existing if n != name and n.lower() == name.lower()), None)
    if twin is not None:
        return (f"{name!r} differs from the checkpoint {twin!r} only in case, so the two would share "
                "one file on a case-insensitive disk; choose another name")
    return None


def is_store(folder: Path) -> bool:
    """Whether `folder` holds a checkpoint store: a manifest.json of entries naming weights files."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and bool(manifest) and all(
        isinstance(e, dict) and str(e.get("file", "")).endswith(".safetensors") for e in manifest.values())


def store_holding(folder, stores=()) -> Path | None:
    """The store that `folder` is or lies inside (the given `stores`, the book's checkpoints/,
    or any folder above that holds a store's manifest), or None."""
    folder = Path(folder).resolve()
    for store in [*stores, DEFAULT_ROOT]:
        store = Path(store).resolve()
        if folder == store or store in folder.parents:
            return store
    return next((p for p in [folder, *folder.parents] if is_store(p)), None)


def writable_problem(folder: Path) -> str | None:
    """Why a checkpoint cannot be saved into `folder`, or None: it must be a folder (or one that
    can be made) that this user may write to."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    existing = next(p for p in [folder, *folder.absolute().parents] if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, so {folder} cannot be made"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} cannot be written to by this user"
    return None


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def free_bytes(folder: Path) -> int | None:
    """Free space on the disk of `folder` (or of its nearest existing parent), or None."""
    existing = next((p for p in [Path(folder), *Path(folder).absolute().parents] if p.exists()), None)
    try:
        return shutil.disk_usage(existing).free
    except (OSError, TypeError):
        return None


def restore_hint(folder: Path, name: str | None = None) -> str:
    """How to get a good checkpoint back: git for the book's own folder, else retraining the
    preset of that name; the command is printed only when it would work as printed."""
    from .presets import make_presets
    preset = name is not None and name in make_presets()
    retrain = f"`python -m vaebook train {name} --save`"
    if is_book_folder(folder):
        return ("restore the book's checkpoints with `git checkout checkpoints/`"
                + (f" (or retrain with {retrain})" if preset else ""))
    if preset:
        return f"retrain it with `VAEBOOK_CHECKPOINTS={folder} python -m vaebook train {name} --save`"
    if name is not None:
        return f"{name!r} is not one of the book's presets: save it again with the code that made it"
    return (f"move {Path(folder) / MANIFEST} aside and save the models again "
            "(`python -m vaebook list` names the presets, `train` with --save saves one)")
