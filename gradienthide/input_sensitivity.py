"""How strongly each feature of a network's representation moves with its input image:
||d r_f / d x|| per image and feature, computed exactly with as few passes as the network's
structure allows.

The dense Jacobian costs one forward-mode pass per input pixel (or one reverse pass per
feature). A convolutional feature, though, depends only on the pixels of its receptive
field. Pixels that no feature sees together can share one forward-mode pass: each feature's
output in that pass is the derivative of the one pixel of the group it sees (or zero), so
summing the squared outputs over the groups gives each Jacobian row's squared norm exactly.
The groups come from a greedy colouring of the input positions; which representation
positions an input position reaches is read off a one-channel copy of the network (every
convolution one all-ones kernel, activations and normalisations dropped), a linear map with
non-negative coefficients whose outputs are nonzero exactly where a dependence exists.
Networks the copy cannot be built for (anything but a sequence of convolutions, pooling and
per-element or per-channel layers: e.g. linear layers, residual blocks) take the dense
Jacobian.

BatchNorm must be in eval mode (a per-image Jacobian cannot use batch statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacfwd, jacrev, jvp, vmap

from gradienthide.models import Normalize

# Per-element or per-channel layers (in eval mode): their Jacobian is diagonal.
_DIAGONAL = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.ELU, nn.SiLU, nn.modules.batchnorm._BatchNorm)
# Layers that never make a feature depend on more pixels.
_NO_NEW_DEPENDENCES = _DIAGONAL + (nn.Identity, Normalize)

_pixel_groups_cache: dict[tuple[str, tuple[int, ...]], torch.Tensor | None] = {}


def spatial_structure(features: nn.Module) -> nn.Module | None:
    """Which positions of one input plane each position of the representation depends on, as
    a one-channel linear map with non-negative coefficients (every convolution a single
    all-ones kernel), or None when `features` holds a layer whose structure is not known here.
    Treating every convolution as mixing all channels is exact for ordinary convolutions and
    errs on the safe side (more dependences) for grouped ones."""
    if not isinstance(features, nn.Sequential):
        return None
    layers = []
    for module in features:
        if isinstance(module, _NO_NEW_DEPENDENCES):
            layers.append(nn.Identity())
        elif isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
            kernel = nn.Conv2d(1, 1, module.kernel_size, module.stride, module.padding, module.dilation, bias=False)
            kernel.requires_grad_(False).weight.fill_(1.0)
            layers.append(kernel)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and getattr(module, "dilation", 1) in (1, (1, 1)):
            layers.append(nn.AvgPool2d(module.kernel_size, module.stride, module.padding, ceil_mode=module.ceil_mode))
        elif isinstance(module, nn.Flatten):
            layers.append(module)
        elif isinstance(module, nn.Sequential):
            inner = spatial_structure(module)
            if inner is None:
                return None
            layers.append(inner)
        else:  # e.g. a linear layer (every output sees every pixel: nothing to group), residual blocks
            return None
    return nn.Sequential(*layers)


def pixel_groups(features: nn.Module, image_shape: tuple[int, ...]) -> torch.Tensor | None:
    """A group index per input pixel (flattened C*H*W order) such that no feature depends on
    two pixels of one group; None when the structure of `features` is unknown. Cached per
    architecture and image shape."""
    key = (repr(features), tuple(image_shape))
    if key not in _pixel_groups_cache:
        _pixel_groups_cache[key] = _colour_pixels(features, tuple(image_shape))
    return _pixel_groups_cache[key]


def _colour_pixels(features: nn.Module, image_shape: tuple[int, ...]) -> torch.Tensor | None:
    structure = spatial_structure(features)
    if structure is None:
        return None
    channels, height, width = image_shape
    positions = height * width
    with torch.no_grad():  # [positions, representation positions]: what each input position moves
        reaches = structure(torch.eye(positions).view(positions, 1, height, width)).flatten(1) > 0
    # Greedy, pixel by pixel in C*H*W order: the first group none of whose pixels shares a
    # representation position with it (every feature sees all channels at its positions).
    groups = torch.empty(channels * positions, dtype=torch.long)
    reached_by_group = torch.zeros(0, reaches.shape[1], dtype=torch.bool)
    for pixel in range(channels * positions):
        reached = reaches[pixel % positions]
        free = (~(reached_by_group & reached).any(1)).nonzero()
        if len(free):
            group = int(free[0])
        else:
            group = len(reached_by_group)
            reached_by_group = torch.cat([reached_by_group, torch.zeros_like(reached)[None]])
        reached_by_group[group] |= reached
        groups[pixel] = group
    return groups


def _layers(features: nn.Sequential):
    for module in features:
        if isinstance(module, nn.Sequential):
            yield from _layers(module)
        else:
            yield module


def _pushed_tangents(features: nn.Sequential, images: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """The Jacobian of `features` at each image applied to each tangent, shape [B, G, F].

    Layers that are linear in their input apply their own map without the bias, once for all
    images as long as no layer before them depended on the image. Layers whose Jacobian is
    diagonal (activations, BatchNorm in eval mode) multiply by their derivative at the image,
    which torch.func.jvp gives as the Jacobian applied to ones; max-pooling goes through jvp
    with each tangent.
    """
    batch, count = images.shape[0], tangents.shape[0]
    hidden, tangent, shared = images, tangents, True  # tangent: [G, ...] while shared, then [B, G, ...]
    for layer in _layers(features):
        if isinstance(layer, nn.Conv2d):
            flat = (tangent if shared else tangent.flatten(0, 1)).contiguous(memory_format=torch.channels_last)
            flat = F.conv2d(flat, layer.weight, None, layer.stride, layer.padding, layer.dilation, layer.groups)
            tangent = flat if shared else flat.view(batch, count, *flat.shape[1:])
        elif isinstance(layer, nn.Linear):
            tangent = F.linear(tangent, layer.weight)
        elif isinstance(layer, Normalize):
            tangent = tangent / layer.std
        elif isinstance(layer, nn.Flatten):
            tangent = tangent.flatten(1 if shared else 2)
        elif isinstance(layer, nn.Identity):
            pass
        elif isinstance(layer, _DIAGONAL):
            derivative = jvp(layer, (hidden,), (torch.ones_like(hidden),))[1]  # [B, ...]
            if derivative.dim() == 4:  # in the convolutions' layout: the product needs no copy before the next one
                derivative = derivative.contiguous(memory_format=torch.channels_last)
            tangent, shared = tangent * derivative.unsqueeze(1), False
        else:  # pooling: through jvp, each tangent at its image
            flat = tangent.expand(batch, *tangent.shape) if shared else tangent
            flat = jvp(layer, (hidden.repeat_interleave(count, dim=0),), (flat.flatten(0, 1),))[1]
            tangent, shared = flat.view(batch, count, *flat.shape[1:]), False
        hidden = layer(hidden)
    if shared:
        tangent = tangent.expand(batch, *tangent.shape)
    return tangent.reshape(batch, count, -1)


@torch.no_grad()  # no graph through the weights: only the values are used (torch.func's transforms still run)
def input_sensitivity(features: nn.Module, images: torch.Tensor, max_elements: int | None = None) -> torch.Tensor:
    """||d features(x)_f / d x|| for every image x of `images` and feature f, shape [B, F].

    Exact: grouped forward-mode passes where the structure allows (module docstring),
    otherwise the dense Jacobian, whichever side of it has fewer passes. `max_elements`
    bounds the tangents held at once (images are taken in chunks). On a CPU the default,
    2**23 (32 MB of float32), keeps a chunk's widest tangents within a last-level cache: with
    the channels-last derivatives, a batch of 16 at 3x32x32 on the ConvNet ran 1.7-2x faster
    than in one chunk of 2**26 (bench/soteria_chunks.py; the machine's cache is shared, and
    runs vary), and Soteria's training in the CIFAR-10 verdict run took half its earlier time.
    Elsewhere it is 2**26. Chunking changes no value: every image's passes are its own.
    """
    if max_elements is None:
        max_elements = 2 ** 23 if images.device.type == "cpu" else 2 ** 26
    images = images.detach()
    feature_count = features(images[:1]).shape[1]
    groups = pixel_groups(features, tuple(images.shape[1:]))
    group_count = int(groups.max()) + 1 if groups is not None else images[0].numel()
    if groups is not None and group_count < min(images[0].numel(), feature_count):
        tangents = F.one_hot(groups.to(images.device), group_count).T.to(images).view(group_count, *images.shape[1:])
        widest = max(output.numel() for output in _layer_outputs(features, images[:1]))
        chunk = max(1, max_elements // (group_count * widest))
        return torch.cat([_pushed_tangents(features, images[start:start + chunk], tangents).square().sum(1).sqrt()
                          for start in range(0, len(images), chunk)])
    return dense_input_sensitivity(features, images)


@torch.no_grad()
def dense_input_sensitivity(features: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What `input_sensitivity` computes, from the whole Jacobian of each image: one
    forward-mode pass per pixel or one reverse pass per feature, whichever are fewer."""

    def single(x):
        return features(x.unsqueeze(0)).squeeze(0)

    feature_count = features(images[:1]).shape[1]
    jacobian_of = jacfwd if images[0].numel() <= feature_count else jacrev
    return vmap(jacobian_of(single))(images.detach()).flatten(2).norm(dim=2)


def _layer_outputs(features: nn.Sequential, image: torch.Tensor):
    hidden = image
    for layer in _layers(features):
        hidden = layer(hidden)
        yield hidden
