"""`gradienthide`, the one console command: every subcommand has --help, a wrong one fails
clearly, and `table` prints a run's results."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gradienthide import cli

SUBCOMMANDS = ["verify", "compare", "table", "fetch-clip", "config-docs", "conda-env"]


def gradienthide_command() -> list[str]:
    """The installed console script beside the test interpreter, else the module."""
    script = Path(sys.executable).parent / "gradienthide"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gradienthide.cli"]


@pytest.mark.parametrize("subcommand", SUBCOMMANDS)
def test_every_subcommand_has_help(subcommand, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([subcommand, "--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_the_console_script_lists_its_subcommands():
    result = subprocess.run([*gradienthide_command(), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for subcommand in SUBCOMMANDS:
        assert subcommand in result.stdout


def test_an_unknown_subcommand_exits_2_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tabel", "results/report"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "invalid choice: 'tabel'" in error and "table" in error and "verify" in error


def test_an_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["table", "results/report", "--colour"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --colour" in capsys.readouterr().err


def test_verify_of_a_missing_file_exits_2(tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path / "none.tar.gz")]) == 2
    assert "no such file" in capsys.readouterr().err


def _summary_row(defense, psnr, diff=None):
    return {"defense": defense, "defense_name": defense.split("-")[0], "attack": "ig", "round": 1,
            "psnr_mean": psnr, "psnr_low": psnr - 1, "psnr_high": psnr + 1, "ssim_mean": psnr / 40,
            "ssim_low": psnr / 40 - 0.01, "ssim_high": psnr / 40 + 0.01,
            "accuracy_mean": 0.9, "accuracy_low": 0.88, "accuracy_high": 0.92, "replicates": 2, "images": 6,
            "accuracy_interval": "95% t-interval over replicates", "frontier": "frontier",
            "psnr_diff_mean": diff, "psnr_diff_low": None if diff is None else diff - 1,
            "psnr_diff_high": None if diff is None else diff + 1, "share_worse_for_attacker": 0.5 if diff else None}


def test_table_prints_a_reports_markdown_tables(tmp_path, capsys):
    pd.DataFrame([_summary_row("none", 18.0), _summary_row("dp-sigma0.1", 12.0, -6.0)]).to_csv(
        tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "main", "paired"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("public labels: n/a; replicates: 2; images per cell: 6")
    assert "| defense | accuracy | PSNR / SSIM under ig |" in out
    assert "| none | 0.900 [0.880, 0.920] | 18.0 [17.0, 19.0] / 0.45 |" in out
    assert "| dp-sigma0.1 | -6.0 [-7.0, -5.0], 50 % |" in out


def test_table_header_gives_the_range_of_images_per_cell_when_cells_differ(tmp_path, capsys):
    rows = [_summary_row("none", 18.0), {**_summary_row("none", 12.0), "round": 200, "images": 48}]
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "main"]) == 0
    assert "; images per cell: 6 to 48;" in capsys.readouterr().out


def test_table_gives_the_accuracy_difference_paired_by_replicate_when_the_run_has_it(tmp_path, capsys):
    rows = [_summary_row("none", 18.0), _summary_row("dp-sigma0.1", 12.0, -6.0)]
    rows[1] |= {"accuracy_diff_mean": -0.021, "accuracy_diff_low": -0.035, "accuracy_diff_high": -0.007}
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "paired"]) == 0
    out = capsys.readouterr().out
    assert "| defense | accuracy − none | PSNR − none under ig |" in out
    assert "| dp-sigma0.1 | -0.021 [-0.035, -0.007] | -6.0 [-7.0, -5.0], 50 % |" in out


def test_compare_passes_its_arguments_through(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run / "report").mkdir(parents=True)
        pd.DataFrame([_summary_row("none", 18.0)]).to_csv(tmp_path / run / "report" / "summary.csv", index=False)
    result = subprocess.run([*gradienthide_command(), "compare", str(tmp_path / "a"), str(tmp_path / "b"),
                             "--disagreements-only"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "quantities agree, 0 disagree" in result.stdout


def test_scripts_call_the_package_not_python_m(repo):
    # the old entry points are gone from the code's own messages
    assert shutil.which("git")
    found = subprocess.run(["git", "-C", str(repo), "grep", "-n", "-e", "python -m gradienthide.archive",
                            "-e", "gradienthide.clip_labels fetch", "-e", "scripts/results_table.py", "--",
                            "gradienthide", "workflow_scripts", "configs", "rules", "Snakefile"],
                           capture_output=True, text=True)
    assert found.stdout == ""


def test_table_gives_each_probe_batch_size_its_column(tmp_path, capsys):
    rows = [{**_summary_row(run, psnr, diff), "uploads": uploads}
            for uploads, shift in (("deployed", 0.0), ("batch1", 4.0), ("batch16", -2.0))
            for run, psnr, diff in (("none", 18.0 + shift, None), ("dp-sigma0.1", 12.0 + shift, -6.0))]
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "main"]) == 0
    out = capsys.readouterr().out
    assert ("| defense | accuracy | PSNR / SSIM under ig (deployed) | PSNR / SSIM under ig (batch of 1) "
            "| PSNR / SSIM under ig (batch of 16) |") in out
    assert "| none | 0.900 [0.880, 0.920] | 18.0 [17.0, 19.0] / 0.45 | 22.0 [21.0, 23.0] / 0.55 | 16.0" in out


def test_table_cuts_its_columns_to_the_chosen_rounds_and_uploads(tmp_path, capsys):
    rows = [{**_summary_row(run, psnr + shift + round_number / 100, diff), "uploads": uploads, "round": round_number}
            for round_number in (1, 300) for uploads, shift in (("batch1", 4.0), ("batch16", -2.0))
            for run, psnr, diff in (("none", 18.0, None), ("dp-sigma0.1", 12.0, -6.0))]
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "main", "--rounds", "300", "--uploads", "batch1"]) == 0
    out = capsys.readouterr().out
    assert "; round 300; uploads batch1\n" in out.splitlines(keepends=True)[0]
    assert "| defense | accuracy | PSNR / SSIM under ig |" in out  # one column left, so no round or batch in it
    assert "| none | 0.900 [0.880, 0.920] | 25.0 [24.0, 26.0] / 0.62 |" in out
    assert cli.main(["table", str(tmp_path), "--rounds", "2"]) == 2
    error = capsys.readouterr().err
    assert "--rounds 2: not in" in error and "summary.csv (it has 1, 300)" in error


def test_table_of_a_run_without_public_labels_says_so(tmp_path, capsys):
    # a run of `none` alone: the report's labeler column is empty
    pd.DataFrame([{**_summary_row("none", 18.0), "public_labeler": None}]).to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "main"]) == 0
    assert capsys.readouterr().out.startswith("public labels: n/a; replicates: 2")


def test_utility_table_says_whether_training_had_flattened(tmp_path, capsys):
    rows = [_summary_row("none", 18.0), _summary_row("dp-sigma0.1", 12.0, -6.0)]
    rows[0] |= {"accuracy_window_gain_mean": 0.004, "accuracy_window_gain_low": -0.003, "accuracy_window_gain_high": 0.011}
    rows[1] |= {"accuracy_diff_mean": -0.021, "accuracy_diff_low": -0.035, "accuracy_diff_high": -0.007,
                "accuracy_window_gain_mean": 0.03, "accuracy_window_gain_low": 0.02, "accuracy_window_gain_high": 0.04}
    pd.DataFrame(rows).to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["table", str(tmp_path), "--tables", "utility"]) == 0
    out = capsys.readouterr().out
    assert "| none | 0.900 [0.880, 0.920] |  | 0.004 [-0.003, 0.011] |" in out
    assert "| dp-sigma0.1 | 0.900 [0.880, 0.920] | -0.021 [-0.035, -0.007] | 0.030 [0.020, 0.040] |" in out
