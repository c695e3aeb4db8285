"""Benchmark: Soteria's per-feature input sensitivities, grouped forward-mode passes
(gradienthide.input_sensitivity) against the dense Jacobian (jacfwd or jacrev, whichever has
fewer passes, as Soteria computed them before), and against one plain training step
(forward and backward of the batch) for scale.

For each model and image size: both sides warm up, then alternate for --repeats rounds; the
best round of each is kept (CPU time of this process). Also checks that both give the same
sensitivities (largest relative difference printed).

Usage: .venv/bin/python bench/soteria_scores.py [--batch 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from gradienthide.input_sensitivity import dense_input_sensitivity, input_sensitivity, pixel_groups
from gradienthide.models import build_model

CASES = [  # (label, model config, image shape)
    ("convnet 1x16x16 (default config)", {"arch": "convnet", "width": 16}, (1, 16, 16)),
    ("convnet 3x32x32 (cifar10_subset)", {"arch": "convnet", "width": 16, "normalize": True}, (3, 32, 32)),
    ("convnet+bn 3x32x32", {"arch": "convnet", "width": 16, "norm": "batch"}, (3, 32, 32)),
    ("lenet relu 3x32x32", {"arch": "lenet", "activation": "relu"}, (3, 32, 32)),
]


def timed(function, times: list[float]) -> None:
    start = time.process_time()
    function()
    times.append(time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"CPU seconds per batch of {args.batch} images, best of {args.repeats} alternated rounds")
    print(f"{'model':34} {'pixels':>6} {'groups':>6} {'grouped':>8} {'dense':>8} {'dense/grouped':>13} "
          f"{'plain step':>10} {'grouped/step':>12} {'rel. diff':>9}")
    for label, model_config, shape in CASES:
        torch.manual_seed(0)
        channels = shape[0]
        model = build_model(model_config, shape, 10, channel_stats={"mean": [0.5] * channels, "std": [0.25] * channels})
        features = model.features.eval()
        images, labels = torch.rand(args.batch, *shape), torch.randint(0, 10, (args.batch,))

        def plain_step():
            model.zero_grad()
            F.cross_entropy(model(images), labels).backward()

        grouped = input_sensitivity(features, images)  # warm-up (and the colouring, cached)
        dense = dense_input_sensitivity(features, images)
        plain_step()
        times = {"grouped": [], "dense": [], "step": []}
        for _ in range(args.repeats):
            timed(lambda: input_sensitivity(features, images), times["grouped"])
            timed(lambda: dense_input_sensitivity(features, images), times["dense"])
            timed(plain_step, times["step"])
        g, d, s = (min(times[key]) for key in ("grouped", "dense", "step"))
        groups = pixel_groups(features, shape)
        group_count = "-" if groups is None else int(groups.max()) + 1
        difference = float(((grouped - dense).abs() / dense.abs().clamp_min(1e-12)).max())
        print(f"{label:34} {images[0].numel():6d} {group_count:>6} {g:8.4f} {d:8.4f} {d / g:12.2f}x "
              f"{s:10.4f} {g / s:11.1f}x {difference:9.1e}", flush=True)


if __name__ == "__main__":
    main()
