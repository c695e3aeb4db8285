"""Aggregating per-job outputs into the study's tables.

Utility is summarised robustly: test accuracy oscillates by tens of points between rounds
(large learning rate, small batches), so the last round's value is mostly noise. Every
table reports the mean and the standard deviation of test accuracy over the last rounds
instead (`UTILITY_MEAN`, `UTILITY_STD`; the window is `utility_window`).
"""

from __future__ import annotations

import math
import re

import pandas as pd

from gradienthide import artifacts

UTILITY_FRACTION = 0.10  # the last 10% of rounds ...
UTILITY_MIN_ROUNDS = 5  # ... but at least 5 rounds (all rounds when a run has fewer)
UTILITY_MEAN = "accuracy_last10pct_mean"
UTILITY_STD = "accuracy_last10pct_std"
UTILITY_ROUNDS = "accuracy_last10pct_rounds"


def concat_tables(paths, required_columns=()) -> pd.DataFrame:
    return pd.concat([artifacts.load_table(p, required_columns) for p in paths], ignore_index=True)


def utility_window(rounds: int) -> int:
    """How many final rounds the utility columns average: 10% of `rounds`, at least 5, at most all."""
    return min(rounds, max(UTILITY_MIN_ROUNDS, math.ceil(UTILITY_FRACTION * rounds)))


def utility(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per defense run: mean and sample standard deviation of test accuracy over its last
    `utility_window` rounds, and the number of rounds averaged.

    The std is NaN for a run with a single round.
    """
    rows = []
    for defense, curve in accuracy.groupby("defense", sort=False):
        curve = curve.sort_values("round")
        last = curve["test_accuracy"].tail(utility_window(len(curve)))
        rows.append({"defense": defense, UTILITY_MEAN: last.mean(), UTILITY_STD: last.std(ddof=1),
                     UTILITY_ROUNDS: len(last)})
    return pd.DataFrame(rows, columns=["defense", UTILITY_MEAN, UTILITY_STD, UTILITY_ROUNDS])


def summary(metrics: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Mean attack quality per (defense, attack, round), with the defense's robust utility.

    `semantic_match` is the fraction of reconstructions the semantic reference assigns to their
    original's class; `label_accuracy` is empty for attacks given the labels; `lpips_mean` is
    empty when LPIPS was not computed (its backbone was not on disk); `draw_precision` and
    `draw_recall` score the public draws an attack estimated (adaptive_infer), empty for others.
    """
    keys = ["defense", "defense_name", "attack", "round", "public_labeler", "semantic_reference"]
    draws = {column: (column, "mean") for column in ("draw_precision", "draw_recall") if column in metrics}
    quality = (metrics.groupby(keys, as_index=False, dropna=False)
               .agg(psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"), ssim_mean=("ssim", "mean"),
                    lpips_mean=("lpips", "mean"), semantic_match=("semantic_match", "mean"),
                    label_accuracy=("label_correct", "mean"), **draws, images=("psnr", "size")))
    return quality.merge(utility(accuracy), on="defense", how="left")


def mark_frontier(table: pd.DataFrame, privacy: str = "psnr_mean", utility_column: str = UTILITY_MEAN) -> pd.Series:
    """Per attack, the rows no other row beats on both axes (lower `privacy`, higher utility)."""
    on_frontier = pd.Series(False, index=table.index)
    for _, group in table.groupby("attack"):
        best_utility = -math.inf
        for index, row in group.sort_values([privacy, utility_column], ascending=[True, False]).iterrows():
            if row[utility_column] > best_utility:
                on_frontier[index] = True
                best_utility = row[utility_column]
    return on_frontier


def privacy_utility(metrics: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per (defense setting, attack): mean attack quality against robust utility.

    `setting` is the part of the run id after the defense's name (the swept values), and
    `on_frontier` marks the settings no other setting beats on both privacy (PSNR) and
    utility (`UTILITY_MEAN`). Epsilon and delta, for `dp`, are those after the last round.
    """
    quality = (metrics.groupby(["defense", "defense_name", "attack"], as_index=False)
               .agg(psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"), ssim_mean=("ssim", "mean"),
                    images=("psnr", "size")))
    last = accuracy.sort_values("round").groupby("defense", as_index=False).last()
    keep = ["defense", "defense_params"] + [c for c in ("epsilon", "delta") if c in last.columns]
    table = quality.merge(utility(accuracy), on="defense", how="left").merge(last[keep], on="defense", how="left")
    table["setting"] = [run[len(name):].lstrip("-") or "default" for run, name in zip(table["defense"], table["defense_name"])]
    table["on_frontier"] = mark_frontier(table)
    return table.sort_values(["attack", "defense_name", "psnr_mean"]).reset_index(drop=True)


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers by value: sigma0.001 < sigma0.01 < sigma0.1, steps2 < steps10."""
    parts = re.split(r"(\d+(?:\.\d+)?(?:e-?\d+)?)", text)
    return tuple((0, float(part), "") if index % 2 else (1, 0.0, part) for index, part in enumerate(parts))


def run_order(runs: pd.DataFrame, preferred=()) -> list[str]:
    """Run ids grouped by defense family, settings of a family by increasing swept value, so a
    family's shades run light to dark with strength. Families come in the order of their first
    run in `preferred` (e.g. the config's), then in order of first appearance in `runs`.

    `runs` has columns `defense` (the run id) and `defense_name` (its family).
    """
    pairs = runs[["defense", "defense_name"]].drop_duplicates("defense")
    family_of = dict(zip(pairs["defense"], pairs["defense_name"]))
    families = list(dict.fromkeys([family_of[run] for run in preferred if run in family_of]
                                  + list(pairs["defense_name"])))
    return [run for family in families
            for run in sorted(pairs.loc[pairs["defense_name"] == family, "defense"], key=natural_key)]
