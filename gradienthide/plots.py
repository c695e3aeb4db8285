"""Figures: reconstruction grids, PSNR by defense, accuracy by round."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from gradienthide.artifacts import atomic_path  # noqa: E402


def _save(figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png", dpi=150, bbox_inches="tight")
    plt.close(figure)


def _as_image(images: torch.Tensor, columns: int):
    grid = make_grid(images.float().clamp(0, 1), nrow=columns, padding=1, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, path: str | Path, title: str) -> None:
    """Originals on the top row, the reconstruction matched to each one below it."""
    columns = len(originals)
    figure, axes = plt.subplots(2, 1, figsize=(max(3, 0.6 * columns), 2.8))
    for axis, images, name in zip(axes, (originals, reconstructions), ("original", "reconstruction")):
        axis.imshow(_as_image(images, columns), cmap="gray" if images.shape[1] == 1 else None)
        axis.set_ylabel(name, fontsize=8)
        axis.set_xticks([]), axis.set_yticks([])
    figure.suptitle(title, fontsize=9)
    _save(figure, path)


def reconstructions_by_defense(rows: list[tuple[str, torch.Tensor]], originals: torch.Tensor, path: str | Path,
                               title: str, max_images: int = 8) -> None:
    """The same private images, and each defense's reconstruction of them, one row each."""
    rows = [("original", originals)] + rows
    figure, axes = plt.subplots(len(rows), 1, figsize=(max(3, 0.7 * max_images), 1.1 * len(rows) + 0.6))
    for axis, (name, images) in zip(axes, rows):
        images = images[:max_images]
        axis.imshow(_as_image(images, len(images)), cmap="gray" if images.shape[1] == 1 else None)
        axis.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
        axis.set_xticks([]), axis.set_yticks([])
    figure.suptitle(title, fontsize=9)
    _save(figure, path)


def psnr_by_defense(metrics: pd.DataFrame, path: str | Path, subtitle: str) -> None:
    figure, axis = plt.subplots(figsize=(1.6 + 1.2 * metrics["defense"].nunique(), 3.6))
    sns.boxplot(data=metrics, x="defense", y="psnr", hue="attack", ax=axis, fliersize=0)
    sns.stripplot(data=metrics, x="defense", y="psnr", hue="attack", dodge=True, ax=axis, size=2.5,
                  color="black", alpha=0.5, legend=False)
    axis.set_ylabel("PSNR (dB); lower = more private")
    axis.set_title(f"Attack quality by defense\n{subtitle}", fontsize=9)
    _save(figure, path)


def accuracy_by_round(accuracy: pd.DataFrame, path: str | Path, subtitle: str) -> None:
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    sns.lineplot(data=accuracy, x="round", y="test_accuracy", hue="defense", ax=axis)
    axis.set_ylabel("test accuracy")
    axis.set_title(f"Test accuracy of the global model\n{subtitle}", fontsize=9)
    _save(figure, path)


def privacy_utility(table: pd.DataFrame, path: str | Path, subtitle: str) -> None:
    """Mean attack PSNR (x, lower = more private) against final accuracy (y), one panel per attack.

    Settings of one defense are joined by a line; the dashed line is the frontier over all.
    """
    attacks = sorted(table["attack"].unique())
    figure, axes = plt.subplots(1, len(attacks), figsize=(6.2 * len(attacks), 4.6), squeeze=False)
    palette = dict(zip(sorted(table["defense_name"].unique()), sns.color_palette("tab10")))
    for axis, attack in zip(axes[0], attacks):
        rows = table[table["attack"] == attack]
        for name, group in rows.groupby("defense_name"):
            group = group.sort_values("psnr_mean")
            axis.plot(group["psnr_mean"], group["final_test_accuracy"], "o-", color=palette[name], label=name, alpha=0.85)
            for _, row in group.iterrows():
                if row["setting"] != "default":
                    axis.annotate(row["setting"], (row["psnr_mean"], row["final_test_accuracy"]), fontsize=6,
                                  xytext=(3, 3), textcoords="offset points")
        frontier = rows[rows["on_frontier"]].sort_values("psnr_mean")
        axis.step(frontier["psnr_mean"], frontier["final_test_accuracy"], "--", where="post", color="black",
                  linewidth=0.8, label="frontier")
        axis.set_xlabel(f"mean PSNR under {attack} (dB); lower = more private")
        axis.set_ylabel("final test accuracy")
        axis.legend(fontsize=7)
    figure.suptitle(f"Privacy-utility trade-off (upper left is better)\n{subtitle}", fontsize=9)
    _save(figure, path)
