"""The faces cache loses nothing and serves nothing wrong (issue 24, defects 3, 4, 9 and 10):
a full disk is named before drawing starts, killed writers' temporaries are removed (a live
writer's never), a wrong cache is caught against the recorded checksums, and a cache "folder"
that is a file is said to be one. Splits are cut to 40 faces."""
from __future__ import annotations

import errno
import os
import shutil
import warnings
from collections import namedtuple

import numpy as np
import pytest
import torch

from vaebook.data import facecache, faces
from vaebook.data.faces import FacesDataset

SMALL = {"train": (0, 40), "valid": (60_000, 60_040), "test": (65_000, 65_040)}


@pytest.fixture(autouse=True)
def small(monkeypatch):
    monkeypatch.setattr(faces, "SPLITS", SMALL)
    faces._VERIFIED.clear()


def drawn(lo: int, n: int = 40) -> np.ndarray:
    idx = torch.arange(lo, lo + n)
    return faces.render_uint8(faces.sample_factors(idx), idx)


def no_drawing(monkeypatch):
    monkeypatch.setattr(faces, "render_uint8", lambda *a: pytest.fail("faces were drawn"))


# --- defect 3: a full disk -------------------------------------------------------------------------

def test_too_little_space_is_named_before_drawing(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 10**9 - 5000, 5000))
    no_drawing(monkeypatch)
    with pytest.raises(faces.CacheSpaceError) as e:
        FacesDataset("test", cache_dir=tmp_path, limit=4).images_uint8()
    message = str(e.value)
    assert str(tmp_path) in message and "drawing the 40 test faces needs 0.5 MB" in message
    assert "VAEBOOK_CACHE" in message and "Errno" not in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_while_drawing_is_a_clean_error(tmp_path, monkeypatch):
    """Fault-injected: the reservation (or a write) fails with ENOSPC midway; no SIGBUS, no
    temporary file left, the message names the folder and the space the split needs."""
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(faces.CacheSpaceError, match=f"no room in {tmp_path} for the faces cache: "
                       "drawing the 40 test faces needs 0.5 MB"):
        FacesDataset("test", cache_dir=tmp_path, limit=4).images_uint8()
    assert list(tmp_path.iterdir()) == []


def test_the_cache_file_is_written_without_a_memory_map(tmp_path, monkeypatch):
    """A write into a memory map of a file on a full disk dies with SIGBUS: the file is written
    with ordinary writes, which fail with an error instead."""
    monkeypatch.setattr(np.lib.format, "open_memmap", lambda *a, **k: pytest.fail("memory map"))
    monkeypatch.setattr(np, "memmap", lambda *a, **k: pytest.fail("memory map"))
    path = facecache.write_atomically(tmp_path, lambda h: f"x-{h[:16]}.npy", iter([drawn(65_000, 8)]),
                                      (8, 3, 64, 64), "test")
    monkeypatch.undo()
    assert np.array_equal(np.load(path), drawn(65_000, 8)) and path.stat().st_size == 8 * 12288 + 128


# --- defect 4: a killed writer's temporary file -------------------------------------------------

def test_a_killed_writers_temporary_is_removed_and_a_live_one_kept(tmp_path):
    pid = os.fork()
    if pid == 0:  # a writer killed after making its temporary file (no cleanup runs)
        try:
            fd, tmp = facecache.new_temporary(tmp_path)
            os.write(fd, b"half a split")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    [dead] = tmp_path.glob(".faces-*.tmp")
    fd, live = facecache.new_temporary(tmp_path)  # a writer still at work (this process)
    an_hour_ago = os.stat(dead).st_mtime - 3600
    for path in (dead, live):  # both older than STALE_AFTER: only the lock tells them apart
        os.utime(path, (an_hour_ago, an_hour_ago))
    try:
        FacesDataset("test", cache_dir=tmp_path, limit=4).images_uint8()
        names = {p.name for p in tmp_path.iterdir()}
        assert dead.name not in names and os.path.basename(live) in names
        assert len([n for n in names if n.endswith(".npy")]) == 1
    finally:
        os.close(fd)
    assert facecache.remove_stale_temporaries(tmp_path) == [os.path.basename(live)]  # now it is dead


def test_a_render_killed_midway_leaves_nothing_once_the_next_render_runs(tmp_path, monkeypatch):
    """A real render, killed (os._exit: no cleanup) after its first batch of faces."""
    pid = os.fork()
    if pid == 0:
        try:
            real = faces.render_uint8
            monkeypatch.setattr(faces, "render_uint8", lambda f, i: os._exit(9) if i[0] > 65_000 else real(f, i))
            monkeypatch.setattr(FacesDataset, "RENDER_BATCH", 8)
            FacesDataset("test", cache_dir=tmp_path).images_uint8()
        finally:
            os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 9
    [left] = tmp_path.glob(".faces-*.tmp")
    long_ago = left.stat().st_mtime - 3600
    os.utime(left, (long_ago, long_ago))
    FacesDataset("test", cache_dir=tmp_path).images_uint8()
    assert [p.name.startswith("faces-r") for p in tmp_path.iterdir()] == [True]


def test_a_temporary_that_changed_lately_is_kept_even_unlocked(tmp_path):
    """Writers of older versions took no lock: their file is judged by its age as well."""
    (tmp_path / ".faces-old-writer.tmp").write_bytes(b"being written")
    assert facecache.remove_stale_temporaries(tmp_path) == []
    old = os.stat(tmp_path / ".faces-old-writer.tmp").st_mtime - facecache.STALE_AFTER - 1
    os.utime(tmp_path / ".faces-old-writer.tmp", (old, old))
    assert facecache.remove_stale_temporaries(tmp_path) == [".faces-old-writer.tmp"]


# --- defect 9: a wrong cache that hashes to its own name ---------------------------------------------

def recorded_for(monkeypatch, chunk=8, wrong_block=None):
    """The recorded checksums in blocks of `chunk` faces of the 40-face test split (the real
    record's blocks are 1,000 faces); `wrong_block` is recorded wrongly, as if this machine drew
    that block differently from the machine that recorded them."""
    sums = [faces.digest(drawn(65_000 + c * chunk, chunk)) for c in range(40 // chunk)]
    if wrong_block is not None:
        sums[wrong_block] = "0" * 64
    monkeypatch.setattr(faces, "CHUNK", chunk)
    monkeypatch.setattr(faces, "recorded_checksums", lambda: {
        "render_version": faces.RENDER_VERSION, "chunk": chunk, "splits": {"test": sums}})


def plant(folder, images) -> None:
    """A cache file of the test split holding `images`, named after their own sha256."""
    np.save(folder / f"faces-r{faces.RENDER_VERSION}-test-40-{faces.digest(images)[:16]}.npy", images)


def test_a_wrong_cache_is_caught_by_the_recorded_checksums(tmp_path, monkeypatch):
    recorded_for(monkeypatch)
    wrong = drawn(60_000)  # 40 real faces, but the validation split's, under the test split's name
    plant(tmp_path, wrong)
    with pytest.warns(UserWarning, match="fails its checksum .its images 0 to 7 differ from the faces drawn"):
        images = FacesDataset("test", cache_dir=tmp_path, limit=10).images_uint8()
    assert np.array_equal(images, drawn(65_000, 10))
    [path] = tmp_path.iterdir()  # the wrong file gone; the first two blocks of 8 drawn again
    assert path.name.startswith(f"faces-r{faces.RENDER_VERSION}-test-16-")
    assert np.array_equal(np.load(path), drawn(65_000, 16))


def test_a_cache_drawn_here_unlike_the_record_is_used_with_a_warning(tmp_path, monkeypatch):
    """When this machine itself draws a block unlike the record, the cache is its faithful
    drawing: used (not drawn again at every start), with the warning drawing gives."""
    recorded_for(monkeypatch, wrong_block=2)
    plant(tmp_path, drawn(65_000))
    data = FacesDataset("test", cache_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"1 of 5 blocks of 8 test faces drawn on this machine differ"):
        images = data.images_uint8()
    assert np.array_equal(images, drawn(65_000)) and len(list(tmp_path.iterdir())) == 1


def test_a_cache_is_checked_once_per_process(tmp_path, monkeypatch):
    recorded_for(monkeypatch)
    FacesDataset("test", cache_dir=tmp_path).images_uint8()
    calls = []
    monkeypatch.setattr(faces, "chunk_mismatches", lambda *a: calls.append(1) or [])
    FacesDataset("test", cache_dir=tmp_path).images_uint8()
    assert calls == []  # drawn and checked in this process
    faces._VERIFIED.clear()  # a new process
    FacesDataset("test", cache_dir=tmp_path).images_uint8()
    assert calls == [1]


# --- defect 10: VAEBOOK_CACHE naming a file -----------------------------------------------------------

def test_a_cache_that_is_a_file_is_named(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    path.write_text("not a folder")
    monkeypatch.setenv("VAEBOOK_CACHE", str(path))
    with pytest.raises(faces.CacheFolderError) as e:
        FacesDataset("test", limit=2).images_uint8()
    assert str(e.value) == f"the faces cache {path} is a file (or lies under one), not a folder; " \
                           "point VAEBOOK_CACHE at a folder"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(faces.CacheFolderError, match="lies under one"):
            faces.check_cache_dir(path / "inner")


# --- issue 26: a dataset of the first N faces draws only those (in whole blocks) ------------------

def test_only_the_missing_faces_are_drawn_and_a_longer_file_replaces_the_shorter(tmp_path, monkeypatch):
    recorded_for(monkeypatch)                       # blocks of 8 faces
    expected = drawn(65_000, 24)
    real, calls = faces.render_uint8, []
    monkeypatch.setattr(faces, "render_uint8", lambda f, i: calls.append((int(i[0]), len(i))) or real(f, i))
    first = FacesDataset("test", cache_dir=tmp_path, limit=10).images_uint8()
    assert calls == [(65_000, 16)]                  # two whole blocks, not the split's 40
    assert [p.name.split("-")[3] for p in tmp_path.iterdir()] == ["16"]
    more = FacesDataset("test", cache_dir=tmp_path, limit=20).images_uint8()
    assert calls[1:] == [(65_016, 8)]               # only the missing block
    [path] = tmp_path.iterdir()                     # the 16-face file replaced by a 24-face one
    assert path.name.split("-")[3] == "24" and path.stem.endswith(faces.digest(np.load(path))[:16])
    assert np.array_equal(np.load(path), expected)
    assert np.array_equal(first, more[:10])         # the first reader's memory map still reads
    for limit in (3, 24):
        FacesDataset("test", cache_dir=tmp_path, limit=limit).images_uint8()
    whole = FacesDataset("test", cache_dir=tmp_path).images_uint8()
    assert calls[2:] == [(65_024, 16)] and len(whole) == 40
    assert [p.name.split("-")[3] for p in tmp_path.iterdir()] == ["40"]
    assert len(FacesDataset("test", cache_dir=tmp_path, limit=0).images_uint8()) == 0


def test_a_damaged_shorter_file_is_not_grown_from(tmp_path, monkeypatch):
    recorded_for(monkeypatch)
    FacesDataset("test", cache_dir=tmp_path, limit=8).images_uint8()
    [short] = tmp_path.iterdir()
    damaged = np.load(short)
    damaged[3, 0, 0, 0] ^= 1
    np.save(short, damaged)                         # same name, other pixels
    faces._VERIFIED.clear()                         # a new process
    with pytest.warns(UserWarning, match="fails its checksum"):
        images = FacesDataset("test", cache_dir=tmp_path, limit=20).images_uint8()
    assert np.array_equal(images, drawn(65_000, 20))
    [path] = tmp_path.iterdir()
    assert np.array_equal(np.load(path), drawn(65_000, 24))


def test_a_file_of_another_length_is_ignored(tmp_path, monkeypatch):
    """n must be whole blocks (or the whole split): blocks are what the record can check."""
    recorded_for(monkeypatch)
    odd = drawn(65_000, 10)
    np.save(tmp_path / f"faces-r{faces.RENDER_VERSION}-test-10-{faces.digest(odd)[:16]}.npy", odd)
    data = FacesDataset("test", cache_dir=tmp_path, limit=10)
    assert data.cache_files() == []
    assert np.array_equal(data.images_uint8(), odd)
    assert sorted(p.name.split("-")[3] for p in tmp_path.iterdir()) == ["10", "16"]
