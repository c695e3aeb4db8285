"""Soteria (Sun et al., 2021): perturb the representation that feeds the classifier layer.

At each local step, for every input feature f of the defended layer (the last linear layer)
the score sum_batch ||d r_f / d x|| / |r_f| is computed; the `percent` features with the
smallest score, those whose value reveals most of the input for the least sensitivity, get
their column of the layer's weight gradient set to zero. No other layer changes.

A feature that is zero on every image of the batch (a dead ReLU) has a zero gradient column
already and reveals nothing; it scores +inf so that it never takes up the pruning budget
(otherwise 0/0 terms rank such features first and a small `percent` prunes nothing).

With BatchNorm the scores use its running statistics: a per-image Jacobian can neither use
the batch's statistics nor update the running ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import jacfwd, jacrev, vmap

from gradienthide.defenses.base import Defense


def representation_scores(features, images: torch.Tensor) -> torch.Tensor:
    """Per feature: the summed ratio of input sensitivity to magnitude, shape [F]."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in features.modules()):
        features = copy.deepcopy(features).eval()

    def single(x):
        return features(x.unsqueeze(0)).squeeze(0)

    with torch.no_grad():
        representation = features(images)
    # Forward mode costs one pass per input pixel, reverse mode one per feature: take the fewer.
    jacobian_of = jacfwd if images[0].numel() <= representation.shape[1] else jacrev
    jacobian = vmap(jacobian_of(single))(images.detach())  # [B, F, C, H, W]
    sensitivity = jacobian.flatten(2).norm(dim=2)  # [B, F]
    active = representation.abs() > 0
    ratios = torch.where(active, sensitivity / representation.abs().clamp_min(1e-12), torch.zeros_like(sensitivity))
    scores = ratios.sum(0)
    return torch.where(active.any(0), scores, torch.full_like(scores, float("inf")))


@dataclass
class Soteria(Defense):
    name = "soteria"

    percent: float = 40.0  # percentage of the defended layer's input features pruned

    def edit_gradients(self, model, images, labels):
        layer = model.classifier
        scores = representation_scores(model.features, images)
        count = int(round(self.percent / 100 * scores.numel()))
        if count and layer.weight.grad is not None:
            pruned = torch.argsort(scores)[:count]
            layer.weight.grad[:, pruned] = 0
