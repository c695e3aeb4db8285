"""Stage train: federated training under one defense setting, keeping what the attacks need."""

from __future__ import annotations

import json
import logging

import torch

from gradienthide import artifacts, clip_labels, config, data, dumps, partition
from gradienthide.defenses import make_defense
from gradienthide.fl import ProbeSettings, RoundSettings, run_federated
from gradienthide.models import build_model
from gradienthide.protocol import ClientProtocol

log = logging.getLogger(__name__)


def train_defense(*, run_id: str, defense_name: str, defense_params: dict, model_config: dict, training: dict,
                  seed: int, dataset, splits, accuracy, final_model, round_dirs: dict[int, str], public_labels=None,
                  public_pool=None, device="cpu", data_partition: str = "iid", probes: dict | None = None,
                  probe_dirs: dict[int, dict[int, str]] | None = None) -> None:
    """Writes the accuracy per round, the final model and, per attacked round, the files of
    gradienthide.dumps; with `probes` (attack.probes) also the probe uploads' files, in
    `probe_dirs[round][batch size]`."""
    defense = make_defense(defense_name, defense_params)
    prepared = data.load_dataset(dataset)
    split_table = artifacts.load_table(splits, partition.SPLIT_COLUMNS)
    images, labels = prepared.floats().to(device), prepared.labels.to(device)
    clients = {c: (images[idx], labels[idx]) for c, idx in partition.client_indices(split_table).items()}
    check_batch_fits(training=training, shard_sizes={c: len(y) for c, (_, y) in clients.items()},
                     data_partition=data_partition, probes=probes)
    test = partition.indices_of(split_table, "test")
    public = None
    labeler = "n/a"
    if defense.uses_public_pool:
        public, labeler = clip_labels.public_training_data(public_labels=public_labels, public_pool=public_pool,
                                                           device=device)
    stats = normalization_stats(prepared, clients) if model_config.get("normalize") else None
    torch.manual_seed(seed)  # the replicate's seed: the same initial model for every defense of a replicate
    model = defense.adapt_model(build_model(model_config, prepared.image_shape, prepared.num_classes,
                                            channel_stats=stats)).to(device)
    protocol = ClientProtocol.from_config(training)
    settings = RoundSettings.from_config(training)
    result = run_federated(model, clients, (images[test], labels[test]), defense=defense, protocol=protocol,
                           settings=settings, seed=seed, public_data=public, probes=ProbeSettings.from_config(probes))
    table = result.accuracy.assign(defense=run_id, defense_name=defense_name, seed=seed, public_labeler=labeler,
                                   defense_params=json.dumps(defense_params, sort_keys=True))
    sample_rate = settings.clients_per_round / len(clients)
    guarantees = [defense.privacy_spent(sample_rate, r) for r in table["round"]]
    for key in sorted({k for g in guarantees for k in g}):
        table[key] = [g.get(key) for g in guarantees]
    artifacts.save_table(accuracy, table)
    model_info = {"image_shape": list(prepared.image_shape), "num_classes": prepared.num_classes}
    if stats is not None:
        model_info["normalization"] = stats  # also in the state dict; recorded for readers of the file
    artifacts.save_tensors(final_model, result.final_state, metadata={"model_info": model_info, "defense": run_id})
    for round_number, directory in round_dirs.items():
        attacked = result.attacked_rounds[int(round_number)]
        dumps.write_attacked_round(directory, run_id, attacked, model_info, attacked.protocol)  # that round's lr
        for batch_size, probe in attacked.probes.items():  # each with its protocol, for the attacker to replay
            dumps.write_attacked_round((probe_dirs or {})[int(round_number)][batch_size], run_id, probe, model_info,
                                       probe.protocol)
    final_accuracy = table["test_accuracy"].iloc[-1]
    log.info("%s: final test accuracy %.4f", run_id, final_accuracy)
    if final_accuracy < 1.5 / prepared.num_classes:
        log.warning("%s: final test accuracy %.3f is near chance (%d classes): training diverged or did not "
                    "learn; try a lower training.lr", run_id, final_accuracy, prepared.num_classes)


def normalization_stats(prepared, clients: dict) -> dict:
    """The per-channel mean and std (in [0, 1] units) the model normalises its input with: the
    training images' statistics recorded by prepare_data, else computed here from the clients'
    images (a dataset prepared before the statistics were recorded)."""
    recorded = getattr(prepared, "channel_stats", None)
    if recorded is not None:
        return {"mean": list(recorded["mean"]), "std": list(recorded["std"])}
    images = torch.cat([client_images for client_images, _ in clients.values()])
    log.warning("model.normalize: the dataset records no channel_stats; using the clients' %d training images' "
                "statistics (rerun prepare_data to record them)", len(images))
    return {"mean": images.mean(dim=(0, 2, 3)).tolist(), "std": images.std(dim=(0, 2, 3)).tolist()}


def check_batch_fits(*, training: dict, shard_sizes: dict[int, int], data_partition: str,
                     probes: dict | None = None) -> None:
    """A client whose shard is smaller than training.batch_size would train on its whole shard.

    Under an iid partition every shard is near-equal, so that means the run is not the batch
    size the config states: refused (the config check refuses it already where it knows the
    dataset's size). Under a label-skewed partition small shards are the point, so it is logged.
    """
    if data_partition == "iid":  # a probe batch cut to the shard would be mislabelled in every table
        smallest = min(shard_sizes.values())
        problems = config.probe_size_problems(probes=probes, smallest_shard=smallest,
                                              where=f"{len(shard_sizes)} clients")
        if problems:
            raise ValueError(problems[0])
    batch_size = training["batch_size"]
    small = {client: size for client, size in sorted(shard_sizes.items()) if size < batch_size}
    if not small:
        return
    if data_partition == "iid":
        smallest = min(shard_sizes.values())
        raise ValueError(f"training.batch_size={batch_size} exceeds the smallest client shard ({smallest} images), "
                         f"so every batch would silently be the whole shard; set training.batch_size to at most "
                         f"{smallest}, or give the clients more images (fewer data.num_clients, a smaller "
                         "data.test_size or data.public_pool_size)")
    log.warning("%d of %d clients hold fewer than training.batch_size=%d images under data.partition: %s; their "
                "batches are their whole shard (client: images %s)", len(small), len(shard_sizes), batch_size,
                data_partition, small)
