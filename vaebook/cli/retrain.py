"""``python -m vaebook train NAME``: one preset's training run, and the explicit step that
makes it one of the book's checkpoints.

Training always writes to a run file, ``runs/NAME.safetensors`` (``--out`` picks the folder),
resumed when the same command is run again. Options that change the training (``--epochs``,
``--beta``, ``--sigma``, ``--train-size``) make an experiment: its run file is named after them
(``runs/beta1-beta16.safetensors``) and it can never reach the checkpoint files. Only ``--save``
stores a model there, and only the preset's own run; the store checks the record against the
preset once more. A preset trained on CelebA (``--dataset celeba``) can be saved only into a
checkpoint folder of the reader's own (``VAEBOOK_CHECKPOINTS``): the book's ``checkpoints/`` hold
faces models. Every option is checked before any data is loaded, and CelebA's images before the
first step.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import time
from pathlib import Path

import torch

from ..store import checkpoints, files, places
from ..store.runs import RunFile
from ..store.tensorfile import read_tensors
from ..data.loading import FactorTargets, check_images, default_dataset, load_dataset
from ..models import build_model, count_parameters
from ..store.presets import make_presets
from ..train.loop import NonFiniteLossError, fit, pick_device

VALID_IMAGES = 2000  # validation images after each epoch (as the book's checkpoints were made)
TRAIN_OPTIONS = ("epochs", "train_size", "sigma", "beta")
KNOBS = {"sigma": ("elbo", "capacity"), "beta": ("elbo",)}  # objectives each option means something to


class UsageError(ValueError):
    """The command line asks for something impossible; the message says what to do instead."""


@dataclasses.dataclass
class Plan:
    """Everything a training command will do, decided before any data is loaded."""
    name: str
    preset: object
    cfg: object
    overrides: dict
    dataset: str
    root: str | None
    device: torch.device
    run_file: Path
    save_to: Path | None


def plan(args) -> Plan:
    """Check every option of `args` against the preset and the machine; raise UsageError."""
    preset = make_presets()[args.name]
    given = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    for key, objectives in KNOBS.items():
        if key in given and preset.train.objective not in objectives:
            raise UsageError(f"--{key} does not apply to {args.name!r}: it is trained with the "
                             f"{preset.train.objective!r} objective, which has no {key}; leave out --{key}")
    overrides = {k: v for k, v in given.items() if v != getattr(preset.train, k)}  # the preset's own: no change
    cfg = dataclasses.replace(preset.train, **overrides)
    if cfg.train_size is not None and cfg.train_size < cfg.batch_size:
        raise UsageError(f"--train-size {cfg.train_size} is less than one batch ({cfg.batch_size} "
                         f"images), so there is nothing to train on; use at least {cfg.batch_size}")
    dataset = args.dataset or default_dataset()
    if args.root is not None and dataset != "celeba":
        raise UsageError(f"--root is the CelebA folder, but the dataset is {dataset!r}; add --dataset celeba")
    if dataset != "faces" and preset.train.objective == "factors":
        raise UsageError(f"{args.name!r} learns the ground-truth factors that only faces has; "
                         "train it without --dataset (or with --dataset faces)")
    device = check_device(args.device)
    if dataset == "faces":
        from ..data.faces import check_cache_dir, default_cache_dir
        check_cache_dir(default_cache_dir())
    return Plan(args.name, preset, cfg, overrides, dataset, args.root, device,
                run_file(args, overrides, dataset), save_target(args, overrides, dataset))


def check_device(text: str | None) -> torch.device:
    """The device `--device` names, if PyTorch can train on it here."""
    if text is None:
        return pick_device(None)
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {text!r} is not a device name; use cpu or cuda (cuda:1, ...)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {text}: PyTorch sees no GPU on this machine; use --device cpu")
        if device.index is not None and device.index >= count:
            raise UsageError(f"--device {text}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    elif device.type != "cpu":
        raise UsageError(f"--device {text}: training runs on cpu or cuda, not on {device.type!r}")
    return device


def run_file(args, overrides: dict, dataset: str) -> Path:
    """runs/NAME.safetensors for the preset's own run; an experiment's name lists its options."""
    folder = Path(args.out or os.environ.get("VAEBOOK_RUNS") or "runs")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file, not a folder; name a folder for the run files")
    store = places.store_holding(folder, [files.root_dir()])
    if store is not None:  # its clean-up would delete run files, and --fresh a checkpoint
        where = "is" if store == folder.resolve() else "is inside"
        raise UsageError(f"the run folder {folder} {where} the checkpoint store {store}, which only "
                         "`--save` may write to; name another folder with --out (or VAEBOOK_RUNS)")
    parts = [args.name] + ([dataset] if dataset != "faces" else [])
    parts += [f"{k.replace('_', '')}{v:g}" for k, v in overrides.items()]
    return folder / f"{'-'.join(parts)}.safetensors"


def save_target(args, overrides: dict, dataset: str) -> Path | None:
    """The checkpoint folder `--save` writes to, after checking that the run may go there."""
    if not args.save:
        return None
    if overrides:
        given = ", ".join(f"--{k.replace('_', '-')}" for k in overrides)
        raise UsageError(f"--save stores only the preset's own training, which {given} would change; "
                         "leave out --save (the run stays in its run file)")
    folder = files.root_dir()
    if dataset != "faces" and files.is_book_folder(folder):
        raise UsageError(f"the book's checkpoints/ holds the faces models, so a {dataset} model cannot "
                         "be saved there; set VAEBOOK_CHECKPOINTS to a folder of your own")
    problem = places.writable_problem(folder)  # found now, not after hours of training
    if problem:
        raise UsageError(f"--save cannot store into {folder}: {problem}; set VAEBOOK_CHECKPOINTS "
                         "to a folder you can write to")
    problem = places.name_problem(args.name, checkpoints.read_manifest(folder))  # a damaged one stops here
    if problem:
        raise UsageError(f"--save cannot store into {folder}: {problem}")
    return folder


def load_data(p: Plan):
    """The training and validation data (the images of CelebA checked up front)."""
    train_data = load_dataset(p.dataset, "train", root=p.root, limit=p.cfg.train_size)
    valid_data = load_dataset(p.dataset, "valid", root=p.root, limit=VALID_IMAGES)
    if p.cfg.objective == "factors":
        train_data, valid_data = FactorTargets(train_data), FactorTargets(valid_data)
    return train_data, valid_data


def finished(p: Plan) -> bool:
    """Whether the run file holds a complete run (then its images need no checking again)."""
    try:
        _, record = read_tensors(p.run_file)
    except (OSError, checkpoints.CheckpointError):
        return False
    history = record.get("history")
    return isinstance(history, list) and len(history) == p.cfg.epochs and not record.get("pending_validation")


def train(args) -> None:
    p = plan(args)
    train_data, valid_data = load_data(p)
    if args.fresh:
        p.run_file.unlink(missing_ok=True)
    if not finished(p):
        if p.dataset != "faces":
            print(f"checking the {len(train_data) + len(valid_data):,} {p.dataset} images first ...", flush=True)
        check_images(train_data)
        check_images(valid_data)
    if len(train_data) < p.cfg.batch_size:
        partition = getattr(getattr(train_data, "layout", None), "partition_file", None)
        raise UsageError(f"the {p.dataset} training split has {len(train_data)} images, fewer than one "
                         f"batch of {p.cfg.batch_size}, so there is nothing to train on; "
                         + (f"check {partition} against the archive's copy" if partition else
                            "train on a dataset with more images"))
    model = build_model(p.preset.model, seed=p.cfg.seed)
    print(f"training {what_is_trained(p)}; {count_parameters(model):,} parameters, "
          f"{len(train_data):,} images, {plural(p.cfg.epochs, 'epoch')} on {hardware(p.device)}", flush=True)
    p.run_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        history = fit(model, train_data, valid_data, p.cfg, device=p.device, run_file=RunFile(p.run_file),
                      progress=not args.quiet, data={"dataset": p.dataset, "images": len(train_data)})
    except NonFiniteLossError as e:
        raise NonFiniteLossError(diverged(p, e)) from None
    last = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in history.epochs[-1].items())
    done = f"finished: {plural(len(history.epochs), 'epoch')}"
    print(f"{done}; the last: {last}" if args.quiet else done, flush=True)
    if p.save_to is None:
        print(f"the run is in {p.run_file}" + ("" if p.overrides or p.dataset != "faces" else
              f"; `python -m vaebook train {p.name} --save` makes it the book's {p.name}"))
        return
    save(model.cpu(), p, history.epochs, time.perf_counter() - start, len(train_data))


def what_is_trained(p: Plan) -> str:
    """The preset and what it is about; for an experiment, the values given instead of the
    preset's (whose description names the preset's β and σ, not the experiment's)."""
    if not p.overrides:
        return f"{p.name}: {p.preset.about}"
    own = {k: getattr(p.preset.train, k) for k in p.overrides}
    given = ", ".join(f"--{k.replace('_', '-')} {v:g} (the preset's: {'all' if own[k] is None else f'{own[k]:g}'})"
                      for k, v in p.overrides.items())
    return f"{p.run_file.stem}, an experiment: {p.name} with {given}"


def diverged(p: Plan, error: NonFiniteLossError) -> str:
    """The training loop's report of a NaN/inf, with advice in the command line's own options."""
    what = re.split(r"[:;]", str(error))[0]
    kept = "the run file keeps the last finished epoch"
    for key, advice in (("beta", "a smaller"), ("sigma", "a larger")):
        if key in p.overrides:
            return (f"{what} with --{key} {p.overrides[key]:g}; try {advice} --{key} (the preset's is "
                    f"{getattr(p.preset.train, key):g}); {kept}")
    return (f"{what}: the preset's own training should not do this (it is seeded: rerunning gives the "
            f"same), so please report it with the output of --debug; {kept}")


def save(model, p: Plan, epochs: list, session: float, images: int) -> None:
    """Store the finished run as checkpoint p.name, unless the store already holds this run."""
    held = checkpoints.read_manifest(p.save_to).get(p.name)
    if isinstance(held, dict) and held.get("history") == json_round_trip(epochs):
        print(f"{p.name} in {p.save_to} is already this run; nothing to save")
        return
    path = checkpoints.save(model, p.name, record(p, epochs, session, images), root=p.save_to)
    print(f"saved {path} and its entry in {p.save_to / files.MANIFEST}; "
          "measure it with `python -m vaebook evaluate --update`")


def json_round_trip(value):
    return json.loads(json.dumps(value))


def data_record(dataset: str, images: int, cfg) -> dict:
    """The data a run trained on; for `faces`, also the renderer version that drew it."""
    data = {"dataset": dataset, "split": "train", "images": images,
            "images_seen": images // cfg.batch_size * cfg.batch_size * cfg.epochs}
    if dataset == "faces":
        from ..data.faces import RENDER_VERSION
        data["render_version"] = RENDER_VERSION
    return data


def record(p: Plan, epochs: list, session: float, images: int) -> dict:
    """What the checkpoint says about its training (the model config is added by save)."""
    return {
        "about": p.preset.about,
        "train": p.cfg.to_dict(),
        "data": data_record(p.dataset, images, p.cfg),
        "trained_on": hardware(p.device),
        "wall_seconds": round(sum(e["seconds"] for e in epochs), 1),
        "session_seconds": round(session, 1),
        "history": epochs,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


def hardware(device: torch.device) -> str:
    """Where training ran, said plainly (this goes into the manifest)."""
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU only, no GPU: {cpu}, {plural(torch.get_num_threads(), 'thread')}"


def plural(n: int, word: str) -> str:
    """'1 epoch', '4 epochs'."""
    return f"{n} {word}{'s' * (n != 1)}"
