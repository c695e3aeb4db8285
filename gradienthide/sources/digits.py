"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 grey images, 10 classes."""

from __future__ import annotations

import numpy as np

from gradienthide.sources.base import Catalog, ImageDataset, Source, in_memory_catalog

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def load_digits_source() -> ImageDataset:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values run 0..16; stretch them to the full uint8 range.
    images = torch.from_numpy(np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(images, labels, list(DIGIT_NAMES), "sklearn.datasets.load_digits")


class Digits(Source):
    name = "digits"

    def catalog(self, *, settings: dict, key: str, image_size: int) -> Catalog:
        return in_memory_catalog(load_digits_source())
