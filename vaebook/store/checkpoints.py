"""Saving and loading trained models safely: safetensors files, never pickle.

A checkpoint ``NAME`` is a safetensors file of weights whose metadata header holds the whole
record (config, data, training budget, hardware, history) as JSON, registered in
``checkpoints/manifest.json`` with its sha256, so a truncated or swapped file is caught before
it is used. How the folder stays loadable when a save is killed at any instant is
:mod:`vaebook.files.files`'s job; what a record must say, :mod:`vaebook.files.records`'.

The book's folder is read-only to experiments: training writes to ``runs/``, and a model
enters this store only through :func:`save` (``python -m vaebook train NAME --save``), which,
like :func:`load`, refuses a model whose record differs from its preset.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from . import files
from ..models import ModelConfig, build_model
from .records import check_record
from .tensorfile import deserialise, read_tensors, serialise, write_tensors
from .files import DEFAULT_ROOT, MANIFEST, CheckpointError, atomic_write_bytes, root_dir

__all__ = ["CheckpointError", "DEFAULT_ROOT", "MANIFEST", "atomic_write_bytes", "load", "read_manifest",
           "read_tensors", "root_dir", "save", "update_metrics", "write_tensors"]


def state_for_saving(model: torch.nn.Module, half: bool) -> dict[str, torch.Tensor]:
    """The model's state dict, floating-point tensors in float16 when `half` (half the size)."""
    state = model.state_dict()
    return {k: (v.half() if half and v.is_floating_point() else v) for k, v in state.items()}


def read_manifest(root=None) -> dict:
    """The manifest of folder `root` as {name: entry}; {} when the folder has none."""
    return files.read_manifest(root_dir(root))


def manifest_entry(name: str, root=None) -> dict:
    """The manifest's entry for `name`, or a CheckpointError that says what to do."""
    return files.manifest_entry(root_dir(root), name)


def save(model: torch.nn.Module, name: str, record: dict, *, root=None, half: bool = True,
         dataset: str | None = None) -> Path:
    """Save a trained model as checkpoint `name` and register it in the manifest.

    `record` holds what a reader needs to trust the file: training config, data, budget,
    hardware, wall time and history; the model config is added here from the model itself.
    For a preset's name the record must match the preset (and, in the book's folder, the data
    must be `faces`): an experiment is refused before anything is written."""
    folder = root_dir(root)
    blob, record = prepare(model, name, record, folder, half, dataset)
    entry = files.commit(folder, name, blob, record)
    return folder / entry["file"]


def prepare(model, name: str, record: dict, folder: Path, half: bool = True,
            dataset: str | None = None) -> tuple[bytes, dict]:
    """The checked record of checkpoint `name` and the file's bytes: all of a save that
    touches no file (tests hand the result to a writer process they kill)."""
    record = {**record, "name": name, "model": model.config.to_dict(), "dtype": "float16" if half else "float32"}
    record = json.loads(json.dumps(record))  # exactly what a reader will get back (tuples -> lists)
    check_record(name, record, folder, dataset)
    return serialise(state_for_saving(model, half), record), record


def load(name: str, *, root=None, device="cpu", expect: ModelConfig | None = None,
         dataset: str | None = None) -> torch.nn.Module:
    """Load checkpoint `name` as a ready model in eval mode (float32, on `device`).

    The file's sha256 is checked against the manifest, and its record against the preset of
    the same name (model, training config, data: the chapter's text was written for that
    model). `expect`, a ModelConfig, must equal the stored one too; `dataset` names the data
    the model must have seen (default: `faces` in the book's folder, any elsewhere). The record
    is attached as ``model.record``."""
    folder = root_dir(root)
    data, entry = files.read_blob(folder, name)
    path = folder / entry["file"]
    tensors, record = deserialise(data, path)
    config = check_record(name, record, folder, dataset)
    differing = entry_differences(entry, record)
    if differing:
        raise CheckpointError(
            f"the entry of {name!r} in {folder / MANIFEST} differs from the record inside {entry['file']} "
            f"(in {', '.join(differing)}): the manifest was changed by hand or by another program; "
            f"{files.restore_hint(folder, name)}")
    if expect is not None and expect != config:
        raise CheckpointError(f"checkpoint {name!r} was trained with {config}, but the book expects "
                              f"{expect}; {files.restore_hint(folder, name)}")
    try:
        model = build_model(config, seed=None)
        state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, MemoryError) as e:
        raise CheckpointError(f"checkpoint {path} does not fit its model ({str(e)[:200]}); "
                              f"{files.restore_hint(folder, name)}") from None
    # metrics are measured after saving (update_metrics): the manifest has the current ones
    model.record = {**record, **{k: entry[k] for k in ("sha256", "bytes", "metrics") if k in entry}}
    return model.to(device).eval()


ENTRY_ONLY = ("file", "sha256", "bytes", "metrics")  # what the manifest adds to a file's record


def entry_differences(entry: dict, record: dict) -> list[str]:
    """The fields in which a manifest entry differs from the record inside its weights file
    (readers such as the explorer's export and `evaluate` read the entry, so they must agree).
    Metrics are the manifest's alone: they are measured after saving."""
    missing = object()
    keys = sorted((set(entry) | set(record)) - set(ENTRY_ONLY))
    return [k for k in keys if entry.get(k, missing) != record.get(k, missing)]


def update_metrics(name: str, metrics: dict, *, root=None) -> None:
    """Record test metrics for checkpoint `name` in the manifest (and its NAME.json).

    Metrics live outside the weights file, so measuring again never changes its sha256."""
    files.update_entry(root_dir(root), name, {"metrics": metrics})
