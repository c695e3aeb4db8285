"""Where the pipeline's files live: the artifacts' names and the paths the rules build with
them (wildcards as values). Kept apart from gradienthide.dumps, which reads and writes them,
so that parsing the workflow imports neither torch nor pandas.

Every training run and attack job belongs to one replicate, named by its seed (`seeds:` in
the config): its files sit under `seed<N>/` of the defense setting, so adding a replicate to a
finished run only adds files.

Every attack job inverts one set of uploads of a round, named by its uploads identifier:
`deployed` (the sampled clients' real uploads) or `batch<b>` (the privacy probes of private
batch size b, attack.probes), a path component of the attack's files.
"""

DEPLOYED = "deployed"  # the uploads identifier of the sampled clients' real uploads; probes are `batch<b>`

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


def uploads_dir(output_dir, *, defense, seed, round_number, uploads) -> str:
    """The dump of one set of uploads of an attacked round: the sampled clients' real uploads
    (`deployed`) in the round's directory, each probe batch size's (`batch<b>`) in a directory
    of its own there. Each holds the ROUND_FILES, its global model carrying its protocol."""
    directory = round_dir(output_dir, defense=defense, seed=seed, round_number=round_number)
    return directory if uploads == DEPLOYED else f"{directory}/{uploads}"


def uploads_file(output_dir, *, defense, seed, round_number, uploads, what: str) -> str:
    """One of ROUND_FILES of a set of uploads (uploads_dir)."""
    directory = uploads_dir(output_dir, defense=defense, seed=seed, round_number=round_number, uploads=uploads)
    return f"{directory}/{ROUND_FILES[what]}"


def shard_dir(output_dir, *, defense, attack, seed, round_number, shard, uploads=DEPLOYED) -> str:
    return f"{output_dir}/attack/{defense}/{attack}/seed{seed}/round{round_number}/{uploads}/shard{shard}"


def shard_file(output_dir, *, defense, attack, seed, round_number, shard, what: str, uploads=DEPLOYED) -> str:
    """One of SHARD_FILES of an attack job."""
    return (f"{shard_dir(output_dir, defense=defense, attack=attack, seed=seed, round_number=round_number, shard=shard, uploads=uploads)}"
            f"/{SHARD_FILES[what]}")
