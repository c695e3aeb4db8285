"""Labels for the public pool: CLIP zero-shot in the task's own classes, or the oracle.

CLIP weights are never downloaded at run time. They are looked up in a cache directory the
user controls (open_clip's own layout, as `python -m gradienthide.clip_labels fetch` leaves
it on a machine with internet), or given as a checkpoint path; when absent, the error names
the model, the tag, the directory and the command that fills it.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

LABEL_COLUMNS = ("index", "label", "confidence", "labeler")
log = logging.getLogger(__name__)


class ClipWeightsMissing(FileNotFoundError):
    """The configured CLIP weights are not on this machine."""


def oracle_labels(pool_indices: np.ndarray, true_labels: torch.Tensor) -> pd.DataFrame:
    """The pool's true labels: the upper bound of any public labeler."""
    return pd.DataFrame({
        "index": np.asarray(pool_indices, dtype=np.int64),
        "label": true_labels.numpy().astype(np.int64),
        "confidence": np.ones(len(pool_indices), dtype=np.float32),
        "labeler": "oracle",
    })


def fetch_command(model: str, pretrained: str, cache_dir: str) -> str:
    return f"python -m gradienthide.clip_labels fetch --model {model} --pretrained {pretrained} --cache-dir {cache_dir}"


def resolve_checkpoint(model: str, pretrained: str, cache_dir: str | os.PathLike) -> tuple[str, dict]:
    """Find the weights for (model, pretrained) on disk without touching the network.

    Returns the checkpoint path and the tag's open_clip config (normalisation, quick_gelu).
    """
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    cache_dir = Path(cache_dir).expanduser()
    as_path = Path(pretrained).expanduser()
    for candidate in (as_path, cache_dir / pretrained):
        if candidate.is_file():
            return str(candidate), {}
    if model not in open_clip.list_models():
        raise ValueError(f"labels.clip.model: open_clip has no model {model!r} (register a JSON config with labels.clip.model_config)")
    tag_config = open_clip.get_pretrained_cfg(model, pretrained)
    if not tag_config:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ValueError(f"labels.clip.pretrained: {pretrained!r} is neither a checkpoint file nor a tag of {model} (tags: {tags})")

    candidates = []
    if tag_config.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(tag_config["hf_hub"])
        names = [filename] if filename else [HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        for name in names:
            found = try_to_load_from_cache(repo_id, name, cache_dir=str(cache_dir))
            if isinstance(found, str):
                return found, tag_config
            candidates.append(f"{repo_id}/{name} (Hugging Face cache layout)")
    if tag_config.get("url"):
        target = cache_dir / os.path.basename(tag_config["url"])
        if target.is_file():
            return str(target), tag_config
        candidates.append(str(target))
    raise ClipWeightsMissing(
        f"CLIP weights for model {model!r}, pretrained tag {pretrained!r} are not in the cache directory "
        f"{cache_dir} (looked for: {'; '.join(candidates)}). Weights cannot be downloaded during a run. "
        f"On a machine with internet run\n    {fetch_command(model, pretrained, str(cache_dir))}\n"
        f"and copy {cache_dir} to this machine (or set labels.clip.cache_dir to where the weights are, or "
        f"labels.clip.pretrained to a checkpoint file). Without CLIP, set labels.labeler: oracle."
    )


def load_clip(model: str, pretrained: str, cache_dir: str, model_config: str | None = None, device: str = "cpu"):
    """The open_clip model (eval mode), its tokenizer and its image preprocessing config."""
    import open_clip

    if model_config:
        config_path = Path(model_config).expanduser()
        if not config_path.is_file():
            raise FileNotFoundError(f"labels.clip.model_config: {config_path} not found")
        open_clip.add_model_config(config_path)
    checkpoint, tag_config = resolve_checkpoint(model, pretrained, cache_dir)
    log.info("loading CLIP %s from %s", model, checkpoint)
    preprocess = {key: tag_config[key] for key in ("mean", "std") if key in tag_config}
    clip = open_clip.create_model(
        model, pretrained=checkpoint, device=device, force_quick_gelu=bool(tag_config.get("quick_gelu", False)),
        force_preprocess_cfg=preprocess or None, weights_only=True,
    )
    clip.eval()
    from open_clip.model import get_model_preprocess_cfg

    return clip, open_clip.get_tokenizer(model), get_model_preprocess_cfg(clip)


def prepare_images(images: torch.Tensor, preprocess_cfg: dict) -> torch.Tensor:
    """Images in [0, 1] to what the CLIP image tower expects: RGB, its size, its normalisation."""
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    size = preprocess_cfg.get("size", 224)
    size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    images = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(preprocess_cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), device=images.device)
    std = torch.tensor(preprocess_cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), device=images.device)
    return (images - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


@torch.no_grad()
def class_text_features(clip, tokenizer, class_names: list[str], templates: list[str], device: str) -> torch.Tensor:
    """One unit vector per class: the mean of its prompts' normalised text embeddings."""
    features = []
    for name in class_names:
        tokens = tokenizer([template.format(name) for template in templates]).to(device)
        embedded = F.normalize(clip.encode_text(tokens).float(), dim=-1)
        features.append(F.normalize(embedded.mean(0), dim=-1))
    return torch.stack(features)


@torch.no_grad()
def zero_shot_probabilities(clip, tokenizer, preprocess_cfg: dict, images: torch.Tensor, class_names: list[str],
                            templates: list[str], batch_size: int = 128, device: str = "cpu") -> torch.Tensor:
    """Softmax over the classes of CLIP's scaled image-text cosine similarity, [N, classes]."""
    text = class_text_features(clip, tokenizer, class_names, templates, device)
    scale = clip.logit_scale.exp().float() if hasattr(clip, "logit_scale") else torch.tensor(100.0)
    probabilities = []
    for start in range(0, len(images), batch_size):
        batch = prepare_images(images[start : start + batch_size].to(device), preprocess_cfg)
        image_features = F.normalize(clip.encode_image(batch).float(), dim=-1)
        probabilities.append((scale * image_features @ text.T).softmax(-1).cpu())
    return torch.cat(probabilities)


def clip_labels(pool_indices: np.ndarray, pool_images: torch.Tensor, class_names: list[str], clip_config: dict,
                device: str = "cpu") -> pd.DataFrame:
    """CLIP zero-shot labels for the pool, with the probability of the chosen class."""
    clip, tokenizer, preprocess_cfg = load_clip(clip_config["model"], clip_config["pretrained"], clip_config["cache_dir"],
                                                clip_config.get("model_config"), device)
    probabilities = zero_shot_probabilities(clip, tokenizer, preprocess_cfg, pool_images, class_names,
                                            clip_config["templates"], clip_config["batch_size"], device)
    confidence, label = probabilities.max(1)
    return pd.DataFrame({
        "index": np.asarray(pool_indices, dtype=np.int64),
        "label": label.numpy().astype(np.int64),
        "confidence": confidence.numpy().astype(np.float32),
        "labeler": f"clip:{clip_config['model']}:{Path(clip_config['pretrained']).name}",
    })


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Fetch CLIP weights into a cache directory (needs internet).")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download (model, pretrained) into --cache-dir with open_clip")
    fetch.add_argument("--model", required=True)
    fetch.add_argument("--pretrained", required=True)
    fetch.add_argument("--cache-dir", required=True)
    args = parser.parse_args(argv)
    import open_clip

    open_clip.create_model(args.model, pretrained=args.pretrained, cache_dir=str(Path(args.cache_dir).expanduser()))
    path, _ = resolve_checkpoint(args.model, args.pretrained, args.cache_dir)
    print(f"CLIP weights for {args.model}/{args.pretrained} are at {path}")


if __name__ == "__main__":
    main()
