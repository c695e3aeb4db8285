"""What a client does locally, in one place: the client trains with it, the attacker replays it.

A `ClientProtocol` is the local-training part of the FL algorithm, known to the server (it
sends it to the clients), so it travels in the global model's metadata. It has two faces on
one definition of a local SGD step:

- `train(model, batches)`: the client's in-place steps on an nn.Module (autograd);
- `replay(task_loss, params, batches)`: the same steps on a parameter dict with torch.func,
  differentiable in the batches, so a gradient-matching attack simulates exactly what the
  client did.

FedProx (Li et al., 2020) adds mu/2 * ||w - w_global||^2 to every local objective; its
gradient mu * (w - w_global) joins each step's gradient after the defense's gradient edits.
The anchor w_global is the model the client received, for every local step it takes
(GradientHide's public steps included).

How much local work: `local_steps` batches of `batch_size` (drawn from a shuffled shard), or
`local_epochs` passes over the whole shard. An epoch's batches are the shard, shuffled once
per round, cut into batches of `batch_size` (the last may be smaller); every epoch takes the
same batches, so an upload is a function of the shard's images in one order, and the
attacker's replay of a dummy batch (whose order is free) is exact.

The server may change the learning rate from round to round (gradienthide.fl's schedule);
the protocol it sends with a round's global model carries that round's `lr`, and, for a
defense whose own steps follow the schedule (GradientHide's `public_lr_schedule: follow`),
the schedule's factor `lr_scale` (that round's lr over the base lr).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad

ALGORITHMS = ("fedavg", "fedprox")


def cross_entropy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(images), labels)


_PLAIN_AUTOGRAD = contextvars.ContextVar("plain_autograd", default=False)


@contextlib.contextmanager
def plain_autograd():
    """Within it, the replay's parameter gradients come from torch.autograd.grad(create_graph=True)
    rather than torch.func.grad. Only for callers under no function transform (the attack
    engine's one-row path, whose outer gradient is plain autograd): the same numbers in less time
    (DLG on one target 1.23-1.36x faster; bench/README.md, "Attack engine")."""
    token = _PLAIN_AUTOGRAD.set(True)
    try:
        yield
    finally:
        _PLAIN_AUTOGRAD.reset(token)


def parameter_gradient(task_loss, params: dict[str, torch.Tensor], images, labels) -> dict[str, torch.Tensor]:
    """d task_loss / d params, differentiable in the images (and in params that carry a graph)."""
    if not _PLAIN_AUTOGRAD.get():
        return grad(task_loss)(params, images, labels)
    with torch.enable_grad():
        params = {name: p if p.requires_grad else p.detach().requires_grad_(True) for name, p in params.items()}
        grads = torch.autograd.grad(task_loss(params, images, labels), list(params.values()), create_graph=True,
                                    allow_unused=True)
    # a parameter the loss does not reach gets zeros, as from torch.func.grad
    return {name: torch.zeros_like(p) if g is None else g for (name, p), g in zip(params.items(), grads)}


@dataclass(frozen=True)
class ClientProtocol:
    local_steps: int | None  # None when local_epochs decides
    batch_size: int
    lr: float
    algorithm: str = "fedavg"
    mu: float = 0.0  # FedProx's proximal weight
    local_epochs: int | None = None  # passes over the whole shard (instead of local_steps)
    lr_scale: float = 1.0  # the schedule's factor this round, for a defense's steps that follow it

    def __post_init__(self):
        if (self.local_steps is None) == (self.local_epochs is None):
            raise ValueError(f"training: exactly one of local_steps ({self.local_steps}) and local_epochs "
                             f"({self.local_epochs}) decides a client's local work; set the other to None")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"training.algorithm: {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if self.algorithm == "fedavg" and self.mu:
            raise ValueError(f"training.mu={self.mu}: the proximal term belongs to fedprox (training.algorithm)")

    @classmethod
    def from_config(cls, training: dict) -> "ClientProtocol":
        epochs = training.get("local_epochs")
        return cls(local_steps=None if epochs else training.get("local_steps", 1), batch_size=training["batch_size"],
                   lr=training["lr"], algorithm=training.get("algorithm", "fedavg"), mu=training.get("mu", 0.0),
                   local_epochs=epochs)

    def to_metadata(self) -> str:
        fields = asdict(self)
        if fields["local_epochs"] is None:  # unchanged metadata for step-based protocols
            del fields["local_epochs"]
        if fields["lr_scale"] == 1.0:  # unchanged metadata where no defense follows the schedule
            del fields["lr_scale"]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_metadata(cls, value: str | dict) -> "ClientProtocol":
        return cls(**(json.loads(value) if isinstance(value, str) else value))

    @property
    def proximal(self) -> bool:
        return self.algorithm == "fedprox" and self.mu > 0

    def steps_for(self, num_samples: int) -> int:
        """Local SGD steps behind an upload of `num_samples` private images."""
        if self.local_epochs is None:
            return self.local_steps
        return self.local_epochs * math.ceil(num_samples / self.batch_size)

    def epoch_batches(self, order):
        """One epoch's batches: `order` (the shard, shuffled once per round) cut into batches
        of batch_size; `order` may be index arrays or tensors."""
        return [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    # --- the client's face ------------------------------------------------------------------

    def train(self, model: nn.Module, batches, *, anchor: dict[str, torch.Tensor], lr: float | None = None,
              loss=cross_entropy, edit_gradients=None) -> None:
        """One SGD step per batch on `model`, in place. `anchor`: the parameters the client
        received (FedProx's proximal centre); `lr` overrides the protocol's (public steps)."""
        lr = self.lr if lr is None else lr
        for images, labels in batches:
            model.zero_grad(set_to_none=True)
            loss(model, images, labels).backward()
            if edit_gradients is not None:
                edit_gradients(model, images, labels)
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    if parameter.grad is None:
                        continue
                    step = parameter.grad
                    if self.proximal:
                        step = step + self.mu * (parameter - anchor[name])
                    parameter.add_(step, alpha=-lr)

    # --- the attacker's face ----------------------------------------------------------------

    def replay(self, task_loss, params: dict[str, torch.Tensor], batches, *, anchor: dict[str, torch.Tensor],
               lr: float | None = None) -> dict[str, torch.Tensor]:
        """The parameters after one functional SGD step per batch, differentiable in the batches.
        `task_loss(params, images, labels)` is the client's loss as the attacker models it."""
        lr = self.lr if lr is None else lr
        current = params
        for images, labels in batches:
            step_grad = parameter_gradient(task_loss, current, images, labels)
            if self.proximal:
                current = {name: current[name] - lr * (step_grad[name] + self.mu * (current[name] - anchor[name]))
                           for name in current}
            else:
                current = {name: current[name] - lr * step_grad[name] for name in current}
        return current

    def split(self, images: torch.Tensor, labels: torch.Tensor, steps: int | None = None):
        """A dummy batch of all local samples cut into the protocol's local batches (`steps` 1:
        the whole batch at once). Under local_epochs the dummy batch is the shard, and its
        batches are taken once per epoch."""
        steps = self.steps_for(len(labels)) if steps is None else steps
        if self.local_epochs is not None and steps != 1:
            if steps != self.steps_for(len(labels)):
                raise ValueError(f"{len(labels)} samples in batches of {self.batch_size} for {self.local_epochs} "
                                 f"local epochs make {self.steps_for(len(labels))} steps, not {steps}")
            return list(zip(self.epoch_batches(images), self.epoch_batches(labels))) * self.local_epochs
        return list(zip(images.chunk(steps), labels.chunk(steps)))

    def descent(self, task_loss, params, images, labels, steps: int | None = None) -> dict[str, torch.Tensor]:
        """What an upload made from (images, labels) reads as a gradient: minus the update over
        the local lr. One step from the received model is exactly the gradient (the proximal
        term is zero there), computed directly."""
        steps = self.steps_for(len(labels)) if steps is None else steps
        if steps == 1:
            return parameter_gradient(task_loss, params, images, labels)
        final = self.replay(task_loss, params, self.split(images, labels, steps), anchor=params)
        return {name: (params[name] - final[name]) / self.lr for name in params}
