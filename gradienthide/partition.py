"""Splitting a dataset into a test set, a public pool and private client shards."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLIT_COLUMNS = ("index", "split", "client")


def split_dataset(num_images: int, test_size: int, public_pool_size: int, num_clients: int, seed: int,
                  partition: str = "iid") -> pd.DataFrame:
    """Assign every image to exactly one of: `test`, `public`, or a client's private shard.

    Returns a table with one row per image: index, split, client (-1 outside the clients).
    The public pool never overlaps any client's data: each image has one row.
    """
    if partition != "iid":
        raise ValueError(f"data.partition: unknown partition {partition!r} (known: iid)")
    private = num_images - test_size - public_pool_size
    if private < num_clients:
        raise ValueError(
            f"data: {num_images} images cannot give test_size={test_size}, public_pool_size={public_pool_size} "
            f"and at least one private image to each of num_clients={num_clients}"
        )
    order = np.random.default_rng(seed).permutation(num_images)
    split = np.empty(num_images, dtype=object)
    client = np.full(num_images, -1, dtype=np.int64)
    split[order[:test_size]] = "test"
    split[order[test_size : test_size + public_pool_size]] = "public"
    private_indices = order[test_size + public_pool_size :]
    split[private_indices] = "client"
    # IID: the shuffled private images dealt into near-equal contiguous shards.
    for client_id, shard in enumerate(np.array_split(private_indices, num_clients)):
        client[shard] = client_id
    return pd.DataFrame({"index": np.arange(num_images), "split": split.astype(str), "client": client})


def indices_of(splits: pd.DataFrame, split: str) -> np.ndarray:
    return splits.loc[splits["split"] == split, "index"].to_numpy().copy()


def client_indices(splits: pd.DataFrame) -> dict[int, np.ndarray]:
    clients = splits[splits["split"] == "client"]
    return {int(c): group["index"].to_numpy().copy() for c, group in clients.groupby("client")}
