"""Dataset sources by name, each loaded from files generated here in its own on-disk format."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from gradienthide import artifacts, data, partition, sources
from gradienthide import config as gh_config
from gradienthide.sources.base import round_robin


def write_cifar(root, *, hundred=False, per_batch=4, test=5, seed=0):
    """A CIFAR directory in torchvision's format (python pickles, as the official archive has them),
    with random images; returns (train images NCHW, train labels, test images, test labels)."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    classes = 100 if hundred else 10
    label_key = "fine_labels" if hundred else "labels"

    def batch(name, count):
        images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, classes, count).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": images.reshape(count, -1), label_key: labels}, handle)
        return images, labels

    train_names = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    train = [batch(name, per_batch * (5 if hundred else 1)) for name in train_names]
    test_images, test_labels = batch("test" if hundred else "test_batch", test)
    names = [f"class_{i}" for i in range(classes)]
    with open(folder / ("meta" if hundred else "batches.meta"), "wb") as handle:
        pickle.dump({"fine_label_names" if hundred else "label_names": names}, handle)
    return (np.concatenate([i for i, _ in train]), [label for _, labels in train for label in labels], test_images,
            test_labels)


@pytest.fixture
def unchecked_cifar_md5(monkeypatch):
    """Generated files cannot have the official archive's md5 sums, which torchvision checks; for
    them, and only in these tests, the sums are set to None (torchvision then checks existence only)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    for cls in (CIFAR10, CIFAR100):
        monkeypatch.setattr(cls, "train_list", [[name, None] for name, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[name, None] for name, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})


def test_every_configured_name_is_a_source(repo):
    schema = gh_config.load_schema()
    assert set(schema["properties"]["data"]["properties"]["dataset"]["enum"]) == set(sources.SOURCES)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_loads_train_then_test_through_torchvision(tmp_path, unchecked_cifar_md5, hundred):
    train_images, train_labels, test_images, test_labels = write_cifar(tmp_path, hundred=hundred)
    name = "cifar100" if hundred else "cifar10"
    dataset = data.build_dataset({"dataset": name, "root": str(tmp_path), "image_size": 32})
    assert dataset.images.dtype == torch.uint8 and dataset.images.shape == (25, 3, 32, 32)
    assert dataset.parts == (("train", 20), ("test", 5))
    assert torch.equal(dataset.images, torch.from_numpy(np.concatenate([train_images, test_images])))
    assert dataset.labels.tolist() == train_labels + test_labels
    assert dataset.class_names[3] == "class 3" and dataset.num_classes == (100 if hundred else 10)
    limited = data.build_dataset({"dataset": name, "root": str(tmp_path), "image_size": 16, "max_images": 22})
    assert limited.images.shape == (22, 3, 16, 16) and limited.parts == (("train", 20), ("test", 2))


def test_cifar_files_failing_the_official_md5_are_refused(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(RuntimeError, match=r"data\.root: the CIFAR-10 files in .*cifar-10-batches-py fail torchvision's md5"):
        data.build_dataset({"dataset": "cifar10", "root": str(tmp_path), "image_size": 32})


def test_missing_cifar_root_names_the_directory_the_files_and_the_fix(tmp_path, default_config):
    absent = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as error:
        data.build_dataset({"dataset": "cifar10", "root": str(absent), "image_size": 32})
    message = str(error.value)
    assert f"data.root: CIFAR-10 not found: expected the directory {absent / 'cifar-10-batches-py'}" in message
    assert "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta" in message
    assert "cifar-10-python.tar.gz" in message and "data.download: true" in message
    # the same check stops a run before any job
    config = dict(default_config, data={**default_config["data"], "dataset": "cifar100", "root": str(absent)})
    config["labels"] = {**config["labels"], "simulated_clip": {"reference": "cifar100"}}
    with pytest.raises(FileNotFoundError, match=rf"data\.root: CIFAR-100 not found: expected the directory "
                                                rf"{absent / 'cifar-100-python'} .*\(missing: train, test, meta\)"):
        gh_config.preflight(gh_config.validate_config(config))


def test_partial_cifar_directory_lists_what_is_missing(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"\(missing: data_batch_3\)"):
        sources.check_files({"dataset": "cifar10", "root": str(tmp_path)}, "data")


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_file_names_checked_before_any_job_are_torchvisions(name):
    """The file check runs while Snakemake parses, without torchvision; its names must be the
    ones torchvision then reads."""
    source = sources.get(name, "data")
    tv = source.torchvision_class()
    assert source.base_folder == tv.base_folder
    assert sorted(source.expected_files()) == sorted([file for file, _ in tv.train_list + tv.test_list]
                                                     + [tv.meta["filename"]])
    assert source.archive == tv.filename


def write_png(path, colour, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_imagefolder_reads_any_tree_squares_and_interleaves_classes(tmp_path):
    colours = {"cat": (200, 10, 10), "dog": (10, 200, 10), "owl": (10, 10, 200)}
    for name, colour in colours.items():
        for i in range(3 if name != "owl" else 1):
            write_png(tmp_path / name / f"{i}.png", colour, (12, 8) if i == 1 else (8, 8))
    # a grey image and a non-square one: converted to RGB, central square resized
    Image.new("L", (8, 8), 77).save(tmp_path / "owl" / "grey.png")
    dataset = data.build_dataset({"dataset": "imagefolder", "root": str(tmp_path), "image_size": 4})
    assert dataset.class_names == ["cat", "dog", "owl"]
    assert dataset.images.shape == (8, 3, 4, 4) and dataset.parts == (("all", 8),)
    assert dataset.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # round-robin over the classes
    for image, label in zip(dataset.images, dataset.labels.tolist()):
        expected = (77, 77, 77) if image[0, 0, 0] == 77 else colours[dataset.class_names[label]]
        assert torch.equal(image, torch.tensor(expected, dtype=torch.uint8).view(3, 1, 1).expand(3, 4, 4))
    first = data.build_dataset({"dataset": "imagefolder", "root": str(tmp_path), "image_size": 4, "max_images": 3})
    assert first.labels.tolist() == [0, 1, 2]


def test_imagefolder_errors_name_the_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"data\.root: directory {tmp_path / 'absent'} not found"):
        sources.check_files({"dataset": "imagefolder", "root": str(tmp_path / "absent")}, "data")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"public\.root: .*empty has no class sub-directories"):
        sources.check_files({"dataset": "imagefolder", "root": str(tmp_path / "empty")}, "public")


def write_tiny_imagenet(root):
    """A tiny tiny-imagenet-200 tree: 3 classes, 2 training and 1 or 2 validation JPEGs each."""
    folder = root / "tiny-imagenet-200"
    wnids = ["n02", "n01", "n03"]  # wnids.txt is not sorted in the real archive either
    colours = {"n01": (250, 0, 0), "n02": (0, 250, 0), "n03": (0, 0, 250)}
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (folder / "words.txt").write_text("n01\tgoldfish, Carassius auratus\nn02\tEuropean fire salamander\n"
                                      "n03\tbullfrog, Rana catesbeiana\nn99\tunused\n")
    for wnid in wnids:
        (folder / "train" / wnid / "images").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (64, 64), colours[wnid]).save(folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("ignored\n")
    annotations = []
    for i, wnid in enumerate(["n03", "n01", "n03", "n02"]):
        Image.new("RGB", (64, 64), colours[wnid]).save(folder / "val" / "images" / f"val_{i}.JPEG")
        annotations.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")
    return colours


def test_tinyimagenet_reads_train_and_val_with_class_names(tmp_path):
    colours = write_tiny_imagenet(tmp_path)
    dataset = data.build_dataset({"dataset": "tinyimagenet", "root": str(tmp_path), "image_size": 64})
    assert dataset.class_names == ["goldfish", "European fire salamander", "bullfrog"]  # sorted wnids
    assert dataset.images.shape == (10, 3, 64, 64) and dataset.parts == (("train", 6), ("test", 4))
    assert dataset.labels.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2, 2]  # each part round-robin over classes
    by_class = {0: colours["n01"], 1: colours["n02"], 2: colours["n03"]}
    for image, label in zip(dataset.images, dataset.labels.tolist()):  # JPEG: close, not exact
        assert (image.float().mean(dim=(1, 2)) - torch.tensor(by_class[label])).abs().max() < 8
    # the directory holding tiny-imagenet-200, or that directory itself
    inner = data.build_dataset({"dataset": "tinyimagenet", "root": str(tmp_path / "tiny-imagenet-200"),
                                "image_size": 16, "max_images": 3})
    assert inner.images.shape == (3, 3, 16, 16) and inner.labels.tolist() == [0, 1, 2]


def test_missing_tinyimagenet_names_the_files_expected(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        data.build_dataset({"dataset": "tinyimagenet", "root": str(tmp_path), "image_size": 64})
    message = str(error.value)
    assert f"data.root: Tiny-ImageNet not found: expected the directory {tmp_path}" in message
    assert "wnids.txt, words.txt, train/, val/images/, val/val_annotations.txt" in message
    assert "tiny-imagenet-200.zip" in message


def test_a_folder_source_as_public_pool_is_resized_to_the_task(tmp_path):
    write_tiny_imagenet(tmp_path)
    task = data.build_dataset({"dataset": "digits", "image_size": 8, "max_images": 20})
    pool = data.build_public_pool(public={"dataset": "tinyimagenet", "root": str(tmp_path), "size": 4, "seed": 1},
                                  task=task)
    assert pool["images"].shape == (4, 1, 8, 8) and pool["images"].dtype == torch.uint8
    assert (pool["true_labels"] == -1).all()  # no Tiny-ImageNet class is a digit
    assert len(set(pool["source_index"].tolist())) == 4


def test_channel_stats_are_the_pixels_mean_and_std_in_unit_range():
    images = torch.randint(0, 256, (50, 3, 5, 7), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    stats = data.channel_stats(images, chunk=7)  # chunked: the same as all at once
    floats = images.double() / 255
    assert np.allclose(stats["mean"], floats.mean(dim=(0, 2, 3)).tolist(), atol=1e-6)
    assert np.allclose(stats["std"], floats.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False).tolist(),
                       atol=1e-6)
    assert stats["images"] == 50


def test_dataset_artifact_keeps_parts_and_channel_stats(tmp_path):
    dataset = data.build_dataset({"dataset": "digits", "image_size": 8, "max_images": 20})
    dataset.channel_stats = data.channel_stats(dataset.images)
    data.save_dataset(tmp_path / "d.safetensors", dataset)
    loaded = data.load_dataset(tmp_path / "d.safetensors")
    assert loaded.channel_stats == dataset.channel_stats and len(loaded.channel_stats["mean"]) == 1


def test_round_robin_cycles_through_the_classes():
    assert round_robin([0, 0, 0, 1, 2, 2]) == [0, 3, 4, 1, 5, 2]


def test_source_keys_are_checked_against_the_source(default_config):
    def problems(**data):
        config = dict(default_config, data={**default_config["data"], **data})
        with pytest.raises(gh_config.ConfigError) as error:
            gh_config.validate_config(config)
        return str(error.value)

    assert "data.root: required when data.dataset is 'cifar10'" in problems(dataset="cifar10")
    assert "data.root: only for data.dataset: cifar10, cifar100, tinyimagenet, imagefolder" in problems(root="/x")
    assert "data.download: 'imagefolder' cannot be downloaded (only cifar10, cifar100)" in problems(
        dataset="imagefolder", root="/x", download=True)


# --- data.test_split: the source's own test part as the test set ----------------------------

def _prepare(tmp_path, name, **data_settings):
    """prepare_data's outputs under tmp_path/name: the prepared dataset and the split table."""
    from gradienthide.stages.data import prepare_data

    out = tmp_path / name
    out.mkdir()
    settings = {"image_size": 32, "public_pool_size": 4, "num_clients": 4, "max_images": None, **data_settings}
    prepare_data(data=settings, seed=3, dataset=out / "dataset.safetensors", splits=out / "splits.parquet",
                 client_classes=out / "classes.parquet")
    return (data.load_dataset(out / "dataset.safetensors"),
            artifacts.load_table(out / "splits.parquet", partition.SPLIT_COLUMNS), out)


def _split_images(prepared, splits, split):
    indices = torch.as_tensor(partition.indices_of(splits, split))
    return prepared.images[indices], prepared.labels[indices].tolist()


@pytest.mark.parametrize("hundred", [False, True])
def test_source_test_split_is_exactly_the_cifar_test_set(tmp_path, unchecked_cifar_md5, hundred):
    train_images, train_labels, test_images, test_labels = write_cifar(tmp_path, hundred=hundred, test=7)
    where = {"dataset": "cifar100" if hundred else "cifar10", "root": str(tmp_path)}
    prepared, splits, _ = _prepare(tmp_path, "whole", **where, test_split="source", test_size=None)
    images, labels = _split_images(prepared, splits, "test")
    assert torch.equal(images, torch.from_numpy(test_images)) and labels == list(test_labels)
    # the clients and the public slice draw from the training part only, all of it
    for split in ("client", "public"):
        images, labels = _split_images(prepared, splits, split)
        rows = [np.flatnonzero((train_images == image.numpy()).all(axis=(1, 2, 3))) for image in images]
        assert all(len(r) == 1 for r in rows) and [train_labels[r[0]] for r in rows] == labels
    assert (splits["split"] != "test").sum() == len(train_labels) and prepared.parts == (("train", 20), ("test", 7))

    # a number: that many of the test images, seeded, in the source's order; max_images cuts the training part
    some, some_splits, _ = _prepare(tmp_path, "some", **where, test_split="source", test_size=3, max_images=10)
    images, labels = _split_images(some, some_splits, "test")
    rows = [int(np.flatnonzero((test_images == image.numpy()).all(axis=(1, 2, 3)))[0]) for image in images]
    assert len(set(rows)) == 3 and rows == sorted(rows) and labels == [test_labels[r] for r in rows]
    assert some.parts == (("train", 10), ("test", 3)) and torch.equal(some.images[:10], torch.from_numpy(train_images[:10]))
    again, _, _ = _prepare(tmp_path, "again", **where, test_split="source", test_size=3, max_images=10)
    assert torch.equal(again.images, some.images)


def test_holdout_test_split_is_unchanged(tmp_path, unchecked_cifar_md5):
    """holdout (the default) draws data.test_size images from the whole source, train and test part alike."""
    train_images, _, test_images, _ = write_cifar(tmp_path, test=7)
    where = {"dataset": "cifar10", "root": str(tmp_path), "test_size": 5}
    prepared, splits, implicit = _prepare(tmp_path, "implicit", **where)
    assert torch.equal(prepared.images, torch.from_numpy(np.concatenate([train_images, test_images])))
    assert splits.equals(partition.split_dataset(27, 5, 4, 4, seed=3))
    _, _, explicit = _prepare(tmp_path, "explicit", **where, test_split="holdout")
    for name in ("dataset.safetensors", "splits.parquet", "classes.parquet"):
        assert (implicit / name).read_bytes() == (explicit / name).read_bytes()


def test_source_test_split_of_an_npz_is_its_test_arrays(tmp_path):
    rng = np.random.default_rng(5)
    train, test = rng.integers(0, 256, (30, 1, 8, 8), dtype=np.uint8), rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, train_images=train, train_labels=np.arange(30) % 3, test_images=test,
             test_labels=np.array([2, 1, 0, 2, 1, 0]))
    prepared, splits, _ = _prepare(tmp_path, "npz", dataset="npz", path=str(path), image_size=8,
                                   test_split="source", test_size=None)
    images, labels = _split_images(prepared, splits, "test")
    assert torch.equal(images, torch.from_numpy(test)) and labels == [2, 1, 0, 2, 1, 0]
    training = np.concatenate([partition.indices_of(splits, "client"), partition.indices_of(splits, "public")])
    assert sorted(training.tolist()) == list(range(30))


def test_source_test_split_is_refused_for_sources_without_a_test_part(default_config, tmp_path):
    for dataset, extra in (("digits", {}), ("imagefolder", {"root": str(tmp_path)})):
        config = dict(default_config, data={**default_config["data"], "dataset": dataset, "test_split": "source",
                                            **extra})
        with pytest.raises(gh_config.ConfigError, match=rf"data\.test_split: source takes the test set from the "
                                                        rf"dataset's own test part, but data\.dataset '{dataset}' has "
                                                        r"none; set data\.test_split: holdout"):
            gh_config.validate_config(config)
    # an npz decides by its arrays: checked with the files, before any job
    np.savez(tmp_path / "all.npz", images=np.zeros((4, 1, 8, 8), np.uint8), labels=np.arange(4) % 2)
    with pytest.raises(ValueError, match=r"data\.test_split: source .* data\.path .*all\.npz has no arrays "
                                         r"train_images, train_labels, test_images and test_labels \(found: images, "
                                         r"labels\)"):
        sources.check_files({"dataset": "npz", "path": str(tmp_path / "all.npz"), "test_split": "source"}, "data")
