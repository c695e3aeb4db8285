"""Clients' data: IID or Dirichlet label skew, the class histogram artifact and its figure."""

import numpy as np
import pandas as pd
import pytest
from conftest import planned_jobs, run_snakemake, write_config

from gradienthide import artifacts, data, partition
from gradienthide.config import ConfigError, validate_config
from gradienthide.stages.data import prepare_data
from gradienthide.stages.report import client_classes_figure

DIGITS = data.load_digits_source().labels.numpy()  # 1,797 real labels, 10 classes


def dirichlet(alpha, seed=0, clients=10, labels=DIGITS):
    return partition.split_dataset(len(labels), 297, 300, clients, seed, "dirichlet", labels=labels,
                                   dirichlet_alpha=alpha)


def class_shares(splits, labels=DIGITS) -> pd.DataFrame:
    """Each client's class distribution, from the split table (rows clients, columns classes)."""
    clients = splits[splits["split"] == "client"]
    counts = pd.crosstab(clients["client"], labels[clients["index"].to_numpy()])
    return counts.div(counts.sum(axis=1), axis=0)


def mean_distance_to_global(splits, labels=DIGITS) -> float:
    """Mean total-variation distance between a client's class distribution and all clients' one."""
    clients = splits[splits["split"] == "client"]
    overall = pd.Series(labels[clients["index"].to_numpy()]).value_counts(normalize=True).sort_index()
    shares = class_shares(splits, labels).reindex(columns=overall.index, fill_value=0)
    return float((shares - overall).abs().sum(axis=1).mean() / 2)


def test_small_alpha_skews_labels_and_large_alpha_is_near_uniform():
    skewed, even = dirichlet(0.1), dirichlet(1000.0)
    iid = partition.split_dataset(len(DIGITS), 297, 300, 10, 0)
    assert mean_distance_to_global(skewed) > 0.5  # most of a client's images outside its share
    assert mean_distance_to_global(even) < 0.1
    assert mean_distance_to_global(even) < 2 * mean_distance_to_global(iid) + 0.02
    assert class_shares(skewed).max(axis=1).mean() > 0.5  # a dominant class per client
    # test set and public pool do not depend on the partition
    for split in ("test", "public"):
        assert np.array_equal(partition.indices_of(skewed, split), partition.indices_of(iid, split))


def test_dirichlet_is_seeded():
    assert dirichlet(0.5, seed=3).equals(dirichlet(0.5, seed=3))
    assert not dirichlet(0.5, seed=3).equals(dirichlet(0.5, seed=4))


def test_every_client_gets_an_image_even_when_the_draw_leaves_some_empty():
    splits = dirichlet(0.001, clients=60)
    shards = partition.client_indices(splits)
    assert sorted(shards) == list(range(60)) and min(len(s) for s in shards.values()) >= 1
    assert sum(len(s) == 1 for s in shards.values()) > 0  # the repair was needed here
    assert sum(len(s) for s in shards.values()) == 1797 - 297 - 300
    # as many clients as private images: one each
    one_each = partition.split_dataset(30, 5, 5, 20, 0, "dirichlet", labels=np.arange(30) % 3, dirichlet_alpha=0.01)
    assert {len(s) for s in partition.client_indices(one_each).values()} == {1}


def test_dirichlet_needs_labels_and_alpha():
    with pytest.raises(ValueError, match="data.dirichlet_alpha"):
        partition.split_dataset(100, 10, 10, 4, 0, "dirichlet", labels=np.zeros(100, dtype=int))
    with pytest.raises(ValueError, match="data.partition: unknown partition 'shards'"):
        partition.split_dataset(100, 10, 10, 4, 0, "shards")


def test_prepare_data_writes_histogram_matching_splits_and_channel_stats(tmp_path):
    settings = {"dataset": "digits", "image_size": 8, "test_size": 100, "public_pool_size": 60, "num_clients": 6,
                "max_images": 400, "partition": "dirichlet", "dirichlet_alpha": 0.3}
    out = {"dataset": tmp_path / "d.safetensors", "splits": tmp_path / "s.parquet",
           "client_classes": tmp_path / "c.parquet"}
    prepare_data(data=settings, seed=0, **out)
    splits = artifacts.load_table(out["splits"], partition.SPLIT_COLUMNS)
    histogram = artifacts.load_table(out["client_classes"], partition.HISTOGRAM_COLUMNS)
    prepared = data.load_dataset(out["dataset"])
    clients = splits[splits["split"] == "client"]
    expected = pd.crosstab(clients["client"], prepared.labels.numpy()[clients["index"].to_numpy()])
    grid = histogram.pivot(index="client", columns="label", values="images")
    assert grid.shape == (6, 10) and (grid.reindex_like(expected) == expected).all().all()
    assert (grid.loc[:, ~grid.columns.isin(expected.columns)] == 0).all().all()  # classes a client lacks: 0
    assert histogram.drop_duplicates("label")["class_name"].tolist() == data.DIGIT_NAMES
    # the clients' images' per-channel statistics, in [0, 1] units
    images = prepared.floats(clients["index"].to_numpy()).double()
    stats = prepared.channel_stats
    assert np.allclose(stats["mean"], [images.mean().item()], atol=1e-6)
    assert np.allclose(stats["std"], [images.std(unbiased=False).item()], atol=1e-6)
    assert stats["images"] == len(clients)
    # and the figure of the histogram, deterministic
    for name in ("a.png", "b.png"):
        client_classes_figure(client_classes=out["client_classes"], partition="dirichlet", dirichlet_alpha=0.3,
                              client_classes_figure=tmp_path / name)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_iid_histogram_counts_every_client_image(tmp_path):
    splits = partition.split_dataset(len(DIGITS), 297, 300, 10, 0)
    histogram = partition.class_histogram(splits, DIGITS, data.DIGIT_NAMES)
    assert histogram.groupby("client")["images"].sum().tolist() == [120] * 10
    assert histogram.groupby("label")["images"].sum().tolist() == np.bincount(
        DIGITS[partition.indices_of(splits, "client")], minlength=10).tolist()


def test_config_check_pairs_alpha_with_dirichlet(default_config):
    def error_of(**changes):
        config = dict(default_config, data={**default_config["data"], **changes})
        with pytest.raises(ConfigError) as error:
            validate_config(config)
        return str(error.value)

    assert "data.dirichlet_alpha: required with data.partition: dirichlet" in error_of(partition="dirichlet")
    assert "data.dirichlet_alpha=0.5: only for data.partition: dirichlet" in error_of(dirichlet_alpha=0.5)
    assert "data.dirichlet_alpha: 0 is less than or equal to the minimum of 0" in error_of(
        partition="dirichlet", dirichlet_alpha=0)
    config = dict(default_config, data={**default_config["data"], "partition": "dirichlet", "dirichlet_alpha": 0.5})
    assert validate_config(config)["data"]["dirichlet_alpha"] == 0.5


def test_dry_run_of_the_tiny_config_with_dirichlet_clients(tmp_path, repo, tiny_config):
    tiny_config["data"].update(partition="dirichlet", dirichlet_alpha=0.5)
    tiny_config["metrics"]["lpips"] = False
    config_file = write_config(tmp_path / "config.yaml", tiny_config)
    result = run_snakemake(repo, tmp_path, config_file, "--dry-run")
    rules = {rule for rule, _ in planned_jobs(result.stdout)}
    assert {"prepare_data", "client_classes_figure", "train", "attack", "all"} <= rules
    assert "results/data/client_classes.parquet" in result.stdout
