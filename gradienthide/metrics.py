"""Reconstruction quality per image, each reconstruction matched to its original.

A gradient does not say which reconstruction belongs to which private image, so within a
batch the pairing that maximises total PSNR is used.

SSIM comes from pytorch-msssim, computed the way torchmetrics computes it (a Gaussian window
of 11 pixels, sigma 1.5, over the images reflect-padded by 5, so that a 16x16 image gets a full
16x16 map), and PSNR is 10 log10(1 / MSE). tests/test_metrics.py checks both against
torchmetrics to float32 rounding. torchmetrics is not imported: it loads all of its metrics,
and through them torchvision and torch._dynamo (about 2 s), in every evaluation job.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as windowed_ssim
from scipy.optimize import linear_sum_assignment

SSIM_WINDOW = 11  # pixels; also why data.image_size has a minimum of 6 (reflect padding by 5)
SSIM_SIGMA = 1.5


def psnr(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image (images in [0, 1], shape [N, C, H, W]); +inf for identical images."""
    mse = (reconstructed - original).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse)


def ssim(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """SSIM per image (mean over channels and pixels), in float64, returned as float32."""
    padding = (SSIM_WINDOW // 2,) * 4
    padded = [F.pad(images.double(), padding, mode="reflect") for images in (reconstructed, original)]
    return windowed_ssim(*padded, data_range=1.0, size_average=False, win_size=SSIM_WINDOW,
                         win_sigma=SSIM_SIGMA).float()


def match_to_originals(reconstructed: torch.Tensor, original: torch.Tensor) -> np.ndarray:
    """For each original i, the index of the reconstruction paired with it (max total PSNR)."""
    count = len(original)
    pairwise = psnr(
        reconstructed.unsqueeze(0).expand(count, -1, -1, -1, -1).reshape(-1, *original.shape[1:]),
        original.unsqueeze(1).expand(-1, count, -1, -1, -1).reshape(-1, *original.shape[1:]),
    ).view(count, count)  # [original, reconstruction]
    # identical pairs give +inf; any large finite value keeps the assignment well defined
    rows, cols = linear_sum_assignment(pairwise.nan_to_num(posinf=1e6).numpy(), maximize=True)
    return cols[np.argsort(rows)]


def image_metrics(reconstructed: torch.Tensor, original: torch.Tensor) -> pd.DataFrame:
    """One row per original image: the matched reconstruction, its PSNR and SSIM."""
    if reconstructed.shape != original.shape:
        raise ValueError(f"reconstruction shape {tuple(reconstructed.shape)} != original shape {tuple(original.shape)}")
    reconstructed, original = reconstructed.float().clamp(0, 1), original.float()
    matched = match_to_originals(reconstructed, original)
    paired = reconstructed[torch.as_tensor(matched)]
    return pd.DataFrame({
        "image": np.arange(len(original)),
        "matched_reconstruction": matched,
        "psnr": psnr(paired, original).numpy(),
        "ssim": ssim(paired, original).numpy(),
    })
