"""The paper's archive: built by `snakemake archive`, verified member by member, restorable so
that the report is rebuilt without rerunning training or attacks."""

import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import zlib

import pytest
import yaml

from conftest import copy_run, planned_jobs, run_snakemake
from gradienthide import archive, lock

pytestmark = pytest.mark.pipeline

ARCHIVE = "results/archive/results.tar.gz"


@pytest.fixture(scope="module")
def archived_run(finished_run, repo, tmp_path_factory):
    workdir = copy_run(finished_run[0], tmp_path_factory.mktemp("archived") / "run")
    run_snakemake(repo, workdir, finished_run[1], "--cores", "1", "archive")
    return workdir, finished_run[1]


def _verify(path):
    return subprocess.run([sys.executable, "-m", "gradienthide.cli", "verify", str(path)],
                          capture_output=True, text=True, timeout=300)


def test_the_archive_holds_the_run_its_config_environment_and_manifest(archived_run):
    workdir, _ = archived_run
    result = _verify(workdir / ARCHIVE)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout.strip(), f"({(workdir / ARCHIVE).stat().st_size} bytes)")
    with tarfile.open(workdir / ARCHIVE) as tar:
        names = set(tar.getnames())
        config = yaml.safe_load(tar.extractfile("gradienthide-run/config.yaml"))
        environment = json.load(tar.extractfile("gradienthide-run/environment.json"))
    on_disk = {p.relative_to(workdir).as_posix() for p in (workdir / "results").rglob("*")
               if p.is_file() and "archive" not in p.relative_to(workdir / "results").parts[:1]}
    # everything the run wrote, logs, benchmarks, dumps and the run manifest included
    # (but the archive job's own log, benchmark and manifest record, written as or after it is packed)
    assert on_disk - {"results/logs/archive.log", "results/benchmarks/archive.tsv",
                      "results/manifest/archive/results.tar.gz.json"} <= names
    for wanted in ("results/logs/train/none/seed0.log", "results/benchmarks/train/none/seed1.tsv",
                   "results/attack/none/ig/seed0/round2/deployed/shard0/reconstructions.safetensors",
                   "results/train/none/seed1/round2/updates.safetensors", "results/report/psnr_by_defense.png",
                   "results/manifest/report/metrics.parquet.json", "gradienthide-run/MANIFEST.sha256"):
        assert wanted in names
    assert config["public"]["dataset"] == "private_slice"  # a default the run's config file left out
    assert len(environment["code"]["commit"] or "") == 40 and isinstance(environment["code"]["dirty"], bool)
    assert environment["packages"]["torch"] and environment["packages"]["snakemake"]
    assert "gradienthide-run/requirements.lock" in names  # the lock the environment was installed from
    assert "the running environment matches gradienthide-run/requirements.lock" in result.stdout


def test_verify_names_each_package_whose_installed_version_differs_from_the_archives_lock(archived_run, tmp_path):
    workdir, _ = archived_run
    with tarfile.open(workdir / ARCHIVE) as tar:
        locked = lock.parse_lock(tar.extractfile(archive.LOCK_NAME).read().decode())
    # the archive as a run under another torch would have written it: its lock and manifest line changed
    torch_version = locked["torch"].version
    changed_lock = {}

    def change(member, data):
        if member.name == archive.LOCK_NAME:
            changed_lock["data"] = data.replace(f"\ntorch=={torch_version} ".encode(), b"\ntorch==2.4.0 ")
            return member, changed_lock["data"]
        if member.name == archive.MANIFEST_NAME:
            digest = hashlib.sha256(changed_lock["data"]).hexdigest()
            lines = [f"{digest}  {archive.LOCK_NAME}" if line.endswith(f"  {archive.LOCK_NAME}") else line
                     for line in data.decode().splitlines()]
            return member, ("\n".join(lines) + "\n").encode()
        return member, data

    other = tmp_path / "other-torch.tar.gz"
    _rewrite(workdir / ARCHIVE, other, change)
    result = _verify(other)
    print("verify under another environment:", result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr  # the archive itself is intact
    assert f"environment: torch: locked 2.4.0, installed {torch_version}" in result.stdout.splitlines()
    assert "differs from gradienthide-run/requirements.lock in 1 package(s)" in result.stdout


def test_a_restored_archive_is_up_to_date_and_rebuilds_the_report(archived_run, repo, tmp_path):
    workdir, _ = archived_run
    with tarfile.open(workdir / ARCHIVE) as tar:
        tar.extractall(tmp_path, filter="data")
    config_file = tmp_path / "gradienthide-run" / "config.yaml"
    dry = run_snakemake(repo, tmp_path, config_file, "--dry-run")
    assert not {rule for rule, _ in planned_jobs(dry.stdout)} - {"figures", "gradienthide_settings"}, dry.stdout
    run_snakemake(repo, tmp_path, config_file, "--report", str(tmp_path / "report.zip"))
    assert (tmp_path / "report.zip").stat().st_size > 0


def _rewrite(source, target, change):
    """Copy a .tar.gz member by member, passing each (info, bytes) through `change`."""
    with tarfile.open(source) as tar, tarfile.open(target, "w:gz", format=tarfile.PAX_FORMAT) as out:
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else None
            changed = change(member, data)
            if changed is not None:
                member.size = len(changed[1])
                out.addfile(changed[0], io.BytesIO(changed[1]))


def test_verify_names_a_changed_a_missing_and_an_unlisted_member(archived_run, tmp_path):
    workdir, _ = archived_run
    changed_member = "results/report/metrics.parquet"
    removed_member = "results/logs/train/none/seed0.log"

    def change(member, data):
        if member.name == changed_member:
            flipped = bytearray(data)
            flipped[len(flipped) // 2] ^= 0x01
            return member, bytes(flipped)
        if member.name == removed_member:
            return None
        return member, data

    damaged = tmp_path / "damaged.tar.gz"
    _rewrite(workdir / ARCHIVE, damaged, change)
    result = _verify(damaged)
    print("corrupted-archive verify:", result.stdout)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{changed_member}: changed") for line in lines)
    assert any(line.startswith(f"{removed_member}: missing") for line in lines)
    assert len(lines) == 2
    assert archive.verify_archive(workdir / ARCHIVE) == []


def test_verify_names_the_member_where_a_flipped_byte_of_the_compressed_file_lands(archived_run, tmp_path):
    workdir, _ = archived_run
    raw = (workdir / ARCHIVE).read_bytes()
    damaged = tmp_path / "flipped.tar.gz"
    # a flip lands in a member's data, in a member's header (where tarfile stops silently) or
    # breaks decompression: the problem names a member of the run, or, where it changed only tar
    # metadata (a time in a PAX header, padding), says that every member's contents match
    for tenth in range(1, 10):
        flipped = bytearray(raw)
        flipped[len(raw) * tenth // 10] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        problems = archive.verify_archive(damaged)
        print(f"flip at {tenth}/10:", problems)
        assert (any(re.match(r"results/\S+: (changed|unreadable|missing)", line) for line in problems)
                or _only_tar_metadata_damaged(problems, damaged)), problems
        if tenth == 5:  # the command line prints the same lines and exits with 1
            result = _verify(damaged)
            assert result.returncode == 1
            assert result.stdout.splitlines() == problems


def test_verify_names_the_member_before_a_damaged_header_where_tarfile_stops_silently(tmp_path, monkeypatch):
    # tarfile reads a damaged header after the first as the archive's end, without an error
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    for index in range(3):
        (tmp_path / "results" / f"part{index}.bin").write_bytes(bytes(range(256)) * 8)
    archive.create_archive(archive="run.tar.gz", config={"seed": 0}, out_dir="results")
    with tarfile.open("run.tar.gz") as tar:
        header = tar.getmember("results/part1.bin").offset
    tar_bytes = bytearray(gzip.decompress((tmp_path / "run.tar.gz").read_bytes()))
    tar_bytes[header + 10] ^= 0xFF
    # recompressed, so that gzip's own check passes and only the tar structure is damaged
    (tmp_path / "damaged.tar.gz").write_bytes(gzip.compress(bytes(tar_bytes)))
    problems = archive.verify_archive(tmp_path / "damaged.tar.gz")
    assert problems[0].startswith("results/part0.bin: unreadable, the archive is damaged at the end of this member")
    assert problems[1:] == [f"{archive.MANIFEST_NAME}: missing or unreadable, so no member can be checked"]
    assert archive.verify_archive(tmp_path / "run.tar.gz") == []


def _only_tar_metadata_damaged(problems, path) -> bool:
    """Whether `problems` is verify's one line for a gzip CRC failure where every member's contents match."""
    return len(problems) == 1 and re.fullmatch(
        re.escape(f"{path}: its compressed data fails gzip's check (") + r"CRC check failed [^()]*"
        + re.escape("), but every member's contents match the manifest: the damage is in the tar headers or padding"),
        problems[0]) is not None


def test_verify_says_when_only_tar_padding_is_damaged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "part0.bin").write_bytes(b"x" * 100)  # 412 bytes of padding follow it
    archive.create_archive(archive="run.tar.gz", config={"seed": 0}, out_dir="results")
    with tarfile.open("run.tar.gz") as tar:
        padding = tar.getmember("results/part0.bin").offset_data + 100
    tar_bytes = gzip.decompress((tmp_path / "run.tar.gz").read_bytes())
    damaged_tar = bytearray(tar_bytes)
    damaged_tar[padding] = 1
    # gzipped with the undamaged tar's CRC, as a flipped bit inside the compressed stream would leave it
    compressed = bytearray(gzip.compress(bytes(damaged_tar)))
    compressed[-8:-4] = zlib.crc32(tar_bytes).to_bytes(4, "little")
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(bytes(compressed))
    assert _only_tar_metadata_damaged(archive.verify_archive(damaged), damaged)


def test_verify_reads_the_lock_of_a_small_archive_against_the_installed_versions(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "part0.bin").write_bytes(b"x" * 100)
    (tmp_path / "requirements.lock").write_text("numpy==2.0.0 \\\n    --hash=sha256:ab\n"
                                                "torch==2.14.1 \\\n    --hash=sha256:cd\n")
    archive.create_archive(archive="run.tar.gz", config={"seed": 0}, out_dir="results", lock="requirements.lock")
    installed = {"numpy": "2.1.0", "torch": "2.14.1", "pandas": "3.0.0"}
    assert archive.environment_differences("run.tar.gz", installed=installed) == ["numpy: locked 2.0.0, installed 2.1.0"]
    assert archive.environment_differences("run.tar.gz", installed={"torch": "2.14.1"}) == [
        "numpy: locked 2.0.0, installed none"]
    archive.create_archive(archive="old.tar.gz", config={"seed": 0}, out_dir="results")  # made before archives held a lock
    assert archive.environment_differences("old.tar.gz") is None
    monkeypatch.setattr(lock, "installed_versions", lambda: installed)
    assert archive.verify(archive="run.tar.gz") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "environment: numpy: locked 2.0.0, installed 2.1.0"


def test_another_experiment_nested_in_the_output_directory_stays_out(tmp_path, monkeypatch):
    # e.g. configs/draw_inference.yaml writes results/draw_inference inside the default run's results/
    out = tmp_path / "results"
    (out / "train" / "none").mkdir(parents=True)
    (out / "train" / "none" / "accuracy.parquet").write_bytes(b"mine")
    (out / "logs").mkdir()
    (out / "logs" / "train.log").write_text("mine")
    nested = out / "draw_inference"
    for part in ("logs", "benchmarks", "train"):
        (nested / part).mkdir(parents=True)
    (nested / "train" / "model.safetensors").write_bytes(b"theirs")
    monkeypatch.chdir(tmp_path)
    archive.create_archive(archive=str(out / "archive" / "results.tar.gz"), config={"output_dir": "results"},
                           out_dir="results", exclude=[str(out / "archive")])
    with tarfile.open(out / "archive" / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"results/train/none/accuracy.parquet", "results/logs/train.log"} <= names
    assert not [name for name in names if "draw_inference" in name]
