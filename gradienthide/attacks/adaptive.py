"""An adaptive attacker who knows GradientHide (no paper reports this attack).

The protocol and the public pool with its labels are public, so the server can model an
upload as: the client's private local steps from the global model, then `public_steps` local
steps with `public_lr` on public batches. The client's public batches are random draws it
does not see; it stands in the whole pool for each of them (a random batch's expected
gradient), or a random sample of `public_sample` pool images. Two ways to use that:

- `subtract`: estimate the public steps' change from the global model, subtract it from
  the upload, and run Inverting Gradients on what is left (first order: it ignores that the
  client's public steps start where its private steps ended);
- `simulate` (default): the same residual, but the dummy batch's side is a simulation of
  both stages (private steps, then the public steps replayed from their end point) minus
  the same public-only estimate, so with the right public batches and images the two
  residuals agree exactly. Matching the residual rather than the total keeps the cosine
  from being dominated by the public part, which barely depends on the private images.

Against a defense that declares no public steps it is Inverting Gradients. It replays the
clients' protocol (FedAvg or FedProx) for both stages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from gradienthide.attacks.inverting_gradients import InvertingGradients
from gradienthide.defenses.base import round_lr


@dataclass
class PublicKnowledge:
    """What the attacker knows of a defense's public stage: the pool (or the sample of it
    standing in for each public batch) with its labels, and the published steps."""

    images: torch.Tensor
    labels: torch.Tensor
    steps: int
    lr: float
    lr_schedule: str = "constant"  # follow: scaled each round like the private lr (protocol.lr_scale)

    def lr_at(self, protocol) -> float:
        """The public steps' lr in the round of `protocol` (the one sent with the global model)."""
        return round_lr(self.lr, self.lr_schedule, protocol)


@dataclass
class AdaptiveAttack(InvertingGradients):
    name = "adaptive"
    needs_public_pool: ClassVar[bool] = True

    mode: str = "simulate"
    public_sample: int | None = None  # None: the whole pool, whose gradient is a random batch's expectation

    def __post_init__(self):
        super().__post_init__()
        self.knowledge: PublicKnowledge | None = None  # set by prepare, not a config knob
        if self.mode not in ("simulate", "subtract"):
            raise ValueError(f"attacks.{self.name}.mode: {self.mode!r} is not 'simulate' or 'subtract'")

    def prepare(self, *, defense, public_pool=None, public_draws=None, seed=0):
        spec = defense.public_steps_spec()
        if spec is None:  # nothing public to model: plain Inverting Gradients
            self.knowledge = None
            return
        if public_pool is None:
            raise ValueError(f"attacks.{self.name}: defense {defense.name!r} takes public steps, "
                             "but the public pool was not given")
        pool_images, pool_labels = public_pool
        if spec.pool_size is not None:  # the clients draw from this part of the pool only
            pool_images, pool_labels = pool_images[: spec.pool_size], pool_labels[: spec.pool_size]
        if self.public_sample is not None:
            generator = torch.Generator().manual_seed(seed)
            chosen = torch.randperm(len(pool_labels), generator=generator)[: self.public_sample]
            pool_images, pool_labels = pool_images[chosen], pool_labels[chosen]
        self.knowledge = PublicKnowledge(pool_images, pool_labels, spec.steps, spec.lr, spec.lr_schedule)

    def assumed_public_batches(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The public batches assumed for the target at `position`: [steps, batch, C, H, W] and
        [steps, batch]. The client's own draws are unknown: the same stand-in for every step."""
        known = self.knowledge
        return (known.images.unsqueeze(0).expand(known.steps, *known.images.shape),
                known.labels.unsqueeze(0).expand(known.steps, *known.labels.shape))

    def simulated_descent(self, problem, x, y, extra):
        if not extra:  # subtract mode, or a defense without public steps
            return super().simulated_descent(problem, x, y, extra)
        net, protocol, params = problem.net, problem.protocol, problem.net.params
        after_private = protocol.replay(net.task_loss, params, protocol.split(x, y, problem.steps), anchor=params)
        final = protocol.replay(net.task_loss, after_private, zip(extra["public_images"], extra["public_labels"]),
                                anchor=params, lr=self.knowledge.lr_at(protocol))
        # minus (simulated upload - public-only change), like the residual target
        return {name: params[name] - final[name] + extra["public_only"][name] for name in params}

    def prepare_targets(self, net, targets):
        if self.knowledge is None:
            return targets
        residual_targets = []
        for position, target in enumerate(targets):
            images, labels = (t.to(net.device) for t in self.assumed_public_batches(position))
            public_only = self._public_change(net, target.protocol, images, labels)
            residual = {name: target.update[name] - public_only[name] for name in target.update}
            extra = {"public_images": images, "public_labels": labels, "public_only": public_only}
            residual_targets.append(replace(target, update=residual, extra=extra if self.mode == "simulate" else {}))
        return residual_targets

    def _public_change(self, net, protocol, images, labels):
        """The change the public steps alone make from the global model."""
        params = net.params
        final = protocol.replay(net.task_loss, params, zip(images, labels), anchor=params,
                                lr=self.knowledge.lr_at(protocol))
        return {name: (final[name] - params[name]).detach() for name in params}
