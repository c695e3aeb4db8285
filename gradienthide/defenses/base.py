"""The interface every defense implements, and the plain local update they build on.

A client's update runs in three overridable steps, so a defense changes only what it is about:
  adapt_model       the architecture (PRECODE's bottleneck); attackers see the adapted model
  local_update      the local SGD steps: `loss` per batch (PRECODE adds its KL term) and
                    `edit_gradients` after each backward (Soteria masks a layer)
  transform_update  the upload itself (DP clips and adds noise, pruning zeroes entries)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gradienthide.configurable import Configurable

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ClientContext:
    """What a client has besides its private batches when it computes its update."""

    lr: float
    generator: torch.Generator  # the defense's own randomness, seeded per run
    public_images: torch.Tensor | None = None  # float [P, C, H, W] in [0, 1]
    public_labels: torch.Tensor | None = None  # labels from the public labeler
    # pool positions of each public batch the defense drew, recorded apart from the upload
    # (only the adaptive_oracle upper bound is given them)
    public_draws: list[torch.Tensor] = field(default_factory=list)


def cross_entropy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(images), labels)


def sgd_steps(model: nn.Module, batches: list[Batch], lr: float, loss=cross_entropy, edit_gradients=None) -> None:
    """One plain SGD step on each batch, in place (the client's usual local update)."""
    for images, labels in batches:
        model.zero_grad(set_to_none=True)
        loss(model, images, labels).backward()
        if edit_gradients is not None:
            edit_gradients(model, images, labels)
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.grad is not None:
                    parameter.add_(parameter.grad, alpha=-lr)


def parameter_delta(model: nn.Module, start: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The update a client uploads: its trained parameters minus those it received."""
    return {name: (parameter.detach() - start[name]).clone() for name, parameter in model.named_parameters()}


@dataclass
class Defense(Configurable):
    """A client-side defense. Subclasses are dataclasses whose fields are the config's knobs.

    `client_update` receives a copy of the global model, the client's private batches (one
    per local step) and a context; it returns the update to upload, by parameter name.
    """

    name: ClassVar[str]
    section: ClassVar[str] = "defenses"
    uses_public_pool: ClassVar[bool] = False

    def adapt_model(self, model: nn.Module) -> nn.Module:
        """The model FedAvg trains under this defense (the same one by default)."""
        return model

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return cross_entropy(model, images, labels)

    def edit_gradients(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Called after each local backward pass; may change the parameters' .grad in place."""

    def local_update(self, model: nn.Module, private_batches: list[Batch], context: ClientContext) -> None:
        sgd_steps(model, private_batches, context.lr, self.loss, self.edit_gradients)

    def transform_update(self, update: dict[str, torch.Tensor], context: ClientContext) -> dict[str, torch.Tensor]:
        return update

    def client_update(self, model: nn.Module, private_batches: list[Batch], context: ClientContext) -> dict[str, torch.Tensor]:
        start = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.local_update(model, private_batches, context)
        return self.transform_update(parameter_delta(model, start), context)

    def privacy_spent(self, sample_rate: float, rounds: int) -> dict[str, float]:
        """A formal guarantee after `rounds` rounds, where the defense has one (DP)."""
        return {}
