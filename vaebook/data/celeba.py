"""CelebA, read from the files a reader already has on disk.

CelebA (Liu et al., 2015) is 202,599 aligned 178×218 celebrity faces, each labelled with 40
binary attributes and assigned to a train/valid/test partition. It cannot be downloaded by the
book, so :class:`CelebA` only reads one of the two layouts people actually have:

* torchvision's: ``<root>/celeba/`` holding ``img_align_celeba/``, ``list_attr_celeba.txt`` and
  ``list_eval_partition.txt`` (``root`` may also point at the ``celeba`` folder itself);
* Kaggle's: ``<root>/`` holding ``img_align_celeba/img_align_celeba/``, ``list_attr_celeba.csv``
  and ``list_eval_partition.csv``.

We parse the annotation files ourselves instead of using ``torchvision.datasets.CelebA``: that
class checks the md5 of every annotation file, so it rejects the Kaggle copy.
"""
from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

ENV_VAR = "VAEBOOK_CELEBA_ROOT"
SPLITS = {"train": 0, "valid": 1, "test": 2, "all": None}  # codes of list_eval_partition
ATTR_NAMES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
# Side of the centre square cut from each 178×218 aligned image before resizing. The alignment
# puts the face in the middle, and a 148-pixel square keeps the whole face and hair line while
# dropping most of the background, as in common VAE CelebA setups. Resizing the full 178×218
# image to a square instead would squash the face's aspect ratio.
CROP = 148

_HELP = f"""\
CelebA is not bundled with the book; download it yourself from either
  * the official site: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html
    (torchvision's downloader uses the same Google Drive files and often fails on its quota), or
  * Kaggle: the dataset "jessicali9530/celeba-dataset" (the usual alternative),
unzip it, and point the book at the folder: set the environment variable {ENV_VAR},
or pass root=... to load_dataset("celeba", ...) (or to CelebA()).
Expected layouts (either one):
  torchvision: <root>/celeba/img_align_celeba/*.jpg, <root>/celeba/list_attr_celeba.txt,
               <root>/celeba/list_eval_partition.txt
  Kaggle:      <root>/img_align_celeba/img_align_celeba/*.jpg, <root>/list_attr_celeba.csv,
               <root>/list_eval_partition.csv"""


class DatasetNotFoundError(FileNotFoundError):
    """CelebA (or part of it) is not where we looked; the message says where to get it."""


class CelebAImageError(OSError):
    """CelebA images listed in the annotation files are missing or cannot be decoded."""


def image_problem(path: Path) -> str | None:
    """Why `path` is not a readable image, or None. JPEGs are decoded in draft mode (at 1/8
    scale): every byte is still read, so a truncated file is caught, at a fraction of the cost."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except FileNotFoundError:
        return "missing on disk"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return f"cannot be decoded ({e})"
    return None


def _not_found(problem: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{problem}\n\n{_HELP}")


@dataclass(frozen=True)
class Layout:
    """Where one copy of CelebA keeps its images and its two annotation files."""

    kind: str  # "torchvision" or "kaggle"
    images: Path
    attr_file: Path
    partition_file: Path

    def missing(self) -> list[Path]:
        """The parts of this layout that are not on disk."""
        parts = [(self.images, Path.is_dir), (self.attr_file, Path.is_file),
                 (self.partition_file, Path.is_file)]
        return [path for path, exists in parts if not exists(path)]


def _candidates(root: Path) -> list[Layout]:
    """The layouts worth trying in ``root``; on ties the earlier one counts as 'closest'."""
    def torchvision(d: Path) -> Layout:
        return Layout("torchvision", d / "img_align_celeba", d / "list_attr_celeba.txt",
                      d / "list_eval_partition.txt")
    kaggle = Layout("kaggle", root / "img_align_celeba" / "img_align_celeba",
                    root / "list_attr_celeba.csv", root / "list_eval_partition.csv")
    return [torchvision(root / "celeba"), kaggle, torchvision(root)]


def find_layout(root) -> Layout:
    """Detect which CelebA layout ``root`` holds; raise :class:`DatasetNotFoundError` if none is
    complete, listing what is missing from the layout closest to complete."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _not_found(f"CelebA root folder {root} does not exist.")
    candidates = _candidates(root)
    missing = [c.missing() for c in candidates]
    if [] in missing:
        return candidates[missing.index([])]
    best = min(range(len(candidates)), key=lambda i: len(missing[i]))
    if len(missing[best]) == 3:
        folders = dict.fromkeys(str(c.attr_file.parent) for c in candidates)  # unique, in order
        searched = ", ".join(folders)
        raise _not_found(f"No CelebA files found in {root} (searched {searched}).")
    listed = "\n".join(f"  - {p}" for p in missing[best])
    raise _not_found(f"Incomplete CelebA ({candidates[best].kind} layout) in {root}; "
                     f"missing:\n{listed}")


def _read_attr_file(path: Path) -> tuple[list[str], np.ndarray]:
    """Filenames and their (N, 40) uint8 attributes, recoded from -1/1 to 0/1, from the .txt
    or .csv attribute file."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            header, *rows = [r for r in csv.reader(f) if r]
        names = header[1:]
    else:  # torchvision .txt: a count line, a names line, then "000001.jpg -1  1 ..." rows
        count, header, *lines = path.read_text().splitlines()
        names, rows = header.split(), [line.split() for line in lines if line.strip()]
        if int(count) != len(rows):
            raise ValueError(f"{path} announces {count} images but lists {len(rows)}; "
                             "the file looks truncated.")
    if tuple(names) != ATTR_NAMES:
        raise ValueError(f"{path} does not list the 40 CelebA attributes in the usual order.")
    # Fast recoding of ~8 million values: "1 -1 1" -> "1-11" -> "101", one character each.
    bits = ["".join(r[1:]).replace("-1", "0") for r in rows]
    bad = next((r[0] for r, b in zip(rows, bits) if len(r) != 41 or len(b) != 40
                or b.strip("01")), None)
    if bad is not None:
        raise ValueError(f"{path}: the row of {bad} is not 40 values of -1 or 1.")
    values = np.frombuffer("".join(bits).encode("ascii"), np.uint8) - ord("0")
    return [r[0] for r in rows], values.reshape(len(rows), 40)


def _read_partition_file(path: Path) -> dict[str, int]:
    """Map filename -> partition code (0 train, 1 valid, 2 test) from a .txt or .csv file; a
    line that is not a file name and one of those codes is named with its number."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if r][1:]  # skip "image_id,partition"
    else:
        rows = [(n, line.split()) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    partition = {}
    for n, row in rows:
        if len(row) != 2 or row[1].strip() not in ("0", "1", "2"):
            shown = " ".join(row)[:60]
            raise ValueError(f"{path}, line {n}: {shown!r} is not an image name and a partition code "
                             "(0 train, 1 valid, 2 test); the file looks damaged: extract it again "
                             "from the CelebA archive")
        partition[row[0]] = int(row[1])
    return partition


def _check_same_files(layout: Layout, files: list[str], partition: dict[str, int]) -> None:
    """Fail loudly, naming a culprit, when the two annotation files list different images."""
    attr_set = set(files)
    only_attr = next((f for f in files if f not in partition), None)
    only_part = next((f for f in partition if f not in attr_set), None)
    if only_attr is not None or only_part is not None:
        a, p = layout.attr_file.name, layout.partition_file.name
        where = (f"{only_attr} is in {a} but not in {p}" if only_attr is not None
                 else f"{only_part} is in {p} but not in {a}")
        raise ValueError(f"CelebA annotation files in {layout.attr_file.parent} disagree on the "
                         f"image list: {where} ({a}: {len(files)} images, {p}: {len(partition)}).")


class CelebA(torch.utils.data.Dataset):
    """Aligned CelebA faces, centre-cropped to CROP×CROP and resized to ``image_size``.

    Items are ``(image, attrs)``: a float32 ``(3, image_size, image_size)`` image in [0, 1] and
    the float32 ``(40,)`` attribute vector in {0, 1} (the files store -1/1).

    Attributes: ``split``, ``filenames`` (in file order), ``attrs`` (N, 40), ``attr_names``.
    CelebA has no ground-truth generative factors, only these human labels, so
    ``factor_names = ()`` and ``factors = None``: the book's disentanglement metrics, which need
    true factors, cannot be computed on it.

    ``root`` defaults to the environment variable ``VAEBOOK_CELEBA_ROOT``. The annotation files
    are read up front; each image is opened only when it is fetched, and a missing or damaged
    one is then named. :meth:`check_images` checks them all at once (training does, first).
    """

    factor_names: tuple[str, ...] = ()
    factors = None

    def __init__(self, root=None, split: str = "train", image_size: int = 64):
        if split not in SPLITS:
            raise ValueError(f"split={split!r} is not one of {tuple(SPLITS)}")
        if root is None:
            root = os.environ.get(ENV_VAR) or None
            if root is None:
                raise _not_found(f"No CelebA folder given: pass root=... or set {ENV_VAR}.")
        self.layout = find_layout(root)
        self.split, self.image_size, self.attr_names = split, int(image_size), ATTR_NAMES
        files, values = _read_attr_file(self.layout.attr_file)
        partition = _read_partition_file(self.layout.partition_file)
        _check_same_files(self.layout, files, partition)
        keep = [i for i, f in enumerate(files)
                if SPLITS[split] is None or partition[f] == SPLITS[split]]
        if not keep:
            raise ValueError(f"{self.layout.partition_file} puts no image in the {split} split (code "
                             f"{SPLITS[split]}); the file looks damaged: extract it again from the "
                             "CelebA archive")
        self.filenames = [files[i] for i in keep]
        self.attrs = torch.from_numpy(values[keep]).float()

    def __len__(self) -> int:
        return len(self.filenames)

    def load_image(self, i: int) -> torch.Tensor:
        """Image ``i`` as float32 (3, S, S) in [0, 1]: RGB, centre crop CROP, antialiased resize."""
        path = self.layout.images / self.filenames[i]
        if not path.is_file():
            raise FileNotFoundError(f"CelebA image {path} is listed in {self.layout.attr_file.name}"
                                    " but missing on disk; the image folder looks incomplete.")
        try:
            with Image.open(path) as img:
                img = F.center_crop(img.convert("RGB"), [CROP, CROP])
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise CelebAImageError(f"CelebA image {path} cannot be decoded ({e}); extract it again "
                                   "from the archive") from None
        img = F.resize(img, [self.image_size, self.image_size], antialias=True)
        return F.to_dtype(F.to_image(img), torch.float32, scale=True).as_subclass(torch.Tensor)

    def check_images(self, indices=None) -> None:
        """Check that the images (all of this split, or those at `indices`) are on disk and
        decode; raise CelebAImageError naming the bad ones. Training calls this before its
        first step, so a broken copy fails in minutes, not in the middle of an epoch."""
        indices = range(len(self)) if indices is None else indices
        paths = [self.layout.images / self.filenames[i] for i in indices]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # PIL decodes without the GIL
            problems = list(pool.map(image_problem, paths, chunksize=256))
        bad = [(path, problem) for path, problem in zip(paths, problems) if problem]
        if bad:
            first, problem = bad[0]
            names = ", ".join(p.name for p, _ in bad[1:4]) + (", ..." if len(bad) > 4 else "")
            more = f" (and {len(bad) - 1} more: {names})" if len(bad) > 1 else ""
            raise CelebAImageError(f"CelebA image {first} {problem}{more}; extract the images "
                                   f"again from the archive into {self.layout.images}")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load_image(i), self.attrs[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Batch fetch used by DataLoader; a plain loop (JPEG decoding dominates anyway)."""
        return [self[i] for i in indices]
