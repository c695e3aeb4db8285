"""Benchmark: one vectorised Inverting Gradients run over a shard vs. the same targets one by one.

Both sides run once to warm up, then alternate for --repeats rounds; the best round of each
side is reported (CPU time of this process) with the ratio measured in this run. No
thresholds are asserted.
Usage: .venv/bin/python bench/attack_batching.py [--targets 5] [--iterations 200] [--repeats 3]
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from problems import make_model, make_targets

from gradienthide.attacks import make_attack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = make_model("convnet", size=16, width=16)
    targets = make_targets(model, args.targets, batch=args.batch, size=16, lr=0.1)
    attack = make_attack("ig", {"iterations": args.iterations, "restarts": 2})

    def batched():
        attack.reconstruct(model, targets, (1, 16, 16), seed=0, progress=False)

    def sequential():
        for target in targets:
            attack.reconstruct(model, [target], (1, 16, 16), seed=0, progress=False)

    best = {"batched": float("inf"), "sequential": float("inf")}
    for repeat in range(args.repeats + 1):  # round 0 warms up
        for name, side in (("batched", batched), ("sequential", sequential)):
            start = time.process_time()
            side()
            if repeat:
                best[name] = min(best[name], time.process_time() - start)

    print(f"{args.targets} updates x batch {args.batch} x 2 restarts, {args.iterations} iterations, "
          f"{args.threads} thread(s), best of {args.repeats} (CPU s)")
    print(f"batched (one vmap run): {best['batched']:.2f} s")
    print(f"one update at a time:   {best['sequential']:.2f} s")
    print(f"speed-up of batching:   {best['sequential'] / best['batched']:.2f}x")


if __name__ == "__main__":
    main()
