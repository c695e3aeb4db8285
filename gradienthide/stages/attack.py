"""Stages attack and attack_probes: invert one shard of a round's uploads, or every probe shard
of a round. Read only what a server sees."""

from __future__ import annotations

import torch

from gradienthide import artifacts, dumps
from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.defenses import make_defense
from gradienthide.models import as_client_forward, image_shape_of, load_model
from gradienthide.workflow import seed_global_generators


def attack_shard(*, attack: str, attack_params: dict, model_config: dict, defense_name: str, defense_params: dict,
                 global_model, updates, index, positions: list[int], seed: int, reconstructions,
                 public_pool=None, public_draws=None, device="cpu") -> None:
    """Reconstruct the private batches behind the updates at `positions`, all in one batch.

    Reads only what the server sees: the global model (with the architecture the defense
    trains and the clients' protocol in its metadata) and the uploads; never private data.
    An attack that declares the need also gets the public pool, and the adaptive_oracle upper
    bound each client's public draws (the rule wires exactly those files).
    """
    chosen_attack = make_attack(attack, attack_params)
    defense = make_defense(defense_name, defense_params)
    model = load_model(global_model, model_config, adapt=defense.adapt_model, device=device)
    as_client_forward(model)  # BatchNorm as in the client's step; running statistics kept for priors
    protocol = dumps.read_protocol(global_model)
    uploads = dumps.read_updates(updates, index, positions)
    pool = None
    if public_pool:  # the public pool and its labels are public
        tensors = artifacts.load_tensors(public_pool)
        pool = (tensors["images"].float() / 255.0, tensors["labels"])
    draws = dumps.read_public_draws(public_draws, [u.position for u in uploads]) if public_draws else None
    chosen_attack.prepare(defense=defense, public_pool=pool, public_draws=draws, seed=seed)
    targets = [AttackTarget({k: v.to(device) for k, v in u.update.items()}, u.num_samples, torch.tensor(u.labels),
                            protocol) for u in uploads]
    results = chosen_attack.reconstruct(model, targets, image_shape_of(global_model), seed)
    checkpoints = chosen_attack.budget_checkpoints()  # {iterations: one tensor per target}
    dumps.write_reconstructions(
        reconstructions, [dumps.Reconstruction(u.position, u.client, images, used,
                                               checkpoints={done: snapshot[k] for done, snapshot in checkpoints.items()})
                          for k, (u, (images, used)) in enumerate(zip(uploads, results))],
        attack=attack, label_source=chosen_attack.label_source, findings=chosen_attack.findings())


def attack_probe_shards(*, attack: str, attack_params: dict, model_config: dict, defense_name: str,
                        defense_params: dict, global_model: list, updates: list, index: list, probe_shards: list[dict],
                        probe_uploads: list[str], seed: int, reconstructions: list, public_pool=None,
                        public_draws: list | None = None, device="cpu") -> None:
    """attack_shard on each probe shard of a round, one after another.

    `probe_shards` (aligned with `reconstructions`) gives each shard's uploads and positions;
    `global_model`, `updates`, `index` and `public_draws` are aligned with `probe_uploads`. Each
    shard starts from the global generators seeded as a job of its own starts, so the
    reconstructions are those of one attack job per shard.
    """
    for shard, output in zip(probe_shards, reconstructions, strict=True):
        k = probe_uploads.index(shard["uploads"])
        seed_global_generators(seed)
        attack_shard(attack=attack, attack_params=attack_params, model_config=model_config, defense_name=defense_name,
                     defense_params=defense_params, global_model=global_model[k], updates=updates[k], index=index[k],
                     positions=shard["positions"], seed=seed, reconstructions=output, public_pool=public_pool,
                     public_draws=public_draws[k] if public_draws else None, device=device)
