"""The package installs like one: its wheel, installed into a fresh venv away from the source
tree, validates a config with the schema it ships, and plans the workflow of the checkout."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import planned_jobs, write_config

pytestmark = pytest.mark.packaging

# The installed package imported before Snakemake starts: Snakemake puts the Snakefile's folder (the
# checkout) first on sys.path, where `from gradienthide import config` would otherwise find the source tree.
_DRY_RUN = """
import atexit, sys
import gradienthide
atexit.register(lambda: print("GRADIENTHIDE:", sorted({m.__file__ for name, m in sys.modules.items()
                                                      if name.split(".")[0] == "gradienthide"}), file=sys.stderr))
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module")
def installed(repo, tmp_path_factory):
    """A venv holding only the gradienthide wheel; the dependencies come from this environment's
    site-packages on PYTHONPATH (where the editable install's .pth is not read)."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"  # built from a copy, so the checkout gets no build/ folder
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(repo / name, source / name if source.exists() else _mkdir(source) / name)
    shutil.copytree(repo / "gradienthide", source / "gradienthide", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp / "dist"), str(source)], check=True, timeout=300)
    wheel = next((tmp / "dist").glob("gradienthide-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": sysconfig.get_path("purelib")}
    return wheel, venv, python, env, tmp


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_the_wheel_holds_the_schema_license_and_console_script(installed):
    wheel, venv, *_ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "gradienthide/schemas/config.schema.yaml" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert "gradienthide = gradienthide.cli:main" in entry_points
    assert "License-Expression: MIT" in metadata and "Author: gradienthide developers" in metadata
    assert (venv / "bin" / "gradienthide").is_file()


def test_the_installed_package_validates_a_config_away_from_the_source_tree(installed, repo, tiny_config):
    _, venv, python, env, tmp = installed
    config_file = write_config(tmp / "tiny.yaml", tiny_config)
    code = ("import sys, yaml, gradienthide\nfrom gradienthide import config\n"
            "validated = config.validate_config(yaml.safe_load(open(sys.argv[1])))\n"
            "print(gradienthide.__file__)\nprint(validated['public']['dataset'])\n")
    result = subprocess.run([str(python), "-c", code, str(config_file)], cwd=tmp, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    location, filled_default = result.stdout.splitlines()
    assert Path(location).is_relative_to(venv) and not Path(location).is_relative_to(repo)
    assert filled_default == "private_slice"  # a default from the shipped schema
    result = subprocess.run([str(venv / "bin" / "gradienthide"), "verify", "--help"], cwd=tmp, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage: gradienthide verify" in result.stdout, result.stderr


def test_the_installed_package_dry_runs_the_checkouts_workflow(installed, repo, tiny_config):
    _, venv, python, env, tmp = installed
    tiny_config["metrics"]["lpips"] = False  # LPIPS' backbone file is checked for, not needed to plan
    config_file = write_config(tmp / "tiny-no-lpips.yaml", tiny_config)
    workdir = tmp / "work"
    workdir.mkdir()
    result = subprocess.run([str(python), "-c", _DRY_RUN, "-n", "--cores", "1", "-s", str(repo / "Snakefile"),
                             "--configfile", str(config_file), "--directory", str(workdir)],
                            cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert {rule for rule, _ in planned_jobs(result.stdout)} >= {"prepare_data", "train", "attack", "aggregate"}
    loaded = yaml.safe_load(result.stderr.split("GRADIENTHIDE:", 1)[1].splitlines()[0])
    assert len(loaded) > 3 and all(Path(path).is_relative_to(venv) for path in loaded), loaded
