"""The adaptive attacker who infers each client's public draws, then inverts as if given them.

It knows what `adaptive` knows (the protocol, the public pool and its labels, GradientHide's
published settings), not the draws. For each upload it estimates the draws from the upload
itself (gradienthide.draw_inference): a non-negative regression of the upload on the pool's
per-example gradients at the global model (`nnls`), with the drawn labels' histogram read off
the last layer's bias update as a prior (`nnls_labels`), and, for `refined`, rounds that
estimate the private images with the current draws (a short `adaptive_oracle` inversion),
replay the client's exact trajectory from them and redo the regression with gradients taken
where the client took them. Every step keeps to the defense's published `draws` rule
(independent batches, disjoint ones, or one batch repeated). Then it inverts exactly as
`adaptive_oracle` does with the estimated draws. No paper reports this attack.

The estimated draws are kept with the reconstructions; evaluation scores them against the
recorded draws, which the attack job never reads. Per-example gradients need a model without
BatchNorm (a BatchNorm model couples the images of a batch).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from gradienthide import draw_inference
from gradienthide.attacks.adaptive_oracle import AdaptiveOracleAttack
from gradienthide.attacks.base import classifier_bias_name, recover_labels

ESTIMATIONS = ("nnls", "nnls_labels", "refined")


@dataclass
class AdaptiveInferAttack(AdaptiveOracleAttack):
    name = "adaptive_infer"
    needs_public_draws: ClassVar[bool] = False  # it infers them
    infers_public_draws: ClassVar[bool] = True

    estimation: str = "refined"
    refine_rounds: int = 1
    refine_iterations: int = 300  # iterations of each private-image estimate while refining
    memory_budget_mb: float = 512.0  # the pool's per-example gradients are sketched beyond this
    chunk_size: int = 64  # pool images per vmap of per-example gradients

    def __post_init__(self):
        super().__post_init__()
        if self.estimation not in ESTIMATIONS:
            raise ValueError(f"attacks.{self.name}.estimation: {self.estimation!r} is not one of {', '.join(ESTIMATIONS)}")
        self.estimated_draws: list[torch.Tensor] = []
        self.seed = 0
        self.draws_rule = "independent"  # the defense's published `draws` rule, set by prepare

    def prepare(self, *, defense, public_pool=None, public_draws=None, seed=0):
        if public_draws is not None:
            raise ValueError(f"attacks.{self.name}: must not be given the clients' public draws; it infers them")
        super(AdaptiveOracleAttack, self).prepare(defense=defense, public_pool=public_pool, seed=seed)
        self.seed = seed
        spec = defense.public_steps_spec()
        self.batch = None if self.knowledge is None else min(spec.batch_size, len(self.knowledge.labels))
        self.draws_rule = "independent" if spec is None else spec.draws

    def findings(self) -> dict:
        return {"estimated_draws": [draws.tolist() for draws in self.estimated_draws]}

    def prepare_targets(self, net, targets):
        if self.knowledge is None:
            return targets
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.module.modules()):
            raise ValueError(f"attacks.{self.name}: draw inference needs per-example gradients; "
                             "a BatchNorm model (model.norm: batch) couples a batch's images")
        setting = draw_inference.PublicSetting(self.knowledge.images.to(net.device), self.knowledge.labels.to(net.device),
                                               self.knowledge.steps, self.batch, self.knowledge.lr, self.draws_rule)
        sketch = draw_inference.GradientSketch(net.params, rows=len(setting.labels) * setting.steps + 1,
                                               memory_budget_mb=self.memory_budget_mb, seed=self.seed)
        at_global = draw_inference.pool_gradients(net.task_loss, net.params, setting.images, setting.labels, sketch,
                                                  self.chunk_size)
        if self.estimation != "nnls":  # the label prior needs the pool's softmax at the global model
            with torch.no_grad():
                probabilities = torch.cat([net.logits(net.params, setting.images[i : i + self.chunk_size]).softmax(-1)
                                           for i in range(0, len(setting.labels), self.chunk_size)]).cpu()
        bias_name = classifier_bias_name(net.module)
        self.estimated_draws = []
        base_setting = setting
        for target in targets:
            setting = replace(base_setting, lr=self.knowledge.lr_at(target.protocol))  # this round's public lr
            upload = {name: target.update[name].to(net.device).unsqueeze(0) for name in net.params}
            minus_upload = sketch({name: -value for name, value in upload.items()})[0]
            quotas = None
            if self.estimation != "nnls":
                private_labels = (target.known_labels if self.labels == "known" and target.known_labels is not None
                                  else recover_labels(target.update, bias_name, target.num_samples))
                quotas = draw_inference.label_histogram(
                    bias_update=target.update[bias_name], pool_probabilities=probabilities,
                    private_labels=private_labels, private_lr=target.protocol.lr,
                    private_steps=target.protocol.steps_for(target.num_samples), setting=setting)
            draws, _ = draw_inference.regress_draws(target=minus_upload, atoms=at_global, setting=setting, quotas=quotas)
            if self.estimation == "refined":
                for _ in range(self.refine_rounds):
                    draws = self._refine(net, target, draws, setting, sketch, quotas)
            self.estimated_draws.append(draws)
        self.public_draws = self.estimated_draws
        return super().prepare_targets(net, targets)

    def _refine(self, net, target, draws, setting, sketch, quotas):
        """Re-estimate the draws along the client's simulated trajectory."""
        images = self._estimate_private_images(net, target, draws)
        labels = self.target_labels(net.module, target).to(net.device)
        protocol, params = target.protocol, net.params
        after_private = protocol.replay(net.task_loss, params, protocol.split(images, labels), anchor=params)
        after_private = {name: value.detach() for name, value in after_private.items()}
        step_atoms, current = [], after_private
        for step in range(setting.steps):
            step_atoms.append(draw_inference.pool_gradients(net.task_loss, current, setting.images, setting.labels,
                                                            sketch, self.chunk_size))
            chosen = draws[step].to(net.device)
            current = protocol.replay(net.task_loss, current, [(setting.images[chosen], setting.labels[chosen])],
                                      anchor=params, lr=setting.lr)
            current = {name: value.detach() for name, value in current.items()}
        public_change = {name: (target.update[name].to(net.device) - (after_private[name] - params[name])).unsqueeze(0)
                         for name in params}
        minus_public = sketch({name: -value for name, value in public_change.items()})[0]
        return draw_inference.refine_draws(target=minus_public, step_atoms=step_atoms, setting=setting, quotas=quotas)

    def _estimate_private_images(self, net, target, draws) -> torch.Tensor:
        """A short adaptive_oracle inversion with the current draws."""
        inner = AdaptiveOracleAttack(iterations=self.refine_iterations, restarts=1, lr=self.lr,
                                     tv_weight=self.tv_weight, labels=self.labels, mode="simulate",
                                     simulate_local_steps=self.simulate_local_steps)
        inner.knowledge, inner.public_draws = self.knowledge, [draws]
        image_shape = tuple(self.knowledge.images.shape[1:])
        (images, _), = inner.invert(net.module, [target], image_shape, self.seed, progress=False)
        return images.to(net.device)
