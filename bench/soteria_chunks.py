"""Benchmark: Soteria's grouped sensitivities (gradienthide.input_sensitivity) as the tree has
them against an earlier revision of that module, on the verdict config's ConvNet at 3x32x32,
a batch of 16 (one local step), one thread.

The earlier revision (--before, default 4f34047) pushed the whole batch's tangents at once (up
to 2**26 elements; [16 images, 243 groups, 16x32x32] is 255 MB of float32) and multiplied them
by each activation's derivative in the derivative's own memory layout, which cost a copy
before every convolution. Now, on a CPU, chunks of at most 2**23 elements (32 MB, a
last-level cache; here two images) go through, the derivative in the convolutions'
channels-last layout. --chunk-exponents also times the current module at other chunk bounds.

All sides warm up, then alternate for --repeats rounds; each side's best CPU time is printed
with its ratio to the earlier revision, and its median and worst (this machine's cache is
shared, and chunks near its size vary), and all results are checked to agree.

Usage: .venv/bin/python bench/soteria_chunks.py [--before 4f34047] [--batch 16] [--repeats 7]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from gradienthide.input_sensitivity import input_sensitivity
from gradienthide.models import build_model

REPO = Path(__file__).resolve().parent.parent
MODULE = "gradienthide/input_sensitivity.py"


def module_at(revision: str, directory: Path):
    """The sensitivity module as it was at `revision`, imported under another name."""
    source = subprocess.run(["git", "show", f"{revision}:{MODULE}"], cwd=REPO, check=True, capture_output=True,
                            text=True).stdout
    path = directory / "input_sensitivity_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("input_sensitivity_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="4f34047")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--chunk-exponents", type=int, nargs="*", default=[22, 26],
                        help="also time the current module with max_elements=2**e for each e")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = (3, 32, 32)
    model = build_model({"arch": "convnet", "width": 16, "normalize": True}, shape, 10,
                        channel_stats={"mean": [0.5] * 3, "std": [0.25] * 3})
    features = model.features.eval()
    images = torch.rand(args.batch, *shape)
    with tempfile.TemporaryDirectory() as directory:
        before = module_at(args.before, Path(directory))
        sides = {f"at {args.before}": lambda: before.input_sensitivity(features, images),
                 "now": lambda: input_sensitivity(features, images)}
        for exponent in args.chunk_exponents:
            sides[f"now, 2**{exponent}"] = (
                lambda exponent=exponent: input_sensitivity(features, images, max_elements=2 ** exponent))
        results = [side() for side in sides.values()]  # warm-up
        for name, result in zip(sides, results):
            assert torch.allclose(result, results[0], rtol=1e-5, atol=1e-8), f"{name}: the sensitivities changed"
        times = {name: [] for name in sides}
        for _ in range(args.repeats):
            for name, side in sides.items():
                start = time.process_time()
                side()
                times[name].append(time.process_time() - start)
    best = {name: min(values) for name, values in times.items()}
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"CPU seconds per batch of {args.batch} images at 3x32x32 over {args.repeats} alternated rounds")
    earlier = best[f"at {args.before}"]
    for name, value in best.items():
        print(f"  {name:14} best {value:.4f} (before / this {earlier / value:.2f}x), median {medians[name]:.4f}, "
              f"worst {max(times[name]):.4f}")


if __name__ == "__main__":
    main()
