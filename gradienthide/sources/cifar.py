"""CIFAR-10 and CIFAR-100 through torchvision, from the python-version files under `root`.

torchvision checks every file against the official md5 sums; nothing is downloaded unless
`download: true`. The file check before any job uses the folder and file names kept here
(equal to torchvision's, tested), so that Snakemake's parse does not import torchvision."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from gradienthide.sources.base import Catalog, ImageDataset, Source, in_memory_catalog, root_of

CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/cifar.html"


class _Cifar(Source):
    location = "root"
    downloadable = True
    test_part = True
    title: ClassVar[str]
    base_folder: ClassVar[str]  # torchvision's names: the extracted folder, its files, the archive
    files: ClassVar[tuple[str, ...]]
    archive: ClassVar[str]

    @staticmethod
    def torchvision_class():
        raise NotImplementedError

    def expected_files(self) -> list[str]:
        return list(self.files)

    def missing_files(self, settings: dict, key: str) -> str | None:
        folder = root_of(settings) / self.base_folder
        missing = [name for name in self.expected_files() if not (folder / name).is_file()]
        if not missing:
            return None
        return (f"{key}.root: {self.title} not found: expected the directory {folder} with the files "
                f"{', '.join(self.expected_files())} (missing: {', '.join(missing)}). Download {self.archive} "
                f"(python version) from {CIFAR_PAGE} and extract it into {root_of(settings)}, or set "
                f"{key}.download: true on a machine with internet access.")

    def catalog(self, *, settings: dict, key: str, image_size: int) -> Catalog:
        import torch

        self.check_files(settings, key)
        tv = self.torchvision_class()
        parts, images, labels = [], [], []
        for part, train in (("train", True), ("test", False)):
            try:
                loaded = tv(root=str(root_of(settings)), train=train, download=bool(settings.get("download")))
            except RuntimeError as error:  # torchvision's md5 check failed
                raise RuntimeError(f"{key}.root: the {self.title} files in {root_of(settings) / tv.base_folder} fail "
                                   f"torchvision's md5 check ({error}); they are damaged or not the official "
                                   f"files: download {tv.filename} again from {CIFAR_PAGE}") from error
            images.append(torch.from_numpy(np.ascontiguousarray(loaded.data.transpose(0, 3, 1, 2))))
            labels.append(torch.as_tensor(loaded.targets, dtype=torch.int64))
            parts.append((part, len(loaded.targets)))
        class_names = [name.replace("_", " ") for name in loaded.classes]
        description = f"torchvision.datasets.{tv.__name__}:{Path(loaded.root) / tv.base_folder}"
        return in_memory_catalog(ImageDataset(torch.cat(images), torch.cat(labels), class_names, description,
                                              parts=tuple(parts)))


class Cifar10(_Cifar):
    name = "cifar10"
    title = "CIFAR-10"
    test_part_name = "test_batch"
    base_folder = "cifar-10-batches-py"
    files = tuple(f"data_batch_{index}" for index in range(1, 6)) + ("test_batch", "batches.meta")
    archive = "cifar-10-python.tar.gz"

    @staticmethod
    def torchvision_class():
        from torchvision.datasets import CIFAR10

        return CIFAR10


class Cifar100(_Cifar):
    name = "cifar100"
    title = "CIFAR-100"
    test_part_name = "test"
    base_folder = "cifar-100-python"
    files = ("train", "test", "meta")
    archive = "cifar-100-python.tar.gz"

    @staticmethod
    def torchvision_class():
        from torchvision.datasets import CIFAR100

        return CIFAR100
