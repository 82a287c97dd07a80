"""The files of the faces cache: where they go, how one is written, and what a killed or
starved writer leaves behind.

A split is written as one ``.npy`` file under a temporary name (``.faces-*.tmp``) and renamed
into place, so a reader sees a whole file or none. Three things can go wrong on the way, and
each is handled here rather than left to the operating system's bare message:

* the cache folder is not a folder (``VAEBOOK_CACHE`` naming a file): said up front;
* the disk is too small: the space a split needs is known (the training split's 60,000 faces
  take 737 MB), so it is checked before drawing starts, and reserved when the file is made;
  the file is written with ordinary writes, never through a memory map, so a disk filled by
  someone else midway is a clean error, not a SIGBUS;
* a writer is killed: its temporary file stays behind. Each writer holds an exclusive ``flock``
  on its temporary file until the rename, so the next writer removes exactly the temporaries
  whose lock it can take: those of dead writers, never a live one's. (Writers of older versions
  took no lock, so a temporary is also left alone until it has been still for STALE_AFTER.)
"""
from __future__ import annotations

import errno
import hashlib
import mmap
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no flock, so temporaries are never judged stale
    fcntl = None

TMP_PREFIX, TMP_SUFFIX = ".faces-", ".tmp"
STALE_AFTER = 120  # seconds since a temporary file last changed before it may be judged stale


class CacheFolderError(ValueError):
    """The faces cache folder cannot be used (it is a file, or cannot be made)."""


class CacheSpaceError(OSError):
    """The cache's disk has no room for a split; the message names the folder and the space."""

    def __str__(self) -> str:
        return self.strerror


def default_cache_dir() -> Path:
    """$VAEBOOK_CACHE, or ~/.cache/vaebook."""
    return Path(os.environ.get("VAEBOOK_CACHE") or Path.home() / ".cache" / "vaebook")


def check_cache_dir(folder: Path) -> None:
    """Make sure `folder` is (or can become) a folder; else say how to point the cache elsewhere."""
    folder = Path(folder)
    fix = "point VAEBOOK_CACHE at a folder" + ("" if "VAEBOOK_CACHE" in os.environ else " of your own")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheFolderError(f"the faces cache {folder} is a file (or lies under one), not a "
                               f"folder; {fix}") from None
    except PermissionError:
        raise CacheFolderError(f"the faces cache folder {folder} cannot be created by this user; "
                               f"{fix} you can write to") from None


def digest(images: np.ndarray) -> str:
    """sha256 (hex) of a uint8 image array's pixels, in C order."""
    return hashlib.sha256(np.ascontiguousarray(images).data).hexdigest()


def release_pages(images: np.ndarray) -> None:
    """Drop the pages of a memory-mapped array from this process's resident memory. Checking a
    cached split reads all of it (the training split's 737 MB), and those pages would otherwise
    count as the process's own until it ends, though a chapter reads only its first images. The
    file stays in the operating system's cache, and a page read again is mapped back, unchanged."""
    mapping = getattr(images, "_mmap", None)  # numpy.memmap's mmap.mmap object
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def npy_header(shape) -> bytes:
    """The header np.save writes for a uint8 array of `shape` (format 1.0)."""
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False,
                                                  "shape": tuple(shape)})
    return buffer.getvalue()


def no_room(folder: Path, what: str, needed: int, free: int | None) -> CacheSpaceError:
    have = "" if free is None else f", {free / 1e6:,.1f} MB are free"
    return CacheSpaceError(errno.ENOSPC, f"no room in {folder} for the faces cache: {what} needs "
                           f"{needed / 1e6:,.1f} MB{have}; free some space there or point "
                           "VAEBOOK_CACHE at a folder on a disk with room")


def check_space(folder: Path, what: str, needed: int) -> None:
    """Fail before drawing when the disk of `folder` has less than `needed` bytes free."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise no_room(folder, what, needed, free)


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Remove the temporary files of killed writers (their flock is free); return their names."""
    removed = []
    if fcntl is None:
        return removed
    for path in Path(folder).glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        try:
            if time.time() - path.stat().st_mtime < STALE_AFTER:
                continue
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # a live writer holds it
            continue
        try:
            path.unlink(missing_ok=True)
            removed.append(path.name)
        finally:
            os.close(fd)
    return removed


def new_temporary(folder: Path) -> tuple[int, str]:
    """A locked temporary file in `folder`: (fd, path). Locked before anyone may judge it stale;
    if a cleaner removed it between its creation and the lock, another one is made."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=folder)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)


def write_atomically(folder: Path, name_of, array_chunks, shape, what: str) -> Path:
    """Stream uint8 chunks into a temporary .npy in `folder`, then rename it to name_of(sha256).
    The rename is the commit: a reader sees the whole file under its checksum name, or nothing.
    `what` says what is drawn, for the message when the disk is full."""
    header = npy_header(shape)
    size = len(header) + int(np.prod(shape))
    fd, tmp = new_temporary(folder)
    try:
        with os.fdopen(os.dup(fd), "wb") as f:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(f.fileno(), 0, size)  # reserve the space: ENOSPC now, not midway
            f.write(header)
            h = hashlib.sha256()
            for chunk in array_chunks:
                data = np.ascontiguousarray(chunk, dtype=np.uint8).data
                f.write(data)
                h.update(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        path = Path(folder) / name_of(h.hexdigest())
        os.replace(tmp, path)
        return path
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(e, CacheSpaceError):
            free = shutil.disk_usage(folder).free + os.fstat(fd).st_blocks * 512
            raise no_room(Path(folder), what, size, free) from None
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        os.close(fd)  # releases the lock, after the rename


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
