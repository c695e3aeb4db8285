"""Dataset sources by name (`data.dataset`, `public.dataset`): one file each behind one small
interface (gradienthide.sources.base.Source), mapped here from the config's names."""

from __future__ import annotations

from gradienthide.sources.base import Catalog, ImageDataset, Source, resize
from gradienthide.sources.cifar import Cifar10, Cifar100
from gradienthide.sources.digits import Digits
from gradienthide.sources.folders import ImageFolderSource, TinyImageNet
from gradienthide.sources.npz import Npz

SOURCES: dict[str, Source] = {source.name: source for source in
                              (Digits(), Npz(), Cifar10(), Cifar100(), TinyImageNet(), ImageFolderSource())}


def get(name: str, key: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"{key}.dataset: unknown source {name!r} (known: {', '.join(SOURCES)})")
    return SOURCES[name]


def catalog(*, dataset: str, settings: dict, key: str, image_size: int) -> Catalog:
    """The catalog of the source `dataset`, configured by `settings` (the config block named `key`)."""
    return get(dataset, key).catalog(settings=settings, key=key, image_size=image_size)


def settings_problems(settings: dict, key: str) -> list[str]:
    """Config keys that contradict the source: a missing or stray path/root, download where it
    cannot be done."""
    source = get(settings["dataset"], key)
    name = settings["dataset"]
    problems = []
    for location in ("path", "root"):
        given = settings.get(location) is not None
        if source.location == location and not given:
            problems.append(f"{key}.{location}: required when {key}.dataset is {name!r}")
        elif source.location != location and given:
            users = ", ".join(n for n, s in SOURCES.items() if s.location == location)
            problems.append(f"{key}.{location}: only for {key}.dataset: {users} (not {name!r}); drop it")
    if settings.get("download") and not source.downloadable:
        able = ", ".join(n for n, s in SOURCES.items() if s.downloadable)
        problems.append(f"{key}.download: {name!r} cannot be downloaded (only {able}); put its files at {key}.root "
                        f"and set {key}.download: false")
    if settings.get("test_split") == "source" and source.test_part is False:
        having = ", ".join(f"{n} ({s.test_part_name})" for n, s in SOURCES.items() if s.test_part is not False)
        problems.append(f"{key}.test_split: source takes the test set from the dataset's own test part, but "
                        f"{key}.dataset {name!r} has none; set {key}.test_split: holdout ({key}.test_size images "
                        f"held out at random), or use a source with a test part: {having}")
    return problems


def check_files(settings: dict, key: str) -> None:
    """Before any job: raise FileNotFoundError naming the directory and the files expected
    (ValueError when `test_split: source` needs a test part the file does not have)."""
    source = get(settings["dataset"], key)
    source.check_files(settings, key)
    problem = source.test_part_problem(settings, key) if settings.get("test_split") == "source" else None
    if problem:
        raise ValueError(problem)


__all__ = ["SOURCES", "Catalog", "ImageDataset", "Source", "catalog", "check_files", "get", "resize",
           "settings_problems"]
