"""GradientHide: hide the private update under extra steps on CLIP-labelled public images.

Stage 1 is the client's usual local update on its private batches. Stage 2 continues from
there with `public_steps` SGD steps on batches drawn from the public pool, labelled in the
task's own classes by the public labeler (CLIP zero-shot, or the oracle). The client uploads
the total change, in which the private gradient is mixed with public ones that pull the
same way for the task, so accuracy holds while gradient inversion loses its target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gradienthide.defenses.base import PUBLIC_LR_SCHEDULES, ClientContext, Defense, PublicSteps

if TYPE_CHECKING:  # torch is imported where the clients train, not by the config check
    import torch


@dataclass
class GradientHide(Defense):
    name = "gradienthide"
    uses_public_pool = True

    public_steps: int = 1
    public_batch_size: int = 32
    public_lr: float = 0.1
    # "constant": public_lr every round; "follow": scaled each round by the factor the server's
    # training.lr_schedule applies to the private lr, so late rounds keep the two in proportion
    public_lr_schedule: str = "constant"
    # Knobs against an attacker who infers the draws (attacks/adaptive_infer.py):
    pool_size: int | None = None  # draw from the first pool_size pool images only (None: all)
    augment: str = "none"  # "flip_shift": each drawn image randomly flipped and shifted, so it is no exact pool atom
    # how the steps' batches relate: "independent" (each step its own random batch, repeats
    # across steps possible), "disjoint" (no pool image twice in a round), "repeated" (one
    # batch for every step)
    draws: str = "independent"

    def __post_init__(self):
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"defenses.gradienthide.augment: {self.augment!r} is not one of {', '.join(AUGMENTATIONS)}")
        if self.draws not in DRAWS:
            raise ValueError(f"defenses.gradienthide.draws: {self.draws!r} is not one of {', '.join(DRAWS)}")
        if self.public_lr_schedule not in PUBLIC_LR_SCHEDULES:
            raise ValueError(f"defenses.gradienthide.public_lr_schedule: {self.public_lr_schedule!r} is not one of "
                             f"{', '.join(PUBLIC_LR_SCHEDULES)}")
        if self.pool_size is not None:
            self.check_pool(self.pool_size)

    def check_pool(self, pool_size: int) -> None:
        """Disjoint draws need steps x batch distinct pool images."""
        needed = self.public_steps * min(self.public_batch_size, pool_size)
        if self.draws == "disjoint" and needed > pool_size:
            raise ValueError(f"defenses.gradienthide.draws: disjoint needs public_steps x public_batch_size = {needed} "
                             f"distinct pool images, but the clients draw from {pool_size}; lower either, "
                             "raise pool_size, or use draws: independent")

    def local_update(self, model, private_batches, context: ClientContext):
        if context.public_images is None or context.public_labels is None:
            raise ValueError("gradienthide needs the public pool and its labels")
        context.train(model, private_batches)  # stage 1
        public_lr = self.public_steps_spec().lr_at(context.protocol)
        context.train(model, self.public_batches(context), lr=public_lr)  # stage 2

    def public_steps_spec(self) -> PublicSteps:
        return PublicSteps(steps=self.public_steps, batch_size=self.public_batch_size, lr=self.public_lr,
                           pool_size=self.pool_size, augment=self.augment, draws=self.draws,
                           lr_schedule=self.public_lr_schedule)

    def public_batches(self, context: ClientContext):
        import torch

        pool_size = len(context.public_images) if self.pool_size is None else min(self.pool_size, len(context.public_images))
        batch_size = min(self.public_batch_size, pool_size)
        self.check_pool(pool_size)
        if self.draws == "disjoint":
            rows = torch.randperm(pool_size, generator=context.generator)[: self.public_steps * batch_size]
            rows = list(rows.view(self.public_steps, batch_size))
        elif self.draws == "repeated":
            rows = [torch.randperm(pool_size, generator=context.generator)[:batch_size]] * self.public_steps
        else:  # independent; drawn step by step, as before this knob existed
            rows = [None] * self.public_steps
        batches = []
        for chosen in rows:
            if chosen is None:
                chosen = torch.randperm(pool_size, generator=context.generator)[:batch_size]
            chosen = chosen.clone()
            context.public_draws.append(chosen)
            chosen = chosen.to(context.public_images.device)
            images = context.public_images[chosen]
            if self.augment == "flip_shift":
                images = flip_and_shift(images, context.generator)
            batches.append((images, context.public_labels[chosen]))
        return batches


AUGMENTATIONS = ("none", "flip_shift")
DRAWS = ("independent", "disjoint", "repeated")


def flip_and_shift(images: torch.Tensor, generator: torch.Generator, most: int = 2) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2 and shifted by up to `most` pixels
    each way (edges repeated), drawn from the client's own generator."""
    import torch

    count, _, height, width = images.shape
    flips = torch.rand(count, generator=generator) < 0.5
    shifts = torch.randint(-most, most + 1, (count, 2), generator=generator)
    padded = torch.nn.functional.pad(torch.where(flips.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images),
                                     (most, most, most, most), mode="replicate")
    return torch.stack([padded[i, :, most + int(dy): most + int(dy) + height, most + int(dx): most + int(dx) + width]
                        for i, (dy, dx) in enumerate(shifts.tolist())])
