"""The interface every defense implements, and the plain local update they build on."""

from __future__ import annotations

from dataclasses import dataclass
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


def sgd_steps(model: nn.Module, batches: list[Batch], lr: float) -> None:
    """One plain SGD step on each batch, in place (the client's usual local update)."""
    for images, labels in batches:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
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

    def client_update(self, model: nn.Module, private_batches: list[Batch], context: ClientContext) -> dict[str, torch.Tensor]:
        start = {name: p.detach().clone() for name, p in model.named_parameters()}
        sgd_steps(model, private_batches, context.lr)
        return parameter_delta(model, start)

