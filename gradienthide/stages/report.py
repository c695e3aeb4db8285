"""Stages aggregate and figures: the study's tables and figures from every job's outputs."""

from __future__ import annotations

import logging
import math

import pandas as pd
import torch

from gradienthide import artifacts, clip_labels, dumps, report

log = logging.getLogger(__name__)


def public_labeler_of(public_labels) -> str:
    """The labeler recorded in the public labels table, or 'n/a' when no defense used one."""
    if not public_labels:
        return "n/a"
    return str(artifacts.load_table(public_labels, clip_labels.LABEL_COLUMNS)["labeler"].iloc[0])


def labeler_accuracy_of(public_labels) -> float | None:
    """The labeler's accuracy against the true labels, when the labels table records it
    (column `labeler_accuracy`, NaN when unknown); None otherwise."""
    if not public_labels:
        return None
    table = artifacts.load_table(public_labels, clip_labels.LABEL_COLUMNS)
    if "labeler_accuracy" not in table.columns or table.empty:
        return None
    value = pd.to_numeric(table["labeler_accuracy"], errors="coerce").iloc[0]
    return float(value) if math.isfinite(value) else None


def labeler_note(public_labeler: str, accuracy: float | None = None) -> str:
    """How figures name the public labeler, with its accuracy when known."""
    if public_labeler == "n/a":
        return "no defense here uses public labels"
    measured = f", accuracy {100 * accuracy:.1f}%" if accuracy is not None else ""
    if public_labeler == "oracle":
        return f"public labels: oracle (true labels, upper bound of CLIP zero-shot{measured})"
    return f"public labels: {public_labeler}" + (f" (accuracy {100 * accuracy:.1f}%)" if accuracy is not None else "")


def aggregate(*, metrics: list[str], budget_metrics: list[str], accuracy: list[str], metrics_table, metrics_csv,
              budget_table, budget_curves, paired_table, accuracy_table, summary, privacy_utility,
              public_labels=None) -> None:
    public_labeler = public_labeler_of(public_labels)
    table = report.concat_tables(metrics).assign(public_labeler=public_labeler)
    budget = report.concat_tables(budget_metrics)
    accuracy_by_round = report.concat_tables(accuracy)
    paired = report.paired_table(table)  # refuses cells whose private images differ from none's
    artifacts.save_table(metrics_table, table)
    artifacts.save_table(metrics_csv, table)
    artifacts.save_table(budget_table, budget)
    artifacts.save_table(budget_curves, report.budget_summary(budget))
    artifacts.save_table(paired_table, paired)
    artifacts.save_table(accuracy_table, accuracy_by_round)
    summary_table = report.summary(table, accuracy_by_round, budget, paired)
    labeler_accuracy = labeler_accuracy_of(public_labels)
    if labeler_accuracy is not None:
        summary_table["public_labeler_accuracy"] = labeler_accuracy
    artifacts.save_table(summary, summary_table)
    artifacts.save_table(privacy_utility, report.privacy_utility(summary_table, accuracy_by_round))
    log.info("summary (%s; utility = %s over the last %s rounds, per replicate):\n%s",
             labeler_note(public_labeler, labeler_accuracy), report.UTILITY_MEAN,
             int(summary_table[report.UTILITY_ROUNDS].max()), summary_table.to_string(index=False))


def figure_context(*, public_labels, attack_settings: dict, runs: list[str], uploads: str | None = None):
    """What every figure states (labeler, attack budgets, and `uploads`, the attacked uploads it
    shows, when a run attacks several) and the config's order of runs and attacks."""
    from gradienthide import plots

    note = labeler_note(public_labeler_of(public_labels), labeler_accuracy_of(public_labels))
    budgets = {attack: plots.attack_budget(settings or {}) for attack, settings in attack_settings.items()}
    return plots.FigureContext(labeler=note, budgets=budgets, runs=tuple(runs),
                               uploads=plots.uploads_note(uploads) if uploads else "")


def only_uploads(table: pd.DataFrame, uploads: str) -> pd.DataFrame:
    """The rows of one set of attacked uploads (a table written before probes existed is all `deployed`)."""
    if "uploads" not in table:
        return table
    return table[table["uploads"] == uploads]


def reconstruction_blocks(*, metrics: pd.DataFrame, reconstructions: list[str], reconstruction_runs: list[str],
                          reconstruction_attacks: list[str], runs: list[str], private: list[str], attack_round: int,
                          reconstruction_seed: int = 0, reconstruction_uploads: str = "deployed", max_images: int = 8,
                          class_names: list[str] | None = None):
    """Per attack, the first upload of shard 0 under each defense setting it ran against (in the
    replicate `reconstruction_seed`), its images put in the order of their originals by the
    matching evaluation recorded (with each image's PSNR from the metrics table, so the figure
    shows the reported numbers)."""
    from gradienthide import plots

    private_of = dict(zip(runs, private))
    metrics = metrics[metrics["seed"] == reconstruction_seed] if "seed" in metrics else metrics
    metrics = only_uploads(metrics, reconstruction_uploads)
    blocks: dict[str, plots.ReconstructionBlock] = {}
    for path, run, attack in zip(reconstructions, reconstruction_runs, reconstruction_attacks):
        items, label_source = dumps.read_reconstructions(path)
        first = items[0]
        images, labels = dumps.read_private_batches(private_of[run])[first.client]
        rows = metrics[(metrics["defense"] == run) & (metrics["attack"] == attack) & (metrics["round"] == attack_round)
                       & (metrics["shard"] == 0) & (metrics["position"] == first.position)].sort_values("image")
        if len(rows) != len(first.images):
            raise ValueError(f"{path}: {len(first.images)} reconstructions but {len(rows)} metric rows for "
                             f"{run}/{attack}, seed {reconstruction_seed}, round {attack_round}, position {first.position}")
        rows = rows.head(max_images)
        matched = first.images[torch.tensor(rows["matched_reconstruction"].tolist(), dtype=torch.long)]
        if attack not in blocks:
            blocks[attack] = plots.ReconstructionBlock(attack=attack, round=attack_round, label_source=label_source,
                                                       originals=images[:max_images],
                                                       labels=[int(label) for label in labels[:max_images]],
                                                       rows=[], client=first.client, seed=reconstruction_seed,
                                                       class_names=class_names)
        elif blocks[attack].client != first.client:
            log.warning("%s/%s: first upload is client %s, not %s as for the block's other rows", run, attack,
                        first.client, blocks[attack].client)
        blocks[attack].rows.append((run, matched, [float(v) for v in rows["psnr"]]))
    return list(blocks.values())


def figures(*, metrics_table, accuracy_table, privacy_utility, summary, budget_curves, runs: list[str],
            reconstructions: list[str], reconstruction_runs: list[str], reconstruction_attacks: list[str],
            private: list[str], attack_round: int, attack_settings: dict, psnr_figure, accuracy_figure,
            privacy_utility_figure, reconstructions_figure, budget_figure, reconstruction_seed: int = 0,
            reconstruction_uploads: str = "deployed", public_labels=None, dataset=None) -> None:
    """The report's figures. `reconstructions`, `reconstruction_runs` and `reconstruction_attacks`
    are parallel (shard 0 of each attack against each defense setting it runs against at
    `attack_round`, replicate `reconstruction_seed`); `runs` and `private` are parallel (each
    setting's private batches). `attack_settings` (config's attacks block) gives the budgets every
    figure states. Intervals come from the aggregated tables (gradienthide.stats), never from
    the figures themselves. When a run attacks several sets of uploads (privacy probes), these
    figures show `reconstruction_uploads` (the real uploads when attacked) and say so; the PSNR
    against the batch size is psnr_by_batch_size's. `dataset` gives the class names the
    reconstructions are captioned with."""
    from gradienthide import plots

    table = artifacts.load_table(metrics_table)
    several = "uploads" in table and table["uploads"].nunique() > 1
    context = figure_context(public_labels=public_labels, attack_settings=attack_settings, runs=runs,
                             uploads=reconstruction_uploads if several else None)
    shown = only_uploads(table, reconstruction_uploads)
    summary_table = only_uploads(pd.read_csv(summary), reconstruction_uploads)
    plots.psnr_by_defense(shown, summary_table, psnr_figure, context)
    plots.privacy_utility(only_uploads(pd.read_csv(privacy_utility), reconstruction_uploads), privacy_utility_figure,
                          context)
    plots.accuracy_by_round(artifacts.load_table(accuracy_table), accuracy_figure,
                            figure_context(public_labels=public_labels, attack_settings=attack_settings, runs=runs))
    plots.budget_curves(only_uploads(pd.read_csv(budget_curves), reconstruction_uploads), summary_table, budget_figure,
                        context)
    class_names = artifacts.load_json_metadata(dataset, "class_names") if dataset else None
    blocks = reconstruction_blocks(metrics=table, reconstructions=reconstructions,
                                   reconstruction_runs=reconstruction_runs,
                                   reconstruction_attacks=reconstruction_attacks, runs=runs, private=private,
                                   attack_round=attack_round, reconstruction_seed=reconstruction_seed,
                                   reconstruction_uploads=reconstruction_uploads, class_names=class_names)
    plots.reconstructions(blocks, reconstructions_figure, context)


def gradienthide_settings(*, privacy_utility, attack_settings: dict, runs: list[str], settings_figure,
                          public_labels=None, shown_uploads: str = "deployed") -> None:
    """GradientHide's swept settings under plain IG and the attackers who know it, with utility
    (on the uploads `shown_uploads`, when a run attacks several)."""
    from gradienthide import plots

    table = pd.read_csv(privacy_utility)
    several = "uploads" in table and table["uploads"].nunique() > 1
    context = figure_context(public_labels=public_labels, attack_settings=attack_settings, runs=runs,
                             uploads=shown_uploads if several else None)
    plots.defense_settings(only_uploads(table, shown_uploads), settings_figure, context)


def psnr_by_batch_size(*, summary, attack_settings: dict, runs: list[str], batch_size_figure,
                       public_labels=None) -> None:
    """Mean PSNR with its interval (summary.csv) against the private batch size, per attack and round."""
    from gradienthide import plots

    context = figure_context(public_labels=public_labels, attack_settings=attack_settings, runs=runs)
    plots.psnr_by_batch_size(pd.read_csv(summary), batch_size_figure, context)


def client_classes_figure(*, client_classes, partition: str, dirichlet_alpha, client_classes_figure) -> None:
    """The heatmap of the clients' class histogram (prepare_data's table)."""
    from gradienthide import partition as partitions, plots

    histogram = artifacts.load_table(client_classes, partitions.HISTOGRAM_COLUMNS)
    how = f"Dirichlet label skew, alpha = {dirichlet_alpha:g}" if partition == "dirichlet" else "IID shards"
    sizes = histogram.groupby("client")["images"].sum()
    title = (f"Private images per client and class: {how}\n"
             f"{len(sizes)} clients, {int(sizes.min())} to {int(sizes.max())} images each")
    plots.client_classes(histogram, client_classes_figure, title)
