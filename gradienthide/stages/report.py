"""Stages aggregate and figures: the study's tables and figures from every job's outputs."""

from __future__ import annotations

import logging

import pandas as pd
import torch

from gradienthide import artifacts, clip_labels, dumps, report
from gradienthide import metrics as image_quality

log = logging.getLogger(__name__)


def public_labeler_of(public_labels) -> str:
    """The labeler recorded in the public labels table, or 'n/a' when no defense used one."""
    if not public_labels:
        return "n/a"
    return str(artifacts.load_table(public_labels, clip_labels.LABEL_COLUMNS)["labeler"].iloc[0])


def aggregate(*, metrics: list[str], accuracy: list[str], metrics_table, metrics_csv, accuracy_table, summary,
              privacy_utility, public_labels=None) -> None:
    public_labeler = public_labeler_of(public_labels)
    table = report.concat_tables(metrics).assign(public_labeler=public_labeler)
    accuracy_by_round = report.concat_tables(accuracy)
    artifacts.save_table(metrics_table, table)
    artifacts.save_table(metrics_csv, table)
    artifacts.save_table(accuracy_table, accuracy_by_round)
    summary_table = report.summary(table, accuracy_by_round)
    artifacts.save_table(summary, summary_table)
    artifacts.save_table(privacy_utility, report.privacy_utility(table, accuracy_by_round))
    log.info("summary (public labels: %s):\n%s", public_labeler, summary_table.to_string(index=False))


def labeler_note(public_labeler: str) -> str:
    if public_labeler == "n/a":
        return "no defense here uses public labels"
    if public_labeler == "oracle":
        return "public labels: oracle (true labels, upper bound of CLIP zero-shot)"
    return f"public labels: {public_labeler}"


def figures(*, metrics_table, accuracy_table, privacy_utility, runs: list[str], reconstructions: list[str],
            private: list[str], psnr_figure, accuracy_figure, privacy_utility_figure, reconstructions_figure,
            public_labels=None) -> None:
    """The report's figures; `runs`, `reconstructions` and `private` are parallel lists: one
    shard of each defense setting, shown side by side."""
    from gradienthide import plots

    note = labeler_note(public_labeler_of(public_labels))
    table = artifacts.load_table(metrics_table)
    plots.psnr_by_defense(table, psnr_figure, note)
    plots.privacy_utility(pd.read_csv(privacy_utility), privacy_utility_figure, note)
    plots.accuracy_by_round(artifacts.load_table(accuracy_table), accuracy_figure, note)
    rows, originals = [], None
    for run_id, reconstructions_path, private_path in zip(runs, reconstructions, private):
        first = dumps.read_reconstructions(reconstructions_path)[0][0]
        private_images, _ = dumps.read_private_batches(private_path)[first.client]
        matched = image_quality.match_to_originals(first.images, private_images)
        originals = private_images if originals is None else originals
        rows.append((run_id, first.images[torch.as_tensor(matched)]))
    plots.reconstructions_by_defense(rows, originals, reconstructions_figure,
                                     f"Reconstructions of the same private batch under each defense ({note})")
