"""bench/rule_times.py: the per-rule table from a run's benchmark files."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import rule_times

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write(path: Path, wall: float, cpu: float, rss: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


def test_jobs_are_grouped_by_rule_from_subdirectories_and_top_level_files(tmp_path):
    write(tmp_path / "attack" / "none" / "ig" / "round1_deployed_shard0.tsv", 10.0, 9.0, 500)
    write(tmp_path / "attack" / "dp" / "ig" / "round1_deployed_shard0.tsv", 30.0, 20.0, 700)
    write(tmp_path / "train" / "none.tsv", 5.0, 4.0, 300)
    write(tmp_path / "aggregate.tsv", 1.0, 0.5, 100)
    table = rule_times.rule_table(rule_times.load_benchmarks(tmp_path))
    assert table.loc["attack", "jobs"] == 2
    assert table.loc["attack", "total_wall_s"] == 40.0
    assert table.loc["attack", "mean_wall_s"] == 20.0
    assert table.loc["attack", "cpu_s"] == 29.0
    assert table.loc["attack", "max_rss_mb"] == 700
    assert table.loc["aggregate", "jobs"] == 1
    assert table.loc["all", "jobs"] == 4 and table.loc["all", "total_wall_s"] == 46.0
    assert list(table.index[:-1]) == ["attack", "train", "aggregate"]  # slowest first


def test_a_directory_without_benchmarks_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        rule_times.load_benchmarks(tmp_path)


def test_split_breaks_attack_jobs_down_by_attack_and_training_by_defense(tmp_path):
    write(tmp_path / "attack" / "none" / "ig" / "seed0" / "round1_deployed_shard0.tsv", 10.0, 9.0, 500)
    write(tmp_path / "attack" / "dp" / "ig" / "seed0" / "round1_deployed_shard0.tsv", 30.0, 20.0, 700)
    write(tmp_path / "attack_probes" / "none" / "ig" / "seed0" / "round1.tsv", 50.0, 45.0, 600)
    write(tmp_path / "attack_probes" / "gradienthide" / "adaptive_infer" / "seed0" / "round1.tsv", 400.0, 390.0, 900)
    write(tmp_path / "train" / "soteria" / "seed0.tsv", 600.0, 590.0, 800)
    write(tmp_path / "train" / "none" / "seed0.tsv", 35.0, 34.0, 300)
    table = rule_times.rule_table(rule_times.load_benchmarks(tmp_path, split=True))
    assert list(table.index) == ["train: soteria", "attack_probes: adaptive_infer", "attack_probes: ig", "attack: ig",
                                 "train: none", "all"]
    assert table.loc["attack: ig", "jobs"] == 2 and table.loc["attack: ig", "total_wall_s"] == 40.0
    unsplit = rule_times.rule_table(rule_times.load_benchmarks(tmp_path))
    assert unsplit.loc["attack", "jobs"] == 2 and unsplit.loc["attack_probes", "jobs"] == 2
