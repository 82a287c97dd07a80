"""Command line: ``python -m vaebook train NAME``, ``evaluate``, ``list``.

Training writes ``checkpoints/NAME.safetensors`` (and its record in the manifest); the run's
resumable state lives in ``runs/NAME.safetensors`` until training finishes.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import torch

from . import checkpoints
from .data import FactorTargets, default_dataset, load_dataset
from .models import build_model, count_parameters
from .presets import make_presets
from .train import fit, pick_device

RUNS = Path(os.environ.get("VAEBOOK_RUNS", "runs"))


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
    return f"CPU only, no GPU: {cpu}, {torch.get_num_threads()} threads"


def train(args) -> None:
    presets = make_presets()
    preset = presets[args.name]
    cfg = preset.train
    overrides = {k: v for k, v in (("epochs", args.epochs), ("train_size", args.train_size),
                                   ("sigma", args.sigma), ("beta", args.beta)) if v is not None}
    cfg = dataclasses.replace(cfg, **overrides)
    device = pick_device(args.device)
    train_data = load_dataset(args.dataset, "train", root=args.root, limit=cfg.train_size)
    valid_data = load_dataset(args.dataset, "valid", root=args.root, limit=2000)
    if cfg.objective == "factors":
        train_data, valid_data = FactorTargets(train_data), FactorTargets(valid_data)
    model = build_model(preset.model, seed=cfg.seed)
    print(f"training {args.name}: {preset.about}; {count_parameters(model):,} parameters, "
          f"{len(train_data):,} images, {cfg.epochs} epochs on {hardware(device)}", flush=True)
    RUNS.mkdir(exist_ok=True)
    run_file = RUNS / f"{args.name}.safetensors"
    if args.fresh:
        run_file.unlink(missing_ok=True)
    start = time.perf_counter()
    history = fit(model, train_data, valid_data, cfg, device=device, run_file=run_file,
                  progress=not args.quiet)
    if args.quiet:
        print(f"last epoch: {history.epochs[-1]}")
    record = {
        "about": preset.about,
        "train": cfg.to_dict(),
        "data": {"dataset": args.dataset or default_dataset(), "split": "train", "images": len(train_data),
                 "images_seen": len(train_data) // cfg.batch_size * cfg.batch_size * cfg.epochs},
        "trained_on": hardware(device),
        "wall_seconds": round(sum(e["seconds"] for e in history.epochs), 1),
        "session_seconds": round(time.perf_counter() - start, 1),
        "history": history.epochs,
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }
    path = checkpoints.save(model.cpu(), args.name, record)
    run_file.unlink()  # finished: the next `train NAME` starts afresh
    print(f"saved {path}")


def list_models(args) -> None:
    manifest = checkpoints.read_manifest()
    for name, preset in make_presets().items():
        status = "cached" if name in manifest else "missing"
        print(f"{name:10s} {status:8s} {preset.about}")


def evaluate(args) -> None:
    from .evaluate import evaluate_all
    evaluate_all(args.names or None, update=args.update)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m vaebook", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one preset and write its checkpoint")
    t.add_argument("name", choices=list(make_presets()))
    t.add_argument("--epochs", type=int, help="override the preset's epochs")
    t.add_argument("--train-size", type=int, help="use only the first N training images")
    t.add_argument("--sigma", type=float, help="override the decoder std σ (VAEs)")
    t.add_argument("--beta", type=float, help="override the KL weight β (VAEs)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    t.add_argument("--dataset", choices=["faces", "celeba"], help="default: $VAEBOOK_DATASET or faces")
    t.add_argument("--root", help="CelebA folder (default: $VAEBOOK_CELEBA_ROOT)")
    t.add_argument("--fresh", action="store_true", help="ignore a half-finished run and start again")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=train)
    e = sub.add_parser("evaluate", help="measure every cached model on the test split; print a table")
    e.add_argument("names", nargs="*", help="only these checkpoints")
    e.add_argument("--update", action="store_true", help="write the measured metrics into the manifest")
    e.set_defaults(func=evaluate)
    sub.add_parser("list", help="the book's models and whether each is cached").set_defaults(func=list_models)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
