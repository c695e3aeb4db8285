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
