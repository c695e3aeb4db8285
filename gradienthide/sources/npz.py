"""Images and labels from an .npz file (`path`)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from gradienthide.sources.base import Catalog, ImageDataset, Source, in_memory_catalog


def _as_nchw(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    if array.ndim != 4:
        raise ValueError(f"{path}: array {key!r} must be 4-D images (N,C,H,W or N,H,W,C), got shape {array.shape}")
    if array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    if array.shape[1] not in (1, 3):
        raise ValueError(f"{path}: array {key!r} has {array.shape[1]} channels; expected 1 or 3")
    if array.dtype != np.uint8:
        raise ValueError(f"{path}: array {key!r} must be uint8 (0..255), got {array.dtype}")
    return np.ascontiguousarray(array)


def _class_indices(array: np.ndarray, path: Path, name: str, key: str) -> np.ndarray:
    if array.dtype.kind not in "iu":  # a cast would truncate 2.7 to 2 without a word
        raise ValueError(f"{key}: {path}: array {name!r} must hold integers, got {array.dtype}; save class "
                         "indices 0..K-1 (e.g. labels.astype(numpy.int64) once they are whole numbers)")
    labels = array.astype(np.int64).reshape(-1)
    if len(labels) and labels.min() < 0:
        position = int(np.argmax(labels < 0))
        raise ValueError(f"{key}: {path}: array {name!r} has negative label {labels[position]} (at position "
                         f"{position}); labels are class indices 0..K-1")
    return labels


def load_npz_source(path: str | Path, key: str = "data.path") -> ImageDataset:
    """Accepts `images`/`labels`, or `train_images`/`train_labels` (with `test_images`/
    `test_labels` appended when present); `class_names` is optional."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}: dataset file {path} not found")
    if not zipfile.is_zipfile(path):  # np.load would read it as a pickle and suggest allow_pickle
        raise ValueError(f"{key}: {path} is not an .npz archive (a zip of .npy arrays, as numpy.savez writes); "
                         "save the arrays with numpy.savez(path, images=..., labels=...)")
    with np.load(path, allow_pickle=False) as arrays:
        keys = set(arrays.files)
        if {"images", "labels"} <= keys:
            parts = [("images", "labels")]
        elif {"train_images", "train_labels"} <= keys:
            parts = [("train_images", "train_labels")]
            if {"test_images", "test_labels"} <= keys:
                parts.append(("test_images", "test_labels"))
        else:
            raise ValueError(f"{path}: expected arrays 'images' and 'labels' (or 'train_images' and 'train_labels'); found {sorted(keys)}")
        images = np.concatenate([_as_nchw(arrays[i], path, i) for i, _ in parts])
        labels = np.concatenate([_class_indices(arrays[l], path, l, key) for _, l in parts])
        counts = tuple((i.removesuffix("_images") if i != "images" else "all", len(arrays[l])) for i, l in parts)
        if "class_names" in keys:
            class_names = [str(name) for name in arrays["class_names"]]
        else:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), class_names, str(path), parts=counts)


class Npz(Source):
    name = "npz"
    location = "path"
    test_part = None  # when the file has test_images and test_labels
    test_part_name = "test_images/test_labels"

    def test_part_problem(self, settings: dict, key: str) -> str | None:
        path = Path(settings["path"]).expanduser()
        if not path.is_file() or not zipfile.is_zipfile(path):
            return None  # reported by missing_files, or when the file is read
        with np.load(path, allow_pickle=False) as arrays:
            found = sorted(arrays.files)
        if {"train_images", "train_labels", "test_images", "test_labels"} <= set(found):
            return None
        return (f"{key}.test_split: source takes the test set from the file's own test part, but {key}.path "
                f"{path} has no arrays train_images, train_labels, test_images and test_labels (found: "
                f"{', '.join(found)}); save them with numpy.savez, or set {key}.test_split: holdout")

    def missing_files(self, settings: dict, key: str) -> str | None:
        path = Path(settings["path"]).expanduser()
        what = "public source file" if key == "public" else "dataset file"
        return None if path.is_file() else f"{key}.path: {what} {settings['path']} not found"

    def catalog(self, *, settings: dict, key: str, image_size: int) -> Catalog:
        return in_memory_catalog(load_npz_source(settings["path"], key=f"{key}.path"))
