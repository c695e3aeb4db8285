"""The artifacts passed between training, attacks and evaluation: their file names, tensor keys,
and how they are written and read. The names and paths are gradienthide.layout's (the rules
build their paths there, without torch), re-exported here.

Per attacked round, five artifacts:
- `global_model.safetensors`: the model the sampled clients received, with what a server
  knows of it in the metadata: the model's shape and the clients' local protocol;
- `updates.safetensors` + `updates.parquet`: every sampled client's upload, and an index
  (defense run, round, position, client, number of samples, known labels, tensor names,
  sha256 of that client's tensors);
- `private.safetensors`: the private images behind each update, read only by evaluation,
  never by an attack job;
- `public_draws.parquet`: the pool positions each client drew for its public steps (empty
  for defenses without them): the client's own randomness, read only by the
  `adaptive_oracle` upper bound.

Per attack shard: `reconstructions.safetensors` (each inverted upload's images and the labels
the attack used, and its images at the budget checkpoints: 1/8, 1/4 and 1/2 of the
iterations), then from evaluation `metrics.parquet` (every metric per image),
`budget_metrics.parquet` (PSNR and SSIM per image at each checkpoint) and a
`reconstructions.png` grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from gradienthide import artifacts
from gradienthide.layout import (  # noqa: F401 (the path helpers, re-exported)
    ROUND_FILES,
    SHARD_FILES,
    round_dir,
    round_file,
    shard_dir,
    shard_file,
    train_dir,
)
from gradienthide.protocol import ClientProtocol

if TYPE_CHECKING:
    from gradienthide.fl import AttackedRound

INDEX_COLUMNS = ("defense", "round", "position", "client", "num_samples", "labels", "tensor_names", "sha256")
DRAW_COLUMNS = ("position", "client", "step", "pool_positions")


def _key(client: int, name: str) -> str:
    return f"client{client}/{name}"


def write_attacked_round(directory: str | Path, run_id: str, attacked: AttackedRound, model_info: dict,
                         protocol: ClientProtocol) -> None:
    """`model_info` (image shape, number of classes) and `protocol` are what a server knows: an
    attacker rebuilds the model and replays the clients' local steps from them."""
    directory = Path(directory)
    artifacts.save_tensors(directory / ROUND_FILES["global_model"], attacked.global_state,
                           metadata={"defense": run_id, "round": attacked.round, "model_info": model_info,
                                     "protocol": protocol.to_metadata()})
    tensors, rows, private, draws = {}, [], {}, []
    for position, upload in enumerate(attacked.uploads):
        if upload.public_draws is not None:
            draws += [{"position": position, "client": upload.client, "step": step, "pool_positions": chosen.tolist()}
                      for step, chosen in enumerate(upload.public_draws)]
        names = sorted(upload.update)
        for name in names:
            tensors[_key(upload.client, name)] = upload.update[name]
        private[_key(upload.client, "images")] = upload.images
        private[_key(upload.client, "labels")] = upload.labels
        rows.append({
            "defense": run_id, "round": attacked.round, "position": position, "client": upload.client,
            "num_samples": upload.num_samples, "labels": upload.labels.tolist(), "tensor_names": names,
            "sha256": artifacts.tensors_sha256(upload.update),
        })
    artifacts.save_tensors(directory / ROUND_FILES["updates"], tensors, metadata={"defense": run_id, "round": attacked.round})
    artifacts.save_table(directory / ROUND_FILES["index"], pd.DataFrame(rows, columns=list(INDEX_COLUMNS)))
    artifacts.save_tensors(directory / ROUND_FILES["private"], private, metadata={"defense": run_id, "round": attacked.round})
    artifacts.save_table(directory / ROUND_FILES["public_draws"], pd.DataFrame(draws, columns=list(DRAW_COLUMNS)))


def read_protocol(global_model_path: str | Path) -> ClientProtocol:
    """The clients' local protocol, as the server sent it with the global model."""
    metadata = artifacts.read_metadata(global_model_path)
    if "protocol" not in metadata:
        raise artifacts.CorruptArtifactError(f"{global_model_path}: metadata key 'protocol' missing")
    return ClientProtocol.from_metadata(metadata["protocol"])


@dataclass
class UploadedUpdate:
    """One client's upload as the attacker sees it."""

    position: int
    client: int
    num_samples: int
    labels: list[int]  # known to the attacker only under the known-labels threat model
    update: dict[str, torch.Tensor]


def read_updates(updates_path: str | Path, index_path: str | Path, positions: list[int]) -> list[UploadedUpdate]:
    """The uploads at `positions` of a round, each checked against the sha256 in the index."""
    index = artifacts.load_table(index_path, INDEX_COLUMNS).set_index("position")
    tensors = artifacts.load_tensors(updates_path)
    uploads = []
    for position in positions:
        if position not in index.index:
            raise KeyError(f"{index_path}: no update at position {position} (have {sorted(index.index)})")
        row = index.loc[position]
        update = {name: tensors[_key(int(row.client), name)] for name in row.tensor_names}
        if artifacts.tensors_sha256(update) != row.sha256:
            raise artifacts.CorruptArtifactError(f"{updates_path}: update of client {row.client} does not match its sha256 in {index_path}")
        uploads.append(UploadedUpdate(position, int(row.client), int(row.num_samples), [int(l) for l in row.labels], update))
    return uploads


def read_private_batches(private_path: str | Path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each attacked client's private images and labels, by client (for evaluation only)."""
    tensors = artifacts.load_tensors(private_path)
    clients = sorted({int(key.split("/")[0].removeprefix("client")) for key in tensors})
    return {c: (tensors[_key(c, "images")], tensors[_key(c, "labels")]) for c in clients}


def read_public_draws(draws_path: str | Path, positions: list[int]) -> list[torch.Tensor]:
    """Each upload's public draws, [steps, batch] pool positions, for the uploads at `positions`."""
    table = artifacts.load_table(draws_path, DRAW_COLUMNS)
    draws = []
    for position in positions:
        rows = table[table["position"] == position].sort_values("step")
        if rows.empty:
            raise KeyError(f"{draws_path}: no public draws recorded for the update at position {position}")
        draws.append(torch.tensor([list(p) for p in rows["pool_positions"]], dtype=torch.long))
    return draws


@dataclass
class Reconstruction:
    """An attack's result for one upload."""

    position: int
    client: int
    images: torch.Tensor  # [num_samples, C, H, W] in [0, 1]
    labels: torch.Tensor  # the labels the attack used (known or recovered)
    estimated_draws: torch.Tensor | None = None  # [steps, batch] pool positions, by attacks that infer them
    # the images after fewer iterations, by iterations done; the last entry is `images` itself
    checkpoints: dict[int, torch.Tensor] = field(default_factory=dict)


def write_reconstructions(path: str | Path, reconstructions: list[Reconstruction], *, attack: str,
                          label_source: str, findings: dict | None = None) -> None:
    """`findings`: what the attack learnt besides the images, lists in position order (JSON).
    Each item's checkpoints are stored but for the last (its `images`)."""
    tensors = {}
    done = sorted(reconstructions[0].checkpoints) if reconstructions else []
    for item in reconstructions:
        if sorted(item.checkpoints) != done:
            raise ValueError(f"position {item.position}: budget checkpoints {sorted(item.checkpoints)} differ from "
                             f"the shard's {done}")
        tensors[f"position{item.position}/images"] = item.images
        tensors[f"position{item.position}/labels"] = item.labels
        for iterations in done[:-1]:  # a copy: an attack stopped early hands out its result again here
            tensors[f"position{item.position}/checkpoint{iterations}"] = item.checkpoints[iterations].clone()
    artifacts.save_tensors(path, tensors, metadata={
        "attack": attack, "positions": [r.position for r in reconstructions],
        "clients": [r.client for r in reconstructions], "label_source": label_source,
        "budget_checkpoints": done, **(findings or {})})


def read_reconstructions(path: str | Path) -> tuple[list[Reconstruction], str]:
    """A shard's reconstructions in position order, and their label source ('known' or 'recovered')."""
    tensors = artifacts.load_tensors(path)
    positions = artifacts.load_json_metadata(path, "positions")
    clients = artifacts.load_json_metadata(path, "clients")
    metadata = artifacts.read_metadata(path)
    label_source = metadata.get("label_source", "known")
    draws = json.loads(metadata["estimated_draws"]) if "estimated_draws" in metadata else [None] * len(positions)
    done = json.loads(metadata.get("budget_checkpoints", "[]"))

    def checkpoints(position):
        return {iterations: tensors[f"position{position}/checkpoint{iterations}"] for iterations in done[:-1]} | (
            {done[-1]: tensors[f"position{position}/images"]} if done else {})

    return [Reconstruction(p, c, tensors[f"position{p}/images"], tensors[f"position{p}/labels"],
                           None if d is None else torch.tensor(d, dtype=torch.long), checkpoints(p))
            for p, c, d in zip(positions, clients, draws)], label_source
