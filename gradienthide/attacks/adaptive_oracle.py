"""The adaptive attacker given each client's exact public batches: an upper bound.

Not a realistic threat: the pool positions a client drew for its public steps come from
its own randomness and are never uploaded. Given them anyway (training records them apart
from the uploads), the adaptive attacker's simulation of GradientHide's second stage is
exact, so what this attack recovers is what GradientHide's protection would be worth if
the client's public draws leaked. The gap to `adaptive` is the protection that rests on
their secrecy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from gradienthide.attacks.adaptive import AdaptiveAttack


@dataclass
class AdaptiveOracleAttack(AdaptiveAttack):
    name = "adaptive_oracle"
    needs_public_draws: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        if self.public_sample is not None:
            raise ValueError(f"attacks.{self.name}: public_sample does not apply, "
                             "the recorded draws index the whole pool")
        self.public_draws: list[torch.Tensor] | None = None  # set by prepare

    def prepare(self, *, defense, public_pool=None, public_draws=None, seed=0):
        super().prepare(defense=defense, public_pool=public_pool, seed=seed)
        if self.knowledge is not None and public_draws is None:
            raise ValueError(f"attacks.{self.name}: the clients' public draws were not given")
        self.public_draws = public_draws  # each target's [steps, batch] pool positions, in target order

    def assumed_public_batches(self, position):
        if self.public_draws is None:
            raise ValueError("attacks.adaptive_oracle: the clients' public draws were not given (prepare)")
        draws = self.public_draws[position].long()
        if draws.shape[0] != self.knowledge.steps:
            raise ValueError(f"attacks.adaptive_oracle: {draws.shape[0]} recorded public steps, "
                             f"but the defense takes {self.knowledge.steps}")
        return self.knowledge.images[draws], self.knowledge.labels[draws]
