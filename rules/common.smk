# Paths and settings shared by the rule files.

import sys

from gradienthide import perceptual

DATASET = f"{OUT}/data/dataset.safetensors"
SPLITS = f"{OUT}/data/splits.parquet"
PUBLIC_LABELS = f"{OUT}/labels/public_labels.parquet"
PUBLIC_POOL = f"{OUT}/labels/public_pool.safetensors"
METRICS = gh_config.resolve_metrics(config)
if config["metrics"]["lpips"] == "auto" and not METRICS["lpips"]:
    print(f"Note: LPIPS is not computed: {perceptual.backbone_path(config['metrics']['lpips_cache_dir'])} is absent "
          "(README, 'LPIPS'); the lpips column stays empty.", file=sys.stderr)
SEMANTIC_REFERENCE_MODEL = f"{OUT}/train/none/final_model.safetensors" if METRICS["semantic_reference"] == "no_defense" else []
USES_PUBLIC_POOL = any(gh_config.uses_public_pool(run) for run in RUNS.values())


def attack_models_public_steps(attack, run_id):
    """An adaptive attack on a defense with public steps reads the public pool."""
    from gradienthide.attacks import ATTACKS

    return ATTACKS[attack].needs_public_pool and gh_config.uses_public_pool(RUNS[run_id])


def attack_reads_public_draws(attack, run_id):
    """Only the adaptive_oracle upper bound, on a defense with public steps, reads the clients' draws."""
    from gradienthide.attacks import ATTACKS

    return ATTACKS[attack].needs_public_draws and gh_config.uses_public_pool(RUNS[run_id])


def train_dir(defense):
    return f"{OUT}/train/{defense}"


def round_dir(defense, round_number):
    return f"{OUT}/train/{defense}/round{round_number}"


def shard_dir(defense, attack, round_number, shard):
    return f"{OUT}/attack/{defense}/{attack}/round{round_number}/shard{shard}"


ROUND_FILES = ("global_model.safetensors", "updates.safetensors", "updates.parquet", "private.safetensors",
               "public_draws.parquet")
