"""GradientHide's `draws` knob (how a round's public batches relate) and the attackers who
model it: the recorded draws obey the rule, the oracle's replay stays exact, draw inference
uses the rule, and the attack jobs still never read the recorded draws."""

import copy
import re

import pytest
import torch

from conftest import plain_protocol, run_snakemake, write_config
from gradienthide import config as gh_config
from gradienthide import data
from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.attacks.optimization import FunctionalModel, MatchingProblem
from gradienthide.defenses import ClientContext, make_defense
from gradienthide.draw_inference import draw_overlap
from gradienthide.models import ConvNet
from gradienthide.protocol import ClientProtocol

RULES = ("independent", "disjoint", "repeated")


def _digits(indices, size=8):
    digits = data.load_digits_source()
    return data.resize(digits.images[indices], size).float() / 255, digits.labels[indices]


def _public_draws(params, pool, seed=0):
    defense = make_defense("gradienthide", params)
    context = ClientContext(plain_protocol(0.1), torch.Generator().manual_seed(seed), *pool)
    batches = defense.public_batches(context)
    return torch.stack(context.public_draws), batches


@pytest.mark.parametrize("rule", RULES)
def test_public_draws_obey_their_rule(rule):
    pool = _digits(list(range(100, 130)))
    draws, batches = _public_draws({"public_steps": 4, "public_batch_size": 7, "draws": rule}, pool)
    assert draws.shape == (4, 7) and all(len(set(row.tolist())) == 7 for row in draws)  # no image twice in a step
    assert [torch.equal(images, pool[0][row]) for (images, _), row in zip(batches, draws)] == [True] * 4
    if rule == "independent":  # the default draws as before the knob existed: a fresh permutation per step
        generator = torch.Generator().manual_seed(0)
        assert torch.equal(draws, torch.stack([torch.randperm(30, generator=generator)[:7] for _ in range(4)]))
    elif rule == "disjoint":
        assert len(set(draws.flatten().tolist())) == 28  # no pool image twice in the round
    else:
        assert all(torch.equal(row, draws[0]) for row in draws)


def test_disjoint_draws_need_enough_pool_images():
    with pytest.raises(ValueError, match=r"draws: disjoint needs .* = 64 distinct pool images, but the clients draw from 50"):
        make_defense("gradienthide", {"public_steps": 2, "public_batch_size": 32, "pool_size": 50, "draws": "disjoint"})
    with pytest.raises(ValueError, match="= 24 distinct pool images, but the clients draw from 20"):  # the pool is too small
        _public_draws({"public_steps": 3, "public_batch_size": 8, "draws": "disjoint"}, _digits(list(range(100, 120))))
    with pytest.raises(ValueError, match="draws: 'fresh' is not one of independent, disjoint, repeated"):
        make_defense("gradienthide", {"draws": "fresh"})


@pytest.mark.parametrize("rule", RULES)
def test_adaptive_oracle_replays_each_draws_rule_exactly(rule):
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    images, labels = _digits(list(range(4)))
    pool = _digits(list(range(100, 140)))
    params = {"public_steps": 3, "public_batch_size": 8, "public_lr": 0.3, "draws": rule}
    protocol = ClientProtocol(local_steps=2, batch_size=2, lr=0.5, algorithm="fedprox", mu=2.0)
    context = ClientContext(protocol, torch.Generator().manual_seed(0), *pool)
    update = make_defense("gradienthide", params).client_update(copy.deepcopy(model), protocol.split(images, labels),
                                                                context)
    attack = make_attack("adaptive_oracle", {"iterations": 1})
    attack.prepare(defense=make_defense("gradienthide", params), public_pool=pool,
                   public_draws=[torch.stack(context.public_draws)], seed=0)
    net = FunctionalModel(model)
    (residual,) = attack.prepare_targets(net, [AttackTarget(update, 4, labels, protocol)])
    problem = MatchingProblem(net, protocol, protocol.local_steps, tuple(images.shape), [], restarts=1)
    replayed = attack.simulated_descent(problem, images, labels, residual.extra)
    gap = max(((replayed[n] + residual.update[n]).norm() / residual.update[n].norm()).item() for n in update)
    assert gap < 1e-4


def _public_only_upload(model, pool, params, protocol=None):
    """A GradientHide client's public stage alone (a private part of zero), and its draws."""
    defense = make_defense("gradienthide", params)
    protocol = protocol or plain_protocol(0.1)
    context = ClientContext(protocol, torch.Generator().manual_seed(0), *pool)
    local = copy.deepcopy(model)
    start = {n: p.detach().clone() for n, p in local.named_parameters()}
    context.anchor = start
    context.train(local, defense.public_batches(context), lr=defense.public_steps_spec().lr_at(protocol))
    return {n: p.detach() - start[n] for n, p in local.named_parameters()}, torch.stack(context.public_draws)


@pytest.mark.parametrize("rule", RULES)
def test_adaptive_infer_recovers_the_draws_exactly_under_each_rule(rule):
    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    pool = _digits(list(range(100, 140)))
    # two steps at a small step size: the first-order model of the upload is nearly exact
    params = {"public_steps": 2, "public_batch_size": 6, "public_lr": 0.01, "draws": rule}
    update, recorded = _public_only_upload(model, pool, params)
    attack = make_attack("adaptive_infer", {"iterations": 2, "restarts": 1, "estimation": "nnls"})
    attack.prepare(defense=make_defense("gradienthide", params), public_pool=pool, seed=0)
    attack.reconstruct(model, [AttackTarget(update, 6, pool[1][:6], plain_protocol(0.1))], (1, 8, 8), seed=0,
                       progress=False)
    estimated = attack.estimated_draws[0]
    assert estimated.shape == recorded.shape
    assert draw_overlap(estimated, recorded) == (1.0, 1.0)
    if rule == "repeated":  # the estimate keeps to the published rule
        assert torch.equal(estimated[0], estimated[1])
    if rule == "disjoint":
        assert len(set(estimated.flatten().tolist())) == estimated.numel()


def test_adaptive_infer_replays_a_public_lr_that_follows_the_schedule(monkeypatch):
    from gradienthide import draw_inference

    torch.manual_seed(0)
    model = ConvNet(1, 10, 8, width=4)
    pool = _digits(list(range(100, 140)))
    params = {"public_steps": 2, "public_batch_size": 6, "public_lr": 0.04, "public_lr_schedule": "follow"}
    late_round = ClientProtocol(local_steps=1, batch_size=8, lr=0.025, lr_scale=0.25)  # as a cosine schedule sends it
    update, recorded = _public_only_upload(model, pool, params, late_round)
    used, regress = [], draw_inference.regress_draws
    monkeypatch.setattr(draw_inference, "regress_draws", lambda **kw: used.append(kw["setting"].lr) or regress(**kw))
    attack = make_attack("adaptive_infer", {"iterations": 2, "restarts": 1, "estimation": "nnls"})
    attack.prepare(defense=make_defense("gradienthide", params), public_pool=pool, seed=0)
    attack.reconstruct(model, [AttackTarget(update, 6, pool[1][:6], late_round)], (1, 8, 8), seed=0, progress=False)
    assert used == [0.04 * 0.25]  # the round's public lr, as the client took it
    assert draw_overlap(attack.estimated_draws[0], recorded) == (1.0, 1.0)


def test_also_adds_settings_without_renaming_or_changing_the_sweep(tiny_config):
    block = {"public_steps": [1, 2], "public_batch_size": 8, "pool_size": [30, 60]}
    tiny_config["defenses"] = {"none": {}, "gradienthide": dict(block)}
    before = gh_config.defense_runs(gh_config.validate_config(tiny_config))
    tiny_config["defenses"]["gradienthide"]["also"] = [{"pool_size": 60, "draws": ["disjoint", "repeated"]}]
    after = gh_config.defense_runs(gh_config.validate_config(tiny_config))
    assert {run: after[run].params for run in before} == {run: run_.params for run, run_ in before.items()}
    assert sorted(set(after) - set(before)) == [f"gradienthide-drawsdisjoint-pool_size60-public_steps{s}" for s in (1, 2)] + [
        f"gradienthide-drawsrepeated-pool_size60-public_steps{s}" for s in (1, 2)]
    assert after["gradienthide-drawsrepeated-pool_size60-public_steps2"].params == {
        "public_steps": 2, "public_batch_size": 8, "pool_size": 60, "draws": "repeated"}
    tiny_config["defenses"]["gradienthide"]["also"] = [{"pool_size": 30}]  # already in the sweep
    with pytest.raises(gh_config.ConfigError, match="gradienthide-pool_size30-public_steps1.* already in the sweep"):
        gh_config.defense_runs(gh_config.validate_config(tiny_config))
    tiny_config["defenses"]["gradienthide"]["also"] = [{"draws": "fresh"}]
    with pytest.raises(gh_config.ConfigError, match=r"defenses.gradienthide.also.0.draws"):
        gh_config.validate_config(tiny_config)


def test_attack_jobs_never_read_the_recorded_draws_under_any_rule(tmp_path, repo, tiny_config):
    tiny_config["defenses"] = {"none": {}, "gradienthide": {
        "public_steps": 2, "public_batch_size": 8, "also": [{"draws": ["disjoint", "repeated"]}]}}
    tiny_config["metrics"]["lpips"] = False  # a dry run needs no LPIPS backbone
    config_file = write_config(tmp_path / "draws.yaml", tiny_config)
    result = run_snakemake(repo, tmp_path, config_file, "--dry-run")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout)
    attacks = [b for b in blocks if b.lstrip().startswith("rule attack:") and "defense=gradienthide" in b]
    assert {re.search(r"defense=(gradienthide[\w-]*),", b).group(1) for b in attacks} == {
        "gradienthide", "gradienthide-drawsdisjoint", "gradienthide-drawsrepeated"}
    readers = [b for b in attacks if "public_draws" in b.split("output:")[0]]
    assert readers and all("attack=adaptive_oracle," in b for b in readers)
    assert any("attack=adaptive_infer," in b for b in attacks)


@pytest.mark.parametrize("rule", RULES)
def test_refinement_keeps_the_label_prior_and_the_rule(rule):
    from gradienthide.draw_inference import PublicSetting, refine_draws

    generator = torch.Generator().manual_seed(0)
    pool_size, steps, batch = 12, 2, 3
    labels = torch.arange(pool_size) % 3
    setting = PublicSetting(torch.zeros(pool_size, 1, 2, 2), labels, steps, batch, lr=0.5, draws=rule)
    draws, _ = _public_draws({"public_steps": steps, "public_batch_size": batch, "draws": rule},
                             (torch.rand(pool_size, 1, 2, 2), labels))
    step_atoms = [torch.randn(pool_size, 40, generator=generator) for _ in range(steps)]
    target = sum(step_atoms[s][draws[s]].sum(0) for s in range(steps)) * (setting.lr / batch)
    histogram = torch.bincount(labels[draws[0] if rule == "repeated" else draws.flatten()], minlength=3).numpy()
    refined = refine_draws(target=target, step_atoms=step_atoms, setting=setting, quotas=histogram)
    assert draw_overlap(refined, draws) == (1.0, 1.0)
    assert torch.equal(torch.sort(refined, 1).values, torch.sort(draws, 1).values)  # each step its own batch
