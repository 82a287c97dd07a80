"""What a checkpoint's record must say, checked against the book's presets.

A chapter's text is written for one model: the preset's architecture, trained with the preset's
config on the whole training split of its data. Matching shapes prove little (a one-epoch β=16
experiment has exactly the shapes of `beta1`), so :func:`check_record` compares the record's
name, model config, training config and data with the preset field by field, and names every
difference. It runs when a checkpoint is saved and again when it is loaded. Names that are not
presets (experiments kept in a folder of your own) are only checked to be well formed.
"""
from __future__ import annotations

import dataclasses

from ..data.loading import split_size
from ..models import ModelConfig
from .files import CheckpointError, is_book_folder


def model_config(record: dict, where: str) -> ModelConfig:
    """The ModelConfig a record describes, or a CheckpointError saying the record is malformed."""
    try:
        return ModelConfig.from_dict(record["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where} has no valid model config ({type(e).__name__}: {e})") from None


def expected_images(dataset: str, train_size) -> int | None:
    """How many training images a run on `dataset` with `train_size` sees (None: unknown)."""
    full = split_size(dataset, "train")
    if full is None or train_size is None:
        return full
    return min(full, train_size)


def differences(record: dict, name: str, dataset: str | None) -> list[str]:
    """Each way `record` differs from preset `name` ("train.beta is 16, the preset's is 1").
    `dataset`: the data the model must have seen (None: any known dataset, in full)."""
    from .presets import make_presets
    from ..train.config import TrainConfig
    preset = make_presets()[name]
    out = []
    config = model_config(record, f"the record of {name!r}")
    for f in dataclasses.fields(ModelConfig):
        got, want = getattr(config, f.name), getattr(preset.model, f.name)
        if got != want:
            out.append(f"model.{f.name} is {got!r}, the preset's is {want!r}")
    train = record.get("train")
    try:
        saved = TrainConfig(**train)
    except (TypeError, ValueError) as e:
        return out + [f"its training config is not valid ({e})"]
    for f in dataclasses.fields(TrainConfig):
        got, want = getattr(saved, f.name), getattr(preset.train, f.name)
        if got != want:
            out.append(f"train.{f.name} is {got!r}, the preset's is {want!r}")
    return out + data_differences(record.get("data"), dataset, preset.train.train_size)


def data_differences(data, dataset: str | None, train_size) -> list[str]:
    """How the record's data differs from the whole training split of `dataset`."""
    if not isinstance(data, dict):
        return ["its record says nothing about the data it was trained on"]
    seen = data.get("dataset")
    if split_size(seen, "train") is None:
        return [f"data.dataset is {seen!r}, not a dataset the book knows"]
    out = []
    if dataset is not None and seen != dataset:
        out.append(f"data.dataset is {seen!r}, the book expects {dataset!r}")
    if data.get("split", "train") != "train":
        out.append(f"data.split is {data.get('split')!r}, not 'train'")
    want = expected_images(seen, train_size)
    if data.get("images") != want:
        out.append(f"data.images is {data.get('images')!r}, the whole split has {want!r}")
    return out


def check_record(name: str, record, folder, dataset: str | None = None) -> ModelConfig:
    """Check checkpoint `name`'s record; return its model config. For a preset name the record
    must match the preset (see :func:`differences`); in the book's own folder the data must be
    `faces`, the dataset the chapters are written for."""
    from .presets import make_presets
    where = f"the record of checkpoint {name!r} in {folder}"
    if not isinstance(record, dict):
        raise CheckpointError(f"{where} is not a JSON object; {fix_hint(name, folder)}")
    if record.get("name") != name:
        raise CheckpointError(f"{where} is for a model named {record.get('name')!r}, not {name!r}; "
                              f"{fix_hint(name, folder)}")
    config = model_config(record, where)
    if dataset is None and is_book_folder(folder):
        dataset = "faces"
    if name in make_presets():
        diffs = differences(record, name, dataset)
        if diffs:
            raise CheckpointError(f"checkpoint {name!r} in {folder} is not the book's {name!r}: "
                                  f"{'; '.join(diffs)}. {fix_hint(name, folder)}")
    return config


def fix_hint(name: str, folder) -> str:
    from .files import restore_hint
    hint = restore_hint(folder, name)
    return hint[0].upper() + hint[1:]
