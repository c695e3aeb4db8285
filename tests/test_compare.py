"""`python -m gradienthide.compare`: two runs compared cell by cell within their intervals. Two
replicate sets of one config agree; a changed defense strength disagrees (exit status 1)."""

import copy
import io
import subprocess
import sys
import tarfile

import pandas as pd
import pytest

from conftest import copy_run, ig_only, run_snakemake, write_config
from gradienthide import compare


def summary_row(defense, attack, psnr, low, high, accuracy=(0.9, 0.88, 0.92)):
    return {"defense": defense, "defense_name": defense.split("-")[0], "attack": attack, "round": 1,
            "psnr_mean": psnr, "psnr_low": low, "psnr_high": high, "ssim_mean": psnr / 40, "ssim_low": low / 40,
            "ssim_high": high / 40, "accuracy_mean": accuracy[0], "accuracy_low": accuracy[1],
            "accuracy_high": accuracy[2]}


def test_cells_agree_within_their_intervals_and_disagree_beyond_them():
    a = pd.DataFrame([summary_row("none", "ig", 18.0, 17.0, 19.0), summary_row("dp", "ig", 8.0, 7.5, 8.5)])
    b = pd.DataFrame([summary_row("none", "ig", 18.6, 17.5, 19.7), summary_row("dp", "ig", 12.0, 11.4, 12.6),
                      summary_row("mixup", "ig", 14.0, 13.0, 15.0)])
    comparisons, only_a, only_b = compare.compare(a, b)
    verdicts = {(c.quantity, c.cell): c.agrees for c in comparisons}
    assert verdicts[("PSNR (dB)", "none / ig / round 1")] and not verdicts[("PSNR (dB)", "dp / ig / round 1")]
    assert verdicts[("accuracy", "none")] and only_a == [] and only_b == [("mixup", "ig", 1)]
    report = compare.format_report(comparisons, only_a, only_b, name_a="A", name_b="B")
    assert "DISAGREE" in report and "only in B (not compared): mixup / ig / round 1" in report


def test_many_cells_that_differ_by_chance_agree_after_holms_correction():
    # 40 cells, one of them 2.2 standard errors apart: significant alone (p 0.03), not among 40
    rows_a, rows_b = [], []
    for k in range(40):
        rows_a.append(summary_row(f"dp-sigma{k}", "ig", 10.0, 9.0, 11.0))
        gap = 2.2 * (1 / 1.96) * 2 ** 0.5 if k == 0 else 0.1  # an interval of ±1 is ±1.96 errors
        rows_b.append(summary_row(f"dp-sigma{k}", "ig", 10.0 + gap, 9.0 + gap, 11.0 + gap))
    comparisons, _, _ = compare.compare(pd.DataFrame(rows_a), pd.DataFrame(rows_b))
    first = next(c for c in comparisons if c.cell == "dp-sigma0 / ig / round 1" and c.quantity == "PSNR (dB)")
    assert first.p_value < 0.05 and first.agrees


def test_a_run_is_read_from_its_directory_or_its_archive(tmp_path):
    table = pd.DataFrame([summary_row("none", "ig", 18.0, 17.0, 19.0)])
    (tmp_path / "run" / "results" / "report").mkdir(parents=True)
    table.to_csv(tmp_path / "run" / "results" / "report" / "summary.csv", index=False)
    with tarfile.open(tmp_path / "run.tar.gz", "w:gz") as archive:
        for name in ("results/report/summary.csv", "results/draw_inference/report/summary.csv"):  # a nested run too
            data = table.assign(psnr_mean=99.0 if "draw" in name else 18.0).to_csv(index=False).encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    for path in (tmp_path / "run" / "results", tmp_path / "run" / "results" / "report", tmp_path / "run.tar.gz"):
        pd.testing.assert_frame_equal(compare.read_summary(path), table)
    with pytest.raises(compare.RunError, match="no report/summary.csv"):
        compare.read_summary(tmp_path)
    assert compare.main([str(tmp_path / "run" / "results"), str(tmp_path / "run.tar.gz")]) == 0
    assert compare.main([str(tmp_path), str(tmp_path / "run.tar.gz")]) == 2


@pytest.fixture(scope="module")
def replicate_runs(tmp_path_factory, repo):
    """The tiny config's none and dp (sigma 0.0001) under IG, run for replicates 0 and 1 and,
    elsewhere, 2 and 3; then a copy of the second run with dp's noise a hundred times stronger
    (only dp's jobs rerun)."""
    import yaml

    with open(repo / "tests" / "configs" / "tiny.yaml") as handle:
        config = yaml.safe_load(handle)
    config["defenses"] = {"none": {}, "dp": {"sigma": 0.0001, "clip_norm": 1.0}}
    config = ig_only(config)
    config["metrics"] = {"lpips": False, "semantic_reference": "no_defense"}
    config["attack"]["shard_size"] = 2  # two attack jobs per replicate and defense: shards end to end
    runs = {}
    for name, seeds in (("first", [0, 1]), ("second", [2, 3])):
        workdir = tmp_path_factory.mktemp(name)
        run_snakemake(repo, workdir, write_config(workdir / "config.yaml", {**config, "seeds": seeds}))
        runs[name] = workdir
    changed = copy.deepcopy({**config, "seeds": [2, 3]})
    changed["defenses"]["dp"]["sigma"] = 0.01
    workdir = copy_run(runs["second"], tmp_path_factory.mktemp("changed") / "run")
    run_snakemake(repo, workdir, write_config(workdir / "config.yaml", changed))
    return {name: path / "results" for name, path in {**runs, "changed": workdir}.items()}


def run_compare(a, b):
    return subprocess.run([sys.executable, "-m", "gradienthide.compare", str(a), str(b)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.pipeline
def test_two_replicate_sets_of_one_config_agree(replicate_runs):
    result = run_compare(replicate_runs["first"], replicate_runs["second"])
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DISAGREE" not in result.stdout and "none / ig / round 2" in result.stdout


@pytest.mark.pipeline
def test_a_changed_defense_strength_disagrees(replicate_runs):
    result = run_compare(replicate_runs["second"], replicate_runs["changed"])
    print(result.stdout)
    assert result.returncode == 1, result.stdout + result.stderr
    disagreeing = [line for line in result.stdout.splitlines() if line.endswith("DISAGREE")]
    assert disagreeing and all(" dp" in line for line in disagreeing)  # none's cells are the same runs
