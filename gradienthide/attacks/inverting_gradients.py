"""Inverting Gradients (Geiping et al., 2020): cosine gradient matching with a TV prior.

The attacker optimises dummy images so that the gradient they induce on the received global
model points the same way as the uploaded update (an SGD update is minus a gradient):
    1 - cos(grad_w L(x, y), -update) + tv_weight * TV(x),
with Adam on the signed gradient, the step size cut tenfold at 3/8, 5/8 and 7/8 of the
iterations, images boxed to [0, 1], and several random restarts, of which the one with the
lowest final objective is kept (the engine in attacks/optimization.py).

With `simulate_local_steps` (the paper's variant for FedAvg), the attacker does not treat a
multi-step update as one gradient: it splits the dummy batch into the protocol's local
batches, replays the client's local steps on them, and matches the simulated total change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradienthide.attacks.base import AttackTarget, classifier_bias_name, recover_labels, total_variation
from gradienthide.attacks.optimization import GradientMatchingAttack, stack_rows


@dataclass
class InvertingGradients(GradientMatchingAttack):
    name = "ig"
    signed_gradients = True

    iterations: int = 2000
    restarts: int = 2
    lr: float = 0.1
    tv_weight: float = 1e-4
    labels: str = "known"
    simulate_local_steps: bool = True

    def __post_init__(self):
        if self.labels not in ("known", "recovered"):
            raise ValueError(f"attacks.{self.name}.labels: {self.labels!r} is not 'known' or 'recovered'")

    @property
    def label_source(self) -> str:
        return self.labels

    def target_labels(self, model, target: AttackTarget) -> torch.Tensor:
        if self.labels == "known":
            if target.known_labels is None:
                raise ValueError(f"attacks.{self.name}.labels is 'known' but the update came without labels")
            return target.known_labels
        return recover_labels(target.update, classifier_bias_name(model), target.num_samples)

    def target_rows(self, problem):
        wanted = {name: problem.per_row([-t.update[name] for t in problem.targets]) for name in problem.net.params}
        return {"wanted": wanted,
                "wanted_norm": torch.sqrt(sum(g.pow(2).flatten(1).sum(1) for g in wanted.values())),
                "extra": stack_rows([t.extra for t in problem.targets], problem)}

    def objective(self, problem, x, y, row):
        g = self.simulated_descent(problem, x, y, row["extra"])
        wanted = row["wanted"]
        dot = sum((g[name] * wanted[name]).sum() for name in problem.net.params)
        norm = torch.sqrt(sum(g[name].pow(2).sum() for name in problem.net.params))
        return 1 - dot / (norm * row["wanted_norm"] + 1e-12) + self.tv_weight * total_variation(x)
