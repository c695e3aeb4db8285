"""Models by name: each architecture under every defense and the attacks, input normalisation,
and the config check that refuses what an architecture cannot do."""

import copy

import pytest
import torch
from torch import nn

from conftest import plain_protocol
from gradienthide import artifacts
from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.config import ConfigError, validate_config
from gradienthide.defenses import DEFENSES, ClientContext, make_defense
from gradienthide.models import ARCHITECTURES, Normalize, as_client_forward, build_model, load_model
from gradienthide.stages.train import normalization_stats

SHAPE = (3, 8, 8)  # tiny RGB images: every architecture, quickly on a CPU
CLASSES = 10
TINY = {"lenet": {"width": 4}, "convnet": {"width": 4}, "resnet18": {}}
DEFENSE_PARAMS = {
    "gradienthide": {"public_steps": 1, "public_batch_size": 4, "public_lr": 0.1},
    "dp": {"sigma": 0.01, "clip_norm": 1.0},
    "pruning": {"fraction": 0.5},
    "soteria": {"percent": 50},
    "precode": {"beta": 0.001, "bottleneck_size": 8},
    "mixup": {"min_weight": 0.3},
}


def _model(arch, **options):
    torch.manual_seed(0)
    return build_model({"arch": arch, **TINY[arch], **options}, SHAPE, CLASSES)


def _batch(size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, *SHAPE, generator=generator), torch.randperm(CLASSES, generator=generator)[:size]


def test_every_architecture_is_features_then_a_linear_classifier():
    images, _ = _batch()
    for arch in ARCHITECTURES:
        model = _model(arch)
        representation = model.features(images)
        assert representation.ndim == 2 and isinstance(model.classifier, nn.Linear), arch
        assert model.classifier.in_features == representation.shape[1], arch
        torch.testing.assert_close(model(images), model.classifier(representation))


def test_lenet_is_dlgs_and_resnet18_has_the_cifar_stem():
    lenet = build_model({"arch": "lenet"}, (3, 32, 32), 100)
    convs = [m for m in lenet.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.kernel_size, c.stride, c.out_channels) for c in convs] == [((5, 5), (2, 2), 12), ((5, 5), (2, 2), 12),
                                                                           ((5, 5), (1, 1), 12)]
    assert sum(isinstance(m, nn.Sigmoid) for m in lenet.modules()) == 3
    assert lenet.classifier.in_features == 768  # 12 channels of 8x8, as in DLG's code

    resnet = build_model({"arch": "resnet18"}, (3, 32, 32), 10)
    stem = resnet.features.conv1
    assert (stem.kernel_size, stem.stride) == ((3, 3), (1, 1))
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in resnet.modules()) == 20
    assert sum(p.numel() for p in resnet.parameters()) == 11_173_962  # the CIFAR ResNet-18's size
    no_norm = build_model({"arch": "resnet18", "norm": "none"}, (3, 32, 32), 10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_norm.modules())


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("defense_name", sorted(DEFENSES))
def test_each_architecture_trains_under_each_defense(arch, defense_name):
    defense = make_defense(defense_name, DEFENSE_PARAMS.get(defense_name))
    model = defense.adapt_model(_model(arch))
    images, labels = _batch()
    public_images, public_labels = _batch(size=12, seed=1)
    context = ClientContext(plain_protocol(0.1, batch_size=4), torch.Generator().manual_seed(0),
                            public_images, public_labels)
    update = defense.client_update(model, [(images, labels)], context)

    assert set(update) == {name for name, _ in model.named_parameters()}
    assert all(torch.isfinite(value).all() for value in update.values())
    head = update["classifier.weight"]
    assert head.abs().sum() > 0
    if defense_name == "soteria":  # half the representation's columns of the head's update are zero
        zero_columns = int((head.abs().sum(0) == 0).sum())
        assert zero_columns >= round(0.5 * head.shape[1])
    if defense_name == "precode":
        assert any(name.startswith("bottleneck.") for name in update)


def _target(model, images, labels):
    update = make_defense("none").client_update(copy.deepcopy(model), [(images, labels)],
                                                ClientContext(plain_protocol(0.1), torch.Generator()))
    return AttackTarget(update, len(labels), labels, plain_protocol(0.1))


@pytest.mark.parametrize("arch, attack, params", [
    ("lenet", "ig", {}), ("convnet", "ig", {}), ("resnet18", "ig", {}),
    ("lenet", "dlg", {"max_iter": 2}),
    ("resnet18", "gradinversion", {"restarts": 2}),
])
def test_attacks_step_on_each_architecture(arch, attack, params):
    """One and two optimisation steps differ: the objective's gradient reaches the images
    through the architecture (BatchNorm in the client's batch-statistics mode)."""
    model = as_client_forward(_model(arch))
    images, labels = _batch(size=2)
    target = _target(model, images, labels)
    results = []
    for iterations in (1, 2):
        chosen = make_attack(attack, {"iterations": iterations, **params})
        (reconstruction, _), = chosen.reconstruct(model, [target], SHAPE, seed=0, progress=False)
        assert reconstruction.shape == images.shape and torch.isfinite(reconstruction).all()
        results.append(reconstruction)
    assert not torch.equal(*results)


def test_normalisation_is_the_first_step_in_image_space():
    stats = {"mean": [0.2, 0.4, 0.6], "std": [0.1, 0.2, 0.3]}
    plain = _model("convnet")
    torch.manual_seed(0)
    normalised = build_model({"arch": "convnet", "width": 4, "normalize": True}, SHAPE, CLASSES, channel_stats=stats)
    assert isinstance(normalised.features[0], Normalize)
    images, _ = _batch()
    mean, std = torch.tensor(stats["mean"]).view(1, 3, 1, 1), torch.tensor(stats["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised(images), plain((images - mean) / std))
    with pytest.raises(ValueError, match="model.normalize: true needs the training images' per-channel mean"):
        build_model({"arch": "convnet", "normalize": True}, SHAPE, CLASSES)
    # PRECODE keeps it: its model is built around the same features
    precode = make_defense("precode", DEFENSE_PARAMS["precode"]).adapt_model(normalised)
    assert isinstance(precode.features[0], Normalize)


def test_load_model_rebuilds_the_normalisation(tmp_path):
    stats = {"mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26]}
    config = {"arch": "resnet18", "normalize": True}
    torch.manual_seed(0)
    model = build_model(config, SHAPE, CLASSES, channel_stats=stats).eval()
    path = tmp_path / "model.safetensors"
    info = {"image_shape": list(SHAPE), "num_classes": CLASSES, "normalization": stats}
    artifacts.save_tensors(path, model.state_dict(), metadata={"model_info": info})
    assert "features.normalize.mean" in artifacts.load_tensors(path)

    loaded = load_model(path, config).eval()
    images, _ = _batch()
    torch.testing.assert_close(loaded(images), model(images))
    torch.testing.assert_close(loaded.features.normalize.std.flatten(), torch.tensor(stats["std"]))
    with pytest.raises(RuntimeError, match="normalize"):  # a config that forgot it does not load silently
        load_model(path, {"arch": "resnet18"})


def test_normalisation_statistics_come_from_the_dataset_or_the_clients_images():
    class Prepared:
        channel_stats = {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], "images": 10}

    images = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(0))
    clients = {0: (images[:3], None), 1: (images[3:], None)}
    assert normalization_stats(Prepared(), clients) == {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}

    Prepared.channel_stats = None
    fallback = normalization_stats(Prepared(), clients)
    torch.testing.assert_close(torch.tensor(fallback["mean"]), images.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(torch.tensor(fallback["std"]), images.std(dim=(0, 2, 3)))


def test_the_config_fills_in_each_architectures_defaults(tiny_config):
    tiny_config["model"] = {"arch": "lenet"}
    assert validate_config(tiny_config)["model"] == {"arch": "lenet", "width": 12, "activation": "sigmoid",
                                                     "norm": "none", "normalize": False}
    tiny_config["model"] = {"arch": "resnet18"}
    del tiny_config["attacks"]["adaptive_infer"]
    assert validate_config(tiny_config)["model"]["norm"] == "batch"


@pytest.mark.parametrize("model, attack, message", [
    ({"arch": "lenet", "norm": "batch"}, None, r"model\.norm: 'batch' is not possible with model\.arch lenet"),
    ({"arch": "resnet18", "width": 32}, None, r"model\.width: 32 is not possible with model\.arch resnet18: "
                                              r"ResNet-18's stages are torchvision's fixed"),
    ({"arch": "resnet18", "activation": "sigmoid"}, None, r"model\.activation: 'sigmoid' .* use ReLU"),
    ({"arch": "lenet"}, "gradinversion", r"attacks\.gradinversion: its BatchNorm prior needs model\.norm: batch "
                                         r"\(model\.arch lenet has model\.norm: none"),
    ({"arch": "resnet18"}, "adaptive_infer", r"attacks\.adaptive_infer: .*\(model\.arch resnet18 with model\.norm: batch\)"),
])
def test_the_config_refuses_what_an_architecture_cannot_do(tiny_config, model, attack, message):
    tiny_config["model"] = model
    if attack != "adaptive_infer":
        del tiny_config["attacks"]["adaptive_infer"]
    if attack == "gradinversion":
        tiny_config["attacks"]["gradinversion"] = {"iterations": 2}
    with pytest.raises(ConfigError, match=message):
        validate_config(tiny_config)


def test_gradinversion_and_resnet18_pass_the_config_check(tiny_config):
    tiny_config["model"] = {"arch": "resnet18"}
    del tiny_config["attacks"]["adaptive_infer"]
    tiny_config["attacks"]["gradinversion"] = {"iterations": 2}
    assert validate_config(tiny_config)["model"]["norm"] == "batch"


def test_a_normalised_model_runs_through_the_pipeline(repo, tmp_path, tiny_config):
    """Training records the dataset's channel statistics in the model; attack and evaluation
    jobs rebuild it (PRECODE's bottleneck included) from the saved files."""
    from conftest import ig_only, run_snakemake, write_config
    from gradienthide import data

    tiny_config["model"] = {"arch": "convnet", "width": 4, "normalize": True}
    tiny_config["defenses"] = {"none": {}, "precode": tiny_config["defenses"]["precode"]}
    tiny_config = ig_only(tiny_config)
    tiny_config["metrics"]["lpips"] = False
    tiny_config["seeds"] = [1]  # one replicate is enough here; its files sit under seed1/
    run_snakemake(repo, tmp_path, write_config(tmp_path / "config.yaml", tiny_config))

    recorded = data.load_dataset(tmp_path / "results" / "data" / "dataset.safetensors").channel_stats
    for run in ("none", "precode"):
        final = artifacts.load_tensors(tmp_path / "results" / "train" / run / "seed1" / "final_model.safetensors")
        torch.testing.assert_close(final["features.0.mean"].flatten(), torch.tensor(recorded["mean"]))
        torch.testing.assert_close(final["features.0.std"].flatten(), torch.tensor(recorded["std"]))
    assert (tmp_path / "results" / "report" / "summary.csv").is_file()
