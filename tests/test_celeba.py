"""Tests of vaebook.data.celeba on a 12-image fake CelebA written in both real on-disk layouts."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from celeba_fixture import (BORDER, RING, attr_values, centre_colour, filename,
                            make_celeba_fixture)
from vaebook.data.celeba import (ATTR_NAMES, CROP, CelebA, CelebAImageError, DatasetNotFoundError,
                            ENV_VAR, find_layout)

LAYOUTS = ("torchvision", "kaggle")
N = 12
EXPECTED = {  # fixture partition pattern: train, valid, train, test, ...
    "train": [0, 2, 4, 6, 8, 10], "valid": [1, 5, 9], "test": [3, 7, 11], "all": list(range(N)),
}


@pytest.fixture(scope="module", params=LAYOUTS)
def root(request, tmp_path_factory):
    """A read-only fixture dataset, shared by the tests that do not modify it."""
    return make_celeba_fixture(tmp_path_factory.mktemp(request.param), request.param, N)


def attrs01(indices) -> torch.Tensor:
    """The fixture's attributes for ``indices``, recoded from -1/1 to 0/1."""
    return torch.tensor((attr_values(N)[indices] + 1) // 2, dtype=torch.float32)


def test_attr_names_are_the_40_celeba_attributes():
    assert len(ATTR_NAMES) == len(set(ATTR_NAMES)) == 40
    assert (ATTR_NAMES[0], ATTR_NAMES[20], ATTR_NAMES[-1]) == ("5_o_Clock_Shadow", "Male", "Young")


def test_find_layout_detects_each_layout(root):
    layout = find_layout(root)
    assert layout.kind == ("torchvision" if (root / "celeba").is_dir() else "kaggle")
    assert layout.missing() == [] and (layout.images / "000001.jpg").is_file()


@pytest.mark.parametrize("split", list(EXPECTED))
def test_split_sizes_order_and_attributes(root, split):
    ds = CelebA(root, split=split)
    indices = EXPECTED[split]
    assert ds.split == split and len(ds) == len(indices)
    assert ds.filenames == [filename(i) for i in indices]  # file order within the split
    assert ds.attrs.dtype == torch.float32 and ds.attrs.shape == (len(indices), 40)
    assert torch.equal(ds.attrs, attrs01(indices))  # -1/1 in the file -> 0/1


def test_metadata_says_there_are_no_factors(root):
    ds = CelebA(root)
    assert ds.attr_names == ATTR_NAMES
    assert ds.factor_names == () and ds.factors is None


def test_items_are_cropped_resized_images_and_attrs(root):
    ds = CelebA(root, split="valid")
    for k, i in enumerate(EXPECTED["valid"]):
        image, attrs = ds[k]
        assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert torch.equal(attrs, attrs01([i])[0])
        # Inside: the image's own centre colour (so the images are told apart).
        centre = torch.tensor(centre_colour(i), dtype=torch.float32)[:, None, None] / 255
        assert (image[:, 8:-8, 8:-8] - centre).abs().max() < 0.05
        # Outermost rows and columns: the black ring, so the crop kept the whole 148 square
        # and none of the green frame around it.
        edges = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
        assert edges.max() < 0.08, f"crop of {filename(i)} is not the centre 148x148 square"


def test_image_is_the_centre_148_square_resized(root):
    """Pixel-exact crop box: compare with PIL cropping (15, 35, 163, 183) and resizing itself."""
    ds = CelebA(root, split="all")
    raw = Image.open(find_layout(root).images / filename(5)).convert("RGB")
    expected = np.asarray(raw.crop((15, 35, 163, 183)).resize((64, 64), Image.BILINEAR)) / 255
    got = ds[5][0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() < 0.05  # a crop off by one pixel gives ~0.37


def test_crop_constant():
    assert CROP == 148


def test_fixture_border_really_differs_from_centre(root):
    """Guards the crop test above: the raw fixture image has the green frame and black ring."""
    pixels = np.asarray(Image.open(find_layout(root).images / filename(0)).convert("RGB"), int)
    assert pixels.shape == (218, 178, 3)
    top, left = (218 - 148) // 2, (178 - 148) // 2
    for (y, x), colour in {(0, 0): BORDER, (top - 3, left + 40): BORDER, (top + 3, left + 40): RING,
                           (109, 89): centre_colour(0)}.items():
        assert np.abs(pixels[y, x] - colour).max() < 20, (y, x)


def test_image_size_and_dataloader_batches(root):
    ds = CelebA(root, split="train", image_size=32)
    images, attrs = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 32, 32) and attrs.shape == (4, 40)
    assert torch.equal(attrs, attrs01(EXPECTED["train"][:4]))
    assert len(ds.__getitems__([0, 5])) == 2


def test_root_from_environment_variable(root, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(root))
    assert CelebA(split="test").filenames == [filename(i) for i in EXPECTED["test"]]


def test_root_may_point_at_inner_celeba_folder(tmp_path):
    root = make_celeba_fixture(tmp_path, "torchvision", N)
    ds = CelebA(root / "celeba", split="all")
    assert ds.layout.images == root / "celeba" / "img_align_celeba"
    assert len(ds) == N and ds[3][0].shape == (3, 64, 64)


def test_windows_line_endings_are_read(tmp_path):
    root = make_celeba_fixture(tmp_path, "torchvision", N)
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        path = root / "celeba" / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert torch.equal(CelebA(root, "all").attrs, attrs01(list(range(N))))


def test_nothing_at_root_explains_where_to_get_celeba(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        CelebA(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "No CelebA files" in message
    for hint in ("Kaggle", "jessicali9530/celeba-dataset", "mmlab.ie.cuhk.edu.hk", ENV_VAR):
        assert hint in message
    assert isinstance(info.value, FileNotFoundError)


def test_missing_root_folder_is_named(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        CelebA(tmp_path / "nowhere")


def test_no_root_and_no_env_var(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DatasetNotFoundError, match=f"set {ENV_VAR}"):
        CelebA()


def test_half_present_torchvision_lists_everything_missing(tmp_path):
    root = make_celeba_fixture(tmp_path, "torchvision", N)
    shutil.rmtree(root / "celeba" / "img_align_celeba")
    (root / "celeba" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        CelebA(root)
    message = str(info.value)
    assert "torchvision layout" in message
    assert str(root / "celeba" / "img_align_celeba") in message
    assert str(root / "celeba" / "list_eval_partition.txt") in message
    assert "list_attr_celeba.txt" not in message.split("\n\n")[0]  # present, so not listed


def test_half_present_kaggle_lists_the_missing_file(tmp_path):
    root = make_celeba_fixture(tmp_path, "kaggle", N)
    (root / "list_eval_partition.csv").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        find_layout(root)
    problem = str(info.value).split("\n\n")[0]
    assert "kaggle layout" in problem and str(root / "list_eval_partition.csv") in problem
    assert problem.count("\n  - ") == 1


def test_bad_split_lists_valid_splits(root):
    with pytest.raises(ValueError, match="'train', 'valid', 'test', 'all'"):
        CelebA(root, split="validation")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_image_missing_on_disk_is_named_when_fetched(tmp_path, layout):
    root = make_celeba_fixture(tmp_path, layout, N)
    (find_layout(root).images / filename(4)).unlink()
    ds = CelebA(root, split="train")  # construction stays fast: no per-image check
    assert ds[1][0].shape == (3, 64, 64)
    with pytest.raises(FileNotFoundError, match=filename(4)):
        ds[2]


def test_annotation_files_disagreeing_names_the_file(tmp_path):
    root = make_celeba_fixture(tmp_path, "kaggle", N)
    path = root / "list_eval_partition.csv"
    path.write_text(path.read_text().replace(filename(7), "999999.jpg"))
    with pytest.raises(ValueError, match=f"{filename(7)} is in list_attr_celeba.csv but not in"):
        CelebA(root)


def test_truncated_attribute_file_is_reported(tmp_path):
    root = make_celeba_fixture(tmp_path, "torchvision", N)
    path = root / "celeba" / "list_attr_celeba.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-2]) + "\n")
    with pytest.raises(ValueError, match=f"announces {N} images but lists {N - 2}"):
        CelebA(root)


def test_attribute_values_other_than_minus_one_and_one_are_rejected(tmp_path):
    root = make_celeba_fixture(tmp_path, "kaggle", N)
    path = root / "list_attr_celeba.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",-1", ",2", 1)  # the row of 000003.jpg
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=f"row of {filename(2)} is not 40 values of -1 or 1"):
        CelebA(root)


def test_load_dataset_limit_cuts_items_and_their_metadata(root):
    from vaebook.data import load_dataset
    full = load_dataset("celeba", "all", root=root)
    part = load_dataset("celeba", "all", root=root, limit=3)
    assert len(part) == 3 and part.attrs.shape == (3, 40) and part.filenames == full.filenames[:3]
    assert torch.equal(part[2][0], full[2][0]) and torch.equal(part[-1][1], full.attrs[2])
    with pytest.raises(IndexError):
        part[3]


# --- damaged images are named, and can be found before training starts (finding 6) --------------

def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_truncated_jpeg_is_named_when_fetched(tmp_path, layout):
    root = make_celeba_fixture(tmp_path, layout, N)
    truncate(find_layout(root).images / filename(2))
    ds = CelebA(root, split="train")
    with pytest.raises(CelebAImageError, match=f"{filename(2)} cannot be decoded .*truncated"):
        ds[1]
    with pytest.raises(CelebAImageError, match=filename(2)):  # through a DataLoader too
        next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert isinstance(CelebAImageError("x"), OSError)


def test_check_images_names_every_kind_of_bad_file(tmp_path):
    root = make_celeba_fixture(tmp_path, "torchvision", N)
    images = find_layout(root).images
    ds = CelebA(root, split="all")
    ds.check_images()  # a good copy passes
    truncate(images / filename(3))
    (images / filename(5)).unlink()
    (images / filename(7)).write_bytes(b"this is not a JPEG")
    (images / filename(9)).write_bytes(b"")
    with pytest.raises(CelebAImageError) as e:
        ds.check_images()
    message = str(e.value)
    assert message.startswith(f"CelebA image {images / filename(3)} cannot be decoded")
    assert f"and 3 more: {filename(5)}, {filename(7)}, {filename(9)})" in message
    assert "extract the images again" in message
    with pytest.raises(CelebAImageError, match=f"{filename(5)} missing on disk"):
        ds.check_images([5])
    ds.check_images([0, 1, 2, 4])  # the good ones


def test_check_images_of_a_limited_split_checks_only_the_kept_images(tmp_path):
    from vaebook.data import check_images, load_dataset
    root = make_celeba_fixture(tmp_path, "kaggle", N)
    truncate(find_layout(root).images / filename(10))  # the 6th training image
    check_images(load_dataset("celeba", "train", root=root, limit=5))
    with pytest.raises(CelebAImageError, match=filename(10)):
        check_images(load_dataset("celeba", "train", root=root, limit=6))
    with pytest.raises(CelebAImageError, match=filename(10)):
        check_images(load_dataset("celeba", "train", root=root))


# --- issue 24, defect 7: a damaged partition file is named with its line and the fix ---------------

@pytest.mark.parametrize("layout, partition", [("torchvision", "celeba/list_eval_partition.txt"),
                                               ("kaggle", "list_eval_partition.csv")])
@pytest.mark.parametrize("bad", ["code", "line"])
def test_a_bad_partition_line_is_named_with_its_file_and_line(tmp_path, layout, partition, bad):
    root = make_celeba_fixture(tmp_path, layout, N)
    path = root / partition
    lines = path.read_text().splitlines()
    row = 4 if layout == "torchvision" else 5  # the 5th image; the csv has a header line
    sep = " " if layout == "torchvision" else ","
    lines[row - 1] = f"{filename(4)}{sep}x" if bad == "code" else f"{filename(4)}{sep}0{sep}1"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as e:
        CelebA(root)
    message = str(e.value)
    assert message.startswith(f"{path}, line {row}: ") and filename(4) in message
    assert "0 train, 1 valid, 2 test" in message and "extract it again" in message
    assert "invalid literal" not in message and "unpack" not in message


def test_an_empty_split_is_named_with_its_partition_file(tmp_path):
    root = make_celeba_fixture(tmp_path, "kaggle", N)
    path = root / "list_eval_partition.csv"
    path.write_text(path.read_text().replace(",0\n", ",1\n"))  # nothing left in train
    with pytest.raises(ValueError, match=f"{path} puts no image in the train split .code 0.; "):
        CelebA(root, "train")
    assert len(CelebA(root, "valid")) == 9  # the other splits still load
