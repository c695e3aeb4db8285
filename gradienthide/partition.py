"""Splitting a dataset into a test set, a public pool and private client shards."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLIT_COLUMNS = ("index", "split", "client")


PARTITIONS = ("iid", "dirichlet")
HISTOGRAM_COLUMNS = ("client", "label", "class_name", "images")


def split_dataset(num_images: int, test_size: int, public_pool_size: int, num_clients: int, seed: int,
                  partition: str = "iid", *, labels=None, dirichlet_alpha: float | None = None) -> pd.DataFrame:
    """Assign every image to exactly one of: `test`, `public`, or a client's private shard.

    Returns a table with one row per image: index, split, client (-1 outside the clients).
    The public pool never overlaps any client's data: each image has one row. The test set and
    the public pool are the same for either partition of the clients (same seed).

    iid: the shuffled private images dealt into near-equal shards. dirichlet: label skew
    (`labels` needed), see `dirichlet_shards`.
    """
    if partition not in PARTITIONS:
        raise ValueError(f"data.partition: unknown partition {partition!r} (known: {', '.join(PARTITIONS)})")
    if partition == "dirichlet" and (labels is None or dirichlet_alpha is None):
        raise ValueError("data.dirichlet_alpha: the dirichlet partition needs the labels and a concentration alpha")
    private = num_images - test_size - public_pool_size
    if private < num_clients:
        raise ValueError(
            f"data: {num_images} images cannot give test_size={test_size}, public_pool_size={public_pool_size} "
            f"and at least one private image to each of num_clients={num_clients}"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_images)
    split = np.empty(num_images, dtype=object)
    client = np.full(num_images, -1, dtype=np.int64)
    split[order[:test_size]] = "test"
    split[order[test_size : test_size + public_pool_size]] = "public"
    private_indices = order[test_size + public_pool_size :]
    split[private_indices] = "client"
    if partition == "iid":
        shards = np.array_split(private_indices, num_clients)
    else:
        shards = dirichlet_shards(private_indices, np.asarray(labels)[private_indices], num_clients,
                                  dirichlet_alpha, rng)
    for client_id, shard in enumerate(shards):
        client[shard] = client_id
    return pd.DataFrame({"index": np.arange(num_images), "split": split.astype(str), "client": client})


def split_with_test_part(num_train: int, num_test: int, public_pool_size: int, num_clients: int, seed: int,
                         partition: str = "iid", *, labels=None, dirichlet_alpha: float | None = None) -> pd.DataFrame:
    """`data.test_split: source`: the first `num_train` images (the source's training part)
    split into the public pool and the clients as `split_dataset` does; the `num_test` images
    after them (the source's test part) are the test set."""
    if num_train - public_pool_size < num_clients:
        raise ValueError(f"data: the {num_train} images of the source's training part cannot give "
                         f"public_pool_size={public_pool_size} and at least one private image to each of "
                         f"num_clients={num_clients}")
    train = split_dataset(num_train, 0, public_pool_size, num_clients, seed, partition,
                          labels=None if labels is None else np.asarray(labels)[:num_train],
                          dirichlet_alpha=dirichlet_alpha)
    test = pd.DataFrame({"index": np.arange(num_train, num_train + num_test, dtype=np.int64),
                         "split": np.full(num_test, "test").astype(str), "client": np.full(num_test, -1, dtype=np.int64)})
    return pd.concat([train, test], ignore_index=True)


def dirichlet_shards(indices: np.ndarray, labels: np.ndarray, num_clients: int, alpha: float,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Label skew (as in Hsu et al., 2019 and Li et al.'s NIID-Bench, 2021): each class's images
    are divided among the clients in proportions drawn from Dirichlet(alpha, ..., alpha). Small
    alpha gives each class to few clients; large alpha approaches an even split.

    Every client gets at least one image: while a client is empty it is given one image of the
    largest shard (a bounded, deterministic repair that leaves the skew of the draw otherwise
    intact; the caller has checked there are at least `num_clients` images).
    """
    shards: list[list[int]] = [[] for _ in range(num_clients)]
    for label in np.unique(labels):
        members = indices[labels == label]
        proportions = rng.dirichlet(np.full(num_clients, float(alpha)))
        cuts = np.round(np.cumsum(proportions)[:-1] * len(members)).astype(int)
        for client_id, part in enumerate(np.split(members, cuts)):
            shards[client_id] += part.tolist()
    for empty in range(num_clients):
        if not shards[empty]:
            donor = max(range(num_clients), key=lambda c: (len(shards[c]), -c))
            shards[empty].append(shards[donor].pop())
    return [np.sort(np.asarray(shard, dtype=np.int64)) for shard in shards]


def class_histogram(splits: pd.DataFrame, labels, class_names: list[str]) -> pd.DataFrame:
    """Per client and class, the number of its private images: one row per (client, class),
    zeros included (columns client, label, class_name, images)."""
    clients = splits[splits["split"] == "client"]
    label_of = np.asarray(labels)[clients["index"].to_numpy()]
    client_ids = np.sort(clients["client"].unique())
    counts = np.zeros((len(client_ids), len(class_names)), dtype=np.int64)
    np.add.at(counts, (np.searchsorted(client_ids, clients["client"].to_numpy()), label_of), 1)
    return pd.DataFrame({
        "client": np.repeat(client_ids, len(class_names)).astype(np.int64),
        "label": np.tile(np.arange(len(class_names)), len(client_ids)).astype(np.int64),
        "class_name": np.tile(np.asarray(class_names, dtype=object), len(client_ids)).astype(str),
        "images": counts.reshape(-1),
    })


def indices_of(splits: pd.DataFrame, split: str) -> np.ndarray:
    return splits.loc[splits["split"] == split, "index"].to_numpy().copy()


def client_indices(splits: pd.DataFrame) -> dict[int, np.ndarray]:
    clients = splits[splits["split"] == "client"]
    return {int(c): group["index"].to_numpy().copy() for c, group in clients.groupby("client")}
