"""Image datasets: loading a source, resizing it, and the prepared-dataset artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from gradienthide import artifacts, sources
from gradienthide.sources.base import ImageDataset, resize
from gradienthide.sources.digits import DIGIT_NAMES, load_digits_source  # noqa: F401  (re-exported)
from gradienthide.sources.npz import load_npz_source  # noqa: F401  (re-exported)


def build_dataset(data_config: dict, *, seed: int = 0) -> ImageDataset:
    """The private dataset the config names (`data.dataset`, read from `data.path` or
    `data.root`), the first `data.max_images` images, resized to `data.image_size`.

    With `data.test_split: source` it is the first `data.max_images` images of the source's
    training part, then its test part: all of it (`data.test_size` null) or `data.test_size`
    of its images, the first of a permutation seeded with `seed`, kept in the source's order."""
    size = data_config["image_size"]
    catalog = sources.catalog(dataset=data_config["dataset"], settings=data_config, key="data", image_size=size)
    if data_config.get("test_split", "holdout") == "source":
        indices, parts = train_and_test_indices(catalog, max_images=data_config.get("max_images"),
                                                test_size=data_config.get("test_size"), seed=seed)
        source = catalog.load(indices)
        source.parts = parts
    else:
        count = min(len(catalog), data_config.get("max_images") or len(catalog))
        source = catalog.load(torch.arange(count))
    if len(source.labels) and len(source.labels.unique()) < 2:
        raise ValueError(f"data: all {len(source.labels)} images have label {int(source.labels[0])}: a classifier "
                         f"needs at least 2 classes; check the labels of {source.source} (or raise data.max_images)")
    class_names = data_config.get("class_names") or source.class_names
    if len(class_names) != source.num_classes:
        raise ValueError(f"data.class_names: {len(class_names)} names given but the dataset has {source.num_classes} classes")
    return ImageDataset(resize(source.images, size), source.labels, list(class_names), source.source, parts=source.parts)


def train_and_test_indices(catalog, *, max_images: int | None, test_size: int | None,
                           seed: int) -> tuple[torch.Tensor, tuple]:
    """For `data.test_split: source`: the catalog positions of the training images kept (the
    first max_images of the source's train part) and of the test images chosen, and the parts
    they make."""
    names = [name for name, _ in catalog.parts]
    if names != ["train", "test"]:
        raise ValueError(f"data.test_split: source takes the test set from the dataset's own test part, but "
                         f"{catalog.description} has parts {names or 'none'} (no train and test part); set "
                         f"data.test_split: holdout")
    (_, train_count), (_, test_count) = catalog.parts
    kept = min(train_count, max_images or train_count)
    if test_size is None:
        chosen = np.arange(test_count)
    elif test_size > test_count:
        raise ValueError(f"data.test_size={test_size}: exceeds the {test_count} images of the test part of "
                         f"{catalog.description}; lower it, or set it to null for the whole test part")
    else:
        chosen = np.sort(np.random.default_rng(seed).permutation(test_count)[:test_size])
    indices = torch.cat([torch.arange(kept), torch.from_numpy(train_count + chosen).to(torch.long)])
    return indices, (("train", kept), ("test", len(chosen)))


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> dict:
    """Per-channel mean and standard deviation (over every pixel of every image) of uint8 NCHW
    images, in [0, 1] units: {"mean": [...], "std": [...], "images": N}."""
    if not len(images):
        raise ValueError("channel statistics of an empty set of images")
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        values = images[start : start + chunk].to(torch.float64) / 255.0
        total += values.sum(dim=(0, 2, 3))
        squares += values.square().sum(dim=(0, 2, 3))
    pixels = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / pixels
    std = (squares / pixels - mean.square()).clamp_min(0).sqrt()
    return {"mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std],
            "images": len(images)}


def save_dataset(path: str | Path, dataset: ImageDataset) -> None:
    metadata = {"class_names": dataset.class_names, "source": dataset.source}
    if dataset.parts:
        metadata["parts"] = [[name, count] for name, count in dataset.parts]
    if dataset.channel_stats is not None:
        metadata["channel_stats"] = dataset.channel_stats
    artifacts.save_tensors(path, {"images": dataset.images, "labels": dataset.labels}, metadata=metadata)


def load_dataset(path: str | Path) -> ImageDataset:
    tensors = artifacts.load_tensors(path)
    metadata = artifacts.read_metadata(path)
    class_names = artifacts.load_json_metadata(path, "class_names")
    parts = tuple((name, count) for name, count in json.loads(metadata["parts"])) if "parts" in metadata else ()
    stats = json.loads(metadata["channel_stats"]) if "channel_stats" in metadata else None
    return ImageDataset(tensors["images"], tensors["labels"], class_names, metadata.get("source", str(path)),
                        parts=parts, channel_stats=stats)


# --- the public pool ---------------------------------------------------------------------
# A pool of images with no private owner, labelled later into the private task's classes.
# Its true labels (where its classes are the task's) are kept apart from the labeler's:
# only the label-quality measurement and the simulated_clip labeler read them.

PRIVATE_SLICE = "private_slice"


def load_source(*, dataset: str, settings: dict, key: str, image_size: int):
    """The catalog of a source the data stage knows, by name (`key` names the config block in errors)."""
    return sources.catalog(dataset=dataset, settings=settings, key=key, image_size=image_size)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 NCHW images with `channels` channels: grey repeated to RGB, RGB to grey by luminance."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if images.shape[1] == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


def labels_in_task_space(source_labels: torch.Tensor, source_names: list[str], task_names: list[str]) -> torch.Tensor:
    """Each image's true label as an index into the task's classes, by class name; -1 where the
    source's class is not one of the task's (e.g. CIFAR-100 images for a CIFAR-10 task)."""
    def normalise(name) -> str:
        return str(name).strip().lower()

    position = {normalise(name): index for index, name in enumerate(task_names)}
    mapping = torch.tensor([position.get(normalise(name), -1) for name in source_names], dtype=torch.int64)
    return mapping[source_labels]


def build_public_pool(*, public: dict, task: ImageDataset, private_pool_indices=None) -> dict[str, torch.Tensor]:
    """The public pool as tensors: images (uint8, the task's shape), true_labels (task classes,
    -1 where unknown) and source_index (each image's index in its source).

    `public.dataset: private_slice` is the slice of the private dataset that prepare_data set
    aside (`private_pool_indices`); any other source is drawn from independently, `public.size`
    images (all when null) in an order seeded by `public.seed`, resized to the task's images.
    """
    if public["dataset"] == PRIVATE_SLICE:
        indices = torch.as_tensor(np.asarray(private_pool_indices), dtype=torch.long)
        return {"images": task.images[indices], "true_labels": task.labels[indices], "source_index": indices.clone()}
    channels, height = task.image_shape[0], task.image_shape[1]
    source = load_source(dataset=public["dataset"], settings=public, key="public", image_size=height)
    source_names = public.get("class_names") or source.class_names
    if len(source_names) != len(source.class_names):
        raise ValueError(f"public.class_names: {len(source_names)} names given but the source has {len(source.class_names)} classes")
    size = public.get("size") or len(source.labels)
    if size > len(source.labels):
        raise ValueError(f"public.size: {size} exceeds the {len(source.labels)} images of {source.description}")
    chosen = torch.as_tensor(np.sort(np.random.default_rng(public.get("seed", 0)).permutation(len(source.labels))[:size]))
    images = resize(match_channels(source.read(chosen), channels), height)
    return {"images": images, "true_labels": labels_in_task_space(source.labels[chosen], source_names, task.class_names),
            "source_index": chosen.to(torch.int64)}


def save_public_pool_source(path: str | Path, pool: dict[str, torch.Tensor], *, class_names: list[str], source: str) -> None:
    artifacts.save_tensors(path, pool, metadata={"class_names": list(class_names), "source": source})


def load_public_pool_source(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """The pool's tensors, the task's class names, and the pool's source."""
    return (artifacts.load_tensors(path), artifacts.load_json_metadata(path, "class_names"),
            artifacts.read_metadata(path).get("source", str(path)))
