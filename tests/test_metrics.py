import math

import pytest
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


@pytest.mark.parametrize("shape", [(16, 1, 16, 16), (16, 3, 32, 32), (16, 1, 8, 8), (16, 1, 6, 6)])
def test_psnr_and_ssim_equal_torchmetrics(shape):
    """The light implementations give torchmetrics' numbers, which the tables were made with."""
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    generator = torch.Generator().manual_seed(0)
    original = torch.rand(shape, generator=generator)
    reconstructed = (original + 0.3 * torch.randn(shape, generator=generator)).clamp(0, 1)
    expected_psnr = peak_signal_noise_ratio(reconstructed, original, data_range=1.0, reduction="none", dim=(1, 2, 3))
    expected_ssim = structural_similarity_index_measure(
        reconstructed.double(), original.double(), data_range=1.0, reduction="none").float()
    torch.testing.assert_close(metrics.psnr(reconstructed, original), expected_psnr, rtol=0, atol=1e-5)
    torch.testing.assert_close(metrics.ssim(reconstructed, original), expected_ssim, rtol=0, atol=1e-6)
    assert expected_ssim.std() > 0.01  # the images differ enough for a wrong window or padding to show


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


# --- LPIPS and semantic match --------------------------------------------------------------

def test_lpips_is_zero_for_identical_images_and_loads_the_cached_backbone(tmp_path):
    from conftest import random_alexnet_cache
    from gradienthide import perceptual

    cache = random_alexnet_cache(tmp_path / "torch")
    metric = perceptual.load_lpips(cache)
    saved = torch.load(perceptual.backbone_path(cache), weights_only=True)
    assert torch.equal(metric.net.slice1[0].weight, saved["features.0.weight"])  # not torchvision's random init
    assert torch.equal(getattr(metric.net.slice5, "10").weight, saved["features.10.weight"])
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 16, 16, generator=generator)
    other = torch.rand(3, 1, 16, 16, generator=generator)
    assert torch.allclose(perceptual.lpips_distance(metric, images, images), torch.zeros(3), atol=1e-6)
    forward, backward = perceptual.lpips_distance(metric, images, other), perceptual.lpips_distance(metric, other, images)
    assert (forward > 0).all() and torch.allclose(forward, backward, atol=1e-5)  # a distance: symmetric


def test_missing_lpips_backbone_names_the_file_and_the_fix(tmp_path):
    from gradienthide import perceptual

    with pytest.raises(perceptual.LpipsBackboneMissing) as error:
        perceptual.load_lpips(tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth") in message
    assert "IMAGENET1K_V1" in message and "metrics.lpips_cache_dir" in message


def test_a_corrupted_lpips_backbone_is_detected(tmp_path):
    from gradienthide import perceptual

    path = perceptual.backbone_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a torchvision AlexNet checkpoint"):
        perceptual.load_lpips(tmp_path)


def test_semantic_match_counts_reconstructions_classified_as_their_original():
    from gradienthide import semantic

    class Brightness:  # a hand-made reference: class 1 for bright images, 0 for dark ones
        name = "brightness"

        def predict(self, images):
            return (images.mean((1, 2, 3)) > 0.5).long()

    reconstructions = torch.stack([torch.full((1, 4, 4), v) for v in (0.9, 0.1, 0.8, 0.2)])
    labels = torch.tensor([1, 0, 0, 1])
    assert semantic.semantic_match(Brightness(), reconstructions, labels).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_semantic_reference_auto_falls_back_to_the_no_defense_model_without_clip_weights(tmp_path, default_config):
    from gradienthide import config as gh_config

    config = gh_config.validate_config(default_config)
    config["labels"]["clip"]["cache_dir"] = str(tmp_path / "no-clip")
    assert gh_config.resolve_metrics(config)["semantic_reference"] == "no_defense"
    del config["defenses"]["none"]
    with pytest.raises(gh_config.ConfigError, match="metrics.semantic_reference"):
        gh_config.resolve_metrics(config)


def test_asking_for_lpips_without_its_backbone_stops_before_any_job(tmp_path, default_config):
    from gradienthide import config as gh_config, perceptual

    default_config["metrics"] = {"lpips": True, "lpips_cache_dir": str(tmp_path)}
    with pytest.raises(perceptual.LpipsBackboneMissing):
        gh_config.preflight(gh_config.validate_config(default_config))
    default_config["metrics"]["lpips"] = "auto"
    assert gh_config.resolve_metrics(gh_config.validate_config(default_config))["lpips"] is False
