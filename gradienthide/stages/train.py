"""Stage train: federated training under one defense setting, keeping what the attacks need."""

from __future__ import annotations

import json
import logging

import torch

from gradienthide import artifacts, clip_labels, data, dumps, partition
from gradienthide.defenses import make_defense
from gradienthide.fl import RoundSettings, run_federated
from gradienthide.models import build_model
from gradienthide.protocol import ClientProtocol

log = logging.getLogger(__name__)


def train_defense(*, run_id: str, defense_name: str, defense_params: dict, model_config: dict, training: dict,
                  seed: int, dataset, splits, accuracy, final_model, round_dirs: dict[int, str], public_labels=None,
                  public_pool=None, device="cpu") -> None:
    """Writes the accuracy per round, the final model and, per attacked round, the files of
    gradienthide.dumps."""
    defense = make_defense(defense_name, defense_params)
    prepared = data.load_dataset(dataset)
    split_table = artifacts.load_table(splits, partition.SPLIT_COLUMNS)
    images, labels = prepared.floats().to(device), prepared.labels.to(device)
    clients = {c: (images[idx], labels[idx]) for c, idx in partition.client_indices(split_table).items()}
    test = partition.indices_of(split_table, "test")
    public = None
    labeler = "n/a"
    if defense.uses_public_pool:
        public, labeler = clip_labels.public_training_data(public_labels=public_labels, public_pool=public_pool,
                                                           device=device)
    torch.manual_seed(seed)  # the same initial model for every defense
    model = defense.adapt_model(build_model(model_config, prepared.image_shape, prepared.num_classes)).to(device)
    protocol = ClientProtocol.from_config(training)
    settings = RoundSettings.from_config(training)
    result = run_federated(model, clients, (images[test], labels[test]), defense=defense, protocol=protocol,
                           settings=settings, seed=seed, public_data=public)
    table = result.accuracy.assign(defense=run_id, defense_name=defense_name, public_labeler=labeler,
                                   defense_params=json.dumps(defense_params, sort_keys=True))
    sample_rate = settings.clients_per_round / len(clients)
    guarantees = [defense.privacy_spent(sample_rate, r) for r in table["round"]]
    for key in sorted({k for g in guarantees for k in g}):
        table[key] = [g.get(key) for g in guarantees]
    artifacts.save_table(accuracy, table)
    model_info = {"image_shape": list(prepared.image_shape), "num_classes": prepared.num_classes}
    artifacts.save_tensors(final_model, result.final_state, metadata={"model_info": model_info, "defense": run_id})
    for round_number, directory in round_dirs.items():
        dumps.write_attacked_round(directory, run_id, result.attacked_rounds[int(round_number)], model_info, protocol)
    final_accuracy = table["test_accuracy"].iloc[-1]
    log.info("%s: final test accuracy %.4f", run_id, final_accuracy)
    if final_accuracy < 1.5 / prepared.num_classes:
        log.warning("%s: final test accuracy %.3f is near chance (%d classes): training diverged or did not "
                    "learn; try a lower training.lr", run_id, final_accuracy, prepared.num_classes)
