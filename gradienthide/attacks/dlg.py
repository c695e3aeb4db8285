"""Deep Leakage from Gradients (Zhu et al., 2019): Euclidean gradient matching with L-BFGS.

Dummy images and dummy label logits start from a standard normal draw and are optimised
jointly so that the gradient they induce on the received model equals the uploaded one:
    || grad_w CE(f(x), softmax(z)) - g ||^2,
where g is the upload read as a gradient (minus the update over the local learning rate).
The published defaults: L-BFGS with step size 1 and no line search, 300 outer steps of up
to 20 iterations each. The label of each image is the argmax of its optimised logits.

With `simulate_local_steps`, a multi-step update is matched by replaying the client's local
steps on the dummy batch (as for Inverting Gradients) instead of a single gradient.

All targets of a job share one L-BFGS run over their stacked variables (the engine in
attacks/optimization.py). Each target's distance is divided by its upload's squared norm, so
every target weighs the same and each one's minimiser is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradienthide.attacks.base import AttackTarget
from gradienthide.attacks.optimization import GradientMatchingAttack


def euclidean_rows(problem) -> dict:
    """Each row's upload read as a gradient and its squared norm (the distance's scale)."""
    lr = problem.protocol.lr
    wanted = {name: problem.per_row([-t.update[name] / lr for t in problem.targets]) for name in problem.net.params}
    return {"wanted": wanted, "scale": sum(w.pow(2).flatten(1).sum(1) for w in wanted.values()).clamp_min(1e-12)}


def euclidean_distance(g: dict[str, torch.Tensor], row: dict, names) -> torch.Tensor:
    return sum((g[name] - row["wanted"][name]).pow(2).sum() for name in names) / row["scale"]


@dataclass
class DeepLeakage(GradientMatchingAttack):
    name = "dlg"
    optimiser = "lbfgs"
    image_init = "normal"

    iterations: int = 300  # L-BFGS steps
    max_iter: int = 20  # L-BFGS iterations per step (torch's default, as in the paper's code)
    lr: float = 1.0
    line_search: str | None = None  # None (the paper's plain L-BFGS) or "strong_wolfe"
    simulate_local_steps: bool = True

    def __post_init__(self):
        if self.line_search not in (None, "strong_wolfe"):
            raise ValueError(f"attacks.{self.name}.line_search: {self.line_search!r} is not null or 'strong_wolfe'")

    def target_labels(self, model, target: AttackTarget) -> torch.Tensor | None:
        return None  # optimised jointly with the images

    def target_rows(self, problem):
        return euclidean_rows(problem)

    def objective(self, problem, x, y, row):
        return euclidean_distance(self.simulated_descent(problem, x, y, {}), row, problem.net.params)
