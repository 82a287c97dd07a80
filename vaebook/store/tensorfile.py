"""The tensor file: tensors and a JSON record in one safetensors file, written atomically.

Checkpoints (:mod:`vaebook.store.checkpoints`) and run files (:mod:`vaebook.store.runs`) are
both such files. Reading one never executes code, whatever its bytes (safetensors, not pickle).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .files import CheckpointError, atomic_write_bytes


def serialise(tensors: dict[str, torch.Tensor], record: dict) -> bytes:
    """Tensors and a JSON record as the bytes of one safetensors file."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return st_save(tensors, metadata={"record": json.dumps(record)})


def deserialise(data: bytes, where) -> tuple[dict[str, torch.Tensor], object]:
    """(tensors, record) from safetensors bytes. No code is executed, whatever the bytes."""
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
        record = json.loads(meta.get("record", "{}"))
    except (SafetensorError, ValueError, AttributeError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)[:100]
        raise CheckpointError(f"{where} is not a readable safetensors file ({reason})") from None
    return tensors, record


def write_tensors(path, tensors: dict[str, torch.Tensor], record: dict) -> None:
    """Atomically write tensors and a JSON record into one safetensors file (run files)."""
    atomic_write_bytes(Path(path), serialise(tensors, record), step="run file")


def read_tensors(path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by :func:`write_tensors`: (tensors, record)."""
    path = Path(path)
    tensors, record = deserialise(path.read_bytes(), path)
    if not isinstance(record, dict):
        raise CheckpointError(f"{path} holds no record (its metadata is a {type(record).__name__})")
    return tensors, record
