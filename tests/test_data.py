"""vaebook.data: the split sizes written out for checking records agree with the datasets."""
from __future__ import annotations

import pytest

from vaebook.data import SPLIT_SIZES, check_images, load_dataset, split_size


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_faces_split_sizes_are_the_datasets(split):
    assert split_size("faces", split) == len(load_dataset("faces", split)) > 0


def test_celeba_split_sizes_are_the_official_partition():
    """Liu et al. 2015's partition (list_eval_partition.txt): 202,599 images in all."""
    assert sum(SPLIT_SIZES["celeba"].values()) == 202_599
    assert SPLIT_SIZES["celeba"]["train"] == 162_770


def test_unknown_datasets_and_splits_have_no_size():
    assert split_size("mnist", "train") is None and split_size("faces", "all") is None
    assert split_size(None, "train") is None and split_size(["faces"], "train") is None


def test_faces_has_no_images_to_check():
    check_images(load_dataset("faces", "valid", limit=4))  # rendered: nothing on disk to fail
