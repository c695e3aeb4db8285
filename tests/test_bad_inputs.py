"""Bad input, caught early: every case of docs/bad_inputs.md, with the message a user sees.

A case the config alone decides fails in gradienthide.config's checks, which the Snakefile runs
before any job; one that needs a file's contents fails in the first job that reads it, before
that job writes anything. Each message names the key, file or value and what to do.
"""

import copy
import inspect

import numpy as np
import pytest
import torch
from conftest import planned_jobs, run_snakemake, write_config

from gradienthide import config as gh_config
from gradienthide.config import ConfigError, validate_config

_DROP = object()  # as an edit's value: remove the key


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        config = config.setdefault(key, {})
    if value is _DROP:
        config.pop(last, None)
    else:
        config[last] = value


@pytest.fixture
def base_config(tiny_config) -> dict:
    """The tiny config without files: every config-level case starts from it and changes only its own keys."""
    tiny_config["metrics"]["lpips"] = False
    return tiny_config


def test_the_base_config_passes_every_check(base_config):
    config = validate_config(base_config)
    assert gh_config.defense_runs(config)


# (case id, edits as (dotted key, value), what the message must say)
CONFIG_CASES = [
    ("image_size_below_ssim_window", [("data.image_size", 5)],
     r"data\.image_size=5: below the minimum of 6 .*set data\.image_size: 6 or more"),
    ("sweep_values_that_print_alike", [("defenses.dp", {"sigma": [0.5, 0.5000001], "clip_norm": 1.0})],
     r"defenses\.dp\.sigma: the sweep values 0\.5 and 0\.5000001 both print as '0\.5' in the run name dp-sigma0\.5"),
    ("sweep_values_that_print_alike_in_also", [("defenses.gradienthide.also", [{"public_lr": [0.1, 0.10000001]}])],
     r"defenses\.gradienthide\.also\[0\]\.public_lr: the sweep values 0\.1 and 0\.10000001 both print as '0\.1'"),
    ("sweep_repeats_a_number", [("defenses.pruning.fraction", [1, 1.0])],
     r"defenses\.pruning\.fraction: \[1, 1\.0\] lists one value twice"),
    ("empty_sweep_list", [("defenses.pruning.fraction", [])],
     r"defenses\.pruning\.fraction: an empty list sweeps no setting"),
    ("batch_size_above_client_shard", [("training.batch_size", 61)],
     r"training\.batch_size=61 exceeds the smallest client shard \(60 images: 240 private images over 4 clients\)"),
    ("test_and_pool_leave_no_client_images", [("data.test_size", 340)],
     r"data\.test_size=340 \+ data\.public_pool_size=60 leave 0 of the 400 images of digits for data\.num_clients=4"),
    ("test_split_source_without_a_test_part", [("data.test_split", "source")],
     (r"data\.test_split: source takes the test set from the dataset's own test part, but data\.dataset 'digits' "
      r"has none; set data\.test_split: holdout")),
    ("test_size_null_with_holdout", [("data.test_size", None)],
     r"data\.test_size: null means the source's whole test part, only with data\.test_split: source"),
    ("clients_per_round_above_num_clients", [("training.clients_per_round", 5)],
     r"training\.clients_per_round=5 exceeds data\.num_clients=4"),
    ("attack_round_after_last_round", [("training.attack_rounds", [2, 9])],
     r"training\.attack_rounds: rounds \[9\] exceed training\.rounds=3"),
    ("attacked_clients_above_clients_per_round", [("attack.clients_per_round", 4), ("data.num_clients", 5)],
     r"attack\.clients_per_round=4 exceeds training\.clients_per_round=3"),
    ("unknown_defense", [("defenses.gradienthyde", {})],
     r"defenses\.gradienthyde: unknown key \(allowed here: .*gradienthide"),
    ("unknown_attack", [("attacks.dgl", {})], r"attacks\.dgl: unknown key \(allowed here: .*dlg"),
    ("misspelt_key", [("training.roundz", 3)], r"training\.roundz: unknown key"),
    ("wrong_type", [("training.rounds", "ten")], r"training\.rounds: 'ten' is not of type 'integer'"),
    ("attack_limited_to_an_unconfigured_defense", [("attacks.idlg.defenses", ["none", "soteria"]), ("defenses.soteria", _DROP)],
     r"attacks\.idlg\.defenses: soteria not configured under defenses: .*add it there or drop it"),
    ("data_npz_without_path", [("data.dataset", "npz")], r"data\.path: required when data\.dataset is 'npz'"),
    ("public_npz_without_path", [("public", {"dataset": "npz"}), ("data.public_pool_size", 0)],
     r"public\.path: required when public\.dataset is 'npz'"),
    ("duplicate_class_names", [("data.class_names", ["a", "b", "c", "d", "e", "f", "g", "h", "i", "A "])],
     r"data\.class_names: \['a'\] given more than once .*must be distinct"),
    ("empty_class_name_list", [("data.class_names", [])],
     r"data\.class_names: \[\] names 0 class\(es\) but a classifier needs at least 2"),
    ("blank_class_name", [("data.class_names", ["zero", " ", "2", "3", "4", "5", "6", "7", "8", "9"])],
     r"data\.class_names: the names at positions \[1\] are empty"),
    ("class_names_count_against_the_dataset", [("data.class_names", ["cat", "dog"])],
     r"data\.class_names: 2 names given but digits has 10 classes"),
    ("label_class_names_count_against_the_task", [("labels.class_names", ["cat", "dog", "bird"])],
     r"labels\.class_names: 3 names given but the task has 10 classes"),
    ("public_size_above_its_source", [("public", {"dataset": "digits", "size": 2000}), ("data.public_pool_size", 0)],
     r"public\.size=2000: exceeds the 1797 images of digits"),
    ("no_public_pool_for_gradienthide", [("data.public_pool_size", 0)],
     r"data\.public_pool_size: 0 leaves GradientHide no public pool"),
    ("gradienthide_pool_size_above_the_pool", [("defenses.gradienthide.pool_size", 100)],
     r"defenses\.gradienthide\.pool_size=100: exceeds the public pool's 60 images \(data\.public_pool_size\)"),
    ("gradienthide_public_batch_above_the_pool", [("defenses.gradienthide.public_batch_size", 64)],
     r"defenses\.gradienthide\.public_batch_size=64: exceeds the 60 pool images it draws from"),
    ("gradienthide_default_public_batch_above_the_pool", [("defenses.gradienthide", {"public_steps": 1}),
                                                          ("data.public_pool_size", 20)],
     r"defenses\.gradienthide\.public_batch_size=32: exceeds the 20 pool images"),
    ("gradienthide_disjoint_draws_above_the_pool", [("defenses.gradienthide.public_steps", 10),
                                                    ("defenses.gradienthide.draws", "disjoint")],
     (r"defenses\.gradienthide\.draws: disjoint needs public_steps x public_batch_size = 80 distinct pool images, "
      r"but the clients draw from 60")),
    ("adaptive_public_sample_above_the_pool", [("attacks.adaptive.public_sample", 61)],
     r"attacks\.adaptive\.public_sample=61: exceeds the public pool's 60 images"),
    ("threads_zero", [("threads", 0)], r"threads: 0 is less than the minimum of 1"),
    ("fedprox_mu_under_fedavg", [("training.mu", 0.1)], r"training\.mu=0\.1: the proximal term belongs to FedProx"),
    ("min_confidence_without_clip", [("labels.selection", {"min_confidence": 0.5})],
     r"labels\.selection\.min_confidence: the oracle labeler gives no class probabilities"),
    ("semantic_reference_without_its_run", [("defenses.none", _DROP), ("attacks.dlg.defenses", ["gradienthide"]),
                                            ("attacks.idlg.defenses", ["gradienthide"])],
     r"metrics\.semantic_reference: the 'no_defense' reference is the no-defense run's model, but defenses\.none"),
    ("gradinversion_without_batchnorm", [("attacks.gradinversion", {"iterations": 2}), ("attacks.adaptive_infer", _DROP)],
     r"attacks\.gradinversion: its BatchNorm prior needs model\.norm: batch"),
    ("seeds_repeated", [("seeds", [0, 1, 0])],
     r"seeds: \[0, 1, 0\] is not a list of distinct non-negative integers; give the replicates' seeds, each once"),
    ("seeds_empty", [("seeds", [])], r"seeds: \[\] is not a list of distinct non-negative integers"),
    ("probe_batch_above_client_shard", [("attack.probes", {"batch_sizes": [2, 61, 64]})],
     (r"attack\.probes\.batch_sizes: \[61, 64\] exceed the smallest client shard \(60 images: 240 private images "
      r"over 4 clients\), so those probe uploads would hold fewer images than their batch size")),
    ("probe_uploads_above_clients_per_round", [("attack.probes", {"batch_sizes": [2], "uploads": 4}),
                                               ("data.num_clients", 5)],
     r"attack\.probes\.uploads=4 exceeds training\.clients_per_round=3"),
    ("probe_uploads_not_one_per_batch_size", [("attack.probes", {"batch_sizes": [2, 4], "uploads": [2, 1, 1]})],
     (r"attack\.probes\.uploads: \[2, 1, 1\] has 3 counts but attack\.probes\.batch_sizes \[2, 4\] has 2 sizes; "
      r"give one count per batch size, or a single count for all")),
    ("nothing_attacked", [("attack.deployed", False), ("attack.probes", _DROP)],
     r"attack\.deployed: false attacks no upload at all without attack\.probes"),
    ("probe_attack_not_configured", [("attack.probes", {"batch_sizes": [2], "attacks": ["ig", "gradinversion"]})],
     r"attack\.probes\.attacks: gradinversion not configured under attacks: \(configured: ig, adaptive, .*\); add it"),
    ("probe_batch_of_one_under_mixup", [("attack.probes", {"batch_sizes": [1, 4]})],
     (r"attack\.probes\.batch_sizes: \[1\] below 2, but defenses\.mixup mixes the images of a batch and needs at "
      r"least 2")),
    ("probe_batch_sizes_empty", [("attack.probes", {"batch_sizes": []})],
     r"attack\.probes\.batch_sizes: \[\] should be non-empty"),
]


@pytest.mark.parametrize("edits, message", [pytest.param(e, m, id=i) for i, e, m in CONFIG_CASES])
def test_config_check_refuses(base_config, edits, message):
    for key, value in edits:
        _set(base_config, key, value)
    with pytest.raises(ConfigError, match=message):
        config = validate_config(base_config)
        gh_config.preflight(config)  # semantic_reference is resolved here, still before any job


def test_image_size_minimum_is_what_ssim_needs():
    """MIN_IMAGE_SIZE is the smallest size evaluate's metrics accept, not a guess."""
    from gradienthide.metrics import image_metrics

    torch.manual_seed(0)
    size = gh_config.MIN_IMAGE_SIZE
    images = torch.rand(2, 1, size, size)
    assert np.isfinite(image_metrics(images.flip(0), images)["ssim"]).all()
    with pytest.raises(RuntimeError):
        image_metrics(images[..., 1:, 1:], images[..., 1:, 1:])


def test_known_source_sizes_match_the_source():
    from sklearn.datasets import load_digits

    digits = load_digits()
    assert gh_config.KNOWN_SOURCES["digits"] == {"images": len(digits.target), "classes": len(set(digits.target))}


def test_a_batch_equal_to_the_shard_is_accepted(base_config):
    base_config["training"]["batch_size"] = 60  # 240 private images over 4 clients
    validate_config(base_config)


# --- before any job, but after the config: files on this machine --------------------------

def test_preflight_refuses_output_dir_that_is_a_file(base_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("not a directory")
    with pytest.raises(ConfigError, match=r"output_dir: results is a file, not a directory"):
        gh_config.preflight(validate_config(base_config))
    base_config["output_dir"] = "results/run1"
    with pytest.raises(ConfigError, match=r"output_dir: results is a file"):
        gh_config.preflight(validate_config(base_config))


def test_preflight_refuses_a_missing_dataset_file(base_config, tmp_path):
    base_config["data"].update(dataset="npz", path=str(tmp_path / "absent.npz"))
    with pytest.raises(FileNotFoundError, match=r"data\.path: dataset file .*absent\.npz not found"):
        gh_config.preflight(validate_config(base_config))


def test_preflight_refuses_source_test_split_of_an_npz_without_test_arrays(base_config, tmp_path):
    base_config["data"].update(dataset="npz", path=str(_npz(tmp_path / "data.npz")), test_split="source")
    with pytest.raises(ValueError, match=r"data\.test_split: source takes the test set from the file's own test "
                                         r"part, but data\.path .*data\.npz has no arrays train_images, train_labels, "
                                         r"test_images and test_labels \(found: images, labels\)"):
        gh_config.preflight(validate_config(base_config))


def test_prepare_data_refuses_a_test_size_above_the_source_test_part(base_config, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (60, 1, 8, 8), dtype=np.uint8)
    path = tmp_path / "data.npz"
    np.savez(path, train_images=images[:54], train_labels=np.arange(54) % 3, test_images=images[54:],
             test_labels=np.arange(6) % 3)
    data = _npz_data(base_config, path)
    data["test_split"] = "source"
    with pytest.raises(ValueError, match=r"data\.test_size=10: exceeds the 6 images of the test part of .*data\.npz; "
                                         r"lower it, or set it to null for the whole test part"):
        _prepare(data, tmp_path)


def test_preflight_refuses_clip_labels_without_weights(base_config, tmp_path):
    base_config["labels"] = {"labeler": "clip", "clip": {"cache_dir": str(tmp_path / "clip")}}
    with pytest.raises(FileNotFoundError, match=r"CLIP weights for model 'ViT-B-32'.* not in the cache directory"):
        gh_config.preflight(validate_config(base_config))


def test_preflight_refuses_lpips_without_backbone(base_config, tmp_path):
    base_config["metrics"].update(lpips=True, lpips_cache_dir=str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=r"metrics\.lpips: the LPIPS AlexNet backbone .* is missing"):
        gh_config.preflight(validate_config(base_config))


@pytest.mark.parametrize("text, message", [
    pytest.param("data: [unclosed\n  x: {\n", r"bad\.yaml: not valid YAML", id="not_yaml"),
    pytest.param("- output_dir\n- data\n", r"bad\.yaml: a config is a YAML mapping .* got list", id="not_a_mapping"),
])
def test_load_config_refuses(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        gh_config.load_config(path)


# --- nested --config overrides ------------------------------------------------------------

def test_nested_override_is_typed_and_merged(base_config):
    """What Snakemake passes for `--config 'training={rounds: 5, attack_rounds: [4]}' seed=3`:
    nested leaves as strings (YAML's base loader), top-level values typed."""
    config = copy.deepcopy(base_config)
    overrides = {"training": {"rounds": "5", "attack_rounds": ["4"], "lr": "0.05"}, "seed": 3,
                 "defenses": {"pruning": {"fraction": ["0.5", "0.7"]}}}
    gh_config.apply_overrides(config, overrides)
    validated = validate_config(config)
    assert validated["training"] == {**validate_config(base_config)["training"], "rounds": 5, "attack_rounds": [4],
                                     "lr": 0.05}
    assert validated["seed"] == 3
    assert set(gh_config.defense_runs(validated)) >= {"pruning-fraction0.5", "pruning-fraction0.7"}


def test_nested_override_with_a_bad_value_names_it(base_config):
    gh_config.apply_overrides(base_config, {"training": {"rounds": "five"}})
    with pytest.raises(ConfigError, match=r"training\.rounds: 'five' is not of type 'integer'"):
        validate_config(base_config)


# --- through Snakemake: refused before any job --------------------------------------------

def _dry_run(repo, workdir, config, *extra):
    config_file = write_config(workdir / "config.yaml", config)
    return run_snakemake(repo, workdir, config_file, "-n", *extra, check=False)


@pytest.mark.parametrize("key, value, message", [
    pytest.param("data.image_size", 5, "data.image_size=5: below the minimum of 6", id="image_size"),
    pytest.param("defenses.pruning.fraction", [0.5, 0.5000001], "defenses.pruning.fraction: the sweep values 0.5 and 0.5000001",
                 id="sweep_alias"),
    pytest.param("training.batch_size", 61, "training.batch_size=61 exceeds the smallest client shard", id="batch_size"),
])
def test_snakemake_refuses_before_any_job(repo, tmp_path, base_config, key, value, message):
    _set(base_config, key, value)
    result = _dry_run(repo, tmp_path, base_config)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and "rule " not in result.stdout


def test_snakemake_nested_config_override_merges_into_the_config(repo, tmp_path, base_config):
    result = _dry_run(repo, tmp_path, base_config, "--config", "training={rounds: 5, attack_rounds: [4]}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rounds = {dict(part.split("=") for part in wildcards.split(", ")).get("round")
              for rule, wildcards in planned_jobs(result.stdout) if rule == "attack"}
    assert rounds == {"4"}


def test_snakemake_refuses_a_config_file_that_is_not_yaml(repo, tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text("data: [unclosed\n  x: {\n")
    result = run_snakemake(repo, tmp_path, config_file, "-n", check=False)
    assert result.returncode != 0
    assert "Config file is not valid JSON or YAML" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# --- in the first job that can know: the dataset file and the shards ----------------------

def _npz(path, **arrays):
    defaults = {"images": np.random.default_rng(0).integers(0, 256, (60, 1, 8, 8), dtype=np.uint8),
                "labels": np.arange(60) % 3}
    np.savez(path, **{**defaults, **arrays})
    return path


def _npz_data(base_config, path) -> dict:
    """The validated `data` block for an npz dataset: the config check cannot see inside the file."""
    base_config["data"].update(dataset="npz", path=str(path), test_size=10, public_pool_size=10, num_clients=4,
                               max_images=None)
    base_config["training"]["batch_size"] = 2
    return validate_config(base_config)["data"]


def _prepare(data, tmp_path):
    from gradienthide.stages.data import prepare_data

    outputs = {name: tmp_path / "out" / f"{name}.out" for name in inspect.signature(prepare_data).parameters
               if name not in ("data", "seed")}
    (tmp_path / "out").mkdir()
    try:
        prepare_data(data=data, seed=0, **outputs)
    finally:
        assert not any((tmp_path / "out").iterdir()), "a refused job left output behind"


def _not_zip(path):
    path.write_bytes(b"\x80\x04\x95 pickled, not a zip archive")
    return path


DATASET_CASES = [
    ("negative_label", lambda p: _npz(p, labels=np.r_[np.arange(59) % 3, -1]),
     r"array 'labels' has negative label -1 .*0\.\.K-1"),
    ("float_labels", lambda p: _npz(p, labels=(np.arange(60) % 3) + 0.5),
     r"array 'labels' must hold integers, got float64"),
    ("not_a_zip_archive", _not_zip, r"not an \.npz archive .*numpy\.savez"),
    ("single_class", lambda p: _npz(p, labels=np.zeros(60, np.int64)),
     r"all 60 images have label 0: a classifier needs at least 2 classes"),
    ("missing_arrays", lambda p: np.savez(p, pictures=np.zeros((2, 1, 8, 8), np.uint8)) or p,
     r"expected arrays 'images' and 'labels'"),
    ("images_not_uint8", lambda p: _npz(p, images=np.zeros((60, 1, 8, 8), np.float32)),
     r"array 'images' must be uint8"),
    ("label_beyond_class_names", lambda p: _npz(p, class_names=np.array(["a", "b"])),
     r"label 2 but only 2 class names"),
    ("too_few_images_for_the_split", lambda p: _npz(p, images=np.zeros((22, 1, 8, 8), np.uint8), labels=np.arange(22) % 2),
     r"data: 22 images cannot give test_size=10, public_pool_size=10 and at least one private image to each of num_clients=4"),
]


@pytest.mark.parametrize("make, message", [pytest.param(m, msg, id=i) for i, m, msg in DATASET_CASES])
def test_prepare_data_refuses_bad_dataset_file(base_config, tmp_path, make, message):
    data = _npz_data(base_config, make(tmp_path / "data.npz"))
    with pytest.raises(ValueError, match=message):
        _prepare(data, tmp_path)


def test_prepare_data_refuses_class_names_count_against_the_file(base_config, tmp_path):
    data = _npz_data(base_config, _npz(tmp_path / "data.npz"))
    data["class_names"] = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match=r"data\.class_names: 4 names given but the dataset has 3 classes"):
        _prepare(data, tmp_path)


def test_train_refuses_batch_size_above_an_npz_shard(base_config, tmp_path):
    """An npz dataset's size is known only to prepare_data: the train job refuses, writing nothing."""
    from gradienthide.stages.data import prepare_data
    from gradienthide.stages.train import train_defense

    config = validate_config({**base_config, "data": {**base_config["data"], "dataset": "npz",
                                                      "path": str(_npz(tmp_path / "data.npz")), "test_size": 10,
                                                      "public_pool_size": 10, "num_clients": 4, "max_images": None},
                              "training": {**base_config["training"], "batch_size": 11}})
    prepared = {name: tmp_path / f"{name}.out" for name in inspect.signature(prepare_data).parameters
                if name not in ("data", "seed")}
    prepare_data(data=config["data"], seed=0, **prepared)
    out = tmp_path / "train"
    out.mkdir()
    with pytest.raises(ValueError, match=r"training\.batch_size=11 exceeds the smallest client shard \(10 images"):
        train_defense(run_id="none", defense_name="none", defense_params={}, model_config=config["model"],
                      training=config["training"], seed=0, dataset=prepared["dataset"], splits=prepared["splits"],
                      accuracy=out / "accuracy.parquet", final_model=out / "final_model.safetensors",
                      round_dirs={2: str(out / "round2")}, data_partition=config["data"]["partition"])
    assert not any(out.iterdir())


def test_train_refuses_a_probe_batch_above_an_npz_shard(base_config, tmp_path):
    """A probe batch size above an npz dataset's smallest shard: the train job refuses, writing nothing."""
    from gradienthide.stages.data import prepare_data
    from gradienthide.stages.train import train_defense

    config = validate_config({**base_config, "data": {**base_config["data"], "dataset": "npz",
                                                      "path": str(_npz(tmp_path / "data.npz")), "test_size": 10,
                                                      "public_pool_size": 10, "num_clients": 4, "max_images": None},
                              "attack": {**base_config["attack"], "probes": {"batch_sizes": [2, 11]}}})
    prepared = {name: tmp_path / f"{name}.out" for name in inspect.signature(prepare_data).parameters
                if name not in ("data", "seed")}
    prepare_data(data=config["data"], seed=0, **prepared)
    out = tmp_path / "train"
    out.mkdir()
    with pytest.raises(ValueError, match=r"attack\.probes\.batch_sizes: \[11\] exceed the smallest client shard "
                                         r"\(10 images: 4 clients\)"):
        train_defense(run_id="none", defense_name="none", defense_params={}, model_config=config["model"],
                      training=config["training"], seed=0, dataset=prepared["dataset"], splits=prepared["splits"],
                      accuracy=out / "accuracy.parquet", final_model=out / "final_model.safetensors",
                      round_dirs={2: str(out / "round2")}, data_partition=config["data"]["partition"],
                      probes=config["attack"]["probes"], probe_dirs={2: {2: str(out / "round2" / "batch2")}})
    assert not any(out.iterdir())


def test_small_shards_under_label_skew_are_logged_not_refused(caplog):
    """Under data.partition: dirichlet small shards are the point: the job says so in its log."""
    from gradienthide.stages.train import check_batch_fits

    with caplog.at_level("WARNING"):
        check_batch_fits(training={"batch_size": 8}, shard_sizes={0: 30, 1: 3, 2: 1}, data_partition="dirichlet")
    assert "2 of 3 clients hold fewer than training.batch_size=8 images" in caplog.text
    assert "{1: 3, 2: 1}" in caplog.text
    with pytest.raises(ValueError, match=r"training\.batch_size=8 exceeds the smallest client shard \(1 images\)"):
        check_batch_fits(training={"batch_size": 8}, shard_sizes={0: 30, 1: 3, 2: 1}, data_partition="iid")
