"""Plain reference loops for the gradient-matching attacks, written the obvious way.

One target and one restart at a time, an nn.Module, torch.autograd.grad with
create_graph=True and Python sums over the parameters. The engine
(gradienthide/attacks/optimization.py) is benchmarked against these (bench/attack_engine.py)
and tested to reconstruct what they reconstruct (tests/test_attack_engine.py). They cover the
single-gradient case (one local step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _model_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    loss = F.cross_entropy(model(x), y)
    return list(torch.autograd.grad(loss, list(model.parameters()), create_graph=True))


def _tv(x: torch.Tensor) -> torch.Tensor:
    return (x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()


def _schedule(optimiser, iterations):
    milestones = [int(iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    return torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)


def inverting_gradients(model, update, labels, init, *, iterations, lr=0.1, tv_weight=1e-4):
    """Cosine matching with TV, Adam on the signed gradient, images boxed to [0, 1].
    `init`: [samples, C, H, W]; returns the images and the final objective."""
    wanted = [-update[name] for name, _ in model.named_parameters()]
    wanted_norm = torch.sqrt(sum(w.pow(2).sum() for w in wanted))
    x = init.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([x], lr=lr)
    schedule = _schedule(optimiser, iterations)

    def objective():
        g = _model_gradient(model, x, labels)
        dot = sum((gi * wi).sum() for gi, wi in zip(g, wanted))
        norm = torch.sqrt(sum(gi.pow(2).sum() for gi in g))
        return 1 - dot / (norm * wanted_norm + 1e-12) + tv_weight * _tv(x)

    for _ in range(iterations):
        optimiser.zero_grad()
        loss = objective()
        (x_grad,) = torch.autograd.grad(loss, x)
        x.grad = x_grad.sign()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach(), objective().detach()


def deep_leakage(model, update, lr_client, init_x, init_logits, *, iterations, max_iter=20, lr=1.0):
    """Euclidean matching of images and label logits by L-BFGS (no line search); returns the
    images and labels of the lowest objective seen."""
    wanted = [-update[name] / lr_client for name, _ in model.named_parameters()]
    scale = sum(w.pow(2).sum() for w in wanted).clamp_min(1e-12)
    x = init_x.clone().requires_grad_(True)
    z = init_logits.clone().requires_grad_(True)
    best = [float("inf"), x.detach().clone(), z.detach().clone()]

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(model(x), z.softmax(-1))
        g = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
        distance = sum((gi - wi).pow(2).sum() for gi, wi in zip(g, wanted)) / scale
        distance.backward()
        if distance.item() < best[0]:
            best[:] = [distance.item(), x.detach().clone(), z.detach().clone()]
        return distance

    optimiser = torch.optim.LBFGS([x, z], lr=lr, max_iter=max_iter)
    for _ in range(iterations):
        optimiser.step(closure)
    return best[1].clamp(0, 1), best[2].argmax(-1)


def gradinversion(model, update, lr_client, labels, init, *, iterations, lr=0.1, bn_weight=0.1, tv_weight=1e-4,
                  l2_weight=1e-6, group_weight=0.01, group_every=100):
    """Euclidean fidelity, BatchNorm statistics prior, TV, l2 and group consistency for one
    target's restarts (`init`: [restarts, samples, C, H, W]), one restart after another per
    iteration; returns the restarts' mean image. `model` computes with batch statistics."""
    wanted = [-update[name] / lr_client for name, _ in model.named_parameters()]
    scale = sum(w.pow(2).sum() for w in wanted).clamp_min(1e-12)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    captured = []
    hooks = [m.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0])) for m in norms]
    xs = [init[r].clone().requires_grad_(True) for r in range(len(init))]
    optimiser = torch.optim.Adam(xs, lr=lr)
    schedule = _schedule(optimiser, iterations)
    try:
        for iteration in range(iterations):
            if iteration % group_every == 0:
                group_mean = torch.stack([x.detach() for x in xs]).mean(0)
            for x in xs:
                captured.clear()
                loss = F.cross_entropy(model(x), labels)
                g = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
                fidelity = sum((gi - wi).pow(2).sum() for gi, wi in zip(g, wanted)) / scale
                statistics = sum((f.mean((0, 2, 3)) - m.running_mean).norm()
                                 + (f.var((0, 2, 3), unbiased=False) - m.running_var).norm()
                                 for f, m in zip(captured, norms))
                objective = (fidelity + bn_weight * statistics + tv_weight * _tv(x) + l2_weight * x.pow(2).sum()
                             + group_weight * (x - group_mean).pow(2).mean())
                (x.grad,) = torch.autograd.grad(objective, x)
            optimiser.step()
            schedule.step()
            with torch.no_grad():
                for x in xs:
                    x.clamp_(0, 1)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack([x.detach() for x in xs]).mean(0)
