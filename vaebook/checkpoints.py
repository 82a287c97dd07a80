"""Saving and loading trained models safely: safetensors files, never pickle.

A checkpoint ``NAME`` is ``checkpoints/NAME.safetensors`` (the weights, with the whole record —
config, training budget, hardware, metrics — as JSON in the file's own metadata header) plus
``NAME.json``, the same record for people to read. ``checkpoints/manifest.json`` lists every
checkpoint with its sha256, so a truncated or swapped file is caught before it is used.

Every write goes to a temporary file in the same folder and is then renamed over the old one
(``os.replace`` is atomic), so a crash mid-write leaves the last good file intact.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .models import ModelConfig, build_model

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or does not match the model the book expects."""


def root_dir(root=None) -> Path:
    """The checkpoint folder: `root`, else $VAEBOOK_CHECKPOINTS, else the repo's checkpoints/."""
    return Path(root or os.environ.get("VAEBOOK_CHECKPOINTS") or DEFAULT_ROOT)


def retrain_hint(name: str) -> str:
    return f"rebuild it with `python -m vaebook train {name}` (or `make checkpoints` for all)"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_tensors(path, tensors: dict[str, torch.Tensor], record: dict) -> None:
    """Atomically write tensors and a JSON record into one safetensors file."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(Path(path), st_save(tensors, metadata={"record": json.dumps(record)}))


def read_tensors(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`write_tensors`: (tensors, record). No code is executed."""
    path = Path(path)
    data = path.read_bytes()
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {})
        record = json.loads(meta.get("record", "{}"))
    except (SafetensorError, ValueError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from e
    return tensors, record


def state_for_saving(model: torch.nn.Module, half: bool) -> dict[str, torch.Tensor]:
    """The model's state dict, floating-point tensors in float16 when `half` (half the size)."""
    state = model.state_dict()
    return {k: (v.half() if half and v.is_floating_point() else v) for k, v in state.items()}


def read_manifest(root=None) -> dict:
    path = root_dir(root) / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); restore it with `git checkout {MANIFEST}` "
                              "in the checkpoints folder, or rebuild every model with `make checkpoints`") from e


def save(model: torch.nn.Module, name: str, record: dict, *, root=None, half: bool = True) -> Path:
    """Save a trained model as checkpoint `name` and register it in the manifest.

    `record` holds what a reader needs to trust the file: config, data, budget, hardware,
    wall time and metrics. The model config is added here from the model itself."""
    folder = root_dir(root)
    record = {**record, "name": name, "model": model.config.to_dict(), "dtype": "float16" if half else "float32"}
    path = folder / f"{name}.safetensors"
    write_tensors(path, state_for_saving(model, half), record)
    entry = {**record, "file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size}
    atomic_write_bytes(folder / f"{name}.json", (json.dumps(entry, indent=2) + "\n").encode())
    update_manifest(name, entry, root=folder)
    return path


def update_manifest(name: str, entry: dict, *, root=None) -> None:
    folder = root_dir(root)
    manifest = read_manifest(folder)
    manifest[name] = entry
    text = json.dumps(dict(sorted(manifest.items())), indent=2) + "\n"
    atomic_write_bytes(folder / MANIFEST, text.encode())


def manifest_entry(name: str, root=None) -> dict:
    """The manifest's record of `name`, or a CheckpointError that says how to make it."""
    folder = root_dir(root)
    manifest = read_manifest(folder)
    if name not in manifest:
        known = ", ".join(sorted(manifest)) or "none"
        raise CheckpointError(
            f"no checkpoint named {name!r} in {folder / MANIFEST} (it has: {known}); {retrain_hint(name)}")
    return manifest[name]


def verified_path(name: str, root=None) -> tuple[Path, dict]:
    """Path of checkpoint `name` after checking it exists and its sha256 matches the manifest."""
    entry = manifest_entry(name, root)
    path = root_dir(root) / entry["file"]
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} is missing; {retrain_hint(name)}")
    digest = sha256(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"checkpoint file {path} is corrupted or was replaced: its sha256 is {digest[:12]}…, "
            f"the manifest expects {entry['sha256'][:12]}…; {retrain_hint(name)}")
    return path, entry


def load(name: str, *, root=None, device="cpu", expect: ModelConfig | None = None) -> torch.nn.Module:
    """Load checkpoint `name` as a ready model in eval mode (float32, on `device`).

    The model is rebuilt from the config stored in the file. If `expect` is given (the book
    passes the preset's config) and differs, that is an error: the chapter's text was written
    for the preset's model. The record is attached as ``model.record``."""
    path, entry = verified_path(name, root)
    tensors, record = read_tensors(path)
    config = ModelConfig.from_dict(record["model"])
    if expect is not None and expect != config:
        raise CheckpointError(
            f"checkpoint {name!r} was trained with {config}, but the book expects {expect}; "
            f"{retrain_hint(name)}")
    model = build_model(config, seed=None)
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path} does not fit its model ({e}); {retrain_hint(name)}") from e
    # metrics are measured after saving (update_metrics): the manifest has the current ones
    model.record = {**record, **{k: entry[k] for k in ("sha256", "bytes", "metrics") if k in entry}}
    return model.to(device).eval()


def update_metrics(name: str, metrics: dict, *, root=None) -> None:
    """Record test metrics for checkpoint `name` in the manifest and its JSON sidecar.

    Metrics live outside the weights file, so measuring again never changes its sha256."""
    folder = root_dir(root)
    entry = {**manifest_entry(name, folder), "metrics": metrics}
    atomic_write_bytes(folder / f"{name}.json", (json.dumps(entry, indent=2) + "\n").encode())
    update_manifest(name, entry, root=folder)
