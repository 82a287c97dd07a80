"""The images the book learns from: `faces`, cartoon faces drawn from their index with known
factors (``faces``, and its drawing in ``renderer``, ``faceparts``, ``drawing``, ``factors``),
and CelebA read from the reader's own copy (``celeba``); the faces cache's files in ``facecache``.
``load_dataset`` picks one."""
from .loading import (DATASETS, SPLIT_SIZES, FactorTargets, Limited, check_images, default_dataset,
                      load_dataset, split_size, stack_images)

__all__ = ["DATASETS", "SPLIT_SIZES", "FactorTargets", "Limited", "check_images", "default_dataset",
           "load_dataset", "split_size", "stack_images"]
