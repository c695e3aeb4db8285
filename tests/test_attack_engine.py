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


def test_inverting_gradients_matches_the_plain_loop_for_every_target_and_restart():
    model = make_model("convnet", size=SIZE, width=4)
    targets = make_targets(model, 2, batch=BATCH, size=SIZE, lr=LR)
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


def test_gradinversion_matches_the_plain_loop():
    model = make_model("convnet", size=SIZE, width=4, norm="batch")
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


@pytest.mark.parametrize("arch,norm", [("convnet", "none"), ("convnet", "batch"), ("lenet", "none")])
def test_each_rows_gradient_in_a_batched_call_is_the_rows_own(arch, norm):
    """The engine's several-row gradient (autograd outside the vmap; vmap(grad) under batch
    statistics) gives each row what the row computed alone gives, in float64 where float
    rounding cannot hide a wrong formula."""
    from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem, grad_and_value_over_rows

    model = make_model(arch, size=SIZE, width=4, **({"norm": norm} if arch == "convnet" else {}))
    targets = make_targets(model, 2, batch=BATCH, size=SIZE, lr=LR)
    model = as_client_forward(model.double())
    for target in targets:
        target.update = {name: value.double() for name, value in target.update.items()}
    attack = make_attack("ig", {"iterations": 1, "restarts": 2})
    problem = MatchingProblem(FunctionalModel(model), targets[0].protocol, 1, (BATCH, 1, SIZE, SIZE), targets, 2)
    assert problem.net.batch_statistics == (norm == "batch")
    rows, labels = attack.target_rows(problem), problem.per_row([t.known_labels for t in targets])
    x = draws((4, BATCH, 1, SIZE, SIZE)).double()
    objective = attack._row_objective(problem)
    batched_grad, batched_value = grad_and_value_over_rows(objective, 4, batch_statistics=problem.net.batch_statistics)(
        x, labels, rows)
    alone = grad_and_value_over_rows(objective, 1)
    for k in range(4):
        row = {"wanted": {n: w[k:k + 1] for n, w in rows["wanted"].items()}, "wanted_norm": rows["wanted_norm"][k:k + 1],
               "extra": {}}
        grad_k, value_k = alone(x[k:k + 1], labels[k:k + 1], row)
        assert torch.allclose(batched_value[k], value_k[0], rtol=1e-12, atol=1e-14), f"row {k}"
        assert torch.allclose(batched_grad[k], grad_k[0], rtol=1e-9, atol=1e-13), f"row {k}"
