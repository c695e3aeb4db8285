"""Where the pipeline's files live: the artifacts' names and the paths the rules build with
them (wildcards as values). Kept apart from gradienthide.dumps, which reads and writes them,
so that parsing the workflow imports neither torch nor pandas.

Every training run and attack job belongs to one replicate, named by its seed (`seeds:` in
the config): its files sit under `seed<N>/` of the defense setting, so adding a replicate to a
finished run only adds files.
"""

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
    "budget": "budget_metrics.parquet",
    "grid": "reconstructions.png",
}


# --- where things live (the rules use these, with wildcards as values) -----------------------

def train_dir(output_dir, *, defense, seed) -> str:
    """One training run: a defense setting in one replicate."""
    return f"{output_dir}/train/{defense}/seed{seed}"


def round_dir(output_dir, *, defense, seed, round_number) -> str:
    return f"{train_dir(output_dir, defense=defense, seed=seed)}/round{round_number}"


def round_file(output_dir, *, defense, seed, round_number, what: str) -> str:
    """One of ROUND_FILES of a training run's attacked round."""
    return f"{round_dir(output_dir, defense=defense, seed=seed, round_number=round_number)}/{ROUND_FILES[what]}"


def shard_dir(output_dir, *, defense, attack, seed, round_number, shard) -> str:
    return f"{output_dir}/attack/{defense}/{attack}/seed{seed}/round{round_number}/shard{shard}"


def shard_file(output_dir, *, defense, attack, seed, round_number, shard, what: str) -> str:
    """One of SHARD_FILES of an attack job."""
    return (f"{shard_dir(output_dir, defense=defense, attack=attack, seed=seed, round_number=round_number, shard=shard)}"
            f"/{SHARD_FILES[what]}")
