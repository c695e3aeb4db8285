"""The experiment configuration: validation against the JSON schema, defaults, and the job grid."""

from __future__ import annotations

import copy
import importlib.resources
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gradienthide.layout import DEPLOYED  # the uploads identifier of the sampled clients' real uploads

# package data, so that an installed (non-editable) package validates configs too
SCHEMA = importlib.resources.files("gradienthide") / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names every offending key."""


def load_schema(path: str | Path | None = None) -> dict:
    """The config schema shipped in the package, or the one at `path`."""
    return yaml.safe_load(Path(path).read_text() if path else SCHEMA.read_text())


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
            if list(error.absolute_path) == ["seeds"]:
                lines.append(f"seeds: {error.instance!r} is not a list of distinct non-negative integers; give the "
                             "replicates' seeds, each once, e.g. seeds: [0, 1, 2] (or null for the single replicate "
                             "`seed`)")
            elif error.validator == "additionalProperties":
                unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
                allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "none"
                for key in unknown:
                    lines.append(f"{_dotted([*error.absolute_path, key])}: unknown key (allowed here: {allowed})")
            elif error.validator == "oneOf" and error.instance == []:
                lines.append(f"{where}: an empty list sweeps no setting; give at least one value")
            elif error.validator == "oneOf" and isinstance(error.instance, list) and any(
                    a == b for i, a in enumerate(error.instance) for b in error.instance[i + 1:]):
                lines.append(f"{where}: {error.instance!r} lists one value twice (1 and 1.0 are the same number); "
                             "give each setting once")
            elif error.validator == "oneOf":
                lines.append(f"{where}: {error.instance!r} is neither a single value nor a list of values of the right type")
            else:
                lines.append(f"{where}: {error.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))

    config = copy.deepcopy(config)
    _fill_defaults(config, schema)
    if config["training"]["local_epochs"] is None:
        config["training"].setdefault("local_steps", 1)
    if config["seeds"] is None:  # a single-seed config: its one replicate is `seed`
        config["seeds"] = [config["seed"]]
    probes = config["attack"].get("probes")
    if probes is not None and probes["uploads"] is None:  # as many probe uploads as real ones are attacked
        probes["uploads"] = config["attack"]["clients_per_round"]
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
    problems += _probe_problems(config)
    problems += _training_problems(training)
    if training["algorithm"] == "fedavg" and training["mu"]:
        problems.append(f"training.mu={training['mu']}: the proximal term belongs to FedProx "
                        "(set training.algorithm: fedprox, or drop training.mu)")
    problems += _data_problems(data)
    problems += _public_problems(config)
    problems += _input_problems(config)
    from gradienthide.defenses import DEFENSES
    from gradienthide.attacks import ATTACKS

    for name in config["defenses"]:
        if name not in DEFENSES:
            problems.append(f"defenses.{name}: no such defense (known: {', '.join(sorted(DEFENSES))})")
    for name in config["attacks"]:
        if name not in ATTACKS:
            problems.append(f"attacks.{name}: no such attack (known: {', '.join(sorted(ATTACKS))})")
    from gradienthide.architectures import resolve_model_config

    try:  # the architecture's own width, activation and norm where the config leaves them null
        config["model"] = resolve_model_config(config["model"])
    except ValueError as error:
        problems.append(str(error))
    arch, norm = config["model"]["arch"], config["model"]["norm"]
    if "gradinversion" in config["attacks"] and norm not in ("batch", None):
        problems.append(f"attacks.gradinversion: its BatchNorm prior needs model.norm: batch (model.arch {arch} "
                        f"has model.norm: {norm}; use resnet18, or convnet with model.norm: batch)")
    if "adaptive_infer" in config["attacks"] and norm == "batch":
        problems.append(f"attacks.adaptive_infer: draw inference needs per-example gradients, which a BatchNorm "
                        f"model (model.arch {arch} with model.norm: batch) does not have; use model.norm: none "
                        "or drop the attack")
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _data_problems(data: dict) -> list[str]:
    """The dataset source's location keys and the partition's settings that contradict each other."""
    from gradienthide import sources

    problems = sources.settings_problems(data, "data")
    if data["test_size"] is None and data["test_split"] == "holdout":
        problems.append("data.test_size: null means the source's whole test part, only with data.test_split: "
                        "source; give the number of images to hold out for testing")
    if data["partition"] == "dirichlet" and data["dirichlet_alpha"] is None:
        problems.append("data.dirichlet_alpha: required with data.partition: dirichlet (e.g. 0.5; smaller is more skewed)")
    if data["partition"] != "dirichlet" and data["dirichlet_alpha"] is not None:
        problems.append(f"data.dirichlet_alpha={data['dirichlet_alpha']}: only for data.partition: dirichlet "
                        f"(the partition is {data['partition']!r}); drop it or set data.partition: dirichlet")
    return problems


def _probe_problems(config: dict) -> list[str]:
    """Probe settings that contradict the rounds they are made at (the shard sizes are checked in
    _input_problems where the config knows them, else by the train job)."""
    training, attack = config["training"], config["attack"]
    probes = attack.get("probes")
    problems = []
    if probes is None:
        if not attack["deployed"]:
            problems.append("attack.deployed: false attacks no upload at all without attack.probes; set "
                            "attack.probes.batch_sizes, or attack.deployed: true")
        return problems
    unknown = [name for name in probes["attacks"] or [] if name not in config["attacks"]]
    if unknown:
        problems.append(f"attack.probes.attacks: {', '.join(unknown)} not configured under attacks: (configured: "
                        f"{', '.join(config['attacks'])}); add it there or drop it from the list")
    from gradienthide.defenses import DEFENSES

    mixing = [name for name in config["defenses"] if name in DEFENSES and DEFENSES.trait(name, "mixes_batch")]
    if mixing and min(probes["batch_sizes"]) < 2:
        problems.append(f"attack.probes.batch_sizes: {sorted(b for b in probes['batch_sizes'] if b < 2)} below 2, but "
                        f"{', '.join(f'defenses.{name}' for name in mixing)} mixes the images of a batch and needs at "
                        "least 2; probe batch sizes of 2 or more, or drop that defense")
    if not isinstance(probes["uploads"], int) and len(probes["uploads"]) != len(probes["batch_sizes"]):
        problems.append(f"attack.probes.uploads: {probes['uploads']} has {len(probes['uploads'])} counts but "
                        f"attack.probes.batch_sizes {probes['batch_sizes']} has {len(probes['batch_sizes'])} sizes; "
                        "give one count per batch size, or a single count for all")
        return problems
    if max(probe_upload_counts(probes).values()) > training["clients_per_round"]:
        problems.append(f"attack.probes.uploads={probes['uploads']} exceeds training.clients_per_round="
                        f"{training['clients_per_round']} (each probe upload is made by one of the round's sampled "
                        "clients); lower it")
    return problems


def _training_problems(training: dict) -> list[str]:
    """Local work and learning-rate schedule settings that contradict each other."""
    problems = []
    if training["local_epochs"] is not None and "local_steps" in training:
        problems.append(f"training: local_steps={training['local_steps']} and local_epochs={training['local_epochs']} "
                        "are both set, but only one decides a client's local work: keep local_epochs (passes over "
                        "its whole shard) or local_steps (batches per round) and delete the other")
    schedule = training["lr_schedule"]
    if training["lr_min"] and schedule != "cosine":
        problems.append(f"training.lr_min={training['lr_min']}: only the cosine schedule uses it "
                        f"(training.lr_schedule is {schedule})")
    if schedule == "cosine" and training["lr_min"] >= training["lr"]:
        problems.append(f"training.lr_min={training['lr_min']} must be below training.lr={training['lr']} "
                        "for the cosine schedule to decrease")
    if training["lr_milestones"] and schedule != "step":
        problems.append(f"training.lr_milestones: only the step schedule uses them (training.lr_schedule is {schedule})")
    if schedule == "step":
        if not training["lr_milestones"]:
            problems.append("training.lr_milestones: the step schedule needs at least one round at which "
                            "the rate is multiplied by training.lr_gamma")
        late = [r for r in training["lr_milestones"] if r > training["rounds"]]
        if late:
            problems.append(f"training.lr_milestones: rounds {late} exceed training.rounds={training['rounds']}")
    return problems


def _public_problems(config: dict) -> list[str]:
    """The public pool's source, labeler and selection settings that contradict each other."""
    from gradienthide import clip_weights

    data, public, labels = config["data"], config["public"], config["labels"]
    problems = []
    if public["dataset"] == "private_slice":
        if public["size"] is not None:
            problems.append(f"public.size={public['size']}: the private slice's size is data.public_pool_size "
                            "(drop public.size, or give public.dataset a source of its own)")
        if public["path"] is not None:
            problems.append("public.path: only for public.dataset: npz")
        if public["root"] is not None or public["download"]:
            problems.append("public.root, public.download: only for a public source of its own (e.g. public.dataset: "
                            "cifar100); the private slice is read with the private dataset")
        from gradienthide.defenses import DEFENSES

        takes_public_steps = any(name in DEFENSES and DEFENSES.trait(name, "uses_public_pool") for name in config["defenses"])
        if data["public_pool_size"] == 0 and takes_public_steps:
            problems.append("data.public_pool_size: 0 leaves GradientHide no public pool with public.dataset: "
                            "private_slice (set a size, or give public.dataset a source of its own)")
    else:
        if data["public_pool_size"] != 0:
            problems.append(f"data.public_pool_size={data['public_pool_size']}: with public.dataset: "
                            f"{public['dataset']} the private dataset keeps no public slice; set it to 0 "
                            "(the pool's size is public.size)")
        from gradienthide import sources

        problems += sources.settings_problems(public, "public")
    if labels["labeler"] == "simulated_clip":
        try:
            clip_weights.simulated_accuracy(simulated=labels["simulated_clip"], dataset=data["dataset"])
        except ValueError as error:
            problems.append(str(error))
    if labels["selection"]["min_confidence"] is not None and labels["labeler"] != "clip":
        problems.append(f"labels.selection.min_confidence: the {labels['labeler']} labeler gives no class "
                        "probabilities to threshold (only clip does); set it to null")
    return problems


# SSIM's Gaussian window (11 pixels, sigma 1.5) is reflect-padded by 5 pixels a side, which
# needs images of at least 6x6 (gradienthide.metrics.ssim); smaller ones crash in evaluate.
MIN_IMAGE_SIZE = 6
# Sources whose size and classes the config alone decides (tests check them against the source).
KNOWN_SOURCES = {"digits": {"images": 1797, "classes": 10}}


def _known_size(dataset: str, max_images: int | None = None) -> int | None:
    if dataset not in KNOWN_SOURCES:
        return None
    return min(KNOWN_SOURCES[dataset]["images"], max_images or KNOWN_SOURCES[dataset]["images"])


def _input_problems(config: dict) -> list[str]:
    """Inputs the schema accepts that would fail late, or run another experiment than the config
    states (docs/bad_inputs.md lists each with its test)."""
    data, training, public = config["data"], config["training"], config["public"]
    problems = []
    if data["image_size"] < MIN_IMAGE_SIZE:
        problems.append(f"data.image_size={data['image_size']}: below the minimum of {MIN_IMAGE_SIZE} (SSIM's "
                        f"11-pixel Gaussian window needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}); "
                        f"set data.image_size: {MIN_IMAGE_SIZE} or more")
    problems += _class_name_problems(config)
    size = _known_size(data["dataset"], data["max_images"])
    if size is not None and data["test_split"] == "holdout" and data["test_size"] is not None:
        private, clients = size - data["test_size"] - data["public_pool_size"], data["num_clients"]
        if private < clients:
            problems.append(f"data.test_size={data['test_size']} + data.public_pool_size={data['public_pool_size']} "
                            f"leave {max(private, 0)} of the {size} images of {data['dataset']} for "
                            f"data.num_clients={clients} clients; lower test_size, public_pool_size or num_clients")
        elif data["partition"] == "iid" and training["batch_size"] > private // clients:
            problems.append(f"training.batch_size={training['batch_size']} exceeds the smallest client shard "
                            f"({private // clients} images: {private} private images over {clients} clients), so "
                            f"every batch would silently be the whole shard; set training.batch_size to at most "
                            f"{private // clients}, or give the clients more images (fewer data.num_clients, a "
                            f"smaller data.test_size or data.public_pool_size)")
        if private >= clients and data["partition"] == "iid":
            problems += probe_size_problems(probes=config["attack"].get("probes"), smallest_shard=private // clients,
                                            where=f"{private} private images over {clients} clients")
    own = _known_size(public["dataset"])
    if public["dataset"] != "private_slice" and public["size"] is not None and own is not None and public["size"] > own:
        problems.append(f"public.size={public['size']}: exceeds the {own} images of {public['dataset']}; "
                        f"set it to at most {own} (or null for all of them)")
    for attack, settings in config["attacks"].items():
        missing = [name for name in settings.get("defenses") or [] if name not in config["defenses"]]
        if missing:
            problems.append(f"attacks.{attack}.defenses: {', '.join(missing)} not configured under defenses: "
                            f"(configured: {', '.join(config['defenses'])}); add it there or drop it from the list")
    try:
        runs = defense_runs(config)
    except ConfigError as error:
        return problems + [str(error)]
    return problems + list(dict.fromkeys(_public_draw_problems(config, runs)))


def probe_size_problems(*, probes: dict | None, smallest_shard: int, where: str) -> list[str]:
    """A probe batch larger than the smallest client shard would be cut to the shard, so its
    uploads would hold fewer images than their batch size says (and the tables keyed by it)."""
    if not probes:
        return []
    large = [size for size in probes["batch_sizes"] if size > smallest_shard]
    if not large:
        return []
    return [f"attack.probes.batch_sizes: {large} exceed the smallest client shard ({smallest_shard} images: {where}), "
            f"so those probe uploads would hold fewer images than their batch size; use sizes of at most "
            f"{smallest_shard}, or give the clients more images (fewer data.num_clients)"]


def _class_name_problems(config: dict) -> list[str]:
    data, labels, public = config["data"], config["labels"], config["public"]
    problems = []
    for key, names in (("data.class_names", data["class_names"]), ("labels.class_names", labels["class_names"]),
                       ("public.class_names", public["class_names"])):
        if names is None:
            continue
        if len(names) < 2:
            problems.append(f"{key}: {names!r} names {len(names)} class(es) but a classifier needs at least 2; "
                            "give one name per class (or null for the dataset's own)")
        blank = [position for position, name in enumerate(names) if not name.strip()]
        if blank:
            problems.append(f"{key}: the names at positions {blank} are empty; every class needs a name "
                            "(prompts and label matching use them)")
        normalised = [name.strip().lower() for name in names]
        repeated = sorted({name for name in normalised if name and normalised.count(name) > 1})
        if repeated:
            problems.append(f"{key}: {repeated} given more than once (case and spaces aside); class names must be "
                            "distinct, as labels are matched by name")
    known = KNOWN_SOURCES.get(data["dataset"], {}).get("classes")
    if data["class_names"] and known and len(data["class_names"]) != known:
        problems.append(f"data.class_names: {len(data['class_names'])} names given but {data['dataset']} has "
                        f"{known} classes; give one name per class")
    task_classes = len(data["class_names"]) if data["class_names"] else known
    if labels["class_names"] and task_classes and len(labels["class_names"]) != task_classes:
        problems.append(f"labels.class_names: {len(labels['class_names'])} names given but the task has "
                        f"{task_classes} classes; give one name per class, in the dataset's label order")
    own = KNOWN_SOURCES.get(public["dataset"], {}).get("classes")
    if public["class_names"] and own and len(public["class_names"]) != own:
        problems.append(f"public.class_names: {len(public['class_names'])} names given but {public['dataset']} has "
                        f"{own} classes; give one name per class")
    return problems


def _public_draw_problems(config: dict, runs: dict) -> list[str]:
    """A public-pool defense or attack asking for more pool images than the pool holds (before
    label selection), which would otherwise be cut to the pool silently."""
    from gradienthide.defenses import DEFENSES, make_defense

    data, public = config["data"], config["public"]
    if public["dataset"] == "private_slice":
        pool, where = data["public_pool_size"], "data.public_pool_size"
    elif public["size"] is not None:
        pool, where = public["size"], "public.size"
    else:
        pool, where = _known_size(public["dataset"]), f"all of {public['dataset']}"
    problems = []
    for run in runs.values():
        if not DEFENSES.trait(run.defense, "uses_public_pool"):
            continue  # no pool to check; the schema checks its knobs (building it would import torch)
        try:
            defense = make_defense(run.defense, run.params)
        except ValueError as error:
            problems.append(f"{error} (run {run.run_id})")
            continue
        if not pool:
            continue
        key = f"defenses.{run.defense}"
        drawn = defense.pool_size or pool
        if defense.pool_size is not None and defense.pool_size > pool:
            problems.append(f"{key}.pool_size={defense.pool_size}: exceeds the public pool's {pool} images "
                            f"({where}); lower it, or null for the whole pool")
            drawn = pool
        if defense.public_batch_size > drawn:
            problems.append(f"{key}.public_batch_size={defense.public_batch_size}: exceeds the {drawn} pool images "
                            f"it draws from ({'pool_size' if defense.pool_size else where}); lower it, or give the "
                            "pool more images")
        elif hasattr(defense, "check_pool"):  # e.g. disjoint draws needing steps x batch distinct images
            try:
                defense.check_pool(drawn)
            except ValueError as error:
                problems.append(f"{error} (run {run.run_id})")
    sample = config["attacks"].get("adaptive", {}).get("public_sample")
    if pool and sample is not None and sample > pool:
        problems.append(f"attacks.adaptive.public_sample={sample}: exceeds the public pool's {pool} images ({where}); "
                        "lower it, or null for the whole pool")
    return problems


def command_line_overrides(overrides) -> dict:
    """Snakemake's `--config` values, nested ones typed as YAML.

    Snakemake types a top-level value itself (`seed=3` is an int) but reads a nested one, e.g.
    `training={rounds: 5}`, with YAML's base loader, which leaves every leaf a string."""
    def typed(value):
        if isinstance(value, dict):
            return {key: typed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [typed(item) for item in value]
        if isinstance(value, str):
            try:
                return yaml.safe_load(value)
            except yaml.YAMLError:
                return value
        return value

    return {key: typed(value) if isinstance(value, (dict, list)) else value for key, value in dict(overrides).items()}


def apply_overrides(config: dict, overrides) -> None:
    """Merge typed `--config` values into `config` in place (nested blocks key by key)."""
    def merge(target: dict, update: dict) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            else:
                target[key] = copy.deepcopy(value)

    merge(config, command_line_overrides(overrides))


def load_config(path: str | Path) -> dict:
    with open(path) as handle:
        try:
            raw = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]}); a config is a YAML "
                              "mapping like config.yaml") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config is a YAML mapping of keys (output_dir:, data:, ...), "
                          f"got {type(raw).__name__}")
    return validate_config(raw)


# --- the job grid -----------------------------------------------------------------------

@dataclass(frozen=True)
class DefenseRun:
    """One training job: a defense at one setting of its parameters."""

    run_id: str
    defense: str
    params: dict


def _check_sweep_names(defense: str, params: dict, extra: list) -> None:
    """Sweep values that print alike in run names would share one run: a setting would vanish."""
    blocks = [(f"defenses.{defense}", params)] + [(f"defenses.{defense}.also[{i}]", entry) for i, entry in enumerate(extra)]
    for where, block in blocks:
        for key, values in block.items():
            seen = {}
            for value in values if isinstance(values, list) else []:
                shown = _format_value(value)
                if shown in seen:
                    raise ConfigError(f"{where}.{key}: the sweep values {seen[shown]!r} and {value!r} both print as "
                                      f"{shown!r} in the run name {defense}-{key}{shown}, so one setting would silently "
                                      "replace the other; make them differ within 6 significant digits or drop one")
                seen[shown] = value


def _format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def defense_runs(config: dict) -> dict[str, DefenseRun]:
    """Expand `defenses:` into training jobs; a list-valued parameter is a sweep.

    A defense without lists keeps its bare name as run id; a swept one gets one run per
    combination, named `<defense>-<param><value>...` over the swept parameters only. Each
    entry of an `also:` list adds the settings of the block with that entry's overrides
    (not crossed with the block's sweep), named over the block's and the entry's swept keys.
    """
    runs: dict[str, DefenseRun] = {}
    for defense, params in config["defenses"].items():
        params = dict(params or {})
        extra = params.pop("also", [])
        _check_sweep_names(defense, params, extra)
        base_swept = {key for key, value in params.items() if isinstance(value, list)}
        for block, named in [(params, base_swept)] + [
                ({**params, **entry}, base_swept | {key for key, value in entry.items() if isinstance(value, list)})
                for entry in extra]:
            swept = sorted(key for key, value in block.items() if isinstance(value, list))
            fixed = {key: value for key, value in block.items() if key not in swept}
            for values in itertools.product(*(block[key] for key in swept)):
                setting = {**fixed, **dict(zip(swept, values))}
                suffix = "".join(f"-{key}{_format_value(setting[key])}" for key in sorted(named))
                run_id = f"{defense}{suffix}"
                if run_id in runs:
                    raise ConfigError(f"defenses.{defense}.also: setting {run_id!r} is already in the sweep")
                runs[run_id] = DefenseRun(run_id, defense, setting)
    return runs


def attack_params(config: dict, attack: str) -> dict:
    """The attack's own knobs (its config block without the pipeline's `defenses` filter)."""
    return {key: value for key, value in config["attacks"][attack].items() if key != "defenses"}


def attack_targets(config: dict, attack: str, run: DefenseRun) -> bool:
    """Whether `attack` is run against `run` (an attack's `defenses:` list limits it)."""
    only = config["attacks"][attack].get("defenses")
    return only is None or run.defense in only


def probe_uploads_id(batch_size: int) -> str:
    """The uploads identifier of the probe uploads of one private batch size."""
    return f"batch{batch_size}"


def attacked_uploads(config: dict) -> list[str]:
    """The uploads identifiers attacked at every attacked round: `deployed` (the real uploads,
    unless attack.deployed is false), then `batch<b>` per probe batch size."""
    attack = config["attack"]
    probes = attack.get("probes") or {"batch_sizes": []}
    return ([DEPLOYED] if attack["deployed"] else []) + [probe_uploads_id(b) for b in probes["batch_sizes"]]


def attacked_uploads_of(config: dict, attack: str) -> list[str]:
    """The uploads identifiers `attack` inverts: the real ones (when attacked), and the probes'
    unless attack.probes.attacks leaves it out."""
    probes = config["attack"].get("probes") or {}
    return [uploads for uploads in attacked_uploads(config)
            if uploads == DEPLOYED or probes.get("attacks") is None or attack in probes["attacks"]]


def probe_upload_counts(probes: dict) -> dict[int, int]:
    """Probe uploads per private batch size: attack.probes.uploads, one count for all batch
    sizes or a list aligned with attack.probes.batch_sizes."""
    counts = probes["uploads"]
    if isinstance(counts, int):
        return {size: counts for size in probes["batch_sizes"]}
    return dict(zip(probes["batch_sizes"], counts))


def uploads_count(config: dict, uploads: str = DEPLOYED) -> int:
    """How many uploads of a round are attacked: attack.clients_per_round real ones, or
    attack.probes.uploads probe uploads of that batch size."""
    if uploads == DEPLOYED:
        return config["attack"]["clients_per_round"]
    return probe_upload_counts(config["attack"]["probes"])[int(uploads.removeprefix("batch"))]


def shard_count(config: dict, uploads: str = DEPLOYED) -> int:
    return math.ceil(uploads_count(config, uploads) / config["attack"]["shard_size"])


def shard_positions(config: dict, shard: int, uploads: str = DEPLOYED) -> list[int]:
    """Positions, in a round's sampled-client order, of the updates shard `shard` attacks."""
    size = config["attack"]["shard_size"]
    last = uploads_count(config, uploads)
    return list(range(shard * size, min((shard + 1) * size, last)))


def uses_public_pool(run: DefenseRun) -> bool:
    from gradienthide.defenses import DEFENSES

    return DEFENSES.trait(run.defense, "uses_public_pool")


def preflight(config: dict) -> None:
    """Check, before any job starts, that the files the config relies on are on this machine."""
    output_dir = Path(config["output_dir"]).expanduser()
    blocking = next((path for path in (output_dir, *output_dir.parents) if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"output_dir: {blocking} is a file, not a directory, so no result can be written under "
                          f"{config['output_dir']}; move the file away or set output_dir to another directory")
    data, public = config["data"], config["public"]
    from gradienthide import sources

    sources.check_files(data, "data")
    if public["dataset"] != "private_slice":
        sources.check_files(public, "public")
    labels = config["labels"]
    if labels["labeler"] == "clip" and any(uses_public_pool(run) for run in defense_runs(config).values()):
        from gradienthide.clip_weights import resolve_checkpoint

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
        from gradienthide.clip_weights import resolve_checkpoint

        resolve_checkpoint(clip["model"], clip["pretrained"], clip["cache_dir"])
    reference = semantic.choose_reference(metrics, clip)
    if reference == "no_defense" and semantic.NO_DEFENSE_RUN not in config["defenses"]:
        raise ConfigError(f"metrics.semantic_reference: the {metrics['semantic_reference']!r} reference is the "
                          f"no-defense run's model, but defenses.{semantic.NO_DEFENSE_RUN} is not configured "
                          f"(add it, or provide CLIP weights and set metrics.semantic_reference: clip)")
    return {"lpips": lpips, "lpips_cache_dir": metrics["lpips_cache_dir"], "semantic_reference": reference}
