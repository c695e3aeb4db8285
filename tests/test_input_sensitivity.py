"""Soteria's per-feature input sensitivities: the grouped forward-mode computation must equal
the dense Jacobian's row norms, and its pixel groups must never put two pixels one feature
sees into one group."""

import pytest
import torch
from torch import nn
from torch.func import jacfwd, vmap

from gradienthide.input_sensitivity import input_sensitivity, pixel_groups
from gradienthide.models import build_model


def _dense_jacobian(features, images):
    def single(x):
        return features(x.unsqueeze(0)).squeeze(0)

    return vmap(jacfwd(single))(images).flatten(2)  # [B, F, pixels]


MODELS = {
    "convnet relu": ({"arch": "convnet", "width": 4}, (1, 16, 16)),
    "convnet normalized rgb": ({"arch": "convnet", "width": 4, "normalize": True}, (3, 16, 16)),
    "convnet batchnorm": ({"arch": "convnet", "width": 4, "norm": "batch"}, (3, 16, 16)),
    "lenet sigmoid": ({"arch": "lenet", "width": 4}, (1, 16, 16)),
}


def _features(name):
    model_config, shape = MODELS[name]
    torch.manual_seed(0)
    model = build_model(model_config, shape, 10, channel_stats={"mean": [0.4] * shape[0], "std": [0.3] * shape[0]})
    for module in model.modules():  # non-trivial running statistics, so that BatchNorm matters
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.features.eval(), shape


@pytest.mark.parametrize("name", list(MODELS))
def test_grouped_sensitivities_equal_the_dense_jacobian_row_norms(name):
    features, shape = _features(name)
    images = torch.rand(3, *shape, generator=torch.Generator().manual_seed(1))
    expected = _dense_jacobian(features, images).norm(dim=2)
    assert torch.allclose(input_sensitivity(features, images), expected, rtol=1e-5, atol=1e-7)


def test_chunks_of_images_give_the_sensitivities_of_one_chunk():
    # the CPU default pushes a few images at a time (cache-sized chunks); the split must not show
    features, shape = _features("convnet normalized rgb")
    images = torch.rand(5, *shape, generator=torch.Generator().manual_seed(2))
    whole = input_sensitivity(features, images, max_elements=2 ** 30)
    one_at_a_time = input_sensitivity(features, images, max_elements=1)
    assert torch.allclose(one_at_a_time, whole, rtol=1e-6, atol=1e-8)
    assert torch.allclose(input_sensitivity(features, images), whole, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["convnet relu", "convnet normalized rgb", "convnet batchnorm"])
def test_pixel_groups_are_fewer_than_pixels_and_never_share_a_feature(name):
    features, shape = _features(name)
    groups = pixel_groups(features, shape)
    pixels = torch.Size(shape).numel()
    assert groups is not None and int(groups.max()) + 1 < pixels / 2
    images = torch.rand(4, *shape, generator=torch.Generator().manual_seed(2))
    seen = (_dense_jacobian(features, images).abs() > 0).any(0)  # [F, pixels]: what each feature depends on
    for feature_pixels in seen:
        in_groups = groups[feature_pixels]
        assert in_groups.unique().numel() == in_groups.numel()  # at most one pixel of each group


def test_unknown_structure_falls_back_to_the_dense_jacobian():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return x + torch.relu(self.conv(x))

    torch.manual_seed(0)
    features = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Residual(), nn.Flatten())
    assert pixel_groups(features, (1, 6, 6)) is None
    images = torch.rand(2, 1, 6, 6)
    assert torch.allclose(input_sensitivity(features, images), _dense_jacobian(features, images).norm(dim=2),
                          rtol=1e-5, atol=1e-7)
