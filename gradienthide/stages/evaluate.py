"""Stages evaluate and evaluate_probes: score a shard's reconstructions (or every probe shard's of
a round) against the private originals, and draw them."""

from __future__ import annotations

import hashlib

import pandas as pd
import torch

from gradienthide import artifacts, dumps, metrics as image_quality
from gradienthide.workflow import seed_global_generators


def load_semantic_reference(*, metric_settings: dict, model_config: dict, clip: dict, reference_model, class_names):
    from gradienthide import semantic

    if metric_settings["semantic_reference"] == "clip":
        return semantic.ClipReference(clip, class_names)
    return semantic.NoDefenseReference(reference_model, model_config)


def image_digests(images: torch.Tensor) -> list[str]:
    """A short sha256 of each image's values: rows of two runs pair only on the same image."""
    return [hashlib.sha256(image.float().contiguous().numpy().tobytes()).hexdigest()[:16] for image in images]


def budget_rows(item, originals: torch.Tensor) -> pd.DataFrame:
    """PSNR and SSIM of an upload's reconstructions at each budget checkpoint (each matched to the
    originals on its own), with the iterations done and their fraction of the budget."""
    final = max(item.checkpoints) if item.checkpoints else None
    tables = []
    for iterations, images in sorted(item.checkpoints.items()):
        table = image_quality.image_metrics(images, originals).drop(columns="matched_reconstruction")
        table.insert(0, "position", item.position)
        table.insert(1, "client", item.client)
        table["iterations"], table["budget_fraction"] = iterations, iterations / final
        tables.append(table)
    columns = ["position", "client", "image", "psnr", "ssim", "iterations", "budget_fraction"]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)


def evaluate_shard(*, reconstructions, private, identity: dict, metrics, budget, grid, metric_settings: dict,
                   model_config: dict, clip: dict, reference_model=None, dataset=None, public_draws=None) -> None:
    """Per-image PSNR, SSIM, LPIPS and semantic match of a shard's reconstructions, PSNR and SSIM at
    each budget checkpoint (`budget`), and a grid.

    `metric_settings` is config.resolve_metrics' answer: whether LPIPS is computed and which
    semantic reference (the no-defense run's final model, or CLIP with the dataset's class names).
    `public_draws` (the clients' recorded draws) scores an attack's estimated draws: precision
    and recall per upload, repeated on its images' rows. Each row carries `image_digest`, a hash
    of its private image, so that defenses are compared on the same images only.
    """
    from gradienthide.draw_inference import draw_overlap

    from gradienthide import perceptual, plots, semantic

    shard, label_source = dumps.read_reconstructions(reconstructions)
    originals_by_client = dumps.read_private_batches(private)
    recorded = dict(zip([r.position for r in shard], dumps.read_public_draws(public_draws, [r.position for r in shard])
                        )) if public_draws else {}
    lpips_metric = perceptual.load_lpips(metric_settings["lpips_cache_dir"]) if metric_settings["lpips"] else None
    # the CLIP reference's classes and the grid's captions
    class_names = artifacts.load_json_metadata(dataset, "class_names") if dataset else None
    reference = load_semantic_reference(metric_settings=metric_settings, model_config=model_config, clip=clip,
                                        reference_model=reference_model, class_names=class_names)
    tables, budget_tables, shown_originals, shown_reconstructions = [], [], [], []
    for item in shard:
        originals, labels = originals_by_client[item.client]
        budget_tables.append(budget_rows(item, originals))
        table = image_quality.image_metrics(item.images, originals)
        # a copy: pandas may hand out a read-only view, which torch.as_tensor warns about
        matched = item.images[torch.as_tensor(table["matched_reconstruction"].to_numpy(copy=True))]
        table.insert(0, "position", item.position)
        table.insert(1, "client", item.client)
        table["private_batch"] = len(originals)  # images behind the upload: a probe's batch size, a shard, ...
        table["label"] = labels.numpy()
        table["image_digest"] = image_digests(originals)
        table["lpips"] = (perceptual.lpips_distance(lpips_metric, matched, originals).numpy()
                          if lpips_metric is not None else float("nan"))
        table["semantic_match"] = semantic.semantic_match(reference, matched, labels).numpy()
        table["semantic_reference"] = reference.name
        used = item.labels.numpy()
        table["label_source"] = label_source
        # did the attacker get the label of the reconstruction matched to this image right?
        table["label_correct"] = ((used[table["matched_reconstruction"]] == table["label"]).astype(float)
                                  if label_source == "recovered" else float("nan"))
        precision, recall = (draw_overlap(item.estimated_draws, recorded[item.position])
                             if item.estimated_draws is not None and item.position in recorded else (float("nan"),) * 2)
        table["draw_precision"], table["draw_recall"] = precision, recall
        tables.append(table)
        shown_originals.append(originals)
        shown_reconstructions.append(matched)
    result = pd.concat(tables, ignore_index=True)
    checkpoints = pd.concat(budget_tables, ignore_index=True)
    for column, value in reversed(identity.items()):
        result.insert(0, column, value)
        checkpoints.insert(0, column, value)
    artifacts.save_table(metrics, result)
    artifacts.save_table(budget, checkpoints)
    uploads = identity.get("uploads", "deployed")
    title = (f"{identity['defense']} / {identity['attack']} / seed {identity.get('seed', '-')} / round {identity['round']} / "
             f"{'' if uploads == 'deployed' else uploads + ' / '}shard {identity['shard']}: "
             f"mean PSNR {result['psnr'].mean():.2f} dB")
    plots.reconstruction_grid(
        torch.cat(shown_originals), torch.cat(shown_reconstructions), grid, title,
        original_captions=plots.class_captions(result["label"].tolist(), class_names),
        reconstruction_captions=[f"{value:.1f} dB" for value in result["psnr"]])


def evaluate_probe_shards(*, reconstructions: list, private: list, identities: list[dict], probe_uploads: list[str],
                          metrics: list, budget: list, grid: list, metric_settings: dict, model_config: dict,
                          clip: dict, reference_model=None, dataset=None, public_draws: list | None = None) -> None:
    """evaluate_shard on each probe shard of a round, one after another.

    `identities`, `reconstructions`, `metrics`, `budget` and `grid` are aligned, a shard each;
    `private` and `public_draws` are aligned with `probe_uploads` and picked by the identity's
    uploads. Each shard starts from the global generators seeded as a job of its own starts.
    """
    for identity, shard_reconstructions, shard_metrics, shard_budget, shard_grid in zip(
            identities, reconstructions, metrics, budget, grid, strict=True):
        k = probe_uploads.index(identity["uploads"])
        seed_global_generators(identity["seed"])
        evaluate_shard(reconstructions=shard_reconstructions, private=private[k], identity=identity,
                       metrics=shard_metrics, budget=shard_budget, grid=shard_grid, metric_settings=metric_settings,
                       model_config=model_config, clip=clip, reference_model=reference_model, dataset=dataset,
                       public_draws=public_draws[k] if public_draws else None)
