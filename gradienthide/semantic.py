"""Semantic distortion: does a reference classifier still see the original's class in a
reconstruction? Reported per image as `semantic_match` (1 when the reference assigns the
reconstruction to the original image's class); its mean is the fraction of reconstructions
that keep their meaning, so lower means more semantic distortion.

The reference is CLIP zero-shot (the labels.clip settings) when its weights are on disk,
otherwise the classifier trained by the no-defense run; `metrics.semantic_reference`
chooses (auto | clip | no_defense) and every row records the one used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gradienthide import clip_weights

if TYPE_CHECKING:  # the evaluation jobs import torch; choosing the reference does not
    import torch

NO_DEFENSE_RUN = "none"


def clip_weights_present(clip_config: dict) -> bool:
    cache_dir = Path(clip_config["cache_dir"]).expanduser()
    if not Path(clip_config["pretrained"]).expanduser().is_file() and not cache_dir.is_dir():
        return False  # every place the weights could be is under cache_dir: no need to import open_clip
    try:
        clip_weights.resolve_checkpoint(clip_config["model"], clip_config["pretrained"], clip_config["cache_dir"])
    except (clip_weights.ClipWeightsMissing, ValueError):
        return False
    return True


def choose_reference(metrics_config: dict, clip_config: dict) -> str:
    """'clip' or 'no_defense', resolving 'auto' by whether the CLIP weights are on disk."""
    wanted = metrics_config.get("semantic_reference", "auto")
    if wanted == "auto":
        return "clip" if clip_weights_present(clip_config) else "no_defense"
    return wanted


class NoDefenseReference:
    """The final model of the no-defense FedAvg run."""

    def __init__(self, final_model_path, model_config: dict):
        from gradienthide.models import load_model

        self.model = load_model(final_model_path, model_config).eval()
        self.name = f"no-defense model ({NO_DEFENSE_RUN})"

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad():
            return self.model(images.float()).argmax(1)


class ClipReference:
    """CLIP zero-shot over the task's class names."""

    def __init__(self, clip_config: dict, class_names: list[str]):
        from gradienthide import clip_labels

        self.model, self.tokenizer, self.preprocess = clip_labels.load_clip(
            clip_config["model"], clip_config["pretrained"], clip_config["cache_dir"], clip_config.get("model_config"))
        self.class_names, self.templates = class_names, clip_config["templates"]
        self.name = f"clip:{clip_config['model']}:{clip_config['pretrained']}"

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        from gradienthide import clip_labels

        return clip_labels.zero_shot_probabilities(self.model, self.tokenizer, self.preprocess, images.float(),
                                                   self.class_names, self.templates).argmax(1)


def semantic_match(reference, reconstructions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """1.0 where the reference classifies a reconstruction as its original's label, else 0.0."""
    return (reference.predict(reconstructions.clamp(0, 1)).cpu() == labels.cpu()).float()
