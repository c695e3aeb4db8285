import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parent.parent


def _shared_data_dirs() -> list[Path]:
    """Where ../shared/data may be: $GRADIENTHIDE_SHARED_DATA, next to this checkout, or next
    to the checkout it was cloned from (a CI clone lives elsewhere)."""
    dirs = [Path(os.environ["GRADIENTHIDE_SHARED_DATA"])] if os.environ.get("GRADIENTHIDE_SHARED_DATA") else []
    dirs.append(REPO.parent / "shared" / "data")
    origin = subprocess.run(["git", "-C", str(REPO), "remote", "get-url", "origin"], capture_output=True, text=True)
    if origin.returncode == 0 and Path(origin.stdout.strip()).is_dir():  # a local clone
        dirs.append(Path(origin.stdout.strip()).resolve().parent / "shared" / "data")
    return dirs


CIFAR_SUBSET = next((d / "cifar10_subset.npz" for d in _shared_data_dirs() if (d / "cifar10_subset.npz").is_file()),
                    REPO.parent / "shared" / "data" / "cifar10_subset.npz")


@pytest.fixture(autouse=True)
def _single_thread_torch():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_config() -> dict:
    with open(REPO / "tests" / "configs" / "tiny.yaml") as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def default_config() -> dict:
    with open(REPO / "config.yaml") as handle:
        return yaml.safe_load(handle)


@pytest.fixture
def cifar_subset() -> Path:
    if not CIFAR_SUBSET.is_file():
        pytest.skip(f"{CIFAR_SUBSET} not present (shared data is not part of the repository)")
    return CIFAR_SUBSET


def plain_protocol(lr: float, steps: int = 1, batch_size: int = 8, algorithm: str = "fedavg", mu: float = 0.0):
    """A client protocol for unit tests: `steps` local SGD steps at `lr`."""
    from gradienthide.protocol import ClientProtocol

    return ClientProtocol(local_steps=steps, batch_size=batch_size, lr=lr, algorithm=algorithm, mu=mu)


def prepare_tiny_digits(directory: Path) -> tuple[Path, Path]:
    """A prepared 200-image digits dataset (8x8, 4 clients) in `directory`, for stage-level
    tests: the paths of its dataset and split table."""
    from gradienthide.stages.data import prepare_data

    dataset, splits = directory / "d.safetensors", directory / "s.parquet"
    prepare_data(data={"dataset": "digits", "image_size": 8, "test_size": 50, "public_pool_size": 20,
                       "num_clients": 4, "max_images": 200},
                 seed=0, dataset=dataset, splits=splits, client_classes=directory / "c.parquet")
    return dataset, splits


def snakemake_executable() -> str:
    """The snakemake of the interpreter running the tests (the project's environment)."""
    candidate = Path(sys.executable).parent / "snakemake"
    return str(candidate) if candidate.exists() else shutil.which("snakemake")


def ig_only(config: dict) -> dict:
    """`config` (not changed) with IG as its only attack and without the tiny config's privacy
    probes, which name an attack left out: for tests that need the real uploads under IG alone."""
    attack = {key: value for key, value in config["attack"].items() if key != "probes"}
    return {**config, "attacks": {"ig": config["attacks"]["ig"]}, "attack": attack}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(copy.deepcopy(config), sort_keys=False))
    return path


def random_alexnet_cache(cache_dir: Path) -> Path:
    """A TORCH_HOME holding a randomly initialised AlexNet where LPIPS expects ImageNet's (offline)."""
    import torchvision

    from gradienthide import perceptual

    path = perceptual.backbone_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return cache_dir


def run_snakemake(repo, workdir, config_file, *extra, check=True):
    result = subprocess.run(
        [snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(config_file), "--cores", "2", *extra],
        capture_output=True, text=True, timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def planned_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run plans."""
    jobs, rule = set(), None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = match.group(1)
            jobs.add((rule, ""))
        elif rule and (match := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs.discard((rule, ""))
            jobs.add((rule, match.group(1)))
    return jobs


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, repo):
    """The tiny config run end to end once per test session; tests that only read its
    results, or dry-run against it, share it."""
    workdir = tmp_path_factory.mktemp("pipeline")
    with open(repo / "tests" / "configs" / "tiny.yaml") as handle:
        config = yaml.safe_load(handle)
    config["metrics"]["lpips_cache_dir"] = str(random_alexnet_cache(workdir / "torch"))
    config_file = write_config(workdir / "config.yaml", config)
    run_snakemake(repo, workdir, config_file)
    return workdir, config_file, config


# --- run manifest, archive and resumption tests ---

def copy_run(workdir: Path, destination: Path) -> Path:
    """A copy of a finished run's directory, modification times kept, for tests that change it."""
    shutil.copytree(workdir, destination, symlinks=True, ignore=shutil.ignore_patterns("locks"))
    return destination


def result_digests(results: Path, skip: tuple[str, ...] = ("logs", "benchmarks", "archive")) -> dict[str, str]:
    """sha256 of every file under `results` by relative path, except the top-level folders in `skip`."""
    import hashlib

    return {path.relative_to(results).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(results.rglob("*"))
            if path.is_file() and path.relative_to(results).parts[0] not in skip
            and not (path.name.startswith(".") and path.name.endswith(".tmp"))}  # a killed writer's leftover
