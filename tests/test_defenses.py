import copy

import pytest
import torch

from conftest import plain_protocol
import torch.nn.functional as F

from gradienthide.defenses import DEFENSES, ClientContext, make_defense
from gradienthide.models import ConvNet


def _setup(seed=0):
    torch.manual_seed(seed)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    public_images, public_labels = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    return model, images, labels, public_images, public_labels


def _gradient(model, images, labels):
    model.zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_no_defense_uploads_minus_lr_times_the_gradient():
    model, images, labels, *_ = _setup()
    expected = _gradient(copy.deepcopy(model), images, labels)
    update = make_defense("none").client_update(model, [(images, labels)], ClientContext(plain_protocol(0.5), torch.Generator()))
    for name, grad in expected.items():
        torch.testing.assert_close(update[name], -0.5 * grad)


def test_gradienthide_adds_public_steps_after_the_private_update():
    model, images, labels, public_images, public_labels = _setup()
    defense = make_defense("gradienthide", {"public_steps": 2, "public_batch_size": 5, "public_lr": 0.3})
    context = ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(7), public_images, public_labels)
    update = defense.client_update(copy.deepcopy(model), [(images, labels)], context)

    # Replay both stages by hand with the same public batches.
    replay = copy.deepcopy(model)
    start = {n: p.detach().clone() for n, p in replay.named_parameters()}
    batches = [(images, labels, 0.1)]
    generator = torch.Generator().manual_seed(7)
    for _ in range(2):
        chosen = torch.randperm(20, generator=generator)[:5]
        batches.append((public_images[chosen], public_labels[chosen], 0.3))
    for x, y, lr in batches:
        grads = _gradient(replay, x, y)
        with torch.no_grad():
            for n, p in replay.named_parameters():
                p -= lr * grads[n]
    for name, p in replay.named_parameters():
        torch.testing.assert_close(update[name], p.detach() - start[name])

    plain = make_defense("none").client_update(copy.deepcopy(model), [(images, labels)], ClientContext(plain_protocol(0.1), torch.Generator()))
    assert any(not torch.allclose(update[n], plain[n]) for n in plain), "public steps must change the upload"


def test_gradienthide_uses_the_public_labels_it_is_given():
    model, images, labels, public_images, public_labels = _setup()
    defense = make_defense("gradienthide", {"public_steps": 1, "public_batch_size": 20, "public_lr": 1.0})
    one = defense.client_update(copy.deepcopy(model), [(images, labels)],
                                ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0), public_images, public_labels))
    other = defense.client_update(copy.deepcopy(model), [(images, labels)],
                                  ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(0), public_images, (public_labels + 1) % 10))
    assert not torch.allclose(one["classifier.bias"], other["classifier.bias"])


def test_gradienthide_without_a_public_pool_fails_clearly():
    model, images, labels, *_ = _setup()
    with pytest.raises(ValueError, match="public pool"):
        make_defense("gradienthide").client_update(model, [(images, labels)], ClientContext(plain_protocol(0.1), torch.Generator()))


def test_registry_and_parameter_errors():
    assert set(DEFENSES) >= {"none", "gradienthide"}
    assert DEFENSES["gradienthide"].uses_public_pool and not DEFENSES["none"].uses_public_pool
    with pytest.raises(ValueError, match=r"defenses.gradienthide: unknown parameters \['steps'\]"):
        make_defense("gradienthide", {"steps": 1})
    with pytest.raises(ValueError, match="no such defense"):
        make_defense("soteriaa")
