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

The sensitivities are exact; on convolutional features they take one forward-mode pass per
group of pixels that no feature sees together (gradienthide.input_sensitivity), which at 32x32
is about 13x fewer passes than the dense Jacobian.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from gradienthide.defenses.base import Defense
from gradienthide.input_sensitivity import input_sensitivity


def representation_scores(features, images: torch.Tensor) -> torch.Tensor:
    """Per feature: the summed ratio of input sensitivity to magnitude, shape [F]."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in features.modules()):
        features = copy.deepcopy(features).eval()
    with torch.no_grad():
        representation = features(images)
    sensitivity = input_sensitivity(features, images)  # [B, F], exact (grouped where the structure allows)
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
