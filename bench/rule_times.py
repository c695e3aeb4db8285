"""Per-rule time table of a finished run, from Snakemake's benchmark files.

Reads every `*.tsv` under the run's benchmarks directory (results/benchmarks/ and its
subdirectories; the rule is the first directory below it, or the file's name for rules
benchmarked at the top level) and prints, per rule: jobs, total and mean wall seconds,
CPU seconds (user + system, Snakemake's `cpu_time`) and the largest max RSS. With `--split`,
attack and attack_probes jobs are broken down by attack (`attack_probes: ig`) and training jobs by defense setting
(`train: soteria`), to see which of them a run's time goes to.

Usage: .venv/bin/python bench/rule_times.py [results/benchmarks] [--markdown] [--split]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


# where the breakdown of `--split` sits in a job's benchmark path below its rule's directory:
# attack/<defense>/<attack>/seed<s>/..., attack_probes/<defense>/<attack>/seed<s>/..., train/<defense>/seed<s>.tsv
SPLIT_LEVEL = {"attack": 2, "attack_probes": 2, "train": 1}


def rule_of(path: Path, root: Path, split: bool = False) -> str:
    parts = path.relative_to(root).parts
    if len(parts) == 1:
        return path.stem
    level = SPLIT_LEVEL.get(parts[0]) if split else None
    return f"{parts[0]}: {parts[level]}" if level is not None and len(parts) > level + 1 else parts[0]


def load_benchmarks(root: Path, split: bool = False) -> pd.DataFrame:
    """One row per benchmarked job (the last measurement when a job was repeated)."""
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise FileNotFoundError(f"{root}: no benchmark .tsv files (is it a finished run's benchmarks directory?)")
    rows = []
    for path in files:
        table = pd.read_csv(path, sep="\t")
        if table.empty or "s" not in table:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
        last = table.iloc[-1]
        rows.append({"rule": rule_of(path, root, split), "wall_s": float(last["s"]),
                     "cpu_s": float(last["cpu_time"]) if "cpu_time" in table else float("nan"),
                     "max_rss_mb": pd.to_numeric(last.get("max_rss"), errors="coerce")})
    return pd.DataFrame(rows)


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    table = jobs.groupby("rule").agg(jobs=("wall_s", "size"), total_wall_s=("wall_s", "sum"),
                                     mean_wall_s=("wall_s", "mean"), cpu_s=("cpu_s", "sum"),
                                     max_rss_mb=("max_rss_mb", "max"))
    table = table.sort_values("total_wall_s", ascending=False)
    table.loc["all"] = [table["jobs"].sum(), table["total_wall_s"].sum(), jobs["wall_s"].mean(),
                        table["cpu_s"].sum(), table["max_rss_mb"].max()]
    table["jobs"] = table["jobs"].astype(int)
    return table.round({"total_wall_s": 1, "mean_wall_s": 2, "cpu_s": 1, "max_rss_mb": 0})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmarks", nargs="?", type=Path, default=Path("results/benchmarks"))
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (for bench/README.md)")
    parser.add_argument("--split", action="store_true",
                        help="attack jobs by attack, training jobs by defense setting")
    args = parser.parse_args(argv)
    table = rule_table(load_benchmarks(args.benchmarks, split=args.split))
    print(table.to_markdown() if args.markdown else table.to_string())


if __name__ == "__main__":
    sys.exit(main())
