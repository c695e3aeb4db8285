"""Stage prepare_data: the private dataset, resized, split into test set, public pool and clients."""

from __future__ import annotations

import logging

import torch

from gradienthide import artifacts, partition
from gradienthide import data as datasets

log = logging.getLogger(__name__)


def prepare_data(*, data: dict, seed: int, dataset, splits, client_classes) -> None:
    """The prepared dataset (uint8 images; metadata: class names, source parts, the clients'
    per-channel statistics), the split table and the clients' class histogram."""
    prepared = datasets.build_dataset(data, seed=seed)
    if data.get("test_split", "holdout") == "source":  # the test set is the source's own test part
        parts = dict(prepared.parts)
        table = partition.split_with_test_part(parts["train"], parts["test"], data["public_pool_size"],
                                               data["num_clients"], seed, data.get("partition", "iid"),
                                               labels=prepared.labels.numpy(),
                                               dirichlet_alpha=data.get("dirichlet_alpha"))
    else:
        table = partition.split_dataset(len(prepared.labels), data["test_size"], data["public_pool_size"],
                                        data["num_clients"], seed, data.get("partition", "iid"),
                                        labels=prepared.labels.numpy(), dirichlet_alpha=data.get("dirichlet_alpha"))
    training_images = prepared.images[torch.as_tensor(partition.indices_of(table, "client"))]
    prepared.channel_stats = datasets.channel_stats(training_images)
    histogram = partition.class_histogram(table, prepared.labels.numpy(), prepared.class_names)
    datasets.save_dataset(dataset, prepared)
    artifacts.save_table(splits, table)
    artifacts.save_table(client_classes, histogram)
    sizes = histogram.groupby("client")["images"].sum()
    log.info("%s: %d images %s, %d classes, parts %s; %s; clients (%s) hold %d to %d images; channel mean %s, std %s",
             prepared.source, len(prepared.labels), prepared.image_shape, prepared.num_classes,
             dict(prepared.parts) or "n/a", table["split"].value_counts().to_dict(), data.get("partition", "iid"),
             sizes.min(), sizes.max(), prepared.channel_stats["mean"], prepared.channel_stats["std"])


def prepare_public(*, public: dict, dataset, pool_source, splits=None) -> None:
    """The public pool from its own source (or the private slice prepare_data set aside), in
    the private task's image shape; its true labels kept for label quality only."""
    task = datasets.load_dataset(dataset)
    private_pool = None
    if public["dataset"] == datasets.PRIVATE_SLICE:
        private_pool = partition.indices_of(artifacts.load_table(splits, partition.SPLIT_COLUMNS), "public")
    pool = datasets.build_public_pool(public=public, task=task, private_pool_indices=private_pool)
    source = task.source if public["dataset"] == datasets.PRIVATE_SLICE else public["dataset"]
    datasets.save_public_pool_source(pool_source, pool, class_names=task.class_names,
                                     source=f"{public['dataset']}:{source}")
    log.info("public pool: %d images from %s, %d with a true label in the task's classes", len(pool["images"]),
             public["dataset"], int((pool["true_labels"] >= 0).sum()))
