"""Local epochs and learning-rate schedules: what clients do and what attackers replay agree."""

import copy
import math

import numpy as np
import pytest
import torch

from conftest import prepare_tiny_digits
from gradienthide import data, partition
from gradienthide.attacks import make_attack
from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem
from gradienthide.config import ConfigError, validate_config
from gradienthide.defenses import make_defense
from gradienthide.fl import LearningRateSchedule, RoundSettings, client_batches, run_federated
from gradienthide.models import ConvNet
from gradienthide.protocol import ClientProtocol


def _digits_clients(num_clients=6, size=8):
    dataset = data.build_dataset({"dataset": "digits", "image_size": size, "max_images": 400})
    splits = partition.split_dataset(len(dataset.labels), 100, 40, num_clients, seed=0)
    images, labels = dataset.floats(), dataset.labels
    clients = {c: (images[i], labels[i]) for c, i in partition.client_indices(splits).items()}
    test = partition.indices_of(splits, "test")
    public = partition.indices_of(splits, "public")
    return clients, (images[test], labels[test]), (images[public], labels[public])


def _train(protocol, settings, defense="none", params=None):
    clients, test, public = _digits_clients()
    torch.manual_seed(0)
    return run_federated(ConvNet(1, 10, 8, width=4), clients, test, defense=make_defense(defense, params),
                         protocol=protocol, settings=settings, seed=0, public_data=public, progress=False)


def _ig_gap(attacked, upload, protocol):
    """Largest relative difference between ig's replay of `protocol` at the client's true batch
    and the upload read as a gradient, on the round's global model."""
    model = ConvNet(1, 10, 8, width=4)
    model.load_state_dict(attacked.global_state)
    problem = MatchingProblem(FunctionalModel(model), protocol, protocol.steps_for(upload.num_samples),
                              tuple(upload.images.shape), [], restarts=1)
    replayed = make_attack("ig", {"iterations": 1}).simulated_descent(problem, upload.images, upload.labels, {})
    read = {n: -u / protocol.lr for n, u in upload.update.items()}
    return max(((replayed[n] - read[n]).norm() / read[n].norm()).item() for n in read)


def _torch_rates(scheduler_factory, lr, rounds):
    optimiser = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = scheduler_factory(optimiser)
    rates = []
    for _ in range(rounds):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    return rates


def test_schedules_follow_pytorchs_per_round_schedulers():
    rounds, lr = 12, 0.3
    cosine = LearningRateSchedule(kind="cosine", min_lr=0.01)
    expected = _torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=rounds, eta_min=0.01), lr,
                            rounds)
    assert [cosine.lr_at(lr, r, rounds) for r in range(1, rounds + 1)] == pytest.approx(expected)
    step = LearningRateSchedule(kind="step", milestones=(4, 9), gamma=0.5)
    # MultiStepLR counts scheduler steps from 0; round r is step r - 1
    expected = _torch_rates(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 8], gamma=0.5), lr, rounds)
    assert [step.lr_at(lr, r, rounds) for r in range(1, rounds + 1)] == pytest.approx(expected)
    assert LearningRateSchedule().lr_at(lr, 7, rounds) == lr


def test_ig_replays_a_late_round_under_cosine_with_that_rounds_lr():
    protocol = ClientProtocol(local_steps=3, batch_size=4, lr=0.5)
    settings = RoundSettings(rounds=6, clients_per_round=2, attack_rounds=(1, 5),
                             lr_schedule=LearningRateSchedule(kind="cosine"))
    result = _train(protocol, settings)
    late = result.attacked_rounds[5]
    expected_lr = 0.5 * (1 + math.cos(math.pi * 4 / 6)) / 2
    assert late.protocol.lr == pytest.approx(expected_lr) and result.attacked_rounds[1].protocol.lr == 0.5
    for upload in late.uploads:
        assert _ig_gap(late, upload, late.protocol) < 1e-4
        # replayed at the base lr (a protocol that forgot the schedule), the true batch does not explain it
        assert _ig_gap(late, upload, protocol) > 1e-2


def test_local_epochs_pass_over_the_shard_and_ig_replays_them_exactly():
    protocol = ClientProtocol(local_steps=None, local_epochs=2, batch_size=16, lr=0.3)
    clients, _, _ = _digits_clients()
    shard = len(clients[0][1])
    batches, used = client_batches(shard, protocol, np.random.default_rng(0))
    assert len(batches) == protocol.steps_for(shard) == 2 * math.ceil(shard / 16)
    assert sorted(used.tolist()) == list(range(shard))  # every image once, in the epochs' order
    assert [b.tolist() for b in batches[: len(batches) // 2]] == [b.tolist() for b in batches[len(batches) // 2:]]

    result = _train(protocol, RoundSettings(rounds=2, clients_per_round=2, attack_rounds=(2,)))
    attacked = result.attacked_rounds[2]
    for upload in attacked.uploads:
        assert upload.num_samples == len(clients[upload.client][1])  # the upload's private batch is the shard
        assert _ig_gap(attacked, upload, attacked.protocol) < 1e-4
        one_epoch = ClientProtocol(local_steps=None, local_epochs=1, batch_size=16, lr=0.3)
        assert _ig_gap(attacked, upload, one_epoch) > 1e-2


def test_adaptive_oracle_replays_gradienthide_with_local_epochs_and_a_step_schedule():
    protocol = ClientProtocol(local_steps=None, local_epochs=2, batch_size=16, lr=0.3)
    params = {"public_steps": 2, "public_batch_size": 8, "public_lr": 0.2}
    settings = RoundSettings(rounds=3, clients_per_round=2, attack_rounds=(3,),
                             lr_schedule=LearningRateSchedule(kind="step", milestones=(2,), gamma=0.5))
    result = _train(protocol, settings, "gradienthide", params)
    attacked = result.attacked_rounds[3]
    assert attacked.protocol.lr == pytest.approx(0.15)
    for upload in attacked.uploads:
        assert _oracle_gap(attacked, upload, params) < 1e-4


def _oracle_gap(attacked, upload, params):
    """Largest relative difference between adaptive_oracle's replay of GradientHide (`params`,
    the recorded draws, the round's protocol) at the client's true batch and the residual upload."""
    from gradienthide.attacks import AttackTarget

    _, _, public = _digits_clients()
    model = ConvNet(1, 10, 8, width=4)
    model.load_state_dict(attacked.global_state)
    net = FunctionalModel(model)
    attack = make_attack("adaptive_oracle", {"iterations": 1})
    attack.prepare(defense=make_defense("gradienthide", params), public_pool=public,
                   public_draws=[upload.public_draws], seed=0)
    (residual,) = attack.prepare_targets(net, [AttackTarget(upload.update, upload.num_samples, upload.labels,
                                                            attacked.protocol)])
    problem = MatchingProblem(net, attacked.protocol, attacked.protocol.steps_for(upload.num_samples),
                              tuple(upload.images.shape), [], restarts=1)
    replayed = attack.simulated_descent(problem, upload.images, upload.labels, residual.extra)
    return max(((replayed[n] + residual.update[n]).norm() / residual.update[n].norm()).item() for n in replayed)


def test_adaptive_oracle_replays_a_public_lr_that_follows_a_cosine_schedule_exactly():
    protocol = ClientProtocol(local_steps=2, batch_size=4, lr=0.3)
    follow = {"public_steps": 2, "public_batch_size": 8, "public_lr": 0.2, "public_lr_schedule": "follow"}
    settings = RoundSettings(rounds=6, clients_per_round=2, attack_rounds=(1, 5),
                             lr_schedule=LearningRateSchedule(kind="cosine"))
    result = _train(protocol, settings, "gradienthide", follow)
    first, late = result.attacked_rounds[1].protocol, result.attacked_rounds[5].protocol
    assert first.lr_scale == 1.0 and late.lr_scale == pytest.approx(late.lr / 0.3) and late.lr_scale < 0.3
    # the factor travels in the round's saved protocol
    assert ClientProtocol.from_metadata(late.to_metadata()) == late and '"lr_scale"' in late.to_metadata()
    for upload in result.attacked_rounds[5].uploads:
        assert _oracle_gap(result.attacked_rounds[5], upload, follow) < 1e-4
        # an attacker assuming the constant public_lr does not explain the upload
        assert _oracle_gap(result.attacked_rounds[5], upload, {**follow, "public_lr_schedule": "constant"}) > 1e-2


def test_a_constant_public_lr_keeps_todays_protocol_under_a_schedule():
    protocol = ClientProtocol(local_steps=2, batch_size=4, lr=0.3)
    params = {"public_steps": 2, "public_batch_size": 8, "public_lr": 0.2}
    settings = RoundSettings(rounds=6, clients_per_round=2, attack_rounds=(5,),
                             lr_schedule=LearningRateSchedule(kind="cosine"))
    for explicit in ({}, {"public_lr_schedule": "constant"}):
        late = _train(protocol, settings, "gradienthide", {**params, **explicit}).attacked_rounds[5]
        assert late.protocol == settings.protocol_at(protocol, 5) and late.protocol.lr_scale == 1.0
        assert "lr_scale" not in late.protocol.to_metadata()  # the saved metadata is as before
        for upload in late.uploads:
            assert _oracle_gap(late, upload, params) < 1e-4


def test_the_train_stage_saves_each_attacked_rounds_protocol(tmp_path):
    from gradienthide import dumps
    from gradienthide.stages.train import train_defense

    prepare_tiny_digits(tmp_path)
    training = {"rounds": 4, "clients_per_round": 2, "local_epochs": 1, "batch_size": 16, "lr": 0.2,
                "lr_schedule": "cosine", "lr_min": 0.02, "attack_rounds": [1, 3]}
    train_defense(run_id="none", defense_name="none", defense_params={}, model_config={"arch": "convnet", "width": 4},
                  training=training, seed=0, dataset=tmp_path / "d.safetensors", splits=tmp_path / "s.parquet",
                  accuracy=tmp_path / "acc.parquet", final_model=tmp_path / "final.safetensors",
                  round_dirs={1: tmp_path / "round1", 3: tmp_path / "round3"})
    settings, base = RoundSettings.from_config(training), ClientProtocol.from_config(training)
    for round_number in (1, 3):
        saved = dumps.read_protocol(tmp_path / f"round{round_number}" / "global_model.safetensors")
        assert saved == settings.protocol_at(base, round_number) and saved.local_epochs == 1
    assert dumps.read_protocol(tmp_path / "round3" / "global_model.safetensors").lr < 0.2


def _with_training(tiny_config, **changes):
    config = copy.deepcopy(tiny_config)
    config["training"].update(changes)
    return config


def test_config_check_names_contradicting_local_work_and_schedule_keys(tiny_config):
    with pytest.raises(ConfigError, match=r"local_steps=1 and local_epochs=2 are both set"):
        validate_config(_with_training(tiny_config, local_steps=1, local_epochs=2))
    epochs_only = _with_training(tiny_config, local_epochs=2)
    del epochs_only["training"]["local_steps"]
    checked = validate_config(epochs_only)["training"]
    assert ClientProtocol.from_config(checked) == ClientProtocol(local_steps=None, local_epochs=2,
                                                                 batch_size=checked["batch_size"], lr=checked["lr"])
    neither = copy.deepcopy(tiny_config)
    del neither["training"]["local_steps"]
    assert validate_config(neither)["training"]["local_steps"] == 1
    with pytest.raises(ConfigError, match=r"training.lr_milestones: the step schedule needs"):
        validate_config(_with_training(tiny_config, lr_schedule="step"))
    with pytest.raises(ConfigError, match=r"training.lr_min=0.5 must be below training.lr"):
        validate_config(_with_training(tiny_config, lr_schedule="cosine", lr_min=0.5, lr=0.1))
    with pytest.raises(ConfigError, match=r"training.lr_milestones: only the step schedule"):
        validate_config(_with_training(tiny_config, lr_milestones=[2]))


def test_defaults_keep_todays_constant_protocol(tiny_config):
    training = validate_config(tiny_config)["training"]
    settings, protocol = RoundSettings.from_config(training), ClientProtocol.from_config(training)
    assert all(settings.protocol_at(protocol, r) is protocol for r in range(1, training["rounds"] + 1))
    assert "local_epochs" not in protocol.to_metadata()  # the global model's metadata is as before
