"""One engine for gradient-matching attacks: a paper's attack file keeps only what is its own.

The engine owns what every optimisation-based attack shares: grouping the targets into
batched problems (one vmap needs one batch shape and one client protocol), the functional
model, the replay of the client's local steps (through the targets' `ClientProtocol`),
random restarts, the optimiser loop with its step-size schedule, progress, and the choice
among restarts. Every (target, restart) pair is one row of a single torch.func.vmap-ed
objective, so a shard costs one vectorised optimisation rather than a loop (on a CPU, a large
model outside the row-wise layers takes its rows one at a time, ROW_LOOP_MIN_PARAMETERS, and
rows whose layer outputs outgrow the cache go in several calls, ROW_CALL_MAX_OUTPUTS).

A paper's subclass supplies:
  target_labels    its label rule (known, recovered from the update, or None: optimised)
  target_rows      per-target tensors its objective compares against (the upload, its norm)
  objective        fidelity and priors for one row: (x, y, row) -> scalar
and sets class-level choices: `optimiser` ("adam": Adam with the step size cut tenfold at
3/8, 5/8 and 7/8 of the iterations, images boxed to [0, 1]; or "lbfgs"), `signed_gradients`,
`image_init` ("uniform" or "normal") and `fusion` ("best" restart by final objective, or
"mean" of the restarts).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap
from tqdm import tqdm

from gradienthide.attacks.base import Attack, AttackTarget, classifier_bias_name
from gradienthide.models import Normalize
from gradienthide.protocol import ClientProtocol, plain_autograd

PROGRESS_EVERY = 50  # iterations between the progress bar's objective readings
# Fractions of its budget at which an attack hands out its reconstructions besides the final one,
# so evaluation can tell whether more iterations would have recovered more (budget curves).
BUDGET_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1)


def budget_checkpoints(iterations: int) -> list[int]:
    """The iteration counts (L-BFGS steps for L-BFGS) at BUDGET_FRACTIONS of `iterations`, the
    last one `iterations` itself; fractions that round to the same count are kept once."""
    return sorted({max(1, round(fraction * iterations)) for fraction in BUDGET_FRACTIONS})


# Layers through which the gradient of several rows' summed objective, taken by autograd outside
# their vmap, equals each row's own gradient (tests/test_attack_engine.py checks it in float64).
# Normalisation by a batch's or a sample's statistics is not among them: through BatchNorm,
# InstanceNorm and LayerNorm that gradient is off by up to 1.5e-2 (torch 2.14), so a model with
# any layer not listed keeps vmap(grad_and_value).
ROWWISE_LAYERS = (nn.Conv2d, nn.Linear, nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Flatten, nn.Identity, Normalize)

# A model outside ROWWISE_LAYERS with at least this many parameters takes its rows one at a time on
# a CPU, each by plain autograd, instead of vmap(grad_and_value): vmap's batching rules then move
# more data than they save calls. Measured (bench/README.md, "Attack engine"): ResNet-18 (11 M
# parameters) 1.13-1.56x faster looped; the BatchNorm ConvNet (15 k) faster under vmap.
ROW_LOOP_MIN_PARAMETERS = 1_000_000

# On a CPU, one call of the batched objective takes rows whose dummy images make at most this many
# convolution and linear layer outputs (float32 elements: rows x samples x per image, about this
# machine's 4 MiB L2 cache per core); more rows are cut into equal calls. Measured (bench/README.md,
# "Attack engine"): IG on 16 ConvNet targets (32 rows of 8 images, 16x16: 1.7 M) 1.10-1.26x faster
# in two calls of 16, and 2 rows of 40 images at 64x64 (width 64) 1.32x in two; 4 calls of 4 rows
# were slower than one of 32 (0.83x). The reconstructions are the same.
ROW_CALL_MAX_OUTPUTS = 1_000_000


class FunctionalModel:
    """The attacked model as functions of its parameters (buffers fixed), for torch.func."""

    def __init__(self, model: nn.Module):
        self.module = model
        self.params = {name: p.detach() for name, p in model.named_parameters()}
        self.buffers = {name: b.detach() for name, b in model.named_buffers()}
        self.device = next(model.parameters()).device
        self.rows_differentiable_outside_vmap = all(
            isinstance(m, ROWWISE_LAYERS) for m in model.modules() if not list(m.children()))
        self.rows_one_at_a_time = (not self.rows_differentiable_outside_vmap and self.device.type == "cpu"
                                   and sum(p.numel() for p in self.params.values()) >= ROW_LOOP_MIN_PARAMETERS)

    def layer_outputs_per_image(self, image_shape: tuple[int, ...]) -> int:
        """Elements the convolution and linear layers output for one image of `image_shape`. Shapes
        only: the model runs on the meta device, so nothing is computed and no buffer changes."""
        total = 0

        def count(module, inputs, output):
            nonlocal total
            total += output[0].numel()  # one image of the two below (BatchNorm needs two)

        hooks = [m.register_forward_hook(count) for m in self.module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        try:
            on_meta = {name: t.to("meta") for name, t in {**self.params, **self.buffers}.items()}
            functional_call(self.module, on_meta, (torch.zeros((2, *image_shape), device="meta"),))
        finally:
            for hook in hooks:
                hook.remove()
        return total

    def logits(self, params: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (params, self.buffers), (images,))

    def task_loss(self, params: dict[str, torch.Tensor], images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The client's loss as the attacker models it (cross-entropy; labels may be soft)."""
        return F.cross_entropy(self.logits(params, images), labels)


@dataclass
class MatchingProblem:
    """One batched optimisation: targets with the same number of samples and protocol."""

    net: FunctionalModel
    protocol: ClientProtocol
    steps: int  # local steps the dummy batch is replayed through (1: read as one gradient)
    batch_shape: tuple[int, ...]  # [samples, C, H, W] of one target
    targets: list[AttackTarget]
    restarts: int

    @property
    def count(self) -> int:
        return len(self.targets)

    @property
    def rows(self) -> int:
        return self.count * self.restarts

    @cached_property
    def rows_per_call(self) -> int:
        """Rows one call of the batched objective takes: 1 for a model that takes its rows one at a
        time, else as many as ROW_CALL_MAX_OUTPUTS allows on a CPU, cut evenly; all on a GPU."""
        if self.net.rows_one_at_a_time:
            return 1
        if self.net.device.type != "cpu":
            return self.rows
        per_row = self.batch_shape[0] * self.net.layer_outputs_per_image(self.batch_shape[1:])
        calls = max(1, math.ceil(self.rows * per_row / ROW_CALL_MAX_OUTPUTS))
        return math.ceil(self.rows / min(calls, self.rows))

    def per_row(self, per_target: list[torch.Tensor]) -> torch.Tensor:
        """Stack one tensor per target into rows; row k is restart k % restarts of target k // restarts.
        One target's rows are views of its tensor, not copies: on ResNet-18 a copy per restart of
        the upload's 11 M values made the engine 4-6 % slower (bench/README.md, "Attack engine")."""
        stacked = torch.stack([t.to(self.net.device) for t in per_target])
        if self.count == 1:
            return stacked.expand(self.restarts, *stacked.shape[1:])
        return stacked.repeat_interleave(self.restarts, 0)

    def descent(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the dummy batch's upload reads as a gradient (minus the update over the lr)."""
        return self.protocol.descent(self.net.task_loss, self.net.params, images, labels, self.steps)


def group_targets(targets: list[AttackTarget], simulate_local_steps: bool) -> dict[tuple, list[int]]:
    """Target positions by (number of samples, protocol, replayed steps): one vmap per group."""
    groups: dict[tuple, list[int]] = {}
    for i, target in enumerate(targets):
        if target.protocol is None:
            raise ValueError(f"target {i}: the clients' protocol is not known (AttackTarget.protocol)")
        steps = target.protocol.steps_for(target.num_samples) if simulate_local_steps else 1
        groups.setdefault((target.num_samples, target.protocol, steps), []).append(i)
    return dict(sorted(groups.items(), key=lambda item: (item[0][0], item[0][2], item[0][1].lr)))


def over_rows(function, rows: int, *, rows_per_call: int | None = None):
    """`function` of one row applied to every row (leading dimension) of its tensor arguments.
    vmap for several rows; one row is a direct call (vmap's batching costs more than it saves
    there). `rows_per_call` (MatchingProblem.rows_per_call) cuts the rows into calls of at most
    that many. randomness="different": a stochastic layer (PRECODE) draws fresh noise per row."""
    if rows_per_call is not None and rows_per_call < rows:
        return _in_calls(lambda count: over_rows(function, count), rows, rows_per_call)
    if rows > 1:
        return vmap(function, randomness="different")

    def single(*args):
        return _tensors(lambda t: t.unsqueeze(0), function(*_tensors(lambda t: t[0], args)))

    return single


def grad_and_value_over_rows(function, rows: int, argnums: int | tuple[int, ...] = 0, *,
                             outside_vmap: bool = True, rows_per_call: int | None = None):
    """Each row's value of `function` and its gradient with respect to the arguments at `argnums`.

    The rows' values come from `over_rows` (one vmap); the gradient is plain autograd of their sum
    taken outside the vmap. Rows are independent, so the sum's gradient is each row's own, and the
    backward pass then runs on ordinary batched kernels rather than under vmap's batching rules:
    vmap(grad_and_value(function))'s numbers up to float rounding (bit-identical on the ConvNet),
    and faster (bench/README.md, "Attack engine").

    `outside_vmap` False (a model with layers outside ROWWISE_LAYERS): several rows take
    vmap(grad_and_value(function)) instead. `rows_per_call` (MatchingProblem.rows_per_call) cuts
    the rows into calls of at most that many, each by the form for its count of rows (1: the
    one-row form, which large models outside ROWWISE_LAYERS take row by row on a CPU)."""
    positions = (argnums,) if isinstance(argnums, int) else argnums
    if rows_per_call is not None and rows_per_call < rows:
        return _in_calls(lambda count: grad_and_value_over_rows(function, count, argnums, outside_vmap=outside_vmap),
                         rows, rows_per_call)
    if not outside_vmap and rows > 1:
        return over_rows(grad_and_value(function, argnums=argnums), rows)
    values_over_rows = over_rows(function, rows)

    def batched(*args):
        args = list(args)
        for i in positions:
            args[i] = args[i].detach().requires_grad_(True)
        # one row runs under no function transform, so its replay may use plain autograd too
        with torch.enable_grad(), plain_autograd() if rows == 1 else contextlib.nullcontext():
            values = values_over_rows(*args)
            grads = torch.autograd.grad(values.sum(), [args[i] for i in positions])
        grads = grads[0] if isinstance(argnums, int) else tuple(grads)
        return _tensors(torch.Tensor.detach, (grads, values))

    return batched


def _in_calls(over_some_rows, rows: int, rows_per_call: int):
    """The rows in consecutive calls of at most `rows_per_call` rows: `over_some_rows(count)` is a
    function of `count` rows' tensors (every tensor argument sliced along its leading dimension,
    as vmap would), and the calls' outputs are concatenated."""
    counts = [min(rows_per_call, rows - start) for start in range(0, rows, rows_per_call)]
    functions = {count: over_some_rows(count) for count in set(counts)}

    def in_calls(*args):
        outputs, start = [], 0
        for count in counts:
            outputs.append(functions[count](*_tensors(lambda t: t[start:start + count], args)))
            start += count
        return _concatenated(outputs)

    return in_calls


def _concatenated(parts: list):
    """One value of the structure of each of `parts` (tensors in dicts, tuples and lists), each
    tensor the concatenation of the parts' tensors along the leading dimension."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {key: _concatenated([part[key] for part in parts]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(_concatenated(list(items)) for items in zip(*parts))
    return first


def _tensors(change, value):
    """`value` (tensors in dicts, tuples and lists) with `change` applied to every tensor."""
    if isinstance(value, torch.Tensor):
        return change(value)
    if isinstance(value, dict):
        return {key: _tensors(change, item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_tensors(change, item) for item in value)
    return value


def stack_rows(per_target: list[dict], problem: MatchingProblem) -> dict:
    """Stack each target's tensors (nested dicts allowed) into rows."""
    if not per_target or not per_target[0]:
        return {}
    stacked = {}
    for key, value in per_target[0].items():
        if isinstance(value, dict):
            stacked[key] = stack_rows([t[key] for t in per_target], problem)
        else:
            stacked[key] = problem.per_row([t[key] for t in per_target])
    return stacked


@dataclass
class GradientMatchingAttack(Attack):
    """Dummy images optimised so that the update they would produce matches the upload."""

    iterations: int = 2000
    restarts: int = 1
    lr: float = 0.1
    simulate_local_steps: bool = True

    optimiser: ClassVar[str] = "adam"
    signed_gradients: ClassVar[bool] = False
    image_init: ClassVar[str] = "uniform"
    fusion: ClassVar[str] = "best"
    restart_label: ClassVar[str] = "restarts"

    # --- what a paper's file supplies --------------------------------------------------------

    def target_labels(self, model: nn.Module, target: AttackTarget) -> torch.Tensor | None:
        """The labels the attack uses for a target, or None when it optimises them (DLG)."""
        raise NotImplementedError

    def target_rows(self, problem: MatchingProblem) -> dict:
        """Per-row tensors the objective reads (from problem.per_row / stack_rows)."""
        raise NotImplementedError

    def objective(self, problem: MatchingProblem, x: torch.Tensor, y: torch.Tensor, row: dict) -> torch.Tensor:
        """The loss of one row: dummy images x [samples, C, H, W], labels (or label
        probabilities) y, and that row's slice of `target_rows`."""
        raise NotImplementedError

    def prepare_targets(self, net: FunctionalModel, targets: list[AttackTarget]) -> list[AttackTarget]:
        """Turn the uploads into what is matched (the adaptive attacker's residuals)."""
        return targets

    def simulated_descent(self, problem: MatchingProblem, x, y, extra: dict) -> dict[str, torch.Tensor]:
        """The dummy batch's upload read as a gradient: the protocol's replay by default.
        `extra`: the row's slice of the target's AttackTarget.extra."""
        return problem.descent(x, y)

    def refresh_rows(self, problem: MatchingProblem, x: torch.Tensor, iteration: int, rows: dict) -> None:
        """Called before every iteration; may update `rows` in place (GradInversion's group mean)."""

    def objective_context(self, problem: MatchingProblem):
        """A context held around the optimisation (GradInversion's BatchNorm hooks)."""
        return contextlib.nullcontext()

    # --- the engine --------------------------------------------------------------------------

    def budget_checkpoints(self) -> dict[int, list[torch.Tensor]]:
        """The last inversion's reconstructions at each of budget_checkpoints(iterations), by
        iterations done (L-BFGS steps for L-BFGS), one tensor per target in target order; the
        last checkpoint is the result itself."""
        return getattr(self, "_checkpoints", {})

    def invert(self, model, targets, image_shape, seed, progress=True):
        net = FunctionalModel(model)
        targets = self.prepare_targets(net, targets)
        labels = [self.target_labels(model, t) for t in targets]
        labels = [None if used is None else used.to(net.device) for used in labels]
        results: list = [None] * len(targets)
        self._checkpoints = {done: [None] * len(targets) for done in budget_checkpoints(self.iterations)}
        generator = torch.Generator(device="cpu").manual_seed(seed)
        for (samples, protocol, steps), members in group_targets(targets, self.simulate_local_steps).items():
            problem = MatchingProblem(net, protocol, steps, (samples, *image_shape), [targets[i] for i in members],
                                      self.restarts)
            group_labels = [labels[i] for i in members]
            images, used, snapshots = self.optimise(problem, group_labels, generator, progress)
            for i, reconstruction, label in zip(members, images, used):
                results[i] = (reconstruction.cpu(), label.cpu())
            for done, snapshot in snapshots.items():
                for i, reconstruction in zip(members, snapshot):
                    self._checkpoints[done][i] = reconstruction.cpu()
        return results

    def initial_images(self, problem: MatchingProblem, generator: torch.Generator) -> torch.Tensor:
        shape = (problem.rows, *problem.batch_shape)
        draw = torch.rand if self.image_init == "uniform" else torch.randn
        return draw(shape, generator=generator).to(problem.net.device)

    def optimise(self, problem: MatchingProblem, labels: list[torch.Tensor | None], generator, progress):
        """(one reconstruction per target, the labels used, {iterations done: reconstructions} at
        each budget checkpoint, the last being the reconstructions themselves)."""
        if self.optimiser == "lbfgs":
            return self._optimise_lbfgs(problem, labels, generator, progress)
        return self._optimise_adam(problem, labels, generator, progress)

    def _row_objective(self, problem):
        def objective(x, y, row):
            return self.objective(problem, x, y, row)

        return objective

    def _optimise_adam(self, problem, labels, generator, progress):
        rows = self.target_rows(problem)
        batch_labels = problem.per_row(labels)
        objective = self._row_objective(problem)
        objective_and_grad = grad_and_value_over_rows(objective, problem.rows,
                                                      outside_vmap=problem.net.rows_differentiable_outside_vmap,
                                                      rows_per_call=problem.rows_per_call)
        x = self.initial_images(problem, generator).requires_grad_(True)
        optimiser = torch.optim.Adam([x], lr=self.lr)
        milestones = [int(self.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=milestones, gamma=0.1)
        bar = tqdm(range(self.iterations), desc=f"{self.name}: {problem.count} updates x {self.restarts} {self.restart_label}",
                   unit="it", disable=not progress, mininterval=2.0)
        checkpoints, snapshots = budget_checkpoints(self.iterations), {}
        with self.objective_context(problem):
            for iteration in bar:
                self.refresh_rows(problem, x, iteration, rows)
                x_grad, values = objective_and_grad(x.detach(), batch_labels, rows)
                x.grad = x_grad.sign() if self.signed_gradients else x_grad
                optimiser.step()
                schedule.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
                if progress and iteration % PROGRESS_EVERY == 0:  # .item() waits for the device
                    bar.set_postfix(objective=f"{values.mean().item():.4f}", refresh=False)
                if iteration + 1 in checkpoints:
                    snapshots[iteration + 1] = self._fused(problem, x, objective, batch_labels, rows)
        return snapshots[self.iterations], labels, snapshots

    def _fused(self, problem, x, objective, batch_labels, rows) -> list[torch.Tensor]:
        """Each target's reconstruction from its restarts as they stand: their mean, or the one of
        lowest objective. The objective's evaluation leaves torch's random state as it found it
        (a stochastic model draws from it), so a checkpoint does not change what follows it."""
        images = x.detach().view(problem.count, self.restarts, *problem.batch_shape)
        if self.fusion == "mean":
            return list(images.mean(1))
        device = problem.net.device
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            final = over_rows(objective, problem.rows, rows_per_call=problem.rows_per_call)(x.detach(), batch_labels, rows)
        best = final.view(problem.count, self.restarts).argmin(1)
        return [images[i, best[i]].clone() for i in range(problem.count)]  # x changes in place as it goes on

    def _optimise_lbfgs(self, problem, labels, generator, progress):
        """Images and, when the label rule gives none, label logits, optimised jointly by L-BFGS
        over all rows at once; the iterate with the lowest objective seen is kept per row (plain
        L-BFGS can diverge). Each row's objective should be scaled so that rows weigh alike."""
        rows = self.target_rows(problem)
        objective = self._row_objective(problem)
        classes = problem.net.params[classifier_bias_name(problem.net.module)].shape[0]
        x = self.initial_images(problem, generator).requires_grad_(True)
        learns_labels = labels[0] is None
        if learns_labels:
            y = torch.randn((problem.rows, problem.batch_shape[0], classes), generator=generator).to(
                problem.net.device).requires_grad_(True)
            variables, argnums = [x, y], (0, 1)

            def row_objective(x, logits, row):
                return objective(x, logits.softmax(-1), row)
        else:
            y = problem.per_row(labels)
            variables, argnums, row_objective = [x], (0,), objective
        batched = grad_and_value_over_rows(row_objective, problem.rows, argnums,
                                           outside_vmap=problem.net.rows_differentiable_outside_vmap,
                                           rows_per_call=problem.rows_per_call)
        best_value = torch.full((problem.rows,), float("inf"), device=problem.net.device)
        best_x, best_y = x.detach().clone(), y.detach().clone()
        diverged = False

        def closure():
            nonlocal diverged
            grads, values = batched(x.detach(), y.detach(), rows)
            if not torch.isfinite(values).all():
                diverged = True  # zero gradients make L-BFGS stop; the best iterates are kept
                grads = tuple(torch.zeros_like(v) for v in variables)
            better = values < best_value
            best_value[better] = values[better].detach()
            best_x[better] = x.detach()[better]
            best_y[better] = y.detach()[better]
            for variable, variable_grad in zip(variables, grads):
                variable.grad = variable_grad.contiguous()  # L-BFGS flattens it with view
            return torch.nan_to_num(values.sum(), nan=0.0, posinf=0.0)

        optimiser = torch.optim.LBFGS(variables, lr=self.lr, max_iter=self.max_iter, line_search_fn=self.line_search)
        bar = tqdm(range(self.iterations), desc=f"{self.name}: {problem.count} updates", unit="step",
                   disable=not progress, mininterval=2.0)

        def best_so_far():
            # per target, the restart whose best iterate came closest
            chosen = (torch.arange(problem.count, device=best_value.device) * self.restarts
                      + best_value.view(problem.count, self.restarts).argmin(1))
            return list(best_x[chosen].clamp(0, 1)), chosen

        checkpoints, snapshots = budget_checkpoints(self.iterations), {}
        with self.objective_context(problem):
            for step in bar:
                optimiser.step(closure)
                if progress:
                    bar.set_postfix(distance=f"{best_value.mean().item():.4g}", refresh=False)
                if step + 1 in checkpoints:
                    snapshots[step + 1] = best_so_far()[0]
                if diverged:
                    break
        images, chosen = best_so_far()
        for done in checkpoints:  # a run stopped by divergence keeps its best iterate at later checkpoints
            snapshots.setdefault(done, images)
        used = best_y.argmax(-1) if learns_labels else best_y
        return images, list(used[chosen]), snapshots
