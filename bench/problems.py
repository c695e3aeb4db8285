"""Small attack problems shared by the benchmarks and the engine's equivalence test: a model
and targets (uploads of real handwritten digits, scikit-learn's bundled set, under no defense)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from gradienthide.attacks import AttackTarget
from gradienthide.defenses import ClientContext, make_defense
from gradienthide.models import build_model
from gradienthide.protocol import ClientProtocol


def digit_images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False).clamp(0, 1), torch.tensor(digits.target)


def make_model(arch: str, *, size: int = 16, width: int | None = None, norm: str = "none", seed: int = 0):
    torch.manual_seed(seed)
    config = {"arch": arch}
    if width is not None:
        config["width"] = width
    if arch in ("convnet", "resnet18"):
        config["norm"] = norm
    return build_model(config, (1, size, size), 10)


def make_targets(model, count: int, *, batch: int = 8, size: int = 16, lr: float = 0.1) -> list[AttackTarget]:
    """`count` uploads of one local step on consecutive batches of digits."""
    images, labels = digit_images(size)
    protocol = ClientProtocol(local_steps=1, batch_size=batch, lr=lr)
    targets = []
    for t in range(count):
        x, y = images[t * batch:(t + 1) * batch], labels[t * batch:(t + 1) * batch]
        context = ClientContext(protocol, torch.Generator())
        update = make_defense("none").client_update(copy.deepcopy(model), [(x, y)], context)
        targets.append(AttackTarget(update, len(y), y, protocol))
    return targets
