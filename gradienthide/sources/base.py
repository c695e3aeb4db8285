"""What every dataset source gives: a catalog of its images (labels and class names up front,
pixels read on demand), and the checks a config can run before any job starts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:  # torch is imported where images are read, not by the config check
    import torch

RESIZE_CHUNK = 2048  # images resized at a time, so a large source never becomes one float tensor


@dataclass
class ImageDataset:
    """Images as uint8 NCHW, labels as int64, and the names of the classes.

    `parts` lists the source's parts in image order, e.g. (("train", 50000), ("test", 10000)):
    the first 50,000 images are the source's training part. `channel_stats` is filled in by
    prepare_data (per-channel mean and std of the clients' images, in [0, 1] units)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str
    parts: tuple = ()
    channel_stats: dict | None = None

    def __post_init__(self):
        import torch

        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"{self.source}: images must be uint8 NCHW, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.source}: {len(self.images)} images but {len(self.labels)} labels")
        if len(self.labels) and int(self.labels.max()) >= len(self.class_names):
            raise ValueError(f"{self.source}: label {int(self.labels.max())} but only {len(self.class_names)} class names")
        if self.parts and sum(count for _, count in self.parts) != len(self.labels):
            raise ValueError(f"{self.source}: parts {list(self.parts)} do not add up to {len(self.labels)} images")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def floats(self, indices=None) -> torch.Tensor:
        """Images in [0, 1] as float32 (all of them, or those at `indices`)."""
        import torch

        if indices is not None and not isinstance(indices, torch.Tensor):
            indices = torch.from_numpy(np.array(indices, dtype=np.int64))  # a copy: pandas' arrays are read-only
        images = self.images if indices is None else self.images[indices]
        return images.float() / 255.0


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize uint8 NCHW images to size x size (antialiased bilinear), keeping uint8."""
    import torch
    import torch.nn.functional as F

    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    chunks = []
    for start in range(0, len(images), RESIZE_CHUNK):
        chunk = images[start : start + RESIZE_CHUNK].float()
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        chunks.append(resized.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(chunks) if chunks else images.new_zeros((0, images.shape[1], size, size))


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    """One uint8 CHW image as size x size: its central square, resized."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize(image[None, :, top : top + side, left : left + side], size)[0]


@dataclass
class Catalog:
    """A source's images as a list: labels, class names and parts up front; `read(indices)`
    returns the uint8 NCHW images at those positions (folder sources decode only those)."""

    labels: torch.Tensor
    class_names: list[str]
    description: str
    read: Callable[[torch.Tensor], torch.Tensor]
    parts: tuple = ()

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, indices=None) -> ImageDataset:
        """The images at `indices` (all when None) as an ImageDataset; parts are counted for the
        chosen images when they are a prefix of the catalog (data.max_images)."""
        import torch

        indices = torch.arange(len(self)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
        parts = ()
        if self.parts and torch.equal(indices, torch.arange(len(indices))):
            bounds = np.cumsum([0] + [count for _, count in self.parts])
            counts = [(name, int(np.clip(len(indices) - bounds[i], 0, count))) for i, (name, count) in enumerate(self.parts)]
            parts = tuple((name, count) for name, count in counts if count)
        return ImageDataset(self.read(indices), self.labels[indices].clone(), list(self.class_names), self.description,
                            parts=parts)


def in_memory_catalog(dataset: ImageDataset) -> Catalog:
    return Catalog(labels=dataset.labels, class_names=dataset.class_names, description=dataset.source,
                   read=lambda indices: dataset.images[indices], parts=dataset.parts)


def round_robin(labels: list[int]) -> list[int]:
    """Positions of a class-sorted list reordered to cycle through the classes (one image of
    each class in turn), so that any prefix (data.max_images) covers the classes evenly."""
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    queues = [by_class[label] for label in sorted(by_class)]
    order, depth = [], 0
    while len(order) < len(labels):
        order += [queue[depth] for queue in queues if depth < len(queue)]
        depth += 1
    return order


@dataclass(frozen=True)
class Source:
    """A dataset source the config names in `data.dataset` (or `public.dataset`).

    `location` is the config key that says where its files are: "path" (a file), "root" (a
    directory) or None (shipped with a package). `downloadable` sources may fetch their files
    into the root when `download: true`."""

    name: ClassVar[str]
    location: ClassVar[str | None] = None
    downloadable: ClassVar[bool] = False
    # a test part of its own (data.test_split: source): True, False, or None when its file decides
    test_part: ClassVar[bool | None] = False
    test_part_name: ClassVar[str] = ""  # what the source calls it, for messages

    def test_part_problem(self, settings: dict, key: str) -> str | None:
        """Why the source's files give no test part (a message naming the file and what it
        lacks), or None when they do. Only sources whose files decide (test_part None) look."""
        return None

    def missing_files(self, settings: dict, key: str) -> str | None:
        """Why the source's files are not usable (a message naming the directory and the files
        expected, and how to get them), or None when they are there."""
        return None

    def catalog(self, *, settings: dict, key: str, image_size: int) -> Catalog:
        """The source's images. Sources whose images differ in size bring each to
        image_size x image_size; others keep their own size (the caller resizes)."""
        raise NotImplementedError

    def check_files(self, settings: dict, key: str) -> None:
        problem = None if settings.get("download") else self.missing_files(settings, key)
        if problem:
            raise FileNotFoundError(problem)


def root_of(settings: dict) -> Path:
    return Path(settings["root"]).expanduser()
