"""Stage label_public_pool: the public pool's labels in the task's classes, and the pool itself."""

from __future__ import annotations

import logging

import torch

from gradienthide import artifacts, clip_labels, data, partition

log = logging.getLogger(__name__)


def label_public_pool(*, labels: dict, dataset, splits, public_labels, public_pool, device="cpu") -> None:
    """Label the public pool; also write its images with those labels, the public artifact
    that attackers may read (the dataset file holds private images too)."""
    prepared = data.load_dataset(dataset)
    pool = partition.indices_of(artifacts.load_table(splits, partition.SPLIT_COLUMNS), "public")
    if labels["labeler"] == "oracle":
        table = clip_labels.oracle_labels(pool, prepared.labels[pool])
    else:
        table = clip_labels.clip_labels(pool, prepared.floats(pool), prepared.class_names, labels["clip"], str(device))
        agreement = float((table["label"].to_numpy() == prepared.labels[pool].numpy()).mean())
        log.info("CLIP zero-shot labels agree with the true labels on %.1f%% of the pool", 100 * agreement)
    artifacts.save_table(public_labels, table)
    artifacts.save_tensors(public_pool, {"images": prepared.images[pool],
                                         "labels": torch.tensor(table["label"].to_numpy(copy=True))},
                           metadata={"labeler": str(table["labeler"].iloc[0])})
