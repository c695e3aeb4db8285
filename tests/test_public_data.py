"""The public pool's source: the private slice as before, or a source of its own, labelled into
the private task's classes; and the config checks that keep the two apart."""

import copy

import numpy as np
import pytest
import torch

from gradienthide import artifacts, data, partition
from gradienthide import config as gh_config
from gradienthide.stages.data import prepare_public
from gradienthide.stages.labels import label_public


def _task(tmp_path, *, class_names=None, channels=1, image_size=8):
    """A saved private task: 30 digit images, optionally as RGB and with other class names."""
    source = data.load_digits_source()
    images = data.resize(data.match_channels(source.images[:30], channels), image_size)
    task = data.ImageDataset(images, source.labels[:30], class_names or list(data.DIGIT_NAMES), "task")
    data.save_dataset(tmp_path / "task.safetensors", task)
    return task


def test_private_slice_is_the_slice_prepare_data_set_aside(tmp_path):
    task = _task(tmp_path)
    artifacts.save_table(tmp_path / "s.parquet", partition.split_dataset(30, 5, 10, 2, seed=0))
    prepare_public(public={"dataset": "private_slice"}, dataset=tmp_path / "task.safetensors",
                   splits=tmp_path / "s.parquet", pool_source=tmp_path / "pool.safetensors")
    pool, names, source = data.load_public_pool_source(tmp_path / "pool.safetensors")
    expected = partition.indices_of(partition.split_dataset(30, 5, 10, 2, seed=0), "public")
    assert pool["source_index"].tolist() == expected.tolist()
    assert torch.equal(pool["images"], task.images[expected]) and torch.equal(pool["true_labels"], task.labels[expected])
    assert names == list(data.DIGIT_NAMES) and source.startswith("private_slice")


def test_an_own_source_has_its_size_seed_and_the_tasks_image_shape(tmp_path):
    _task(tmp_path, channels=3, image_size=12)
    public = {"dataset": "digits", "size": 50, "seed": 3}
    prepare_public(public=public, dataset=tmp_path / "task.safetensors", pool_source=tmp_path / "a.safetensors")
    prepare_public(public={**public, "seed": 4}, dataset=tmp_path / "task.safetensors", pool_source=tmp_path / "b.safetensors")
    a, _, source = data.load_public_pool_source(tmp_path / "a.safetensors")
    b, _, _ = data.load_public_pool_source(tmp_path / "b.safetensors")
    assert a["images"].shape == (50, 3, 12, 12) and a["images"].dtype == torch.uint8 and source == "digits:digits"
    assert a["source_index"].tolist() != b["source_index"].tolist()
    digits = data.load_digits_source()
    assert torch.equal(a["true_labels"], digits.labels[a["source_index"]])  # same class names: same labels
    with pytest.raises(ValueError, match="public.size: 5000 exceeds"):
        data.build_public_pool(public={"dataset": "digits", "size": 5000}, task=data.load_dataset(tmp_path / "task.safetensors"))


def test_an_npz_source_is_labelled_into_the_tasks_classes_by_name(tmp_path):
    _task(tmp_path, class_names=["zero", "one", "two", "3", "4", "5", "6", "7", "8", "nine"])
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "public.npz", images=rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8),
             labels=np.arange(12) % 4, class_names=np.array(["one", "cat", "nine", "dog"]))
    prepare_public(public={"dataset": "npz", "path": str(tmp_path / "public.npz")}, dataset=tmp_path / "task.safetensors",
                   pool_source=tmp_path / "pool.safetensors")
    pool, _, _ = data.load_public_pool_source(tmp_path / "pool.safetensors")
    assert pool["images"].shape == (12, 1, 8, 8)  # RGB to the task's grey
    assert pool["true_labels"].tolist() == [1, -1, 9, -1] * 3
    # without true labels for every image, the simulated labeler refuses, naming the fix
    with pytest.raises(ValueError, match="simulated_clip needs the pool's true labels"):
        label_public(labels={"labeler": "simulated_clip", "simulated_clip": {"accuracy": 0.7}}, dataset="npz",
                     pool_source=tmp_path / "pool.safetensors", pool_labels=tmp_path / "l.parquet")
    with pytest.raises(ValueError, match="oracle needs the pool's true labels"):
        label_public(labels={"labeler": "oracle"}, dataset="npz", pool_source=tmp_path / "pool.safetensors",
                     pool_labels=tmp_path / "l.parquet")


def _check(config, match):
    with pytest.raises(gh_config.ConfigError, match=match):
        gh_config.validate_config(config)


def test_config_checks_name_the_key(default_config):
    config = copy.deepcopy(default_config)
    config["public"] = {"dataset": "digits"}
    _check(config, r"data.public_pool_size=300: with public.dataset: digits .* set it to 0")
    config["data"]["public_pool_size"] = 0
    assert gh_config.validate_config(config)["public"]["size"] is None
    config["public"] = {"dataset": "npz"}
    _check(config, "public.path: required when public.dataset is 'npz'")
    config = copy.deepcopy(default_config)
    config["public"] = {"size": 100}
    _check(config, "public.size=100: the private slice's size is data.public_pool_size")
    config = copy.deepcopy(default_config)
    config["labels"]["selection"] = {"min_confidence": 0.5}
    _check(config, "labels.selection.min_confidence: the simulated_clip labeler gives no class probabilities")
    config = copy.deepcopy(default_config)
    config["data"].update(dataset="npz", path="x.npz")
    config["labels"]["simulated_clip"] = {}
    _check(config, "labels.simulated_clip.accuracy: no published CLIP accuracy")
    config["labels"]["labeler"] = "telepathy"
    _check(config, "labels.labeler")


def test_preflight_stops_a_missing_public_npz_before_any_job(default_config, tmp_path):
    config = copy.deepcopy(default_config)
    config["public"] = {"dataset": "npz", "path": str(tmp_path / "absent.npz")}
    config["data"]["public_pool_size"] = 0
    with pytest.raises(FileNotFoundError, match="public.path: public source file .*absent.npz not found"):
        gh_config.preflight(gh_config.validate_config(config))


def test_default_config_uses_the_simulated_clip_at_mnists_published_accuracy(default_config):
    config = gh_config.validate_config(default_config)
    assert config["labels"]["labeler"] == "simulated_clip" and config["public"]["dataset"] == "private_slice"
    from gradienthide import clip_labels

    assert clip_labels.simulated_accuracy(simulated=config["labels"]["simulated_clip"], dataset="digits") == (
        0.7, "simulated_clip:mnist-70.0%")


def test_an_own_source_runs_through_snakemake_to_the_label_quality_report(tmp_path, repo, tiny_config):
    from conftest import run_snakemake, write_config

    config = copy.deepcopy(tiny_config)
    config["data"]["public_pool_size"] = 0
    config["public"] = {"dataset": "digits", "size": 40, "seed": 1}
    config["labels"] = {"labeler": "simulated_clip", "selection": {"per_class": 3}}
    config["metrics"]["lpips"] = False
    config_file = write_config(tmp_path / "config.yaml", config)
    run_snakemake(repo, tmp_path, config_file, "results/report/label_quality.csv")
    splits = artifacts.load_table(tmp_path / "results/data/splits.parquet")
    assert not (splits["split"] == "public").any()  # the private data keeps no public slice
    quality = artifacts.load_table(tmp_path / "results/labels/label_quality.parquet")
    pool_row = quality[(quality["stage"] == "pool") & (quality["class"] == "all")].iloc[0]
    assert pool_row["images"] == 40 and pool_row["accuracy"] == pytest.approx(0.7)
    pool = artifacts.load_tensors(tmp_path / "results/labels/public_pool.safetensors")
    assert len(pool["images"]) <= 30 and pool["images"].shape[1:] == (1, 8, 8)
