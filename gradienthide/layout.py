"""Where the pipeline's files live: the artifacts' names and the paths the rules build with
them (wildcards as values). Kept apart from gradienthide.dumps, which reads and writes them,
so that parsing the workflow imports neither torch nor pandas."""

ROUND_FILES = {
    "global_model": "global_model.safetensors",
    "updates": "updates.safetensors",
    "index": "updates.parquet",
    "private": "private.safetensors",
    "public_draws": "public_draws.parquet",
}
SHARD_FILES = {
    "reconstructions": "reconstructions.safetensors",
    "metrics": "metrics.parquet",
    "grid": "reconstructions.png",
}


# --- where things live (the rules use these, with wildcards as values) -----------------------

def train_dir(output_dir, defense) -> str:
    return f"{output_dir}/train/{defense}"


def round_dir(output_dir, defense, round_number) -> str:
    return f"{output_dir}/train/{defense}/round{round_number}"


def round_file(output_dir, defense, round_number, what: str) -> str:
    """One of ROUND_FILES of a training run's attacked round."""
    return f"{round_dir(output_dir, defense, round_number)}/{ROUND_FILES[what]}"


def shard_dir(output_dir, defense, attack, round_number, shard) -> str:
    return f"{output_dir}/attack/{defense}/{attack}/round{round_number}/shard{shard}"


def shard_file(output_dir, defense, attack, round_number, shard, what: str) -> str:
    """One of SHARD_FILES of an attack job."""
    return f"{shard_dir(output_dir, defense, attack, round_number, shard)}/{SHARD_FILES[what]}"
