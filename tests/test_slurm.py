"""The SLURM profile against a real cluster (start one with scripts/slurm-local-cluster.sh)."""

import os
import shutil
import subprocess
import time

import pandas as pd
import pytest

from conftest import ig_only, result_digests, snakemake_executable, write_config


def _cluster_answers() -> bool:
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
    return probe.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in probe.stdout.split())


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(not _cluster_answers(), reason="no SLURM controller answers (scripts/slurm-local-cluster.sh starts one)"),
]

# What the local test cluster needs on top of profiles/slurm: it has no GPU and no
# accounting database, so job states come from squeue (MinJobAge keeps finished jobs there).
LOCAL_CLUSTER_FLAGS = [
    "--set-resources", "attack:gpu=0",
    "--default-resources", "mem_mb=1000", "runtime=30", "cpus_per_task=1", "slurm_partition=debug",
    "--slurm-status-command", "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-keep-successful-logs",
]


def test_pipeline_runs_through_the_slurm_profile(tmp_path, repo, finished_run):
    """docs/slurm.md's literal `--profile slurm` after setup's profile link (in a fresh user
    config directory), on the tiny config's none and gradienthide branches under IG in its first
    replicate; every
    dump, reconstruction and per-shard metric equals the local run's bytes."""
    reference, _, config = finished_run
    config = {**ig_only(config), "defenses": {"none": {}, "gradienthide": config["defenses"]["gradienthide"]},
              "seeds": config["seeds"][:1]}
    config_file = write_config(tmp_path / "config.yaml", config)
    environment = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "user-config")}
    subprocess.run(["bash", str(repo / "scripts" / "install-profile.sh")], env=environment, check=True)
    started = time.monotonic()
    result = subprocess.run(
        [snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(config_file), "--cores", "all", "--profile", "slurm", *LOCAL_CLUSTER_FLAGS],
        capture_output=True, text=True, timeout=900, env=environment,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    summary = pd.read_csv(tmp_path / "results" / "report" / "summary.csv")
    assert set(summary["defense"]) == {"none", "gradienthide"}
    assert (tmp_path / "results" / "report" / "privacy_utility.png").is_file()
    # every job went through sbatch: the plugin keeps a log per SLURM job, named by its job id,
    # under slurm_logs/rule_<rule>/<wildcards>/
    logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    rules = {log.relative_to(tmp_path / ".snakemake" / "slurm_logs").parts[0] for log in logs}
    assert {"rule_prepare_data", "rule_label_public_pool", "rule_train", "rule_attack", "rule_evaluate",
            "rule_aggregate", "rule_figures"} <= rules, output[-3000:]
    assert all(log.stem.isdigit() for log in logs)
    assert len([log for log in logs if "rule_train" in log.parts]) == 2  # one SLURM job per defense and replicate
    mine, local = result_digests(tmp_path / "results"), result_digests(reference / "results")
    shared = [name for name in mine if not name.startswith(("report/", "manifest/report/"))]
    assert any(name.startswith("attack/gradienthide/ig/") for name in shared)
    assert [name for name in shared if mine[name] != local.get(name)] == []
    print(f"SLURM pipeline took {time.monotonic() - started:.0f} s")
