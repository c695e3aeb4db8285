"""Benchmark: the gradient-matching engine's cost per target and iteration.

For each attack (ig, dlg, gradinversion), model (convnet, lenet, resnet18) and shard size (1, 4,
16 targets), three sides invert the same targets:
  batched   the engine, all the shard's targets in one reconstruct call (one vmap-ed run)
  single    the engine, one target per reconstruct call
  plain     bench/reference.py: nn.Module, autograd.grad(create_graph=True), Python sums,
            one target and one restart at a time
Every side runs once to warm up, then the sides alternate for --repeats rounds; the fastest
round of each side is reported (CPU time of this process, so that other
processes on a shared machine disturb it less), as ms per target-iteration (an L-BFGS iteration is one
objective evaluation), with the ratios plain/batched and single/batched.

ResNet-18 (BatchNorm, as in configs/paper-cifar10.yaml) is not in the default --archs: an
iteration costs about a hundred times the ConvNet's, so run it on its own with fewer
iterations (--iterations sets every attack's count; DLG's L-BFGS steps).

Usage: .venv/bin/python bench/attack_engine.py [--attacks ig dlg gradinversion]
       [--archs convnet lenet resnet18] [--shards 1 4 16] [--repeats 3] [--threads 1] [--iterations N]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference
from problems import make_model, make_targets

from gradienthide.attacks import make_attack
from gradienthide.attacks.gradinversion import (
    last_linear_weight_name,
    recover_batch_labels,
)
from gradienthide.models import as_client_forward

BATCH, SIZE, LR = 8, 16, 0.1
SETTINGS = {  # iterations per timed run; an L-BFGS run is iterations x max_iter evaluations
    "ig": {"iterations": 30, "restarts": 2},
    "dlg": {"iterations": 2, "max_iter": 5},
    "gradinversion": {"iterations": 20, "restarts": 4},
}


def evaluations(attack: str) -> int:
    s = SETTINGS[attack]
    return s["iterations"] * s.get("max_iter", 1)


def run_engine(attack, model, targets, batched: bool):
    model = copy.deepcopy(model)  # GradInversion switches the model's BatchNorm to batch statistics
    engine = make_attack(attack, SETTINGS[attack])
    if batched:
        engine.reconstruct(model, targets, (1, SIZE, SIZE), seed=0, progress=False)
    else:
        for target in targets:
            engine.reconstruct(model, [target], (1, SIZE, SIZE), seed=0, progress=False)


def run_plain(attack, model, targets):
    s = SETTINGS[attack]
    generator = torch.Generator().manual_seed(0)
    for target in targets:
        if attack == "ig":
            for _ in range(s["restarts"]):
                init = torch.rand((BATCH, 1, SIZE, SIZE), generator=generator)
                reference.inverting_gradients(model, target.update, target.known_labels, init,
                                              iterations=s["iterations"])
        elif attack == "dlg":
            reference.deep_leakage(model, target.update, LR, torch.randn((BATCH, 1, SIZE, SIZE), generator=generator),
                                   torch.randn((BATCH, 10), generator=generator), iterations=s["iterations"],
                                   max_iter=s["max_iter"])
        else:
            labels = recover_batch_labels(target.update, last_linear_weight_name(model), BATCH)
            init = torch.rand((s["restarts"], BATCH, 1, SIZE, SIZE), generator=generator)
            reference.gradinversion(model, target.update, LR, labels, init, iterations=s["iterations"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attacks", nargs="+", default=["ig", "dlg", "gradinversion"])
    parser.add_argument("--archs", nargs="+", default=["convnet", "lenet"])
    parser.add_argument("--shards", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=None, help="every attack's iterations (default: SETTINGS)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.iterations is not None:
        for settings in SETTINGS.values():
            settings["iterations"] = args.iterations
    print(f"ms per target-iteration, {args.threads} thread(s), batch {BATCH}, {SIZE}x{SIZE}; best of {args.repeats}")
    print(f"{'attack':14} {'arch':8} {'shard':>5} {'batched':>8} {'single':>8} {'plain':>8} {'plain/batched':>14} "
          f"{'single/batched':>15}")
    for attack in args.attacks:
        for arch in args.archs:
            if attack == "gradinversion" and arch == "lenet":
                continue  # GradInversion needs BatchNorm, which LeNet has not
            norm = "batch" if attack == "gradinversion" or arch == "resnet18" else "none"
            model = make_model(arch, size=SIZE, width=16 if arch == "convnet" else None, norm=norm)
            all_targets = make_targets(model, max(args.shards), batch=BATCH, size=SIZE, lr=LR)
            if norm == "batch":  # BatchNorm by the batch's statistics, as the attack stage sets it
                model = as_client_forward(model)
            for shard in args.shards:
                targets = all_targets[:shard]
                sides = {
                    "batched": partial(run_engine, attack, model, targets, True),
                    "single": partial(run_engine, attack, model, targets, False),
                    "plain": partial(run_plain, attack, model, targets),
                }
                best = {name: float("inf") for name in sides}
                for repeat in range(args.repeats + 1):  # round 0 warms up
                    for name, side in sides.items():
                        start = time.process_time()
                        side()
                        elapsed = time.process_time() - start
                        if repeat:
                            best[name] = min(best[name], elapsed)
                per = {name: 1000 * t / (shard * evaluations(attack)) for name, t in best.items()}
                print(f"{attack:14} {arch:8} {shard:5d} {per['batched']:8.2f} {per['single']:8.2f} {per['plain']:8.2f} "
                      f"{per['plain'] / per['batched']:13.2f}x {per['single'] / per['batched']:14.2f}x", flush=True)


if __name__ == "__main__":
    main()
