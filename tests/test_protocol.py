"""One client protocol: what clients do (train) and what attackers replay (replay) agree."""

import copy

import pytest
import torch

from conftest import plain_protocol, prepare_tiny_digits
from gradienthide import data
from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem
from gradienthide.defenses import ClientContext, make_defense
from gradienthide.models import ConvNet
from gradienthide.protocol import ClientProtocol


def _digits(indices, size=8):
    digits = data.load_digits_source()
    return data.resize(digits.images[indices], size).float() / 255, digits.labels[indices]


def _client_update(model, protocol, images, labels, defense="none", params=None, pool=None):
    context = ClientContext(protocol, torch.Generator().manual_seed(0), *(pool or (None, None)))
    batches = protocol.split(images, labels)
    update = make_defense(defense, params).client_update(copy.deepcopy(model), batches, context)
    return update, context


def _replayed_descent(attack, model, protocol, images, labels, extra=None):
    """What the attack's objective compares with the upload, at the client's true batch."""
    net = FunctionalModel(model)
    problem = MatchingProblem(net, protocol, protocol.local_steps, tuple(images.shape), [], restarts=1)
    return attack.simulated_descent(problem, images, labels, extra or {})


def _relative_gap(replayed, update, lr):
    """Largest relative difference between the replay and the upload read as a gradient."""
    return max(((replayed[n] + update[n] / lr).norm() / (update[n] / lr).norm()).item() for n in update)


FEDPROX = ClientProtocol(local_steps=3, batch_size=2, lr=0.5, algorithm="fedprox", mu=2.0)


def test_fedprox_client_steps_follow_the_proximal_gradient():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digits(list(range(6)))
    fedprox, _ = _client_update(model, FEDPROX, images, labels)
    fedavg, _ = _client_update(model, plain_protocol(0.5, steps=3, batch_size=2), images, labels)
    # by hand: w <- w - lr * (grad + mu * (w - w0)) on each local batch
    manual = copy.deepcopy(model)
    start = {n: p.detach().clone() for n, p in manual.named_parameters()}
    for x, y in FEDPROX.split(images, labels):
        manual.zero_grad()
        torch.nn.functional.cross_entropy(manual(x), y).backward()
        with torch.no_grad():
            for n, p in manual.named_parameters():
                p -= 0.5 * (p.grad + 2.0 * (p - start[n]))
    for n, p in manual.named_parameters():
        torch.testing.assert_close(fedprox[n], p.detach() - start[n])
    assert any(not torch.allclose(fedprox[n], fedavg[n]) for n in fedprox)  # the proximal term matters here


@pytest.mark.parametrize("attack_name", ["ig", "dlg", "gradinversion"])
def test_attacks_replay_a_fedprox_update_exactly_at_the_true_batch(attack_name):
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digits(list(range(6)))
    update, _ = _client_update(model, FEDPROX, images, labels)
    attack = make_attack(attack_name, {"iterations": 1})
    assert _relative_gap(_replayed_descent(attack, model, FEDPROX, images, labels), update, FEDPROX.lr) < 1e-4
    # replayed as plain FedAvg steps, the same batch does not explain the upload
    fedavg = plain_protocol(FEDPROX.lr, steps=3, batch_size=2)
    assert _relative_gap(_replayed_descent(attack, model, fedavg, images, labels), update, FEDPROX.lr) > 1e-2


def test_adaptive_oracle_replays_gradienthide_under_fedprox_exactly():
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digits(list(range(4)))
    pool = _digits(list(range(100, 140)))
    params = {"public_steps": 2, "public_batch_size": 8, "public_lr": 0.3}
    protocol = ClientProtocol(local_steps=2, batch_size=2, lr=0.5, algorithm="fedprox", mu=2.0)
    update, context = _client_update(model, protocol, images, labels, "gradienthide", params, pool)
    attack = make_attack("adaptive_oracle", {"iterations": 1})
    attack.prepare(defense=make_defense("gradienthide", params), public_pool=pool,
                   public_draws=[torch.stack(context.public_draws)], seed=0)
    (residual,) = attack.prepare_targets(FunctionalModel(model), [AttackTarget(update, 4, labels, protocol)])
    replayed = _replayed_descent(attack, model, protocol, images, labels, residual.extra)
    # the objective matches minus the residual, at lr-free scale: replayed == -residual
    gap = max(((replayed[n] + residual.update[n]).norm() / residual.update[n].norm()).item() for n in update)
    assert gap < 1e-4


def test_the_protocol_travels_with_the_global_model_to_the_attack_job(tmp_path):
    from gradienthide.stages.attack import attack_shard
    from gradienthide.stages.train import train_defense

    prepare_tiny_digits(tmp_path)
    training = {"rounds": 2, "clients_per_round": 2, "local_steps": 2, "batch_size": 2, "lr": 0.1,
                "algorithm": "fedprox", "mu": 0.5, "attack_rounds": [2]}
    model_config = {"arch": "convnet", "width": 4}
    train_defense(run_id="none", defense_name="none", defense_params={}, model_config=model_config, training=training,
                  seed=0, dataset=tmp_path / "d.safetensors", splits=tmp_path / "s.parquet",
                  accuracy=tmp_path / "acc.parquet", final_model=tmp_path / "final.safetensors",
                  round_dirs={2: tmp_path / "round2"})
    from gradienthide import dumps

    assert dumps.read_protocol(tmp_path / "round2" / "global_model.safetensors") == ClientProtocol.from_config(training)
    attack_shard(attack="ig", attack_params={"iterations": 2, "restarts": 1}, model_config=model_config,
                 defense_name="none", defense_params={}, global_model=tmp_path / "round2" / "global_model.safetensors",
                 updates=tmp_path / "round2" / "updates.safetensors", index=tmp_path / "round2" / "updates.parquet",
                 positions=[0, 1], seed=0, reconstructions=tmp_path / "rec.safetensors")
    shard, source = dumps.read_reconstructions(tmp_path / "rec.safetensors")
    assert [r.images.shape for r in shard] == [(4, 1, 8, 8)] * 2 and source == "known"


def test_the_proximal_weight_belongs_to_fedprox():
    with pytest.raises(ValueError, match="training.mu"):
        ClientProtocol(local_steps=1, batch_size=1, lr=0.1, algorithm="fedavg", mu=0.1)
    with pytest.raises(ValueError, match="training.algorithm"):
        ClientProtocol(local_steps=1, batch_size=1, lr=0.1, algorithm="scaffold")
