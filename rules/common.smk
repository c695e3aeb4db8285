# Paths and settings shared by the rule files. File names come from gradienthide.dumps.

import sys

from gradienthide import dumps, perceptual

DATASET = f"{OUT}/data/dataset.safetensors"
SPLITS = f"{OUT}/data/splits.parquet"
PUBLIC_LABELS = f"{OUT}/labels/public_labels.parquet"
PUBLIC_POOL = f"{OUT}/labels/public_pool.safetensors"
METRICS = gh_config.resolve_metrics(config)
if config["metrics"]["lpips"] == "auto" and not METRICS["lpips"]:
    print(f"Note: LPIPS is not computed: {perceptual.backbone_path(config['metrics']['lpips_cache_dir'])} is absent "
          "(README, 'LPIPS'); the lpips column stays empty.", file=sys.stderr)
SEMANTIC_REFERENCE_MODEL = (f"{dumps.train_dir(OUT, 'none')}/final_model.safetensors"
                            if METRICS["semantic_reference"] == "no_defense" else [])
USES_PUBLIC_POOL = any(gh_config.uses_public_pool(run) for run in RUNS.values())


def attack_is_given(need, attack, run_id):
    """Whether `attack` is given a defense's public artifact: `need` is the attack's declared
    need (needs_public_pool or needs_public_draws), and the defense must take public steps."""
    from gradienthide.attacks import ATTACKS

    return getattr(ATTACKS[attack], need) and gh_config.uses_public_pool(RUNS[run_id])


def round_file(what, defense="{defense}", round_number="{round}"):
    return dumps.round_file(OUT, defense, round_number, what)


def shard_file(what, defense="{defense}", attack="{attack}", round_number="{round}", shard="{shard}"):
    return dumps.shard_file(OUT, defense, attack, round_number, shard, what)
