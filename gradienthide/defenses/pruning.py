"""Gradient pruning (Zhu et al., 2019): zero the smallest-magnitude entries of each update tensor."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradienthide.defenses.base import Defense


def prune_smallest(tensor: torch.Tensor, fraction: float) -> torch.Tensor:
    """`tensor` with its floor(fraction * numel) smallest-magnitude entries set to zero."""
    flat = tensor.flatten()
    keep = flat.numel() - int(fraction * flat.numel())
    pruned = torch.zeros_like(flat)
    if keep > 0:
        kept = flat.abs().topk(keep).indices
        pruned[kept] = flat[kept]
    return pruned.view_as(tensor)


@dataclass
class GradientPruning(Defense):
    name = "pruning"

    fraction: float = 0.9  # share of each tensor's entries set to zero

    def transform_update(self, update, context):
        return {name: prune_smallest(tensor, self.fraction) for name, tensor in update.items()}
