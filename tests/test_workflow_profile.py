"""The workflow profile (profiles/default) every snakemake command of this workflow reads."""

import subprocess

import yaml
from snakemake.settings.types import MaxJobsPerTimespan

from conftest import snakemake_executable, write_config


def test_the_workflow_profile_is_read_from_any_directory_and_limits_nothing_a_run_plans(repo, tmp_path):
    profile = yaml.safe_load((repo / "profiles" / "default" / "config.yaml").read_text())
    limit = MaxJobsPerTimespan.parse_choice(profile["max-jobs-per-timespan"])  # Snakemake's own parser
    # Snakemake re-runs its job selection once per timespan for every job finished so far; over a
    # day that never happens during a run, so it selects when a job ends. The count must never
    # hold jobs back: the largest config here plans 359.
    assert limit.timespan >= 24 * 3600 and limit.max_jobs >= 100_000
    with open(repo / "tests" / "configs" / "tiny.yaml") as handle:
        config = yaml.safe_load(handle)
    config["metrics"]["lpips"] = False  # a dry run; no backbone needed
    config_file = write_config(tmp_path / "config.yaml", config)
    result = subprocess.run([snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--configfile",
                             str(config_file), "--cores", "2", "-n"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"workflow specific profile {repo / 'profiles' / 'default'}" in result.stderr
