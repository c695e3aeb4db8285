"""The paper configs plan the jobs their settings imply.

The config check before any job (gradienthide.config.preflight) insists that the datasets and
the CLIP weights a config names are on disk, so that a dry run on a cluster's login node says
what is missing before anything is submitted. CI has neither CIFAR nor CLIP: the test points
the config at stand-ins with the file names the check looks for (empty files, never read by a
dry run) and otherwise keeps every setting of the paper config.
"""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import planned_jobs, run_snakemake, write_config
from gradienthide import sources
from gradienthide.config import attack_targets, defense_runs, shard_count, validate_config

PAPER_CONFIGS = ["paper-cifar10", "paper-cifar100", "paper-tinyimagenet"]


def _stand_in_root(dataset: str, root: Path) -> str:
    """A directory that passes the source's file check, with empty files of the expected names."""
    source = sources.get(dataset, "data")
    if dataset in ("cifar10", "cifar100"):
        folder = root / source.torchvision_class().base_folder
        folder.mkdir(parents=True)
        for name in source.expected_files():
            (folder / name).touch()
    elif dataset == "tinyimagenet":
        folder = root / source.FOLDER
        for directory in ("train", "val/images"):
            (folder / directory).mkdir(parents=True)
        for name in ("wnids.txt", "words.txt", "val/val_annotations.txt"):
            (folder / name).touch()
    else:
        raise AssertionError(f"no stand-in for {dataset}")
    assert source.missing_files({"dataset": dataset, "root": str(root)}, "data") is None
    return str(root)


def _with_stand_ins(config: dict, tmp_path: Path) -> dict:
    config["data"]["root"] = _stand_in_root(config["data"]["dataset"], tmp_path / "private")
    config["public"]["root"] = _stand_in_root(config["public"]["dataset"], tmp_path / "public")
    clip_cache = tmp_path / "clip"
    clip_cache.mkdir()
    (clip_cache / config["labels"]["clip"]["pretrained"]).touch()  # a checkpoint file by its tag's name
    config["labels"]["clip"]["cache_dir"] = str(clip_cache)
    config["metrics"]["lpips_cache_dir"] = str(tmp_path / "no-lpips")
    return config


def _resources(output: str) -> dict[str, list[dict[str, str]]]:
    """The resources of every planned job, by rule, from a dry run's job listing."""
    jobs, rule = {}, None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = match.group(1)
        elif rule and line.strip().startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.strip()[len("resources:"):].split(", "))
            jobs.setdefault(rule, []).append({key.strip(): value.strip() for key, value in pairs})
    return jobs


def expected_jobs(config: dict) -> Counter:
    """Jobs per rule that follow from the config: a training job per defense setting (sweeps
    expanded), an attack and an evaluation job per (attack, targeted setting, round, shard)."""
    config = validate_config(config)
    runs = defense_runs(config)
    attacked = sum(attack_targets(config, attack, run) for attack in config["attacks"] for run in runs.values())
    per_attack_run = len(config["training"]["attack_rounds"]) * shard_count(config)
    return Counter({"train": len(runs), "attack": attacked * per_attack_run, "evaluate": attacked * per_attack_run,
                    "prepare_data": 1, "prepare_public": 1, "embed_public": 1, "label_public": 1,
                    "label_public_pool": 1, "label_quality": 1, "aggregate": 1, "figures": 1, "all": 1})


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_config_dry_run_plans_its_jobs(repo, tmp_path, name):
    with open(repo / "configs" / f"{name}.yaml") as handle:
        config = _with_stand_ins(yaml.safe_load(handle), tmp_path)
    config_file = write_config(tmp_path / "config.yaml", config)
    # through the SLURM profile, as on a cluster (a dry run submits nothing and needs no sbatch)
    result = run_snakemake(repo, tmp_path, config_file, "-n", "--profile", str(repo / "profiles" / "slurm"),
                           "--slurm-no-account")
    planned = Counter(rule for rule, _ in planned_jobs(result.stdout + result.stderr))

    expected = expected_jobs(config)
    assert {rule: planned[rule] for rule in expected} == dict(expected)
    # the wildcards too: every (setting, attack, round, shard) the config asks for, no other
    validated = validate_config(config)
    runs = defense_runs(validated)
    wanted = {(run, attack, str(r), str(s)) for attack in validated["attacks"] for run in runs
              if attack_targets(validated, attack, runs[run])
              for r in validated["training"]["attack_rounds"] for s in range(shard_count(validated))}
    attack_jobs = [dict(part.split("=", 1) for part in wildcards.split(", "))
                   for rule, wildcards in planned_jobs(result.stdout + result.stderr) if rule == "attack"]
    assert {(job["defense"], job["attack"], job["round"], job["shard"]) for job in attack_jobs} == wanted
    # training and attacks each get a GPU, and memory for Tiny-ImageNet's images as float32 (5.4 GB) and more
    requested = _resources(result.stdout + result.stderr)
    for rule in ("train", "attack"):
        assert requested[rule] and all(r.get("gpu") == "1" for r in requested[rule]), rule
    assert all(int(r["mem_mb"]) >= 16000 for r in requested["train"] + requested["attack"])
    print(f"{name}: {sum(planned.values())} jobs; " + ", ".join(f"{rule} {count}" for rule, count in sorted(planned.items())))


def test_paper_configs_without_their_files_name_what_is_missing(repo, tmp_path):
    """Without the stand-ins the config check refuses before any job, naming the directory."""
    with open(repo / "configs" / "paper-cifar10.yaml") as handle:
        config = yaml.safe_load(handle)
    config["data"]["root"] = str(tmp_path / "nowhere")
    config_file = write_config(tmp_path / "config.yaml", config)
    result = run_snakemake(repo, tmp_path, config_file, "-n", check=False)
    assert result.returncode != 0
    assert f"data.root: CIFAR-10 not found: expected the directory {tmp_path / 'nowhere'}" in result.stdout + result.stderr


def test_cifar10_verdict_config_dry_run_plans_probe_jobs_per_batch_size(repo, tmp_path, cifar_subset):
    """configs/cifar10_verdict.yaml plans, per replicate, a training job per defense setting, and
    per (attack, targeted setting, round) an attack_probes job that inverts every probe batch
    size's shards and an evaluate_probes job that scores them; the real uploads are not attacked
    (attack.deployed: false). Through the SLURM profile, each attack_probes job asks for a GPU."""
    from gradienthide.config import attacked_uploads_of

    with open(repo / "configs" / "cifar10_verdict.yaml") as handle:
        config = yaml.safe_load(handle)
    config["data"]["path"] = str(cifar_subset)
    config.setdefault("metrics", {})["lpips_cache_dir"] = str(tmp_path / "no-lpips")
    config_file = write_config(tmp_path / "config.yaml", config)
    result = run_snakemake(repo, tmp_path, config_file, "-n", "--profile", str(repo / "profiles" / "slurm"),
                           "--slurm-no-account")
    jobs = planned_jobs(result.stdout + result.stderr)
    planned = Counter(rule for rule, _ in jobs)

    validated = validate_config(config)
    runs, seeds, rounds = defense_runs(validated), validated["seeds"], validated["training"]["attack_rounds"]
    assert validated["attack"]["deployed"] is False and validated["attack"]["probes"]["batch_sizes"] == [1, 4, 16]
    wanted = {(run, attack, str(seed), str(r), uploads, str(s))
              for attack in validated["attacks"] for run in runs if attack_targets(validated, attack, runs[run])
              for seed in seeds for r in rounds for uploads in attacked_uploads_of(validated, attack)
              for s in range(shard_count(validated, uploads))}
    assert {uploads for *_, uploads, _ in wanted} == {"batch1", "batch4", "batch16"}
    probe_jobs = [dict(part.split("=", 1) for part in wildcards.split(", ")) for rule, wildcards in jobs
                  if rule == "attack_probes"]
    assert sorted((j["defense"], j["attack"], j["seed"], j["round"]) for j in probe_jobs) == \
        sorted({job[:4] for job in wanted})
    evaluations = [dict(part.split("=", 1) for part in wildcards.split(", ")) for rule, wildcards in jobs
                   if rule == "evaluate_probes"]
    assert sorted((j["defense"], j["attack"], j["seed"], j["round"]) for j in evaluations) == \
        sorted({job[:4] for job in wanted})
    assert planned["train"] == len(runs) * len(seeds)
    assert planned["attack"] == planned["evaluate"] == 0 and planned["psnr_by_batch_size"] == 1
    # every probe shard is an output of one attack_probes and one evaluate_probes job
    outputs = " ".join(line for line in (result.stdout + result.stderr).splitlines() if line.strip().startswith("output:"))
    for defense, attack, seed, r, uploads, s in wanted:
        for name in ("reconstructions.safetensors", "metrics.parquet"):
            assert outputs.count(f"/attack/{defense}/{attack}/seed{seed}/round{r}/{uploads}/shard{s}/{name}") == 1
    requested = _resources(result.stdout + result.stderr)["attack_probes"]
    assert all(r.get("gpu") == "1" and int(r["mem_mb"]) >= 16000 for r in requested)
    print("cifar10_verdict: " + ", ".join(f"{rule} {count}" for rule, count in sorted(planned.items()))
          + f"; {sum(planned.values())} jobs")
