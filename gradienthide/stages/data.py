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
