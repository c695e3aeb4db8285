"""The run manifest: every job records the sha256 of each output it wrote; every job checks
its inputs against those records before it reads them.

A record lives beside the outputs, in a mirror tree: the output `<out>/train/none/model.safetensors`
is recorded in `<out>/manifest/train/none/model.safetensors.json` (its sha256, size, the rule
and wildcards that wrote it, and the sha256 of every input that job read). An artifact edited
after its job finished (a PSNR in a Parquet table, a model re-saved with its in-file checksum
recomputed) no longer matches its record, and the job about to use it stops with a message
naming the file and the command that regenerates it.

Files outside the output directory (the dataset, CLIP and LPIPS weights) are Snakemake inputs,
so replacing one reruns what depends on it (by modification time); their sha256 is recorded
in the consuming job's record for provenance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import sys
from pathlib import Path

MANIFEST_DIR = "manifest"
COMMAND_VARIABLE = "GRADIENTHIDE_SNAKEMAKE_ARGV"
_CHUNK = 1 << 20


class ManifestMismatch(RuntimeError):
    """An input differs from what the job that wrote it recorded."""


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_fingerprint(root: str | os.PathLike) -> str:
    """A digest of a directory's file names, sizes and modification times (no contents read).

    Cheap enough to compute when the Snakefile is parsed, as a rule's parameter, so replacing,
    adding or removing a file under a dataset directory reruns what reads it (a directory's own
    modification time does not change when a file inside it is replaced).
    """
    root = Path(root).expanduser()
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            stat = path.stat()
            digest.update(f"{path.relative_to(root).as_posix()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def remember_command(argv: list[str] | None = None) -> None:
    """Keep the command line of the Snakemake run (when the Snakefile is parsed) for the jobs'
    messages. Jobs inherit it through the environment, SLURM jobs included (sbatch exports it);
    a job's own Snakemake process keeps the one it inherited."""
    if COMMAND_VARIABLE not in os.environ:
        os.environ[COMMAND_VARIABLE] = json.dumps(list(sys.argv if argv is None else argv))


def regenerate_command(path: str | os.PathLike) -> str:
    """The command that rewrites `path` and everything computed from it: the run's own
    Snakemake command with `--forcerun <path>`."""
    argv = json.loads(os.environ.get(COMMAND_VARIABLE, "null") or "null")
    if not argv:
        argv = ["snakemake", "--cores", "all"]
    elif argv[0].endswith("__main__.py"):
        argv = [Path(sys.executable).name, "-m", "snakemake", *argv[1:]]
    argv = _without_forcing(argv[:])
    return shlex.join([*argv, "--forcerun", str(path)])


def _without_forcing(argv: list[str]) -> list[str]:
    """Drop earlier --forcerun/-R targets (the new one replaces them) and --unlock/--dry-run."""
    kept, skipping = [], False
    for arg in argv:
        if arg in ("--forcerun", "-R"):
            skipping = True
            continue
        if skipping and not arg.startswith("-"):
            continue
        skipping = False
        if arg in ("--unlock", "--dry-run", "-n", "--dryrun"):
            continue
        kept.append(arg)
    return kept


def record_path(out_dir: str | os.PathLike, path: str | os.PathLike) -> Path | None:
    """Where the record of `path` lives, or None for a file outside the output directory."""
    out = Path(out_dir).resolve()
    try:
        relative = Path(path).resolve().relative_to(out)
    except ValueError:
        return None
    if relative.parts and relative.parts[0] == MANIFEST_DIR:
        return None
    return out / MANIFEST_DIR / f"{relative.as_posix()}.json"


def _digest(path: Path) -> str:
    return directory_fingerprint(path) if path.is_dir() else file_sha256(path)


def check_inputs(*, out_dir: str | os.PathLike, inputs: list[str]) -> dict[str, str]:
    """Check each input inside `out_dir` against its producer's record; return every input's sha256.

    Raises ManifestMismatch naming the file and the command that regenerates it.
    """
    digests: dict[str, str] = {}
    for name in dict.fromkeys(str(p) for p in inputs):
        path = Path(name)
        if not path.exists():
            continue  # Snakemake reports missing inputs itself
        digests[name] = actual = _digest(path)
        record_file = record_path(out_dir, path)
        if record_file is None:
            continue
        if not record_file.is_file():
            # written before run manifests existed (or its record was removed): nothing to check against
            logging.getLogger(__name__).warning(
                "%s: no record in the run manifest (%s), so it is used unchecked; to regenerate it: %s",
                name, record_file, regenerate_command(name))
            continue
        try:
            record = json.loads(record_file.read_text())
            expected = record["sha256"]
        except (ValueError, KeyError) as error:
            raise ManifestMismatch(f"{record_file}: not a readable manifest record ({error}); regenerate {name} with\n"
                                   f"    {regenerate_command(name)}") from error
        if actual != expected:
            raise ManifestMismatch(
                f"{name}: its contents (sha256 {actual[:16]}...) differ from what rule {record.get('rule')!r} wrote "
                f"(sha256 {expected[:16]}..., recorded in {record_file}): it was edited or damaged after it was made. "
                f"Regenerate it and everything computed from it with\n    {regenerate_command(name)}")
    return digests


def record_outputs(*, out_dir: str | os.PathLike, outputs: list[str], rule: str, wildcards: dict,
                   inputs: dict[str, str]) -> None:
    """Write the record of each output (sha256, size, producing rule and wildcards, input digests)."""
    from gradienthide.artifacts import atomic_path

    for name in dict.fromkeys(str(p) for p in outputs):
        path = Path(name)
        record_file = record_path(out_dir, path)
        if record_file is None or not path.exists():
            continue
        record = {"path": name, "sha256": _digest(path), "size": path.stat().st_size, "rule": rule,
                  "wildcards": {key: str(value) for key, value in wildcards.items()},
                  "inputs": dict(sorted(inputs.items()))}
        with atomic_path(record_file) as tmp:
            tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
