"""Client-level differential privacy: clip each upload to norm C, add Gaussian noise sigma*C.

The epsilon reported is that of the subsampled Gaussian mechanism with noise multiplier
sigma, sample rate clients_per_round / num_clients and one step per round, from opacus' RDP
accountant. Each client adds its own noise, so the noise on the average is larger than the
central mechanism's and the reported epsilon is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradienthide.defenses.base import Defense


@dataclass
class DifferentialPrivacy(Defense):
    name = "dp"

    sigma: float = 0.1  # noise multiplier: noise std is sigma * clip_norm
    clip_norm: float = 1.0
    delta: float = 1e-5

    def transform_update(self, update, context):
        norm = torch.sqrt(sum(u.pow(2).sum() for u in update.values()))
        scale = torch.clamp(self.clip_norm / (norm + 1e-12), max=1.0)
        noisy = {}
        for name, tensor in update.items():
            noise = torch.randn(tensor.shape, generator=context.generator).to(tensor.device)
            noisy[name] = tensor * scale + self.sigma * self.clip_norm * noise
        return noisy

    def privacy_spent(self, sample_rate, rounds):
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = [(self.sigma, sample_rate, rounds)]
        return {"epsilon": float(accountant.get_epsilon(self.delta)), "delta": self.delta}
