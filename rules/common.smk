# Paths shared by the rule files.

DATASET = f"{OUT}/data/dataset.safetensors"
SPLITS = f"{OUT}/data/splits.parquet"
PUBLIC_LABELS = f"{OUT}/labels/public_labels.parquet"
USES_PUBLIC_POOL = any(gh_config.uses_public_pool(run) for run in RUNS.values())


def train_dir(defense):
    return f"{OUT}/train/{defense}"


def round_dir(defense, round_number):
    return f"{OUT}/train/{defense}/round{round_number}"


def shard_dir(defense, attack, round_number, shard):
    return f"{OUT}/attack/{defense}/{attack}/round{round_number}/shard{shard}"


ROUND_FILES = ("global_model.safetensors", "updates.safetensors", "updates.parquet", "private.safetensors")
