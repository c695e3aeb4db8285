"""Image folders: any torchvision ImageFolder tree, and Tiny-ImageNet's tiny-imagenet-200 layout.

Only the catalog (paths and labels) is built up front; pixels are decoded for the images asked
for. Folder trees are sorted by class, so the catalog lists each part round-robin over the
classes: any prefix (data.max_images) covers the classes evenly."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from gradienthide.sources.base import Catalog, Source, root_of, round_robin, square

if TYPE_CHECKING:  # torch is imported where images are read, not by the config check
    import torch


def _decoder(paths: list[str], size: int):
    """read(indices): the images at those paths as uint8 NCHW, RGB, each brought to size x size
    (its central square, resized) when it is not already."""
    import torch
    from torchvision.datasets.folder import default_loader
    from torchvision.transforms.functional import pil_to_tensor

    def read(indices: torch.Tensor) -> torch.Tensor:
        out = torch.empty((len(indices), 3, size, size), dtype=torch.uint8)
        for row, index in enumerate(tqdm(indices.tolist(), desc="decoding images", unit="img", mininterval=5.0,
                                         disable=len(indices) < 5000)):
            image = pil_to_tensor(default_loader(paths[index]))  # default_loader converts to RGB
            out[row] = image if image.shape[-2:] == (size, size) else square(image, size)
        return out

    return read


def _catalog(parts: list[tuple[str, list[tuple[str, int]]]], class_names: list[str], description: str,
             size: int) -> Catalog:
    """parts: (name, [(path, label), ...]) in order; each part listed round-robin over classes."""
    import torch

    paths, labels, counts = [], [], []
    for name, samples in parts:
        order = round_robin([label for _, label in samples])
        paths += [samples[i][0] for i in order]
        labels += [samples[i][1] for i in order]
        counts.append((name, len(samples)))
    return Catalog(labels=torch.as_tensor(labels, dtype=torch.int64), class_names=class_names,
                   description=description, read=_decoder(paths, size), parts=tuple(counts))


class ImageFolderSource(Source):
    """root/<class>/**/<image> (torchvision ImageFolder: classes are the sorted folder names)."""

    name = "imagefolder"
    location = "root"

    def missing_files(self, settings: dict, key: str) -> str | None:
        root = root_of(settings)
        if not root.is_dir():
            return (f"{key}.root: directory {root} not found: expected an ImageFolder tree, one sub-directory per "
                    f"class holding its images ({root}/<class>/<image>.png|.jpg|...)")
        if not any(entry.is_dir() for entry in root.iterdir()):
            return f"{key}.root: {root} has no class sub-directories (expected {root}/<class>/<image>.png|.jpg|...)"
        return None

    def catalog(self, *, settings: dict, key: str, image_size: int) -> Catalog:
        from torchvision.datasets import ImageFolder

        self.check_files(settings, key)
        root = root_of(settings)
        try:
            folder = ImageFolder(str(root))
        except FileNotFoundError as error:  # a class folder without images
            raise FileNotFoundError(f"{key}.root: {error}") from error
        return _catalog([("all", folder.samples)], list(folder.classes), f"imagefolder:{root}", image_size)


class TinyImageNet(Source):
    """tiny-imagenet-200: train/<wnid>/images/*.JPEG, val/images/*.JPEG with val_annotations.txt,
    wnids.txt and words.txt. Classes are the sorted wnids (ImageFolder's order on train/); a
    class's name is the first synonym words.txt gives it. The unlabelled test/ part is not used.
    `root` may be the tiny-imagenet-200 directory or the directory holding it."""

    name = "tinyimagenet"
    location = "root"
    test_part = True
    test_part_name = "val/"
    FOLDER = "tiny-imagenet-200"
    URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"

    def folder(self, settings: dict) -> Path:
        root = root_of(settings)
        return root / self.FOLDER if (root / self.FOLDER).is_dir() else root

    def missing_files(self, settings: dict, key: str) -> str | None:
        folder = self.folder(settings)
        expected = ["wnids.txt", "words.txt", "train/", "val/images/", "val/val_annotations.txt"]
        missing = [name for name in expected if not (folder / name.rstrip("/")).exists()]
        if not missing:
            return None
        return (f"{key}.root: Tiny-ImageNet not found: expected the directory {folder} (or "
                f"{root_of(settings) / self.FOLDER}) with {', '.join(expected)} and train/<wnid>/images/*.JPEG "
                f"(missing: {', '.join(missing)}). Download {self.URL} and unzip it into {root_of(settings)}.")

    def catalog(self, *, settings: dict, key: str, image_size: int) -> Catalog:
        self.check_files(settings, key)
        folder = self.folder(settings)
        wnids = sorted(line.strip() for line in (folder / "wnids.txt").read_text().splitlines() if line.strip())
        index = {wnid: i for i, wnid in enumerate(wnids)}
        words = {}
        for line in (folder / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid.strip()] = text.split(",")[0].strip()
        train = []
        for wnid in wnids:
            images = sorted((folder / "train" / wnid / "images").glob("*.JPEG"))
            if not images:
                raise FileNotFoundError(f"{key}.root: no images in {folder / 'train' / wnid / 'images'} "
                                        f"(class {wnid} of wnids.txt)")
            train += [(str(path), index[wnid]) for path in images]
        val = []
        for number, line in enumerate((folder / "val" / "val_annotations.txt").read_text().splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or fields[1] not in index:
                raise ValueError(f"{folder / 'val' / 'val_annotations.txt'}:{number}: expected '<file>\\t<wnid>...' "
                                 f"with a wnid of wnids.txt, got {line!r}")
            val.append((str(folder / "val" / "images" / fields[0]), index[fields[1]]))
        class_names = [words.get(wnid, wnid) for wnid in wnids]
        return _catalog([("train", train), ("test", val)], class_names, f"tinyimagenet:{folder}", image_size)
