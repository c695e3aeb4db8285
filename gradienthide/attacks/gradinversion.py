"""GradInversion (Yin et al., 2021): batch label recovery, a fidelity term, a BatchNorm
statistics prior and group consistency across restarts.

- Labels: the class of each image is read off the last layer's weight gradient. Row k of
  that gradient is (p_k - y_k) times the batch's features, so the rows of classes in the
  batch hold the most negative entries; the batch's labels are the classes with the most
  negative row minima, one per image (the paper assumes no class repeats in a batch).
- Fidelity: the squared distance between the dummy batch's gradient and the upload read as
  a gradient (as DLG, divided by the upload's squared norm).
- BatchNorm prior: at every BatchNorm layer, the dummy batch's per-channel mean and variance
  should equal the received model's running statistics (the data's statistics as the model
  knows them, so attack a round where the model has seen data).
- Image priors: total variation and the squared l2 norm of the images.
- Group consistency: several restarts per target run side by side, each pulled towards the
  group's mean image (refreshed every `group_every` iterations); the fused result is that mean.

Adam on all (target, restart) rows at once through torch.func.vmap, with the step size cut
tenfold at 3/8, 5/8 and 7/8 of the iterations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap
from tqdm import tqdm

from gradienthide.attacks.base import Attack, AttackTarget, group_targets, total_variation
from gradienthide.attacks.dlg import descent_per_lr
from gradienthide.models import as_client_forward


def last_linear_weight_name(model: nn.Module) -> str:
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = f"{name}.weight" if name else "weight"
    if last is None:
        raise ValueError("GradInversion's label recovery needs a final nn.Linear layer")
    return last


def recover_batch_labels(update: dict[str, torch.Tensor], weight_name: str, batch_size: int) -> torch.Tensor:
    """Yin et al.'s rule on an SGD update (minus a gradient): the classes whose weight-update
    rows have the largest maxima (most negative gradient minima), one per image; a batch
    larger than the number of classes repeats them in that order."""
    row_signal = update[weight_name].detach().float().amax(dim=1)
    ranked = torch.argsort(row_signal, descending=True)
    return ranked.repeat(-(-batch_size // len(ranked)))[:batch_size]


@dataclass
class GradInversion(Attack):
    name = "gradinversion"

    iterations: int = 2000
    restarts: int = 4  # the group: restarts per target that are kept consistent
    lr: float = 0.1
    bn_weight: float = 0.1
    tv_weight: float = 1e-4
    l2_weight: float = 1e-6
    group_weight: float = 0.01
    group_every: int = 100
    simulate_local_steps: bool = True

    def invert(self, model, targets, image_shape, seed, progress=True):
        batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not batchnorms:
            raise ValueError("attacks.gradinversion: the model has no BatchNorm layer (set model.norm: batch)")
        as_client_forward(model)  # batch statistics in the forward pass, running ones untouched
        weight_name = last_linear_weight_name(model)
        results: list = [None] * len(targets)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        for (batch_size, steps, local_lr), members in group_targets(targets, self.simulate_local_steps).items():
            labels = [recover_batch_labels(targets[i].update, weight_name, batch_size) for i in members]
            images = self._optimise(model, batchnorms, [targets[i] for i in members], labels, (batch_size, *image_shape),
                                    steps, local_lr, generator, progress)
            for i, reconstruction, used in zip(members, images, labels):
                results[i] = (reconstruction.cpu(), used.cpu())
        return results

    def _optimise(self, model, batchnorms, targets, labels, batch_shape, steps, local_lr, generator, progress):
        device = next(model.parameters()).device
        params = {name: p.detach() for name, p in model.named_parameters()}
        buffers = {name: b.detach() for name, b in model.named_buffers()}
        restarts, count = self.restarts, len(targets)
        # Row k of every batched tensor is restart k % restarts of target k // restarts.
        wanted = {name: torch.stack([-t.update[name].to(device) / local_lr for t in targets]).repeat_interleave(restarts, 0)
                  for name in params}
        scale = sum(w.pow(2).flatten(1).sum(1) for w in wanted.values()).clamp_min(1e-12)
        batch_labels = torch.stack(labels).to(device).repeat_interleave(restarts, 0)
        running = [(m.running_mean.detach(), m.running_var.detach()) for m in batchnorms]
        captured: list[torch.Tensor] = []
        capturing = [False]

        def capture(module, inputs):
            if capturing[0]:
                captured.append(inputs[0])

        hooks = [m.register_forward_pre_hook(capture) for m in batchnorms]

        def task_loss(p, x, y):
            return F.cross_entropy(functional_call(model, (p, buffers), (x,)), y)

        def bn_prior(x):
            captured.clear()
            capturing[0] = True
            functional_call(model, (params, buffers), (x,))
            capturing[0] = False
            loss = 0.0
            for features, (mean, var) in zip(captured, running):
                loss = loss + (features.mean((0, 2, 3)) - mean).norm() + (features.var((0, 2, 3), unbiased=False) - var).norm()
            return loss

        def objective(x, y, wanted, scale, group_mean):
            g = descent_per_lr(task_loss, params, x, y, steps, local_lr)
            fidelity = sum((g[name] - wanted[name]).pow(2).sum() for name in params) / scale
            return (fidelity + self.bn_weight * bn_prior(x) + self.tv_weight * total_variation(x)
                    + self.l2_weight * x.pow(2).sum() + self.group_weight * (x - group_mean).pow(2).mean())

        objective_and_grad = vmap(grad_and_value(objective), randomness="different")
        x = torch.rand((count * restarts, *batch_shape), generator=generator).to(device).requires_grad_(True)
        optimiser = torch.optim.Adam([x], lr=self.lr)
        milestones = [int(self.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)
        group_mean = self._group_mean(x, count)
        bar = tqdm(range(self.iterations), desc=f"{self.name}: {count} updates x {restarts} restarts", unit="it",
                   disable=not progress, mininterval=2.0)
        try:
            for iteration in bar:
                if iteration % self.group_every == 0:
                    group_mean = self._group_mean(x, count)
                x_grad, values = objective_and_grad(x.detach(), batch_labels, wanted, scale, group_mean)
                optimiser.zero_grad()
                x.grad = x_grad
                optimiser.step()
                schedule.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
                bar.set_postfix(objective=f"{values.mean().item():.4f}", refresh=False)
        finally:
            for hook in hooks:
                hook.remove()
        return list(x.detach().view(count, restarts, *batch_shape).mean(1))

    def _group_mean(self, x: torch.Tensor, count: int) -> torch.Tensor:
        """Each row's group mean (the fused image of its target), detached."""
        grouped = x.detach().view(count, self.restarts, *x.shape[1:])
        return grouped.mean(1, keepdim=True).expand_as(grouped).reshape(x.shape)
