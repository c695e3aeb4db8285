"""Benchmark: CPU time of Snakemake's own process while jobs run, with Snakemake's own
re-evaluation timers (a new one after every pass of its scheduling loop; default rate limit
100/1s) against at most one pending daemon timer (gradienthide.snakemake_scheduling, which the
workflow's Snakefile applies).

A synthetic workflow isolates the scheduler: `--jobs` jobs that each wait `--seconds` (a shell
`sleep`, next to no CPU) and read three shared input files, all ready at once, run on 2 cores,
as the attack and evaluation jobs of a run are. Each side is a fresh `snakemake` process; the
sides alternate, after a warm-up round of each. CPU time is user + sys of the finished children
(Snakemake and its jobs' shells; the sleeps cost next to none), wall time the command's.

Usage: .venv/bin/python bench/scheduler_polling.py [--jobs 120] [--seconds 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


SNAKEFILE = """
if config["one_timer"]:
    from gradienthide.snakemake_scheduling import keep_one_reevaluation_timer
    keep_one_reevaluation_timer()
JOBS = int(config["jobs"])
rule all:
    input: expand("out/{i}.txt", i=range(JOBS))
rule shared:
    output: "shared/{name}.txt"
    shell: "echo {wildcards.name} > {output}"
rule wait:
    input: "shared/a.txt", "shared/b.txt", "shared/c.txt"
    output: "out/{i}.txt"
    params: seconds=config["seconds"]
    shell: "sleep {params.seconds} && touch {output}"
"""


def run_once(workdir: Path, *, one_timer: bool, jobs: int, seconds: float) -> tuple[float, float]:
    """(wall s, CPU s of the children) of one complete run from an empty directory."""
    subprocess.run(["rm", "-rf", str(workdir / "out"), str(workdir / "shared"), str(workdir / ".snakemake")], check=True)
    command = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "--workflow-profile", "none",
               "--config", f"jobs={jobs}", f"seconds={seconds}", f"one_timer={one_timer}", "--quiet", "all"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    sides = {"Snakemake's timers": False, "one pending daemon timer": True}
    best = {side: [float("inf"), float("inf")] for side in sides}
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        (workdir / "Snakefile").write_text(SNAKEFILE)
        for repeat in range(args.repeats + 1):  # round 0 warms up
            for side, one_timer in sides.items():
                wall, cpu = run_once(workdir, one_timer=one_timer, jobs=args.jobs, seconds=args.seconds)
                print(f"round {repeat} {side}: wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
                if repeat:
                    best[side] = [min(best[side][0], wall), min(best[side][1], cpu)]
    print(f"\n{args.jobs} jobs of {args.seconds:g} s on 2 cores, best of {args.repeats} alternated rounds:")
    print("| re-evaluation | wall s | CPU s of Snakemake and its shells |\n| --- | ---: | ---: |")
    for side, (wall, cpu) in best.items():
        print(f"| {side} | {wall:.1f} | {cpu:.1f} |")
    (default_wall, default_cpu), (one_wall, one_cpu) = best.values()
    print(f"\nCPU: Snakemake's/one timer {default_cpu / one_cpu:.2f}x; wall: Snakemake's/one timer {default_wall / one_wall:.2f}x")


if __name__ == "__main__":
    main()
