"""Aggregating per-job outputs into the study's tables."""

from __future__ import annotations

import pandas as pd

from gradienthide import artifacts


def concat_tables(paths, required_columns=()) -> pd.DataFrame:
    return pd.concat([artifacts.load_table(p, required_columns) for p in paths], ignore_index=True)


def summary(metrics: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """Mean attack quality per (defense, attack, round), with the defense's final test accuracy.

    `semantic_match` is the fraction of reconstructions the semantic reference assigns to their
    original's class; `label_accuracy` is empty for attacks given the labels; `lpips_mean` is
    empty when LPIPS was not computed (its backbone was not on disk).
    """
    keys = ["defense", "defense_name", "attack", "round", "public_labeler", "semantic_reference"]
    quality = (metrics.groupby(keys, as_index=False, dropna=False)
               .agg(psnr_mean=("psnr", "mean"), psnr_std=("psnr", "std"), ssim_mean=("ssim", "mean"),
                    lpips_mean=("lpips", "mean"), semantic_match=("semantic_match", "mean"),
                    label_accuracy=("label_correct", "mean"), images=("psnr", "size")))
    last = accuracy.sort_values("round").groupby("defense", as_index=False).last()
    final = last[["defense", "test_accuracy"]].rename(columns={"test_accuracy": "final_test_accuracy"})
    return quality.merge(final, on="defense", how="left")


def privacy_utility(metrics: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per (defense setting, attack): mean attack quality against final test accuracy.

    `setting` is the part of the run id after the defense's name (the swept values), and
    `on_frontier` marks the settings no other setting beats on both privacy and accuracy.
    """
    quality = (metrics.groupby(["defense", "defense_name", "attack"], as_index=False)
               .agg(psnr_mean=("psnr", "mean"), ssim_mean=("ssim", "mean"), images=("psnr", "size")))
    last = accuracy.sort_values("round").groupby("defense", as_index=False).last()
    keep = ["defense", "test_accuracy", "defense_params"] + [c for c in ("epsilon", "delta") if c in last.columns]
    table = quality.merge(last[keep].rename(columns={"test_accuracy": "final_test_accuracy"}), on="defense", how="left")
    table["setting"] = [run[len(name):].lstrip("-") or "default" for run, name in zip(table["defense"], table["defense_name"])]
    table["on_frontier"] = False
    for _, group in table.groupby("attack"):
        best_accuracy = -1.0
        for index, row in group.sort_values(["psnr_mean", "final_test_accuracy"], ascending=[True, False]).iterrows():
            if row["final_test_accuracy"] > best_accuracy:
                table.loc[index, "on_frontier"] = True
                best_accuracy = row["final_test_accuracy"]
    return table.sort_values(["attack", "defense_name", "psnr_mean"]).reset_index(drop=True)
