import torch

from gradienthide import data, partition
from gradienthide.defenses import make_defense
from gradienthide.fl import RoundSettings, private_batches, run_federated
from gradienthide.models import ConvNet
from gradienthide.protocol import ClientProtocol
import numpy as np


def _digits_setup(image_size=8):
    dataset = data.build_dataset({"dataset": "digits", "image_size": image_size})
    splits = partition.split_dataset(len(dataset.labels), 200, 100, 6, seed=0)
    images, labels = dataset.floats(), dataset.labels
    clients = {c: (images[i], labels[i]) for c, i in partition.client_indices(splits).items()}
    test = partition.indices_of(splits, "test")
    public = partition.indices_of(splits, "public")
    return clients, (images[test], labels[test]), (images[public], labels[public])


def _settings(rounds, clients_per_round, local_steps, batch_size, lr, attack_rounds, **protocol):
    return (RoundSettings(rounds=rounds, clients_per_round=clients_per_round, attack_rounds=attack_rounds),
            ClientProtocol(local_steps=local_steps, batch_size=batch_size, lr=lr, **protocol))


def _train(defense, settings, clients, test, public, seed=0, model=None):
    torch.manual_seed(seed)
    rounds, protocol = settings
    return run_federated(model or ConvNet(1, 10, 8, width=8), clients, test, defense=defense, protocol=protocol,
                         settings=rounds, seed=seed, public_data=public, progress=False)


def test_private_batches_cycle_through_the_shard_without_repeats():
    batches = private_batches(10, 3, 4, np.random.default_rng(0))
    assert [len(b) for b in batches] == [4, 4, 4]
    assert len(set(np.concatenate(batches[:2]))) == 8  # no image twice within a pass


def test_fedavg_learns_digits_and_is_deterministic():
    clients, test, public = _digits_setup()
    settings = _settings(rounds=30, clients_per_round=3, local_steps=5, batch_size=16, lr=0.3, attack_rounds=(1,))
    first = _train(make_defense("none"), settings, clients, test, public)
    second = _train(make_defense("none"), settings, clients, test, public)
    assert first.accuracy["test_accuracy"].iloc[-1] > 0.6  # chance is 0.1
    assert first.accuracy.equals(second.accuracy)
    for a, b in zip(first.attacked_rounds[1].uploads, second.attacked_rounds[1].uploads):
        assert all(torch.equal(a.update[n], b.update[n]) for n in a.update)


def test_attacked_rounds_keep_every_sampled_upload_and_the_same_private_batches_across_defenses():
    clients, test, public = _digits_setup()
    settings = _settings(rounds=3, clients_per_round=4, local_steps=2, batch_size=3, lr=0.1, attack_rounds=(1, 3))
    plain = _train(make_defense("none"), settings, clients, test, public)
    hidden = _train(make_defense("gradienthide", {"public_steps": 1}), settings, clients, test, public)
    assert sorted(plain.attacked_rounds) == [1, 3]
    round_one = plain.attacked_rounds[1]
    assert len(round_one.uploads) == 4 and len({u.client for u in round_one.uploads}) == 4
    assert all(u.num_samples == 6 and u.images.shape == (6, 1, 8, 8) for u in round_one.uploads)
    for a, b in zip(round_one.uploads, hidden.attacked_rounds[1].uploads):
        assert a.client == b.client and torch.equal(a.images, b.images)
        assert not torch.equal(a.update["classifier.bias"], b.update["classifier.bias"])
        # the public batches GradientHide drew are recorded (for the adaptive_oracle bound), distinct images
        assert a.public_draws is None and b.public_draws.shape == (1, 32) and len(set(b.public_draws[0].tolist())) == 32
    # the stored global model is the one the clients received, not the one after the round
    torch.manual_seed(0)
    initial = ConvNet(1, 10, 8, width=8).state_dict()
    assert all(torch.equal(initial[n], round_one.global_state[n]) for n in initial)


def test_fedavg_with_batchnorm_averages_the_clients_running_statistics():
    clients, test, public = _digits_setup()
    settings = _settings(rounds=20, clients_per_round=3, local_steps=5, batch_size=16, lr=0.3, attack_rounds=(2,))
    torch.manual_seed(0)
    result = _train(make_defense("none"), settings, clients, test, public, model=ConvNet(1, 10, 8, width=8, norm="batch"))
    # evaluation uses the running statistics: had they stayed at their initial values (mean 0,
    # variance 1) the data's scale would be wrong and accuracy near chance
    assert result.accuracy["test_accuracy"].iloc[-1] > 0.6
    assert not torch.allclose(result.final_state["features.1.running_mean"], torch.zeros(8))
    assert int(result.final_state["features.1.num_batches_tracked"]) == 20 * 5
    # the attacked round's model carries the statistics the clients had at that point
    assert not torch.equal(result.attacked_rounds[2].global_state["features.1.running_var"], torch.ones(8))


def _probed(defense, probes, seed=0):
    from gradienthide.fl import ProbeSettings

    clients, test, public = _digits_setup()
    rounds, protocol = _settings(rounds=3, clients_per_round=3, local_steps=2, batch_size=3, lr=0.1,
                                 attack_rounds=(1, 3))
    torch.manual_seed(seed)
    return run_federated(defense.adapt_model(ConvNet(1, 10, 8, width=4)), clients, test, defense=defense, protocol=protocol,
                         settings=rounds, seed=seed, public_data=public, progress=False,
                         probes=ProbeSettings.from_config(probes))


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def test_probes_change_neither_training_nor_the_deployed_uploads():
    # PRECODE's bottleneck draws from torch's global generator, GradientHide and DP from the defense's own
    for name, params in (("precode", {"bottleneck_size": 8}), ("gradienthide", {"public_steps": 1}),
                         ("dp", {"sigma": 0.01, "clip_norm": 1.0})):
        plain = _probed(make_defense(name, params), None)
        probed = _probed(make_defense(name, params), {"batch_sizes": (1, 4), "local_steps": 1, "uploads": 2})
        assert plain.accuracy.equals(probed.accuracy), name
        assert _same_tensors(plain.final_state, probed.final_state), name
        for round_number in (1, 3):
            for a, b in zip(plain.attacked_rounds[round_number].uploads, probed.attacked_rounds[round_number].uploads):
                assert a.client == b.client and _same_tensors(a.update, b.update), name
        assert not plain.attacked_rounds[1].probes and sorted(probed.attacked_rounds[3].probes) == [1, 4]


def test_probe_uploads_follow_the_probe_protocol_on_the_same_images_across_defenses():
    probes = {"batch_sizes": (1, 4), "local_steps": 1, "uploads": 2}
    plain = _probed(make_defense("none"), probes)
    hidden = _probed(make_defense("gradienthide", {"public_steps": 1}), probes)
    for round_number in (1, 3):
        deployed = plain.attacked_rounds[round_number]
        for batch_size in (1, 4):
            probe, other = deployed.probes[batch_size], hidden.attacked_rounds[round_number].probes[batch_size]
            assert probe.protocol.batch_size == batch_size and probe.protocol.local_steps == 1
            assert probe.protocol.local_epochs is None and probe.protocol.lr == deployed.protocol.lr
            assert probe.global_state is deployed.global_state  # the model the round's clients received
            # the round's first sampled clients, each on `batch_size` private images
            assert [u.client for u in probe.uploads] == [u.client for u in deployed.uploads[:2]]
            assert all(u.num_samples == batch_size and u.images.shape == (batch_size, 1, 8, 8) for u in probe.uploads)
            for a, b in zip(probe.uploads, other.uploads):  # the same private images under every defense
                assert a.client == b.client and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
            assert all(u.public_draws is not None for u in other.uploads)  # GradientHide's public steps ran
    # one upload from the received model, one step: the update is minus lr times the batch's gradient
    upload = plain.attacked_rounds[1].probes[1].uploads[0]
    model = ConvNet(1, 10, 8, width=4)
    model.load_state_dict(plain.attacked_rounds[1].global_state)
    torch.nn.functional.cross_entropy(model(upload.images), upload.labels).backward()
    for name, parameter in model.named_parameters():
        assert torch.allclose(upload.update[name], -0.1 * parameter.grad, atol=1e-6)


def test_probe_upload_counts_follow_their_batch_size():
    probed = _probed(make_defense("none"), {"batch_sizes": (1, 4), "local_steps": 1, "uploads": [2, 1]})
    for round_number in (1, 3):
        attacked = probed.attacked_rounds[round_number]
        assert [u.client for u in attacked.probes[1].uploads] == [u.client for u in attacked.uploads[:2]]
        assert [u.client for u in attacked.probes[4].uploads] == [attacked.uploads[0].client]
