"""Aggregating per-job outputs into the study's tables."""

from __future__ import annotations

import pandas as pd

from gradienthide import artifacts

METRIC_COLUMNS = ("defense", "defense_name", "attack", "round", "shard", "position", "client", "image", "label",
                  "matched_reconstruction", "psnr", "ssim", "public_labeler")


def concat_tables(paths, required_columns=()) -> pd.DataFrame:
    return pd.concat([artifacts.load_table(p, required_columns) for p in paths], ignore_index=True)


def summary(metrics: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Mean attack quality per (defense, attack, round), with the defense's final test accuracy."""
    quality = (metrics.groupby(["defense", "defense_name", "attack", "round", "public_labeler"], as_index=False)
               .agg(psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"), ssim_mean=("ssim", "mean"),
                    images=("psnr", "size")))
    last = accuracy.sort_values("round").groupby("defense", as_index=False).last()
    final = last[["defense", "test_accuracy"]].rename(columns={"test_accuracy": "final_test_accuracy"})
    return quality.merge(final, on="defense", how="left")
