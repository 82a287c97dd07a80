"""The same `faces` pixels on every machine: rendered blocks against the committed checksums.

`.ci/run` runs this file a second time with numpy, ATen and oneDNN forced down to their baseline
instruction sets and an empty cache, so a CPU of one kind catches drift that another would show.
"""
import math

import numpy as np
import pytest
import torch

from vaebook.data import faces

from vaebook.data import renderer


def blocks_to_check() -> list[tuple[str, int]]:
    """The first and last block of every split: each split's ends, 6,000 images in all."""
    return [(split, c) for split, (lo, hi) in faces.SPLITS.items()
            for c in (0, (hi - lo) // faces.CHUNK - 1)]


def test_checksum_file_covers_every_split_in_blocks():
    rec = faces.recorded_checksums()
    assert rec["render_version"] == faces.RENDER_VERSION and rec["chunk"] == faces.CHUNK
    for split, (lo, hi) in faces.SPLITS.items():
        sums = rec["splits"][split]
        assert len(sums) == (hi - lo) // faces.CHUNK and len(set(sums)) == len(sums)
        assert all(len(s) == 64 and int(s, 16) >= 0 for s in sums)


@pytest.mark.parametrize("split, block", blocks_to_check())
def test_rendered_block_matches_its_recorded_checksum(split, block):
    start = faces.SPLITS[split][0] + block * faces.CHUNK
    idx = torch.arange(start, start + faces.CHUNK)
    images = faces.render_uint8(faces.sample_factors(idx), idx)
    assert faces.digest(images) == faces.recorded_checksums()["splits"][split][block]


def test_the_cached_test_split_matches_every_recorded_block():
    """The split the chapters measure on, as this machine caches it (rendered if needed)."""
    data = faces.FacesDataset("test")
    assert faces.chunk_mismatches("test", data.images_uint8()) == []


def test_a_changed_pixel_is_a_mismatch():
    idx = torch.arange(65_000, 65_000 + faces.CHUNK)
    images = faces.render_uint8(faces.sample_factors(idx), idx)
    images[500, 2, 10, 10] ^= 1
    assert faces.chunk_mismatches("test", images) == [0]


def test_portable_sine_and_cosine_agree_with_libm():
    x = np.linspace(-120.0, 120.0, 200_001)
    assert np.abs(renderer.sin(x) - np.sin(x)).max() < 4e-16
    assert np.abs(renderer.cos(x) - np.cos(x)).max() < 4e-16
    for v in (0.0, math.pi / 4, 1e-9, -3.0, 70.0):
        assert math.isclose(renderer.sin(np.array(v)), math.sin(v), rel_tol=1e-15, abs_tol=1e-300)


def test_the_number_of_drawing_processes_changes_no_bit():
    """Past PARALLEL_FROM images the renderer forks; each process draws whole batches."""
    n = renderer.PARALLEL_FROM + renderer.BATCH + 7          # a last batch that is not full
    idx = torch.arange(70_000, 70_000 + n)
    f = faces.sample_factors(idx)
    alone = faces.render_uint8(f, idx, workers=1)
    assert np.array_equal(faces.render_uint8(f, idx, workers=3), alone)
    assert np.array_equal(faces.render_uint8(f[5:105], idx[5:105]), alone[5:105])
    assert torch.equal(renderer.render(f, idx, workers=2), renderer.render(f, idx, workers=1))
