"""Per-rule time table of a finished run, from Snakemake's benchmark files.

Reads every `*.tsv` under the run's benchmarks directory (results/benchmarks/ and its
subdirectories; the rule is the first directory below it, or the file's name for rules
benchmarked at the top level) and prints, per rule: jobs, total and mean wall seconds,
CPU seconds (user + system, Snakemake's `cpu_time`) and the largest max RSS.

Usage: .venv/bin/python bench/rule_times.py [results/benchmarks] [--markdown]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def rule_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def load_benchmarks(root: Path) -> pd.DataFrame:
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
        rows.append({"rule": rule_of(path, root), "wall_s": float(last["s"]),
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
    args = parser.parse_args(argv)
    table = rule_table(load_benchmarks(args.benchmarks))
    print(table.to_markdown() if args.markdown else table.to_string())


if __name__ == "__main__":
    sys.exit(main())
