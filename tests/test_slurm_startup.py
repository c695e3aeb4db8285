"""A local snakemake command never calls scontrol (where no controller answers, each call waits
about 9 s), while the SLURM plugin still loads with its real MinJobAge probe for SLURM runs."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import snakemake_executable
from gradienthide import slurm_startup

_SNAKEMAKE = """
import sys
from gradienthide import slurm_startup
if sys.argv[1] == "hook":
    slurm_startup.install()
else:  # as without scripts/setup.sh's .pth
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, slurm_startup._PluginFinder)]
from snakemake.cli import main
sys.argv = ["snakemake", "-n", "-q", "--cores", "1"]
main()
"""


@pytest.fixture
def fake_slurm(tmp_path):
    """A SLURM client on PATH whose every call is recorded (scontrol answers nothing)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    for tool in ("scontrol", "sinfo", "sacct", "squeue"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\nexit 1\n')
        (bin_dir / tool).chmod(0o755)
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "Snakefile").write_text("rule all:\n    default_target: True\n")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    return workdir, calls, env


def _scontrol_calls(calls: Path) -> list[str]:
    return [line for line in calls.read_text().splitlines() if line.startswith("scontrol")] if calls.exists() else []


def test_snakemake_starts_without_scontrol_with_the_hook_and_calls_it_without(fake_slurm):
    workdir, calls, env = fake_slurm
    result = subprocess.run([sys.executable, "-c", _SNAKEMAKE, "plain"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _scontrol_calls(calls) == ["scontrol show config"]  # the plugin's probe, at import
    calls.unlink()
    result = subprocess.run([sys.executable, "-c", _SNAKEMAKE, "hook"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _scontrol_calls(calls) == []


def test_the_venvs_snakemake_command_never_calls_scontrol(fake_slurm):
    pth = Path(sysconfig.get_path("purelib")) / "gradienthide_slurm_startup.pth"
    if not pth.is_file():
        pytest.skip(f"{pth} not installed (scripts/setup.sh writes it)")
    assert pth.read_text() == slurm_startup.PTH_LINE
    workdir, calls, env = fake_slurm
    result = subprocess.run([snakemake_executable(), "-n", "-q", "--cores", "1"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert _scontrol_calls(calls) == []


def test_the_plugin_keeps_its_real_probe_for_slurm_runs():
    code = ("from gradienthide import slurm_startup; slurm_startup.install()\n"
            "import snakemake_executor_plugin_slurm as plugin, snakemake_executor_plugin_slurm.job_status_query as q\n"
            "assert plugin.should_recommend_squeue_status_command is q.should_recommend_squeue_status_command\n"
            "assert q.should_recommend_squeue_status_command.__module__ == q.__name__\n"
            "assert plugin.get_min_job_age is q.get_min_job_age\n"
            "assert plugin.ExecutorSettings and plugin.Executor\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
