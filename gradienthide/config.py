"""The experiment configuration: validation against the JSON schema, defaults, and the job grid."""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names every offending key."""


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _dotted(path) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _fill_defaults(instance: Any, schema: dict) -> None:
    """Insert the schema's `default` values for absent keys, recursively."""
    if not isinstance(instance, dict):
        return
    for key, subschema in schema.get("properties", {}).items():
        if key not in instance and "default" in subschema:
            instance[key] = copy.deepcopy(subschema["default"])
        if key in instance:
            _fill_defaults(instance[key], subschema)


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Check `config` against the schema and the rules the schema cannot express.

    Returns a copy with defaults filled in; raises ConfigError naming each bad key.
    """
    schema = schema or load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for error in errors:
            where = _dotted(error.absolute_path)
            if error.validator == "additionalProperties":
                unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
                allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "none"
                for key in unknown:
                    lines.append(f"{_dotted([*error.absolute_path, key])}: unknown key (allowed here: {allowed})")
            elif error.validator == "oneOf":
                lines.append(f"{where}: {error.instance!r} is neither a single value nor a list of values of the right type")
            else:
                lines.append(f"{where}: {error.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))

    config = copy.deepcopy(config)
    _fill_defaults(config, schema)
    _check_consistency(config)
    return config


def _check_consistency(config: dict) -> None:
    training, data, attack = config["training"], config["data"], config["attack"]
    problems = []
    late = [r for r in training["attack_rounds"] if r > training["rounds"]]
    if late:
        problems.append(f"training.attack_rounds: rounds {late} exceed training.rounds={training['rounds']}")
    if training["clients_per_round"] > data["num_clients"]:
        problems.append(
            f"training.clients_per_round={training['clients_per_round']} exceeds data.num_clients={data['num_clients']}"
        )
    if attack["clients_per_round"] > training["clients_per_round"]:
        problems.append(
            f"attack.clients_per_round={attack['clients_per_round']} exceeds "
            f"training.clients_per_round={training['clients_per_round']}"
        )
    if training["algorithm"] == "fedavg" and training["mu"]:
        problems.append(f"training.mu={training['mu']}: the proximal term belongs to FedProx "
                        "(set training.algorithm: fedprox, or drop training.mu)")
    if data["dataset"] == "npz" and not data.get("path"):
        problems.append("data.path: required when data.dataset is 'npz'")
    problems += _public_problems(config)
    from gradienthide.defenses import DEFENSES
    from gradienthide.attacks import ATTACKS

    for name in config["defenses"]:
        if name not in DEFENSES:
            problems.append(f"defenses.{name}: no such defense (known: {', '.join(sorted(DEFENSES))})")
    for name in config["attacks"]:
        if name not in ATTACKS:
            problems.append(f"attacks.{name}: no such attack (known: {', '.join(sorted(ATTACKS))})")
    if "gradinversion" in config["attacks"] and config["model"]["norm"] != "batch":
        problems.append("attacks.gradinversion: its BatchNorm prior needs model.norm: batch")
    if "adaptive_infer" in config["attacks"] and config["model"]["norm"] == "batch":
        problems.append("attacks.adaptive_infer: draw inference needs per-example gradients, which a BatchNorm "
                        "model (model.norm: batch) does not have; use model.norm: none or drop the attack")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _public_problems(config: dict) -> list[str]:
    """The public pool's source, labeler and selection settings that contradict each other."""
    from gradienthide import clip_labels

    data, public, labels = config["data"], config["public"], config["labels"]
    problems = []
    if public["dataset"] == "private_slice":
        if public["size"] is not None:
            problems.append(f"public.size={public['size']}: the private slice's size is data.public_pool_size "
                            "(drop public.size, or give public.dataset a source of its own)")
        if public["path"] is not None:
            problems.append("public.path: only for public.dataset: npz")
        from gradienthide.defenses import DEFENSES

        takes_public_steps = any(name in DEFENSES and DEFENSES[name].uses_public_pool for name in config["defenses"])
        if data["public_pool_size"] == 0 and takes_public_steps:
            problems.append("data.public_pool_size: 0 leaves GradientHide no public pool with public.dataset: "
                            "private_slice (set a size, or give public.dataset a source of its own)")
    else:
        if data["public_pool_size"] != 0:
            problems.append(f"data.public_pool_size={data['public_pool_size']}: with public.dataset: "
                            f"{public['dataset']} the private dataset keeps no public slice; set it to 0 "
                            "(the pool's size is public.size)")
        if public["dataset"] == "npz" and not public["path"]:
            problems.append("public.path: required when public.dataset is 'npz'")
    if labels["labeler"] == "simulated_clip":
        try:
            clip_labels.simulated_accuracy(simulated=labels["simulated_clip"], dataset=data["dataset"])
        except ValueError as error:
            problems.append(str(error))
    if labels["selection"]["min_confidence"] is not None and labels["labeler"] != "clip":
        problems.append(f"labels.selection.min_confidence: the {labels['labeler']} labeler gives no class "
                        "probabilities to threshold (only clip does); set it to null")
    return problems


def load_config(path: str | Path) -> dict:
    with open(path) as handle:
        return validate_config(yaml.safe_load(handle))


# --- the job grid -----------------------------------------------------------------------

@dataclass(frozen=True)
class DefenseRun:
    """One training job: a defense at one setting of its parameters."""

    run_id: str
    defense: str
    params: dict


def _format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def defense_runs(config: dict) -> dict[str, DefenseRun]:
    """Expand `defenses:` into training jobs; a list-valued parameter is a sweep.

    A defense without lists keeps its bare name as run id; a swept one gets one run per
    combination, named `<defense>-<param><value>...` over the swept parameters only.
    """
    runs: dict[str, DefenseRun] = {}
    for defense, params in config["defenses"].items():
        params = params or {}
        swept = sorted(key for key, value in params.items() if isinstance(value, list))
        fixed = {key: value for key, value in params.items() if key not in swept}
        for values in itertools.product(*(params[key] for key in swept)):
            setting = dict(zip(swept, values))
            suffix = "".join(f"-{key}{_format_value(value)}" for key, value in setting.items())
            run_id = f"{defense}{suffix}"
            runs[run_id] = DefenseRun(run_id, defense, {**fixed, **setting})
    return runs


def attack_params(config: dict, attack: str) -> dict:
    """The attack's own knobs (its config block without the pipeline's `defenses` filter)."""
    return {key: value for key, value in config["attacks"][attack].items() if key != "defenses"}


def attack_targets(config: dict, attack: str, run: DefenseRun) -> bool:
    """Whether `attack` is run against `run` (an attack's `defenses:` list limits it)."""
    only = config["attacks"][attack].get("defenses")
    return only is None or run.defense in only


def shard_count(config: dict) -> int:
    return math.ceil(config["attack"]["clients_per_round"] / config["attack"]["shard_size"])


def shard_positions(config: dict, shard: int) -> list[int]:
    """Positions, in a round's sampled-client order, of the updates shard `shard` attacks."""
    size = config["attack"]["shard_size"]
    last = config["attack"]["clients_per_round"]
    return list(range(shard * size, min((shard + 1) * size, last)))


def uses_public_pool(run: DefenseRun) -> bool:
    from gradienthide.defenses import DEFENSES

    return DEFENSES[run.defense].uses_public_pool


def preflight(config: dict) -> None:
    """Check, before any job starts, that the files the config relies on are on this machine."""
    data = config["data"]
    if data["dataset"] == "npz" and not Path(data["path"]).expanduser().is_file():
        raise FileNotFoundError(f"data.path: dataset file {data['path']} not found")
    public = config["public"]
    if public["dataset"] == "npz" and not Path(public["path"]).expanduser().is_file():
        raise FileNotFoundError(f"public.path: public source file {public['path']} not found")
    labels = config["labels"]
    if labels["labeler"] == "clip" and any(uses_public_pool(run) for run in defense_runs(config).values()):
        from gradienthide.clip_labels import resolve_checkpoint

        clip = labels["clip"]
        register_clip_model(clip)
        resolve_checkpoint(clip["model"], clip["pretrained"], clip["cache_dir"])
    resolve_metrics(config)


def register_clip_model(clip: dict) -> None:
    """Make a model given by a JSON config (labels.clip.model_config) known to open_clip."""
    if clip.get("model_config"):
        import open_clip

        path = Path(clip["model_config"]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"labels.clip.model_config: {clip['model_config']} not found")
        open_clip.add_model_config(path)


def resolve_metrics(config: dict) -> dict:
    """The metrics this run computes: whether LPIPS, and which semantic reference.

    `auto` settings are resolved by what is on disk; a setting that asks for something
    missing raises an error naming it, before any job starts.
    """
    from gradienthide import perceptual, semantic

    metrics, clip = config["metrics"], config["labels"]["clip"]
    if metrics["lpips"] is True:
        perceptual.require_backbone(metrics["lpips_cache_dir"])
        lpips = True
    else:
        lpips = metrics["lpips"] == "auto" and perceptual.backbone_path(metrics["lpips_cache_dir"]).is_file()
    if metrics["semantic_reference"] != "no_defense":
        register_clip_model(clip)
    if metrics["semantic_reference"] == "clip":
        from gradienthide.clip_labels import resolve_checkpoint

        resolve_checkpoint(clip["model"], clip["pretrained"], clip["cache_dir"])
    reference = semantic.choose_reference(metrics, clip)
    if reference == "no_defense" and semantic.NO_DEFENSE_RUN not in config["defenses"]:
        raise ConfigError(f"metrics.semantic_reference: the {metrics['semantic_reference']!r} reference is the "
                          f"no-defense run's model, but defenses.{semantic.NO_DEFENSE_RUN} is not configured "
                          f"(add it, or provide CLIP weights and set metrics.semantic_reference: clip)")
    return {"lpips": lpips, "lpips_cache_dir": metrics["lpips_cache_dir"], "semantic_reference": reference}
