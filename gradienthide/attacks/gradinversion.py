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

Adam on all (target, restart) rows at once, with the step size cut tenfold at 3/8, 5/8 and
7/8 of the iterations (the engine in attacks/optimization.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import grad

from gradienthide.attacks.base import total_variation
from gradienthide.attacks.dlg import euclidean_distance, euclidean_rows
from gradienthide.attacks.optimization import GradientMatchingAttack
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


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class BatchNormInputs:
    """While entered, hands back what each BatchNorm layer receives in one forward pass."""

    def __init__(self, model: nn.Module):
        self.layers = batchnorm_layers(model)
        self.running = [(m.running_mean.detach(), m.running_var.detach()) for m in self.layers]
        self.captured: list[torch.Tensor] = []
        self.active = False
        self.hooks = []

    def __enter__(self):
        self.hooks = [m.register_forward_pre_hook(self._capture) for m in self.layers]
        return self

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()

    def _capture(self, module, inputs):
        if self.active:
            self.captured.append(inputs[0])

    def statistics_gap(self, net, images: torch.Tensor, captured: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Sum over layers of the distances of the batch's channel means and variances to the
        running ones; `captured`: the layers' inputs from a forward pass already made."""
        if captured is None:
            captured = self.forward_inputs(net.logits, net.params, images)[1]
        loss = 0.0
        for features, (mean, var) in zip(captured, self.running):
            loss = loss + (features.mean((0, 2, 3)) - mean).norm() + (features.var((0, 2, 3), unbiased=False) - var).norm()
        return loss

    def forward_inputs(self, function, *args):
        """`function(*args)` and the BatchNorm layers' inputs in that forward pass."""
        self.captured.clear()
        self.active = True
        try:
            value = function(*args)
        finally:
            self.active = False
        return value, list(self.captured)


@dataclass
class GradInversion(GradientMatchingAttack):
    name = "gradinversion"
    fusion = "mean"

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
        if not batchnorm_layers(model):
            raise ValueError("attacks.gradinversion: the model has no BatchNorm layer (set model.norm: batch)")
        as_client_forward(model)  # batch statistics in the forward pass, running ones untouched
        return super().invert(model, targets, image_shape, seed, progress)

    def target_labels(self, model, target):
        return recover_batch_labels(target.update, last_linear_weight_name(model), target.num_samples)

    def target_rows(self, problem):
        return euclidean_rows(problem)

    def objective_context(self, problem):
        self._batchnorm = BatchNormInputs(problem.net.module)
        return self._batchnorm

    def refresh_rows(self, problem, x, iteration, rows):
        if iteration % self.group_every == 0:  # each row's group mean: its target's fused image
            grouped = x.detach().view(problem.count, self.restarts, *x.shape[1:])
            rows["group_mean"] = grouped.mean(1, keepdim=True).expand_as(grouped).reshape(x.shape)

    def objective(self, problem, x, y, row):
        if problem.steps == 1:
            # one forward pass serves both the gradient and the BatchNorm prior (same model, same batch)
            g, captured = grad(lambda params: self._batchnorm.forward_inputs(problem.net.task_loss, params, x, y),
                               has_aux=True)(problem.net.params)
        else:
            g, captured = self.simulated_descent(problem, x, y, {}), None
        fidelity = euclidean_distance(g, row, problem.net.params)
        return (fidelity + self.bn_weight * self._batchnorm.statistics_gap(problem.net, x, captured)
                + self.tv_weight * total_variation(x) + self.l2_weight * x.pow(2).sum()
                + self.group_weight * (x - row["group_mean"]).pow(2).mean())
