"""The interface every defense implements, and the plain local update they build on.

A client's update runs in three overridable steps, so a defense changes only what it is about:
  adapt_model       the architecture (PRECODE's bottleneck); attackers see the adapted model
  local_update      the local SGD steps: `loss` per batch (PRECODE adds its KL term) and
                    `edit_gradients` after each backward (Soteria masks a layer)
  transform_update  the upload itself (DP clips and adds noise, pruning zeroes entries)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from gradienthide.configurable import Configurable

if TYPE_CHECKING:  # torch only where a client trains: the config check builds defenses without it
    import torch
    from torch import nn

    from gradienthide.protocol import ClientProtocol

    Batch = tuple[torch.Tensor, torch.Tensor]

PUBLIC_LR_SCHEDULES = ("constant", "follow")


def round_lr(lr: float, lr_schedule: str, protocol: ClientProtocol) -> float:
    """A defense's own lr in the round `protocol` was sent for: `lr` itself (constant), or `lr`
    scaled by the server's schedule like the clients' private lr (follow). Clients and the
    attackers replaying them both compute it here."""
    return lr * protocol.lr_scale if lr_schedule == "follow" else lr


@dataclass(frozen=True)
class PublicSteps:
    """What a server can know of a defense's extra steps on public data: they are part of the
    published protocol. The batches a client draws are its own randomness and are not."""

    steps: int
    batch_size: int
    lr: float
    pool_size: int | None = None  # the clients draw from the first pool_size pool images (None: all)
    augment: str = "none"  # how the clients perturb each drawn image (randomly, unknown to the server)
    draws: str = "independent"  # how the steps' batches relate: independent | disjoint | repeated
    lr_schedule: str = "constant"  # constant: `lr` every round; follow: scaled like the private lr

    def lr_at(self, protocol: ClientProtocol) -> float:
        """The public steps' lr in the round `protocol` was sent for."""
        return round_lr(self.lr, self.lr_schedule, protocol)


@dataclass
class ClientContext:
    """What a client has besides its private batches when it computes its update."""

    protocol: ClientProtocol
    generator: torch.Generator  # the defense's own randomness, seeded per run
    public_images: torch.Tensor | None = None  # float [P, C, H, W] in [0, 1]
    public_labels: torch.Tensor | None = None  # labels from the public labeler
    # pool positions of each public batch the defense drew, recorded apart from the upload
    # (only the adaptive_oracle upper bound is given them)
    public_draws: list[torch.Tensor] = field(default_factory=list)
    anchor: dict[str, torch.Tensor] = field(default_factory=dict)  # the received parameters

    def train(self, model: nn.Module, batches: list[Batch], **options) -> None:
        """Local SGD steps under the protocol, from the model the client received."""
        self.protocol.train(model, batches, anchor=self.anchor, **options)


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
    mixes_batch: ClassVar[bool] = False  # combines a batch's images, so needs at least 2 per batch

    def adapt_model(self, model: nn.Module) -> nn.Module:
        """The model FedAvg trains under this defense (the same one by default)."""
        return model

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        from gradienthide.protocol import cross_entropy

        return cross_entropy(model, images, labels)

    def edit_gradients(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Called after each local backward pass; may change the parameters' .grad in place."""

    def local_update(self, model: nn.Module, private_batches: list[Batch], context: ClientContext) -> None:
        context.train(model, private_batches, loss=self.loss, edit_gradients=self.edit_gradients)

    def transform_update(self, update: dict[str, torch.Tensor], context: ClientContext) -> dict[str, torch.Tensor]:
        return update

    def client_update(self, model: nn.Module, private_batches: list[Batch], context: ClientContext) -> dict[str, torch.Tensor]:
        start = {name: p.detach().clone() for name, p in model.named_parameters()}
        context.anchor = start
        self.local_update(model, private_batches, context)
        return self.transform_update(parameter_delta(model, start), context)

    def public_steps_spec(self) -> PublicSteps | None:
        """What an attacker may know of this defense's steps on public data (None: it takes none)."""
        return None

    def privacy_spent(self, sample_rate: float, rounds: int) -> dict[str, float]:
        """A formal guarantee after `rounds` rounds, where the defense has one (DP)."""
        return {}
