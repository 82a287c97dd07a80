#!/usr/bin/env python3
"""Time what a fresh machine does first: `make book` and `make test`, each in a new clone of this
repository with an empty faces cache (VAEBOOK_CACHE) and an empty uv cache (UV_CACHE_DIR), so
the environment is downloaded and installed and the faces are drawn as on a new machine.
Appends the run to bench/fresh-clone.json, which `make bench` reports next to its targets.

    .venv/bin/python tools/fresh_clone.py [book test]

Minutes per command; run it on an idle machine (the load average before each is recorded).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaebook.cli.bench_book import FRESH, report_fresh  # noqa: E402
from vaebook.store.checkpoints import atomic_write_bytes  # noqa: E402


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    return f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"


def faces_cached(folder: Path) -> int:
    """How many faces the cache files in `folder` hold (their names say: ...-{split}-{n}-...)."""
    return sum(int(p.stem.split("-")[-2]) for p in folder.glob("faces-*.npy"))


def time_command(target: str, work: Path) -> tuple[float, float, int]:
    """`make target` in a new clone under work, with empty caches: (seconds, load before,
    faces drawn)."""
    clone = work / f"clone-{target}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    caches = {"VAEBOOK_CACHE": work / f"faces-{target}", "UV_CACHE_DIR": work / f"uv-{target}"}
    for folder in caches.values():
        folder.mkdir()
    env = dict(os.environ, **{k: str(v) for k, v in caches.items()})
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with open(work / f"{target}.log", "w") as log:
        code = subprocess.call(["make", target], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"make {target} failed in {clone} (exit {code}); see {work / (target + '.log')}")
    drawn = faces_cached(caches["VAEBOOK_CACHE"])
    for folder in [clone, *caches.values()]:
        shutil.rmtree(folder, ignore_errors=True)
    return seconds, load, drawn


def main(argv: list[str]) -> int:
    targets = argv or ["book", "test"]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    run = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "commit": commit, "commands": {}}
    with tempfile.TemporaryDirectory(prefix="vaebook-fresh-") as work:
        for target in targets:
            seconds, load, drawn = time_command(target, Path(work))
            run.setdefault("load_before", load)
            run["commands"][f"make {target}"] = round(seconds, 1)
            run.setdefault("faces_drawn", {})[f"make {target}"] = drawn
            print(f"make {target}: {seconds:.1f} s (load average {load:.1f} before; {drawn:,} faces drawn)",
                  flush=True)
    runs = json.loads(FRESH.read_text()) if FRESH.exists() else []
    atomic_write_bytes(FRESH, (json.dumps(runs + [run], indent=1) + "\n").encode())
    print(*report_fresh(FRESH), sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
