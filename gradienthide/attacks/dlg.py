"""Deep Leakage from Gradients (Zhu et al., 2019): Euclidean gradient matching with L-BFGS.

Dummy images and dummy label logits start from a standard normal draw and are optimised
jointly so that the gradient they induce on the received model equals the uploaded one:
    || grad_w CE(f(x), softmax(z)) - g ||^2,
where g is the upload read as a gradient (minus the update over the local learning rate).
The published defaults: L-BFGS with step size 1 and no line search, 300 outer steps of up
to 20 iterations each.
The label of each image is the argmax of its optimised logits.

With `simulate_local_steps`, a multi-step update is matched by replaying the client's SGD
steps on the dummy batch (as for Inverting Gradients) instead of a single gradient.

All targets of a job share one L-BFGS run over their stacked variables. Each target's
distance is divided by its upload's squared norm, so every target weighs the same and each
one's minimiser is unchanged; the per-target distances come from one torch.func.vmap. The
iterate with the lowest distance seen is kept per target (plain L-BFGS can diverge).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, grad_and_value, vmap
from tqdm import tqdm

from gradienthide.attacks.base import Attack, AttackTarget, classifier_bias_name, group_targets, sgd_replay


def descent_per_lr(task_loss, params, x, y, steps, local_lr):
    """What an upload for data (x, y) reads as a gradient: minus the update over the local lr."""
    if steps == 1:
        return grad(task_loss)(params, x, y)
    final = sgd_replay(task_loss, params, zip(x.chunk(steps), y.chunk(steps)), local_lr)
    return {name: (params[name] - final[name]) / local_lr for name in params}


@dataclass
class DeepLeakage(Attack):
    name = "dlg"

    iterations: int = 300  # L-BFGS steps
    max_iter: int = 20  # L-BFGS iterations per step (torch's default, as in the paper's code)
    lr: float = 1.0
    line_search: str | None = None  # None (the paper's plain L-BFGS) or "strong_wolfe"
    simulate_local_steps: bool = True

    learns_labels = True  # DLG optimises the labels; iDLG recovers them first

    def __post_init__(self):
        if self.line_search not in (None, "strong_wolfe"):
            raise ValueError(f"attacks.{self.name}.line_search: {self.line_search!r} is not null or 'strong_wolfe'")

    def initial_labels(self, model, target: AttackTarget) -> torch.Tensor | None:
        return None

    def invert(self, model, targets, image_shape, seed, progress=True):
        results: list = [None] * len(targets)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        for (batch_size, steps, local_lr), members in group_targets(targets, self.simulate_local_steps).items():
            chosen = [targets[i] for i in members]
            images, labels = self._optimise(model, chosen, (batch_size, *image_shape), steps, local_lr, generator, progress)
            for i, reconstruction, used in zip(members, images, labels):
                results[i] = (reconstruction.cpu(), used.cpu())
        return results

    def _optimise(self, model, targets, batch_shape, steps, local_lr, generator, progress):
        device = next(model.parameters()).device
        params = {name: p.detach() for name, p in model.named_parameters()}
        buffers = {name: b.detach() for name, b in model.named_buffers()}
        classes = params[classifier_bias_name(model)].shape[0]
        count = len(targets)
        wanted = {name: torch.stack([-t.update[name].to(device) / local_lr for t in targets]) for name in params}
        scale = sum(w.pow(2).flatten(1).sum(1) for w in wanted.values()).clamp_min(1e-12)

        def task_loss(p, x, y):
            return F.cross_entropy(functional_call(model, (p, buffers), (x,)), y)

        def distance(x, labels_or_logits, wanted, scale):
            y = labels_or_logits.softmax(-1) if self.learns_labels else labels_or_logits
            g = descent_per_lr(task_loss, params, x, y, steps, local_lr)
            return sum((g[name] - wanted[name]).pow(2).sum() for name in params) / scale

        x = torch.randn((count, *batch_shape), generator=generator).to(device).requires_grad_(True)
        if self.learns_labels:
            y = torch.randn((count, batch_shape[0], classes), generator=generator).to(device).requires_grad_(True)
            variables, argnums = [x, y], (0, 1)
        else:
            y = torch.stack([self.initial_labels(model, t).to(device) for t in targets])
            variables, argnums = [x], (0,)
        batched = vmap(grad_and_value(distance, argnums=argnums), randomness="different")
        best_value = torch.full((count,), float("inf"), device=device)
        best_x, best_y = x.detach().clone(), y.detach().clone()
        diverged = False

        def closure():
            nonlocal diverged
            grads, values = batched(x.detach(), y.detach(), wanted, scale)
            if not torch.isfinite(values).all():
                diverged = True  # zero gradients make L-BFGS stop; the best iterates are kept
                grads = tuple(torch.zeros_like(v) for v in variables)
            better = values < best_value
            best_value[better] = values[better].detach()
            best_x[better] = x.detach()[better]
            best_y[better] = y.detach()[better]
            for variable, variable_grad in zip(variables, grads):
                variable.grad = variable_grad.contiguous()  # L-BFGS flattens it with view
            return torch.nan_to_num(values.sum(), nan=0.0, posinf=0.0)

        optimiser = torch.optim.LBFGS(variables, lr=self.lr, max_iter=self.max_iter, line_search_fn=self.line_search)
        bar = tqdm(range(self.iterations), desc=f"{self.name}: {count} updates", unit="step", disable=not progress,
                   mininterval=2.0)
        for _ in bar:
            optimiser.step(closure)
            bar.set_postfix(distance=f"{best_value.mean().item():.4g}", refresh=False)
            if diverged:
                break
        labels = best_y.argmax(-1) if self.learns_labels else best_y
        return best_x.clamp(0, 1), labels
