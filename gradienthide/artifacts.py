"""Reading and writing the pipeline's artifacts: atomically, checksummed, without pickle.

Tensors go to safetensors with a sha256 of their contents in the file's metadata, so a
truncated or edited file is detected on load instead of silently used. Tables go to Parquet.
Every writer writes to a temporary file beside the target and renames it into place, so an
interrupted job never leaves a half-written artifact under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CHECKSUM_KEY = "gradienthide.sha256"


class CorruptArtifactError(RuntimeError):
    """An artifact exists but its contents cannot be trusted."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; give it a normal file's mode
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """A digest of names, dtypes, shapes and bytes, independent of insertion order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, object] | None = None) -> str:
    """Write `tensors` to a safetensors file; returns the content checksum stored with them.

    `metadata` values that are not strings are stored as JSON.
    """
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    checksum = tensors_sha256(contiguous)
    meta = {key: value if isinstance(value, str) else json.dumps(value) for key, value in (metadata or {}).items()}
    meta[CHECKSUM_KEY] = checksum
    with atomic_path(path) as tmp:
        save_file(contiguous, str(tmp), metadata=meta)
        _sort_metadata_in_header(tmp)
    return checksum


def _sort_metadata_in_header(path: Path) -> None:
    """Write the metadata keys of a safetensors header in sorted order, in place.

    The safetensors library writes them in hash order, which changes from process to process,
    so the same tensors and metadata would give different bytes run to run. The header keeps
    its length (the same JSON, reordered; padding kept), so nothing else in the file moves.
    """
    with open(path, "r+b") as handle:
        length = int.from_bytes(handle.read(8), "little")
        raw = handle.read(length)
        header = json.loads(raw)
        if "__metadata__" in header:
            header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > length:  # cannot happen for the same content; keep the library's bytes then
            return
        handle.seek(8)
        handle.write(text + b" " * (length - len(text)))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise CorruptArtifactError(f"{path}: not a readable safetensors file ({error})") from error


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a file written by `save_tensors`, verifying its checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: artifact not found")
    metadata = read_metadata(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CorruptArtifactError(f"{path}: not a readable safetensors file ({error})") from error
    expected = metadata.get(CHECKSUM_KEY)
    if expected is None:
        raise CorruptArtifactError(f"{path}: no {CHECKSUM_KEY} in metadata; not written by gradienthide")
    actual = tensors_sha256(tensors)
    if actual != expected:
        from gradienthide.manifest import regenerate_command

        raise CorruptArtifactError(f"{path}: checksum mismatch (stored {expected[:12]}, contents {actual[:12]}); "
                                   f"regenerate it and what depends on it with\n    {regenerate_command(path)}")
    return {name: t.to(device) for name, t in tensors.items()}


def load_json_metadata(path: str | os.PathLike, key: str):
    metadata = read_metadata(path)
    if key not in metadata:
        raise CorruptArtifactError(f"{path}: metadata key {key!r} missing")
    return json.loads(metadata[key])


def save_table(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a DataFrame to Parquet (or CSV when the path ends in .csv), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False, engine="pyarrow")


def load_table(path: str | os.PathLike, required_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: table not found")
    try:
        table = pd.read_parquet(path, engine="pyarrow")
    except Exception as error:  # pyarrow raises several types for damaged files
        raise CorruptArtifactError(f"{path}: not a readable Parquet file ({error})") from error
    missing = [column for column in required_columns if column not in table.columns]
    if missing:
        raise CorruptArtifactError(f"{path}: missing columns {missing}")
    return table
