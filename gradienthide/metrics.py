"""Reconstruction quality per image, each reconstruction matched to its original.

PSNR and SSIM come from torchmetrics. A gradient does not say which reconstruction belongs
to which private image, so within a batch the pairing that maximises total PSNR is used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

# torchmetrics is imported where it is used: it pulls in torchvision (about 1.5 s), which
# every pipeline job would otherwise pay at start-up.


def psnr(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image (images in [0, 1], shape [N, C, H, W])."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(reconstructed, original, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(reconstructed: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """SSIM per image, with the Gaussian window shrunk to fit small images."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    size = min(original.shape[-2:])
    kernel = min(11, size if size % 2 else size - 1)
    return structural_similarity_index_measure(
        reconstructed.double(), original.double(), data_range=1.0, reduction="none", kernel_size=kernel
    ).float()


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
