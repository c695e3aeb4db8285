"""Print a run's results as the Markdown tables the README quotes.

Usage: .venv/bin/python scripts/results_table.py [results/report] [--settings gradienthide]
Reads summary.csv (and privacy_utility.csv); prints one row per defense setting with utility
(mean ± sd of test accuracy over the last 10% of rounds), PSNR/SSIM under each attack, and,
for attacks that estimate GradientHide's public draws, their draw recall.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from gradienthide import report


FAMILY_ORDER = ("none", "gradienthide", "dp", "pruning", "soteria", "precode", "mixup")


def defense_table(summary: pd.DataFrame, attacks: list[str]) -> str:
    """One column per attack, or per attack and round when several rounds were attacked."""
    rounds = sorted(summary["round"].unique())
    columns = [(a, r) for a in attacks for r in rounds]
    header = ["defense", "accuracy (last 10% of rounds)"] + [
        f"PSNR / SSIM under {a}" + (f" (round {r})" if len(rounds) > 1 else "") for a, r in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    families = list(dict.fromkeys([*FAMILY_ORDER, *summary["defense_name"]]))
    order = [run for family in families for run in report.run_order(summary[summary["defense_name"] == family])]
    for run in order:
        rows = summary[summary["defense"] == run]
        first = rows.iloc[0]
        cells = [run, f"{first[report.UTILITY_MEAN]:.3f} ± {first[report.UTILITY_STD]:.3f}"]
        for attack, round_number in columns:
            hit = rows[(rows["attack"] == attack) & (rows["round"] == round_number)]
            if hit.empty:
                cells.append("")
                continue
            row = hit.iloc[0]
            text = f"{row['psnr_mean']:.1f} / {row['ssim_mean']:.2f}"
            if "draw_recall" in row and pd.notna(row["draw_recall"]):
                text += f" (draw recall {row['draw_recall']:.2f})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", nargs="?", default="results/report")
    parser.add_argument("--attacks", nargs="*", default=None, help="attack columns, in order (default: all)")
    args = parser.parse_args()
    summary = pd.read_csv(Path(args.report_dir) / "summary.csv")
    attacks = args.attacks or list(dict.fromkeys(summary["attack"]))
    labeler = summary["public_labeler"].dropna().iloc[0] if "public_labeler" in summary else "n/a"
    accuracy = summary["public_labeler_accuracy"].dropna() if "public_labeler_accuracy" in summary else pd.Series()
    note = f" (accuracy {100 * accuracy.iloc[0]:.1f}%)" if len(accuracy) else ""
    print(f"public labels: {labeler}{note}; images per cell: {int(summary['images'].max())}\n")
    print(defense_table(summary, attacks))


if __name__ == "__main__":
    main()
