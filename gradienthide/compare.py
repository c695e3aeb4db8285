"""Compare two runs cell by cell, within their intervals.

    python -m gradienthide.compare RUN_A RUN_B [--alpha 0.05] [--all]

RUN_A and RUN_B are output directories (holding report/summary.csv, e.g. `results`) or archives
made by `snakemake archive`. The quantities compared are each cell's mean PSNR and SSIM (a cell
is a defense setting, an attack and an attacked round) and each defense setting's accuracy. For
each one both values are printed with their 95 % intervals, and whether they agree.

Two values disagree when their difference is significant after Holm's correction for the number
of quantities compared (family-wise level `--alpha`, 0.05 by default): each interval is read as
mean ± 1.96 standard errors, the difference's standard error is the two combined, and a normal
test gives its p-value. Without the correction, among 60 quantities of two runs that differ only
by chance about three would disagree at 5 % each. With a single replicate, accuracy's interval is
the utility window's spread (summary.csv's `accuracy_interval`), not a confidence interval, so
its verdict is only indicative.

Exit status: 0 when every shared quantity agrees, 1 when any disagrees, 2 when the runs cannot be
read or share no cell. Cells present in one run only are listed and do not count either way.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gradienthide import report, stats

SUMMARY = "report/summary.csv"
CELL = ["defense", "attack", "round", "uploads"]  # summaries written before privacy probes read as `deployed`
QUALITY = (("psnr", "PSNR (dB)"), ("ssim", "SSIM"))


class RunError(ValueError):
    """A path that holds no run's summary."""


def read_summary(path: str | Path) -> pd.DataFrame:
    """summary.csv of a run: an output directory (or its report/ folder) or a .tar.gz archive."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / SUMMARY, path / "summary.csv", path / "results" / SUMMARY):
            if candidate.is_file():
                return pd.read_csv(candidate)
        raise RunError(f"{path}: no {SUMMARY} (give a run's output directory, e.g. results, or its archive)")
    if path.is_file() and tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            names = sorted((name for name in archive.getnames() if name.endswith("/" + SUMMARY)),
                           key=lambda name: name.count("/"))  # the archived run's own, not a nested run's
            if not names:
                raise RunError(f"{path}: the archive holds no {SUMMARY}")
            return pd.read_csv(io.BytesIO(archive.extractfile(names[0]).read()))
    raise RunError(f"{path}: neither a run's output directory nor an archive made by `snakemake archive`")


@dataclass
class Comparison:
    quantity: str
    cell: str
    a: tuple[float, float, float]  # mean, low, high
    b: tuple[float, float, float]
    p_value: float
    alpha: float
    adjusted: float = float("nan")

    @property
    def agrees(self) -> bool:
        return not self.adjusted < self.alpha  # NaN (no interval to judge by) counts as agreeing


ALPHA = 0.05  # family-wise


def _interval(row, prefix: str) -> tuple[float, float, float]:
    return float(row[f"{prefix}_mean"]), float(row[f"{prefix}_low"]), float(row[f"{prefix}_high"])


def _utility(row) -> tuple[float, float, float]:
    return float(row[report.UTILITY_MEAN]), float(row[report.UTILITY_LOW]), float(row[report.UTILITY_HIGH])


def compare(summary_a: pd.DataFrame, summary_b: pd.DataFrame, *, alpha: float = ALPHA):
    """(the comparisons, cells only in A, cells only in B), each comparison Holm-adjusted."""
    # cells are keyed by their uploads when either run has them (one written before probes: all deployed)
    cell = CELL if "uploads" in summary_a or "uploads" in summary_b else CELL[:-1]
    summary_a, summary_b = report.with_uploads(summary_a), report.with_uploads(summary_b)
    keyed_a, keyed_b = summary_a.set_index(cell), summary_b.set_index(cell)
    shared = [key for key in keyed_a.index if key in keyed_b.index]
    only_a = [key for key in keyed_a.index if key not in keyed_b.index]
    only_b = [key for key in keyed_b.index if key not in keyed_a.index]
    comparisons = []
    for key in shared:
        row_a, row_b = keyed_a.loc[key], keyed_b.loc[key]
        name = cell_name(key)
        for prefix, label in QUALITY:
            a, b = _interval(row_a, prefix), _interval(row_b, prefix)
            comparisons.append(Comparison(label, name, a, b, stats.difference_p_value(*a, *b), alpha))
    settings = dict.fromkeys(key[0] for key in shared)
    for setting in settings:
        row_a = summary_a[summary_a["defense"] == setting].iloc[0]
        row_b = summary_b[summary_b["defense"] == setting].iloc[0]
        a, b = _utility(row_a), _utility(row_b)
        comparisons.append(Comparison("accuracy", setting, a, b, stats.difference_p_value(*a, *b), alpha))
    judged = [c for c in comparisons if not np.isnan(c.p_value)]
    for comparison, adjusted in zip(judged, stats.holm_adjusted([c.p_value for c in judged])):
        comparison.adjusted = float(adjusted)
    return comparisons, only_a, only_b


def cell_name(key) -> str:
    """A cell as reports name it: `defense / attack / round r`, then the uploads when a probe's."""
    defense, attack, round_number, *uploads = key
    return f"{defense} / {attack} / round {round_number}" + "".join(f" / {u}" for u in uploads if u != stats.DEPLOYED)


def _shown(values: tuple[float, float, float], digits: int) -> str:
    mean, low, high = values
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_report(comparisons: list[Comparison], only_a, only_b, *, name_a: str, name_b: str,
                  show_all: bool = True) -> str:
    digits = {"PSNR (dB)": 2, "SSIM": 3, "accuracy": 3}
    alpha = comparisons[0].alpha if comparisons else ALPHA
    lines = [f"A: {name_a}", f"B: {name_b}",
             f"agreement: difference not significant at {alpha:g} after Holm's correction over "
             f"{sum(not np.isnan(c.p_value) for c in comparisons)} quantities; intervals are 95 %", ""]
    rows = [("quantity", "cell", "A", "B", "p (Holm)", "verdict")]
    for c in comparisons:
        if show_all or not c.agrees:
            rows.append((c.quantity, c.cell, _shown(c.a, digits[c.quantity]), _shown(c.b, digits[c.quantity]),
                         "n/a" if np.isnan(c.adjusted) else f"{c.adjusted:.3f}", "agree" if c.agrees else "DISAGREE"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    disagreeing = sum(not c.agrees for c in comparisons)
    lines.append("")
    lines.append(f"{len(comparisons) - disagreeing} of {len(comparisons)} quantities agree, {disagreeing} disagree")
    for label, cells in (("only in A", only_a), ("only in B", only_b)):
        if cells:
            lines.append(f"{label} (not compared): " + ", ".join(cell_name(cell) for cell in cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradienthide.compare",
                                     description="Compare two runs (output directories or archives) cell by cell "
                                                 "within their intervals; exit 1 when any cell disagrees.")
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="family-wise significance level (default 0.05)")
    parser.add_argument("--disagreements-only", action="store_true", help="list only the quantities that disagree")
    args = parser.parse_args(argv)
    try:
        summary_a, summary_b = read_summary(args.run_a), read_summary(args.run_b)
    except (RunError, OSError, tarfile.TarError) as error:
        print(f"compare: {error}", file=sys.stderr)
        return 2
    comparisons, only_a, only_b = compare(summary_a, summary_b, alpha=args.alpha)
    if not comparisons:
        print(f"compare: {args.run_a} and {args.run_b} share no cell (defense setting, attack, round, uploads)", file=sys.stderr)
        return 2
    print(format_report(comparisons, only_a, only_b, name_a=args.run_a, name_b=args.run_b,
                        show_all=not args.disagreements_only))
    return 0 if all(c.agrees for c in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())
