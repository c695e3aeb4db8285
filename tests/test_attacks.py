import copy

import pytest
import torch

from conftest import plain_protocol

from gradienthide import data, metrics
from gradienthide.attacks import ATTACKS, AttackTarget, make_attack
from gradienthide.attacks.base import classifier_bias_name, recover_labels
from gradienthide.defenses import ClientContext, make_defense
from gradienthide.models import ConvNet


def _digit_batch(indices, size=8):
    digits = data.load_digits_source()
    images = data.resize(digits.images[indices], size).float() / 255
    return images, digits.labels[indices]


def _upload(model, images, labels, defense="none", **context):
    update = make_defense(defense, context.pop("params", None)).client_update(
        copy.deepcopy(model), [(images, labels)], ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0), **context))
    return AttackTarget(update, len(labels), labels, plain_protocol(0.1))


def test_inverting_gradients_recovers_single_images_from_undefended_updates():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8)
    images, labels = _digit_batch([0, 1, 2])
    targets = [_upload(model, images[i : i + 1], labels[i : i + 1]) for i in range(3)]
    attack = make_attack("ig", {"iterations": 300, "restarts": 1, "lr": 0.1, "tv_weight": 1e-4})
    results = attack.reconstruct(model, targets, (1, 8, 8), seed=0, progress=False)
    random_psnr = metrics.psnr(torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)), images)
    assert random_psnr.max() < 12
    for i, (reconstruction, used_labels) in enumerate(results):
        assert torch.equal(used_labels, labels[i : i + 1])
        # batched together, each target still gets its own image back
        assert metrics.psnr(reconstruction, images[i : i + 1]).item() > 20


def test_targets_of_different_batch_sizes_are_reconstructed_in_one_job():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digit_batch([0, 1, 2])
    targets = [_upload(model, images[:1], labels[:1]), _upload(model, images[1:], labels[1:])]
    results = make_attack("ig", {"iterations": 5, "restarts": 2}).reconstruct(model, targets, (1, 8, 8), seed=0, progress=False)
    assert [r[0].shape for r in results] == [(1, 1, 8, 8), (2, 1, 8, 8)]
    assert all(0 <= r[0].min() and r[0].max() <= 1 for r in results)


def test_same_seed_same_reconstruction():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digit_batch([5])
    attack = make_attack("ig", {"iterations": 10, "restarts": 2})
    first = attack.reconstruct(model, [_upload(model, images, labels)], (1, 8, 8), seed=3, progress=False)
    second = attack.reconstruct(model, [_upload(model, images, labels)], (1, 8, 8), seed=3, progress=False)
    assert torch.equal(first[0][0], second[0][0])


def test_label_recovery_is_exact_for_an_undefended_single_image():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digit_batch(list(range(10)))
    for i in range(10):
        target = _upload(model, images[i : i + 1], labels[i : i + 1])
        assert recover_labels(target.update, classifier_bias_name(model), 1).tolist() == [int(labels[i])]
    attack = make_attack("ig", {"iterations": 1, "restarts": 1, "labels": "recovered"})
    target = _upload(model, images[3:4], labels[3:4])
    target.known_labels = None
    assert attack.reconstruct(model, [target], (1, 8, 8), seed=0, progress=False)[0][1].tolist() == [int(labels[3])]


def test_gradienthide_update_defeats_the_same_attack():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8)
    images, labels = _digit_batch([0])
    public_images, public_labels = _digit_batch(list(range(100, 164)))
    plain = _upload(model, images, labels)
    hidden = _upload(model, images, labels, defense="gradienthide", public_images=public_images,
                     public_labels=public_labels, params={"public_steps": 2, "public_batch_size": 32, "public_lr": 0.1})
    attack = make_attack("ig", {"iterations": 300, "restarts": 1})
    (plain_images, _), (hidden_images, _) = attack.reconstruct(model, [plain, hidden], (1, 8, 8), seed=0, progress=False)
    assert metrics.psnr(hidden_images, images).item() < metrics.psnr(plain_images, images).item() - 5


def test_registry_and_bad_parameters():
    assert "ig" in ATTACKS
    with pytest.raises(ValueError, match=r"attacks.ig: unknown parameters \['iters'\]"):
        make_attack("ig", {"iters": 3})
    with pytest.raises(ValueError, match="attacks.ig.labels"):
        make_attack("ig", {"labels": "guessed"})


def test_simulating_local_steps_inverts_a_multi_step_update():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8)
    images, labels = _digit_batch([0, 1])
    batches = [(images[:1], labels[:1]), (images[1:], labels[1:])]  # two local steps of one image
    update = make_defense("none").client_update(copy.deepcopy(model), batches, ClientContext(plain_protocol(0.5), torch.Generator()))
    target = AttackTarget(update, 2, labels, plain_protocol(0.5, steps=2))
    attack = make_attack("ig", {"iterations": 300, "restarts": 1, "simulate_local_steps": True})
    reconstruction, _ = attack.reconstruct(model, [target], (1, 8, 8), seed=0, progress=False)[0]
    assert (metrics.psnr(reconstruction, images) > 18).all()


def test_adaptive_attacker_who_knows_the_public_batch_undoes_gradienthide():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8)
    images, labels = _digit_batch([0])
    # a pool as large as the public batch: every public step uses the whole pool, so the
    # attacker's stand-in for the public batches is exact
    pool_images, pool_labels = _digit_batch(list(range(100, 132)))
    params = {"public_steps": 2, "public_batch_size": 32, "public_lr": 0.2}
    hidden = _upload(model, images, labels, defense="gradienthide", public_images=pool_images,
                     public_labels=pool_labels, params=dict(params))
    settings = {"iterations": 300, "restarts": 1}
    plain = make_attack("ig", settings).reconstruct(model, [hidden], (1, 8, 8), seed=0, progress=False)[0][0]
    scores = {}
    for mode in ("simulate", "subtract"):
        adaptive = make_attack("adaptive", {**settings, "mode": mode})  # the stand-in: the whole pool
        adaptive.prepare(defense=make_defense("gradienthide", params), public_pool=(pool_images, pool_labels), seed=0)
        adapted = adaptive.reconstruct(model, [hidden], (1, 8, 8), seed=0, progress=False)[0][0]
        scores[mode] = metrics.psnr(adapted, images).item()
    plain_score = metrics.psnr(plain, images).item()
    assert scores["simulate"] > plain_score + 2
    assert scores["subtract"] > plain_score  # first order: it ignores where the public steps start


def test_adaptive_attacker_is_inverting_gradients_against_other_defenses():

    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digit_batch([2])
    target = _upload(model, images, labels)
    adaptive = make_attack("adaptive", {"iterations": 5, "restarts": 1})
    adaptive.prepare(defense=make_defense("none"), public_pool=(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)),
                     seed=0)
    assert adaptive.knowledge is None
    reference = make_attack("ig", {"iterations": 5, "restarts": 1})
    torch.testing.assert_close(adaptive.reconstruct(model, [target], (1, 8, 8), seed=1, progress=False)[0][0],
                               reference.reconstruct(model, [target], (1, 8, 8), seed=1, progress=False)[0][0])


def _dlg_model():
    """DLG's setting: a sigmoid network with weights drawn from U(-0.5, 0.5) (Zhu et al., 2019)."""
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8, activation="sigmoid")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("name", ["dlg", "idlg"])
def test_dlg_and_idlg_recover_single_images_and_their_labels(name):
    model = _dlg_model()
    images, labels = _digit_batch([0, 1, 2])
    targets = [_upload(model, images[i : i + 1], labels[i : i + 1]) for i in range(3)]
    for target in targets:
        target.known_labels = None  # both attacks find the labels themselves
    results = make_attack(name, {"iterations": 20}).reconstruct(model, targets, (1, 8, 8), seed=0, progress=False)
    for i, (reconstruction, used_labels) in enumerate(results):
        assert used_labels.tolist() == [int(labels[i])]
        assert metrics.psnr(reconstruction, images[i : i + 1]).item() > 30


def test_dlg_reads_the_upload_as_a_gradient_scaled_by_the_local_learning_rate():
    # told the wrong local learning rate, the Euclidean objective cannot be met by the true image
    model = _dlg_model()
    images, labels = _digit_batch([1])
    target = _upload(model, images, labels)
    target.protocol = plain_protocol(1.0)  # the upload was made with 0.1
    reconstruction, _ = make_attack("idlg", {"iterations": 20}).reconstruct(model, [target], (1, 8, 8), seed=0,
                                                                            progress=False)[0]
    assert metrics.psnr(reconstruction, images).item() < 20


def test_dlg_replay_of_a_multi_step_update_is_exact_at_the_true_batch():
    from torch.func import functional_call

    model = _dlg_model()
    images, labels = _digit_batch([0, 1])
    update = make_defense("none").client_update(copy.deepcopy(model), [(images[:1], labels[:1]), (images[1:], labels[1:])],
                                                ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0)))
    params = {name: p.detach() for name, p in model.named_parameters()}

    def task_loss(p, x, y):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    def mismatch(steps):
        read = plain_protocol(0.1, steps=2).descent(task_loss, params, images,
                                                    torch.nn.functional.one_hot(labels, 10).float(), steps)
        return max(((read[n] + update[n] / 0.1).norm() / update[n].norm() * 0.1).item() for n in params)

    assert mismatch(steps=2) < 1e-5  # the objective DLG minimises is zero at the private batch
    assert mismatch(steps=1) > 1e-2  # read as one gradient, the two-step update is not matched


def test_dlg_rejects_an_unknown_line_search():
    with pytest.raises(ValueError, match="attacks.dlg.line_search"):
        make_attack("dlg", {"line_search": "armijo"})


def _batchnorm_model_that_has_seen_data():
    """A BatchNorm ConvNet whose running statistics are the digits' (as after FL rounds)."""
    from gradienthide.models import as_client_forward

    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8, norm="batch")
    images, _ = _digit_batch(list(range(200)))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = None  # a plain average over the forward passes
        model(images)
    upload_model = copy.deepcopy(model)
    return upload_model, as_client_forward(model)


def test_gradinversion_recovers_a_batch_with_distinct_labels_and_its_bn_prior_helps():
    upload_model, model = _batchnorm_model_that_has_seen_data()
    images, labels = _digit_batch(list(range(8)))  # digits 0..7, one of each
    target = _upload(upload_model, images, labels)
    target.known_labels = None

    def attack(bn_weight):
        reconstruction, used = make_attack("gradinversion", {"iterations": 600, "restarts": 2, "bn_weight": bn_weight}
                                           ).reconstruct(model, [target], (1, 8, 8), seed=0, progress=False)[0]
        return reconstruction, used

    reconstruction, used = attack(0.1)
    assert sorted(used.tolist()) == sorted(labels.tolist())  # batch label recovery is exact here
    quality = metrics.image_metrics(reconstruction, images)
    random_psnr = metrics.psnr(torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1)), images)
    assert quality["psnr"].mean() > 15 > random_psnr.max() + 3
    without_prior = metrics.image_metrics(attack(0.0)[0], images)
    assert quality["psnr"].mean() > without_prior["psnr"].mean()


def test_gradinversion_refuses_a_model_without_batchnorm():
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digit_batch([0])
    with pytest.raises(ValueError, match="model.norm: batch"):
        make_attack("gradinversion", {"iterations": 1}).reconstruct(model, [_upload(model, images, labels)], (1, 8, 8),
                                                                    seed=0, progress=False)


@pytest.mark.parametrize("name", ["ig", "dlg", "gradinversion"])
def test_same_seed_same_reconstruction_through_a_stochastic_model(name):
    # PRECODE's bottleneck samples noise in every forward pass, inside the attack's vmap
    torch.manual_seed(0)
    precode = make_defense("precode", {"beta": 0.001, "bottleneck_size": 8})
    model = precode.adapt_model(ConvNet(1, 10, 8, width=4, norm="batch" if name == "gradinversion" else "none"))
    images, labels = _digit_batch([5, 6])
    target = _upload(model, images, labels, defense="precode", params={"beta": 0.001, "bottleneck_size": 8})
    attack = make_attack(name, {"iterations": 5})
    first = attack.reconstruct(model, [target], (1, 8, 8), seed=3, progress=False)[0][0]
    torch.rand(10)  # the caller's random state does not matter
    second = attack.reconstruct(model, [target], (1, 8, 8), seed=3, progress=False)[0][0]
    third = attack.reconstruct(model, [target], (1, 8, 8), seed=4, progress=False)[0][0]
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_adaptive_oracle_given_the_clients_public_draws_undoes_gradienthide():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=8)
    images, labels = _digit_batch([0])
    # a pool larger than the public batch: the client's draws are its own secret
    pool_images, pool_labels = _digit_batch(list(range(100, 164)))
    params = {"public_steps": 2, "public_batch_size": 16, "public_lr": 0.2}
    context = ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0), pool_images, pool_labels)
    update = make_defense("gradienthide", dict(params)).client_update(copy.deepcopy(model), [(images, labels)], context)
    assert [len(d) for d in context.public_draws] == [16, 16]
    hidden = AttackTarget(update, 1, labels, plain_protocol(0.1))
    settings = {"iterations": 300, "restarts": 1}
    scores = {}
    for name in ("ig", "adaptive", "adaptive_oracle"):
        attack = make_attack(name, settings)
        attack.prepare(defense=make_defense("gradienthide", params), public_pool=(pool_images, pool_labels),
                       public_draws=[torch.stack(context.public_draws)], seed=0)
        reconstruction = attack.reconstruct(model, [hidden], (1, 8, 8), seed=0, progress=False)[0][0]
        scores[name] = metrics.psnr(reconstruction, images).item()
    print(scores)
    assert scores["adaptive_oracle"] > 20
    assert scores["adaptive_oracle"] > max(scores["ig"], scores["adaptive"]) + 2


def test_adaptive_oracle_refuses_draws_that_do_not_fit_the_protocol():
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digit_batch([0])
    attack = make_attack("adaptive_oracle", {"iterations": 2, "restarts": 1})
    attack.prepare(defense=make_defense("gradienthide", {"public_steps": 2, "public_batch_size": 4}),
                   public_pool=(torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)),
                   public_draws=[torch.zeros(3, 4, dtype=torch.long)], seed=0)  # three steps recorded, two in the protocol
    with pytest.raises(ValueError, match="3 recorded public steps"):
        attack.reconstruct(model, [_upload(model, images, labels)], (1, 8, 8), seed=0, progress=False)


def _public_only_upload(model, pool, params, seed=0):
    """A GradientHide client's public stage alone (no private part), and the draws it made."""
    from gradienthide.defenses import make_defense as build

    defense = build("gradienthide", params)
    context = ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(seed), *pool)
    local = copy.deepcopy(model)
    start = {n: p.detach().clone() for n, p in local.named_parameters()}
    context.anchor = start
    context.train(local, defense.public_batches(context), lr=defense.public_lr)
    update = {n: p.detach() - start[n] for n, p in local.named_parameters()}
    return update, torch.stack(context.public_draws)


def test_adaptive_infer_recovers_the_draws_exactly_from_a_public_step_alone():
    from gradienthide.draw_inference import draw_overlap

    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    pool = _digit_batch(list(range(100, 140)))
    params = {"public_steps": 1, "public_batch_size": 6, "public_lr": 0.3}
    update, recorded = _public_only_upload(model, pool, params)
    attack = make_attack("adaptive_infer", {"iterations": 2, "restarts": 1, "estimation": "nnls"})
    attack.prepare(defense=make_defense("gradienthide", params), public_pool=pool, seed=0)
    attack.reconstruct(model, [AttackTarget(update, 6, pool[1][:6], plain_protocol(0.1))], (1, 8, 8), seed=0,
                       progress=False)
    assert draw_overlap(attack.estimated_draws[0], recorded) == (1.0, 1.0)
    assert attack.findings()["estimated_draws"] == [attack.estimated_draws[0].tolist()]
    # sketched to a tenth of its memory, the regression still finds most of them
    sketched = make_attack("adaptive_infer", {"iterations": 2, "restarts": 1, "estimation": "nnls",
                                              "memory_budget_mb": 0.02})
    sketched.prepare(defense=make_defense("gradienthide", params), public_pool=pool, seed=0)
    sketched.reconstruct(model, [AttackTarget(update, 6, pool[1][:6], plain_protocol(0.1))], (1, 8, 8), seed=0,
                         progress=False)
    assert draw_overlap(sketched.estimated_draws[0], recorded)[1] >= 0.5


def test_adaptive_infer_is_never_given_the_draws_and_refuses_batchnorm():
    pool = _digit_batch(list(range(100, 120)))
    attack = make_attack("adaptive_infer", {"iterations": 1, "restarts": 1})
    with pytest.raises(ValueError, match="must not be given"):
        attack.prepare(defense=make_defense("gradienthide", {}), public_pool=pool,
                       public_draws=[torch.zeros(1, 4, dtype=torch.long)], seed=0)
    attack.prepare(defense=make_defense("gradienthide", {"public_batch_size": 4}), public_pool=pool, seed=0)
    model = ConvNet(1, 10, 8, width=4, norm="batch")
    images, labels = _digit_batch([0])
    with pytest.raises(ValueError, match="BatchNorm"):
        attack.reconstruct(model, [_upload(model, images, labels)], (1, 8, 8), seed=0, progress=False)
