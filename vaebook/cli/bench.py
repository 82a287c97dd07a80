"""Benchmarks: ``python -m vaebook.cli.bench`` (``make bench``) prints every figure in one run.

- the `fit` loop against a bare PyTorch loop on the same model and data (the trainer should
  add nothing: ``trainer/plain ratio`` close to 1);
- `faces` images per second into a DataLoader, and the renderer's faces per second on every core
  and on one (issue 26's targets: :mod:`vaebook.cli.bench_book`);
- VAE inference (encode, decode) images per second;
- the in-page explorer: how far its stored weights (float16; int8 for comparison) move the
  decoded pixels, and its time per decode in headless Chromium on both TensorFlow.js backends
  (WebAssembly, which the page picks, and CPU, its fallback);
- the time of each chapter, of the whole book and the largest kernel's peak memory
  (``--chapters``, saved with ``--save-chapters FILE``; ``--chapters-from FILE`` reports a
  saved run);
- the last fresh-clone run recorded by ``tools/fresh_clone.py`` (``make book`` and ``make test``
  from a new clone with empty caches), next to its targets;
- on a GPU: fp32 against bf16 autocast with channels_last (and torch.compile), and the fraction
  of the GPU's measured bf16 matmul peak that the model's FLOPs reach.
Timings are medians of repeats after a warm-up; nothing here is asserted.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..data.loading import load_dataset
from ..models import build_model
from ..store.presets import get_preset
from ..train.loop import TrainConfig, fit, pick_device
from .bench_book import (TARGETS, against, bench_render, load_note, read_chapter_timings, report_chapters,
                         report_fresh, time_chapters)


def timed(fn, repeats: int = 3) -> float:
    """Median wall time of fn() over `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(model, data, cfg: TrainConfig, device) -> None:
    """The loop a reader would write by hand: same loss, optimiser and batches as `fit`."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    model.train()
    for x, _ in loader:
        x = x.to(device)
        loss = ((model(x) - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)


def bench_trainer(device, n_images: int, rounds: int = 3) -> None:
    """fit against the plain loop, interleaved (fit, plain, fit, plain, ...) so that a busy
    machine slows both alike; medians of `rounds` epochs each."""
    preset = get_preset("ae")
    data = load_dataset("faces", "train", limit=n_images)
    cfg = TrainConfig(objective="mse", epochs=1, batch_size=128, grad_clip=0)
    fit_model, plain_model = build_model(preset.model), build_model(preset.model).to(device)
    runs = {"fit": lambda: (fit(fit_model, data, None, cfg, device=device, progress=False), sync(device)),
            "plain": lambda: plain_loop(plain_model, data, cfg, device)}
    times = {k: [] for k in runs}
    for k, run in runs.items():
        run()  # warm-up
    for _ in range(rounds):
        for k, run in runs.items():
            start = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - start)
    t_fit, t_plain = statistics.median(times["fit"]), statistics.median(times["plain"])
    n = n_images // cfg.batch_size * cfg.batch_size
    print(f"fit loop:   {n / t_fit:9.0f} img/s   (ae preset, batch 128, {device.type})")
    print(f"plain loop: {n / t_plain:9.0f} img/s")
    print(f"trainer/plain ratio: {t_plain / t_fit:.3f}")


def bench_faces(n_images: int) -> None:
    data = load_dataset("faces", "train", limit=n_images)
    data.images_uint8()  # render the cache once, outside the timing
    loader = DataLoader(data, batch_size=256, shuffle=True)
    seconds = timed(lambda: [None for _ in loader], repeats=3)
    print(f"faces: {len(data) / seconds:.0f} img/s   (DataLoader, batch 256, shuffled, cached)")
    bench_render()


@torch.no_grad()
def bench_inference(device) -> None:
    vae = build_model(get_preset("vae").model).to(device).eval()
    x = torch.rand(500, 3, 64, 64, device=device)
    z = torch.randn(500, vae.config.latent_dim, device=device)
    enc = timed(lambda: (vae.encode(x), sync(device)))
    dec = timed(lambda: (vae.decode(z), sync(device)))
    print(f"vae encode: {500 / enc:9.0f} img/s   decode: {500 / dec:9.0f} img/s   (batch 500)")
    one = timed(lambda: (vae.decode(z[:1]), sync(device)), repeats=20)
    print(f"vae decode one image: {one * 1e3:.2f} ms   (what a widget slider waits for)")


@torch.no_grad()
def bench_export_precision(names=("vae", "beta4"), n: int = 500) -> None:
    """How far the weights the page stores move the decoded pixels from PyTorch's decode
    (the choice in vaebook.explore.webexport): float16, and per-output-channel int8 for comparison, on
    `n` prior draws, the test posterior means of `n` faces and 100 draws at 3σ."""
    import numpy as np
    from ..store.checkpoints import load
    from ..data.loading import load_dataset, stack_images
    from ..metrics.measures import encode_means
    from ..explore.webexport import browser_layers, run_layers

    def int8(layers):                     # symmetric per output channel (the last axis), then back to float
        def rounded(w):
            scale = np.abs(w).max(axis=tuple(range(w.ndim - 1)), keepdims=True) / 127
            return np.round(w / np.maximum(scale, 1e-12)) * scale
        return [{**layer, "w": rounded(layer["w"])} if "w" in layer else
                {**layer, "phases": [{**phase, "w": rounded(phase["w"])} for phase in layer["phases"]]}
                for layer in layers]

    images = stack_images(load_dataset(None, "test", limit=n))
    gen = torch.Generator().manual_seed(0)
    for name in names:
        model = load(name)
        L = model.config.latent_dim
        z = torch.cat([torch.randn(n, L, generator=gen), encode_means(model, images),
                       3 * torch.randn(100, L, generator=gen)])
        reference = model.decode(z) * 255
        layers = browser_layers(model.decoder)
        for label, stored, dtype in (("float16", layers, np.float16), ("int8", int8(layers), np.float64)):
            diff = (run_layers(stored, z, dtype) * 255 - reference).abs()
            print(f"page weights {name:6s} {label:8s}: max |pixel - PyTorch| {diff.max():6.2f}/255, "
                  f"{(diff > 1).double().mean():6.2%} of pixels off by more than 1/255 ({len(z)} codes)")


def bench_browser(moves: int = 40, names=("vae", "beta4")) -> dict:
    """The book's in-page explorer in headless Chromium, on each TensorFlow.js backend the page
    can use (WebAssembly, which it picks, and the CPU backend, its fallback): the time the page
    takes to decode one code (measured by the page itself with performance.now), median over
    `moves` slider moves after 3 warm-up moves, and when the first image was drawn. Returns
    {(name, backend): median ms}."""
    from ..explore.chromium import Chromium, find_chromium
    from ..explore.webexport import standalone_page, write_explorer
    if find_chromium() is None:
        print("browser decode: skipped, no Chromium (apt-get install chromium, or set VAEBOOK_CHROMIUM)")
        return {}
    move = """(async () => {
        const root = document.querySelector('.vaebook-explorer'), x = root.vaebookExplorer;
        root.scrollIntoView();
        await x.ready;
        const s = document.querySelector('.vaebook-explorer input[type=range]');
        const slide = i => { s.value = String(-3 + 6 * (i % 25) / 24); s.dispatchEvent(new Event('input')); };
        for (let i = 0; i < 3; i++) slide(i);
        x.times.length = 0;
        for (let i = 0; i < MOVES; i++) slide(i);
        return {times: x.times, ready: x.readyMs, backend: x.backend,
                agent: navigator.userAgent.match(/Chrome\\/[0-9.]+/)[0]};
    })()"""
    medians = {}
    with tempfile.TemporaryDirectory() as site, Chromium() as browser:
        write_explorer(site, names=names)
        for name in names:
            page = standalone_page(site, name, name).as_uri()
            for backend in ("wasm", "cpu"):
                note = load_note()
                browser.open(f"{page}?backend={backend}")
                result = browser.evaluate(move.replace("MOVES", str(moves)))
                ms = medians[name, backend] = statistics.median(result["times"])
                engine = "WebAssembly SIMD, 1 thread" if result["backend"] == "wasm" else "CPU"
                target = (f"{against(ms, TARGETS['decode_ms'])} ms" if result["backend"] == "wasm"
                          else "the fallback: the target is WebAssembly's")
                print(f"browser decode {name:6s} {result['backend']:4s}: {ms:6.1f} ms per face "
                      f"({target}; median of {moves} slider moves, fastest "
                      f"{min(result['times']):.1f} ms; first image {result['ready']:.0f} ms after load "
                      f"start; headless {result['agent']}, TensorFlow.js {engine}; {note})")
    return medians


def bench_chapters(save: Path | None = None, timings: Path | None = None) -> None:
    """Time every chapter now (and save the run to `save`), or report the run saved in `timings`."""
    root = Path(__file__).resolve().parents[2]
    run = read_chapter_timings(timings) if timings else time_chapters(sorted((root / "chapters").glob("*.qmd")),
                                                                       root, save)
    print(*report_chapters(run), sep="\n")


def model_flops_per_image(model) -> float:
    """Forward FLOPs of one 64×64 image, counted by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.rand(1, 3, 64, 64, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def bench_gpu(device, steps: int = 50) -> None:
    """fp32 vs bf16+channels_last (vs compiled) training steps of the vae preset."""
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    peak = 2 * n**3 / timed(lambda: (a @ a, sync(device)), repeats=5)
    print(f"GPU: {torch.cuda.get_device_name(device)}; measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s")
    for label, bf16, compile_ in (("fp32", False, False), ("bf16+channels_last", True, False),
                                  ("bf16+channels_last+compile", True, True)):
        model = build_model(get_preset("vae").model).to(device)
        if bf16:
            model = model.to(memory_format=torch.channels_last)
        step_model = torch.compile(model) if compile_ else model
        opt = torch.optim.Adam(model.parameters())
        x = torch.rand(512, 3, 64, 64, device=device)
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)

        def run():
            for _ in range(steps):
                with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                    x_hat, mu, logvar = step_model(x)
                    loss = ((x_hat.float() - x) ** 2).sum() + mu.float().pow(2).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sync(device)
        seconds = timed(run, repeats=3)
        rate = steps * len(x) / seconds
        achieved = 3 * model_flops_per_image(model) * rate  # forward + backward ≈ 3× forward
        print(f"{label:28s} {rate:10.0f} img/s   {achieved / 1e12:6.2f} TFLOP/s = {achieved / peak:.1%} of peak")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m vaebook.cli.bench", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=8192, help="training images per timed epoch")
    p.add_argument("--chapters", action="store_true", help="also time every chapter notebook")
    p.add_argument("--save-chapters", type=Path, metavar="JSON", help="save the chapter timings there")
    p.add_argument("--chapters-from", type=Path, metavar="JSON",
                   help="report a saved chapter-timing run instead of timing the chapters now")
    p.add_argument("--device", help="default: cuda when available")
    args = p.parse_args(argv)
    device = pick_device(args.device)
    print(f"machine: {platform.node()} {platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}, {time.strftime('%Y-%m-%d')}")
    bench_faces(args.images)
    bench_trainer(device, args.images)
    bench_inference(device)
    bench_export_precision()
    bench_browser()
    if device.type == "cuda":
        bench_gpu(device)
    if args.chapters or args.chapters_from:
        bench_chapters(args.save_chapters, args.chapters_from)
    print(*report_fresh(), sep="\n")


if __name__ == "__main__":
    main()
