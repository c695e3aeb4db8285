"""One .tar.gz of a finished run, for a paper's archive, and its verification.

The archive holds every file under the output directory (results, dumps, reconstructions,
logs, benchmarks, figures and the run manifest) as it is on disk, modification times
included, so that a restored run is up to date for Snakemake, plus, under `gradienthide-run/`:

- `config.yaml`: the configuration as run (validated, defaults filled);
- `environment.json`: the code version (git commit and whether the checkout had uncommitted
  changes), Python, the platform and every installed package's version;
- `requirements.lock`: the lock the environment was installed from (every package pinned with
  its hashes), to rebuild it: `pip install --require-hashes -r gradienthide-run/requirements.lock`;
- `MANIFEST.sha256`: the sha256 of every other member, in `sha256sum` format.

    gradienthide verify results/archive/results.tar.gz

checks an archive against its manifest and names each missing, changed or unlisted member, then
names each package whose version in the running environment differs from the archive's lock.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import yaml

from gradienthide import lock as lockfile
from gradienthide import manifest

INFO_DIR = "gradienthide-run"
MANIFEST_NAME = f"{INFO_DIR}/MANIFEST.sha256"
LOCK_NAME = f"{INFO_DIR}/requirements.lock"
_CHUNK = 1 << 20


def code_version(repo: str | os.PathLike | None = None) -> dict:
    """The git commit of the checkout the code runs from and whether it has uncommitted changes."""
    repo = Path(repo) if repo else Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"commit": None, "dirty": None, "note": f"git not available ({error})"}
    if head.returncode != 0:
        return {"commit": None, "dirty": None, "note": f"{repo} is not a git checkout"}
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()),
            "changed_files": sorted(line[3:] for line in status.stdout.splitlines())}


def package_versions() -> dict[str, str]:
    """Every installed distribution's resolved version, by normalised name."""
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(versions.items()))


def environment(repo: str | os.PathLike | None = None) -> dict:
    return {"code": code_version(repo), "python": sys.version, "platform": platform.platform(),
            "packages": package_versions()}


def _holds_another_run(directory: Path) -> bool:
    """Whether `directory` is another experiment's output directory nested in this one (e.g.
    `results/draw_inference` inside `results`): every run keeps its own logs/ and benchmarks/."""
    return (directory / "logs").is_dir() and (directory / "benchmarks").is_dir()


def _run_files(out_dir: Path, exclude: set[Path]) -> list[Path]:
    files = []
    for directory, subdirs, names in os.walk(out_dir):
        subdirs[:] = sorted(name for name in subdirs if not _holds_another_run(Path(directory) / name))
        for name in sorted(names):
            path = (Path(directory) / name).resolve()
            if name.startswith(".") and name.endswith(".tmp"):
                continue  # a writer's temporary file
            if path in exclude or any(parent in exclude for parent in path.parents):
                continue
            files.append(path)
    return files


def _check_recorded(out_dir: Path, files: list[Path]) -> None:
    """Every file with a run-manifest record must still match it."""
    for path in files:
        record = manifest.record_path(out_dir, path)
        if record is not None and record.is_file():
            manifest.check_inputs(out_dir=out_dir, inputs=[str(path)])


def _sha256_stream(handle) -> str:
    digest = hashlib.sha256()
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def create_archive(*, archive: str, config: dict, out_dir: str, exclude: list[str] = (),
                   lock: str | None = None, repo: str | None = None) -> None:
    """Write `archive` (.tar.gz) from everything under `out_dir` except `exclude` (files or
    directories, e.g. the archive's own directory, log and benchmark), with the run's `lock`
    file and the code version of the checkout `repo` (the workflow's directory)."""
    out = Path(out_dir).resolve()
    target = Path(archive).resolve()
    excluded = {Path(p).resolve() for p in exclude} | {target}
    files = _run_files(out, excluded)
    _check_recorded(out, files)
    # members are named as the run names them: relative to the working directory, else under the output directory's name
    cwd = Path.cwd().resolve()
    prefix = Path(out_dir) if not Path(out_dir).is_absolute() else Path(out.name)
    if Path(out_dir).is_absolute() and out.is_relative_to(cwd):
        prefix = out.relative_to(cwd)
    lines = []
    from gradienthide.artifacts import atomic_path

    with atomic_path(target) as tmp, tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = [(f"{INFO_DIR}/config.yaml", yaml.safe_dump(config, sort_keys=False).encode()),
                   (f"{INFO_DIR}/environment.json", (json.dumps(environment(repo), indent=1) + "\n").encode())]
        if lock:
            members.append((LOCK_NAME, Path(lock).read_bytes()))
        for name, data in members:
            _add_bytes(tar, name, data)
            lines.append(f"{hashlib.sha256(data).hexdigest()}  {name}")
        for path in files:
            name = (prefix / path.relative_to(out)).as_posix()
            tar.add(str(path), arcname=name, recursive=False)
            lines.append(f"{manifest.file_sha256(path)}  {name}")
        _add_bytes(tar, MANIFEST_NAME, ("\n".join(lines) + "\n").encode())
    print(f"archive: {target} ({len(lines)} files, {target.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), time.time(), 0o644
    tar.addfile(info, io.BytesIO(data))


def _data_left(stream) -> bool:
    """Whether anything but zeros is left in `stream`. Reading a gzip stream to its end also
    runs gzip's CRC check, which raises on damage."""
    left = False
    while chunk := stream.read(_CHUNK):
        left = left or chunk.count(0) != len(chunk)
    return left


def verify_archive(path: str | os.PathLike) -> list[str]:
    """Problems found in the archive at `path`, one line each naming the member; empty if none."""
    problems: list[str] = []
    digests: dict[str, str] = {}
    listed_text = None
    current = last = stream_error = None
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                current = member.name
                if member.isfile() and member.name == MANIFEST_NAME:
                    data = tar.extractfile(member).read()
                    digests[member.name], listed_text = hashlib.sha256(data).hexdigest(), data.decode()
                elif member.isfile():
                    digests[member.name] = _sha256_stream(tar.extractfile(member))
                current, last = None, member.name
            # tarfile ends its iteration silently at a damaged member header, as if the archive
            # ended there: only end-of-archive zeros may follow the last member read
            if _data_left(tar.fileobj):
                raise tarfile.ReadError("a damaged member header follows it")
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeDecodeError, zlib.error) as error:
        # damaged compression or tar structure: nothing after this point can be read
        if current:
            problems.append(f"{current}: unreadable, the archive is damaged inside this member ({error})")
        elif last and listed_text is None:
            problems.append(f"{last}: unreadable, the archive is damaged at the end of this member or right "
                            f"after it ({error}); no member after it can be read")
        elif last:
            stream_error = error  # every member was read: reported below, with what the manifest says
        else:
            problems.append(f"{path}: unreadable ({error})")
    if listed_text is None:
        problems.append(f"{MANIFEST_NAME}: missing or unreadable, so no member can be checked")
        return problems
    listed = {}
    for line in listed_text.splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    for name, digest in listed.items():
        if name not in digests:
            problems.append(f"{name}: missing from the archive")
        elif digests[name] != digest:
            problems.append(f"{name}: changed (sha256 {digests[name][:16]}..., manifest {digest[:16]}...)")
    for name in digests:
        if name not in listed and name != MANIFEST_NAME:
            problems.append(f"{name}: in the archive but not in its manifest")
    if stream_error is not None and problems:
        problems.insert(0, f"{path}: its compressed data fails gzip's check ({stream_error})")
    elif stream_error is not None:
        # e.g. a member's time in its PAX header or the padding after its data: outside what the manifest covers
        problems.append(f"{path}: its compressed data fails gzip's check ({stream_error}), but every member's "
                        "contents match the manifest: the damage is in the tar headers or padding")
    return problems


def environment_differences(path: str | os.PathLike, *, installed: dict[str, str] | None = None) -> list[str] | None:
    """One line per package whose version in the running environment (or `installed`) differs
    from the archive's lock; None when the archive holds no lock."""
    with tarfile.open(path, "r:gz") as tar:
        try:
            text = tar.extractfile(LOCK_NAME).read().decode()
        except KeyError:
            return None
    locked = lockfile.parse_lock(text)
    return lockfile.differences(locked=locked, installed=lockfile.installed_versions() if installed is None else installed)


def verify(*, archive: str) -> int:
    """`gradienthide verify`: print each problem of `archive` (exit status 1 if any), then each
    package the running environment has at another version than the archive's lock."""
    if not Path(archive).is_file():
        print(f"{archive}: no such file", file=sys.stderr)
        return 2
    problems = verify_archive(archive)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{archive}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    with tarfile.open(archive, "r:gz") as tar:
        count = sum(1 for member in tar if member.isfile())
    print(f"{archive}: ok, {count} files match the manifest")
    differences = environment_differences(archive)
    if differences is None:
        print(f"{archive}: holds no {LOCK_NAME}, so the running environment is not compared with the run's")
    elif differences:
        # the archive is intact (exit status 0); a rerun here may not reproduce its numbers exactly
        print(f"the running environment differs from {LOCK_NAME} in {len(differences)} package(s); to rebuild "
              f"it: pip install --require-hashes -r {LOCK_NAME}")
        for line in differences:
            print(f"environment: {line}")
    else:
        print(f"the running environment matches {LOCK_NAME}")
    return 0
