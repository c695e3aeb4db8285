"""The classifiers trained by federated learning (and attacked)."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class ConvNet(nn.Module):
    """Three 3x3 convolutions (the last two stride 2) and a linear head.

    Small enough to train and attack on a CPU. With `norm="batch"` each convolution is
    followed by BatchNorm (GradInversion's prior matches its running statistics).
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 16, activation: str = "relu",
                 norm: str = "none"):
        super().__init__()
        act = ACTIVATIONS[activation]
        if norm not in ("none", "batch"):
            raise ValueError(f"model.norm: {norm!r} is not 'none' or 'batch'")

        def block(channels_in, channels_out, stride):
            conv = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1)
            return [conv, nn.BatchNorm2d(channels_out), act()] if norm == "batch" else [conv, act()]

        self.features = nn.Sequential(
            *block(in_channels, width, 1), *block(width, 2 * width, 2), *block(2 * width, 2 * width, 2), nn.Flatten())
        with torch.no_grad():  # in eval mode, so that BatchNorm's running statistics stay untouched
            feature_size = self.features.eval()(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
        self.features.train()
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
                   activation=model_config.get("activation", "relu"), norm=model_config.get("norm", "none"))


def as_client_forward(model: nn.Module) -> nn.Module:
    """Make `model` compute what a client differentiates, for an attacker's functional calls:
    training mode, BatchNorm normalising by the batch's statistics without updating the
    running ones (which stay as buffers, e.g. for GradInversion's prior)."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.track_running_stats = False
    return model


def load_model(path, model_config: dict, *, adapt=None, device="cpu") -> nn.Module:
    """Rebuild a saved model (a global or final model of a run) from what its file records:
    the architecture from `model_config`, its shape from the file's `model_info`, changed by
    `adapt` (the defense's adapt_model, e.g. PRECODE's bottleneck) before its weights load."""
    from gradienthide import artifacts

    info = artifacts.load_json_metadata(path, "model_info")
    model = build_model(model_config, tuple(info["image_shape"]), info["num_classes"])
    if adapt is not None:
        model = adapt(model)
    model.to(device).load_state_dict(artifacts.load_tensors(path, device))
    return model


def image_shape_of(path) -> tuple[int, int, int]:
    """The image shape a saved model takes, from its `model_info`."""
    from gradienthide import artifacts

    return tuple(artifacts.load_json_metadata(path, "model_info")["image_shape"])
