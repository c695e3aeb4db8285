"""Benchmark: one vectorised Inverting Gradients run over a shard vs. the same targets one by one.

Prints wall-clock times measured in this run and their ratio; no thresholds are asserted.
Usage: .venv/bin/python bench/attack_batching.py [--targets 5] [--iterations 200]
"""

import argparse
import copy
import time

import torch

from gradienthide import data
from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.defenses import ClientContext, make_defense
from gradienthide.models import ConvNet
from gradienthide.protocol import ClientProtocol


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    digits = data.load_digits_source()
    images = data.resize(digits.images, 16).float() / 255
    model = ConvNet(1, 10, 16, width=16)
    targets = []
    for t in range(args.targets):
        x, y = images[t * args.batch : (t + 1) * args.batch], digits.labels[t * args.batch : (t + 1) * args.batch]
        update = make_defense("none").client_update(copy.deepcopy(model), [(x, y)], ClientContext(ClientProtocol(local_steps=1, batch_size=args.batch, lr=0.1), torch.Generator()))
        targets.append(AttackTarget(update, len(y), y, ClientProtocol(local_steps=1, batch_size=args.batch, lr=0.1)))
    attack = make_attack("ig", {"iterations": args.iterations, "restarts": 2})

    start = time.perf_counter()
    attack.reconstruct(model, targets, (1, 16, 16), seed=0, progress=False)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for target in targets:
        attack.reconstruct(model, [target], (1, 16, 16), seed=0, progress=False)
    sequential = time.perf_counter() - start

    print(f"{args.targets} updates x batch {args.batch} x 2 restarts, {args.iterations} iterations, {args.threads} thread(s)")
    print(f"batched (one vmap run): {batched:.2f} s")
    print(f"one update at a time:   {sequential:.2f} s")
    print(f"speed-up of batching:   {sequential / batched:.2f}x")


if __name__ == "__main__":
    main()
