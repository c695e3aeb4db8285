"""PRECODE (Scheliga et al., 2022): a variational bottleneck before the classifier head.

The representation r is encoded to (mu, log sigma^2), a sample z = mu + sigma * eps is
decoded back to r's size and classified. Training adds beta * KL(N(mu, sigma^2) || N(0, 1)).
The architecture changes, so attacks are run against the bottlenecked model; the noise eps
is drawn afresh at every forward pass in training mode and is unknown to the attacker.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradienthide.defenses.base import Defense


class VariationalBottleneck(nn.Module):
    def __init__(self, features: int, size: int):
        super().__init__()
        self.encoder = nn.Linear(features, 2 * size)
        self.decoder = nn.Linear(size, features)

    def forward_with_kl(self, representation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_variance = self.encoder(representation).chunk(2, dim=-1)
        std = torch.exp(0.5 * log_variance)
        z = mu + std * torch.randn_like(std) if self.training else mu
        kl = 0.5 * (mu.pow(2) + std.pow(2) - 1 - log_variance).sum(-1).mean()
        return self.decoder(z), kl

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        return self.forward_with_kl(representation)[0]


class PrecodeModel(nn.Module):
    """features -> variational bottleneck -> classifier."""

    def __init__(self, features: nn.Module, bottleneck: VariationalBottleneck, classifier: nn.Linear):
        super().__init__()
        self.features, self.bottleneck, self.classifier = features, bottleneck, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.bottleneck(self.features(x)))


@dataclass
class Precode(Defense):
    name = "precode"

    beta: float = 0.001  # weight of the KL term
    bottleneck_size: int = 64

    def adapt_model(self, model):
        bottleneck = VariationalBottleneck(model.classifier.in_features, self.bottleneck_size)
        return PrecodeModel(model.features, bottleneck, model.classifier)

    def loss(self, model, images, labels):
        decoded, kl = model.bottleneck.forward_with_kl(model.features(images))
        return F.cross_entropy(model.classifier(decoded), labels) + self.beta * kl
