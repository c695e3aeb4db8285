"""Inverting Gradients (Geiping et al., 2020): cosine gradient matching with a TV prior.

The attacker optimises dummy images so that the gradient they induce on the received global
model points the same way as the uploaded update (an SGD update is minus a gradient):
    1 - cos(grad_w L(x, y), -update) + tv_weight * TV(x),
with Adam on the signed gradient, the step size cut tenfold at 3/8, 5/8 and 7/8 of the
iterations, images boxed to [0, 1], and several random restarts, of which the one with the
lowest final objective is kept.

With `simulate_local_steps` (the paper's variant for FedAvg), the attacker does not treat a
multi-step update as one gradient: it splits the dummy batch into the protocol's local
batches, replays the client's SGD steps on them, and matches the simulated total change.

All (target, restart) pairs of a job are optimised together as one batch through
torch.func.vmap, so a shard costs one vectorised optimisation rather than a loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, grad_and_value, vmap
from tqdm import tqdm

from gradienthide.attacks.base import (Attack, AttackTarget, classifier_bias_name, group_targets, recover_labels,
                                       sgd_replay, total_variation)


@dataclass
class InvertingGradients(Attack):
    name = "ig"

    iterations: int = 2000
    restarts: int = 2
    lr: float = 0.1
    tv_weight: float = 1e-4
    labels: str = "known"
    simulate_local_steps: bool = True

    def __post_init__(self):
        if self.labels not in ("known", "recovered"):
            raise ValueError(f"attacks.ig.labels: {self.labels!r} is not 'known' or 'recovered'")

    @property
    def label_source(self) -> str:
        return self.labels

    def target_labels(self, model, target: AttackTarget) -> torch.Tensor:
        if self.labels == "known":
            if target.known_labels is None:
                raise ValueError("attacks.ig.labels is 'known' but the update came without labels")
            return target.known_labels
        return recover_labels(target.update, classifier_bias_name(model), target.num_samples)

    def invert(self, model, targets, image_shape, seed, progress=True):
        device = next(model.parameters()).device
        labels = [self.target_labels(model, t).to(device) for t in targets]
        results: list = [None] * len(targets)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        for (batch_size, steps, local_lr), members in group_targets(targets, self.simulate_local_steps).items():
            images = self._optimise(model, [targets[i] for i in members], [labels[i] for i in members],
                                    (batch_size, *image_shape), steps, local_lr, generator, progress)
            for i, reconstruction in zip(members, images):
                results[i] = (reconstruction.cpu(), labels[i].cpu())
        return results

    def simulated_descent(self, task_loss, params, x, y, steps, local_lr, extra):
        """Minus the update a client would upload for data (x, y), up to scale; `extra` is the
        target's AttackTarget.extra."""
        if steps == 1:
            return grad(task_loss)(params, x, y)
        final = sgd_replay(task_loss, params, zip(x.chunk(steps), y.chunk(steps)), local_lr)
        return {name: params[name] - final[name] for name in params}

    def _optimise(self, model, targets, labels, batch_shape, steps, local_lr, generator, progress):
        device = next(model.parameters()).device
        params = {name: p.detach() for name, p in model.named_parameters()}
        buffers = {name: b.detach() for name, b in model.named_buffers()}
        restarts, count = self.restarts, len(targets)
        # Row k of every batched tensor is restart k % restarts of target k // restarts.
        target_grads = {name: torch.stack([-t.update[name].to(device) for t in targets]).repeat_interleave(restarts, 0)
                        for name in params}
        target_norm = torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in target_grads.values()))
        batch_labels = torch.stack(labels).repeat_interleave(restarts, 0)
        extra = _stack_rows([t.extra for t in targets], restarts)

        def task_loss(p, x, y):
            return F.cross_entropy(functional_call(model, (p, buffers), (x,)), y)

        def objective(x, y, wanted, wanted_norm, extra):
            g = self.simulated_descent(task_loss, params, x, y, steps, local_lr, extra)
            dot = sum((g[name] * wanted[name]).sum() for name in params)
            norm = torch.sqrt(sum(g[name].pow(2).sum() for name in params))
            return 1 - dot / (norm * wanted_norm + 1e-12) + self.tv_weight * total_variation(x)

        # randomness: a defense's stochastic layer (PRECODE) draws fresh noise per batch row
        objective_and_grad = vmap(grad_and_value(objective), randomness="different")
        x = torch.rand((count * restarts, *batch_shape), generator=generator).to(device).requires_grad_(True)
        optimiser = torch.optim.Adam([x], lr=self.lr)
        milestones = [int(self.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)
        bar = tqdm(range(self.iterations), desc=f"{self.name}: {count} updates x {restarts} restarts",
                   unit="it", disable=not progress, mininterval=2.0)
        for _ in bar:
            x_grad, values = objective_and_grad(x.detach(), batch_labels, target_grads, target_norm, extra)
            x.grad = x_grad.sign()
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            bar.set_postfix(objective=f"{values.mean().item():.4f}", refresh=False)

        with torch.no_grad():
            final = vmap(objective, randomness="different")(x.detach(), batch_labels, target_grads, target_norm,
                                                            extra).view(count, restarts)
        best = final.argmin(1)
        images = x.detach().view(count, restarts, *batch_shape)
        return [images[i, best[i]] for i in range(count)]


def _stack_rows(per_target: list[dict], restarts: int) -> dict:
    """Stack each target's tensors (nested dicts allowed), one row per (target, restart)."""
    if not per_target or not per_target[0]:
        return {}
    stacked = {}
    for key, value in per_target[0].items():
        if isinstance(value, dict):
            stacked[key] = _stack_rows([t[key] for t in per_target], restarts)
        else:
            stacked[key] = torch.stack([t[key] for t in per_target]).repeat_interleave(restarts, 0)
    return stacked
