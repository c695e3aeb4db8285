"""The gradient-matching engine reconstructs what a plain loop written the obvious way
reconstructs (bench/reference.py: nn.Module, autograd.grad with create_graph, one target and
one restart at a time), from the same initial draws: batching targets and restarts into one
vmap-ed run changes nothing but float rounding."""

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import reference
from problems import make_model, make_targets

from gradienthide.attacks import make_attack
from gradienthide.attacks.gradinversion import (
    last_linear_weight_name,
    recover_batch_labels,
)
from gradienthide.models import as_client_forward

SIZE, BATCH, LR = 8, 2, 0.1


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def draws(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("rows_per_call", [4, 2])
def test_inverting_gradients_matches_the_plain_loop_for_every_target_and_restart(rows_per_call, monkeypatch):
    from gradienthide.attacks import optimization

    model = make_model("convnet", size=SIZE, width=4)
    targets = make_targets(model, 2, batch=BATCH, size=SIZE, lr=LR)
    # a budget of two rows' layer outputs: the 4 rows go in two calls, as larger shards do
    per_row = BATCH * optimization.FunctionalModel(model).layer_outputs_per_image((1, SIZE, SIZE))
    monkeypatch.setattr(optimization, "ROW_CALL_MAX_OUTPUTS", per_row * rows_per_call)
    settings = {"iterations": 6, "restarts": 2, "lr": 0.1, "tv_weight": 1e-4}
    engine = make_attack("ig", settings).reconstruct(model, targets, (1, SIZE, SIZE), seed=3, progress=False)
    init = draws((4, BATCH, 1, SIZE, SIZE), seed=3)  # row k: restart k % 2 of target k // 2
    for t, target in enumerate(targets):
        runs = [reference.inverting_gradients(model, target.update, target.known_labels, init[2 * t + r],
                                              iterations=6, lr=0.1, tv_weight=1e-4) for r in range(2)]
        images, _ = min(runs, key=lambda run: float(run[1]))
        assert torch.allclose(engine[t][0], images, atol=1e-5), f"target {t}"
        assert torch.equal(engine[t][1], target.known_labels)


def test_dlg_matches_the_plain_loop():
    model = make_model("lenet", size=SIZE, width=4)
    (target,) = make_targets(model, 1, batch=BATCH, size=SIZE, lr=LR)
    [(images, labels)] = make_attack("dlg", {"iterations": 2, "max_iter": 4, "lr": 1.0}).reconstruct(
        model, [target], (1, SIZE, SIZE), seed=5, progress=False)
    generator = torch.Generator().manual_seed(5)  # the engine draws images, then label logits
    init_x = torch.randn((1, BATCH, 1, SIZE, SIZE), generator=generator)[0]
    init_z = torch.randn((1, BATCH, 10), generator=generator)[0]
    plain_images, plain_labels = reference.deep_leakage(model, target.update, LR, init_x, init_z, iterations=2,
                                                        max_iter=4, lr=1.0)
    assert torch.allclose(images, plain_images, atol=1e-4)
    assert torch.equal(labels, plain_labels)


@pytest.mark.parametrize("rows_one_at_a_time,one_row_per_call", [(False, False), (True, False), (False, True)])
def test_gradinversion_matches_the_plain_loop(rows_one_at_a_time, one_row_per_call, monkeypatch):
    from gradienthide.attacks import optimization

    if rows_one_at_a_time:  # as a model of ROW_LOOP_MIN_PARAMETERS would: BatchNorm hooks, group mean, fusion
        monkeypatch.setattr(optimization, "ROW_LOOP_MIN_PARAMETERS", 0)
    if one_row_per_call:  # as rows of large layer outputs would: the restarts in separate calls
        monkeypatch.setattr(optimization, "ROW_CALL_MAX_OUTPUTS", 1)
    model = make_model("convnet", size=SIZE, width=4, norm="batch")
    assert optimization.FunctionalModel(model).rows_one_at_a_time == rows_one_at_a_time
    model.train()
    with torch.no_grad():  # running statistics the prior can pull towards
        model(draws((16, 1, SIZE, SIZE), seed=9))
    (target,) = make_targets(model, 1, batch=BATCH, size=SIZE, lr=LR)
    settings = {"iterations": 6, "restarts": 2, "group_every": 3}
    [(images, labels)] = make_attack("gradinversion", settings).reconstruct(
        copy.deepcopy(model), [target], (1, SIZE, SIZE), seed=1, progress=False)
    plain_labels = recover_batch_labels(target.update, last_linear_weight_name(model), BATCH)
    plain = reference.gradinversion(as_client_forward(copy.deepcopy(model)), target.update, LR, plain_labels,
                                    draws((2, BATCH, 1, SIZE, SIZE), seed=1), iterations=6, group_every=3)
    assert torch.equal(labels, plain_labels)
    assert torch.allclose(images, plain, atol=1e-5)


def _float64_problem(model, channels: int, rows_per_target: int = 2):
    """Two targets (one local step of BATCH random images each) on `model` in float64."""
    from gradienthide.attacks import AttackTarget
    from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem
    from gradienthide.defenses import ClientContext, make_defense
    from gradienthide.protocol import ClientProtocol

    model = as_client_forward(model.double())
    protocol = ClientProtocol(local_steps=1, batch_size=BATCH, lr=LR)
    targets = []
    for t in range(2):
        x, y = draws((BATCH, channels, SIZE, SIZE), seed=10 + t).double(), torch.tensor([t, t + 1])
        update = make_defense("none").client_update(copy.deepcopy(model), [(x, y)], ClientContext(protocol, torch.Generator()))
        targets.append(AttackTarget(update, BATCH, y, protocol))
    return MatchingProblem(FunctionalModel(model), protocol, 1, (BATCH, channels, SIZE, SIZE), targets, rows_per_target)


def _rgb_convnet_with_input_normalisation():
    from gradienthide.models import build_model

    torch.manual_seed(0)
    stats = {"mean": [0.5, 0.4, 0.3], "std": [0.25, 0.2, 0.3]}
    return build_model({"arch": "convnet", "width": 4, "normalize": True}, (3, SIZE, SIZE), 10, channel_stats=stats)


@pytest.mark.parametrize("name,build,channels,outside", [
    ("convnet", lambda: make_model("convnet", size=SIZE, width=4), 1, True),
    ("convnet, RGB, input normalisation", _rgb_convnet_with_input_normalisation, 3, True),
    ("lenet (sigmoid)", lambda: make_model("lenet", size=SIZE, width=4), 1, True),
    ("convnet + BatchNorm", lambda: make_model("convnet", size=SIZE, width=4, norm="batch"), 1, False),
])
def test_each_rows_gradient_in_a_batched_call_is_the_rows_own(name, build, channels, outside):
    """The engine's several-row gradient (autograd outside the vmap where every layer allows it,
    vmap(grad) otherwise) gives each row what the row computed alone gives, in float64 where
    float rounding cannot hide a wrong formula."""
    from gradienthide.attacks.optimization import grad_and_value_over_rows

    problem = _float64_problem(build(), channels)
    assert problem.net.rows_differentiable_outside_vmap == outside
    attack = make_attack("ig", {"iterations": 1, "restarts": 2})
    rows, labels = attack.target_rows(problem), problem.per_row([t.known_labels for t in problem.targets])
    x = draws((4, BATCH, channels, SIZE, SIZE)).double()
    objective = attack._row_objective(problem)
    forms = {f"{per_call} rows per call": grad_and_value_over_rows(
        objective, 4, outside_vmap=problem.net.rows_differentiable_outside_vmap, rows_per_call=per_call)
        for per_call in (4, 3, 1)}  # 3: calls of 3 and 1 rows; 1: as large models outside ROWWISE_LAYERS on a CPU
    alone = grad_and_value_over_rows(objective, 1)
    for form, over_rows in forms.items():
        batched_grad, batched_value = over_rows(x, labels, rows)
        for k in range(4):
            row = {"wanted": {n: w[k:k + 1] for n, w in rows["wanted"].items()},
                   "wanted_norm": rows["wanted_norm"][k:k + 1], "extra": {}}
            grad_k, value_k = alone(x[k:k + 1], labels[k:k + 1], row)
            assert torch.allclose(batched_value[k], value_k[0], rtol=1e-12, atol=1e-14), f"{name}, {form}: row {k}"
            assert torch.allclose(batched_grad[k], grad_k[0], rtol=1e-9, atol=1e-13), f"{name}, {form}: row {k}"


def test_normalisation_by_statistics_keeps_the_vmap_gradient():
    """Through BatchNorm, InstanceNorm and LayerNorm the gradient taken outside vmap is not each
    row's own (the reason for the whitelist): such models are not treated as row-wise."""
    from gradienthide.attacks.optimization import FunctionalModel

    for norm in (torch.nn.BatchNorm2d(4), torch.nn.InstanceNorm2d(4, affine=True), torch.nn.LayerNorm([4, SIZE, SIZE])):
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), norm, torch.nn.ReLU(), torch.nn.Flatten(),
                                    torch.nn.Linear(4 * SIZE * SIZE, 10))
        assert not FunctionalModel(model).rows_differentiable_outside_vmap, type(norm).__name__


def test_only_large_models_outside_the_row_wise_layers_take_their_rows_one_at_a_time():
    from gradienthide.attacks.optimization import FunctionalModel

    assert FunctionalModel(make_model("resnet18", size=SIZE, norm="batch")).rows_one_at_a_time  # 11 M parameters
    assert not FunctionalModel(make_model("convnet", size=SIZE, width=16, norm="batch")).rows_one_at_a_time
    large_row_wise = make_model("convnet", size=SIZE, width=256)  # 1.8 M parameters, its gradient taken outside vmap
    assert sum(p.numel() for p in large_row_wise.parameters()) > 1_000_000
    assert not FunctionalModel(large_row_wise).rows_one_at_a_time


def test_rows_go_in_several_calls_only_where_their_layer_outputs_outgrow_the_budget():
    """The default config's shards (3 targets x 2 restarts, 8 images, 16x16) go in one call; 16
    targets of the ConvNet in two; LeNet's smaller layer outputs in one; ResNet-18 row by row."""
    from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem
    from gradienthide.protocol import ClientProtocol

    def rows_per_call(model, targets, restarts=2):
        problem = MatchingProblem(FunctionalModel(model), ClientProtocol(local_steps=1, batch_size=8, lr=LR), 1,
                                  (8, 1, 16, 16), [None] * targets, restarts)
        return problem.rows_per_call

    convnet = make_model("convnet", size=16, width=16)
    assert FunctionalModel(convnet).layer_outputs_per_image((1, 16, 16)) == 16 * 256 + 32 * 64 + 32 * 16 + 10
    assert rows_per_call(convnet, 3) == 6
    assert rows_per_call(convnet, 16) == 16
    assert rows_per_call(convnet, 16, restarts=4) == 16
    assert rows_per_call(make_model("lenet", size=16), 16) == 32
    batchnorm = as_client_forward(make_model("convnet", size=16, width=16, norm="batch"))
    statistics = {name: b.clone() for name, b in batchnorm.named_buffers()}
    assert rows_per_call(batchnorm, 16) == 16
    assert all(torch.equal(b, statistics[name]) for name, b in batchnorm.named_buffers())  # shapes only, on meta
    assert rows_per_call(as_client_forward(make_model("resnet18", size=16, norm="batch")), 3) == 1


def test_one_targets_rows_share_its_tensors():
    """Rows of one target are views of its tensor (no copy per restart); several targets' rows
    are each target's values repeated per restart, in target-major order."""
    from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem
    from gradienthide.protocol import ClientProtocol

    net = FunctionalModel(make_model("convnet", size=SIZE, width=4))
    protocol = ClientProtocol(local_steps=1, batch_size=BATCH, lr=LR)
    first, second = draws((3, 5), seed=1), draws((3, 5), seed=2)
    one = MatchingProblem(net, protocol, 1, (BATCH, 1, SIZE, SIZE), [None], 4).per_row([first])
    assert one.shape == (4, 3, 5) and all(torch.equal(row, first) for row in one)
    assert one.stride(0) == 0  # one copy of the values, not four
    two = MatchingProblem(net, protocol, 1, (BATCH, 1, SIZE, SIZE), [None, None], 2).per_row([first, second])
    assert [torch.equal(row, want) for row, want in zip(two, (first, first, second, second))] == [True] * 4


def test_precode_rows_get_the_same_gradient_either_way():
    """PRECODE's bottleneck draws noise per row; with the same seed, the gradient taken outside
    the vmap equals vmap(grad)'s in float64."""
    from torch.func import grad_and_value, vmap

    from gradienthide.attacks.optimization import grad_and_value_over_rows
    from gradienthide.defenses import make_defense

    torch.manual_seed(0)
    model = make_defense("precode", {"bottleneck_size": 8}).adapt_model(make_model("convnet", size=SIZE, width=4))
    problem = _float64_problem(model, 1)
    assert problem.net.rows_differentiable_outside_vmap
    attack = make_attack("ig", {"iterations": 1, "restarts": 2})
    rows, labels = attack.target_rows(problem), problem.per_row([t.known_labels for t in problem.targets])
    x = draws((4, BATCH, 1, SIZE, SIZE)).double()
    objective = attack._row_objective(problem)
    torch.manual_seed(1)
    outside = grad_and_value_over_rows(objective, 4)(x, labels, rows)
    torch.manual_seed(1)
    inside = vmap(grad_and_value(objective), randomness="different")(x, labels, rows)
    assert torch.allclose(outside[1], inside[1], rtol=1e-12)
    assert torch.allclose(outside[0], inside[0], rtol=1e-9, atol=1e-13)


# --- budget checkpoints -------------------------------------------------------------------------

@pytest.mark.parametrize("iterations, expected", [(1200, [150, 300, 600, 1200]), (25, [3, 6, 12, 25]),
                                                  (3, [1, 2, 3]), (1, [1])])
def test_budget_checkpoints_are_fractions_of_the_budget_kept_once(iterations, expected):
    from gradienthide.attacks.optimization import budget_checkpoints

    assert budget_checkpoints(iterations) == expected


@pytest.mark.parametrize("attack, settings, arch", [
    ("ig", {"iterations": 16, "restarts": 2}, "convnet"),
    ("dlg", {"iterations": 8, "max_iter": 3}, "lenet"),
    ("gradinversion", {"iterations": 8, "restarts": 2, "group_every": 4}, "convnet-bn"),
])
def test_checkpoints_hand_out_earlier_images_without_changing_the_result(attack, settings, arch, monkeypatch):
    """The engine hands out each target's reconstruction at 1/8, 1/4 and 1/2 of its budget; the
    last checkpoint is the result, and taking checkpoints changes nothing (compared with a run
    that keeps only the last)."""
    from gradienthide.attacks import optimization

    model = make_model("convnet" if arch.startswith("convnet") else arch, size=SIZE, width=4,
                       norm="batch" if arch == "convnet-bn" else "none")
    targets = make_targets(model, 2, batch=BATCH, size=SIZE, lr=LR)
    chosen = make_attack(attack, settings)
    result = chosen.reconstruct(copy.deepcopy(model), targets, (1, SIZE, SIZE), seed=1, progress=False)
    checkpoints = chosen.budget_checkpoints()
    assert sorted(checkpoints) == optimization.budget_checkpoints(settings["iterations"])
    for t in range(len(targets)):
        assert torch.equal(checkpoints[settings["iterations"]][t], result[t][0])
        assert all(checkpoints[done][t].shape == result[t][0].shape for done in checkpoints)
    first, last = min(checkpoints), max(checkpoints)
    assert not torch.equal(checkpoints[first][0], checkpoints[last][0])  # the images moved after the first checkpoint

    monkeypatch.setattr(optimization, "BUDGET_FRACTIONS", (1,))
    alone = make_attack(attack, settings)
    only_final = alone.reconstruct(copy.deepcopy(model), targets, (1, SIZE, SIZE), seed=1, progress=False)
    assert list(alone.budget_checkpoints()) == [settings["iterations"]]
    for (images, labels), (expected, expected_labels) in zip(result, only_final):
        assert torch.equal(images, expected) and torch.equal(labels, expected_labels)


def test_a_stochastic_model_keeps_its_result_when_checkpoints_evaluate_the_objective(monkeypatch):
    """PRECODE samples in its forward pass: choosing the best restart at a checkpoint evaluates
    the objective, which must not move the random stream the rest of the run draws from."""
    from gradienthide.attacks import optimization
    from gradienthide.defenses import make_defense

    model = make_defense("precode", {"beta": 0.001, "bottleneck_size": 8}).adapt_model(
        make_model("convnet", size=SIZE, width=4))
    targets = make_targets(model, 1, batch=BATCH, size=SIZE, lr=LR)
    settings = {"iterations": 8, "restarts": 2}
    with_checkpoints = make_attack("ig", settings).reconstruct(model, targets, (1, SIZE, SIZE), seed=2, progress=False)
    monkeypatch.setattr(optimization, "BUDGET_FRACTIONS", (1,))
    without = make_attack("ig", settings).reconstruct(model, targets, (1, SIZE, SIZE), seed=2, progress=False)
    assert torch.equal(with_checkpoints[0][0], without[0][0])
