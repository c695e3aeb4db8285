"""LPIPS (Zhang et al., 2018) with the `lpips` package's AlexNet network, loaded offline.

The package ships its learned linear heads, but the AlexNet backbone is torchvision's
ImageNet checkpoint, which torchvision would download. Here it is read from a cache
directory in torch.hub's layout (`<cache_dir>/hub/checkpoints/alexnet-owt-7be5be79.pth`, so
an existing TORCH_HOME such as ~/.cache/torch works as is), with `weights_only=True`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the evaluation jobs only, not when the rules read backbone_path
    import torch

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1
MIN_SIZE = 64  # AlexNet's pooling needs at least 32 pixels; small images are upsampled to this


class LpipsBackboneMissing(FileNotFoundError):
    pass


def backbone_path(cache_dir: str | Path) -> Path:
    return Path(cache_dir).expanduser() / "hub" / "checkpoints" / ALEXNET_FILE


def require_backbone(cache_dir: str | Path) -> Path:
    """The AlexNet checkpoint's path, or an error naming the missing file and how to fill it."""
    path = backbone_path(cache_dir)
    if not path.is_file():
        raise LpipsBackboneMissing(
            f"metrics.lpips: the LPIPS AlexNet backbone {path} is missing (nothing is downloaded at run time). "
            f"On a machine with internet run\n"
            f"  python -c \"import torch, torchvision; torch.hub.set_dir('{path.parent.parent}'); "
            f"torchvision.models.alexnet(weights='IMAGENET1K_V1')\"\n"
            f"and copy {path} here, or set metrics.lpips_cache_dir to a TORCH_HOME that has it "
            f"(or metrics.lpips: false to skip LPIPS).")
    return path


def load_lpips(cache_dir: str | Path, device: str | torch.device = "cpu"):
    """The LPIPS 'alex' metric with its backbone read from `cache_dir`."""
    import lpips
    import torch
    import torchvision

    path = require_backbone(cache_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        alexnet = torchvision.models.alexnet()
        alexnet.load_state_dict(state)
    except Exception as error:  # a truncated or foreign file
        raise ValueError(f"metrics.lpips: {path} is not a torchvision AlexNet checkpoint ({error})") from error
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained`
        warnings.simplefilter("ignore", UserWarning)
        metric = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    # lpips splits AlexNet's `features` into slices whose modules keep their index there
    features = alexnet.features.state_dict()
    metric.net.load_state_dict({name: features[name.split(".", 1)[1]] for name in metric.net.state_dict()})
    return metric.eval().to(device)


def lpips_distance(metric, reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """LPIPS per image pair (images in [0, 1], [N, C, H, W]; grey images repeated to RGB)."""
    import torch
    import torch.nn.functional as F

    def prepare(images):
        images = images.float().expand(-1, 3, -1, -1) if images.shape[1] == 1 else images.float()
        if min(images.shape[-2:]) < MIN_SIZE:
            images = F.interpolate(images, size=(MIN_SIZE, MIN_SIZE), mode="bilinear", align_corners=False)
        return images * 2 - 1

    device = next(metric.parameters()).device
    with torch.no_grad():
        return metric(prepare(reconstructed).to(device), prepare(original).to(device)).flatten().cpu()
