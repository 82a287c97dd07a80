"""The figures issue 26 sets targets for, each printed next to its target by ``make bench``:

- the faces renderer: faces per second on every core (and per CPU-second, which a busy
  machine changes less), target at least :data:`TARGETS` ``render_faces_s``;
- the in-page decoder: median ms per decoded face on each TensorFlow.js backend the page can
  use, in headless Chromium (:func:`vaebook.cli.bench.bench_browser`);
- the book: seconds per chapter, the whole book, and the largest kernel's peak memory, from a
  chapter-timing run (:func:`time_chapters`, saved as JSON and read back by
  :func:`read_chapter_timings`, so a run on an idle machine can be reported later).

Each line says the machine's load average before it was measured: a busy machine gives lower
bounds, not figures to record.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

TARGETS = {"render_faces_s": 3000.0, "decode_ms": 5.0, "chapter_s": 20.0, "book_s": 90.0,
           "kernel_mb": 2048.0, "fresh_book_s": 180.0, "fresh_test_s": 360.0}
FRESH = Path(__file__).resolve().parents[2] / "bench" / "fresh-clone.json"   # tools/fresh_clone.py
PEAK_CELL = ("import json as _j, resource as _r\n"
             "print(_j.dumps({'vaebook_peak_kb': _r.getrusage(_r.RUSAGE_SELF).ru_maxrss}))")


def against(value: float, target: float, at_most: bool = True) -> str:
    """'target <= 20' or 'target >= 3,000', with ': MISSED' when the value misses it."""
    met = value <= target if at_most else value >= target
    return f"target {'<=' if at_most else '>='} {target:,.0f}{'' if met else ': MISSED'}"


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.1f} before"


def bench_render(n: int = 4096, repeats: int = 3) -> dict:
    """Draw `n` test faces from scratch (the renderer, no cache) on every core and on one;
    median wall time and CPU time (this process and its drawing processes) of `repeats` runs."""
    from ..data.factors import sample_factors
    from ..data.renderer import render_uint8, usable_cores
    note, cores = load_note(), usable_cores()
    idx = torch.arange(65_000, 65_000 + n)
    f = sample_factors(idx)
    render_uint8(f[:64], idx[:64])                                             # warm-up
    out = {}
    for workers in (cores, 1):
        walls, cpus = [], []
        for _ in range(repeats):
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, cpu = time.perf_counter(), time.process_time()
            render_uint8(f, idx, workers=workers)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu + (after.ru_utime + after.ru_stime)
                        - (children.ru_utime + children.ru_stime))
        rate, per_cpu = n / statistics.median(walls), n / statistics.median(cpus)
        out[workers] = rate
        target = against(rate, TARGETS["render_faces_s"], at_most=False) if workers == cores else "for comparison"
        print(f"faces render: {rate:7,.0f} faces/s on {workers} core{'s' * (workers > 1)} ({target}); "
              f"{per_cpu:,.0f} faces per CPU-second; {n:,} faces, median of {repeats}; {note}")
    return out


def time_chapters(qmds: list[Path], root: Path, save: Path | None = None, warm: bool = True) -> dict:
    """Execute each chapter in a fresh kernel, as the book build does (and stopped as it stops
    it: at once, outputs in hand), with the faces cache warm (drawn first, untimed, unless
    `warm` is False); its seconds and its kernel's peak resident memory. Saved as JSON when
    `save` is set."""
    import jupytext
    import nbclient
    import nbformat
    from ..data.loading import load_dataset
    for split in ("train", "valid", "test") if warm else ():
        load_dataset("faces", split).images_uint8()
    run = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
           "date": time.strftime("%Y-%m-%d %H:%M"), "load_before": os.getloadavg()[0], "chapters": []}
    for qmd in qmds:
        nb = jupytext.reads(qmd.read_text(), fmt="Rmd")
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
        start = time.perf_counter()
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", shutdown_kernel="immediate",
                                resources={"metadata": {"path": str(root / "notebooks")}}).execute()
        seconds = time.perf_counter() - start
        text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
        peak_mb = json.loads(text.strip().splitlines()[-1])["vaebook_peak_kb"] / 1024
        run["chapters"].append({"name": qmd.stem, "seconds": round(seconds, 2), "peak_mb": round(peak_mb)})
        print(f"chapter {qmd.stem:28s} {seconds:6.1f} s", flush=True)
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        tmp = save.with_suffix(".tmp")
        tmp.write_text(json.dumps(run, indent=1) + "\n")
        os.replace(tmp, save)
    return run


def read_chapter_timings(path: Path) -> dict:
    run = json.loads(Path(path).read_text())
    if not run.get("chapters") or any({"name", "seconds", "peak_mb"} - set(c) for c in run["chapters"]):
        raise ValueError(f"{path} is not a chapter-timing run (python -m vaebook.cli.bench --chapters)")
    return run


def report_chapters(run: dict) -> list[str]:
    """The lines `make bench` prints for a chapter-timing run: each chapter, the whole book and
    the largest kernel, next to their targets."""
    chapters = run["chapters"]
    lines = [f"chapter timing run: {run['machine']}, {run['date']}, load average "
             f"{run['load_before']:.1f} before"]
    lines += [f"chapter {c['name']:28s} {c['seconds']:6.1f} s   ({against(c['seconds'], TARGETS['chapter_s'])})"
              for c in chapters]
    total = sum(c["seconds"] for c in chapters)
    lines.append(f"whole book (chapter execution) {total:6.1f} s   ({against(total, TARGETS['book_s'])})")
    largest = max(chapters, key=lambda c: c["peak_mb"])
    lines.append(f"largest kernel: {largest['peak_mb']:,.0f} MB, {largest['name']}   "
                 f"({against(largest['peak_mb'], TARGETS['kernel_mb'])} MB)")
    return lines


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def report_fresh(path: Path = FRESH) -> list[str]:
    """The lines `make bench` prints for the last fresh-clone run that tools/fresh_clone.py
    recorded (a fresh clone, empty faces and package caches: minutes per run, so it is recorded
    rather than measured at every bench), each command next to its target."""
    if not Path(path).exists():
        return [f"fresh clone: no run recorded ({path.name}: run tools/fresh_clone.py)"]
    runs = json.loads(Path(path).read_text())
    if not isinstance(runs, list) or not runs or any({"date", "machine", "commit", "commands"} - set(r)
                                                     for r in runs):
        raise ValueError(f"{path} is not a list of fresh-clone runs (tools/fresh_clone.py writes it)")
    run = runs[-1]
    lines = [f"fresh clone (recorded {run['date']} at {run['commit'][:7]}, {run['machine']}, load average "
             f"{run['load_before']:.1f} before; empty caches):"]
    for command, seconds in run["commands"].items():
        target = TARGETS.get(f"fresh_{command.split()[-1]}_s")
        tail = f"   ({against(seconds, target)})" if target else ""
        lines.append(f"  {command:12s} {minutes(seconds)} = {seconds:.0f} s{tail}")
    return lines
