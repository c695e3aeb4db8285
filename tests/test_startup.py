"""Parsing the workflow stays light: Snakemake validates the config and plans the jobs without
importing torch, which only the jobs themselves need; and the jobs start and end light: an
evaluation job imports neither torchvision nor torchmetrics, and a finished job exits without
the interpreter's teardown (bench/startup.py measures the time).

The rules learn what they need of the defenses and attacks from their registries' names and
traits, without importing the classes; the tests below check that those agree with the classes."""

import subprocess
import sys
from dataclasses import fields

from conftest import planned_jobs, write_config

# Runs Snakemake's command line in this interpreter and reports, after it has finished, which
# heavy modules the parse imported.
_REPORTING_SNAKEMAKE = """
import atexit, sys
atexit.register(lambda: print("IMPORTED:", sorted(m for m in ("torch", "torchvision", "open_clip") if m in sys.modules),
                              file=sys.stderr))
from snakemake.cli import main
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_dry_run_plans_every_job_without_importing_torch(repo, tmp_path, tiny_config):
    tiny_config["metrics"]["lpips"] = False  # LPIPS' backbone file is checked for, not needed to plan
    config_file = write_config(tmp_path / "config.yaml", tiny_config)
    result = subprocess.run(
        [sys.executable, "-c", _REPORTING_SNAKEMAKE, "-n", "--snakefile", str(repo / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(config_file)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "IMPORTED: []" in result.stderr, result.stderr[-2000:]
    # the parse did the whole job: attacks planned against every defense setting, with the
    # public pool given to the adaptive attacks on GradientHide (registry traits)
    jobs = planned_jobs(result.stdout + result.stderr)
    attacked = {dict(part.split("=", 1) for part in wildcards.split(", "))["defense"]
                for rule, wildcards in jobs if rule == "attack"}
    assert attacked == {"none", "gradienthide", "pruning-fraction0.5", "pruning-fraction0.9", "dp", "soteria",
                        "precode", "mixup"}
    given_pool = {(job["attack"], job["defense"]) for job in _attack_jobs(result.stdout)
                  if "results/labels/public_pool.safetensors" in job["input"]}
    assert given_pool == {(attack, "gradienthide") for attack in ("adaptive", "adaptive_oracle", "adaptive_infer")}


def _attack_jobs(output: str) -> list[dict]:
    """Wildcards and the input line of every planned attack job."""
    jobs, block = [], None
    for line in output.splitlines():
        line = line.strip()
        if line.startswith(("rule ", "localrule ")):
            block = {} if line == "rule attack:" else None
        elif block is not None and line.startswith("input:"):
            block["input"] = line
        elif block is not None and line.startswith("wildcards:"):
            block.update(part.split("=", 1) for part in line[len("wildcards: "):].split(", "))
            jobs.append(block)
    return jobs


def test_registry_traits_are_the_classes_own():
    from gradienthide.attacks import ATTACKS
    from gradienthide.defenses import DEFENSES

    for registry in (DEFENSES, ATTACKS):
        for name in registry:
            cls = registry[name]
            assert cls.name == name
            for trait in registry.trait_names:
                assert registry.trait(name, trait) == getattr(cls, trait), (name, trait)


def test_schema_accepts_only_knobs_the_defenses_take():
    """The config check builds only the defenses that draw from the public pool; the others'
    blocks are checked by the schema alone, so every knob it accepts must be a field."""
    from gradienthide.config import load_schema
    from gradienthide.defenses import DEFENSES

    blocks = load_schema()["properties"]["defenses"]["properties"]
    for name in DEFENSES:
        knobs = set(blocks[name].get("properties", {})) - {"also"}
        assert knobs <= {field.name for field in fields(DEFENSES[name])}, name


def test_a_job_turns_on_deterministic_algorithms_without_importing_inductor():
    # torch.use_deterministic_algorithms imports torch._inductor.config (about 1.5 s per job)
    probe = ("import sys, torch\n"
             "from gradienthide.workflow import use_deterministic_algorithms\n"
             "use_deterministic_algorithms()\n"
             "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),\n"
             "      'torch._inductor' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.split() == ["True", "True", "False"], result.stdout + result.stderr


def test_an_evaluation_job_imports_neither_torchvision_nor_torchmetrics(tmp_path):
    # torchvision imports torch._dynamo (about 1.5 s), torchmetrics all its metrics (about 2 s
    # with torchvision): per evaluation job, of which the default run has 42. With LPIPS on,
    # the job still imports torchvision for LPIPS' AlexNet.
    probe = ("import sys, torch\n"
             "from gradienthide.stages import evaluate\n"
             "from gradienthide import draw_inference, metrics, perceptual, plots, semantic\n"
             "images = torch.rand(4, 1, 16, 16)\n"
             "metrics.image_metrics(images.flip(0), images)\n"
             f"plots.reconstruction_grid(images, images.flip(0), {str(tmp_path / 'grid.png')!r}, 'title')\n"
             "print(sorted(m for m in ('torchvision', 'torchmetrics', 'torch._dynamo', 'seaborn') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    assert (tmp_path / "grid.png").stat().st_size > 0


# A workflow script's whole life in a subprocess: run_stage with a stand-in for Snakemake's
# object, then the stage's last writes must be on disk although the process skips teardown.
_SCRIPT = """
import logging, sys
from types import SimpleNamespace
from gradienthide.workflow import run_stage

class Named(list):  # Snakemake's Namedlist: a list whose items also have names
    def __init__(self, **named):
        super().__init__(named.values())
        self._named = named
    def items(self):
        return self._named.items()

def stage(*, table, fail):
    if fail == "yes":
        raise ValueError("the stage failed")
    with open(table, "w") as handle:
        handle.write("done\\n")
    logging.getLogger("gradienthide").info("last line of the log")
    print("progress without a newline", end="", file=sys.stderr)

out = sys.argv[1]
snakemake = SimpleNamespace(
    rule="probe", threads=1, config={"seed": 0, "device": "cpu", "output_dir": out},
    log=[out + "/probe.log"], wildcards={}, input=Named(), output=Named(table=out + "/table.txt"),
    params=Named(fail=sys.argv[2]))
run_stage(snakemake, stage)
print("teardown skipped: this line never runs")
"""


def test_a_finished_job_exits_at_once_with_its_log_and_outputs_complete(tmp_path):
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), "no"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "never runs" not in result.stdout
    assert (tmp_path / "table.txt").read_text() == "done\n"
    log = (tmp_path / "probe.log").read_text()
    assert "last line of the log" in log and log.endswith("progress without a newline")


def test_a_failed_job_still_exits_nonzero_and_names_its_error(tmp_path):
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), "yes"], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 1
    assert "gradienthide: rule probe failed: ValueError: the stage failed" in result.stderr
    assert "ValueError: the stage failed" in (tmp_path / "probe.log").read_text()
    assert not (tmp_path / "table.txt").exists()
