"""The whole DAG through Snakemake on the tiny config, in a temporary directory."""

import copy
import re

import pandas as pd
import pytest
import torch

from conftest import planned_jobs, run_snakemake, write_config
from gradienthide import artifacts, dumps

pytestmark = pytest.mark.pipeline


def test_outputs_of_every_stage(finished_run):
    workdir, _, config = finished_run
    results = workdir / "results"
    every_upload = artifacts.load_table(results / "report" / "metrics.parquet")
    # the real uploads here; the privacy probes' rows (dlg on none and gradienthide, 1 upload of 4 images):
    # test_probe_uploads_are_dumped_attacked_and_evaluated_per_batch_size
    metrics = every_upload[every_upload["uploads"] == "deployed"]
    assert len(every_upload) == len(metrics) + 2 * len(config["seeds"]) * 1 * 4
    runs = {"none", "gradienthide", "pruning-fraction0.5", "pruning-fraction0.9", "dp", "soteria", "precode", "mixup"}
    # ig: 8 defense settings, adaptive, adaptive_oracle and adaptive_infer: gradienthide, dlg: none and
    # gradienthide, idlg: none; x 2 replicates x 1 round x 3 clients x batch of 2 images
    seeds = config["seeds"]
    assert len(metrics) == (8 + 1 + 1 + 1 + 2 + 1) * len(seeds) * 1 * 3 * 2
    assert (metrics["private_batch"] == 2).all()  # a deployed upload's images: 1 local step of 2
    assert set(metrics["defense"]) == runs and set(metrics["seed"]) == set(seeds)
    assert set(metrics["attack"]) == {"ig", "adaptive", "adaptive_oracle", "adaptive_infer", "dlg", "idlg"}
    inferred = metrics[metrics["attack"] == "adaptive_infer"]
    assert inferred["draw_recall"].between(0, 1).all() and inferred["draw_precision"].between(0, 1).all()
    assert metrics.loc[metrics["attack"] != "adaptive_infer", "draw_recall"].isna().all()
    assert set(metrics.loc[metrics["attack"].str.startswith("adaptive"), "defense"]) == {"gradienthide"}
    assert set(metrics.loc[metrics["attack"] == "dlg", "defense"]) == {"none", "gradienthide"}
    recovered = metrics[metrics["attack"].isin(["adaptive", "dlg", "idlg"])]
    assert set(recovered["label_source"]) == {"recovered"} and recovered["label_correct"].isin([0.0, 1.0]).all()
    assert metrics.loc[metrics["attack"] == "ig", "label_correct"].isna().all()  # labels were known
    assert set(metrics["public_labeler"]) == {"oracle"}
    assert metrics["psnr"].notna().all() and metrics["ssim"].between(-1, 1).all()
    assert metrics["lpips"].notna().all() and (metrics["lpips"] >= 0).all()
    assert metrics["semantic_match"].isin([0.0, 1.0]).all()
    assert set(metrics["semantic_reference"]) == {"no-defense model (none)"}
    assert pd.read_csv(results / "report" / "metrics.csv").shape == every_upload.shape
    every_cell = pd.read_csv(results / "report" / "summary.csv")
    summary = every_cell[every_cell["uploads"] == "deployed"]
    assert len(every_cell) == len(summary) + 2  # and one per setting dlg runs against on the probes
    assert {"psnr_mean", "psnr_low", "psnr_high", "ssim_mean", "ssim_low", "ssim_high", "lpips_mean", "lpips_low",
            "lpips_high", "semantic_match", "label_accuracy", "semantic_reference", "accuracy_mean", "accuracy_low",
            "accuracy_high", "accuracy_interval", "psnr_diff_mean", "psnr_diff_low", "psnr_diff_high",
            "ssim_diff_mean", "share_worse_for_attacker", "budget_limited", "psnr_rise_last_doubling",
            "frontier"} <= set(summary.columns)
    assert len(summary) == 8 + 1 + 1 + 1 + 2 + 1  # one row per (defense setting, attack, round)
    assert (summary["replicates"] == len(seeds)).all() and (summary["images"] == len(seeds) * 3 * 2).all()
    assert ((summary["psnr_low"] <= summary["psnr_mean"]) & (summary["psnr_mean"] <= summary["psnr_high"])).all()
    assert set(summary["frontier"]) <= {"dominated", "frontier", "undecided"}
    paired = summary[summary["defense"] != "none"]
    assert paired["psnr_diff_mean"].notna().all() and set(paired["paired_reference"]) == {"none under ig",
                                                                                       "none under dlg"}
    accuracy = artifacts.load_table(results / "report" / "accuracy.parquet")
    assert len(accuracy) == 8 * len(seeds) * config["training"]["rounds"]
    assert accuracy.loc[(accuracy["defense"] == "dp") & (accuracy["seed"] == 0), "epsilon"].is_monotonic_increasing
    frontier = pd.read_csv(results / "report" / "privacy_utility.csv")
    frontier = frontier[frontier["uploads"] == "deployed"]
    assert set(frontier["defense"]) == runs and (frontier["frontier"] == "frontier").any()
    assert set(frontier.loc[frontier["defense_name"] == "pruning", "setting"]) == {"fraction0.5", "fraction0.9"}
    for figure in ("psnr_by_defense.png", "accuracy_by_round.png", "privacy_utility.png", "budget_curves.png",
                   "reconstructions.png"):
        assert (results / "report" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    index = artifacts.load_table(results / "train" / "gradienthide" / "seed0" / "round2" / "updates.parquet")
    assert len(index) == 3 and index["sha256"].str.len().eq(64).all()
    public_steps = config["defenses"]["gradienthide"]["public_steps"]
    draws = dumps.read_public_draws(results / "train" / "gradienthide" / "seed0" / "round2" / "public_draws.parquet",
                                    [0, 1, 2])
    pool_size = config["data"]["public_pool_size"]
    assert all(d.shape == (public_steps, min(config["defenses"]["gradienthide"]["public_batch_size"], pool_size))
               and d.max() < pool_size for d in draws)
    assert artifacts.load_table(results / "train" / "none" / "seed1" / "round2" / "public_draws.parquet").empty
    assert (results / "logs" / "train" / "gradienthide" / "seed1.log").stat().st_size > 0
    assert (results / "attack" / "none" / "ig" / "seed1" / "round2" / "deployed" / "shard0" / "reconstructions.png").exists()


def test_every_attack_job_scores_its_budget_checkpoints(finished_run):
    from gradienthide.attacks.optimization import budget_checkpoints

    workdir, _, config = finished_run
    results = workdir / "results"
    budget = artifacts.load_table(results / "report" / "budget.parquet")
    metrics = artifacts.load_table(results / "report" / "metrics.parquet")
    for attack, settings in config["attacks"].items():
        assert sorted(budget.loc[budget["attack"] == attack, "iterations"].unique()) == \
            budget_checkpoints(settings["iterations"]), attack
    # the last checkpoint is the reconstruction the metrics table scores
    keys = ["defense", "attack", "seed", "round", "uploads", "position", "image"]
    final = budget[budget["budget_fraction"] == 1.0].merge(metrics, on=keys, suffixes=("", "_final"))
    assert len(final) == len(metrics) and (final["psnr"] - final["psnr_final"]).abs().max() < 1e-5
    curves = pd.read_csv(results / "report" / "budget_curves.csv")
    assert {"psnr_mean", "psnr_low", "psnr_high", "iterations"} <= set(curves.columns)


def test_replicates_attack_the_same_private_images_across_defenses_and_other_images_across_seeds(finished_run):
    workdir, _, config = finished_run
    results = workdir / "results"
    runs = ("none", "gradienthide", "dp", "mixup", "precode")
    for seed in config["seeds"]:
        batches = [dumps.read_private_batches(results / "train" / run / f"seed{seed}" / "round2" / "private.safetensors")
                   for run in runs]
        for other in batches[1:]:
            assert other.keys() == batches[0].keys()
            assert all(torch.equal(other[c][0], batches[0][c][0]) for c in other)
    metrics = artifacts.load_table(results / "report" / "metrics.parquet")
    digests = {seed: set(metrics.loc[metrics["seed"] == seed, "image_digest"]) for seed in config["seeds"]}
    assert digests[0] != digests[1]  # another replicate attacks other draws of the same clients' data
    for seed in config["seeds"]:  # every defense's rows of a replicate carry the same images
        per_defense = metrics[(metrics["seed"] == seed) & (metrics["attack"] == "ig")].groupby("defense")["image_digest"]
        assert len({tuple(sorted(d)) for _, d in per_defense}) == 1


def test_adding_a_seed_plans_only_that_seeds_jobs(finished_run, repo):
    workdir, _, config = finished_run
    config = copy.deepcopy(config)
    config["seeds"] = [*config["seeds"], 7]
    more = write_config(workdir / "more_seeds.yaml", config)
    jobs = planned_jobs(run_snakemake(repo, workdir, more, "--dry-run").stdout)
    replicate_rules = {"train", "attack", "attack_probes", "evaluate", "evaluate_probes"}
    per_replicate = {(rule, wildcards) for rule, wildcards in jobs if rule in replicate_rules}
    assert per_replicate and all("seed=7" in wildcards for _, wildcards in per_replicate)
    assert len({w for r, w in per_replicate if r == "train"}) == 8  # every defense setting, in the new replicate only
    assert {rule for rule, _ in jobs} - replicate_rules == {"aggregate", "figures", "psnr_by_batch_size", "all"}


def test_second_run_does_nothing(finished_run, repo):
    workdir, config_file, _ = finished_run
    result = run_snakemake(repo, workdir, config_file, "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_report_archive_holds_the_figures_and_tables(finished_run, repo):
    import zipfile

    workdir, config_file, _ = finished_run
    archive = workdir / "report.zip"
    run_snakemake(repo, workdir, config_file, "--report", str(archive))
    names = {name.rsplit("/", 1)[-1] for name in zipfile.ZipFile(archive).namelist()}
    assert {"report.html", "summary.csv", "privacy_utility.csv", "psnr_by_defense.png", "accuracy_by_round.png",
            "privacy_utility.png", "reconstructions.png"} <= names


def test_changing_a_defense_parameter_reruns_only_that_defense(finished_run, repo):
    workdir, _, config = finished_run
    config = copy.deepcopy(config)
    config["defenses"]["gradienthide"]["public_lr"] = 0.05
    changed = write_config(workdir / "changed.yaml", config)
    jobs = planned_jobs(run_snakemake(repo, workdir, changed, "--dry-run").stdout)
    rules = {rule for rule, _ in jobs}
    per_setting = {"train", "attack", "attack_probes", "evaluate", "evaluate_probes"}
    assert rules == per_setting | {"aggregate", "figures", "psnr_by_batch_size", "all"}
    assert all("defense=gradienthide" in wildcards for rule, wildcards in jobs if rule in per_setting)
    assert {("train", f"defense=gradienthide, seed={seed}") for seed in config["seeds"]} <= jobs


def test_only_adaptive_attacks_on_gradienthide_read_the_public_pool_and_only_the_oracle_the_draws(finished_run, repo):
    workdir, config_file, _ = finished_run
    result = run_snakemake(repo, workdir, config_file, "--dry-run", "--forceall")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout)
    readers = [b for b in blocks if b.lstrip().startswith("rule attack:") and "public_pool" in b.split("output:")[0]]
    # the attacked round's shard in both replicates, for adaptive, adaptive_oracle and adaptive_infer
    assert len(readers) == 6
    assert all(re.search(r"attack=adaptive(_oracle|_infer)?,", b) and "defense=gradienthide," in b for b in readers)
    # the clients' own public draws: only the upper bound is given them
    draw_readers = [b for b in blocks if b.lstrip().startswith("rule attack:") and "public_draws" in b.split("output:")[0]]
    assert len(draw_readers) == 2 and all("attack=adaptive_oracle," in b for b in draw_readers)
    # adaptive_infer estimates the draws: only its evaluation reads the recorded ones, to score it
    scorers = [b for b in blocks if b.lstrip().startswith("rule evaluate:") and "public_draws" in b.split("output:")[0]]
    assert len(scorers) == 2 and all("attack=adaptive_infer," in b for b in scorers)


def test_attack_jobs_never_read_private_data(finished_run, repo):
    workdir, config_file, _ = finished_run
    result = run_snakemake(repo, workdir, config_file, "--dry-run", "--forceall")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout)
    attack_blocks = [b for b in blocks if b.lstrip().startswith("rule attack:")]
    assert attack_blocks and all("private" not in b.split("output:")[0] for b in attack_blocks)
    # the privacy probes' attack jobs too: they read the probe's own dump, never its private images
    probe_blocks = [b for b in blocks if b.lstrip().startswith("rule attack_probes:")]
    assert len(probe_blocks) == 2 * 2  # dlg on none and gradienthide, in both replicates
    assert all("/round2/batch4/updates.safetensors" in b.split("output:")[0] and "private" not in b.split("output:")[0]
               for b in probe_blocks)
    assert not any("uploads=batch4" in b for b in attack_blocks)
    evaluations = [b for b in blocks if b.lstrip().startswith("rule evaluate_probes:")]
    assert len(evaluations) == 4 and all("/round2/batch4/private.safetensors" in b for b in evaluations)


def test_probe_uploads_are_dumped_attacked_and_evaluated_per_batch_size(finished_run):
    from gradienthide.config import validate_config

    workdir, _, config = finished_run
    results = workdir / "results"
    probes = validate_config(copy.deepcopy(config))["attack"]["probes"]  # with its defaults
    batch = probes["batch_sizes"][0]
    for seed in config["seeds"]:
        deployed = dumps.read_private_batches(results / "train" / "none" / f"seed{seed}" / "round2" / "private.safetensors")
        first = {}
        for run in ("none", "gradienthide", "dp", "precode"):
            directory = results / "train" / run / f"seed{seed}" / "round2" / f"batch{batch}"
            # a dump like the real uploads', its global model carrying the probe's protocol
            assert {p.name for p in directory.iterdir()} >= set(dumps.ROUND_FILES.values())
            protocol = dumps.read_protocol(directory / "global_model.safetensors")
            assert protocol.batch_size == batch and protocol.local_steps == probes["local_steps"]
            assert protocol.local_epochs is None
            index = artifacts.load_table(directory / "updates.parquet")
            assert len(index) == probes["uploads"] and (index["num_samples"] == batch).all()
            private = dumps.read_private_batches(directory / "private.safetensors")
            assert set(private) <= set(deployed)  # made by the round's first sampled clients
            assert all(images.shape[0] == batch for images, _ in private.values())
            if not first:
                first = private
            for client, (images, labels) in private.items():  # the same private images under every defense
                assert torch.equal(images, first[client][0]) and torch.equal(labels, first[client][1])
            model = artifacts.load_tensors(directory / "global_model.safetensors")
            received = artifacts.load_tensors(results / "train" / run / f"seed{seed}" / "round2" / "global_model.safetensors")
            assert model.keys() == received.keys() and all(torch.equal(model[k], received[k]) for k in model)
    metrics = artifacts.load_table(results / "report" / "metrics.parquet")
    probed = metrics[metrics["uploads"] == f"batch{batch}"]
    assert set(probed["attack"]) == {"dlg"} and (probed["private_batch"] == batch).all()
    assert set(probed["defense"]) == {"none", "gradienthide"}
    assert len(probed) == 2 * len(config["seeds"]) * probes["uploads"] * batch
    assert (results / "attack" / "none" / "dlg" / "seed0" / "round2" / f"batch{batch}" / "shard0" / "metrics.parquet").exists()
    for seed in config["seeds"]:  # paired with none on the same images
        per_defense = probed[probed["seed"] == seed].groupby("defense")["image_digest"]
        assert len({tuple(sorted(d)) for _, d in per_defense}) == 1
    summary = pd.read_csv(results / "report" / "summary.csv")
    cells = ["defense", "attack", "round", "uploads"]
    assert not summary.duplicated(cells).any()
    assert len(summary) == len(metrics[cells].drop_duplicates())  # a row per (defense, attack, round, uploads)
    rows = summary[summary["uploads"] == f"batch{batch}"]
    assert len(rows) == 2 and (rows["private_batch"] == batch).all()
    assert rows.loc[rows["defense"] != "none", "psnr_diff_mean"].notna().all()  # paired with none's probes
    assert set(rows["frontier"]) <= {"dominated", "frontier", "undecided"}
    assert (results / "report" / "psnr_by_batch_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_attack_probes_gives_each_shard_what_an_attack_job_of_its_own_gives(finished_run, tmp_path):
    """One attack_probes job inverts a round's probe shards in turn: each gets the bytes an attack
    job of its own writes (here the probe shard and a shard of the real uploads, each redone
    alone), whatever state the global generators were left in; the pipeline's probe job too."""
    from gradienthide.config import attack_params, defense_runs, validate_config
    from gradienthide.stages.attack import attack_probe_shards, attack_shard
    from gradienthide.workflow import seed_global_generators

    workdir, _, config = finished_run
    validated = validate_config(copy.deepcopy(config))
    run = defense_runs(validated)["gradienthide"]
    round_dir = workdir / "results" / "train" / "gradienthide" / "seed0" / "round2"
    files = {what: [str(directory / name) for directory in (round_dir / "batch4", round_dir)]
             for what, name in dumps.ROUND_FILES.items()}
    shared = dict(attack="dlg", attack_params=attack_params(validated, "dlg"), model_config=validated["model"],
                  defense_name=run.defense, defense_params=run.params, seed=0)
    together = [tmp_path / "probe.safetensors", tmp_path / "deployed.safetensors"]
    torch.manual_seed(12345)  # not the state a job starts from
    attack_probe_shards(**shared, global_model=files["global_model"], updates=files["updates"], index=files["index"],
                        probe_shards=[{"uploads": "batch4", "positions": [0]}, {"uploads": "deployed", "positions": [0]}],
                        probe_uploads=["batch4", "deployed"],
                        reconstructions=[str(path) for path in together])
    for k, path in enumerate(together):
        alone = tmp_path / f"alone{k}.safetensors"
        seed_global_generators(0)  # as a job of its own starts
        attack_shard(**shared, global_model=files["global_model"][k], updates=files["updates"][k],
                     index=files["index"][k], positions=[0], reconstructions=str(alone))
        assert path.read_bytes() == alone.read_bytes(), path.name
    in_pipeline = workdir / "results" / "attack" / "gradienthide" / "dlg" / "seed0" / "round2" / "batch4" / "shard0"
    assert (in_pipeline / "reconstructions.safetensors").read_bytes() == together[0].read_bytes()

def test_shard_grid_captions_originals_with_class_names_and_reconstructions_with_psnr(finished_run, tmp_path,
                                                                                     monkeypatch):
    from gradienthide import plots
    from gradienthide.config import resolve_metrics, validate_config
    from gradienthide.stages.evaluate import evaluate_shard

    workdir, _, config = finished_run
    results = workdir / "results"
    validated = validate_config(copy.deepcopy(config))
    drawn = {}
    draw = plots.reconstruction_grid
    monkeypatch.setattr(plots, "reconstruction_grid", lambda *args, **kwargs: (drawn.update(kwargs), draw(*args, **kwargs)))
    shard = results / "attack" / "none" / "ig" / "seed0" / "round2" / "deployed" / "shard0"
    evaluate_shard(reconstructions=str(shard / "reconstructions.safetensors"),
                   private=str(results / "train" / "none" / "seed0" / "round2" / "private.safetensors"),
                   identity={"defense": "none", "attack": "ig", "seed": 0, "round": 2, "uploads": "deployed", "shard": 0},
                   metrics=str(tmp_path / "metrics.parquet"), budget=str(tmp_path / "budget.parquet"),
                   grid=str(tmp_path / "grid.png"), metric_settings={**resolve_metrics(validated), "lpips": False},
                   model_config=validated["model"], clip=validated["labels"]["clip"],
                   reference_model=str(results / "train" / "none" / "seed0" / "final_model.safetensors"),
                   dataset=str(results / "data" / "dataset.safetensors"))
    scored = artifacts.load_table(tmp_path / "metrics.parquet")
    class_names = artifacts.load_json_metadata(results / "data" / "dataset.safetensors", "class_names")
    assert drawn["original_captions"] == [class_names[label] for label in scored["label"]]
    assert drawn["reconstruction_captions"] == [f"{value:.1f} dB" for value in scored["psnr"]]
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
