"""Aggregating per-job outputs into the study's tables, every compared number with its interval.

Utility: test accuracy oscillates by tens of points between rounds (large learning rate, small
batches), so the last round's value is mostly noise. A replicate's utility is its mean test
accuracy over the last rounds (`utility_window`: the last 10 %, at least 5); a setting's is the
mean over its replicates (UTILITY_MEAN) with a 95 % t-interval over them (UTILITY_LOW,
UTILITY_HIGH). With a single replicate there is no interval over replicates: the columns then
hold that replicate's mean ± one standard deviation over its utility window, and
`accuracy_interval` says which of the two a row holds. A setting's accuracy difference to
`none` is paired by replicate (`paired_utility`), which resolves smaller differences than the two
settings' own intervals.

Attack quality: per (defense setting, attack, round), the mean over every attacked image of
every replicate, with a 95 % two-stage bootstrap interval (replicates, then images within
them; gradienthide.stats), paired differences to `none` on the same images, whether the budget still
limited the attack, and the setting's frontier verdict among the settings attacked alike.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from gradienthide import artifacts, stats

UTILITY_FRACTION = 0.10  # the last 10% of rounds ...
UTILITY_MIN_ROUNDS = 5  # ... but at least 5 rounds (all rounds when a run has fewer)
UTILITY_MEAN = "accuracy_mean"
UTILITY_LOW = "accuracy_low"
UTILITY_HIGH = "accuracy_high"
UTILITY_INTERVAL = "accuracy_interval"
UTILITY_REPLICATES = "accuracy_replicates"
UTILITY_ROUNDS = "accuracy_window_rounds"
NO_DEFENSE = "none"
REFERENCE_ATTACK = "ig"  # plain Inverting Gradients: `none`'s reference for attacks run against few defenses
# one cell of the study's tables; `uploads`: the real uploads (deployed) or a probe batch size's (batch<b>)
CELL = ["defense", "defense_name", "attack", "round", "uploads"]
QUALITY_METRICS = ("psnr", "ssim", "lpips")
PAIRED_METRICS = ("psnr", "ssim")


def concat_tables(paths, required_columns=()) -> pd.DataFrame:
    return pd.concat([artifacts.load_table(p, required_columns) for p in paths], ignore_index=True)


def utility_window(rounds: int) -> int:
    """How many final rounds the utility columns average: 10% of `rounds`, at least 5, at most all."""
    return min(rounds, max(UTILITY_MIN_ROUNDS, math.ceil(UTILITY_FRACTION * rounds)))


def _with_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Tables written before replicates existed are one replicate: seed 0."""
    return table if "seed" in table.columns else table.assign(seed=0)


def with_uploads(table: pd.DataFrame) -> pd.DataFrame:
    """Tables written before privacy probes existed hold the real uploads only: `deployed`."""
    return table if "uploads" in table.columns else table.assign(uploads=stats.DEPLOYED)


def _attack_table(table: pd.DataFrame) -> pd.DataFrame:
    """A per-image (or per-cell) attack table with the columns older runs lack filled in."""
    return with_uploads(_with_seed(table))


def replicate_utility(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per defense run and replicate: mean and sample standard deviation of test accuracy over its
    last `utility_window` rounds, and the number of rounds averaged (std NaN for one round)."""
    rows = []
    for (defense, seed), curve in _with_seed(accuracy).groupby(["defense", "seed"], sort=False):
        last = curve.sort_values("round")["test_accuracy"].tail(utility_window(len(curve)))
        rows.append({"defense": defense, "seed": seed, "window_mean": last.mean(), "window_std": last.std(ddof=1),
                     "window_rounds": len(last)})
    return pd.DataFrame(rows, columns=["defense", "seed", "window_mean", "window_std", "window_rounds"])


def utility(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per defense run: the mean over replicates of their utility, with a 95 % t-interval over
    replicates, or, with one replicate, its mean ± one sd over the utility window (either cut to
    [0, 1])."""
    rows = []
    for defense, replicates in replicate_utility(accuracy).groupby("defense", sort=False):
        mean, rounds, count = replicates["window_mean"].mean(), int(replicates["window_rounds"].max()), len(replicates)
        if count > 1:
            low, high = stats.t_interval(replicates["window_mean"])
            how = f"95% t-interval over {count} replicates"
        else:
            spread = replicates["window_std"].iloc[0]
            low, high = mean - spread, mean + spread
            how = f"1 replicate: mean ± 1 sd over its last {rounds} rounds (no interval over replicates)"
        low, high = max(low, 0.0), min(high, 1.0)  # an accuracy lies in [0, 1]
        rows.append({"defense": defense, UTILITY_MEAN: mean, UTILITY_LOW: low, UTILITY_HIGH: high, UTILITY_INTERVAL: how,
                     UTILITY_REPLICATES: count, UTILITY_ROUNDS: rounds})
    return pd.DataFrame(rows, columns=["defense", UTILITY_MEAN, UTILITY_LOW, UTILITY_HIGH, UTILITY_INTERVAL,
                                       UTILITY_REPLICATES, UTILITY_ROUNDS])


def paired_utility(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per defense run: its utility minus `none`'s, paired by replicate (the same seed gives both
    runs the same initial model, clients and batches), averaged over the replicates with a 95 %
    t-interval over them (`accuracy_diff_mean`, `_low`, `_high`). Pairing removes what replicates
    share, such as a seed whose clients make training slow for every defense, so it resolves
    differences that the two settings' own intervals cannot. NaN with fewer than two shared
    replicates, and for `none` itself."""
    columns = ["defense", "accuracy_diff_mean", "accuracy_diff_low", "accuracy_diff_high"]
    per_replicate = replicate_utility(accuracy).pivot(index="seed", columns="defense", values="window_mean")
    if NO_DEFENSE not in per_replicate:
        return pd.DataFrame(columns=columns)
    rows = []
    for defense in per_replicate.columns:
        if defense == NO_DEFENSE:
            continue
        differences = (per_replicate[defense] - per_replicate[NO_DEFENSE]).dropna()  # replicates both ran
        low, high = stats.t_interval(differences)
        rows.append({"defense": defense, "accuracy_diff_mean": differences.mean() if len(differences) else np.nan,
                     "accuracy_diff_low": low, "accuracy_diff_high": high})
    return pd.DataFrame(rows, columns=columns)


def plateau(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Per defense run: whether training had flattened. Each replicate's utility window minus the
    mean over the window of as many rounds just before it, averaged over replicates with a 95 %
    t-interval over them (`accuracy_window_gain_mean`, `_low`, `_high`): an interval around 0
    says the last rounds no longer raised accuracy beyond the noise. NaN when a run has fewer
    than two windows of rounds, and the interval with one replicate."""
    columns = ["defense", "accuracy_window_gain_mean", "accuracy_window_gain_low", "accuracy_window_gain_high"]
    rows = []
    for defense, runs in _with_seed(accuracy).groupby("defense", sort=False):
        gains = []
        for _, curve in runs.groupby("seed"):
            values = curve.sort_values("round")["test_accuracy"].to_numpy()
            window = utility_window(len(values))
            if len(values) >= 2 * window:
                gains.append(values[-window:].mean() - values[-2 * window:-window].mean())
        low, high = stats.t_interval(pd.Series(gains, dtype=float))
        rows.append({"defense": defense, "accuracy_window_gain_mean": np.mean(gains) if gains else np.nan,
                     "accuracy_window_gain_low": low, "accuracy_window_gain_high": high})
    return pd.DataFrame(rows, columns=columns)


def _quality(rows: pd.DataFrame) -> dict:
    """Means of a cell's per-image metrics, with bootstrap intervals over replicates and the images within them."""
    result = {"replicates": rows["seed"].nunique(), "images": len(rows),
              # images per attacked upload: a probe's batch size; the real uploads' mean (e.g. whole shards)
              "private_batch": rows["private_batch"].mean() if "private_batch" in rows else np.nan}
    for metric in QUALITY_METRICS:
        values = rows[metric] if metric in rows else pd.Series(np.nan, index=rows.index)
        low, high = stats.bootstrap_interval(values, rows["seed"])
        result |= {f"{metric}_mean": values.mean(), f"{metric}_low": low, f"{metric}_high": high}
    result["psnr_std"] = rows["psnr"].std()
    result["semantic_match"] = rows["semantic_match"].mean() if "semantic_match" in rows else np.nan
    result["label_accuracy"] = rows["label_correct"].mean() if "label_correct" in rows else np.nan
    for column in ("draw_precision", "draw_recall"):
        if column in rows:
            result[column] = rows[column].mean()
    return result


def reference_cell(metrics: pd.DataFrame, attack: str) -> str | None:
    """The attack whose `none` cell a defense is paired with under `attack`: the same attack when it
    ran against `none`, else plain IG (what an adaptive attacker is against an undefended upload)."""
    attacked_none = set(metrics.loc[metrics["defense"] == NO_DEFENSE, "attack"])
    for candidate in (attack, REFERENCE_ATTACK):
        if candidate in attacked_none:
            return candidate
    return None


def paired_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every image of every cell but `none`'s, paired with `none`'s reconstruction of the same
    private image (reference_cell's attack, same replicate, round, client position and image):
    the metrics, the reference's and their difference. Raises stats.PairingError when a cell's
    images are not the reference's."""
    metrics = _attack_table(metrics)
    tables = []
    for (defense, defense_name, attack, round_number, uploads), rows in metrics.groupby(CELL, sort=False):
        reference_attack = reference_cell(metrics, attack)
        if defense == NO_DEFENSE or reference_attack is None:
            continue
        reference = metrics[(metrics["defense"] == NO_DEFENSE) & (metrics["attack"] == reference_attack)
                            & (metrics["round"] == round_number) & (metrics["uploads"] == uploads)]
        paired = stats.paired_differences(rows, reference, metrics=PAIRED_METRICS,
                                          what=f"{defense} under {attack}, round {round_number}"
                                               + ("" if uploads == stats.DEPLOYED else f", {uploads}"))
        tables.append(paired.assign(defense=defense, defense_name=defense_name, attack=attack,
                                    reference=f"{NO_DEFENSE} under {reference_attack}"))
    columns = CELL + ["reference"] + [key for key in stats.PAIR_KEYS if key not in CELL] + ["client", "image_digest"] + [
        f"{m}{suffix}" for m in PAIRED_METRICS for suffix in ("", "_reference", "_diff")]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True)[columns]


def _paired_summary(rows: pd.DataFrame) -> dict:
    result = {"paired_reference": rows["reference"].iloc[0]}
    for metric in PAIRED_METRICS:
        low, high = stats.bootstrap_interval(rows[f"{metric}_diff"], rows["seed"])
        result |= {f"{metric}_diff_mean": rows[f"{metric}_diff"].mean(), f"{metric}_diff_low": low,
                   f"{metric}_diff_high": high}
    # the defense leaves the attacker worse off on an image: a lower PSNR than without defense
    result["share_worse_for_attacker"] = float((rows["psnr_diff"] < 0).mean())
    return result


def budget_summary(budget: pd.DataFrame) -> pd.DataFrame:
    """Per cell and budget checkpoint: mean PSNR and SSIM with bootstrap intervals (the budget curves)."""
    rows = []
    keys = CELL + ["iterations", "budget_fraction"]
    for key, part in _attack_table(budget).groupby(keys, sort=False):
        entry = dict(zip(keys, key)) | {"images": len(part)}
        for metric in PAIRED_METRICS:
            low, high = stats.bootstrap_interval(part[metric], part["seed"])
            entry |= {f"{metric}_mean": part[metric].mean(), f"{metric}_low": low, f"{metric}_high": high}
        rows.append(entry)
    columns = keys + ["images"] + [f"{m}_{s}" for m in PAIRED_METRICS for s in ("mean", "low", "high")]
    return pd.DataFrame(rows, columns=columns).sort_values(keys, kind="stable").reset_index(drop=True)


def budget_limits(curves: pd.DataFrame, summary_table: pd.DataFrame) -> pd.DataFrame:
    """Per cell: its budget (the last checkpoint's iterations), mean PSNR at the checkpoint before
    it (half the budget, up to rounding: 12 of 25 L-BFGS steps), the rise over that last
    doubling, and `budget_limited`: the rise exceeds the half-width of the cell's PSNR interval,
    so more iterations would likely have recovered more."""
    rows = []
    curves, summary_table = with_uploads(curves), with_uploads(summary_table)
    for key, part in curves.groupby(CELL, sort=False):
        part = part.sort_values("iterations")
        half = part[part["budget_fraction"].between(0.4, 0.6)]
        rows.append(dict(zip(CELL, key)) | {"budget_iterations": int(part["iterations"].iloc[-1]),
                                             "psnr_half_budget": half["psnr_mean"].iloc[-1] if len(half) else np.nan})
    limits = pd.DataFrame(rows, columns=CELL + ["budget_iterations", "psnr_half_budget"])
    table = summary_table[CELL + ["psnr_mean", "psnr_low", "psnr_high"]].merge(limits, on=CELL, how="left")
    rise = table["psnr_mean"] - table["psnr_half_budget"]
    limited = rise > (table["psnr_high"] - table["psnr_low"]) / 2
    return table[CELL + ["budget_iterations", "psnr_half_budget"]].assign(
        psnr_rise_last_doubling=rise, budget_limited=limited.where(rise.notna(), other=pd.NA).astype("boolean"))


def mark_frontier(table: pd.DataFrame) -> pd.Series:
    """The frontier verdict of each row among the rows of the same attack, round and uploads."""
    verdicts = pd.Series("frontier", index=table.index, dtype=object)
    for _, group in with_uploads(table).groupby(["attack", "round", "uploads"], sort=False):
        verdicts[group.index] = stats.frontier_verdicts(group, privacy=("psnr_mean", "psnr_low", "psnr_high"),
                                                        utility=(UTILITY_MEAN, UTILITY_LOW, UTILITY_HIGH))
    return verdicts


def summary(metrics: pd.DataFrame, accuracy: pd.DataFrame, budget: pd.DataFrame | None = None,
            paired: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (defense setting, attack, round, uploads): attack quality with intervals, the paired
    differences to `none`, budget limits, the setting's utility with its interval and its paired
    difference to `none`'s (`accuracy_diff_*`), and its frontier verdict.

    `semantic_match` is the fraction of reconstructions the semantic reference assigns to their
    original's class; `label_accuracy` is empty for attacks given the labels; LPIPS is empty when
    it was not computed; `draw_precision` and `draw_recall` score the public draws an attack
    estimated (adaptive_infer), empty for others.
    """
    metrics = _attack_table(metrics)
    paired = paired_table(metrics) if paired is None else with_uploads(paired)
    rows = []
    for key, cell in metrics.groupby(CELL, sort=False):
        entry = dict(zip(CELL, key)) | {
            "public_labeler": cell["public_labeler"].iloc[0] if "public_labeler" in cell else "n/a",
            "semantic_reference": cell["semantic_reference"].iloc[0] if "semantic_reference" in cell else ""}
        entry |= _quality(cell)
        mine = paired[(paired["defense"] == key[0]) & (paired["attack"] == key[2]) & (paired["round"] == key[3])
                      & (paired["uploads"] == key[4])]
        entry |= _paired_summary(mine) if len(mine) else {"paired_reference": ""}
        rows.append(entry)
    table = pd.DataFrame(rows)
    for column in ("paired_reference", *(f"{m}_diff_{s}" for m in PAIRED_METRICS for s in ("mean", "low", "high")),
                   "share_worse_for_attacker"):
        if column not in table:
            table[column] = "" if column == "paired_reference" else np.nan
    table = table.merge(utility(accuracy), on="defense", how="left")
    table = table.merge(paired_utility(accuracy), on="defense", how="left")
    table = table.merge(plateau(accuracy), on="defense", how="left")
    if budget is not None and len(budget):
        table = table.merge(budget_limits(budget_summary(budget), table), on=CELL, how="left")
    table["frontier"] = mark_frontier(table)
    return table


def privacy_utility(summary_table: pd.DataFrame, accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per (defense setting, attack, round, uploads): mean PSNR and SSIM with their intervals against
    utility with its interval, the setting (the swept values in the run id after the defense's
    name) and parameters, epsilon and delta after the last round for `dp`, and the frontier
    verdict (`dominated`, `frontier` or `undecided`, stats.frontier_verdicts)."""
    last = _with_seed(accuracy).sort_values("round").groupby(["defense", "seed"], as_index=False).last()
    last = last.groupby("defense", as_index=False).first()
    keep = ["defense", "defense_params"] + [c for c in ("epsilon", "delta") if c in last.columns]
    summary_table = with_uploads(summary_table)
    if "private_batch" not in summary_table:
        summary_table = summary_table.assign(private_batch=np.nan)
    columns = CELL + ["private_batch", "psnr_mean", "psnr_low", "psnr_high", "ssim_mean", "ssim_low", "ssim_high", "images",
                      "replicates", UTILITY_MEAN, UTILITY_LOW, UTILITY_HIGH, UTILITY_INTERVAL, UTILITY_REPLICATES,
                      UTILITY_ROUNDS, "frontier"]
    table = summary_table[columns].merge(last[keep], on="defense", how="left")
    table.insert(2, "setting", [run[len(name):].lstrip("-") or "default"
                                for run, name in zip(table["defense"], table["defense_name"])])
    return table.sort_values(["attack", "round", "uploads", "defense_name", "psnr_mean"]).reset_index(drop=True)


def accuracy_bands(accuracy: pd.DataFrame, window: int) -> pd.DataFrame:
    """Per defense run and round: the replicates' test accuracy smoothed by a trailing mean over
    `window` rounds, its mean over replicates, and a 95 % t-interval over replicates (NaN with one)."""
    accuracy = _with_seed(accuracy).sort_values(["defense", "seed", "round"])
    smoothed = accuracy.assign(smoothed=accuracy.groupby(["defense", "seed"])["test_accuracy"].transform(
        lambda curve: curve.rolling(window, min_periods=1).mean()))
    rows = []
    for (defense, round_number), part in smoothed.groupby(["defense", "round"], sort=False):
        low, high = stats.t_interval(part["smoothed"])
        rows.append({"defense": defense, "round": round_number, "mean": part["smoothed"].mean(), "low": low,
                     "high": high, "replicates": len(part)})
    return pd.DataFrame(rows, columns=["defense", "round", "mean", "low", "high", "replicates"])


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
