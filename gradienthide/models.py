"""The classifiers trained by federated learning (and attacked)."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class ConvNet(nn.Module):
    """Three 3x3 convolutions (the last two stride 2) and a linear head.

    Small enough to train and attack on a CPU; no BatchNorm, so a gradient depends only
    on the batch and the weights, as the attacks assume.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 16, activation: str = "relu"):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), act(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), act(),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1), act(),
            nn.Flatten(),
        )
        with torch.no_grad():
            feature_size = self.features(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.classifier = nn.Linear(feature_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build_model(model_config: dict, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, height, width = image_shape
    if height != width:
        raise ValueError(f"model: square images expected, got {height}x{width}")
    if model_config["arch"] != "convnet":
        raise ValueError(f"model.arch: unknown architecture {model_config['arch']!r}")
    return ConvNet(channels, num_classes, height, width=model_config.get("width", 16),
                   activation=model_config.get("activation", "relu"))


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers, detached copies, by name."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
