"""The CLIP labeling path, offline: a tiny open_clip model registered from a JSON config."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from gradienthide import artifacts, clip_labels, config as gh_config, data, partition
from gradienthide.stages.labels import label_public_pool

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


def test_label_stage_writes_the_parquet_schema(tmp_path, tiny_clip):
    settings, _ = tiny_clip
    dataset = data.build_dataset({"dataset": "digits", "image_size": 8, "max_images": 60})
    data.save_dataset(tmp_path / "d.safetensors", dataset)
    artifacts.save_table(tmp_path / "s.parquet", partition.split_dataset(60, 10, 20, 2, seed=0))
    label_public_pool(labels={"labeler": "clip", "clip": settings}, dataset=tmp_path / "d.safetensors",
                      splits=tmp_path / "s.parquet", public_labels=tmp_path / "labels.parquet",
                      public_pool=tmp_path / "pool.safetensors")
    table = artifacts.load_table(tmp_path / "labels.parquet", clip_labels.LABEL_COLUMNS)
    pool = artifacts.load_tensors(tmp_path / "pool.safetensors")
    assert pool["images"].shape[0] == 20 and pool["labels"].tolist() == table["label"].tolist()
    assert len(table) == 20 and table["index"].is_unique
    assert set(table["index"]) == set(partition.indices_of(partition.split_dataset(60, 10, 20, 2, seed=0), "public"))
    assert table["label"].between(0, 9).all() and table["confidence"].between(0.1, 1.0).all()
    assert table["labeler"].iloc[0] == "clip:tiny-clip:tiny-clip-random.safetensors"
    assert str(table["label"].dtype) == "int64" and str(table["confidence"].dtype) == "float32"


def test_oracle_labels_are_the_true_labels():
    table = clip_labels.oracle_labels(np.array([4, 9]), torch.tensor([3, 1]))
    assert table["label"].tolist() == [3, 1] and table["labeler"].tolist() == ["oracle", "oracle"]


def test_missing_weights_name_model_tag_directory_and_the_fix(tmp_path):
    with pytest.raises(clip_labels.ClipWeightsMissing) as error:
        clip_labels.resolve_checkpoint("ViT-B-32", "laion2b_s34b_b79k", tmp_path / "empty")
    message = str(error.value)
    for part in ("'ViT-B-32'", "'laion2b_s34b_b79k'", str(tmp_path / "empty"),
                 "python -m gradienthide.clip_labels fetch --model ViT-B-32 --pretrained laion2b_s34b_b79k"):
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
