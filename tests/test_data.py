import numpy as np
import pytest
import torch

from gradienthide import data, partition


def test_digits_are_the_real_sklearn_images():
    digits = data.load_digits_source()
    assert digits.images.shape == (1797, 1, 8, 8) and digits.images.dtype == torch.uint8
    assert digits.num_classes == 10 and sorted(digits.labels.unique().tolist()) == list(range(10))
    assert digits.images.max() == 255


def test_build_dataset_resizes_and_limits(default_config):
    config = dict(default_config["data"], image_size=16, max_images=100)
    dataset = data.build_dataset(config)
    assert dataset.images.shape == (100, 1, 16, 16)
    assert dataset.floats().max() <= 1.0


def test_npz_dataset_reads_the_cifar_subset(cifar_subset):
    dataset = data.build_dataset({"dataset": "npz", "path": str(cifar_subset), "image_size": 32})
    assert dataset.images.shape == (6102, 3, 32, 32)
    assert dataset.class_names[6] == "frog" and int(dataset.labels[0]) == 6  # train image 0 is the frog


def test_npz_errors_name_the_file_and_array(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, pictures=np.zeros((2, 3, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"bad\.npz: expected arrays 'images' and 'labels'"):
        data.load_npz_source(path)
    np.savez(path, images=np.zeros((2, 3, 4, 4), np.float32), labels=np.zeros(2))
    with pytest.raises(ValueError, match=r"array 'images' must be uint8"):
        data.load_npz_source(path)
    with pytest.raises(FileNotFoundError, match="data.path"):
        data.load_npz_source(tmp_path / "absent.npz")


def test_npz_accepts_channels_last(tmp_path):
    path = tmp_path / "hwc.npz"
    np.savez(path, images=np.zeros((5, 6, 6, 3), np.uint8), labels=np.arange(5) % 2)
    dataset = data.load_npz_source(path)
    assert dataset.images.shape == (5, 3, 6, 6) and dataset.class_names == ["0", "1"]


def test_dataset_artifact_round_trip(tmp_path):
    dataset = data.build_dataset({"dataset": "digits", "image_size": 8, "max_images": 20})
    data.save_dataset(tmp_path / "d.safetensors", dataset)
    loaded = data.load_dataset(tmp_path / "d.safetensors")
    assert torch.equal(loaded.images, dataset.images) and loaded.class_names == dataset.class_names


def test_split_is_disjoint_complete_and_seeded():
    splits = partition.split_dataset(1797, 297, 300, 10, seed=0)
    assert len(splits) == 1797 and splits["index"].is_unique
    assert (splits["split"] == "test").sum() == 297 and (splits["split"] == "public").sum() == 300
    shards = partition.client_indices(splits)
    assert len(shards) == 10 and {len(s) for s in shards.values()} == {120}
    public = set(partition.indices_of(splits, "public"))
    assert all(public.isdisjoint(shard) for shard in shards.values())
    assert splits.equals(partition.split_dataset(1797, 297, 300, 10, seed=0))
    assert not splits.equals(partition.split_dataset(1797, 297, 300, 10, seed=1))


def test_split_refuses_impossible_sizes():
    with pytest.raises(ValueError, match="num_clients=10"):
        partition.split_dataset(100, 50, 45, 10, seed=0)
