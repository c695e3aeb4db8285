import math

import torch

from gradienthide import metrics


def test_psnr_of_a_known_error():
    original = torch.full((2, 1, 8, 8), 0.5)
    shifted = original + 0.1  # MSE 0.01 -> 20 dB
    torch.testing.assert_close(metrics.psnr(shifted, original), torch.tensor([20.0, 20.0]))


def test_ssim_is_one_for_identical_images_and_low_for_noise():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 3, 16, 16, generator=generator)
    torch.testing.assert_close(metrics.ssim(image, image), torch.ones(3))
    assert metrics.ssim(torch.rand(3, 3, 16, 16, generator=generator), image).max() < 0.2


def test_reconstructions_are_matched_to_their_originals():
    generator = torch.Generator().manual_seed(0)
    originals = torch.rand(5, 1, 8, 8, generator=generator)
    order = torch.tensor([3, 0, 4, 1, 2])
    noisy = (originals + 0.01 * torch.randn(5, 1, 8, 8, generator=generator)).clamp(0, 1)
    table = metrics.image_metrics(noisy[order], originals)
    # original i sits at position order.argsort()[i] of the shuffled reconstructions
    assert table["matched_reconstruction"].tolist() == order.argsort().tolist()
    assert (table["psnr"] > 35).all() and (table["ssim"] > 0.9).all()


def test_identical_images_do_not_break_matching():
    originals = torch.rand(3, 1, 8, 8)
    table = metrics.image_metrics(originals.clone(), originals)
    assert table["psnr"].map(math.isinf).all() and table["matched_reconstruction"].tolist() == [0, 1, 2]
