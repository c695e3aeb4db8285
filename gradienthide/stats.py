"""Uncertainty for every number the study compares, in one place: summary.csv, the frontier and
every figure take their intervals from here, so that no table or figure computes its own spread.

- Attack quality per image (PSNR, SSIM, LPIPS): the mean over images, with a 95 % percentile
  interval from a two-stage bootstrap, replicates and then images within them,
  `bootstrap_interval`. Replicates differ far more than images within one do (a replicate's
  initial model and sampled clients decide much of an attack's success: the default run's
  undefended IG cell read 17.3, 15.2 and 22.3 dB in its three replicates), so resampling images
  alone would give intervals that other seeds' runs fall outside.
- Utility per replicate (its mean test accuracy over the last rounds): the mean over replicates
  with a 95 % t-interval, `t_interval`.
- Paired differences: per private image, a defense's metric minus the reference's on the same
  image (same replicate, round, uploads, client position and image; the images' digests must agree),
  `paired_differences`; their mean takes the same two-stage bootstrap.
- The frontier: `frontier_verdicts`.

Resampling is seeded (BOOTSTRAP_SEED), so the same table gives the same intervals, byte for byte.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# one private image of a replicate's attacked round, in one set of its uploads (deployed, or a probe batch size's)
PAIR_KEYS = ("seed", "round", "uploads", "position", "image")
DEPLOYED = "deployed"  # tables written before probes existed hold the real uploads only


class PairingError(ValueError):
    """Two cells cannot be compared image by image: their private images differ."""


def bootstrap_interval(values, strata, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of the mean of `values` from a two-stage bootstrap over images nested
    in replicates (`strata`): each resample draws as many replicates as there are, with
    replacement, and within each drawn replicate as many of its images as it has, with
    replacement. The interval so covers how much replicates differ (another seed's model,
    clients and batches), not only how much images differ within them; with one replicate it
    is the plain bootstrap over its images. (SciPy's bootstrap resamples one level only.)

    NaN values are left out ((nan, nan) when none remain).
    """
    values = np.asarray(values, dtype=float)
    strata = np.asarray(strata)
    present = ~np.isnan(values)
    values, strata = values[present], strata[present]
    if not len(values):
        return math.nan, math.nan
    groups = [values[strata == stratum] for stratum in np.unique(strata)]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(groups), size=(resamples, len(groups)))  # stage 1: replicates
    sums = np.empty(picks.shape)
    counts = np.empty(picks.shape)
    for index, group in enumerate(groups):  # stage 2: images within each drawn replicate
        drawn = picks == index
        sums[drawn] = group[rng.integers(0, len(group), size=(int(drawn.sum()), len(group)))].sum(axis=1)
        counts[drawn] = len(group)
    means = sums.sum(axis=1) / counts.sum(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def t_interval(values, *, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of `values` (one per replicate); (nan, nan) for fewer than two."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan, math.nan
    mean, error = float(values.mean()), float(scipy_stats.sem(values))
    if error == 0:
        return mean, mean
    low, high = scipy_stats.t.interval(confidence, len(values) - 1, loc=mean, scale=error)
    return float(low), float(high)


def paired_differences(cell: pd.DataFrame, reference: pd.DataFrame, *, metrics=("psnr", "ssim"),
                       what: str = "cell") -> pd.DataFrame:
    """One row per image of `cell`: each metric, the reference's on the same private image, and
    their difference (cell minus reference), keyed by PAIR_KEYS.

    Raises PairingError, naming the first offending image, when an image of `cell` has no
    counterpart in `reference`, or when the two rows' client or image digest differ (the private
    batches are not the same images, so a paired comparison would be meaningless).
    """
    keys = list(PAIR_KEYS)
    cell, reference = (table if "uploads" in table else table.assign(uploads=DEPLOYED) for table in (cell, reference))
    for name, table in (("cell", cell), ("reference", reference)):
        repeated = table.duplicated(keys)
        if repeated.any():
            raise PairingError(f"{what}: the {name} has two rows for image {table.loc[repeated, keys].iloc[0].to_dict()}")
    columns = keys + ["client", "image_digest", *metrics]
    merged = cell[columns].merge(reference[columns], on=keys, how="left", suffixes=("", "_reference"),
                                 indicator=True)
    unmatched = merged["_merge"] != "both"
    if unmatched.any():
        raise PairingError(f"{what}: image {merged.loc[unmatched, keys].iloc[0].to_dict()} has no counterpart in the "
                           "reference (was the reference attacked on the same rounds and clients?)")
    different = (merged["client"] != merged["client_reference"]) | (merged["image_digest"] != merged["image_digest_reference"])
    if different.any():
        first = merged.loc[different].iloc[0]
        raise PairingError(f"{what}: image {first[keys].to_dict()} is not the reference's image (client "
                           f"{first['client']} against {first['client_reference']}, digest {first['image_digest']} "
                           f"against {first['image_digest_reference']}): the private batches differ, so the defenses "
                           "cannot be compared image by image")
    result = merged[keys + ["client", "image_digest"]].copy()
    for metric in metrics:
        result[metric] = merged[metric]
        result[f"{metric}_reference"] = merged[f"{metric}_reference"]
        result[f"{metric}_diff"] = merged[metric] - merged[f"{metric}_reference"]
    return result


def frontier_verdicts(table: pd.DataFrame, *, privacy: tuple[str, str, str], utility: tuple[str, str, str]) -> pd.Series:
    """For each row (a defense setting against one attack), whether another row beats it.

    `privacy` and `utility` name (mean, low, high) columns; lower privacy (PSNR) and higher utility
    are better. `dominated`: another row is better on both axes beyond both intervals (its privacy
    interval lies wholly below this row's, its utility interval wholly above). `frontier`: no
    other row is better on both axes even by the means. `undecided`: beaten by the means only,
    within the intervals.
    """
    mean_p, low_p, high_p = (table[c].to_numpy(dtype=float) for c in privacy)
    mean_u, low_u, high_u = (table[c].to_numpy(dtype=float) for c in utility)
    verdicts = []
    for i in range(len(table)):
        others = np.arange(len(table)) != i
        beyond = others & (high_p < low_p[i]) & (low_u > high_u[i])
        by_means = others & (mean_p <= mean_p[i]) & (mean_u >= mean_u[i]) & ((mean_p < mean_p[i]) | (mean_u > mean_u[i]))
        verdicts.append("dominated" if beyond.any() else "undecided" if by_means.any() else "frontier")
    return pd.Series(verdicts, index=table.index, dtype=object)


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (family-wise error control over many cells)."""
    p_values = np.asarray(p_values, dtype=float)
    order = np.argsort(p_values)
    adjusted = np.empty_like(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def difference_p_value(a: float, a_low: float, a_high: float, b: float, b_low: float, b_high: float,
                       *, confidence: float = CONFIDENCE) -> float:
    """Two-sided p-value of a - b = 0, reading each interval as mean ± z * standard error (normal
    approximation); 1 when neither value has spread, NaN when either interval is unknown."""
    z = scipy_stats.norm.ppf(0.5 + confidence / 2)
    errors = [(high - low) / (2 * z) for low, high in ((a_low, a_high), (b_low, b_high))]
    if any(math.isnan(value) for value in (a, b, *errors)):
        return math.nan
    spread = math.hypot(*errors)
    if spread == 0:
        return 1.0 if a == b else 0.0
    return float(2 * scipy_stats.norm.sf(abs(a - b) / spread))
