"""Each baseline defense does what it promises, single- and multi-step."""

import copy

import pytest
import torch

from conftest import plain_protocol

from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.defenses import DEFENSES, ClientContext, make_defense
from gradienthide.defenses.pruning import prune_smallest
from gradienthide.models import ConvNet


def _setup(batch=4, size=8):
    torch.manual_seed(0)
    model = ConvNet(1, 10, size, width=4)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 1, size, size, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    return model, images, labels


def _update(name, params, model, batches, lr=0.1, seed=0):
    defense = make_defense(name, params)
    local = defense.adapt_model(copy.deepcopy(model))
    context = ClientContext(plain_protocol(lr), torch.Generator().manual_seed(seed), torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,)))
    return defense.client_update(local, batches, context)


def _norm(update):
    return torch.sqrt(sum(u.pow(2).sum() for u in update.values()))


def test_dp_clips_the_update_to_the_bound():
    model, images, labels = _setup()
    plain = _update("none", {}, model, [(images, labels)], lr=5.0)
    assert _norm(plain) > 0.5
    clipped = _update("dp", {"sigma": 0.0, "clip_norm": 0.5}, model, [(images, labels)], lr=5.0)
    torch.testing.assert_close(_norm(clipped), torch.tensor(0.5))
    for name in plain:  # same direction, only shorter
        torch.testing.assert_close(clipped[name], plain[name] * (0.5 / _norm(plain)))
    small = _update("dp", {"sigma": 0.0, "clip_norm": 1e6}, model, [(images, labels)])
    unclipped = _update("none", {}, model, [(images, labels)])
    assert all(torch.equal(small[n], unclipped[n]) for n in small)


def test_dp_noise_has_the_configured_scale():
    defense = make_defense("dp", {"sigma": 0.3, "clip_norm": 2.0})
    zero = {"w": torch.zeros(200_000)}
    noise = defense.transform_update(zero, ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0)))["w"]
    assert noise.std().item() == pytest.approx(0.6, rel=0.02)
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)


def test_dp_epsilon_from_the_accountant_behaves():
    weak, strong = make_defense("dp", {"sigma": 0.8}), make_defense("dp", {"sigma": 2.0})
    assert strong.privacy_spent(0.5, 100)["epsilon"] < weak.privacy_spent(0.5, 100)["epsilon"]
    assert weak.privacy_spent(0.5, 10)["epsilon"] < weak.privacy_spent(0.5, 100)["epsilon"]
    assert weak.privacy_spent(0.5, 10)["delta"] == 1e-5
    assert make_defense("none").privacy_spent(0.5, 10) == {}


def test_pruning_zeroes_the_configured_fraction_of_smallest_entries():
    tensor = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    pruned = prune_smallest(tensor, 0.9)
    assert int((pruned == 0).sum()) == 900
    kept = pruned != 0
    assert tensor[kept].abs().min() >= tensor[~kept].abs().max()
    model, images, labels = _setup()
    update = _update("pruning", {"fraction": 0.75}, model, [(images, labels)])
    for name, value in update.items():
        assert int((value == 0).sum()) >= int(0.75 * value.numel()), name


def test_soteria_changes_only_the_defended_layer():
    model, images, labels = _setup()
    plain = _update("none", {}, model, [(images, labels)])
    defended = _update("soteria", {"percent": 50}, model, [(images, labels)])
    for name in plain:
        if name != "classifier.weight":
            assert torch.equal(plain[name], defended[name]), name
    features = model.classifier.in_features
    zero_columns = (defended["classifier.weight"] == 0).all(0)
    assert int(zero_columns.sum()) >= features // 2
    untouched = ~zero_columns
    assert torch.equal(defended["classifier.weight"][:, untouched], plain["classifier.weight"][:, untouched])


def test_soteria_spends_its_budget_on_features_that_carry_gradient():
    model, images, labels = _setup()
    plain = _update("none", {}, model, [(images, labels)])
    carrying = (plain["classifier.weight"] != 0).any(0)  # features with a gradient column at all
    for percent in (10, 20):
        defended = _update("soteria", {"percent": percent}, model, [(images, labels)])
        newly_zero = carrying & (defended["classifier.weight"] == 0).all(0)
        expected = min(int(round(percent / 100 * carrying.numel())), int(carrying.sum()))
        assert int(newly_zero.sum()) == expected, percent


def test_precode_kl_term_enters_the_loss():
    model, images, labels = _setup()
    with_kl = make_defense("precode", {"beta": 0.5, "bottleneck_size": 8})
    without = make_defense("precode", {"beta": 0.0, "bottleneck_size": 8})
    adapted = with_kl.adapt_model(copy.deepcopy(model))
    torch.manual_seed(3)
    loss_with = with_kl.loss(adapted, images, labels)
    torch.manual_seed(3)
    loss_without = without.loss(adapted, images, labels)
    torch.manual_seed(3)
    _, kl = adapted.bottleneck.forward_with_kl(adapted.features(images))
    assert kl > 0
    torch.testing.assert_close(loss_with - loss_without, 0.5 * kl)
    update = _update("precode", {"beta": 0.5, "bottleneck_size": 8}, model, [(images, labels)])
    assert any(name.startswith("bottleneck.") for name in update)


def test_attacks_run_against_the_precode_model():
    model, images, labels = _setup(batch=2)
    defense = make_defense("precode", {"bottleneck_size": 8})
    adapted = defense.adapt_model(copy.deepcopy(model))
    update = defense.client_update(copy.deepcopy(adapted), [(images, labels)], ClientContext(plain_protocol(0.1), torch.Generator()))
    results = make_attack("ig", {"iterations": 3, "restarts": 2}).reconstruct(
        adapted, [AttackTarget(update, 2, labels, plain_protocol(0.1))], (1, 8, 8), seed=0, progress=False)
    assert results[0][0].shape == (2, 1, 8, 8) and torch.isfinite(results[0][0]).all()


def test_mixup_never_shows_the_model_an_unmixed_private_image():
    model, images, labels = _setup(batch=5)
    defense = make_defense("mixup", {"min_weight": 0.2})
    seen = []
    local = copy.deepcopy(model)
    local.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))
    defense.client_update(local, [(images, labels), (images.flip(0), labels.flip(0))],
                          ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0)))
    assert len(seen) == 2
    for batch in seen:
        distances = (batch.unsqueeze(1) - images.unsqueeze(0)).flatten(2).abs().amax(2)  # [seen, private]
        assert distances.min() > 1e-3
    mixed, (first, second, weights) = defense.mix(images, labels, torch.Generator().manual_seed(0))
    assert ((weights >= 0.2) & (weights <= 0.8)).all()
    assert not torch.equal(first, second) or len(set(labels.tolist())) == 1
    with pytest.raises(ValueError, match="batch_size >= 2"):
        defense.mix(images[:1], labels[:1], torch.Generator())


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_every_defense_handles_multi_step_local_updates(name):
    model, images, labels = _setup()
    batches = [(images, labels), (images.flip(0), labels.flip(0)), (images, labels)]
    one = _update(name, {}, model, batches[:1])
    three = _update(name, {}, model, batches)
    assert set(three) == set(one) and all(torch.isfinite(v).all() for v in three.values())
    assert any(not torch.equal(one[n], three[n]) for n in one), "later local steps must count"
