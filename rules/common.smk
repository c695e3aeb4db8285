# Paths and settings shared by the rule files. File names come from gradienthide.layout.

import sys

from gradienthide import layout, manifest, perceptual

DATASET = f"{OUT}/data/dataset.safetensors"
SPLITS = f"{OUT}/data/splits.parquet"
PUBLIC_LABELS = f"{OUT}/labels/public_labels.parquet"
PUBLIC_POOL = f"{OUT}/labels/public_pool.safetensors"
METRICS = gh_config.resolve_metrics(config)
if config["metrics"]["lpips"] == "auto" and not METRICS["lpips"]:
    print(f"Note: LPIPS is not computed: {perceptual.backbone_path(config['metrics']['lpips_cache_dir'])} is absent "
          "(docs/datasets.md, 'LPIPS'); the lpips column stays empty.", file=sys.stderr)
# the no-defense run's final model of the evaluated replicate
SEMANTIC_REFERENCE_MODEL = (f"{layout.train_dir(OUT, defense='none', seed='{seed}')}/final_model.safetensors"
                            if METRICS["semantic_reference"] == "no_defense" else [])
USES_PUBLIC_POOL = any(gh_config.uses_public_pool(run) for run in RUNS.values())

# Files outside the output directory that results depend on are inputs of the jobs that read
# them, so replacing one reruns those jobs and what follows (Snakemake compares modification
# times: no file is hashed when the workflow is parsed; each job records their sha256 in the
# run manifest). A dataset directory is fingerprinted (names, sizes, times) into a parameter,
# since a directory's own time does not change when a file inside it is replaced.
DATA_FILE = os.path.expanduser(config["data"]["path"]) if config["data"]["dataset"] == "npz" else []


def _root_params(section):
    """{<section>_root_fingerprint: ...} for a dataset directory (data.root, public.root); none
    when torchvision downloads into it (it checks its files' md5 itself, and a fingerprint taken
    before the download would rerun everything after it)."""
    settings = config[section]
    root = os.path.expanduser(settings["root"]) if settings.get("root") else None
    if not root or settings.get("download") or not os.path.isdir(root):
        return {}
    return {f"{section}_root_fingerprint": manifest.directory_fingerprint(root)}


DATA_ROOT_PARAMS = _root_params("data")
PUBLIC_ROOT_PARAMS = _root_params("public")
LPIPS_BACKBONE = str(perceptual.backbone_path(config["metrics"]["lpips_cache_dir"])) if METRICS["lpips"] else []


def _clip_files():
    clip = config["labels"]["clip"]
    if not ((config["labels"]["labeler"] == "clip" and USES_PUBLIC_POOL) or METRICS["semantic_reference"] == "clip"):
        return []
    from gradienthide.clip_weights import resolve_checkpoint

    files = [resolve_checkpoint(clip["model"], clip["pretrained"], clip["cache_dir"])[0]]
    return files + ([os.path.expanduser(clip["model_config"])] if clip.get("model_config") else [])


CLIP_FILES = _clip_files()


def attack_is_given(need, attack, run_id):
    """Whether `attack` is given a defense's public artifact: `need` is the attack's declared
    need (needs_public_pool or needs_public_draws), and the defense must take public steps."""
    from gradienthide.attacks import ATTACKS

    return ATTACKS.trait(attack, need) and gh_config.uses_public_pool(RUNS[run_id])


def train_file(name, defense="{defense}", seed="{seed}"):
    return f"{layout.train_dir(OUT, defense=defense, seed=seed)}/{name}"


def round_file(what, defense="{defense}", round_number="{round}", seed="{seed}"):
    return layout.round_file(OUT, defense=defense, seed=seed, round_number=round_number, what=what)


def uploads_file(what, defense="{defense}", round_number="{round}", seed="{seed}", uploads="{uploads}"):
    """One of layout.ROUND_FILES of a set of an attacked round's uploads (deployed, or a probe batch size's)."""
    return layout.uploads_file(OUT, defense=defense, seed=seed, round_number=round_number, uploads=uploads, what=what)


def uploads_input(what):
    """An input function: the attack or evaluate job's file `what` of its uploads (wildcard `uploads`)."""
    return lambda wc: uploads_file(what, wc.defense, wc.round, wc.seed, wc.uploads)


def probe_uploads_files(what, wc):
    """A probe job's file `what` of each probe batch size's uploads, in PROBE_UPLOADS order."""
    return [uploads_file(what, wc.defense, wc.round, wc.seed, uploads) for uploads in PROBE_UPLOADS]


def probe_shard_files(what):
    """A probe job's file `what` of every probe shard, in PROBE_SHARDS order (patterns in the other wildcards)."""
    return [shard_file(what, uploads=uploads, shard=shard) for uploads, shard in PROBE_SHARDS]


def shard_identity(wc, uploads, shard):
    """The columns that say which job a shard's metric rows come from."""
    return {"defense": wc.defense, "defense_name": RUNS[wc.defense].defense, "attack": wc.attack,
            "seed": int(wc.seed), "round": int(wc.round), "uploads": uploads, "shard": shard}


def shard_file(what, defense="{defense}", attack="{attack}", round_number="{round}", shard="{shard}", seed="{seed}",
               uploads="{uploads}"):
    return layout.shard_file(OUT, defense=defense, attack=attack, seed=seed, round_number=round_number, shard=shard,
                             uploads=uploads, what=what)
