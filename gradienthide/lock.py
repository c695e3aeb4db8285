"""The lock file (requirements.lock, written by `bash scripts/lock.sh`): every package the
project installs, pinned with its hashes. Read here to check it against pyproject.toml, to
write the conda environment's pins from it, and to compare it with the running environment.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# what the lock is resolved for (scripts/lock.sh): markers in pyproject are evaluated here
TARGET_MARKERS = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                  "implementation_name": "cpython", "platform_python_implementation": "CPython"}
PROJECT = "gradienthide"
# Snakemake runs outside the rules' conda environment; the rules need none of it
NOT_IN_CONDA_ENV = {"snakemake", "snakemake-executor-plugin-slurm"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
_VIA_ONE = re.compile(r"^\s+# via (\S.*)$")
_VIA_ITEM = re.compile(r"^\s+#\s{3}(\S.*)$")


@dataclass
class Locked:
    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    required_by: list[str] = field(default_factory=list)  # canonical names; "gradienthide" for pyproject itself


def read_lock(path: str | Path) -> dict[str, Locked]:
    return parse_lock(Path(path).read_text())


def parse_lock(text: str) -> dict[str, Locked]:
    """The lock's entries by canonical name, with their hashes and what requires them (uv's `# via`)."""
    entries: dict[str, Locked] = {}
    current = None
    for line in text.splitlines():
        if match := _PIN.match(line):
            current = Locked(name=canonicalize_name(match.group(1)), version=match.group(2))
            entries[current.name] = current
        elif current is None:
            continue
        elif "--hash=" in line:
            current.hashes.append(line.split("--hash=", 1)[1].rstrip(" \\"))
        elif (match := _VIA_ONE.match(line)) or (match := _VIA_ITEM.match(line)):
            parent = match.group(1).split(" (")[0]
            if not parent.startswith("-"):  # e.g. `-c constraints.txt`
                current.required_by.append(canonicalize_name(parent))
    return entries


def project_requirements(pyproject: str | Path, *, extras: tuple[str, ...] = ("test",)) -> list[Requirement]:
    """pyproject.toml's dependencies and those of `extras`."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(line) for line in lines]


def unsatisfied(*, requirements: list[Requirement], locked: dict[str, Locked]) -> list[str]:
    """One line per requirement the lock's pins do not satisfy (on the lock's target platform)."""
    problems = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate({**TARGET_MARKERS, "extra": ""}):
            continue
        entry = locked.get(canonicalize_name(requirement.name))
        if entry is None:
            problems.append(f"{requirement}: not in the lock")
        elif not requirement.specifier.contains(entry.version, prereleases=True):
            problems.append(f"{requirement}: the lock pins {entry.version}")
    return problems


def unhashed(locked: dict[str, Locked]) -> list[str]:
    return [f"{entry.name}=={entry.version}: no hash" for entry in locked.values() if not entry.hashes]


def installed_versions() -> dict[str, str]:
    """The running environment's distributions by canonical name."""
    versions = {}
    for dist in importlib.metadata.distributions():
        if dist.metadata["Name"]:
            versions[canonicalize_name(dist.metadata["Name"])] = dist.version
    return versions


def differences(*, locked: dict[str, Locked], installed: dict[str, str]) -> list[str]:
    """One line per locked package the running environment lacks or has at another version."""
    lines = []
    for entry in locked.values():
        version = installed.get(entry.name)
        if version != entry.version:
            lines.append(f"{entry.name}: locked {entry.version}, installed {version or 'none'}")
    return lines


def conda_packages(*, locked: dict[str, Locked], pyproject: str | Path) -> dict[str, str]:
    """The locked versions of what the rules need: pyproject's dependencies but Snakemake, and
    everything they require (followed through the lock's `# via` records)."""
    roots = {canonicalize_name(r.name) for r in project_requirements(pyproject, extras=())} - NOT_IN_CONDA_ENV
    chosen = roots & set(locked)
    grew = True
    while grew:
        before = len(chosen)
        chosen |= {entry.name for entry in locked.values() if set(entry.required_by) & chosen}
        grew = len(chosen) > before
    return {name: locked[name].version for name in sorted(chosen)}


CONDA_HEADER = """\
# For `snakemake --software-deployment-method conda`: every rule runs in this environment.
# The gradienthide package itself is not installed here: Snakemake puts each workflow
# script's folder on sys.path, and workflow_scripts/gradienthide links to the package.
# Written by `bash scripts/lock.sh` from requirements.lock (the same versions): do not edit.
"""


def conda_env_text(*, locked: dict[str, Locked], pyproject: str | Path) -> str:
    pins = "".join(f"      - {name}=={version}\n" for name, version in conda_packages(locked=locked, pyproject=pyproject).items())
    return (CONDA_HEADER + "channels:\n  - conda-forge\n  - nodefaults\ndependencies:\n"
            f"  - python={TARGET_MARKERS['python_version']}\n  - pip\n  - pip:\n" + pins)


def write_conda_env(*, lock: str | Path, pyproject: str | Path, output: str | Path, check: bool = False) -> bool:
    """Write the conda environment from the lock; with `check`, only say whether `output` is current."""
    text = conda_env_text(locked=read_lock(lock), pyproject=pyproject)
    if check:
        return Path(output).is_file() and Path(output).read_text() == text
    Path(output).write_text(text)
    return True
