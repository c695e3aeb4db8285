"""A run killed (SIGKILL to Snakemake's whole process group) while an attack job runs resumes
with the commands of docs/outputs.md, reuses the jobs that had finished and ends with the results of an
uninterrupted run."""

import os
import signal
import subprocess
import time

import pandas as pd
import psutil
import pytest

from conftest import ig_only, result_digests, run_snakemake, snakemake_executable, write_config

pytestmark = pytest.mark.pipeline


def _attack_job_running(process: psutil.Process, for_seconds: float) -> bool:
    """Whether an attack job has been running for at least `for_seconds` (so that the jobs it
    waited for finished well before the kill)."""
    try:
        return any("attack.py" in " ".join(child.cmdline()) and time.time() - child.create_time() >= for_seconds
                   for child in process.children(recursive=True))
    except psutil.Error:
        return False


def test_a_run_killed_during_attacks_resumes_and_equals_an_uninterrupted_run(finished_run, repo, tmp_path):
    reference, _, config = finished_run
    # two defenses and one attack of the tiny config, everything else as in the finished run
    config = {**ig_only(config), "defenses": {"none": {}, "gradienthide": config["defenses"]["gradienthide"]},
              "seeds": config["seeds"][:1]}
    config_file = write_config(tmp_path / "config.yaml", config)
    command = [snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(config_file), "--cores", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    watched = psutil.Process(process.pid)
    deadline = time.monotonic() + 600
    while not _attack_job_running(watched, for_seconds=3):
        assert process.poll() is None, "the run ended before any attack job started"
        assert time.monotonic() < deadline, "no attack job started within 10 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    killed_at = time.time()
    process.wait()

    # outputs of jobs that had finished (their run-manifest record written) well before the kill
    results = tmp_path / "results"
    records = [record for record in (results / "manifest").rglob("*.json") if record.stat().st_mtime < killed_at - 2]
    finished = {path: path.stat().st_mtime_ns for path in
                (results / record.relative_to(results / "manifest").as_posix()[:-len(".json")] for record in records)}
    assert any("train" in path.parts for path in finished)
    assert not (results / "report" / "metrics.parquet").exists()

    # docs/outputs.md's sequence after a kill: release the lock, then run again
    run_snakemake(repo, tmp_path, config_file, "--unlock")
    resumed = run_snakemake(repo, tmp_path, config_file, "--rerun-incomplete")
    output = resumed.stdout + resumed.stderr
    assert "rule prepare_data:" not in output, output[-3000:]  # finished before any attack; jobs unfinished at the kill rerun
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())  # reused, not rerun

    # every dump, reconstruction and per-shard metric equals the uninterrupted run's bytes
    mine, theirs = result_digests(results, skip=("logs", "benchmarks", "report")), result_digests(reference / "results")
    shared = [name for name in mine if not name.startswith("manifest/report/")]
    assert any(name.startswith("attack/gradienthide/ig/") for name in shared)
    assert [name for name in shared if mine[name] != theirs.get(name)] == []
    metrics = pd.read_parquet(results / "report" / "metrics.parquet")
    expected = pd.read_parquet(reference / "results" / "report" / "metrics.parquet")
    expected = expected[expected["defense"].isin(["none", "gradienthide"]) & (expected["attack"] == "ig")
                        & expected["seed"].isin(config["seeds"])]
    key = ["defense", "attack", "seed", "round", "uploads", "shard", "position", "image"]
    pd.testing.assert_frame_equal(metrics.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True), check_like=True)
