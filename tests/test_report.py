"""The report's tables and figures: the robust utility columns, the labeler note, run order and
colours, byte-identical figures, and the figures of the tiny pipeline run."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import colors as mcolors

from gradienthide import artifacts, plots, report, stats
from gradienthide.stages import report as report_stage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def accuracy_curves(curves: dict[str, list[float]], seed: int = 0) -> pd.DataFrame:
    """An accuracy table (as training writes it) from per-run lists of test accuracy by round."""
    rows = []
    for run, values in curves.items():
        family = run.split("-")[0]
        rows += [{"round": r + 1, "test_accuracy": v, "test_loss": 1.0 - v, "defense": run, "defense_name": family,
                  "seed": seed, "public_labeler": "n/a", "defense_params": "{}"} for r, v in enumerate(values)]
    return pd.DataFrame(rows)


def metrics_rows(psnr_by_run_attack: dict[tuple[str, str], list[float]], seed: int = 0) -> pd.DataFrame:
    rows = []
    for (run, attack), values in psnr_by_run_attack.items():
        rows += [{"defense": run, "defense_name": run.split("-")[0], "attack": attack, "seed": seed, "round": 1,
                  "shard": 0, "position": i // 4, "client": i // 4, "image": i % 4, "matched_reconstruction": i % 4,
                  "psnr": v, "ssim": v / 40, "lpips": np.nan, "semantic_match": 1.0, "semantic_reference": "ref",
                  "label_source": "known", "label_correct": np.nan, "public_labeler": "oracle",
                  "image_digest": f"s{seed}i{i}"} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("rounds, window", [(1, 1), (3, 3), (5, 5), (20, 5), (50, 5), (51, 6), (150, 15), (1000, 100)])
def test_utility_window_is_the_last_tenth_of_rounds_but_at_least_five(rounds, window):
    assert report.utility_window(rounds) == window


def test_utility_of_one_replicate_is_its_window_mean_with_one_sd_labelled_as_such():
    # 20 rounds: the window is the last 5; the last round alone (0.5) is an outlier dip
    curve = [0.1] * 15 + [0.9, 0.8, 0.9, 0.9, 0.5]
    short = [0.2, 0.4, 0.6]  # fewer rounds than the minimum window: all rounds
    table = report.utility(accuracy_curves({"none": curve, "dp": short}).sample(frac=1.0, random_state=0))
    table = table.set_index("defense")
    spread = np.std([0.9, 0.8, 0.9, 0.9, 0.5], ddof=1)
    assert table.at["none", report.UTILITY_MEAN] == pytest.approx(0.8)
    assert (table.at["none", report.UTILITY_LOW], table.at["none", report.UTILITY_HIGH]) == pytest.approx(
        (0.8 - spread, 0.8 + spread))
    assert "1 replicate" in table.at["none", report.UTILITY_INTERVAL] and "sd" in table.at["none", report.UTILITY_INTERVAL]
    assert table.at["none", report.UTILITY_ROUNDS] == 5
    assert table.at["dp", report.UTILITY_MEAN] == pytest.approx(0.4)
    assert table.at["dp", report.UTILITY_ROUNDS] == 3


def test_utility_over_replicates_is_a_t_interval_of_their_window_means():
    from scipy import stats as scipy_stats

    window_means = [0.80, 0.86, 0.83]
    accuracy = pd.concat([accuracy_curves({"none": [0.1] * 15 + [mean] * 5}, seed=seed)
                          for seed, mean in enumerate(window_means)])
    row = report.utility(accuracy).set_index("defense").loc["none"]
    expected = scipy_stats.t.interval(0.95, 2, loc=np.mean(window_means), scale=scipy_stats.sem(window_means))
    assert row[report.UTILITY_MEAN] == pytest.approx(np.mean(window_means))
    assert (row[report.UTILITY_LOW], row[report.UTILITY_HIGH]) == pytest.approx(expected)
    assert row[report.UTILITY_REPLICATES] == 3 and row[report.UTILITY_INTERVAL] == "95% t-interval over 3 replicates"


def test_accuracy_difference_to_none_is_paired_by_replicate():
    from scipy import stats as scipy_stats

    # replicates differ a lot (0.70 to 0.90), the defense costs 0.02 to 0.03 in each: its own
    # interval overlaps none's, the paired difference resolves the cost
    none_means, costs = [0.70, 0.90, 0.80], [0.02, 0.03, 0.025]
    accuracy = pd.concat([accuracy_curves({"none": [mean] * 5, "dp": [mean - cost] * 5}, seed=seed)
                          for seed, (mean, cost) in enumerate(zip(none_means, costs))])
    own = report.utility(accuracy).set_index("defense")
    assert own.loc["dp", report.UTILITY_HIGH] > own.loc["none", report.UTILITY_LOW]  # unpaired: overlapping
    paired = report.paired_utility(accuracy).set_index("defense")
    assert list(paired.index) == ["dp"]  # none has no difference to itself
    differences = [-cost for cost in costs]
    expected = scipy_stats.t.interval(0.95, 2, loc=np.mean(differences), scale=scipy_stats.sem(differences))
    assert paired.loc["dp", "accuracy_diff_mean"] == pytest.approx(np.mean(differences))
    assert (paired.loc["dp", "accuracy_diff_low"], paired.loc["dp", "accuracy_diff_high"]) == pytest.approx(expected)
    assert paired.loc["dp", "accuracy_diff_high"] < 0  # the cost is beyond the noise

    # a replicate only one of the two ran is left out of the pairing; one shared replicate has no interval
    lone = pd.concat([accuracy_curves({"none": [0.8] * 5, "dp": [0.7] * 5}, seed=0),
                      accuracy_curves({"dp": [0.9] * 5}, seed=1)])
    row = report.paired_utility(lone).set_index("defense").loc["dp"]
    assert row["accuracy_diff_mean"] == pytest.approx(-0.1) and np.isnan(row["accuracy_diff_low"])
    assert report.paired_utility(accuracy_curves({"dp": [0.9] * 5})).empty  # no none to pair with


def test_plateau_is_the_utility_windows_gain_over_the_window_before_it():
    from scipy import stats as scipy_stats

    # 60 rounds: windows of 6; "none" still climbs by 0.05 a window, "dp" is flat but noisy
    gains = [0.05, 0.04, 0.06]
    accuracy = pd.concat([accuracy_curves({"none": [0.3] * 48 + [0.5] * 6 + [0.5 + gain] * 6,
                                           "dp": [0.4] * 48 + [0.6 + 0.01 * seed] * 6 + [0.6] * 6}, seed=seed)
                          for seed, gain in enumerate(gains)])
    flat = report.plateau(accuracy).set_index("defense")
    expected = scipy_stats.t.interval(0.95, 2, loc=np.mean(gains), scale=scipy_stats.sem(gains))
    assert flat.loc["none", "accuracy_window_gain_mean"] == pytest.approx(np.mean(gains))
    assert (flat.loc["none", "accuracy_window_gain_low"], flat.loc["none", "accuracy_window_gain_high"]) == \
        pytest.approx(expected)
    assert flat.loc["none", "accuracy_window_gain_low"] > 0  # still rising beyond the noise
    assert flat.loc["dp", "accuracy_window_gain_low"] < 0 < flat.loc["dp", "accuracy_window_gain_high"]  # flat
    # too few rounds for two windows: no answer rather than a made-up one
    short = report.plateau(accuracy_curves({"none": [0.5] * 8})).set_index("defense")
    assert np.isnan(short.loc["none", "accuracy_window_gain_mean"])


def test_tables_carry_intervals_and_the_frontier_knows_its_noise():
    # "dp" leaks far less at a little less accuracy; "pruning" is beaten by dp on both axes but
    # only within noise; "mixup" is beaten by dp beyond every interval
    rng = np.random.default_rng(0)
    runs = {"none": (20, 0.95), "dp": (8, 0.93), "pruning-fraction0.5": (9, 0.92), "mixup": (15, 0.60)}
    metrics = pd.concat([metrics_rows({(run, "ig"): list(rng.normal(psnr, 1.0, 16))}, seed=seed)
                         for seed in (0, 1, 2) for run, (psnr, _) in runs.items()])
    accuracy = pd.concat([accuracy_curves({run: [level + 0.01 * (seed - 1)] * 10}, seed=seed)
                          for seed in (0, 1, 2) for run, (_, level) in runs.items()])
    summary = report.summary(metrics, accuracy).set_index("defense")
    assert {"psnr_low", "psnr_high", "ssim_low", "ssim_high", report.UTILITY_LOW, report.UTILITY_HIGH,
            "psnr_diff_mean", "share_worse_for_attacker", "frontier"} <= set(summary.columns)
    assert (summary["psnr_low"] < summary["psnr_mean"]).all() and (summary["psnr_mean"] < summary["psnr_high"]).all()
    assert summary.at["mixup", "frontier"] == "dominated"
    assert summary.at["pruning-fraction0.5", "frontier"] == "undecided"
    assert summary.at["dp", "frontier"] == "frontier" and summary.at["none", "frontier"] == "frontier"
    assert summary.at["dp", "psnr_diff_mean"] == pytest.approx(summary.at["dp", "psnr_mean"] - summary.at["none", "psnr_mean"])
    assert summary.at["dp", "share_worse_for_attacker"] == 1.0 and np.isnan(summary.at["none", "psnr_diff_mean"])
    frontier = report.privacy_utility(summary.reset_index(), accuracy).set_index("defense")
    assert frontier.at["pruning-fraction0.5", "setting"] == "fraction0.5"
    assert frontier.at["mixup", "frontier"] == "dominated"


def test_paired_differences_refuse_images_that_are_not_the_same():
    metrics = pd.concat([metrics_rows({("none", "ig"): [20.0, 21.0, 22.0, 23.0],
                                       ("dp", "ig"): [10.0, 11.0, 12.0, 13.0]})])
    paired = report.paired_table(metrics)
    assert paired["psnr_diff"].tolist() == [-10.0] * 4 and set(paired["reference"]) == {"none under ig"}
    metrics.loc[(metrics["defense"] == "dp") & (metrics["image"] == 2), "image_digest"] = "another image"
    with pytest.raises(stats.PairingError, match="not the reference's image"):
        report.paired_table(metrics)


def test_adaptive_attacks_are_paired_with_none_under_plain_ig():
    metrics = metrics_rows({("none", "ig"): [20.0, 21.0, 22.0, 23.0], ("gradienthide", "adaptive"): [9.0] * 4})
    paired = report.paired_table(metrics)
    assert set(paired["reference"]) == {"none under ig"} and paired["psnr_diff"].tolist() == [-11.0, -12.0, -13.0, -14.0]


def test_a_cell_whose_psnr_still_rises_over_the_last_doubling_is_budget_limited():
    metrics = pd.concat([metrics_rows({("none", "ig"): [20.0, 20.5, 21.0, 21.5], ("dp", "ig"): [8.0, 8.5, 9.0, 9.5]},
                                      seed=seed) for seed in (0, 1)])
    checkpoints = []
    for iterations, fraction in ((100, 0.125), (200, 0.25), (400, 0.5), (800, 1.0)):
        # none still gains 3 dB from 400 to 800 iterations; dp has converged
        part = metrics.assign(iterations=iterations, budget_fraction=fraction)
        part.loc[part["defense"] == "none", "psnr"] -= 3.0 * (fraction < 1) + 2 * (fraction < 0.5)
        checkpoints.append(part[["defense", "defense_name", "attack", "seed", "round", "position", "client", "image",
                                 "psnr", "ssim", "iterations", "budget_fraction"]])
    budget = pd.concat(checkpoints)
    accuracy = pd.concat([accuracy_curves({"none": [0.9] * 5, "dp": [0.8] * 5}, seed=seed) for seed in (0, 1)])
    summary = report.summary(metrics, accuracy, budget).set_index("defense")
    assert bool(summary.at["none", "budget_limited"]) and not bool(summary.at["dp", "budget_limited"])
    assert summary.at["none", "psnr_rise_last_doubling"] == pytest.approx(3.0)
    assert summary.at["none", "budget_iterations"] == 800
    curves = report.budget_summary(budget)
    assert curves[curves["defense"] == "none"]["iterations"].tolist() == [100, 200, 400, 800]


def test_run_order_groups_families_and_sorts_swept_values_numerically():
    runs = pd.DataFrame({"defense": ["gradienthide-public_steps10", "dp-sigma0.1", "gradienthide-public_steps2",
                                     "dp-sigma0.001", "none", "dp-sigma0.01"],
                         "defense_name": ["gradienthide", "dp", "gradienthide", "dp", "none", "dp"]})
    assert report.run_order(runs, preferred=["none", "dp-sigma0.001", "gradienthide-public_steps2"]) == [
        "none", "dp-sigma0.001", "dp-sigma0.01", "dp-sigma0.1", "gradienthide-public_steps2",
        "gradienthide-public_steps10"]


def test_a_family_shares_one_hue_and_stronger_settings_are_darker():
    runs = pd.DataFrame({"defense": ["none", "dp-sigma0.001", "dp-sigma0.01", "dp-sigma0.1"],
                         "defense_name": ["none", "dp", "dp", "dp"]})
    colours = plots.family_colours(runs)
    hues = [mcolors.rgb_to_hsv(colours[run])[0] for run in ("dp-sigma0.001", "dp-sigma0.01", "dp-sigma0.1")]
    values = [sum(colours[run]) for run in ("dp-sigma0.001", "dp-sigma0.01", "dp-sigma0.1")]
    assert max(hues) - min(hues) < 0.02
    assert values[0] > values[1] > values[2]
    assert colours["none"] != colours["dp-sigma0.01"]


def test_labeler_note_shows_the_labelers_accuracy_only_when_recorded(tmp_path):
    base = pd.DataFrame({"index": [0, 1], "label": [3, 5], "confidence": [0.9, 0.8], "labeler": "simulated_clip"})
    without = tmp_path / "without.parquet"
    artifacts.save_table(without, base)
    recorded = tmp_path / "recorded.parquet"
    artifacts.save_table(recorded, base.assign(labeler_accuracy=0.7))
    unknown = tmp_path / "unknown.parquet"
    artifacts.save_table(unknown, base.assign(labeler_accuracy=np.nan))
    note = report_stage.figure_context(public_labels=str(recorded), attack_settings={}, runs=[]).labeler
    assert note == "public labels: simulated_clip (accuracy 70.0%)"
    assert report_stage.figure_context(public_labels=str(without), attack_settings={}, runs=[]).labeler == \
        "public labels: simulated_clip"
    assert report_stage.labeler_accuracy_of(str(unknown)) is None
    assert report_stage.figure_context(public_labels=None, attack_settings={}, runs=[]).labeler == \
        "no defense here uses public labels"


def test_attack_budget_names_iterations_inner_steps_and_restarts():
    assert plots.attack_budget({"iterations": 1200, "restarts": 2}) == "1200 it. \u00d7 2 restarts"
    assert plots.attack_budget({"iterations": 25, "max_iter": 20}) == "25 steps \u00d7 20 it."
    assert plots.attack_budget({"iterations": 10, "restarts": 1}) == "10 it."


def synthetic_study():
    """Tables and a reconstruction block like a small run's: three attacks, a swept family."""
    rng = np.random.default_rng(1)
    runs = ["none", "gradienthide", "dp-sigma0.01", "dp-sigma0.1"]
    psnr = {(run, "ig"): list(rng.uniform(5, 20, 8)) for run in runs}
    psnr[("none", "dlg")] = list(rng.uniform(8, 15, 8))
    psnr[("gradienthide", "adaptive")] = list(rng.uniform(5, 9, 8))
    metrics = metrics_rows(psnr)
    accuracy = accuracy_curves({run: list(np.clip(np.linspace(0.1, 0.9, 30) + rng.normal(0, 0.05, 30), 0, 1))
                                for run in runs})
    context = plots.FigureContext(labeler="public labels: oracle", runs=tuple(runs),
                                  budgets={"ig": "20 it.", "dlg": "3 steps \u00d7 5 it.", "adaptive": "10 it."})
    block = plots.ReconstructionBlock(attack="ig", round=1, label_source="known", originals=torch.rand(4, 1, 8, 8),
                                      labels=[1, 2, 3, 4], rows=[(run, torch.rand(4, 1, 8, 8), [5.0, 6.0, 7.0, 8.0])
                                                                 for run in runs])
    budget = pd.concat([metrics.assign(iterations=it, budget_fraction=it / 20, psnr=metrics["psnr"] * it / 20)
                        for it in (2, 5, 10, 20)])
    summary = report.summary(metrics, accuracy, budget)
    return metrics, accuracy, summary, report.privacy_utility(summary, accuracy), report.budget_summary(budget), \
        [block], context


def test_panels_of_an_attack_without_the_no_defense_run_take_it_from_plain_ig_at_the_same_round():
    table = pd.DataFrame({"defense": ["none", "gradienthide", "none", "gradienthide", "none"],
                          "attack": ["ig", "ig", "ig", "adaptive_infer", "ig"],
                          "round": [1, 1, 200, 200, 1], "psnr_mean": [20.0, 13.0, 18.0, 11.0, 19.0]})
    reference = plots.no_defense_reference(table, "adaptive_infer", 200)
    assert list(reference["psnr_mean"]) == [18.0]  # none under ig at round 200, not round 1
    assert plots.no_defense_reference(table, "ig", 1).empty  # the panel has its own none
    with_none = pd.concat([table, pd.DataFrame({"defense": ["none"], "attack": ["adaptive_infer"], "round": [200],
                                                "psnr_mean": [17.0]})])
    assert plots.no_defense_reference(with_none, "adaptive_infer", 200).empty


def draw_all(directory, study) -> dict[str, bytes]:
    metrics, accuracy, summary, frontier, curves, blocks, context = study
    plots.psnr_by_defense(metrics, summary, directory / "psnr.png", context)
    plots.accuracy_by_round(accuracy, directory / "accuracy.png", context)
    plots.privacy_utility(frontier, directory / "privacy_utility.png", context)
    plots.budget_curves(curves, summary, directory / "budget.png", context)
    plots.reconstructions(blocks, directory / "reconstructions.png", context)
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_figures_are_byte_identical_when_drawn_twice(tmp_path):
    study = synthetic_study()
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = draw_all(tmp_path / "a", study), draw_all(tmp_path / "b", study)
    assert set(first) == {"psnr.png", "accuracy.png", "privacy_utility.png", "budget.png", "reconstructions.png"}
    for name, content in first.items():
        assert content[:8] == PNG_SIGNATURE
        assert content == second[name], f"{name} differs between two draws of the same data"
        assert b"matplotlib" not in content.lower()  # no software version (or date) embedded


def test_jitter_is_seeded_not_taken_from_the_global_random_state(tmp_path):
    study = synthetic_study()
    np.random.seed(1)
    plots.psnr_by_defense(study[0], study[2], tmp_path / "one.png", study[-1])
    np.random.seed(2)
    plots.psnr_by_defense(study[0], study[2], tmp_path / "two.png", study[-1])
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.pipeline
def test_tiny_run_figures_show_every_attack_at_page_width(finished_run):
    workdir, _, config = finished_run
    results = workdir / "results"
    for name in ("psnr_by_defense.png", "accuracy_by_round.png", "privacy_utility.png", "budget_curves.png",
                 "reconstructions.png"):
        path = results / "report" / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        width, height = png_size(path)
        assert 400 < width <= 2400 and height > 300, (name, width, height)
    width, _ = png_size(results / "report" / "privacy_utility.png")
    assert width < 1500  # a grid of panels, not one row of five
    summary = pd.read_csv(results / "report" / "summary.csv")
    rounds = config["training"]["rounds"]
    assert (summary[report.UTILITY_ROUNDS] == report.utility_window(rounds)).all()
    accuracy = artifacts.load_table(results / "report" / "accuracy.parquet")
    # tiny: fewer than 5 rounds, so all of them, per replicate; then the mean over replicates
    expected = accuracy.groupby(["defense", "seed"])["test_accuracy"].mean().groupby(level=0).mean()
    assert summary.set_index("defense")[report.UTILITY_MEAN].groupby(level=0).first().to_dict() == \
        pytest.approx(expected.to_dict())
    assert (summary[report.UTILITY_REPLICATES] == len(config["seeds"])).all()


@pytest.mark.pipeline
def test_tiny_run_reconstruction_blocks_cover_every_attack_and_its_defenses(finished_run):
    from gradienthide import config as gh_config
    from gradienthide import dumps

    workdir, _, config = finished_run
    results = workdir / "results"
    runs = gh_config.defense_runs(config)
    attack_round = config["training"]["attack_rounds"][0]
    pairs = [(run, attack) for attack in config["attacks"] for run in runs
             if gh_config.attack_targets(config, attack, runs[run])]
    blocks = report_stage.reconstruction_blocks(
        metrics=artifacts.load_table(results / "report" / "metrics.parquet"),
        reconstructions=[dumps.shard_file(str(results), defense=run, attack=attack, seed=1, round_number=attack_round,
                                          shard=0, what="reconstructions") for run, attack in pairs],
        reconstruction_runs=[run for run, _ in pairs], reconstruction_attacks=[attack for _, attack in pairs],
        runs=list(runs), private=[dumps.round_file(str(results), defense=run, seed=1, round_number=attack_round,
                                                   what="private") for run in runs],
        attack_round=attack_round, reconstruction_seed=1)
    assert [block.attack for block in blocks] == list(config["attacks"])
    for block in blocks:
        assert [run for run, _, _ in block.rows] == [run for run, attack in pairs if attack == block.attack]
        assert block.label_source in {"known", "recovered"}
        for _, images, psnr in block.rows:
            assert images.shape == block.originals.shape and all(math.isfinite(v) for v in psnr)


@pytest.mark.parametrize("channels", [1, 3])
def test_reconstruction_strip_is_torchvisions_one_row_grid(channels):
    from torchvision.utils import make_grid

    images = torch.rand(5, channels, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    expected = make_grid(images.clamp(0, 1), nrow=len(images), padding=1, pad_value=1.0)
    torch.testing.assert_close(plots._strip(images), expected[:channels], rtol=0, atol=0)


def test_probe_cells_are_paired_summarised_and_drawn_per_batch_size(tmp_path):
    """Cells are (setting, attack, round, uploads): a probe batch size's images pair with none's of the
    same batch size, the frontier is per uploads, and the batch-size figure takes its bars from summary."""
    probes = {1: [20.0, 21.0, 22.0, 23.0], 4: [12.0, 13.0, 14.0, 15.0]}
    metrics = pd.concat([metrics_rows({("none", "ig"): values, ("dp", "ig"): [v - 3 for v in values]})
                         .assign(uploads=f"batch{size}", private_batch=size, image_digest=lambda t, s=size: t["image_digest"] + f"b{s}")
                         for size, values in probes.items()]
                        + [metrics_rows({("none", "ig"): [10.0] * 4, ("dp", "ig"): [9.0] * 4}).assign(
                            uploads="deployed", private_batch=4)], ignore_index=True)
    accuracy = accuracy_curves({"none": [0.9] * 10, "dp": [0.8] * 10})
    summary = report.summary(metrics, accuracy)
    assert len(summary) == 6 and not summary.duplicated(report.CELL).any()
    cell = summary.set_index(["defense", "uploads"])
    assert cell.at[("dp", "batch1"), "psnr_diff_mean"] == pytest.approx(-3.0)
    assert cell.at[("dp", "deployed"), "psnr_diff_mean"] == pytest.approx(-1.0)
    assert cell.at[("dp", "batch4"), "private_batch"] == 4
    # a table written before probes existed reads as the real uploads
    legacy = report.summary(metrics[metrics["uploads"] == "deployed"].drop(columns=["uploads", "private_batch"]),
                            accuracy)
    assert set(legacy["uploads"]) == {"deployed"} and legacy["psnr_diff_mean"].notna().sum() == 1
    context = plots.FigureContext(labeler="public labels: oracle", runs=("none", "dp"), budgets={"ig": "20 it."})
    plots.psnr_by_batch_size(summary, tmp_path / "batch.png", context)
    plots.psnr_by_batch_size(summary, tmp_path / "again.png", context)
    assert (tmp_path / "batch.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (tmp_path / "batch.png").read_bytes() == (tmp_path / "again.png").read_bytes()


def test_reconstructions_are_captioned_with_the_datasets_class_names():
    block = plots.ReconstructionBlock(attack="ig", round=1, label_source="known", originals=torch.rand(2, 3, 8, 8),
                                      labels=[3, 9], rows=[])
    assert block.captions() == ["label 3", "label 9"]
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert plots.ReconstructionBlock(**{**block.__dict__, "class_names": names}).captions() == ["cat", "truck"]
