#!/usr/bin/env python3
"""Record the checksums of the `faces` splits: vaebook/data/faces-checksums.json.

Run it only when the drawing changed on purpose (and RENDER_VERSION was bumped): it renders all
75,000 images (about a minute per core) and writes the sha256 of every block of faces.CHUNK
images. The test suite and every freshly rendered cache are checked against this file.

    .venv/bin/python tools/record_faces.py [--workers 2]
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor

import torch

from vaebook.data import faces


def block_digest(start: int) -> str:
    """sha256 of the CHUNK images starting at global index `start`."""
    torch.set_num_threads(1)
    idx = torch.arange(start, start + faces.CHUNK)
    return faces.digest(faces.render_uint8(faces.sample_factors(idx), idx))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    record = {"render_version": faces.RENDER_VERSION, "chunk": faces.CHUNK, "splits": {}}
    with ProcessPoolExecutor(args.workers) as pool:
        for split, (lo, hi) in faces.SPLITS.items():
            record["splits"][split] = list(pool.map(block_digest, range(lo, hi, faces.CHUNK)))
            print(f"{split}: {len(record['splits'][split])} blocks", flush=True)
    faces.CHECKSUMS.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {faces.CHECKSUMS}")


if __name__ == "__main__":
    main()
