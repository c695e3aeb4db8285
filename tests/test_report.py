"""The report's tables and figures: the robust utility columns, the labeler note, run order and
colours, byte-identical figures, and the figures of the tiny pipeline run."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib import colors as mcolors

from gradienthide import artifacts, plots, report
from gradienthide.stages import report as report_stage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def accuracy_curves(curves: dict[str, list[float]]) -> pd.DataFrame:
    """An accuracy table (as training writes it) from per-run lists of test accuracy by round."""
    rows = []
    for run, values in curves.items():
        family = run.split("-")[0]
        rows += [{"round": r + 1, "test_accuracy": v, "test_loss": 1.0 - v, "defense": run, "defense_name": family,
                  "public_labeler": "n/a", "defense_params": "{}"} for r, v in enumerate(values)]
    return pd.DataFrame(rows)


def metrics_rows(psnr_by_run_attack: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = []
    for (run, attack), values in psnr_by_run_attack.items():
        rows += [{"defense": run, "defense_name": run.split("-")[0], "attack": attack, "round": 1, "shard": 0,
                  "position": 0, "client": 0, "image": i, "matched_reconstruction": i, "psnr": v, "ssim": 0.5,
                  "lpips": np.nan, "semantic_match": 1.0, "semantic_reference": "ref", "label_source": "known",
                  "label_correct": np.nan, "public_labeler": "oracle"} for i, v in enumerate(values)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("rounds, window", [(1, 1), (3, 3), (5, 5), (20, 5), (50, 5), (51, 6), (150, 15), (1000, 100)])
def test_utility_window_is_the_last_tenth_of_rounds_but_at_least_five(rounds, window):
    assert report.utility_window(rounds) == window


def test_utility_is_mean_and_std_of_the_last_rounds_not_the_last_value():
    # 20 rounds: the window is the last 5; the last round alone (0.5) is an outlier dip
    curve = [0.1] * 15 + [0.9, 0.8, 0.9, 0.9, 0.5]
    short = [0.2, 0.4, 0.6]  # fewer rounds than the minimum window: all rounds
    table = report.utility(accuracy_curves({"none": curve, "dp": short}).sample(frac=1.0, random_state=0))
    table = table.set_index("defense")
    assert table.at["none", report.UTILITY_MEAN] == pytest.approx(0.8)
    assert table.at["none", report.UTILITY_STD] == pytest.approx(np.std([0.9, 0.8, 0.9, 0.9, 0.5], ddof=1))
    assert table.at["none", report.UTILITY_ROUNDS] == 5
    assert table.at["dp", report.UTILITY_MEAN] == pytest.approx(0.4)
    assert table.at["dp", report.UTILITY_ROUNDS] == 3
    assert report.UTILITY_MEAN == "accuracy_last10pct_mean" and report.UTILITY_STD == "accuracy_last10pct_std"


def test_tables_carry_the_robust_utility_and_the_frontier_uses_it():
    # "dp" ends on a lucky round (0.99) but averages 0.6; "none" averages 0.9 and leaks more
    accuracy = accuracy_curves({"none": [0.9] * 10, "dp": [0.6] * 9 + [0.99], "pruning-fraction0.5": [0.95] * 10})
    metrics = metrics_rows({("none", "ig"): [20.0, 22.0], ("dp", "ig"): [10.0, 12.0],
                            ("pruning-fraction0.5", "ig"): [15.0, 15.0]})
    summary = report.summary(metrics, accuracy)
    assert {report.UTILITY_MEAN, report.UTILITY_STD, report.UTILITY_ROUNDS} <= set(summary.columns)
    assert "final_test_accuracy" not in summary.columns
    frontier = report.privacy_utility(metrics, accuracy).set_index("defense")
    assert frontier.at["dp", report.UTILITY_MEAN] == pytest.approx((0.6 * 4 + 0.99) / 5)
    assert bool(frontier.at["dp", "on_frontier"]) and bool(frontier.at["pruning-fraction0.5", "on_frontier"])
    assert not bool(frontier.at["none", "on_frontier"])  # beaten by pruning on both axes
    assert frontier.at["pruning-fraction0.5", "setting"] == "fraction0.5"


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
    return metrics, accuracy, report.privacy_utility(metrics, accuracy), [block], context


def draw_all(directory, study) -> dict[str, bytes]:
    metrics, accuracy, frontier, blocks, context = study
    plots.psnr_by_defense(metrics, directory / "psnr.png", context)
    plots.accuracy_by_round(accuracy, directory / "accuracy.png", context)
    plots.privacy_utility(frontier, directory / "privacy_utility.png", context)
    plots.reconstructions(blocks, directory / "reconstructions.png", context)
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_figures_are_byte_identical_when_drawn_twice(tmp_path):
    study = synthetic_study()
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = draw_all(tmp_path / "a", study), draw_all(tmp_path / "b", study)
    assert set(first) == {"psnr.png", "accuracy.png", "privacy_utility.png", "reconstructions.png"}
    for name, content in first.items():
        assert content[:8] == PNG_SIGNATURE
        assert content == second[name], f"{name} differs between two draws of the same data"
        assert b"matplotlib" not in content.lower()  # no software version (or date) embedded


def test_jitter_is_seeded_not_taken_from_the_global_random_state(tmp_path):
    study = synthetic_study()
    np.random.seed(1)
    plots.psnr_by_defense(study[0], tmp_path / "one.png", study[4])
    np.random.seed(2)
    plots.psnr_by_defense(study[0], tmp_path / "two.png", study[4])
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.pipeline
def test_tiny_run_figures_show_every_attack_at_page_width(finished_run):
    workdir, _, config = finished_run
    results = workdir / "results"
    for name in ("psnr_by_defense.png", "accuracy_by_round.png", "privacy_utility.png", "reconstructions.png"):
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
    expected = accuracy.groupby("defense")["test_accuracy"].mean()  # tiny: fewer than 5 rounds, so all of them
    assert summary.set_index("defense")[report.UTILITY_MEAN].groupby(level=0).first().to_dict() == \
        pytest.approx(expected.to_dict())


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
        reconstructions=[dumps.shard_file(str(results), run, attack, attack_round, 0, "reconstructions")
                         for run, attack in pairs],
        reconstruction_runs=[run for run, _ in pairs], reconstruction_attacks=[attack for _, attack in pairs],
        runs=list(runs), private=[dumps.round_file(str(results), run, attack_round, "private") for run in runs],
        attack_round=attack_round)
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
