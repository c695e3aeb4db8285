"""What the config check needs of CLIP, without torch: the published zero-shot accuracies a
simulated CLIP stands for, and finding the CLIP weights on disk (open_clip, which imports
torch, is consulted only when the weights are not a file at a known place).
gradienthide.clip_labels, which labels with CLIP, re-exports these."""

from __future__ import annotations

import os
from pathlib import Path

# OpenCLIP's zero-shot top-1 accuracy of ViT-B-32 laion2b_s34b_b79k (docs/openclip_results.csv,
# https://github.com/mlfoundations/open_clip/blob/main/docs/openclip_results.csv)
OPENCLIP_VIT_B_32_LAION2B_ZERO_SHOT = {"cifar10": 0.936, "cifar100": 0.756, "mnist": 0.700}
# the entry of that table a private dataset stands for (handwritten digits: MNIST)
REFERENCE_OF_DATASET = {"digits": "mnist", "cifar10": "cifar10", "cifar100": "cifar100"}


class ClipWeightsMissing(FileNotFoundError):
    """The configured CLIP weights are not on this machine."""


def simulated_accuracy(*, simulated: dict, dataset: str) -> tuple[float, str]:
    """The target zero-shot accuracy and the labeler's name, e.g. "simulated_clip:mnist-70.0%".

    An explicit `accuracy` wins; otherwise OpenCLIP's published number for `reference` (or
    for the table entry the private dataset stands for).
    """
    reference = simulated.get("reference") or REFERENCE_OF_DATASET.get(dataset)
    accuracy = simulated.get("accuracy")
    if accuracy is None:
        if reference not in OPENCLIP_VIT_B_32_LAION2B_ZERO_SHOT:
            raise ValueError(f"labels.simulated_clip.accuracy: no published CLIP accuracy for data.dataset {dataset!r}; "
                             f"set labels.simulated_clip.accuracy or labels.simulated_clip.reference "
                             f"(one of {sorted(OPENCLIP_VIT_B_32_LAION2B_ZERO_SHOT)})")
        accuracy = OPENCLIP_VIT_B_32_LAION2B_ZERO_SHOT[reference]
        name = f"simulated_clip:{reference}-{100 * accuracy:.1f}%"
    else:
        name = f"simulated_clip:{100 * accuracy:.1f}%"
    if simulated.get("noise", "uniform") == "confusion":
        name += "-confusion"
    return float(accuracy), name


def fetch_command(model: str, pretrained: str, cache_dir: str) -> str:
    return f"gradienthide fetch-clip --model {model} --pretrained {pretrained} --cache-dir {cache_dir}"


def resolve_checkpoint(model: str, pretrained: str, cache_dir: str | os.PathLike) -> tuple[str, dict]:
    """Find the weights for (model, pretrained) on disk without touching the network.

    Returns the checkpoint path and the tag's open_clip config (normalisation, quick_gelu).
    """
    cache_dir = Path(cache_dir).expanduser()
    as_path = Path(pretrained).expanduser()
    for candidate in (as_path, cache_dir / pretrained):
        if candidate.is_file():
            return str(candidate), {}
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

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
