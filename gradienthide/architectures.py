"""The model.* settings each architecture takes and their defaults, without torch: the config
check resolves them while Snakemake parses the workflow. gradienthide.models builds the
networks (its BUILDERS, by the same names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    defaults: dict  # what a config's null (or absent) width, activation, norm mean for it
    options: tuple[str, ...]  # the model.* keys passed to its constructor
    choices: dict  # the values a key may take, where the architecture restricts them
    reasons: dict  # why, per restricted key


ARCHITECTURES: dict[str, Architecture] = {
    "lenet": Architecture(
        {"width": 12, "activation": "sigmoid", "norm": "none"}, ("width", "activation"),
        {"norm": ("none",)}, {"norm": "DLG's LeNet has no normalisation layers (use convnet or resnet18 for BatchNorm)"}),
    "convnet": Architecture(
        {"width": 16, "activation": "relu", "norm": "none"}, ("width", "activation", "norm"), {}, {}),
    "resnet18": Architecture(
        {"width": 64, "activation": "relu", "norm": "batch"}, ("norm",),
        {"width": (64,), "activation": ("relu",)},
        {"width": "ResNet-18's stages are torchvision's fixed 64-128-256-512 channels (leave model.width unset)",
         "activation": "torchvision's residual blocks use ReLU (leave model.activation unset)"}),
}


def resolve_model_config(model_config: dict) -> dict:
    """`model_config` with the architecture's own defaults where it leaves width, activation
    or norm at null (or absent); raises ValueError naming a key the architecture cannot take."""
    arch = model_config["arch"]
    if arch not in ARCHITECTURES:
        raise ValueError(f"model.arch: unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    spec = ARCHITECTURES[arch]
    resolved = dict(model_config)
    for key, value in spec.defaults.items():
        if resolved.get(key) is None:
            resolved[key] = value
    resolved.setdefault("normalize", False)
    for key, allowed in spec.choices.items():
        if resolved[key] not in allowed:
            raise ValueError(f"model.{key}: {resolved[key]!r} is not possible with model.arch {arch}: "
                             f"{spec.reasons[key]}")
    return resolved
