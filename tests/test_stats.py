"""The statistics every table and figure takes its intervals from: their coverage, their
stratification by replicate, reproducibility, the paired differences and the noise-aware frontier."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from gradienthide import stats


def coverage(replicate_spread: float, nested: bool, trials: int = 200) -> float:
    """How often the 95 % interval covers the true mean (10) of three replicates of 16 skewed,
    PSNR-like values (a floor with a long upper tail) whose replicate means differ by
    `replicate_spread` (sd); `nested` False resamples the images as one pool."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(trials):
        values = np.concatenate([rng.normal(0, replicate_spread) + 6 + rng.gamma(2.0, 2.0, 16) for _ in range(3)])
        strata = np.repeat([0, 1, 2], 16) if nested else np.zeros(48)
        low, high = stats.bootstrap_interval(values, strata, resamples=1000)
        covered += low <= 10.0 <= high
    return covered / trials


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time_when_replicates_agree():
    assert 0.90 <= coverage(0.0, nested=True) <= 1.0


def test_resampling_replicates_too_covers_what_image_resampling_alone_misses():
    """Replicates of the default run differ far more than its images do; an interval over images
    alone then misses the mean of other seeds' runs much more often than the nested one."""
    nested, images_only = coverage(2.0, nested=True), coverage(2.0, nested=False)
    assert nested >= 0.75 and nested - images_only >= 0.15, (nested, images_only)


def test_with_one_replicate_the_bootstrap_is_over_its_images():
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 40)
    low, high = stats.bootstrap_interval(values, np.zeros(40))
    expected = 1.96 * values.std(ddof=1) / np.sqrt(40)
    assert low < values.mean() < high and (high - low) / 2 == pytest.approx(expected, rel=0.15)


def test_bootstrap_is_seeded_skips_nan_and_handles_constant_and_single_values():
    values, strata = np.random.default_rng(2).normal(10, 2, 30), np.repeat([0, 1], 15)
    assert stats.bootstrap_interval(values, strata) == stats.bootstrap_interval(values, strata)
    assert stats.bootstrap_interval(values, strata, seed=1) != stats.bootstrap_interval(values, strata)
    with_nan = stats.bootstrap_interval(np.append(values, np.nan), np.append(strata, 1))
    assert with_nan == stats.bootstrap_interval(values, strata)
    assert stats.bootstrap_interval([2.0, 2.0, 2.0], [0, 0, 1]) == (2.0, 2.0)
    low, high = stats.bootstrap_interval([1.0, 3.0, 10.0], [0, 0, 1])  # replicates of two images and of one
    assert 1.0 <= low < 4.0 < high <= 10.0  # resamples of both replicates' kinds: (1 or 3, 1 or 3) or (10)
    assert all(math.isnan(v) for v in stats.bootstrap_interval([np.nan], [0]))


def test_t_interval_is_students_over_replicates():
    values = [0.80, 0.86, 0.83]
    expected = scipy_stats.t.interval(0.95, 2, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert stats.t_interval(values) == pytest.approx(expected)
    assert all(math.isnan(v) for v in stats.t_interval([0.8]))
    assert stats.t_interval([0.5, 0.5]) == (0.5, 0.5)


def image_rows(psnr, digests, seed=0, client=None):
    return pd.DataFrame({"seed": seed, "round": 1, "position": 0, "image": range(len(psnr)),
                         "client": client if client is not None else 3, "image_digest": digests,
                         "psnr": psnr, "ssim": np.array(psnr) / 40})


def test_paired_differences_subtract_the_reference_on_the_same_image():
    cell, reference = image_rows([8.0, 9.0], ["a", "b"]), image_rows([20.0, 18.0], ["a", "b"])
    paired = stats.paired_differences(cell, reference)
    assert paired["psnr_diff"].tolist() == [-12.0, -9.0] and paired["psnr_reference"].tolist() == [20.0, 18.0]


@pytest.mark.parametrize("change, message", [
    (lambda r: r.assign(image_digest=["a", "other"]), "not the reference's image"),
    (lambda r: r.assign(client=7), "not the reference's image"),
    (lambda r: r.iloc[:1], "no counterpart"),
])
def test_paired_differences_refuse_batches_that_are_not_the_same_images(change, message):
    cell = image_rows([8.0, 9.0], ["a", "b"])
    with pytest.raises(stats.PairingError, match=message):
        stats.paired_differences(cell, change(image_rows([20.0, 18.0], ["a", "b"])), what="dp under ig")


def test_frontier_verdicts_need_a_win_beyond_both_intervals_to_dominate():
    table = pd.DataFrame({
        "psnr": [20.0, 8.0, 9.0, 15.0], "psnr_low": [19.0, 7.5, 8.4, 14.0], "psnr_high": [21.0, 8.5, 9.6, 16.0],
        "acc": [0.95, 0.93, 0.92, 0.60], "acc_low": [0.94, 0.91, 0.90, 0.55], "acc_high": [0.96, 0.95, 0.94, 0.65],
    }, index=["none", "dp", "pruning", "mixup"])
    verdicts = stats.frontier_verdicts(table, privacy=("psnr", "psnr_low", "psnr_high"),
                                       utility=("acc", "acc_low", "acc_high"))
    # pruning loses to dp by the means, within the intervals; mixup loses beyond them
    assert verdicts.to_dict() == {"none": "frontier", "dp": "frontier", "pruning": "undecided", "mixup": "dominated"}


def test_holm_adjustment_is_step_down_and_monotone():
    adjusted = stats.holm_adjusted([0.01, 0.04, 0.03, 0.5])
    assert adjusted.tolist() == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_difference_p_value_reads_intervals_as_normal_errors():
    # two means 1.96 * sqrt(2) standard errors apart: p = 0.05
    gap = 1.959964 * math.sqrt(2)
    assert stats.difference_p_value(0.0, -1.959964, 1.959964, gap, gap - 1.959964, gap + 1.959964) == \
        pytest.approx(0.05, abs=1e-4)
    assert stats.difference_p_value(1.0, 1.0, 1.0, 1.0, 1.0, 1.0) == 1.0
    assert math.isnan(stats.difference_p_value(1.0, np.nan, np.nan, 1.0, 0.5, 1.5))
