"""The CLIP labeling path, offline: a tiny open_clip model registered from a JSON config."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import planned_jobs, run_snakemake, write_config
from safetensors.torch import save_file

from gradienthide import artifacts, clip_labels, config as gh_config, data, partition
from gradienthide.stages.data import prepare_public
from gradienthide.stages.labels import embed_public, label_public, label_public_pool, label_quality

TINY_CONFIG = "tests/configs/tiny-clip.json"


@pytest.fixture
def tiny_clip(tmp_path, repo):
    """Random tiny CLIP weights saved as a checkpoint in a cache directory."""
    import open_clip

    open_clip.add_model_config(repo / TINY_CONFIG)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-clip")
    cache = tmp_path / "clip-cache"
    cache.mkdir()
    checkpoint = cache / "tiny-clip-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, checkpoint)
    return {"model": "tiny-clip", "pretrained": checkpoint.name, "cache_dir": str(cache),
            "model_config": str(repo / TINY_CONFIG), "templates": ["a photo of the number {}.", "the digit {}"],
            "batch_size": 16}, model


def test_weights_are_loaded_from_the_cache_directory(tiny_clip):
    settings, reference = tiny_clip
    model, tokenizer, preprocess = clip_labels.load_clip(settings["model"], settings["pretrained"], settings["cache_dir"],
                                                         settings["model_config"])
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert preprocess["size"] in (32, (32, 32))


def test_zero_shot_probabilities_cover_the_task_classes(tiny_clip):
    settings, _ = tiny_clip
    model, tokenizer, preprocess = clip_labels.load_clip(settings["model"], settings["pretrained"], settings["cache_dir"],
                                                         settings["model_config"])
    images = torch.rand(7, 1, 16, 16)  # grey images are fed to CLIP as RGB
    probabilities = clip_labels.zero_shot_probabilities(model, tokenizer, preprocess, images, ["zero", "one", "two"],
                                                        settings["templates"], batch_size=3)
    assert probabilities.shape == (7, 3)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(7))


def _digits_pool(tmp_path, pool_size=20):
    """A prepared digits task and its private-slice public pool, as prepare_data/prepare_public leave them."""
    dataset = data.build_dataset({"dataset": "digits", "image_size": 8, "max_images": 60})
    data.save_dataset(tmp_path / "d.safetensors", dataset)
    artifacts.save_table(tmp_path / "s.parquet", partition.split_dataset(60, 10, pool_size, 2, seed=0))
    prepare_public(public={"dataset": "private_slice"}, dataset=tmp_path / "d.safetensors",
                   splits=tmp_path / "s.parquet", pool_source=tmp_path / "pool_source.safetensors")
    return tmp_path / "pool_source.safetensors"


def test_clip_label_steps_write_the_parquet_schema(tmp_path, tiny_clip):
    settings, _ = tiny_clip
    pool_source = _digits_pool(tmp_path)
    embed_public(clip=settings, pool_source=pool_source, embeddings=tmp_path / "emb.safetensors")
    label_public(labels={"labeler": "clip", "clip": settings}, dataset="digits", pool_source=pool_source,
                 embeddings=tmp_path / "emb.safetensors", pool_labels=tmp_path / "pool_labels.parquet")
    label_public_pool(selection={}, pool_source=pool_source, pool_labels=tmp_path / "pool_labels.parquet",
                      public_labels=tmp_path / "labels.parquet", public_pool=tmp_path / "pool.safetensors")
    table = artifacts.load_table(tmp_path / "labels.parquet", clip_labels.PUBLIC_LABEL_COLUMNS)
    pool = artifacts.load_tensors(tmp_path / "pool.safetensors")
    assert pool["images"].shape[0] == 20 and pool["labels"].tolist() == table["label"].tolist()
    assert len(table) == 20 and table["index"].is_unique
    assert set(table["index"]) == set(partition.indices_of(partition.split_dataset(60, 10, 20, 2, seed=0), "public"))
    assert table["label"].between(0, 9).all() and table["confidence"].between(0.1, 1.0).all()
    assert table["labeler"].iloc[0] == "clip:tiny-clip:tiny-clip-random.safetensors"
    assert str(table["label"].dtype) == "int64" and str(table["confidence"].dtype) == "float32"
    # top-5: the first is the label, probabilities fall with rank
    assert (table["top1_label"] == table["label"]).all()
    probabilities = table[[f"top{k}_probability" for k in range(1, 6)]].to_numpy()
    assert (np.diff(probabilities, axis=1) <= 0).all() and (probabilities.sum(1) <= 1 + 1e-5).all()
    true_labels = data.load_public_pool_source(pool_source)[0]["true_labels"].numpy()
    assert table["labeler_accuracy"].iloc[0] == pytest.approx((table["label"].to_numpy() == true_labels).mean())


def test_two_cached_steps_give_the_one_shot_zero_shot_probabilities(tiny_clip):
    settings, _ = tiny_clip
    images = torch.rand(9, 1, 8, 8)
    names = ["zero", "one", "two", "three", "four", "five", "six"]
    model, tokenizer, preprocess = clip_labels.load_clip(settings["model"], settings["pretrained"], settings["cache_dir"],
                                                         settings["model_config"])
    direct = clip_labels.zero_shot_probabilities(model, tokenizer, preprocess, images, names, settings["templates"],
                                                 batch_size=4)
    embedded = clip_labels.embed_images(clip_config=settings, images=images)
    table = clip_labels.clip_zero_shot(np.arange(9), clip_config=settings, class_names=names, embeddings=embedded)
    top_probabilities, top_labels = direct.topk(5, dim=1)
    assert table["label"].tolist() == top_labels[:, 0].tolist()
    np.testing.assert_allclose(table[[f"top{k}_probability" for k in range(1, 6)]].to_numpy(), top_probabilities.numpy(),
                               rtol=1e-4, atol=1e-6)


def test_label_step_refuses_embeddings_of_other_images(tmp_path, tiny_clip):
    settings, _ = tiny_clip
    pool_source = _digits_pool(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    other_source = _digits_pool(other, pool_size=21)
    embed_public(clip=settings, pool_source=other_source, embeddings=tmp_path / "emb.safetensors")
    with pytest.raises(ValueError, match="embeddings of other images"):
        label_public(labels={"labeler": "clip", "clip": settings}, dataset="digits", pool_source=pool_source,
                     embeddings=tmp_path / "emb.safetensors", pool_labels=tmp_path / "pool_labels.parquet")


def test_clip_without_embeddings_fails_instead_of_falling_back(tmp_path, tiny_clip):
    settings, _ = tiny_clip
    pool_source = _digits_pool(tmp_path)
    with pytest.raises(ValueError, match="embed_public"):
        label_public(labels={"labeler": "clip", "clip": settings}, dataset="digits", pool_source=pool_source,
                     pool_labels=tmp_path / "pool_labels.parquet")


@pytest.mark.parametrize("noise", ["uniform", "confusion"])
@pytest.mark.parametrize("accuracy", [0.7, 0.936, 0.756])
def test_simulated_clip_hits_the_target_accuracy_exactly(noise, accuracy):
    true_labels = np.random.default_rng(3).integers(0, 10, size=997)
    labels = clip_labels.corrupt_labels(true_labels=true_labels, num_classes=10, accuracy=accuracy, noise=noise, seed=1)
    wrong = int((labels != true_labels).sum())
    assert wrong == round((1 - accuracy) * 997)
    assert labels.min() >= 0 and labels.max() <= 9
    again = clip_labels.corrupt_labels(true_labels=true_labels, num_classes=10, accuracy=accuracy, noise=noise, seed=1)
    other_seed = clip_labels.corrupt_labels(true_labels=true_labels, num_classes=10, accuracy=accuracy, noise=noise, seed=2)
    assert (labels == again).all() and not (labels == other_seed).all()


def test_confusion_noise_sends_most_errors_of_a_class_to_one_partner():
    true_labels = np.repeat(np.arange(10), 200)
    labels = clip_labels.corrupt_labels(true_labels=true_labels, num_classes=10, accuracy=0.5, noise="confusion", seed=0)
    partners = clip_labels.confusion_partners(10, 0)
    assert sorted(partners.tolist()) == list(range(10)) and (partners != np.arange(10)).all()
    wrong = labels != true_labels
    to_partner = (labels[wrong] == partners[true_labels[wrong]]).mean()
    assert to_partner > 0.75
    uniform = clip_labels.corrupt_labels(true_labels=true_labels, num_classes=10, accuracy=0.5, noise="uniform", seed=0)
    assert (uniform[wrong] == partners[true_labels[wrong]]).mean() < 0.25


def test_simulated_clip_defaults_are_openclips_published_accuracies():
    assert clip_labels.simulated_accuracy(simulated={}, dataset="digits") == (0.700, "simulated_clip:mnist-70.0%")
    assert clip_labels.simulated_accuracy(simulated={"reference": "cifar10"}, dataset="npz") == (
        0.936, "simulated_clip:cifar10-93.6%")
    assert clip_labels.simulated_accuracy(simulated={"reference": "cifar100", "noise": "confusion"}, dataset="npz") == (
        0.756, "simulated_clip:cifar100-75.6%-confusion")
    assert clip_labels.simulated_accuracy(simulated={"accuracy": 0.5}, dataset="npz")[1] == "simulated_clip:50.0%"
    with pytest.raises(ValueError, match="labels.simulated_clip.accuracy"):
        clip_labels.simulated_accuracy(simulated={}, dataset="npz")


def test_selection_thresholds_then_balances_the_most_confident_per_class():
    table = pd.DataFrame({"label": [0, 0, 0, 1, 1, 2], "confidence": [0.9, 0.5, 0.8, 0.95, 0.2, 0.6]})
    assert clip_labels.select_pool(table, min_confidence=None, per_class=None, seed=0).tolist() == [0, 1, 2, 3, 4, 5]
    assert clip_labels.select_pool(table, min_confidence=0.55, per_class=None, seed=0).tolist() == [0, 2, 3, 5]
    assert clip_labels.select_pool(table, min_confidence=None, per_class=1, seed=0).tolist() == [0, 3, 5]
    assert clip_labels.select_pool(table, min_confidence=0.85, per_class=2, seed=0).tolist() == [0, 3]
    no_confidence = table.assign(confidence=np.nan)
    picked = [clip_labels.select_pool(no_confidence, min_confidence=None, per_class=1, seed=s).tolist() for s in range(6)]
    assert all(len(p) == 3 for p in picked) and len({tuple(p) for p in picked}) > 1  # seeded ties


def test_public_pool_holds_only_the_selected_images_with_the_labelers_labels(tmp_path):
    pool_source = _digits_pool(tmp_path, pool_size=40)
    label_public(labels={"labeler": "simulated_clip", "simulated_clip": {"reference": "mnist", "seed": 0}},
                 dataset="digits", pool_source=pool_source, pool_labels=tmp_path / "pool_labels.parquet")
    label_public_pool(selection={"per_class": 2, "seed": 0}, pool_source=pool_source,
                      pool_labels=tmp_path / "pool_labels.parquet", public_labels=tmp_path / "labels.parquet",
                      public_pool=tmp_path / "pool.safetensors")
    source = data.load_public_pool_source(pool_source)[0]
    table = artifacts.load_table(tmp_path / "labels.parquet", clip_labels.PUBLIC_LABEL_COLUMNS)
    pool = artifacts.load_tensors(tmp_path / "pool.safetensors")
    assert table["label"].value_counts().max() <= 2 and len(table) == len(pool["images"]) < 40
    assert table["labeler"].iloc[0] == "simulated_clip:mnist-70.0%"
    assert table["labeler_accuracy"].iloc[0] == pytest.approx(0.7) and table["selection"].iloc[0] == "top-2-per-class"
    positions = [source["source_index"].tolist().index(i) for i in table["index"]]
    assert torch.equal(pool["images"], source["images"][positions])
    assert pool["labels"].tolist() == table["label"].tolist()
    assert pool["labels"].tolist() != source["true_labels"][positions].tolist()  # the labeler's, not the truth
    (images, labels), labeler = clip_labels.public_training_data(public_labels=tmp_path / "labels.parquet",
                                                                 public_pool=tmp_path / "pool.safetensors")
    assert torch.equal(labels, pool["labels"]) and labeler == "simulated_clip:mnist-70.0%"
    torch.testing.assert_close(images, pool["images"].float() / 255)


def test_label_quality_names_the_labeler_and_measures_before_and_after_selection(tmp_path):
    pool_source = _digits_pool(tmp_path, pool_size=40)
    label_public(labels={"labeler": "simulated_clip", "simulated_clip": {"accuracy": 0.5, "seed": 0}},
                 dataset="digits", pool_source=pool_source, pool_labels=tmp_path / "pool_labels.parquet")
    label_public_pool(selection={"per_class": 3}, pool_source=pool_source, pool_labels=tmp_path / "pool_labels.parquet",
                      public_labels=tmp_path / "labels.parquet", public_pool=tmp_path / "pool.safetensors")
    outputs = {"quality_table": tmp_path / "q.parquet", "quality_csv": tmp_path / "q.csv",
               "confusion_png": tmp_path / "c.png"}
    label_quality(pool_source=pool_source, pool_labels=tmp_path / "pool_labels.parquet",
                  public_labels=tmp_path / "labels.parquet", **outputs)
    quality = artifacts.load_table(tmp_path / "q.parquet")
    overall = quality[quality["class"] == "all"].set_index("stage")
    assert overall.loc["pool", "accuracy"] == pytest.approx(0.5) and overall.loc["pool", "images"] == 40
    selected = artifacts.load_table(tmp_path / "labels.parquet")
    truth = data.load_public_pool_source(pool_source)[0]
    truth_of = dict(zip(truth["source_index"].tolist(), truth["true_labels"].tolist()))
    expected = np.mean([truth_of[i] == label for i, label in zip(selected["index"], selected["label"])])
    assert overall.loc["selected", "accuracy"] == pytest.approx(expected)
    assert set(quality["labeler"]) == {"simulated_clip:50.0%"} and len(quality) == 2 * 11
    first = (tmp_path / "c.png").read_bytes()
    label_quality(pool_source=pool_source, pool_labels=tmp_path / "pool_labels.parquet",
                  public_labels=tmp_path / "labels.parquet", **outputs)
    assert (tmp_path / "c.png").read_bytes() == first  # deterministic bytes


def test_editing_only_the_templates_reruns_labelling_not_embedding(tmp_path, repo, tiny_clip, tiny_config):
    settings, _ = tiny_clip
    config = copy.deepcopy(tiny_config)
    config["labels"] = {"labeler": "clip", "clip": settings}
    config["metrics"]["lpips"] = False
    config_file = write_config(tmp_path / "config.yaml", config)
    targets = ["results/labels/public_labels.parquet", "results/report/label_confusion.png"]
    run_snakemake(repo, tmp_path, config_file, *targets)
    assert (tmp_path / "results/labels/embeddings/tiny-clip-tiny-clip-random.safetensors").is_file()
    config["labels"]["clip"]["templates"] = ["a picture of a {}."]
    write_config(config_file, config)
    planned = {rule for rule, _ in planned_jobs(run_snakemake(repo, tmp_path, config_file, "-n", *targets).stdout)}
    assert planned == {"label_public", "label_public_pool", "label_quality"}
    # and the whole experiment: dependants of the labels (GradientHide's training) rerun, the embedding never
    everything = {rule for rule, _ in planned_jobs(run_snakemake(repo, tmp_path, config_file, "-n").stdout)}
    assert {"label_public", "train"} <= everything and not everything & {"embed_public", "prepare_public", "prepare_data"}


def test_oracle_labels_are_the_true_labels():
    table = clip_labels.oracle_labels(np.array([4, 9]), torch.tensor([3, 1]))
    assert table["label"].tolist() == [3, 1] and table["labeler"].tolist() == ["oracle", "oracle"]


def test_missing_weights_name_model_tag_directory_and_the_fix(tmp_path):
    with pytest.raises(clip_labels.ClipWeightsMissing) as error:
        clip_labels.resolve_checkpoint("ViT-B-32", "laion2b_s34b_b79k", tmp_path / "empty")
    message = str(error.value)
    for part in ("'ViT-B-32'", "'laion2b_s34b_b79k'", str(tmp_path / "empty"),
                 "gradienthide fetch-clip --model ViT-B-32 --pretrained laion2b_s34b_b79k"):
        assert part in message


def test_weights_in_the_hugging_face_cache_layout_are_found(tmp_path):
    # what `fetch` (open_clip's download) leaves in the cache directory
    repo_dir = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text("abc123")
    snapshot = repo_dir / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    path, tag_config = clip_labels.resolve_checkpoint("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    assert path == str(snapshot / "open_clip_model.safetensors") and tag_config["mean"][0] == pytest.approx(0.4815, abs=1e-3)


def test_unknown_tag_and_model_are_config_errors(tmp_path):
    with pytest.raises(ValueError, match="labels.clip.pretrained: 'nope'"):
        clip_labels.resolve_checkpoint("ViT-B-32", "nope", tmp_path)
    with pytest.raises(ValueError, match="labels.clip.model"):
        clip_labels.resolve_checkpoint("ViT-Q-99", "openai", tmp_path)


def test_preflight_stops_a_clip_run_without_weights(default_config, tmp_path):
    default_config["labels"] = {"labeler": "clip", "clip": {"cache_dir": str(tmp_path)}}
    with pytest.raises(clip_labels.ClipWeightsMissing, match="ViT-B-32"):
        gh_config.preflight(gh_config.validate_config(default_config))
