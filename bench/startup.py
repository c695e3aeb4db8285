"""Benchmark: time lost between jobs: the no-op dry run of a finished run's DAG and the
import of each stage module (what every job pays before its work starts).

Each measurement is a fresh process, run once to warm the file cache, then --repeats times
alternating with the baseline tree when one is given (--baseline-src: another checkout of
the package, e.g. the commit before a change), so both sides see the same machine load.
Reports the best wall time and the CPU time (user + sys of the child) of each side, and
their ratios.

Usage: .venv/bin/python bench/startup.py [--workdir .] [--repeats 5] [--baseline-src DIR]
       [--no-dry-run] [--modules gradienthide.stages.attack ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODULES = ["gradienthide.stages", "gradienthide.stages.data", "gradienthide.stages.train", "gradienthide.stages.attack",
           "gradienthide.stages.evaluate", "gradienthide.stages.report", "torch"]


def timed(command: list[str], *, src: Path, cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s) of one child process; `src` goes first on its PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare(name: str, command_for, sides: dict[str, Path], cwd: Path, repeats: int) -> None:
    best = {side: [float("inf"), float("inf")] for side in sides}
    for repeat in range(repeats + 1):  # round 0 warms up
        for side, src in sides.items():
            wall, cpu = timed(command_for(src), src=src, cwd=cwd)
            if repeat:
                best[side] = [min(best[side][0], wall), min(best[side][1], cpu)]
    cells = "  ".join(f"{side}: {wall:6.2f} s wall {cpu:6.2f} s CPU" for side, (wall, cpu) in best.items())
    ratio = ""
    if "baseline" in best:
        base, new = best["baseline"], best["current"]
        ratio = f"  baseline/current: {base[0] / new[0]:.2f}x wall {base[1] / new[1]:.2f}x CPU"
    print(f"{name:34} {cells}{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=REPO, help="a directory holding a finished run (for -n)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--no-dry-run", action="store_true")
    parser.add_argument("--modules", nargs="*", default=MODULES)
    args = parser.parse_args()
    sides = {"current": REPO}
    if args.baseline_src is not None:
        sides["baseline"] = args.baseline_src.resolve()
    snakemake = Path(sys.executable).parent / "snakemake"
    print(f"best of {args.repeats} after a warm-up, sides alternated")
    if not args.no_dry_run:
        compare("snakemake -n (no-op dry run)",
                lambda src: [str(snakemake), "-n", "--snakefile", str(src / "Snakefile"), "--directory",
                             str(args.workdir.resolve())], sides, args.workdir, args.repeats)
    for module in args.modules:
        compare(f"import {module}", lambda src, module=module: [sys.executable, "-c", f"import {module}"], sides, REPO, args.repeats)


if __name__ == "__main__":
    main()
