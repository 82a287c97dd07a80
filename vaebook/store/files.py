"""The checkpoint folder as a store that a crash at any instant leaves loadable.

Layout of a folder (``checkpoints/`` by default):

* ``manifest.json`` maps each name to its entry: the record (config, data, history, metrics),
  the weights' file name, its sha256 and size. It is the only thing a reader trusts.
* ``NAME-<first 16 hex digits of the sha256>.safetensors``: the weights, named by their content.
  (Checkpoints saved before this layout are ``NAME.safetensors``; they load unchanged.)
* ``NAME.json``: a copy of the entry for people to read; loading never uses it.

Why this layout: a save writes the new weights under a name no entry refers to yet, then
replaces ``manifest.json`` in one ``os.replace``, the single commit point. Killed before it, a
reader still finds the old entry and the old file, whole; killed after it, the new entry and
the new file, whole. Files nobody refers to any more (the replaced weights, a killed writer's
temporary files) are removed after the commit and again at the start of the next write, which
also repairs a ``NAME.json`` left stale. Writers hold an exclusive ``flock`` on the folder, so
two processes that update the manifest at once do not lose each other's entries. This module
needs no torch, so a test can kill a writer process that starts in milliseconds.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .places import (DEFAULT_ROOT, MANIFEST, NAME, CheckpointError, is_book_folder,  # noqa: F401
                     megabytes, name_problem, restore_hint, root_dir)

try:
    import fcntl
except ImportError:  # Windows: no flock; writers are then not serialised
    fcntl = None

HASHED_WEIGHTS = re.compile(r"-[0-9a-f]{16}\.safetensors$")  # only the store makes these names
SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Called with the name of each step of a write (tests kill the process there); None in use.
fault_hook = None


class DiskFullError(OSError):
    """A write ran out of disk space; the message names the file, its folder and its size."""

    def __str__(self) -> str:
        return self.strerror


def _reached(step: str) -> None:
    if fault_hook is not None:
        fault_hook(step)


def file_mode() -> int:
    """0o666 less the process umask: the mode `open()` would give a new file. (mkstemp makes
    0600 files, which would hide checkpoints from the other users of a shared folder.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes, step: str = "file") -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half:
    a temporary file in the same folder, flushed to disk, then renamed over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _reached(f"{step}: written")
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(e.errno, f"no space left on the disk of {path.parent} to write "
                                f"{path.name} ({megabytes(len(data))}); free some space there "
                                "and try again") from None
        raise
    fsync_dir(path.parent)
    _reached(f"{step}: renamed")


@contextmanager
def locked(folder: Path):
    """Hold an exclusive lock on `folder` (flock on the folder itself: no lock file to leave)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _reached("locked")
        yield
    finally:
        os.close(fd)  # closing releases the lock


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def weights_name(name: str, digest: str) -> str:
    return f"{name}-{digest[:16]}.safetensors"


# --- reading ------------------------------------------------------------------------------------

def read_manifest(folder: Path, required: bool = False) -> dict:
    """The manifest as {name: entry}; {} if there is none (unless `required`)."""
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if required:
            raise CheckpointError(
                f"{folder} has no {MANIFEST}, so it holds no checkpoints; point VAEBOOK_CHECKPOINTS "
                "at a folder that has one, or restore the book's with `git checkout checkpoints/`") from None
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}); {restore_hint(folder)}") from e
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} is not valid JSON ({str(e)[:80]}); {restore_hint(folder)}") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path} is not a JSON object of checkpoints; {restore_hint(folder)}")
    return manifest


def entry_problem(entry) -> str | None:
    """What is wrong with a manifest entry, or None: it must name a weights file in the folder
    itself and give that file's sha256."""
    if not isinstance(entry, dict):
        return f"it is a {type(entry).__name__}, not an object"
    file, digest = entry.get("file"), entry.get("sha256")
    if not isinstance(file, str) or not file.endswith(".safetensors") or Path(file).name != file \
            or file.startswith("."):
        return f"its 'file' ({file!r}) is not the name of a .safetensors file in the folder"
    if not isinstance(digest, str) or not SHA256.match(digest):
        return f"its 'sha256' ({str(digest)[:20]!r}) is not 64 hex digits"
    return None


def manifest_entry(folder: Path, name: str) -> dict:
    """The manifest's entry for `name`, checked, or a CheckpointError that says what to do."""
    manifest = read_manifest(folder, required=True)
    if name not in manifest:
        from .presets import make_presets
        known = ", ".join(sorted(manifest)) or "none"
        todo = (f"train it with `python -m vaebook train {name} --save`" if name in make_presets()
                else f"{name!r} is not one of the book's presets either (`python -m vaebook list` shows them)")
        raise CheckpointError(f"no checkpoint named {name!r} in {folder / MANIFEST} (it has: {known}); {todo}")
    problem = entry_problem(manifest[name])
    if problem:
        raise CheckpointError(f"the entry {name!r} in {folder / MANIFEST} is malformed: {problem}; "
                              f"{restore_hint(folder)}")
    return manifest[name]


def read_blob(folder: Path, name: str) -> tuple[bytes, dict]:
    """The bytes of checkpoint `name` after checking their sha256, and its entry. Readers take
    no lock: if a writer replaced the checkpoint between reading the manifest and the file, the
    manifest has changed, and reading again gives the new checkpoint whole."""
    for _ in range(3):
        entry = manifest_entry(folder, name)
        path = folder / entry["file"]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = None
        if data is not None and sha256_bytes(data) == entry["sha256"]:
            return data, entry
        if manifest_entry(folder, name) == entry:
            break  # not a race with a writer: the file itself is wrong
    if data is None:
        raise CheckpointError(f"checkpoint file {path} is missing; {restore_hint(folder, name)}")
    raise CheckpointError(
        f"checkpoint file {path} is corrupted or was replaced: its sha256 is "
        f"{sha256_bytes(data)[:12]}…, the manifest expects {entry['sha256'][:12]}…; "
        f"{restore_hint(folder, name)}")


# --- writing ------------------------------------------------------------------------------------

def commit(folder: Path, name: str, blob: bytes, entry: dict) -> dict:
    """Store `blob` (safetensors bytes) as checkpoint `name` with manifest `entry`; the
    manifest's replacement is the commit. Returns the stored entry."""
    problem = name_problem(name)
    if problem:
        raise CheckpointError(problem)
    with locked(folder):
        manifest = read_manifest(folder)  # a damaged manifest stops here: others' entries are in it
        problem = name_problem(name, manifest)
        if problem:
            raise CheckpointError(problem)
        clean(folder, manifest)
        digest = sha256_bytes(blob)
        file = weights_name(name, digest)
        atomic_write_bytes(folder / file, blob, step="weights")
        manifest = {**manifest, name: {**entry, "file": file, "sha256": digest, "bytes": len(blob)}}
        write_manifest(folder, manifest)
        clean(folder, manifest)
        return manifest[name]


def update_entry(folder: Path, name: str, changes: dict) -> dict:
    """Change fields of an existing entry (metrics: they live outside the weights file)."""
    with locked(folder):
        entry = {**manifest_entry(folder, name), **changes}
        manifest = {**read_manifest(folder), name: entry}
        write_manifest(folder, manifest)
        clean(folder, manifest)
        return entry


def write_manifest(folder: Path, manifest: dict) -> None:
    text = json.dumps(dict(sorted(manifest.items())), indent=2) + "\n"
    atomic_write_bytes(folder / MANIFEST, text.encode(), step="manifest")


def clean(folder: Path, manifest: dict) -> None:
    """Remove what a killed or finished write left behind, and bring every NAME.json in line
    with the manifest. Only called with the lock held, so no live writer's file is touched."""
    referenced = {e.get("file") for e in manifest.values() if isinstance(e, dict)}
    for path in folder.iterdir():
        stray_weights = path.name.endswith(".safetensors") and path.name not in referenced and (
            HASHED_WEIGHTS.search(path.name) or path.name[:-len(".safetensors")] in manifest)
        if stray_weights or (path.name.startswith(".") and path.name.endswith(".tmp")):
            path.unlink(missing_ok=True)
            _reached(f"removed {path.name}")
    for name, entry in manifest.items():
        sidecar = folder / f"{name}.json"
        try:
            current = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            current = None
        if current != entry:
            atomic_write_bytes(sidecar, (json.dumps(entry, indent=2) + "\n").encode(), step="sidecar")
