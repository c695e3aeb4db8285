"""Labels for the public pool in the task's own classes: the oracle, a simulated CLIP, or CLIP.

Three labelers behind one interface (`label_pool`), each returning one row per pool image
with the label, its confidence, the top-5 classes with probabilities and the labeler's name:

- `oracle`: the pool's true labels, the upper bound of any zero-shot labeler;
- `simulated_clip`: the true labels corrupted to a given zero-shot accuracy (seeded, exact),
  the offline stand-in for CLIP, with defaults from OpenCLIP's published zero-shot table;
- `clip`: real CLIP zero-shot in two cached steps: image embeddings (`embed_images`, saved
  once per model + pretrained tag + images), then labels from embeddings + class names +
  prompt templates (`clip_zero_shot`), so editing the prompts re-encodes no image.

The pool's true labels are read only here (oracle, simulated_clip) and by the label-quality
measurement; training and the attacks see only the labeler's labels.

CLIP weights are never downloaded at run time. They are looked up in a cache directory the
user controls (open_clip's own layout, as `gradienthide fetch-clip` leaves
it on a machine with internet), or given as a checkpoint path; when absent, the error names
the model, the tag, the directory and the command that fills it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gradienthide.clip_weights import (  # noqa: F401 (re-exported: the config check imports them without torch)
    OPENCLIP_VIT_B_32_LAION2B_ZERO_SHOT,
    REFERENCE_OF_DATASET,
    ClipWeightsMissing,
    fetch_command,
    resolve_checkpoint,
    simulated_accuracy,
)

LABEL_COLUMNS = ("index", "label", "confidence", "labeler")
TOP_K = 5
TOP_COLUMNS = tuple(f"top{k}_{what}" for k in range(1, TOP_K + 1) for what in ("label", "probability"))
POOL_LABEL_COLUMNS = (*LABEL_COLUMNS, *TOP_COLUMNS)
# what train reads: the selected images' labels, plus how they were chosen and how good they are
PUBLIC_LABEL_COLUMNS = (*POOL_LABEL_COLUMNS, "labeler_accuracy", "selection")
LABELERS = ("oracle", "simulated_clip", "clip")
CONFUSION_SHARE = 0.8  # class-confusion noise: share of a class's errors that go to its partner class
log = logging.getLogger(__name__)


def _hard_label_table(pool_indices, labels: np.ndarray, confidence: float, labeler: str) -> pd.DataFrame:
    """A table for a labeler without class probabilities: top-1 is the label, the rest empty."""
    labels = np.asarray(labels, dtype=np.int64)
    table = pd.DataFrame({
        "index": np.asarray(pool_indices, dtype=np.int64),
        "label": labels,
        "confidence": np.full(len(labels), confidence, dtype=np.float32),
        "labeler": labeler,
    })
    for k in range(1, TOP_K + 1):
        table[f"top{k}_label"] = labels if k == 1 else np.full(len(labels), -1, dtype=np.int64)
        table[f"top{k}_probability"] = (np.full(len(labels), confidence, dtype=np.float32) if k == 1
                                        else np.full(len(labels), np.nan, dtype=np.float32))
    return table


def oracle_labels(pool_indices: np.ndarray, true_labels: torch.Tensor) -> pd.DataFrame:
    """The pool's true labels: the upper bound of any public labeler."""
    return _hard_label_table(pool_indices, torch.as_tensor(true_labels).numpy(), 1.0, "oracle")


def confusion_partners(num_classes: int, seed: int) -> np.ndarray:
    """Each class's main wrong class: one seeded cycle through all classes, so no class is its own."""
    order = np.random.default_rng([seed, num_classes]).permutation(num_classes)
    partners = np.empty(num_classes, dtype=np.int64)
    partners[order] = np.roll(order, -1)
    return partners


def corrupt_labels(*, true_labels: np.ndarray, num_classes: int, accuracy: float, noise: str, seed: int) -> np.ndarray:
    """The true labels with exactly round((1 - accuracy) * N) of them wrong, chosen with `seed`.

    uniform: a wrong label is any other class, uniformly; confusion: a wrong label is the
    class's fixed partner (confusion_partners) with probability CONFUSION_SHARE, else
    another class uniformly, so errors concentrate like CLIP's do on look-alike classes.
    """
    true_labels = np.asarray(true_labels, dtype=np.int64)
    if num_classes < 2:
        raise ValueError(f"simulated_clip needs at least 2 classes, got {num_classes}")
    if (true_labels < 0).any() or (true_labels >= num_classes).any():
        raise ValueError("labels.labeler: simulated_clip needs the pool's true labels in the task's classes; "
                         f"{int((true_labels < 0).sum())} pool images have none (use labels.labeler: clip)")
    rng = np.random.default_rng(seed)
    wrong = rng.choice(len(true_labels), size=round((1.0 - accuracy) * len(true_labels)), replace=False)
    uniform_other = (true_labels[wrong] + rng.integers(1, num_classes, size=len(wrong))) % num_classes
    if noise == "uniform":
        replacement = uniform_other
    elif noise == "confusion":
        partner = confusion_partners(num_classes, seed)[true_labels[wrong]]
        replacement = np.where(rng.random(len(wrong)) < CONFUSION_SHARE, partner, uniform_other)
    else:
        raise ValueError(f"labels.simulated_clip.noise: {noise!r} is not one of uniform, confusion")
    labels = true_labels.copy()
    labels[wrong] = replacement
    return labels


def simulated_clip_labels(pool_indices, true_labels, *, num_classes: int, simulated: dict, dataset: str) -> pd.DataFrame:
    """CLIP's published zero-shot accuracy, simulated on the true labels. Its confidence is NaN:
    it has no class probabilities (so no confidence threshold applies to it)."""
    accuracy, name = simulated_accuracy(simulated=simulated, dataset=dataset)
    labels = corrupt_labels(true_labels=torch.as_tensor(true_labels).numpy(), num_classes=num_classes,
                            accuracy=accuracy, noise=simulated.get("noise", "uniform"), seed=simulated.get("seed", 0))
    return _hard_label_table(pool_indices, labels, float("nan"), name)


def probability_table(pool_indices, probabilities: torch.Tensor, labeler: str) -> pd.DataFrame:
    """Label, confidence and the top-5 classes with probabilities from [N, classes] probabilities."""
    k = min(TOP_K, probabilities.shape[1])
    top_probabilities, top_labels = probabilities.float().topk(k, dim=1)
    table = pd.DataFrame({
        "index": np.asarray(pool_indices, dtype=np.int64),
        "label": top_labels[:, 0].numpy().astype(np.int64),
        "confidence": top_probabilities[:, 0].numpy().astype(np.float32),
        "labeler": labeler,
    })
    for rank in range(1, TOP_K + 1):
        present = rank <= k
        table[f"top{rank}_label"] = top_labels[:, rank - 1].numpy().astype(np.int64) if present else np.int64(-1)
        table[f"top{rank}_probability"] = (top_probabilities[:, rank - 1].numpy().astype(np.float32) if present
                                           else np.float32("nan"))
    return table


def clip_labeler_name(clip_config: dict) -> str:
    return f"clip:{clip_config['model']}:{Path(clip_config['pretrained']).name}"


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
    """Softmax over the classes of CLIP's scaled image-text cosine similarity, [N, classes]:
    the two cached steps (encode_pool, probabilities_from_embeddings) in one call."""
    embeddings = {"image_features": encode_pool(clip, preprocess_cfg, images, batch_size=batch_size, device=device),
                  "logit_scale": logit_scale_of(clip)}
    return probabilities_from_embeddings(clip, tokenizer, embeddings=embeddings, class_names=class_names,
                                         templates=templates, device=device)


def clip_labels(pool_indices: np.ndarray, pool_images: torch.Tensor, class_names: list[str], clip_config: dict,
                device: str = "cpu") -> pd.DataFrame:
    """CLIP zero-shot labels for the pool in one go (the pipeline runs the two cached steps)."""
    embedded = embed_images(clip_config=clip_config, images=pool_images, device=device)
    return clip_zero_shot(pool_indices, clip_config=clip_config, class_names=class_names, embeddings=embedded,
                          device=device)


def _load_configured_clip(clip_config: dict, device: str):
    return load_clip(clip_config["model"], clip_config["pretrained"], clip_config["cache_dir"],
                     clip_config.get("model_config"), device)


@torch.no_grad()
def encode_pool(clip, preprocess_cfg: dict, images: torch.Tensor, *, batch_size: int, device: str = "cpu",
                progress: bool = False) -> torch.Tensor:
    """Unit-norm image embeddings [N, D] of images in [0, 1]: batched, no gradients, autocast on a GPU."""
    from tqdm import tqdm

    device_type = torch.device(device).type
    features = []
    for start in tqdm(range(0, len(images), batch_size), desc="CLIP image embeddings", disable=not progress):
        batch = prepare_images(images[start : start + batch_size].to(device), preprocess_cfg)
        with torch.autocast(device_type=device_type, enabled=device_type == "cuda"):
            encoded = clip.encode_image(batch)
        features.append(F.normalize(encoded.float(), dim=-1).cpu())
    return torch.cat(features) if features else torch.zeros(0, clip.visual.output_dim)


def logit_scale_of(clip) -> torch.Tensor:
    return (clip.logit_scale.exp().float().cpu() if hasattr(clip, "logit_scale") else torch.tensor(100.0)).reshape(1)


def embed_images(*, clip_config: dict, images: torch.Tensor, device: str = "cpu", progress: bool = False) -> dict:
    """Step 1: the configured CLIP's image embeddings of `images`, with its logit scale for step 2."""
    clip, _, preprocess_cfg = _load_configured_clip(clip_config, device)
    return {"image_features": encode_pool(clip, preprocess_cfg, images, batch_size=clip_config["batch_size"],
                                          device=device, progress=progress),
            "logit_scale": logit_scale_of(clip)}


@torch.no_grad()
def probabilities_from_embeddings(clip, tokenizer, *, embeddings: dict, class_names: list[str], templates: list[str],
                                  device: str = "cpu") -> torch.Tensor:
    """Softmax over the classes of the scaled cosine similarity of cached image embeddings to
    each class's prompt-averaged text embedding; only the text tower runs."""
    text = class_text_features(clip, tokenizer, list(class_names), templates, device).cpu()
    logits = embeddings["logit_scale"].reshape(()) * embeddings["image_features"].float() @ text.T
    return logits.softmax(-1)


def clip_zero_shot(pool_indices, *, clip_config: dict, class_names: list[str], embeddings: dict,
                   device: str = "cpu") -> pd.DataFrame:
    """Step 2: zero-shot labels from cached image embeddings, the class names and the prompt
    templates (averaged per class)."""
    clip, tokenizer, _ = _load_configured_clip(clip_config, device)
    probabilities = probabilities_from_embeddings(clip, tokenizer, embeddings=embeddings, class_names=class_names,
                                                  templates=clip_config["templates"], device=device)
    return probability_table(pool_indices, probabilities, clip_labeler_name(clip_config))


def select_pool(table: pd.DataFrame, *, min_confidence: float | None, per_class: int | None, seed: int) -> np.ndarray:
    """Positions (in `table`) of the images GradientHide may draw, in pool order.

    First the labels at least `min_confidence` sure (None: all), then at most `per_class`
    of each label, the most confident first (ties, e.g. labelers without probabilities, in a
    seeded random order; None: all).
    """
    keep = np.ones(len(table), dtype=bool)
    if min_confidence is not None:
        keep &= table["confidence"].to_numpy() >= min_confidence
    if per_class is not None:
        tie_break = np.random.default_rng(seed).permutation(len(table))
        confidence = np.nan_to_num(table["confidence"].to_numpy(dtype=np.float64), nan=0.0)
        order = np.lexsort((tie_break, -confidence))  # most confident first, ties seeded
        taken: dict[int, int] = {}
        balanced = np.zeros(len(table), dtype=bool)
        labels = table["label"].to_numpy()
        for position in order:
            if keep[position] and taken.get(int(labels[position]), 0) < per_class:
                taken[int(labels[position])] = taken.get(int(labels[position]), 0) + 1
                balanced[position] = True
        keep = balanced
    return np.flatnonzero(keep)


def selection_description(*, min_confidence: float | None, per_class: int | None) -> str:
    parts = ([f"confidence>={min_confidence:g}"] if min_confidence is not None else []) + \
            ([f"top-{per_class}-per-class"] if per_class is not None else [])
    return ",".join(parts) or "all"


def label_accuracy(labels: np.ndarray, true_labels: np.ndarray) -> float:
    """Share of labels equal to the true ones, over images with a true label in the task's
    classes (true label >= 0); NaN when there are none."""
    known = np.asarray(true_labels) >= 0
    return float((np.asarray(labels)[known] == np.asarray(true_labels)[known]).mean()) if known.any() else float("nan")


def public_training_data(*, public_labels, public_pool=None, device="cpu") -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """The selected public images (floats in [0, 1]) with the labeler's labels, and the
    labeler's name, as training draws them.

    The images come from the public pool artifact, written by the same job as `public_labels`
    (beside it, when `public_pool` is not given), so a pool from any source works.
    """
    from gradienthide import artifacts

    table = artifacts.load_table(public_labels, LABEL_COLUMNS)
    pool_path = public_pool or Path(public_labels).with_name("public_pool.safetensors")
    pool = artifacts.load_tensors(pool_path)
    if len(pool["images"]) != len(table) or not torch.equal(pool["labels"], torch.tensor(table["label"].to_numpy(copy=True))):
        raise ValueError(f"{pool_path}: its {len(pool['images'])} images and labels do not match the "
                         f"{len(table)} rows of {public_labels}; rerun the rule label_public_pool")
    images = pool["images"].to(device).float() / 255.0
    return (images, pool["labels"].to(device)), str(table["labeler"].iloc[0])


def fetch_weights(*, model: str, pretrained: str, cache_dir: str) -> Path:
    """`gradienthide fetch-clip`: download (model, pretrained) into `cache_dir` with open_clip (needs internet)."""
    import open_clip

    open_clip.create_model(model, pretrained=pretrained, cache_dir=str(Path(cache_dir).expanduser()))
    path, _ = resolve_checkpoint(model, pretrained, cache_dir)
    print(f"CLIP weights for {model}/{pretrained} are at {path}")
    return path
