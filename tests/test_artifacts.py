import pandas as pd
import pytest
import torch

from gradienthide import artifacts


def test_tensors_round_trip_with_metadata(tmp_path):
    tensors = {"a": torch.arange(6.0).view(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    path = tmp_path / "x.safetensors"
    artifacts.save_tensors(path, tensors, metadata={"names": ["p", "q"], "note": "hi"})
    loaded = artifacts.load_tensors(path)
    assert torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["b"], tensors["b"])
    assert artifacts.load_json_metadata(path, "names") == ["p", "q"]
    assert artifacts.read_metadata(path)["note"] == "hi"


def test_changed_bytes_are_detected(tmp_path):
    path = tmp_path / "x.safetensors"
    artifacts.save_tensors(path, {"a": torch.zeros(100)})
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF  # flip bits inside the tensor data
    path.write_bytes(bytes(raw))
    with pytest.raises(artifacts.CorruptArtifactError, match="checksum mismatch"):
        artifacts.load_tensors(path)


def test_truncated_file_is_detected(tmp_path):
    path = tmp_path / "x.safetensors"
    artifacts.save_tensors(path, {"a": torch.zeros(100)})
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(artifacts.CorruptArtifactError, match="x.safetensors"):
        artifacts.load_tensors(path)


def test_failed_write_leaves_no_file_behind(tmp_path):
    path = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with artifacts.atomic_path(path) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("job killed")
    assert list(tmp_path.iterdir()) == []


def test_existing_artifact_survives_a_failed_rewrite(tmp_path):
    path = tmp_path / "t.parquet"
    artifacts.save_table(path, pd.DataFrame({"x": [1, 2]}))

    class Broken(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            raise OSError("disk full")

    with pytest.raises(OSError):
        artifacts.save_table(path, Broken({"x": [3]}))
    assert artifacts.load_table(path)["x"].tolist() == [1, 2]


def test_damaged_table_and_missing_columns_are_reported(tmp_path):
    path = tmp_path / "t.parquet"
    artifacts.save_table(path, pd.DataFrame({"x": [1]}))
    with pytest.raises(artifacts.CorruptArtifactError, match=r"missing columns \['y'\]"):
        artifacts.load_table(path, ("x", "y"))
    path.write_bytes(b"not parquet")
    with pytest.raises(artifacts.CorruptArtifactError, match="not a readable Parquet"):
        artifacts.load_table(path)


def test_the_same_tensors_and_metadata_give_the_same_bytes_in_every_process(tmp_path):
    import subprocess
    import sys

    script = ("import sys, torch; from gradienthide import artifacts; "
              "artifacts.save_tensors(sys.argv[1], {'a': torch.arange(4.0)}, "
              "metadata={'model_info': {'x': 1}, 'defense': 'none', 'round': 1, 'protocol': 'p'})")
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path in paths:  # each process hashes the metadata keys differently
        subprocess.run([sys.executable, "-c", script, str(path)], check=True)
    assert len({path.read_bytes() for path in paths}) == 1
    assert artifacts.read_metadata(paths[0])["defense"] == "none"


def test_reconstructions_keep_their_budget_checkpoints_even_when_one_is_the_result_itself(tmp_path):
    """An attack stopped early (L-BFGS diverging) hands out its result again at later checkpoints:
    the file stores a copy, and reading gives every checkpoint, the last being the images."""
    from gradienthide import dumps

    early = torch.rand(2, 1, 8, 8)
    items = []
    for position, client in ((0, 5), (1, 7)):
        images = torch.rand(2, 1, 8, 8)
        items.append(dumps.Reconstruction(position, client, images, torch.tensor([1, 2]),
                                          checkpoints={3: early.clone(), 6: images, 12: images}))
    path = tmp_path / "reconstructions.safetensors"
    dumps.write_reconstructions(path, items, attack="dlg", label_source="recovered")
    read, label_source = dumps.read_reconstructions(path)
    assert label_source == "recovered" and [r.client for r in read] == [5, 7]
    for item, written in zip(read, items):
        assert sorted(item.checkpoints) == [3, 6, 12]
        assert torch.equal(item.checkpoints[3], early) and torch.equal(item.checkpoints[6], written.images)
        assert torch.equal(item.checkpoints[12], item.images) and torch.equal(item.images, written.images)
