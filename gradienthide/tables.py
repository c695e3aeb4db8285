"""Print a run's results as the Markdown tables docs/results.md quotes, every number with its interval.

Usage: gradienthide table [results/report] [--attacks ig dlg ...] [--tables main paired utility budget]
                          [--rounds 1 300] [--uploads batch1 batch4]

Reads summary.csv; a column per attack, round and attacked uploads (the real ones, or a privacy
probe's batch size), the last two named when a run has several. `main`: one row per defense setting with utility (mean over replicates, 95 %
t-interval, or the utility window's spread with one replicate) and mean PSNR [95 % bootstrap
interval] / SSIM under each attack, with the frontier verdict and, for attacks that estimate
GradientHide's public draws, their draw recall. `paired`: each setting's mean PSNR difference to
`none` on the same images [interval] and the share of images where it is lower. `utility`: accuracy,
its difference to `none` paired by replicate, and the last window's gain over the one before
(whether training had reached a plateau). `budget`: the
cells whose PSNR still rose beyond its interval over the last doubling of the budget.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradienthide import report

FAMILY_ORDER = ("none", "gradienthide", "dp", "pruning", "soteria", "precode", "mixup")
VERDICT_MARK = {"frontier": "", "undecided": " (u)", "dominated": " (d)"}


def interval(row, prefix: str, digits: int = 1) -> str:
    return f"{row[f'{prefix}_mean']:.{digits}f} [{row[f'{prefix}_low']:.{digits}f}, {row[f'{prefix}_high']:.{digits}f}]"


def ordered_runs(summary: pd.DataFrame) -> list[str]:
    families = list(dict.fromkeys([*FAMILY_ORDER, *summary["defense_name"]]))
    return [run for family in families for run in report.run_order(summary[summary["defense_name"] == family])]


def columns_of(summary: pd.DataFrame, attacks: list[str]) -> list[tuple[str, int, str]]:
    """(attack, round, uploads) columns: attacks in the given order, then rounds, then the real
    uploads before the probes by increasing batch size."""
    rounds = sorted(summary["round"].unique())
    uploads = sorted(summary["uploads"].unique(), key=lambda u: (u != "deployed", report.natural_key(u)))
    return [(a, r, u) for a in attacks for r in rounds for u in uploads
            if ((summary["attack"] == a) & (summary["round"] == r) & (summary["uploads"] == u)).any()]


def _header(label: str, column: tuple[str, int, str], summary: pd.DataFrame) -> str:
    attack, round_number, uploads = column
    details = ([f"round {round_number}"] if summary["round"].nunique() > 1 else []) + (
        [uploads if uploads == "deployed" else f"batch of {uploads.removeprefix('batch')}"]
        if summary["uploads"].nunique() > 1 else [])
    return f"{label} {attack}" + (f" ({', '.join(details)})" if details else "")


def _cell(rows: pd.DataFrame, column: tuple[str, int, str]) -> pd.DataFrame:
    attack, round_number, uploads = column
    return rows[(rows["attack"] == attack) & (rows["round"] == round_number) & (rows["uploads"] == uploads)]


def main_table(summary: pd.DataFrame, attacks: list[str]) -> str:
    """Accuracy, and per attack mean PSNR [interval] / SSIM with the frontier verdict."""
    summary = report.with_uploads(summary)
    columns = columns_of(summary, attacks)
    header = ["defense", "accuracy"] + [_header("PSNR / SSIM under", column, summary) for column in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in ordered_runs(summary):
        rows = summary[summary["defense"] == run]
        cells = [run, interval(rows.iloc[0], "accuracy", 3)]
        for column in columns:
            hit = _cell(rows, column)
            if hit.empty:
                cells.append("")
                continue
            row = hit.iloc[0]
            text = f"{interval(row, 'psnr')} / {row['ssim_mean']:.2f}{VERDICT_MARK.get(row.get('frontier'), '')}"
            if "draw_recall" in row and pd.notna(row["draw_recall"]):
                text += f" (draw recall {row['draw_recall']:.2f})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(summary: pd.DataFrame, attacks: list[str]) -> str:
    """The accuracy difference to none paired by replicate [interval] (when the run has it), and per
    attack the mean PSNR difference to none on the same images [interval], share of images lower."""
    summary = report.with_uploads(summary)
    columns = columns_of(summary, attacks)
    with_accuracy = "accuracy_diff_mean" in summary
    header = (["defense"] + (["accuracy − none"] if with_accuracy else [])
              + [_header("PSNR − none under", column, summary) for column in columns])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in ordered_runs(summary):
        if run == report.NO_DEFENSE:
            continue
        rows = summary[summary["defense"] == run]
        cells = [run]
        if with_accuracy:
            cells.append("" if pd.isna(rows.iloc[0]["accuracy_diff_mean"]) else interval(rows.iloc[0], "accuracy_diff", 3))
        for column in columns:
            hit = _cell(rows, column)
            if hit.empty or pd.isna(hit.iloc[0].get("psnr_diff_mean")):
                cells.append("")
                continue
            row = hit.iloc[0]
            cells.append(f"{interval(row, 'psnr_diff')}, {100 * row['share_worse_for_attacker']:.0f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def utility_table(summary: pd.DataFrame) -> str:
    """Per defense setting: its accuracy, the difference to none paired by replicate, and whether
    training had flattened: the utility window's gain over the window before it [interval]."""
    header = ["defense", "accuracy", "accuracy − none", "gain over the window before (plateau if 0 is inside)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run in ordered_runs(summary):
        row = summary[summary["defense"] == run].iloc[0]
        cells = [run, interval(row, "accuracy", 3)]
        for prefix in ("accuracy_diff", "accuracy_window_gain"):
            known = f"{prefix}_mean" in row and pd.notna(row[f"{prefix}_mean"])
            cells.append(interval(row, prefix, 3) if known else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def budget_lines(summary: pd.DataFrame) -> str:
    if "budget_limited" not in summary:
        return "no budget checkpoints in this run"
    flagged = report.with_uploads(summary[summary["budget_limited"].astype(str).str.lower() == "true"])
    if flagged.empty:
        return "budget-limited cells: none"
    items = [f"{row.defense} / {row.attack} / round {row.round}"
             f"{'' if row.uploads == 'deployed' else ' / ' + row.uploads} (+{row.psnr_rise_last_doubling:.1f} dB from "
             f"{int(row.budget_iterations) // 2} to {int(row.budget_iterations)})" for row in flagged.itertuples()]
    return f"budget-limited cells ({len(items)} of {len(summary)}): " + "; ".join(items)


TABLES = ("main", "paired", "utility", "budget")


def render(*, report_dir: str | Path, attacks: list[str] | None = None, tables: list[str] = TABLES,
           rounds: list[int] | None = None, uploads: list[str] | None = None) -> str:
    """The header line and the chosen `tables` of the run whose report is in `report_dir`, its
    columns cut to the given attacked `rounds` and `uploads` (`deployed`, `batch4`, ...) if given."""
    summary = report.with_uploads(pd.read_csv(Path(report_dir) / "summary.csv"))
    for key, chosen in (("round", rounds), ("uploads", uploads)):
        if chosen:
            missing = sorted(set(map(str, chosen)) - set(summary[key].astype(str)))
            if missing:
                present = sorted(map(str, summary[key].unique()), key=report.natural_key)
                raise ValueError(f"--{key}s {' '.join(missing)}: not in {Path(report_dir) / 'summary.csv'} "
                                 f"(it has {', '.join(present)})")
            summary = summary[summary[key].astype(str).isin(set(map(str, chosen)))]
    scope = ([f"round {', '.join(map(str, rounds))}"] if rounds else []) + (
        [f"uploads {', '.join(uploads)}"] if uploads else [])
    attacks = attacks or list(dict.fromkeys(summary["attack"]))
    # a run without public data (no gradienthide setting) has no labeler
    labelers = summary["public_labeler"].dropna() if "public_labeler" in summary else pd.Series(dtype=object)
    labeler = labelers.iloc[0] if len(labelers) else "n/a"
    accuracy = summary["public_labeler_accuracy"].dropna() if "public_labeler_accuracy" in summary else pd.Series()
    note = f" (accuracy {100 * accuracy.iloc[0]:.1f}%)" if len(accuracy) else ""
    images = sorted({int(count) for count in summary["images"].dropna()})
    cells = f"{images[0]}" if len(images) == 1 else f"{images[0]} to {images[-1]}"  # e.g. probes of several batch sizes
    header = (f"public labels: {labeler}{note}; replicates: {int(summary['replicates'].max())}; images per cell: "
              f"{cells}; accuracy interval: {summary[report.UTILITY_INTERVAL].iloc[0]}; "
              "PSNR interval: 95% bootstrap over replicates and the images within them; (u) undecided, (d) dominated "
              "on the privacy-utility frontier" + (f"; {'; '.join(scope)}" if scope else "") + "\n")
    printers = {"main": lambda: main_table(summary, attacks), "paired": lambda: paired_table(summary, attacks),
                "utility": lambda: utility_table(summary), "budget": lambda: budget_lines(summary)}
    return header + "\n" + "\n\n".join(printers[name]() for name in tables)
