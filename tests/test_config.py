import subprocess

import pytest

from conftest import snakemake_executable, write_config
from gradienthide.config import ConfigError, defense_runs, shard_count, shard_positions, validate_config


def test_default_config_is_valid_and_gets_defaults(default_config):
    config = validate_config(default_config)
    assert config["labels"]["clip"]["batch_size"] == 128  # filled from the schema
    assert config["model"]["activation"] == "relu"


def test_unknown_key_is_named(default_config):
    default_config["training"]["roundz"] = 3
    with pytest.raises(ConfigError, match=r"training\.roundz: unknown key"):
        validate_config(default_config)


def test_wrong_type_is_named_with_its_path(default_config):
    default_config["training"]["rounds"] = "ten"
    with pytest.raises(ConfigError, match=r"training\.rounds: 'ten' is not of type 'integer'"):
        validate_config(default_config)


def test_unknown_defense_parameter_is_named(default_config):
    default_config["defenses"]["gradienthide"]["public_stepz"] = 2
    with pytest.raises(ConfigError, match=r"defenses\.gradienthide\.public_stepz: unknown key"):
        validate_config(default_config)


def test_attack_round_after_last_round_is_rejected(default_config):
    default_config["training"]["attack_rounds"] = [1, 999]
    with pytest.raises(ConfigError, match=r"training\.attack_rounds: rounds \[999\] exceed"):
        validate_config(default_config)


def test_npz_dataset_needs_a_path(default_config):
    default_config["data"]["dataset"] = "npz"
    with pytest.raises(ConfigError, match=r"data\.path: required"):
        validate_config(default_config)


def test_list_valued_parameters_expand_to_one_run_each(default_config):
    default_config["defenses"] = {"none": {}, "gradienthide": {"public_steps": [1, 2], "public_lr": 0.1}}
    runs = defense_runs(validate_config(default_config))
    assert set(runs) == {"none", "gradienthide-public_steps1", "gradienthide-public_steps2"}
    assert runs["gradienthide-public_steps2"].params == {"public_steps": 2, "public_lr": 0.1}
    assert runs["none"].params == {}


def test_shards_cover_the_attacked_clients_once(default_config):
    default_config["attack"] = {"clients_per_round": 5, "shard_size": 2}
    config = validate_config(default_config)
    shards = [shard_positions(config, s) for s in range(shard_count(config))]
    assert shards == [[0, 1], [2, 3], [4]]


def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path, repo, tiny_config):
    tiny_config["training"]["roundz"] = 3
    config_file = write_config(tmp_path / "bad.yaml", tiny_config)
    result = subprocess.run(
        [snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(config_file), "--cores", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "training.roundz: unknown key" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_shipped_experiment_configs_are_valid(repo):
    from gradienthide.config import load_config

    for path in sorted((repo / "configs").glob("*.yaml")):
        config = load_config(path)
        assert defense_runs(config), path


def test_schema_knows_exactly_the_registered_defenses_and_attacks():
    from gradienthide.attacks import ATTACKS
    from gradienthide.config import load_schema
    from gradienthide.defenses import DEFENSES

    schema = load_schema()
    assert set(schema["properties"]["defenses"]["properties"]) == set(DEFENSES)
    assert set(schema["properties"]["attacks"]["properties"]) == set(ATTACKS)
    assert set(schema["$defs"]["attack_defenses"]["items"]["enum"]) == set(DEFENSES)


def test_snakemake_stops_a_clip_run_without_weights_before_any_job(tmp_path, repo, tiny_config):
    cache = tmp_path / "no-weights-here"
    tiny_config["labels"] = {"labeler": "clip", "clip": {"model": "ViT-B-32", "pretrained": "openai",
                                                         "cache_dir": str(cache)}}
    config_file = write_config(tmp_path / "clip.yaml", tiny_config)
    result = subprocess.run(
        [snakemake_executable(), "--snakefile", str(repo / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(config_file), "--cores", "1"],
        capture_output=True, text=True, timeout=120,
    )
    message = result.stdout + result.stderr
    assert result.returncode != 0 and not (tmp_path / "results").exists()
    for part in ("'ViT-B-32'", "'openai'", str(cache), "gradienthide fetch-clip"):
        assert part in message


def test_gradinversion_needs_a_batchnorm_model(default_config):
    del default_config["attacks"]["adaptive_infer"]  # it needs the opposite (tested below)
    default_config["attacks"]["gradinversion"] = {"iterations": 10}
    with pytest.raises(ConfigError, match=r"attacks\.gradinversion: its BatchNorm prior needs model\.norm: batch"):
        validate_config(default_config)
    default_config["model"]["norm"] = "batch"
    assert validate_config(default_config)["attacks"]["gradinversion"]["iterations"] == 10


def test_draw_inference_refuses_a_batchnorm_model_before_any_job(default_config):
    default_config["model"]["norm"] = "batch"
    with pytest.raises(ConfigError, match=r"attacks\.adaptive_infer: draw inference needs per-example gradients"):
        validate_config(default_config)


def test_probes_default_to_as_many_uploads_as_the_real_ones_and_shard_alike(tiny_config):
    from gradienthide.config import attacked_uploads, attacked_uploads_of

    tiny_config["attack"] = {"clients_per_round": 3, "shard_size": 2, "probes": {"batch_sizes": [2, 4]}}
    config = validate_config(tiny_config)
    assert config["attack"]["probes"] == {"batch_sizes": [2, 4], "local_steps": 1, "uploads": 3, "attacks": None}
    assert config["attack"]["deployed"] is True
    assert attacked_uploads(config) == ["deployed", "batch2", "batch4"]
    assert [shard_positions(config, s, "batch4") for s in range(shard_count(config, "batch4"))] == [[0, 1], [2]]
    config["attack"]["probes"]["uploads"] = 1
    config["attack"]["deployed"] = False
    assert attacked_uploads(config) == ["batch2", "batch4"] and shard_count(config, "batch2") == 1
    assert shard_count(config) == 2  # the real uploads' own count is unchanged
    config["attack"]["deployed"] = True
    config["attack"]["probes"]["attacks"] = ["ig"]
    assert attacked_uploads_of(config, "ig") == ["deployed", "batch2", "batch4"]
    assert attacked_uploads_of(config, "dlg") == ["deployed"]


def test_probe_uploads_can_differ_by_batch_size(tiny_config):
    # fewer uploads where each holds more images: [2, 4] probed with 3 and 1 uploads
    tiny_config["attack"] = {"clients_per_round": 3, "shard_size": 2,
                             "probes": {"batch_sizes": [2, 4], "uploads": [3, 1]}}
    config = validate_config(tiny_config)
    assert shard_count(config, "batch2") == 2 and shard_positions(config, 1, "batch2") == [2]
    assert shard_count(config, "batch4") == 1 and shard_positions(config, 0, "batch4") == [0]
    from gradienthide.fl import ProbeSettings

    assert ProbeSettings.from_config(config["attack"]["probes"]).uploads == (3, 1)
