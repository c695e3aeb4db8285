"""One .tar.gz of a finished run, for a paper's archive, and its verification.

The archive holds every file under the output directory (results, dumps, reconstructions,
logs, benchmarks, figures and the run manifest) as it is on disk, modification times
included, so that a restored run is up to date for Snakemake, plus, under `gradienthide-run/`:

- `config.yaml`: the configuration as run (validated, defaults filled);
- `environment.json`: the code version (git commit and whether the checkout had uncommitted
  changes), Python, the platform and every installed package's version;
- `MANIFEST.sha256`: the sha256 of every other member, in `sha256sum` format.

    python -m gradienthide.archive verify results/archive/results.tar.gz

checks an archive against its manifest and names each missing, changed or unlisted member.
"""

from __future__ import annotations

import argparse
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

from gradienthide import manifest

INFO_DIR = "gradienthide-run"
MANIFEST_NAME = f"{INFO_DIR}/MANIFEST.sha256"
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


def environment() -> dict:
    return {"code": code_version(), "python": sys.version, "platform": platform.platform(),
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


def create_archive(*, archive: str, config: dict, out_dir: str, exclude: list[str] = ()) -> None:
    """Write `archive` (.tar.gz) from everything under `out_dir` except `exclude` (files or
    directories, e.g. the archive's own directory, log and benchmark)."""
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
        for name, data in ((f"{INFO_DIR}/config.yaml", yaml.safe_dump(config, sort_keys=False).encode()),
                           (f"{INFO_DIR}/environment.json", (json.dumps(environment(), indent=1) + "\n").encode())):
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradienthide.archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check an archive against its manifest")
    verify.add_argument("archive")
    args = parser.parse_args(argv)
    if not Path(args.archive).is_file():
        print(f"{args.archive}: no such file", file=sys.stderr)
        return 2
    problems = verify_archive(args.archive)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{args.archive}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    with tarfile.open(args.archive, "r:gz") as tar:
        count = sum(1 for member in tar if member.isfile())
    print(f"{args.archive}: ok, {count} files match the manifest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
