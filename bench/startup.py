"""Benchmark: time lost between jobs: the no-op dry run of a finished run's DAG, the dry run of
the largest paper config (its 359 jobs planned, with the stand-in dataset and CLIP files of
tests/test_paper_configs.py), the import of each stage module, an attack job's start (its
imports and the determinism flag every job sets: what every job pays before its work starts),
and an evaluation job's whole life without Snakemake around it (its imports, scoring three
uploads of 8 images 16x16, drawing their grid, and its exit).

Each measurement is a fresh process, run once to warm the file cache, then --repeats times
alternating with the baseline tree when one is given (--baseline-src: another checkout of
the package, e.g. the commit before a change), so both sides see the same machine load.
Reports the best wall time and the CPU time (user + sys of the child) of each side, and
their ratios.

The SLURM executor plugin runs `scontrol show config` when Snakemake imports it (for a help
text); where a SLURM client is installed but no controller answers, that call waits about 9 s.
The .pth hook scripts/setup.sh installs (gradienthide/slurm_startup.py) skips that call, so a
snakemake command of .venv no longer pays it; the script times the call once and prints it, for
an environment without the hook.

Usage: .venv/bin/python bench/startup.py [--workdir .] [--repeats 5] [--baseline-src DIR]
       [--no-dry-run] [--paper paper-cifar100 | --paper none]
       [--modules gradienthide.stages.attack ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

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
            wall, cpu = timed(command_for(src), src=src, cwd=cwd(src) if callable(cwd) else cwd)
            if repeat:
                best[side] = [min(best[side][0], wall), min(best[side][1], cpu)]
    cells = "  ".join(f"{side}: {wall:6.2f} s wall {cpu:6.2f} s CPU" for side, (wall, cpu) in best.items())
    ratio = ""
    if "baseline" in best:
        base, new = best["baseline"], best["current"]
        ratio = f"  baseline/current: {base[0] / new[0]:.2f}x wall {base[1] / new[1]:.2f}x CPU"
    print(f"{name:34} {cells}{ratio}", flush=True)


def slurm_wait() -> float | None:
    """Wall seconds of the `scontrol show config` the SLURM plugin runs at Snakemake's start."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return None  # the plugin then skips it
    start = time.perf_counter()
    try:
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10, check=False)  # as the plugin
    except subprocess.TimeoutExpired:
        pass
    return time.perf_counter() - start


def paper_workdir(config: Path, directory: Path) -> Path:
    """`directory` with the paper config pointed at stand-in files (tests/test_paper_configs.py)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_paper_configs import _with_stand_ins

    directory.mkdir()
    with open(config) as handle:
        settings = _with_stand_ins(yaml.safe_load(handle), directory)
    (directory / "config.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=REPO, help="a directory holding a finished run (for -n)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument("--no-dry-run", action="store_true")
    parser.add_argument("--paper", default="paper-cifar100",
                        help="a config of configs/ to dry-run with stand-in files, each side its own ('none' to skip)")
    parser.add_argument("--modules", nargs="*", default=MODULES)
    args = parser.parse_args()
    sides = {"current": REPO}
    if args.baseline_src is not None:
        sides["baseline"] = args.baseline_src.resolve()
    snakemake = Path(sys.executable).parent / "snakemake"
    print(f"best of {args.repeats} after a warm-up, sides alternated")
    wait = slurm_wait()
    if wait is not None:
        print(f"(`scontrol show config`, which the SLURM plugin runs at snakemake's start without the "
              f"gradienthide_slurm_startup.pth hook: {wait:.2f} s wall here)")
    if not args.no_dry_run:
        compare("snakemake -n (default config)",
                lambda src: [str(snakemake), "-n", "--snakefile", str(src / "Snakefile"), "--directory",
                             str(args.workdir.resolve())], sides, args.workdir, args.repeats)
    if args.paper != "none":
        with tempfile.TemporaryDirectory() as directory:
            workdirs = {src: paper_workdir(src / "configs" / f"{args.paper}.yaml", Path(directory) / side)
                        for side, src in sides.items()}
            compare(f"snakemake -n ({args.paper})",
                    lambda src: [str(snakemake), "-n", "--snakefile", str(src / "Snakefile"), "--directory",
                                 str(workdirs[src]), "--configfile", str(workdirs[src] / "config.yaml")],
                    sides, Path(directory), args.repeats)
    for module in args.modules:
        # run in the side's own tree: `python -c` puts the working directory first on sys.path
        compare(f"import {module}", lambda src, module=module: [sys.executable, "-c", f"import {module}"], sides,
                lambda src: src, args.repeats)
    # what every job pays before its work: its stage's imports and the determinism flag start_job sets
    # (a tree without workflow.use_deterministic_algorithms makes torch's public call)
    job_start = ("import gradienthide.stages.attack, gradienthide.workflow as workflow, torch\n"
                 "getattr(workflow, 'use_deterministic_algorithms',\n"
                 "        lambda: torch.use_deterministic_algorithms(True, warn_only=True))()")
    compare("attack job start (imports + flag)", lambda src: [sys.executable, "-c", job_start], sides,
            lambda src: src, args.repeats)
    # a tree without workflow.exit_without_teardown ends as Python does, tearing its modules down
    evaluation_job = ("import sys, torch, gradienthide.stages.evaluate, gradienthide.workflow as workflow\n"
                      "from gradienthide import metrics, plots\n"
                      "images = torch.rand(3, 8, 1, 16, 16, generator=torch.Generator().manual_seed(0))\n"
                      "for batch in images:\n"
                      "    metrics.image_metrics(batch.flip(0), batch)\n"
                      "plots.reconstruction_grid(images.flatten(0, 1), images.flatten(0, 1).flip(0), sys.argv[1], 'grid')\n"
                      "getattr(workflow, 'exit_without_teardown', lambda: None)()")
    with tempfile.TemporaryDirectory() as directory:
        compare("evaluation job (imports to exit)",
                lambda src: [sys.executable, "-c", evaluation_job, str(Path(directory) / "grid.png")], sides,
                lambda src: src, args.repeats)


if __name__ == "__main__":
    main()
