"""Federated training rounds with a pluggable client-side defense.

This module keeps the server's side: rounds, client sampling, aggregation, evaluation, and
what is kept for the attacks. What a client does locally is its `ClientProtocol`
(gradienthide.protocol), which FedAvg and FedProx differ in; both aggregate the same way.

Client sampling, private batches and the initial model depend only on the seed, not on the
defense, so every defense is attacked on the same private images at the same rounds.

The server's learning-rate schedule (constant, cosine or step over rounds) sets each round's
client lr; the protocol of each attacked round is kept with that round's lr, as sent.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from gradienthide.defenses import ClientContext, Defense
from gradienthide.protocol import ClientProtocol

log = logging.getLogger(__name__)


@dataclass
class ClientUpload:
    """What one sampled client sent at an attacked round, and what it was computed from."""

    client: int
    update: dict[str, torch.Tensor]
    images: torch.Tensor  # the private images behind the update (for metrics only)
    labels: torch.Tensor
    num_samples: int
    public_draws: torch.Tensor | None = None  # [public steps, batch] pool positions, for defenses that draw them


@dataclass
class AttackedRound:
    round: int
    global_state: dict[str, torch.Tensor]  # the model the clients received
    protocol: ClientProtocol  # the local protocol sent with it (this round's lr)
    uploads: list[ClientUpload] = field(default_factory=list)
    # privacy probes by private batch size: that protocol, and its uploads (ProbeSettings)
    probes: dict[int, "AttackedRound"] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeSettings:
    """Privacy probes (attack.probes): at each attacked round, for each private batch size b,
    the round's first `uploads` (b's count) sampled clients each compute one more upload from the global
    model they received, under the defense and the round's protocol with batch_size b and
    `local_steps` steps. They are kept apart and never aggregated: training is unchanged."""

    batch_sizes: tuple[int, ...] = ()
    local_steps: int = 1
    uploads: tuple[int, ...] = ()  # per batch size

    @classmethod
    def from_config(cls, probes: dict | None) -> "ProbeSettings":
        if not probes:
            return cls()
        from gradienthide.config import probe_upload_counts

        counts = probe_upload_counts(probes)
        return cls(batch_sizes=tuple(probes["batch_sizes"]), local_steps=probes["local_steps"],
                   uploads=tuple(counts[size] for size in probes["batch_sizes"]))

    def protocol_for(self, round_protocol: ClientProtocol, batch_size: int) -> ClientProtocol:
        return replace(round_protocol, batch_size=batch_size, local_steps=self.local_steps, local_epochs=None)


@dataclass
class TrainingResult:
    accuracy: pd.DataFrame  # one row per round: round, test_accuracy, test_loss
    attacked_rounds: dict[int, AttackedRound]
    final_state: dict[str, torch.Tensor]


LR_SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class LearningRateSchedule:
    """The clients' learning rate per round, as a multiple of the protocol's lr.

    cosine: from lr at round 1 down towards `min_lr` (PyTorch's CosineAnnealingLR with
    T_max = rounds, one step per round); step: multiplied by `gamma` at each of `milestones`
    (from that round on)."""

    kind: str = "constant"
    min_lr: float = 0.0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self):
        if self.kind not in LR_SCHEDULES:
            raise ValueError(f"training.lr_schedule: {self.kind!r} is not one of {', '.join(LR_SCHEDULES)}")

    @classmethod
    def from_config(cls, training: dict) -> "LearningRateSchedule":
        return cls(kind=training.get("lr_schedule", "constant"), min_lr=training.get("lr_min", 0.0),
                   milestones=tuple(training.get("lr_milestones", ())), gamma=training.get("lr_gamma", 0.1))

    def lr_at(self, base_lr: float, round_number: int, rounds: int) -> float:
        if self.kind == "cosine":
            progress = (round_number - 1) / rounds
            return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2
        if self.kind == "step":
            return base_lr * self.gamma ** sum(round_number >= m for m in self.milestones)
        return base_lr


@dataclass
class RoundSettings:
    """The server's schedule: how many rounds, how many clients each, which rounds are kept,
    and the clients' learning rate per round."""

    rounds: int
    clients_per_round: int
    attack_rounds: tuple[int, ...] = ()
    lr_schedule: LearningRateSchedule = field(default_factory=LearningRateSchedule)

    @classmethod
    def from_config(cls, training: dict) -> "RoundSettings":
        return cls(rounds=training["rounds"], clients_per_round=training["clients_per_round"],
                   attack_rounds=tuple(training["attack_rounds"]),
                   lr_schedule=LearningRateSchedule.from_config(training))

    def protocol_at(self, protocol: ClientProtocol, round_number: int, *, carry_scale: bool = False) -> ClientProtocol:
        """The protocol the server sends at `round_number`: the base one at that round's lr.
        `carry_scale`: it also carries the factor (round lr / base lr), for a defense whose
        own steps follow the schedule."""
        if self.lr_schedule.kind == "constant":
            return protocol
        lr = self.lr_schedule.lr_at(protocol.lr, round_number, self.rounds)
        return replace(protocol, lr=lr, lr_scale=lr / protocol.lr if carry_scale else 1.0)


class WeightedAverage:
    """The server's aggregation (FedAvg's, also FedProx's): the sampled clients' updates
    averaged, each weighted by its client's share of the round's data."""

    def aggregate(self, weighted_updates: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
        first, _ = weighted_updates[0]
        total = {name: torch.zeros_like(tensor) for name, tensor in first.items()}
        for update, weight in weighted_updates:
            for name in total:
                total[name] += update[name] * weight
        return total


def private_batches(num_images: int, steps: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Indices for `steps` batches: passes over a shuffled shard, reshuffled when exhausted."""
    batch_size = min(batch_size, num_images)
    batches, order = [], rng.permutation(num_images)
    position = 0
    for _ in range(steps):
        if position + batch_size > num_images:
            order, position = rng.permutation(num_images), 0
        batches.append(order[position : position + batch_size])
        position += batch_size
    return batches


def client_batches(num_images: int, protocol: ClientProtocol, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """A client's batch indices for one round under `protocol`, and the private images the
    upload is computed from (in local_epochs mode each shard image once, in the order its
    epochs take them)."""
    if protocol.local_epochs is None:
        batches = private_batches(num_images, protocol.local_steps, protocol.batch_size, rng)
        return batches, np.concatenate(batches)
    order = rng.permutation(num_images)
    return protocol.epoch_batches(order) * protocol.local_epochs, order


def probe_upload(model: nn.Module, client: int, images: torch.Tensor, labels: torch.Tensor, *, defense: Defense,
                 protocol: ClientProtocol, seed: int, round_number: int, position: int, public_data) -> ClientUpload:
    """One probe upload: `client`'s (the round's `position`-th sampled) whole client protocol under
    `defense` on a copy of the global model `model`, with randomness of its own seeded by
    (replicate seed, round, batch size, position): every defense of a replicate is probed on the
    same private images, and neither the training's sampling nor the defense's generator is touched."""
    rng = np.random.default_rng([seed, round_number, protocol.batch_size, position])
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    batch_indices, used_indices = client_batches(len(labels), protocol, rng)
    batches = [(images[i], labels[i]) for i in map(torch.as_tensor, batch_indices)]
    public_images, public_labels = public_data if public_data is not None else (None, None)
    context = ClientContext(protocol, generator, public_images, public_labels)
    # a defense drawing from torch's global generators (PRECODE's bottleneck, on the CPU's or the
    # model's GPU's) draws from a fork, seeded like the rest of the probe, so the training after
    # it draws what it would have
    gpus = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(int(rng.integers(2**62)))
        update = defense.client_update(copy.deepcopy(model), batches, context)
    used_indices = torch.as_tensor(used_indices)
    return ClientUpload(client, {k: v.detach().cpu() for k, v in update.items()}, images[used_indices].detach().cpu(),
                        labels[used_indices].detach().cpu(), len(used_indices),
                        torch.stack(context.public_draws) if context.public_draws else None)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of `model` on a labelled set."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        target = labels[start : start + batch_size]
        correct += int((logits.argmax(1) == target).sum())
        loss += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
    model.train()
    return correct / len(images), loss / len(images)


def average_buffers(model: nn.Module, client_buffers: dict[str, list[tuple[torch.Tensor, float]]]) -> None:
    """Set the global model's buffers (BatchNorm running statistics) to the clients' weighted
    average; integer counters take the largest count."""
    buffers = dict(model.named_buffers())
    for name, values in client_buffers.items():
        if buffers[name].is_floating_point():
            buffers[name].copy_(sum(value * weight for value, weight in values))
        else:
            buffers[name].copy_(max(value for value, _ in values))


def run_federated(
    model: nn.Module,
    client_data: dict[int, tuple[torch.Tensor, torch.Tensor]],
    test_data: tuple[torch.Tensor, torch.Tensor],
    *,
    defense: Defense,
    protocol: ClientProtocol,
    settings: RoundSettings,
    seed: int,
    public_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    aggregation: WeightedAverage | None = None,
    progress: bool = True,
    probes: ProbeSettings | None = None,
) -> TrainingResult:
    """Train `model` federatedly; keep the global model and every upload at the attacked rounds,
    and there the privacy probes' uploads (`probes`)."""
    probes = probes or ProbeSettings()
    aggregation = aggregation or WeightedAverage()
    sampling = np.random.default_rng(seed)
    defense_generator = torch.Generator().manual_seed(seed + 1)
    clients = sorted(client_data)
    weights = {c: len(client_data[c][1]) for c in clients}
    public_images, public_labels = public_data if public_data is not None else (None, None)
    public_steps = defense.public_steps_spec()
    carry_scale = public_steps is not None and public_steps.lr_schedule == "follow"
    rows, attacked = [], {}
    model.train()

    bar = tqdm(range(1, settings.rounds + 1), desc=f"{protocol.algorithm} [{defense.name}]", unit="round",
               disable=not progress, mininterval=2.0)
    for round_number in bar:
        chosen = sampling.choice(clients, size=settings.clients_per_round, replace=False)
        round_protocol = settings.protocol_at(protocol, round_number, carry_scale=carry_scale)
        if round_number in settings.attack_rounds:
            attacked[round_number] = AttackedRound(
                round_number, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, round_protocol)
            for batch_size, count in zip(probes.batch_sizes, probes.uploads):
                probe_protocol = probes.protocol_for(round_protocol, batch_size)
                attacked[round_number].probes[batch_size] = AttackedRound(
                    round_number, attacked[round_number].global_state, probe_protocol,
                    [probe_upload(model, int(client), *client_data[int(client)], defense=defense,
                                  protocol=probe_protocol, seed=seed, round_number=round_number, position=position,
                                  public_data=public_data)
                     for position, client in enumerate(chosen[:count])])
        weighted_updates = []
        client_buffers: dict[str, list[tuple[torch.Tensor, float]]] = {}
        total_weight = sum(weights[int(c)] for c in chosen)
        for client in map(int, chosen):
            images, labels = client_data[client]
            batch_indices, used_indices = client_batches(len(labels), round_protocol, sampling)
            batches = [(images[i], labels[i]) for i in map(torch.as_tensor, batch_indices)]
            local_model = copy.deepcopy(model)
            context = ClientContext(round_protocol, defense_generator, public_images, public_labels)
            update = defense.client_update(local_model, batches, context)
            weighted_updates.append((update, weights[client] / total_weight))
            for name, buffer in local_model.named_buffers():
                client_buffers.setdefault(name, []).append((buffer.detach().clone(), weights[client] / total_weight))
            if round_number in attacked:
                used_indices = torch.as_tensor(used_indices)
                used = images[used_indices], labels[used_indices]
                attacked[round_number].uploads.append(
                    ClientUpload(client, {k: v.detach().cpu() for k, v in update.items()},
                                 used[0].detach().cpu(), used[1].detach().cpu(), len(used[1]),
                                 torch.stack(context.public_draws) if context.public_draws else None))
        total = aggregation.aggregate(weighted_updates)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.add_(total[name])
            average_buffers(model, client_buffers)
        accuracy, loss = evaluate(model, *test_data)
        rows.append({"round": round_number, "test_accuracy": accuracy, "test_loss": loss})
        # shown at the bar's next redraw (every mininterval), not redrawn every round: logs stay short
        bar.set_postfix(accuracy=f"{accuracy:.3f}", refresh=False)
        if not progress and (round_number % 10 == 0 or round_number == settings.rounds):
            log.info("round %d/%d: test accuracy %.3f", round_number, settings.rounds, accuracy)

    final_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainingResult(pd.DataFrame(rows), attacked, final_state)
