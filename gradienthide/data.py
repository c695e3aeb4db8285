"""Image datasets: loading a source, resizing it, and the prepared-dataset artifact."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gradienthide import artifacts

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class ImageDataset:
    """Images as uint8 NCHW, labels as int64, and the names of the classes."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"{self.source}: images must be uint8 NCHW, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.source}: {len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and int(self.labels.max()) >= len(self.class_names):
            raise ValueError(f"{self.source}: label {int(self.labels.max())} but only {len(self.class_names)} class names")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def floats(self, indices=None) -> torch.Tensor:
        """Images in [0, 1] as float32 (all of them, or those at `indices`)."""
        images = self.images if indices is None else self.images[torch.as_tensor(indices, dtype=torch.long)]
        return images.float() / 255.0


def load_digits_source() -> ImageDataset:
    """scikit-learn's bundled handwritten digits: 1,797 real 8x8 grey images, 10 classes."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Pixel values run 0..16; stretch them to the full uint8 range.
    images = torch.from_numpy(np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageDataset(images, labels, list(DIGIT_NAMES), "sklearn.datasets.load_digits")


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


def load_npz_source(path: str | Path, key: str = "data.path") -> ImageDataset:
    """Images and labels from an .npz file.

    Accepts `images`/`labels`, or `train_images`/`train_labels` (with `test_images`/
    `test_labels` appended when present); `class_names` is optional.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{key}: dataset file {path} not found")
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
        labels = np.concatenate([arrays[l].astype(np.int64).reshape(-1) for _, l in parts])
        if "class_names" in keys:
            class_names = [str(name) for name in arrays["class_names"]]
        else:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), class_names, str(path))


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 NCHW images to size x size (antialiased bilinear), keeping uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8)


def build_dataset(data_config: dict) -> ImageDataset:
    """The private dataset the config names, resized to `data.image_size`."""
    if data_config["dataset"] == "digits":
        source = load_digits_source()
    else:
        source = load_npz_source(data_config["path"])
    images, labels = source.images, source.labels
    if data_config.get("max_images"):
        images, labels = images[: data_config["max_images"]], labels[: data_config["max_images"]]
    class_names = data_config.get("class_names") or source.class_names
    if len(class_names) != source.num_classes:
        raise ValueError(f"data.class_names: {len(class_names)} names given but the dataset has {source.num_classes} classes")
    return ImageDataset(resize(images, data_config["image_size"]), labels, list(class_names), source.source)


def save_dataset(path: str | Path, dataset: ImageDataset) -> None:
    artifacts.save_tensors(
        path,
        {"images": dataset.images, "labels": dataset.labels},
        metadata={"class_names": dataset.class_names, "source": dataset.source},
    )


def load_dataset(path: str | Path) -> ImageDataset:
    tensors = artifacts.load_tensors(path)
    class_names = artifacts.load_json_metadata(path, "class_names")
    source = artifacts.read_metadata(path).get("source", str(path))
    return ImageDataset(tensors["images"], tensors["labels"], class_names, source)


# --- the public pool ---------------------------------------------------------------------
# A pool of images with no private owner, labelled later into the private task's classes.
# Its true labels (where its classes are the task's) are kept apart from the labeler's:
# only the label-quality measurement and the simulated_clip labeler read them.

PRIVATE_SLICE = "private_slice"


def load_source(*, dataset: str, path: str | None, key: str) -> ImageDataset:
    """A source the data stage knows, by name (`key` names the config key in errors)."""
    if dataset == "digits":
        return load_digits_source()
    if dataset == "npz":
        if not path:
            raise ValueError(f"{key}.path: required when {key}.dataset is 'npz'")
        return load_npz_source(path, key=f"{key}.path")
    raise ValueError(f"{key}.dataset: unknown source {dataset!r} (known: digits, npz)")


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
    source = load_source(dataset=public["dataset"], path=public.get("path"), key="public")
    source_names = public.get("class_names") or source.class_names
    if len(source_names) != source.num_classes:
        raise ValueError(f"public.class_names: {len(source_names)} names given but the source has {source.num_classes} classes")
    size = public.get("size") or len(source.labels)
    if size > len(source.labels):
        raise ValueError(f"public.size: {size} exceeds the {len(source.labels)} images of {source.source}")
    chosen = torch.as_tensor(np.sort(np.random.default_rng(public.get("seed", 0)).permutation(len(source.labels))[:size]))
    channels, height = task.image_shape[0], task.image_shape[1]
    images = resize(match_channels(source.images[chosen], channels), height)
    return {"images": images, "true_labels": labels_in_task_space(source.labels[chosen], source_names, task.class_names),
            "source_index": chosen.to(torch.int64)}


def save_public_pool_source(path: str | Path, pool: dict[str, torch.Tensor], *, class_names: list[str], source: str) -> None:
    artifacts.save_tensors(path, pool, metadata={"class_names": list(class_names), "source": source})


def load_public_pool_source(path: str | Path) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """The pool's tensors, the task's class names, and the pool's source."""
    return (artifacts.load_tensors(path), artifacts.load_json_metadata(path, "class_names"),
            artifacts.read_metadata(path).get("source", str(path)))
