"""Stages of the public pool's labels: embed it (CLIP), label it into the task's classes,
select what GradientHide may draw, and measure the labels' quality.

The labelers share one interface, `label_pool`; only `clip` needs the embedding step.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from gradienthide import artifacts, clip_labels, data

log = logging.getLogger(__name__)


def embed_public(*, clip: dict, pool_source, embeddings, device="cpu") -> None:
    """Step 1 of the CLIP labeler: the pool's image embeddings, cached per model + pretrained
    tag + images (the images' checksum is recorded and checked by the label step)."""
    pool, _, _ = data.load_public_pool_source(pool_source)
    embedded = clip_labels.embed_images(clip_config=clip, images=pool["images"].float() / 255.0, device=str(device),
                                        progress=True)
    artifacts.save_tensors(embeddings, embedded, metadata={
        "model": clip["model"], "pretrained": clip["pretrained"],
        "images_sha256": artifacts.tensors_sha256({"images": pool["images"]})})
    log.info("embedded %d pool images with %s/%s", len(pool["images"]), clip["model"], clip["pretrained"])


def label_pool(*, labels: dict, dataset: str, pool: dict[str, torch.Tensor], class_names: list[str],
               embeddings: dict | None = None, device="cpu") -> pd.DataFrame:
    """One row per pool image from the configured labeler (clip_labels.POOL_LABEL_COLUMNS)."""
    labeler, indices = labels["labeler"], pool["source_index"].numpy()
    class_names = labels.get("class_names") or class_names
    if labeler == "oracle":
        if (pool["true_labels"] < 0).any():
            raise ValueError("labels.labeler: oracle needs the pool's true labels in the task's classes; "
                             f"{int((pool['true_labels'] < 0).sum())} pool images have none (use labels.labeler: clip)")
        return clip_labels.oracle_labels(indices, pool["true_labels"])
    if labeler == "simulated_clip":
        return clip_labels.simulated_clip_labels(indices, pool["true_labels"], num_classes=len(class_names),
                                                 simulated=labels["simulated_clip"], dataset=dataset)
    if labeler == "clip":
        if embeddings is None:
            raise ValueError("labels.labeler: clip labels need the pool's embeddings (rule embed_public)")
        return clip_labels.clip_zero_shot(indices, clip_config=labels["clip"], class_names=class_names,
                                          embeddings=embeddings, device=str(device))
    raise ValueError(f"labels.labeler: unknown labeler {labeler!r} (known: {', '.join(clip_labels.LABELERS)})")


def label_public(*, labels: dict, dataset: str, pool_source, pool_labels, embeddings=None, device="cpu") -> None:
    """Step 2: every pool image's label, confidence and top-5 classes, from the labeler."""
    pool, class_names, _ = data.load_public_pool_source(pool_source)
    embedded = None
    if embeddings:
        embedded = artifacts.load_tensors(embeddings)
        expected = artifacts.tensors_sha256({"images": pool["images"]})
        if artifacts.read_metadata(embeddings).get("images_sha256") != expected:
            raise ValueError(f"{embeddings}: embeddings of other images than {pool_source}; rerun the rule embed_public")
    table = label_pool(labels=labels, dataset=dataset, pool=pool, class_names=class_names, embeddings=embedded,
                       device=device)
    artifacts.save_table(pool_labels, table)
    log.info("%s: accuracy %.3f on the %d pool images with true labels", table["labeler"].iloc[0],
             clip_labels.label_accuracy(table["label"].to_numpy(), pool["true_labels"].numpy()),
             int((pool["true_labels"] >= 0).sum()))


def label_public_pool(*, selection: dict, pool_source, pool_labels, public_labels, public_pool) -> None:
    """Select the images GradientHide may draw; write their labels and the public pool (their
    images with the labeler's labels), the public artifact attackers may read."""
    pool, _, source = data.load_public_pool_source(pool_source)
    table = artifacts.load_table(pool_labels, clip_labels.POOL_LABEL_COLUMNS)
    accuracy = clip_labels.label_accuracy(table["label"].to_numpy(), pool["true_labels"].numpy())
    chosen = clip_labels.select_pool(table, min_confidence=selection.get("min_confidence"),
                                     per_class=selection.get("per_class"), seed=selection.get("seed", 0))
    if len(chosen) == 0:
        raise ValueError(f"labels.selection: no pool image passes {clip_labels.selection_description(**_rules(selection))}"
                         " (lower labels.selection.min_confidence)")
    selected = table.iloc[chosen].reset_index(drop=True).assign(
        labeler_accuracy=np.float64(accuracy), selection=clip_labels.selection_description(**_rules(selection)))
    artifacts.save_table(public_labels, selected)
    artifacts.save_tensors(public_pool, {"images": pool["images"][torch.as_tensor(chosen)],
                                         "labels": torch.tensor(selected["label"].to_numpy(copy=True))},
                           metadata={"labeler": str(selected["labeler"].iloc[0]), "source": source})
    log.info("selected %d of %d pool images (%s); labeler %s, accuracy %.3f on the pool", len(chosen), len(table),
             selected["selection"].iloc[0], selected["labeler"].iloc[0], accuracy)


def _rules(selection: dict) -> dict:
    return {"min_confidence": selection.get("min_confidence"), "per_class": selection.get("per_class")}


def quality_tables(*, pool_labels: pd.DataFrame, selected_labels: pd.DataFrame, true_labels: np.ndarray,
                   source_index: np.ndarray, class_names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Zero-shot accuracy before and after selection, overall and per true class."""
    selected = np.isin(source_index, selected_labels["index"].to_numpy())
    labeler = str(pool_labels["labeler"].iloc[0])
    rows = []
    for stage, mask in (("pool", np.ones(len(pool_labels), dtype=bool)), ("selected", selected)):
        labels, truth = pool_labels["label"].to_numpy()[mask], true_labels[mask]
        rows.append({"labeler": labeler, "stage": stage, "class": "all", "images": int(mask.sum()),
                     "images_with_true_label": int((truth >= 0).sum()),
                     "accuracy": clip_labels.label_accuracy(labels, truth)})
        for index, name in enumerate(class_names):
            in_class = truth == index
            rows.append({"labeler": labeler, "stage": stage, "class": name, "images": int(in_class.sum()),
                         "images_with_true_label": int(in_class.sum()),
                         "accuracy": float((labels[in_class] == index).mean()) if in_class.any() else float("nan")})
    known = true_labels >= 0
    confusion = pd.crosstab(pd.Categorical(np.asarray(class_names)[true_labels[known]], categories=class_names),
                            pd.Categorical(np.asarray(class_names)[pool_labels["label"].to_numpy()[known]],
                                           categories=class_names), dropna=False)
    confusion.index.name, confusion.columns.name = "true class", "label"
    return pd.DataFrame(rows), confusion


def label_quality(*, pool_source, pool_labels, public_labels, quality_table, quality_csv, confusion_png) -> None:
    """How good the public labels are, where the pool has true labels in the task's classes."""
    pool, class_names, source = data.load_public_pool_source(pool_source)
    table = artifacts.load_table(pool_labels, clip_labels.POOL_LABEL_COLUMNS)
    selected = artifacts.load_table(public_labels, clip_labels.PUBLIC_LABEL_COLUMNS)
    quality, confusion = quality_tables(pool_labels=table, selected_labels=selected,
                                        true_labels=pool["true_labels"].numpy(),
                                        source_index=pool["source_index"].numpy(), class_names=class_names)
    quality["selection"] = selected["selection"].iloc[0]
    artifacts.save_table(quality_table, quality)
    artifacts.save_table(quality_csv, quality)
    overall = quality[quality["class"] == "all"].set_index("stage")["accuracy"]
    title = (f"labeler {table['labeler'].iloc[0]} on the public pool ({source})\n"
             f"accuracy {overall['pool']:.3f} on the pool, {overall['selected']:.3f} after selection "
             f"({selected['selection'].iloc[0]})")
    from gradienthide import plots

    plots.confusion_matrix(confusion, confusion_png, title)
    log.info("%s", title)
