"""The classifiers trained by federated learning (and attacked), by name.

Every architecture is a `features` module (images in [0, 1] -> a flat representation) and a
linear `classifier` head, which is what the defenses build on: PRECODE puts its bottleneck
between the two, Soteria scores the representation `features` produces. With
`model.normalize` the first step of `features` subtracts the training images' per-channel
mean and divides by their std (constants kept as buffers, so they travel in the state dict),
so attacks and metrics keep working in [0, 1] image space.

| arch | what it is | width (default) | norm (default) |
| --- | --- | --- | --- |
| lenet | DLG's LeNet (Zhu et al., 2019): three 5x5 convolutions (strides 2, 2, 1), sigmoids | 12 | none only |
| convnet | three 3x3 convolutions (the last two stride 2), a linear head | 16 | none or batch |
| resnet18 | torchvision's ResNet-18 with the CIFAR stem: 3x3 convolution, no max-pool | 64 only | batch or none |

Inverting Gradients' ConvNet family is studied through its width; `convnet` has that knob
(and BatchNorm as an option) at three layers, where Geiping et al.'s is eight convolutions
deep with max-pooling: the width trend is what the study compares, and the shallow net keeps
CPU runs feasible. Their deeper variant is not reproduced.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from gradienthide.architectures import ARCHITECTURES, resolve_model_config

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class Normalize(nn.Module):
    """(x - mean) / std per channel; the constants are buffers, fixed during training."""

    def __init__(self, mean, std):
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.ndim != 1 or mean.shape != std.shape:
            raise ValueError(f"Normalize: mean and std must be per-channel lists of one length, got {mean.tolist()} and {std.tolist()}")
        if not bool((std > 0).all()):
            raise ValueError(f"Normalize: std must be positive, got {std.tolist()}")
        self.register_buffer("mean", mean.view(-1, 1, 1))
        self.register_buffer("std", std.view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _feature_size(features: nn.Module, in_channels: int, image_size: int) -> int:
    with torch.no_grad():  # in eval mode, so that BatchNorm's running statistics stay untouched
        size = features.eval()(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
    features.train()
    return size


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
        self.classifier = nn.Linear(_feature_size(self.features, in_channels, image_size), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class LeNet(nn.Module):
    """DLG's LeNet (Zhu et al., 2019): three 5x5 convolutions with `width` channels (12 in the
    paper), strides 2, 2 and 1, padding 2, each followed by a sigmoid (twice differentiable
    everywhere, which their L-BFGS matching relies on), and one linear layer."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 12,
                 activation: str = "sigmoid"):
        super().__init__()
        act = ACTIVATIONS[activation]
        layers = []
        for index, stride in enumerate((2, 2, 1)):
            layers += [nn.Conv2d(in_channels if index == 0 else width, width, 5, stride=stride, padding=2), act()]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Linear(_feature_size(self.features, in_channels, image_size), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with the CIFAR stem (a 3x3 stride-1 convolution, no max-pool),
    split into `features` (through global average pooling) and the linear `classifier`.
    `norm="none"` puts identities where BatchNorm was (for attacks that need per-example
    gradients)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, norm: str = "batch"):
        super().__init__()
        import torchvision

        if norm not in ("none", "batch"):
            raise ValueError(f"model.norm: {norm!r} is not 'none' or 'batch'")
        norm_layer = nn.BatchNorm2d if norm == "batch" else (lambda channels: nn.Identity())
        net = torchvision.models.resnet18(num_classes=num_classes, norm_layer=norm_layer)
        net.conv1 = nn.Conv2d(in_channels, net.conv1.out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's own
        for module in net.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False  # torch.func's transforms (vmap, jacfwd) and in-place ops do not mix
        self.features = nn.Sequential(OrderedDict(
            conv1=net.conv1, bn1=net.bn1, relu=net.relu, layer1=net.layer1, layer2=net.layer2, layer3=net.layer3,
            layer4=net.layer4, avgpool=net.avgpool, flatten=nn.Flatten()))  # no max-pool: the CIFAR stem
        self.classifier = net.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# the networks by model.arch; what each takes and defaults to is in gradienthide.architectures
BUILDERS: dict[str, Callable[..., nn.Module]] = {"lenet": LeNet, "convnet": ConvNet, "resnet18": ResNet18}


def build_model(model_config: dict, image_shape: tuple[int, int, int], num_classes: int,
                channel_stats: dict | None = None) -> nn.Module:
    """The architecture `model_config` names, for images of `image_shape` in [0, 1].

    With `model.normalize: true`, `channel_stats` ({"mean": [...], "std": [...]} per channel,
    in [0, 1] units) become the model's first step (its constants are in the state dict too).
    """
    channels, height, width = image_shape
    if height != width:
        raise ValueError(f"model: square images expected, got {height}x{width}")
    config = resolve_model_config(model_config)
    options = ARCHITECTURES[config["arch"]].options
    model = BUILDERS[config["arch"]](channels, num_classes, height, **{key: config[key] for key in options})
    if config["normalize"]:
        if channel_stats is None:
            raise ValueError("model.normalize: true needs the training images' per-channel mean and std "
                             "(the prepared dataset's channel_stats, or a saved model's model_info.normalization)")
        if len(channel_stats["mean"]) != channels or len(channel_stats["std"]) != channels:
            raise ValueError(f"model.normalize: channel statistics for {len(channel_stats['mean'])} channels, but "
                             f"the images have {channels}")
        model.features = _prepend(Normalize(channel_stats["mean"], channel_stats["std"]), model.features)
    return model


def _prepend(first: nn.Module, features: nn.Sequential) -> nn.Sequential:
    named = list(features.named_children())
    if all(name.isdigit() for name, _ in named):  # keep the indices' meaning: 0 is the normalisation
        return nn.Sequential(first, *(module for _, module in named))
    return nn.Sequential(OrderedDict([("normalize", first), *named]))


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
    `adapt` (the defense's adapt_model, e.g. PRECODE's bottleneck) before its weights load
    (the normalisation constants among them)."""
    from gradienthide import artifacts

    info = artifacts.load_json_metadata(path, "model_info")
    model = build_model(model_config, tuple(info["image_shape"]), info["num_classes"],
                        channel_stats=info.get("normalization"))
    if adapt is not None:
        model = adapt(model)
    model.to(device).load_state_dict(artifacts.load_tensors(path, device))
    return model


def image_shape_of(path) -> tuple[int, int, int]:
    """The image shape a saved model takes, from its `model_info`."""
    from gradienthide import artifacts

    return tuple(artifacts.load_json_metadata(path, "model_info")["image_shape"])
