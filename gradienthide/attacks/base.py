"""The interface every attack implements, and the label and image helpers attacks share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from gradienthide.configurable import Configurable
from gradienthide.protocol import ClientProtocol

if TYPE_CHECKING:
    from gradienthide.defenses import Defense


@dataclass
class AttackTarget:
    """One uploaded update to invert, with what the attacker knows about it."""

    update: dict[str, torch.Tensor]  # the uploaded parameter change, by name
    num_samples: int
    known_labels: torch.Tensor | None = None  # given under the known-labels threat model
    protocol: ClientProtocol | None = None  # the clients' local protocol, known to the server
    # tensors an attack's simulation needs per target besides the dummy batch (the adaptive
    # attacker's assumed public batches); batched with the targets
    extra: dict = field(default_factory=dict)


@dataclass
class Attack(Configurable):
    """A gradient inversion attack. Subclasses are dataclasses whose fields are the config's knobs
    and implement `invert`.

    What an attack may know besides the uploads is explicit: `needs_public_pool` (the public
    pool and its labels, for a defense that takes public steps) and `needs_public_draws` (each
    client's own public draws, for an upper bound only); the pipeline hands exactly those to
    `prepare`, with the attacked defense, before `reconstruct`.

    `reconstruct` returns, for each target, a [num_samples, C, H, W] tensor in [0, 1] and
    the labels it used (known or recovered).
    """

    name: ClassVar[str]
    section: ClassVar[str] = "attacks"
    needs_public_pool: ClassVar[bool] = False  # models a defense's public steps (adaptive)
    needs_public_draws: ClassVar[bool] = False  # is given each client's public batches (an upper bound)
    infers_public_draws: ClassVar[bool] = False  # estimates them (evaluation scores the estimate)

    @property
    def label_source(self) -> str:
        """'known' when the attacker is given the labels, 'recovered' when it infers them."""
        return "recovered"

    def prepare(self, *, defense: Defense, public_pool: tuple[torch.Tensor, torch.Tensor] | None = None,
                public_draws: list[torch.Tensor] | None = None, seed: int = 0) -> None:
        """Take in what this attack is given besides the uploads: the attacked defense (its
        public settings), and, where it declares the need, the public pool (images in [0, 1],
        labels) and each target's public draws ([steps, batch] pool positions, target order)."""

    def budget_checkpoints(self) -> dict[int, list[torch.Tensor]]:
        """After `reconstruct`: the reconstructions at fixed fractions of the attack's budget, by
        iterations done, one tensor per target (the last is the result); {} when it keeps none."""
        return {}

    def findings(self) -> dict:
        """What the attack learnt besides the images, kept with the reconstructions (JSON-able,
        one entry per target in target order), e.g. the draws adaptive_infer estimated."""
        return {}

    def reconstruct(self, model: nn.Module, targets: list[AttackTarget], image_shape: tuple[int, int, int],
                    seed: int, progress: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # A stochastic model (PRECODE's sampling) draws from torch's global generator inside
        # vmap: seed it too, so the same seed gives the same reconstruction, without
        # disturbing the caller's random state.
        device = next(model.parameters()).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            return self.invert(model, targets, image_shape, seed, progress)

    def invert(self, model: nn.Module, targets: list[AttackTarget], image_shape: tuple[int, int, int],
               seed: int, progress: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError


def classifier_bias_name(model: nn.Module) -> str:
    """Name of the bias of the model's last linear layer (the logits)."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            last = f"{name}.bias" if name else "bias"
    if last is None:
        raise ValueError("label recovery needs a final nn.Linear layer with a bias")
    return last


def recover_labels(update: dict[str, torch.Tensor], bias_name: str, batch_size: int) -> torch.Tensor:
    """Labels of a batch from the sign of the logits' bias gradient.

    For cross-entropy the bias gradient is mean(softmax - onehot): negative exactly for the
    classes in the batch (when the model is not yet confident). An SGD update is minus the
    gradient, so classes present have a positive bias update. The classes found are
    listed once each, most strongly signalled first; the rest of the batch repeats the strongest.
    """
    signal = update[bias_name].detach().float()
    ranked = torch.argsort(signal, descending=True)
    present = ranked[: max(1, min(batch_size, int((signal > 0).sum())))]
    fill = present[:1].repeat(batch_size - len(present))
    return torch.cat([present, fill])


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (anisotropic TV)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return dx + dy
