"""Stage prepare_data: the private dataset, resized, split into test set, public pool and clients."""

from __future__ import annotations

import logging

from gradienthide import artifacts, data as datasets, partition

log = logging.getLogger(__name__)


def prepare_data(*, data: dict, seed: int, dataset, splits) -> None:
    prepared = datasets.build_dataset(data)
    table = partition.split_dataset(len(prepared.labels), data["test_size"], data["public_pool_size"],
                                    data["num_clients"], seed, data.get("partition", "iid"))
    datasets.save_dataset(dataset, prepared)
    artifacts.save_table(splits, table)
    log.info("%s: %d images %s, %d classes; %s", prepared.source, len(prepared.labels), prepared.image_shape,
             prepared.num_classes, table["split"].value_counts().to_dict())


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
