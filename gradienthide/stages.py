"""The pipeline's stages as plain functions: each workflow script calls exactly one.

They read and write files only through the paths they are given, so tests can run any
stage without Snakemake. Plotting (matplotlib, seaborn, torchvision) is imported only by the
stages that draw, to keep the start-up of the many training and attack jobs short.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch

from gradienthide import artifacts, clip_labels, data, dumps, metrics, partition, report
from gradienthide.attacks import AttackTarget, make_attack
from gradienthide.defenses import make_defense
from gradienthide.fl import FedAvgSettings, run_fedavg
from gradienthide.models import as_client_forward, build_model

log = logging.getLogger(__name__)


def prepare_data(data_config: dict, seed: int, dataset_path, splits_path) -> None:
    dataset = data.build_dataset(data_config)
    splits = partition.split_dataset(len(dataset.labels), data_config["test_size"], data_config["public_pool_size"],
                                     data_config["num_clients"], seed, data_config.get("partition", "iid"))
    data.save_dataset(dataset_path, dataset)
    artifacts.save_table(splits_path, splits)
    log.info("%s: %d images %s, %d classes; %s", dataset.source, len(dataset.labels), dataset.image_shape,
             dataset.num_classes, splits["split"].value_counts().to_dict())


def label_public_pool(labels_config: dict, dataset_path, splits_path, labels_path, pool_path, device="cpu") -> None:
    """Label the public pool; also write its images with those labels, the public artifact
    that attackers may read (the dataset file holds private images too)."""
    dataset = data.load_dataset(dataset_path)
    pool = partition.indices_of(artifacts.load_table(splits_path, partition.SPLIT_COLUMNS), "public")
    if labels_config["labeler"] == "oracle":
        table = clip_labels.oracle_labels(pool, dataset.labels[pool])
    else:
        table = clip_labels.clip_labels(pool, dataset.floats(pool), dataset.class_names, labels_config["clip"], str(device))
        agreement = float((table["label"].to_numpy() == dataset.labels[pool].numpy()).mean())
        log.info("CLIP zero-shot labels agree with the true labels on %.1f%% of the pool", 100 * agreement)
    artifacts.save_table(labels_path, table)
    artifacts.save_tensors(pool_path, {"images": dataset.images[pool], "labels": torch.tensor(table["label"].to_numpy(copy=True))},
                           metadata={"labeler": str(table["labeler"].iloc[0])})


def train_defense(run_id: str, defense_name: str, defense_params: dict, model_config: dict, training_config: dict,
                  seed: int, dataset_path, splits_path, labels_path, accuracy_path, final_model_path,
                  round_dirs: dict[int, str], device="cpu") -> None:
    """FedAvg under one defense setting; writes accuracy, the final model and the attacked rounds."""
    defense = make_defense(defense_name, defense_params)
    dataset = data.load_dataset(dataset_path)
    splits = artifacts.load_table(splits_path, partition.SPLIT_COLUMNS)
    images, labels = dataset.floats().to(device), dataset.labels.to(device)
    clients = {c: (images[idx], labels[idx]) for c, idx in partition.client_indices(splits).items()}
    test = partition.indices_of(splits, "test")
    public = None
    labeler = "n/a"
    if defense.uses_public_pool:
        table = artifacts.load_table(labels_path, clip_labels.LABEL_COLUMNS)
        public = (images[torch.as_tensor(table["index"].to_numpy())],
                  torch.tensor(table["label"].to_numpy(copy=True), device=device))
        labeler = str(table["labeler"].iloc[0])
    torch.manual_seed(seed)  # the same initial model for every defense
    model = defense.adapt_model(build_model(model_config, dataset.image_shape, dataset.num_classes)).to(device)
    settings = FedAvgSettings.from_config(training_config)
    result = run_fedavg(model, clients, (images[test], labels[test]), defense, settings, seed, public)
    accuracy = result.accuracy.assign(defense=run_id, defense_name=defense_name, public_labeler=labeler,
                                      defense_params=json.dumps(defense_params, sort_keys=True))
    sample_rate = settings.clients_per_round / len(clients)
    guarantees = [defense.privacy_spent(sample_rate, r) for r in accuracy["round"]]
    for key in sorted({k for g in guarantees for k in g}):
        accuracy[key] = [g.get(key) for g in guarantees]
    artifacts.save_table(accuracy_path, accuracy)
    model_info = {"image_shape": list(dataset.image_shape), "num_classes": dataset.num_classes}
    artifacts.save_tensors(final_model_path, result.final_state, metadata={"model_info": model_info, "defense": run_id})
    for round_number, directory in round_dirs.items():
        dumps.write_attacked_round(directory, run_id, result.attacked_rounds[round_number], model_info)
    final_accuracy = accuracy["test_accuracy"].iloc[-1]
    log.info("%s: final test accuracy %.4f", run_id, final_accuracy)
    if final_accuracy < 1.5 / dataset.num_classes:
        log.warning("%s: final test accuracy %.3f is near chance (%d classes): training diverged or did not "
                    "learn; try a lower training.lr", run_id, final_accuracy, dataset.num_classes)


def attack_shard(attack_name: str, attack_params: dict, model_config: dict, defense_name: str, defense_params: dict,
                 protocol: dict, global_model_path, updates_path, index_path, positions: list[int], seed: int,
                 reconstructions_path, public_pool_path=None, public_draws_path=None, device="cpu") -> None:
    """Reconstruct the private batches behind the updates at `positions`, all in one batch.

    Reads only what the server sees: the global model (with the architecture the defense
    trains), the uploads, and the protocol's local steps and learning rate; never private data.
    The adaptive attacks also read the public pool, and the adaptive_oracle upper bound each
    client's public draws.
    """
    attack = make_attack(attack_name, attack_params)
    info = artifacts.load_json_metadata(global_model_path, "model_info")
    image_shape = tuple(info["image_shape"])
    defense = make_defense(defense_name, defense_params)
    model = defense.adapt_model(build_model(model_config, image_shape, info["num_classes"])).to(device)
    if public_pool_path:  # an adaptive attacker: the public pool and its labels are public
        pool = artifacts.load_tensors(public_pool_path)
        attack.learn_defense(defense, pool["images"].float() / 255.0, pool["labels"], seed)
    model.load_state_dict(artifacts.load_tensors(global_model_path, device))
    as_client_forward(model)  # BatchNorm as in the client's step; running statistics kept for priors
    uploads = dumps.read_updates(updates_path, index_path, positions)
    if public_draws_path:
        attack.learn_public_draws(dumps.read_public_draws(public_draws_path, [u.position for u in uploads]))
    targets = [AttackTarget({k: v.to(device) for k, v in u.update.items()}, u.num_samples, torch.tensor(u.labels),
                            protocol["local_steps"], protocol["lr"])
               for u in uploads]
    results = attack.reconstruct(model, targets, image_shape, seed)
    tensors = {}
    for upload, (images, used_labels) in zip(uploads, results):
        tensors[f"position{upload.position}/images"] = images
        tensors[f"position{upload.position}/labels"] = used_labels
    artifacts.save_tensors(reconstructions_path, tensors, metadata={
        "attack": attack_name, "positions": [u.position for u in uploads], "clients": [u.client for u in uploads],
        "label_source": attack.label_source})


def load_semantic_reference(metric_settings: dict, model_config: dict, clip_config: dict, reference_model_path,
                            dataset_path):
    from gradienthide import semantic

    if metric_settings["semantic_reference"] == "clip":
        return semantic.ClipReference(clip_config, artifacts.load_json_metadata(dataset_path, "class_names"))
    return semantic.NoDefenseReference(reference_model_path, model_config)


def evaluate_shard(reconstructions_path, private_path, index_path, identity: dict, metrics_path, grid_path,
                   metric_settings: dict, model_config: dict, clip_config: dict, reference_model_path=None,
                   dataset_path=None) -> None:
    """Per-image PSNR, SSIM, LPIPS and semantic match of a shard's reconstructions, and a grid.

    `metric_settings` is config.resolve_metrics' answer: whether LPIPS is computed and which
    semantic reference (the no-defense run's final model, or CLIP with the dataset's class names).
    """
    from gradienthide import perceptual, plots, semantic

    reconstructions = artifacts.load_tensors(reconstructions_path)
    positions = artifacts.load_json_metadata(reconstructions_path, "positions")
    label_source = artifacts.read_metadata(reconstructions_path).get("label_source", "known")
    index = artifacts.load_table(index_path, dumps.INDEX_COLUMNS).set_index("position")
    private = artifacts.load_tensors(private_path)
    lpips_metric = perceptual.load_lpips(metric_settings["lpips_cache_dir"]) if metric_settings["lpips"] else None
    reference = load_semantic_reference(metric_settings, model_config, clip_config, reference_model_path, dataset_path)
    tables, shown_originals, shown_reconstructions = [], [], []
    for position in positions:
        client = int(index.loc[position, "client"])
        originals = private[f"client{client}/images"]
        reconstructed = reconstructions[f"position{position}/images"]
        table = metrics.image_metrics(reconstructed, originals)
        matched = reconstructed[torch.as_tensor(table["matched_reconstruction"].to_numpy())]
        table.insert(0, "position", position)
        table.insert(1, "client", client)
        labels = private[f"client{client}/labels"]
        table["label"] = labels.numpy()
        table["lpips"] = (perceptual.lpips_distance(lpips_metric, matched, originals).numpy()
                          if lpips_metric is not None else float("nan"))
        table["semantic_match"] = semantic.semantic_match(reference, matched, labels).numpy()
        table["semantic_reference"] = reference.name
        used = reconstructions[f"position{position}/labels"].numpy()
        table["label_source"] = label_source
        # did the attacker get the label of the reconstruction matched to this image right?
        table["label_correct"] = ((used[table["matched_reconstruction"]] == table["label"]).astype(float)
                                  if label_source == "recovered" else float("nan"))
        tables.append(table)
        shown_originals.append(originals)
        shown_reconstructions.append(matched)
    result = pd.concat(tables, ignore_index=True)
    for column, value in reversed(identity.items()):
        result.insert(0, column, value)
    artifacts.save_table(metrics_path, result)
    title = (f"{identity['defense']} / {identity['attack']} / round {identity['round']} / shard {identity['shard']}: "
             f"mean PSNR {result['psnr'].mean():.2f} dB")
    plots.reconstruction_grid(torch.cat(shown_originals), torch.cat(shown_reconstructions), grid_path, title)


def public_labeler_of(labels_path) -> str:
    """The labeler recorded in the public labels table, or 'n/a' when no defense used one."""
    if not labels_path:
        return "n/a"
    return str(artifacts.load_table(labels_path, clip_labels.LABEL_COLUMNS)["labeler"].iloc[0])


def aggregate(metric_paths, accuracy_paths, labels_path, metrics_path, metrics_csv_path, accuracy_path,
              summary_path, privacy_utility_path) -> None:
    public_labeler = public_labeler_of(labels_path)
    table = report.concat_tables(metric_paths).assign(public_labeler=public_labeler)
    accuracy = report.concat_tables(accuracy_paths)
    artifacts.save_table(metrics_path, table)
    artifacts.save_table(metrics_csv_path, table)
    artifacts.save_table(accuracy_path, accuracy)
    summary = report.summary(table, accuracy)
    artifacts.save_table(summary_path, summary)
    artifacts.save_table(privacy_utility_path, report.privacy_utility(table, accuracy))
    log.info("summary (public labels: %s):\n%s", public_labeler, summary.to_string(index=False))


def labeler_note(public_labeler: str) -> str:
    if public_labeler == "n/a":
        return "no defense here uses public labels"
    if public_labeler == "oracle":
        return "public labels: oracle (true labels, upper bound of CLIP zero-shot)"
    return f"public labels: {public_labeler}"


def figures(metrics_path, accuracy_path, privacy_utility_path, example_runs: dict[str, tuple[str, str]], labels_path,
            psnr_figure, accuracy_figure, privacy_utility_figure, reconstructions_figure) -> None:
    """The report's figures. `example_runs` maps a run to (reconstructions, private) files of one shard."""
    from gradienthide import plots

    note = labeler_note(public_labeler_of(labels_path))
    table = artifacts.load_table(metrics_path)
    plots.psnr_by_defense(table, psnr_figure, note)
    plots.privacy_utility(pd.read_csv(privacy_utility_path), privacy_utility_figure, note)
    plots.accuracy_by_round(artifacts.load_table(accuracy_path), accuracy_figure, note)
    rows, originals = [], None
    for run_id, (reconstructions_path, private_path) in example_runs.items():
        reconstructions = artifacts.load_tensors(reconstructions_path)
        position = artifacts.load_json_metadata(reconstructions_path, "positions")[0]
        client = artifacts.load_json_metadata(reconstructions_path, "clients")[0]
        private = artifacts.load_tensors(private_path)[f"client{client}/images"]
        reconstructed = reconstructions[f"position{position}/images"]
        matched = metrics.match_to_originals(reconstructed, private)
        originals = private if originals is None else originals
        rows.append((run_id, reconstructed[torch.as_tensor(matched)]))
    plots.reconstructions_by_defense(rows, originals, reconstructions_figure,
                                     f"Reconstructions of the same private batch under each defense ({note})")
