"""Run files: the state of a training run between epochs, so that it can be resumed.

`fit` writes one after every epoch (see :mod:`vaebook.train`): weights, optimiser state,
history, the training config and a description of the data. Resuming is only right when the
file was made by the same run, so :func:`check_resumable` compares the config, the model and
the data with the new run and names every field that differs; a run on CelebA never silently
continues on `faces`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .files import CheckpointError
from .tensorfile import read_tensors, write_tensors
from ..train.config import History


class ResumeError(ValueError):
    """A run file cannot be resumed with this model, config or data; the message says why."""


def save_run(path, model, optimiser, history, step: int, cfg,
             data: dict | None = None, rng: dict | None = None) -> None:
    """Atomically write everything needed to resume: weights, optimiser state, history, the
    data the run trains on, and (while an epoch's validation is pending) the RNG state that
    validation must start from to give the numbers an uninterrupted run would give."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimiser.state_dict()
    for pid, state in opt["state"].items():
        for k, v in state.items():
            tensors[f"optim.{pid}.{k}"] = torch.as_tensor(v)
    for k, v in (rng or {}).items():
        tensors[f"rng.{k}"] = v
    record = {"history": history.epochs, "step": step, "train": cfg.to_dict(),
              "param_groups": opt["param_groups"], "pending_validation": rng is not None}
    if data is not None:
        record["data"] = data
    if getattr(model, "config", None) is not None:
        record["model"] = model.config.to_dict()
    write_tensors(path, tensors, record)


def changed_fields(saved: dict, wanted: dict, skip=()) -> list[str]:
    """'key=saved there, wanted now' for each key whose value differs."""
    missing = object()
    return [f"{k}={saved.get(k, '(none)')!r} there, {v!r} now" for k, v in wanted.items()
            if k not in skip and saved.get(k, missing) != v]


def check_resumable(path, record: dict, model, cfg, data: dict | None = None) -> None:
    """Refuse to resume a run made with another TrainConfig, model or data, naming the fields.
    `epochs` may differ: each epoch is seeded from (seed, epoch), so the first N epochs do not
    depend on the total and a run can be extended."""
    fresh = "; delete it to start afresh (`--fresh` on the command line)"
    if not isinstance(record.get("train"), dict) or not isinstance(record.get("history"), list):
        raise ResumeError(f"{path} is not a run file that can be resumed{fresh}")
    diffs = changed_fields(record["train"], cfg.to_dict(), skip=("epochs",))
    if diffs:
        raise ResumeError(f"{path} was made with a different TrainConfig: {'; '.join(diffs)}{fresh}")
    if data is not None:
        saved = record.get("data")
        diffs = changed_fields(saved, data) if isinstance(saved, dict) else ["it does not say which data"]
        if diffs:
            raise ResumeError(f"{path} was made on different data: {'; '.join(diffs)}{fresh}")
    config = getattr(model, "config", None)
    if "model" in record and config is not None:
        diffs = changed_fields(record["model"], json_like(config.to_dict()))
        if diffs:
            raise ResumeError(f"{path} was made for a different model: {'; '.join(diffs)}{fresh}")
    if len(record["history"]) > cfg.epochs:
        raise ResumeError(f"{path} already holds {len(record['history'])} epochs, more than "
                          f"epochs={cfg.epochs}{fresh}")


def json_like(d: dict) -> dict:
    """`d` as it reads back from JSON (tuples become lists), for comparing with a record."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def restore_run(path, model, optimiser, cfg=None, data=None):
    """Load a run file into model and optimiser (after checking it with :func:`check_resumable`
    when `cfg` is given); return (history rows, step, record, saved RNG states)."""
    try:
        tensors, record = read_tensors(path)
    except CheckpointError as e:
        raise ResumeError(f"{e}; delete it to start afresh (`--fresh`)") from None
    if cfg is not None:
        check_resumable(path, record, model, cfg, data)
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v
        optimiser.load_state_dict({"state": state, "param_groups": record["param_groups"]})
        rows, step = list(record["history"]), int(record["step"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = " ".join(str(e).split())[:120]
        raise ResumeError(f"{path} is damaged or from another version ({type(e).__name__}: {reason}); "
                          "delete it to start afresh (`--fresh`)") from None
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return rows, step, record, rng


def load_run(path, model, optimiser, cfg=None, data: dict | None = None) -> tuple[History, int, dict]:
    """Restore a run written by :func:`save_run` into model and optimiser; return (History,
    step, training config as a dict). With `cfg`, first check that the run may be resumed with
    it (and with `data`)."""
    rows, step, record, _ = restore_run(path, model, optimiser, cfg, data)
    return History(rows), step, record["train"]


class RunFile:
    """The run file at `path`, in the form :func:`vaebook.train.fit` takes it: the loop asks it
    whether a run exists, hands it the state to keep and asks for it back."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFile({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, model, optimiser, history, step: int, cfg, data=None, rng=None) -> None:
        save_run(self.path, model, optimiser, history, step, cfg, data, rng)

    def restore(self, model, optimiser, cfg, data=None):
        return restore_run(self.path, model, optimiser, cfg, data)
