"""Writing and reading what training leaves for the attacks: global models and client updates.

Per attacked round, four artifacts:
- `global_model.safetensors`: the model the sampled clients received;
- `updates.safetensors` + `updates.parquet`: every sampled client's upload, and an index
  (defense run, round, position, client, number of samples, known labels, tensor names,
  sha256 of that client's tensors);
- `private.safetensors`: the private images behind each update, read only by evaluation,
  never by an attack job;
- `public_draws.parquet`: the pool positions each client drew for its public steps (empty
  for defenses without them): the client's own randomness, read only by the
  `adaptive_oracle` upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from gradienthide import artifacts
from gradienthide.fl import AttackedRound

INDEX_COLUMNS = ("defense", "round", "position", "client", "num_samples", "labels", "tensor_names", "sha256")
DRAW_COLUMNS = ("position", "client", "step", "pool_positions")


def _key(client: int, name: str) -> str:
    return f"client{client}/{name}"


def write_attacked_round(directory: str | Path, run_id: str, attacked: AttackedRound, model_info: dict) -> None:
    """`model_info` (image shape, number of classes) lets an attacker rebuild the model."""
    directory = Path(directory)
    artifacts.save_tensors(directory / "global_model.safetensors", attacked.global_state,
                           metadata={"defense": run_id, "round": attacked.round, "model_info": model_info})
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
    artifacts.save_tensors(directory / "updates.safetensors", tensors, metadata={"defense": run_id, "round": attacked.round})
    artifacts.save_table(directory / "updates.parquet", pd.DataFrame(rows, columns=list(INDEX_COLUMNS)))
    artifacts.save_tensors(directory / "private.safetensors", private, metadata={"defense": run_id, "round": attacked.round})
    artifacts.save_table(directory / "public_draws.parquet", pd.DataFrame(draws, columns=list(DRAW_COLUMNS)))


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


def read_private_batch(private_path: str | Path, client: int) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = artifacts.load_tensors(private_path)
    return tensors[_key(client, "images")], tensors[_key(client, "labels")]


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
