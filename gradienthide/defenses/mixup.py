"""Mixup as an input encoding (evaluated as a defense by Huang et al., 2021).

Clients train only on mixtures lam * x_i + (1 - lam) * x_j of two different private images
of a batch, with lam drawn uniformly from [min_weight, 1 - min_weight] and the loss mixed
the same way; the model never sees an unmixed private image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gradienthide.defenses.base import Defense


def mixed_loss(model, images, targets):
    labels, partner_labels, weights = targets
    logits = model(images)
    return (weights * F.cross_entropy(logits, labels, reduction="none")
            + (1 - weights) * F.cross_entropy(logits, partner_labels, reduction="none")).mean()


@dataclass
class Mixup(Defense):
    name = "mixup"
    mixes_batch = True

    min_weight: float = 0.3  # each image's weight in a mixture lies in [min_weight, 1 - min_weight]

    def mix(self, images, labels, generator):
        count = len(labels)
        if count < 2:
            raise ValueError("mixup needs at least 2 private images per batch (training.batch_size >= 2)")
        shift = int(torch.randint(1, count, (1,), generator=generator))
        partner = torch.roll(torch.arange(count), shift).to(images.device)  # never an image with itself
        weights = self.min_weight + (1 - 2 * self.min_weight) * torch.rand(count, generator=generator).to(images.device)
        mixed = weights.view(-1, 1, 1, 1) * images + (1 - weights.view(-1, 1, 1, 1)) * images[partner]
        return mixed, (labels, labels[partner], weights)

    def local_update(self, model, private_batches, context):
        batches = [self.mix(images, labels, context.generator) for images, labels in private_batches]
        context.train(model, batches, loss=mixed_loss)
