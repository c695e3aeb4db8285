"""requirements.lock against pyproject.toml, and envs/gradienthide.yaml against the lock: CI fails
when one was edited without `bash scripts/lock.sh`."""

import yaml
from packaging.requirements import Requirement

from gradienthide import cli, lock

REQUIREMENTS_LOCK = "requirements.lock"


def test_the_lock_satisfies_every_dependency_of_pyproject_and_its_test_extra(repo):
    requirements = lock.project_requirements(repo / "pyproject.toml", extras=("test",))
    locked = lock.read_lock(repo / REQUIREMENTS_LOCK)
    assert {"torch", "snakemake", "pytest"} <= set(locked)
    assert lock.unsatisfied(requirements=requirements, locked=locked) == [], "run: bash scripts/lock.sh"


def test_every_lock_entry_has_a_hash(repo):
    locked = lock.read_lock(repo / REQUIREMENTS_LOCK)
    assert len(locked) > 50
    assert lock.unhashed(locked) == []
    assert all(entry.hashes and all(h.startswith("sha256:") for h in entry.hashes) for entry in locked.values())


def test_a_requirement_outside_the_pins_or_missing_from_the_lock_is_named():
    locked = lock.parse_lock("torch==2.4.0 \\\n    --hash=sha256:ab\n    # via gradienthide (pyproject.toml)\n")
    problems = lock.unsatisfied(requirements=[Requirement("torch>=2.5"), Requirement("numpy>=1.26"),
                                              Requirement("pywin32>=1; sys_platform == 'win32'")], locked=locked)
    assert problems == ["torch>=2.5: the lock pins 2.4.0", "numpy>=1.26: not in the lock"]


def test_an_entry_without_hash_is_named():
    locked = lock.parse_lock("numpy==2.0.0\n    # via\n    #   gradienthide (pyproject.toml)\n    #   pandas\n"
                             "Pandas==2.2.0 \\\n    --hash=sha256:cd \\\n    --hash=sha256:ef\n")
    assert locked["numpy"].required_by == ["gradienthide", "pandas"]
    assert locked["pandas"].hashes == ["sha256:cd", "sha256:ef"]
    assert lock.unhashed(locked) == ["numpy==2.0.0: no hash"]


def test_the_conda_environment_pins_the_locked_versions(repo, monkeypatch):
    monkeypatch.chdir(repo)
    # written from the lock by scripts/lock.sh: current, and every pin is the lock's
    assert cli.main(["conda-env", "-o", "envs/gradienthide.yaml", "--check"]) == 0, "run: bash scripts/lock.sh"
    locked = lock.read_lock(REQUIREMENTS_LOCK)
    env = yaml.safe_load((repo / "envs" / "gradienthide.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pins = dict(line.split("==") for line in pip)
    assert {"torch", "torchvision", "numpy", "pandas", "open-clip-torch", "opacus"} <= set(pins)
    assert "snakemake" not in pins  # Snakemake runs outside the rules' environment
    assert {name: version for name, version in pins.items() if locked[name].version != version} == {}


def test_a_stale_conda_environment_is_reported(repo, tmp_path, capsys):
    stale = tmp_path / "env.yaml"
    stale.write_text((repo / "envs" / "gradienthide.yaml").read_text().replace("torch==", "torch>="))
    assert cli.main(["conda-env", "--lock", str(repo / REQUIREMENTS_LOCK), "--pyproject", str(repo / "pyproject.toml"),
                     "-o", str(stale), "--check"]) == 1
    assert "scripts/lock.sh" in capsys.readouterr().err
