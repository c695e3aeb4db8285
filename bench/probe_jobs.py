"""Benchmark: the privacy probes' attacks and evaluations as one job per shard (an earlier
revision, `--before`) against one attack_probes and one evaluate_probes job per defense
setting, attack, replicate and round (this tree).

A cut of configs/cifar10_verdict.yaml: its probes (batch sizes 1, 4 and 16, one shard each) at
round 1 of 2, one replicate, `none` and `gradienthide`, IG alone at `--iterations`. Each side
gets a working directory and a full run first (training, and the warm-up); then, alternately,
each side's attack directory is removed and its probe shards' metrics are made again: 6 attack
and 6 evaluate jobs before, 2 and 2 now, the same inversions and scores. The earlier revision
runs from `git archive` with its own package first on PYTHONPATH. Prints the best wall time of
each side, their ratio, the seconds saved per job no longer started, and whether both sides
wrote the same per-image metrics.

Usage: .venv/bin/python bench/probe_jobs.py [--before fa116ce] [--repeats 2] [--iterations 100]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BATCH_SIZES = [1, 4, 16]
DEFENSES = ["none", "gradienthide"]


def bench_config(output_dir: Path, data: Path, iterations: int) -> dict:
    with open(REPO / "configs" / "cifar10_verdict.yaml") as handle:
        config = yaml.safe_load(handle)
    config.update(output_dir=str(output_dir), seeds=[0])
    config["data"]["path"] = str(data)
    config["training"].update(rounds=2, attack_rounds=[1])
    config["defenses"] = {name: config["defenses"][name] for name in DEFENSES}
    config["attacks"] = {"ig": {**config["attacks"]["ig"], "iterations": iterations}}
    assert config["attack"]["probes"]["batch_sizes"] == BATCH_SIZES
    return config


def probe_metrics(output_dir: Path) -> list[Path]:
    return [output_dir / "attack" / defense / "ig" / "seed0" / "round1" / f"batch{size}" / "shard0" / "metrics.parquet"
            for defense in DEFENSES for size in BATCH_SIZES]


def snakemake(source: Path, workdir: Path, *targets: str) -> float:
    """Wall seconds of one snakemake run of `source`'s Snakefile and package."""
    # the targets first: --quiet takes any number of values
    command = [str(Path(sys.executable).parent / "snakemake"), *targets, "--snakefile", str(source / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), "--cores", "2",
               "--workflow-profile", "none", "--quiet", "all"]
    environment = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"snakemake in {workdir} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="fa116ce", help="the revision with one attack job per probe shard")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=100, help="IG's budget per probe shard")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10_subset.npz")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        raise SystemExit(f"--data: {args.data} not found (the CIFAR-10 subset; see configs/cifar10_verdict.yaml)")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        before_source = root / "before-src"
        before_source.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before_source)], input=archive.stdout, check=True)
        sides = {f"job per shard ({args.before})": before_source, "job per round (this tree)": REPO}
        workdirs = {}
        for side, source in sides.items():
            workdir = root / side.split(" (")[0].replace(" ", "-")
            workdir.mkdir()
            config = bench_config(workdir / "results", args.data, args.iterations)
            (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            print(f"{side}: full run (training, warm-up) ...", flush=True)
            snakemake(source, workdir)
            workdirs[side] = workdir
        best = {side: float("inf") for side in sides}
        for repeat in range(args.repeats):
            for side, source in sides.items():
                results = workdirs[side] / "results"
                shutil.rmtree(results / "attack")
                wall = snakemake(source, workdirs[side], *map(str, probe_metrics(results)))
                best[side] = min(best[side], wall)
                print(f"round {repeat + 1} {side}: {wall:.1f} s", flush=True)
        before_wall, now_wall = best.values()
        same = all(a.read_bytes() == b.read_bytes() for a, b in
                   zip(*(probe_metrics(workdirs[side] / "results") for side in sides)))
    removed = 2 * len(DEFENSES) * (len(BATCH_SIZES) - 1)  # attack and evaluate jobs
    print(f"\n{len(DEFENSES)} defenses x IG x {len(BATCH_SIZES)} probe batch sizes at {args.iterations} iterations, "
          f"2 cores, best of {args.repeats} alternated rounds:")
    print("| probe jobs | wall s |\n| --- | ---: |")
    for side, wall in best.items():
        print(f"| {side} | {wall:.1f} |")
    print(f"\nbefore/now {before_wall / now_wall:.2f}x; {(before_wall - now_wall) / removed:.2f} s of wall time saved per job "
          f"no longer started ({removed}); per-image metrics byte-identical: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
