"""Figures of the report: PSNR by defense, accuracy by round, privacy-utility, reconstructions.

Shared conventions, so the figures read alike: one colour hue per defense family and, within a
swept family, shades from light (weakest setting) to dark (strongest); legends in a free panel
or outside the axes, never on the data; every figure's header names the public labeler and the
attack budget. Figures are deterministic (seeded jitter, no date or software version in the
PNG), so two runs on the same inputs give byte-identical files.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

# seaborn is imported inside the figures that use it, and torchvision not at all: every evaluation
# job imports this module for its reconstruction grid, which needs neither (about 2 s per job).

from gradienthide import report  # noqa: E402
from gradienthide.artifacts import atomic_path  # noqa: E402

DPI = 150
JITTER_SEED = 0
REFERENCE_ATTACK = "ig"  # plain Inverting Gradients: the reference for attacks that see one defense only
NO_DEFENSE = "none"
# one hue per known family; unknown families take the next unused colour
FAMILY_COLOURS = {
    "none": "#333333", "gradienthide": "#d62728", "dp": "#1f77b4", "pruning": "#2ca02c", "soteria": "#9467bd",
    "precode": "#ff7f0e", "mixup": "#8c564b",
}
SPARE_COLOURS = ["#17becf", "#e377c2", "#bcbd22", "#7f7f7f"]
PAGE_WIDTH = 7.5  # inches: a paper page's text width with a little room; 1,125 px at DPI


@dataclass(frozen=True)
class FigureContext:
    """What the figures share: the public labeler note and the attack budgets (attack -> short
    text, in the config's order, which is also the order of the panels) every header states,
    and the defense runs in the config's order (families are shown in that order)."""

    labeler: str
    budgets: dict
    runs: tuple = ()
    uploads: str = ""  # which attacked uploads a figure shows (uploads_note), when a run attacks several

    def budget_line(self, attacks=None) -> str:
        attacks = list(self.budgets) if attacks is None else [a for a in dict.fromkeys(attacks) if a in self.budgets]
        # non-breaking spaces keep each attack's budget on one line when the header wraps
        items = [f"{a} {self.budgets[a]}".replace(" ", "\u00a0") for a in attacks]
        return "attack budget: " + "; ".join(items) if items else ""

    def attack_order(self, present) -> list[str]:
        present = list(dict.fromkeys(present))
        return [a for a in self.budgets if a in present] + [a for a in present if a not in self.budgets]


def uploads_note(uploads: str) -> str:
    """How figures name a set of attacked uploads: the real ones, or a privacy probe's batch size."""
    if uploads == "deployed":
        return "attacked uploads: the sampled clients' real uploads"
    size = uploads.removeprefix("batch")
    return f"attacked uploads: privacy probes, private batches of {size} image{'' if size == '1' else 's'}"


def attack_budget(settings: dict) -> str:
    """A short statement of an attack's optimisation budget from its config block, e.g.
    '1200 it. × 2 restarts' or '25 steps × 20 it.'."""
    iterations, inner, restarts = settings.get("iterations"), settings.get("max_iter"), settings.get("restarts")
    if iterations is None:
        return "default budget"
    text = f"{iterations} steps \u00d7 {inner} it." if inner else f"{iterations} it."
    if restarts and int(restarts) > 1:
        text += f" \u00d7 {restarts} restarts"
    return text


# --- saving and layout --------------------------------------------------------------------------

def _save(figure, path: str | Path) -> None:
    """Write atomically, without the metadata that would differ between runs (software version)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    metadata = {"Software": None} if fmt == "png" else {"Creator": None, "CreationDate": None} if fmt == "pdf" else None
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", metadata=metadata)
    plt.close(figure)


def _header(figure, title: str, context: FigureContext, attacks=None, width_inches: float = PAGE_WIDTH) -> None:
    """Title on the first line, then the labeler and the budget in smaller type, wrapped to the width."""
    characters = max(40, int(width_inches * 15))
    lines = textwrap.wrap(context.labeler, characters) + textwrap.wrap(context.budget_line(attacks), characters)
    lines += textwrap.wrap(context.uploads, characters)
    figure.suptitle(title + "\n" + "\n".join(lines), fontsize=9, y=1.0, va="bottom", linespacing=1.4)


def _grid(count: int, columns: int, panel_width: float, panel_height: float, **subplot_kw):
    """A grid of `count` panels, `columns` wide; returns the figure, the used axes and the spare ones."""
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(panel_width * columns, panel_height * rows), squeeze=False,
                                **subplot_kw)
    flat = list(axes.flat)
    return figure, flat[:count], flat[count:]


def _legend_outside_data(figure, spare_axes, handles, title=None) -> None:
    """The legend over the free panels of the grid when there are any, otherwise to the right of
    the figure. Call after the layout is final: the free panels' area is read then."""
    style = {"fontsize": 7, "title": title, "title_fontsize": 7, "frameon": False}
    if spare_axes:
        for axis in spare_axes:
            axis.set_axis_off()
        boxes = [axis.get_position() for axis in spare_axes]
        x0, y0 = min(b.x0 for b in boxes), min(b.y0 for b in boxes)
        x1, y1 = max(b.x1 for b in boxes), max(b.y1 for b in boxes)
        columns = 2 if len(spare_axes) > 1 and len(handles) > 8 else 1
        figure.legend(handles=handles, loc="center", bbox_to_anchor=(x0, y0, x1 - x0, y1 - y0), ncols=columns, **style)
    else:
        figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), **style)


# --- colours ------------------------------------------------------------------------------------

def _mix(colour, other, weight: float):
    rgb = np.array(mcolors.to_rgb(colour))
    return tuple((1 - weight) * rgb + weight * np.array(mcolors.to_rgb(other)))


def family_colours(runs: pd.DataFrame, preferred=()) -> dict[str, tuple]:
    """Run id -> colour: one hue per defense family, a family's settings from light (weakest,
    lowest swept value) to dark (strongest). `runs` has columns `defense` and `defense_name`."""
    order = report.run_order(runs, preferred)
    family_of = dict(zip(runs["defense"], runs["defense_name"]))
    spare = iter(SPARE_COLOURS * 4)
    base = {}
    for run in order:
        family = family_of[run]
        if family not in base:
            base[family] = FAMILY_COLOURS.get(family) or next(spare)
    colours = {}
    for family, hue in base.items():
        members = [run for run in order if family_of[run] == family]
        if len(members) == 1:
            colours[members[0]] = mcolors.to_rgb(hue)
            continue
        for step, run in enumerate(members):
            shade = step / (len(members) - 1)  # 0 = weakest, 1 = strongest
            colours[run] = _mix(hue, "white", 0.55 * (1 - shade)) if shade < 0.5 else _mix(hue, "black", 0.45 * (shade - 0.5))
    return colours


def _run_label(run: str, family: str) -> str:
    setting = run[len(family):].lstrip("-")
    return f"{family} {setting}" if setting else family


# --- PSNR by defense ----------------------------------------------------------------------------

BOOTSTRAP_NOTE = "95% bootstrap interval (replicates, then images within them)"


def _replicates_note(table: pd.DataFrame) -> str:
    count = int(table["replicates"].max()) if "replicates" in table and len(table) else 1
    return f"{count} replicate{'s' if count != 1 else ''}"


def psnr_by_defense(metrics: pd.DataFrame, summary: pd.DataFrame, path: str | Path, context: FigureContext) -> None:
    """One panel per attack: a horizontal box per defense setting with every image's PSNR as a
    (seeded) jittered point, and the mean with its 95 % interval (summary.csv) as a white diamond
    with a bar; the dotted line is the attack's mean PSNR without defense."""
    import seaborn as sns

    attacks = context.attack_order(metrics["attack"])
    order = report.run_order(metrics, context.runs)
    colours = family_colours(metrics, context.runs)
    family_of = dict(zip(metrics["defense"], metrics["defense_name"]))
    means = summary.groupby(["defense", "attack"])[["psnr_mean", "psnr_low", "psnr_high", "images"]].apply(
        lambda cell: pd.Series({  # rounds pooled, weighted by their images (one round in most configs)
            "psnr_mean": np.average(cell["psnr_mean"], weights=cell["images"]),
            "psnr_low": np.average(cell["psnr_low"], weights=cell["images"]),
            "psnr_high": np.average(cell["psnr_high"], weights=cell["images"])}))
    rng = np.random.default_rng(JITTER_SEED)
    referenced = False
    panel_height = 0.9 + 0.26 * len(order)
    with sns.axes_style("whitegrid"):
        figure, axes, spare = _grid(len(attacks), 3, PAGE_WIDTH / 3, panel_height, sharex=True, sharey=True)
        for axis, attack in zip(axes, attacks):
            rows = metrics[metrics["attack"] == attack]
            for position, run in enumerate(order):
                values = rows.loc[rows["defense"] == run, "psnr"].dropna().to_numpy()
                if not len(values):
                    continue
                axis.boxplot(values, positions=[position], orientation="horizontal", widths=0.6, patch_artist=True,
                             showfliers=False, boxprops={"facecolor": colours[run], "alpha": 0.6, "linewidth": 0.6},
                             medianprops={"color": "#555555", "linewidth": 0.8},
                             whiskerprops={"linewidth": 0.6, "color": "#9a9a9a"},
                             capprops={"linewidth": 0.6, "color": "#9a9a9a"})
                jitter = rng.uniform(-0.18, 0.18, size=len(values))
                axis.scatter(values, position + jitter, s=3, color="black", alpha=0.4, linewidths=0, zorder=3)
                if (run, attack) in means.index:
                    cell = means.loc[(run, attack)]
                    axis.errorbar(cell["psnr_mean"], position, xerr=[[cell["psnr_mean"] - cell["psnr_low"]],
                                                                     [cell["psnr_high"] - cell["psnr_mean"]]],
                                  fmt="D", markersize=4, markerfacecolor="white", markeredgecolor="black",
                                  ecolor="black", elinewidth=1.8, capsize=2.5, capthick=1.2, zorder=5)
            # an attack run against few defenses (the adaptive ones): plain IG as the reference
            no_defense_here = NO_DEFENSE in set(rows["defense"])
            baseline_attack = attack if no_defense_here else REFERENCE_ATTACK
            if not no_defense_here and attack != REFERENCE_ATTACK:
                reference = metrics[metrics["attack"] == REFERENCE_ATTACK]
                for position, run in enumerate(order):
                    values = reference.loc[reference["defense"] == run, "psnr"]
                    if len(values) and run in set(rows["defense"]):
                        referenced = True
                        axis.plot(values.mean(), position, "o", markersize=4, markerfacecolor="none",
                                  markeredgecolor="#333333", markeredgewidth=0.9, zorder=4)
            if (NO_DEFENSE, baseline_attack) in means.index:
                axis.axvline(means.loc[(NO_DEFENSE, baseline_attack), "psnr_mean"], color="#333333", linestyle=":",
                             linewidth=0.9)
            sources = "/".join(sorted(rows["label_source"].dropna().astype(str).unique())) or "n/a"
            axis.set_title(f"{attack}\nlabels {sources}, {context.budgets.get(attack, '')}", fontsize=8)
            axis.set_yticks(range(len(order)), [_run_label(run, family_of[run]) for run in order], fontsize=7)
            axis.set_ylim(len(order) - 0.5, -0.5)
            axis.tick_params(axis="x", labelsize=7)
            axis.set_xlabel("PSNR (dB), lower = more private", fontsize=7)
        for axis in axes:
            axis.xaxis.set_tick_params(labelbottom=True)
        figure.tight_layout(h_pad=1.2, w_pad=0.6)
        handles = [Line2D([], [], color="black", marker="D", markerfacecolor="white", linestyle="-", markersize=4,
                          label="\n".join(textwrap.wrap(f"mean, {BOOTSTRAP_NOTE}", 38))),
                   Line2D([], [], color="#333333", linestyle=":", label=f"mean without defense\n(under {REFERENCE_ATTACK} in panels without none)")]
        if referenced:
            handles.append(Line2D([], [], color="#333333", marker="o", markerfacecolor="none", linestyle="",
                                  markersize=4, label=f"mean under plain {REFERENCE_ATTACK} (reference)"))
        _legend_outside_data(figure, spare, handles, title=_replicates_note(summary))
        _header(figure, "Attack quality (PSNR per image) by defense setting and attack", context, attacks)
    _save(figure, path)


# --- accuracy by round --------------------------------------------------------------------------

def smoothed(curve: pd.Series, window: int) -> pd.Series:
    """Trailing rolling mean over `window` rounds: the curve's value at the last round equals
    the utility column (mean over the last `window` rounds)."""
    return curve.rolling(window, min_periods=1).mean()


def accuracy_by_round(accuracy: pd.DataFrame, path: str | Path, context: FigureContext) -> None:
    """One panel per defense family: each setting's test accuracy smoothed over the utility window
    and averaged over replicates, with a band of its 95 % t-interval over replicates (when there
    are several), over the faint raw per-round mean; the no-defense curve as a dashed reference,
    and the utility window shaded."""
    import seaborn as sns

    order = report.run_order(accuracy, context.runs)
    colours = family_colours(accuracy, context.runs)
    family_of = dict(zip(accuracy["defense"], accuracy["defense_name"]))
    families = list(dict.fromkeys(family_of[run] for run in order))
    seeds = accuracy["seed"] if "seed" in accuracy else pd.Series(0, index=accuracy.index)
    rounds = int(accuracy.assign(seed=seeds).groupby(["defense", "seed"])["round"].nunique().max())
    replicates = int(seeds.nunique())
    window = report.utility_window(rounds)
    last_round = int(accuracy["round"].max())
    bands = report.accuracy_bands(accuracy, window)
    curves = {run: bands[bands["defense"] == run].sort_values("round") for run in order}
    raw = accuracy.groupby(["defense", "round"], as_index=False)["test_accuracy"].mean()
    with sns.axes_style("whitegrid"):
        figure, axes, spare = _grid(len(families), 3, PAGE_WIDTH / 3, 2.1, sharex=True, sharey=True)
        for axis, family in zip(axes, families):
            axis.axvspan(last_round - window + 0.5, last_round + 0.5, color="#e8e8e8", zorder=0, linewidth=0)
            if family != NO_DEFENSE and NO_DEFENSE in curves:
                reference = curves[NO_DEFENSE]
                axis.plot(reference["round"], reference["mean"], color="#555555", linestyle="--", linewidth=0.9, zorder=2)
            for run in (r for r in order if family_of[r] == family):
                curve, points = curves[run], raw[raw["defense"] == run].sort_values("round")
                axis.plot(points["round"], points["test_accuracy"], color=colours[run], alpha=0.2, linewidth=0.6,
                          zorder=1)
                if curve["low"].notna().any():
                    axis.fill_between(curve["round"], curve["low"], curve["high"], color=colours[run], alpha=0.25,
                                      linewidth=0, zorder=2)
                axis.plot(curve["round"], curve["mean"], color=colours[run], linewidth=1.5, zorder=3)
            axis.set_title(family, fontsize=8)
            axis.set_ylim(0, 1)
            axis.tick_params(labelsize=7)
        for index, axis in enumerate(axes):
            if index % 3 == 0:
                axis.set_ylabel("test accuracy", fontsize=7)
            axis.set_xlabel("round", fontsize=7)
            axis.xaxis.set_tick_params(labelbottom=True)
        handles = [Line2D([], [], color=colours[run], linewidth=1.5, label=_run_label(run, family_of[run]))
                   for run in order]
        handles += [Line2D([], [], color="#555555", linestyle="--", linewidth=0.9, label="none (reference)"),
                    Line2D([], [], color="#888888", alpha=0.35, linewidth=0.6, label="raw, per round")]
        if replicates > 1:
            handles.append(Patch(facecolor="#888888", alpha=0.25, label=f"95% t-interval over {replicates} replicates"))
        handles.append(Patch(facecolor="#e8e8e8", label=f"last {window} rounds (utility)"))
        figure.tight_layout(h_pad=1.0, w_pad=0.6)
        _legend_outside_data(figure, spare, handles,
                             title=f"rolling mean over {window} rounds, mean of {replicates} replicate"
                                   f"{'s' if replicates != 1 else ''}")
        _header(figure, "Test accuracy of the global model by round", context)
    _save(figure, path)


# --- privacy-utility ----------------------------------------------------------------------------

VERDICT_MARKERS = {"frontier": "full", "undecided": "left", "dominated": "none"}


def no_defense_reference(table: pd.DataFrame, attack: str, round_number: int) -> pd.DataFrame:
    """The no-defense rows to draw as a reference in the (attack, round) panel of a figure by
    round: none when the panel has its own no-defense run or is the reference attack itself;
    else the no-defense run under plain REFERENCE_ATTACK at that round (an adaptive attacker runs
    against the defense it targets only, and against no defense it is that attack)."""
    rows = table[(table["attack"] == attack) & (table["round"] == round_number)]
    if attack == REFERENCE_ATTACK or NO_DEFENSE in set(rows["defense"]):
        return table.iloc[:0]
    return table[(table["attack"] == REFERENCE_ATTACK) & (table["round"] == round_number)
                 & (table["defense"] == NO_DEFENSE)]


def _panels(table: pd.DataFrame, context: FigureContext) -> list[tuple[str, int]]:
    """(attack, round) panels in the config's attack order; the round is named only when several."""
    attacks = context.attack_order(table["attack"])
    return [(attack, int(r)) for attack in attacks for r in sorted(table.loc[table["attack"] == attack, "round"].unique())]


def privacy_utility(table: pd.DataFrame, path: str | Path, context: FigureContext) -> None:
    """One panel per attack (and attacked round): mean PSNR (x, lower = more private) against
    utility (y), each with its interval as bars; the marker's fill is the setting's frontier
    verdict (filled: frontier, half: undecided, hollow: dominated beyond the intervals). Settings
    of one family are joined in order of strength. A panel without the no-defense setting (the
    adaptive attacks) also shows, as open circles, the same settings and `none` under plain IG."""
    import seaborn as sns

    panels = _panels(table, context)
    several_rounds = table["round"].nunique() > 1
    colours = family_colours(table, context.runs)
    family_of = dict(zip(table["defense"], table["defense_name"]))
    order = report.run_order(table, context.runs)
    utility, low, high = report.UTILITY_MEAN, report.UTILITY_LOW, report.UTILITY_HIGH
    window = int(table[report.UTILITY_ROUNDS].max())
    with sns.axes_style("whitegrid"):
        figure, axes, spare = _grid(len(panels), 3, PAGE_WIDTH / 3, 2.6)
        used_reference = False
        for axis, (attack, round_number) in zip(axes, panels):
            rows = table[(table["attack"] == attack) & (table["round"] == round_number)].set_index("defense")
            reference = table[(table["attack"] == REFERENCE_ATTACK) & (table["round"] == round_number)].set_index("defense")
            runs = [run for run in order if run in rows.index]
            for family in dict.fromkeys(family_of[run] for run in runs):
                members = [run for run in runs if family_of[run] == family]
                if len(members) > 1:
                    axis.plot(rows.loc[members, "psnr_mean"], rows.loc[members, utility], color=colours[members[-1]],
                              linewidth=0.8, alpha=0.6, zorder=2)
            for run in runs:
                cell = rows.loc[run]
                axis.errorbar(cell["psnr_mean"], cell[utility],
                              xerr=[[cell["psnr_mean"] - cell["psnr_low"]], [cell["psnr_high"] - cell["psnr_mean"]]],
                              yerr=[[cell[utility] - cell[low]], [cell[high] - cell[utility]]],
                              fmt="o", markersize=5, color=colours[run], ecolor=colours[run], elinewidth=0.7,
                              capsize=1.5, fillstyle=VERDICT_MARKERS.get(cell["frontier"], "full"),
                              markerfacecoloralt="white", zorder=3)
            if NO_DEFENSE not in rows.index and attack != REFERENCE_ATTACK and len(reference):
                used_reference = True
                for run in [r for r in runs if r in reference.index] + ([NO_DEFENSE] if NO_DEFENSE in reference.index else []):
                    x, y = reference.at[run, "psnr_mean"], reference.at[run, utility]
                    axis.plot(x, y, "o", markersize=6, markerfacecolor="none", markeredgecolor=colours.get(run, "#333333"),
                              markeredgewidth=0.8, linestyle="", zorder=3)
                    above = run == NO_DEFENSE  # the no-defense reference labelled above its point, the setting's below
                    axis.annotate(f"{run} under {REFERENCE_ATTACK}", (x, y), xytext=(0, 7 if above else -7),
                                  textcoords="offset points", fontsize=6, ha="center", va="bottom" if above else "top",
                                  color="#333333")
                    if run in rows.index:
                        axis.annotate("", xy=(rows.at[run, "psnr_mean"], rows.at[run, utility]), xytext=(x, y),
                                      arrowprops={"arrowstyle": "->", "color": colours[run], "linewidth": 0.8}, zorder=2)
                axis.margins(x=0.25, y=0.25)
            title = f"{attack}" + (f", round {round_number}" if several_rounds else "")
            axis.set_title(f"{title} ({context.budgets.get(attack, '')})", fontsize=8)
            axis.set_xlabel("mean PSNR (dB), lower = more private", fontsize=7)
            axis.set_ylabel(f"test accuracy, mean of last {window} rounds", fontsize=7)
            axis.tick_params(labelsize=7)
        handles = [Line2D([], [], color=colours[run], marker="o", linestyle="", label=_run_label(run, family_of[run]))
                   for run in order]
        handles += [Line2D([], [], color="#555555", marker="o", linestyle="", fillstyle=fill,
                           markerfacecoloralt="white", label=verdict) for verdict, fill in VERDICT_MARKERS.items()]
        if used_reference:
            handles.append(Line2D([], [], color="#333333", marker="o", markerfacecolor="none", linestyle="",
                                  label=f"reference: under plain {REFERENCE_ATTACK}"))
        figure.tight_layout(h_pad=1.2, w_pad=0.8)
        interval = str(table[report.UTILITY_INTERVAL].iloc[0]) if len(table) else ""
        title = "\n".join(["upper left is better"] + textwrap.wrap(f"PSNR bars: {BOOTSTRAP_NOTE}", 38)
                          + textwrap.wrap(f"accuracy bars: {interval}", 38))
        _legend_outside_data(figure, spare, handles, title=title)
        _header(figure, "Privacy-utility trade-off per attack", context, [attack for attack, _ in panels])
    _save(figure, path)


# --- budget curves ------------------------------------------------------------------------------

def budget_curves(curves: pd.DataFrame, summary: pd.DataFrame, path: str | Path, context: FigureContext) -> None:
    """One panel per attack (and attacked round): mean PSNR against the iterations the attack had
    (log scale, its checkpoints at 1/8, 1/4, 1/2 and all of its budget), one line per defense
    setting with its 95 % interval as a band. A cell flagged budget-limited in summary.csv (its
    PSNR still rose by more than its interval over the last doubling) ends in a star."""
    import seaborn as sns

    panels = _panels(curves, context)
    several_rounds = curves["round"].nunique() > 1
    colours = family_colours(curves, context.runs)
    family_of = dict(zip(curves["defense"], curves["defense_name"]))
    order = report.run_order(curves, context.runs)
    limited, referenced = set(), False
    if "budget_limited" in summary:
        flagged = summary[summary["budget_limited"].astype(str).str.lower() == "true"]
        limited = set(zip(flagged["defense"], flagged["attack"], flagged["round"]))
    with sns.axes_style("whitegrid"):
        figure, axes, spare = _grid(len(panels), 3, PAGE_WIDTH / 3, 2.4)
        for axis, (attack, round_number) in zip(axes, panels):
            rows = curves[(curves["attack"] == attack) & (curves["round"] == round_number)]
            for run in (r for r in order if r in set(rows["defense"])):
                line = rows[rows["defense"] == run].sort_values("iterations")
                axis.fill_between(line["iterations"], line["psnr_low"], line["psnr_high"], color=colours[run],
                                  alpha=0.15, linewidth=0)
                axis.plot(line["iterations"], line["psnr_mean"], marker="o", markersize=2.5, linewidth=1.0,
                          color=colours[run])
                if (run, attack, round_number) in limited:
                    end = line.iloc[-1]
                    axis.plot(end["iterations"], end["psnr_mean"], "*", markersize=9, color=colours[run],
                              markeredgecolor="black", markeredgewidth=0.5, zorder=5)
            reference = no_defense_reference(curves, attack, round_number)
            if len(reference):  # the no-defense PSNR at its attack's full budget
                referenced = True
                axis.axhline(reference.sort_values("iterations")["psnr_mean"].iloc[-1], color=colours[NO_DEFENSE],
                             linestyle=":", linewidth=0.9)
            unit = "L-BFGS steps" if "steps" in context.budgets.get(attack, "") else "iterations"
            _psnr_against_log_x(axis, ticks=sorted(rows["iterations"].unique()), xlabel=unit,
                                title=f"{attack}" + (f", round {round_number}" if several_rounds else ""),
                                budget=context.budgets.get(attack, ""))
        handles = [Line2D([], [], color=colours[run], marker="o", markersize=3, label=_run_label(run, family_of[run]))
                   for run in order]
        handles.append(Line2D([], [], color="#555555", marker="*", markersize=8, linestyle="",
                              label="budget-limited: rose beyond its interval\nover the last doubling"))
        if referenced:
            handles.append(Line2D([], [], color=colours[NO_DEFENSE], linestyle=":",
                                  label=f"{NO_DEFENSE} under plain {REFERENCE_ATTACK}, its full\nbudget (panels without {NO_DEFENSE})"))
        figure.tight_layout(h_pad=1.2, w_pad=0.8)
        _legend_outside_data(figure, spare, handles,
                             title="\n".join(textwrap.wrap(f"bands: {BOOTSTRAP_NOTE}; {_replicates_note(summary)}", 38)))
        _header(figure, "Is the attack budget enough? PSNR at fractions of each attack's budget", context,
                [attack for attack, _ in panels])
    _save(figure, path)


def _psnr_against_log_x(axis, *, ticks, xlabel: str, title: str, budget: str) -> None:
    """A panel of mean PSNR against a doubling quantity (iterations, batch size): log-2 x axis
    ticked at the values drawn, the attack's budget in the title."""
    axis.set_xscale("log", base=2)
    axis.set_xticks(ticks, [f"{t:g}" for t in ticks], fontsize=6)
    axis.minorticks_off()
    axis.set_title(f"{title} ({budget})", fontsize=8)
    axis.set_xlabel(f"{xlabel} (log scale)", fontsize=7)
    axis.set_ylabel("mean PSNR (dB)", fontsize=7)
    axis.tick_params(axis="y", labelsize=7)


# --- PSNR by private batch size ------------------------------------------------------------------

def psnr_by_batch_size(summary: pd.DataFrame, path: str | Path, context: FigureContext) -> None:
    """One panel per attack (and attacked round): mean PSNR with its 95 % interval (summary.csv)
    against the private batch size of the privacy probes (log scale), one line per defense
    setting; the real uploads, whose protocol differs (local steps, whole shards), are a hollow
    square each at their mean batch, not joined to the lines."""
    import seaborn as sns

    summary = summary.assign(uploads=summary["uploads"] if "uploads" in summary else "deployed")
    panels = _panels(summary[summary["uploads"] != "deployed"], context)  # the (attack, round) cells probed
    several_rounds = summary["round"].nunique() > 1
    colours = family_colours(summary, context.runs)
    family_of = dict(zip(summary["defense"], summary["defense_name"]))
    probed = summary[summary["attack"].isin({attack for attack, _ in panels})]
    order = report.run_order(probed, context.runs)  # colours as in the other figures, legend of what is shown
    sizes = sorted(summary["private_batch"].dropna().unique())
    shown_deployed = referenced = False
    with sns.axes_style("whitegrid"):
        figure, axes, spare = _grid(len(panels), 3, PAGE_WIDTH / 3, 2.4)
        for axis, (attack, round_number) in zip(axes, panels):
            rows = summary[(summary["attack"] == attack) & (summary["round"] == round_number)]
            runs = [run for run in order if run in set(rows["defense"])]
            for index, run in enumerate(runs):
                nudge = 1.03 ** (index - (len(runs) - 1) / 2)  # side by side, so that the bars do not hide each other
                mine = rows[rows["defense"] == run]
                for deployed, part in ((False, mine[mine["uploads"] != "deployed"]), (True, mine[mine["uploads"] == "deployed"])):
                    part = part.sort_values("private_batch")
                    if not len(part):
                        continue
                    shown_deployed |= deployed
                    axis.errorbar(part["private_batch"] * nudge, part["psnr_mean"],
                                  yerr=[part["psnr_mean"] - part["psnr_low"], part["psnr_high"] - part["psnr_mean"]],
                                  fmt="s" if deployed else "o", markersize=4 if deployed else 3, linewidth=1.0,
                                  color=colours[run], ecolor=colours[run], elinewidth=0.7, capsize=1.5,
                                  markerfacecolor="white" if deployed else colours[run], linestyle="" if deployed else "-")
            reference = no_defense_reference(summary, attack, round_number)
            reference = reference[reference["uploads"] != "deployed"].sort_values("private_batch")
            if len(reference):
                referenced = True
                axis.plot(reference["private_batch"], reference["psnr_mean"], linestyle=":", marker="o", markersize=3,
                          markerfacecolor="white", linewidth=1.0, color=colours[NO_DEFENSE])
            ticks = sorted(rows["private_batch"].dropna().unique()) or sizes
            _psnr_against_log_x(axis, ticks=ticks, xlabel="private batch size",
                                title=f"{attack}" + (f", round {round_number}" if several_rounds else ""),
                                budget=context.budgets.get(attack, ""))
            axis.set_xlim(min(ticks) / 1.6, max(ticks) * 1.6)
        handles = [Line2D([], [], color=colours[run], marker="o", markersize=3, label=_run_label(run, family_of[run]))
                   for run in order]
        if shown_deployed:
            handles.append(Line2D([], [], color="#555555", marker="s", markerfacecolor="white", linestyle="",
                                  label="real uploads (their own protocol),\nat their mean batch"))
        if referenced:
            handles.append(Line2D([], [], color=colours[NO_DEFENSE], linestyle=":", marker="o", markersize=3,
                                  markerfacecolor="white",
                                  label=f"{NO_DEFENSE} under plain {REFERENCE_ATTACK} (reference,\npanels without {NO_DEFENSE})"))
        figure.tight_layout(h_pad=1.2, w_pad=0.8)
        _legend_outside_data(figure, spare, handles,
                             title="\n".join(textwrap.wrap(f"bars: {BOOTSTRAP_NOTE}; {_replicates_note(summary)}", 38)))
        _header(figure, "Attack quality against the private batch size (privacy probes); lower PSNR = more private", context,
                [attack for attack, _ in panels])
    _save(figure, path)


# --- reconstructions ----------------------------------------------------------------------------

@dataclass
class ReconstructionBlock:
    """One attack's part of the reconstructions figure: the originals (with their labels) and,
    per defense setting, the reconstruction matched to each original and its PSNR."""

    attack: str
    round: int
    label_source: str
    originals: torch.Tensor
    labels: list[int]
    rows: list[tuple[str, torch.Tensor, list[float]]]  # (run id, images in original order, PSNR each)
    client: int = -1  # whose private batch the originals are
    seed: int = 0  # the replicate shown
    class_names: list[str] | None = None  # the dataset's, by label; None: images are captioned `label <n>`

    def captions(self) -> list[str]:
        return class_captions(self.labels, self.class_names)


def class_captions(labels: list[int], class_names: list[str] | None) -> list[str]:
    """Each label's class name, or `label <n>` without names (or for a label beyond them)."""
    return [class_names[label] if class_names and 0 <= label < len(class_names) else f"label {label}"
            for label in labels]


def _strip(images: torch.Tensor) -> torch.Tensor:
    """The images side by side, one white pixel around each: torchvision's make_grid with one
    row (tests/test_report.py), without importing torchvision into every evaluation job."""
    framed = F.pad(images.float().clamp(0, 1), (1, 0, 1, 1), value=1.0)  # left, top, bottom
    return F.pad(torch.cat(list(framed), dim=-1), (0, 1), value=1.0)  # and the right edge


def _show(axis, image: torch.Tensor) -> None:
    image = image.float().clamp(0, 1)
    if image.shape[0] == 1:
        axis.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        axis.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
    axis.set_xticks([]), axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


def _columns_of(blocks: list[ReconstructionBlock], heights: list[float]) -> list[list[int]]:
    """Blocks split into one or two columns of about equal height, keeping their order."""
    total = sum(heights)
    if len(blocks) < 2 or total <= 14:
        return [list(range(len(blocks)))]
    running, split = 0.0, len(blocks) - 1
    for index, height in enumerate(heights):
        running += height
        if running >= total / 2:
            split = index + 1 if running - total / 2 < height / 2 or index == 0 else index
            break
    split = min(max(split, 1), len(blocks) - 1)
    return [list(range(split)), list(range(split, len(blocks)))]


def reconstructions(blocks: list[ReconstructionBlock], path: str | Path, context: FigureContext, max_images: int = 8) -> None:
    """A block per attack: the private images on the first row, then each defense setting's
    reconstructions matched to them, with the PSNR under each image."""
    columns_per_block = max(min(len(b.originals), max_images) for b in blocks)
    cell = 0.62  # inches per image
    label_width = 1.25
    heights = [0.7 + cell * 1.3 * (1 + len(b.rows)) for b in blocks]
    layout = _columns_of(blocks, heights)
    block_width = max(label_width + cell * columns_per_block, 3.2)  # room for the block's title
    column_heights = [sum(heights[i] for i in column) for column in layout]
    width, height = block_width * len(layout) + 0.3 * (len(layout) - 1), max(column_heights)
    figure = plt.figure(figsize=(width, height))
    columns = figure.subfigures(1, len(layout), squeeze=False, wspace=0.02)[0]
    for subfigure, column, column_height in zip(columns, layout, column_heights):
        ratios = [heights[i] for i in column] + ([height - column_height] if height - column_height > 1e-6 else [])
        parts = subfigure.subfigures(len(ratios), 1, height_ratios=ratios, squeeze=False)[:, 0]
        for part, index in zip(parts, column):
            _draw_block(part, blocks[index], context, columns_per_block, label_width / block_width, heights[index])
    _header(figure, "Reconstructions of the first attacked client's private batch, per attack and defense", context,
            [b.attack for b in blocks], width_inches=width)
    _save(figure, path)


def _draw_block(subfigure, block: ReconstructionBlock, context: FigureContext, columns: int, label_fraction: float,
                height: float) -> None:
    rows = [("original", block.originals, block.captions())]
    rows += [(_run_label(run, run.split("-")[0]), images, [f"{value:.1f} dB" for value in psnr])
             for run, images, psnr in block.rows]
    grid = subfigure.add_gridspec(len(rows), columns + 1, width_ratios=[label_fraction * columns / (1 - label_fraction)]
                                  + [1] * columns, left=0.0, right=1.0, bottom=0.15 / height, top=1 - 0.6 / height,
                                  wspace=0.08, hspace=0.45)
    for row_index, (name, images, captions) in enumerate(rows):
        label_axis = subfigure.add_subplot(grid[row_index, 0])
        label_axis.set_axis_off()
        label_axis.text(0.95, 0.5, name, ha="right", va="center", fontsize=7,
                        fontweight="bold" if row_index == 0 else "normal", transform=label_axis.transAxes)
        for column in range(columns):
            axis = subfigure.add_subplot(grid[row_index, column + 1])
            if column >= len(images):
                axis.set_axis_off()
                continue
            _show(axis, images[column])
            axis.set_xlabel(captions[column], fontsize=6, labelpad=1.5)
    subfigure.suptitle(f"{block.attack} at round {block.round} (replicate seed {block.seed})\nlabels {block.label_source}; "
                       f"{context.budgets.get(block.attack, '')}", fontsize=8, y=1 - 0.06 / height, va="top")


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, path: str | Path, title: str,
                        *, original_captions: list[str] | None = None,
                        reconstruction_captions: list[str] | None = None) -> None:
    """Originals on the top row, the reconstruction matched to each one below it (one attack job);
    each image captioned underneath when captions are given (class names, PSNR)."""
    columns = len(originals)
    figure, axes = plt.subplots(2, 1, figsize=(max(3, 0.75 * columns), 3.2))
    pitch = originals.shape[-1] + 1  # an image and its one-pixel frame in the strip
    for axis, images, name, captions in zip(axes, (originals, reconstructions), ("original", "reconstruction"),
                                            (original_captions, reconstruction_captions)):
        _show(axis, _strip(images))
        axis.set_ylabel(name, fontsize=8)
        if captions:
            axis.set_xticks([1 + index * pitch + (pitch - 1) / 2 for index in range(len(captions))], captions,
                            fontsize=6, rotation=45 if max(map(len, captions)) > 6 else 0)
            axis.tick_params(axis="x", length=0, pad=2)
    figure.suptitle(title, fontsize=9)
    _save(figure, path)


ADAPTIVE_ATTACKS = ("ig", "adaptive", "adaptive_infer", "adaptive_oracle")


def defense_settings(table: pd.DataFrame, path: str | Path, context: FigureContext, defense: str = "gradienthide") -> None:
    """One defense's settings side by side: mean PSNR under plain IG and the adaptive attacks with
    their 95 % intervals (left; lower = safer) and the utility with its interval (right), so a
    reader sees which settings keep the defense safe against an attacker who knows it, and what
    they cost. Rounds are pooled when several were attacked: the first attacked round is shown."""
    import seaborn as sns

    first_round = table["round"].min()
    table = table[table["round"] == first_round]
    rows = table[table["defense_name"] == defense]
    settings = sorted(rows["setting"].unique(), key=report.natural_key)
    attacks = [a for a in ADAPTIVE_ATTACKS if a in set(rows["attack"])]
    figure, (privacy_axis, utility_axis) = plt.subplots(
        1, 2, figsize=(PAGE_WIDTH, 0.9 + 0.32 * max(4, len(settings))), sharey=True,
        gridspec_kw={"width_ratios": [2, 1]})
    positions = {setting: index for index, setting in enumerate(settings)}
    markers = dict(zip(ADAPTIVE_ATTACKS, ("o", "s", "D", "^")))
    palette = dict(zip(ADAPTIVE_ATTACKS, sns.color_palette("colorblind", len(ADAPTIVE_ATTACKS))))
    for offset, attack in zip(np.linspace(-0.18, 0.18, max(1, len(attacks))), attacks):
        part = rows[rows["attack"] == attack].sort_values("setting", key=lambda s: s.map(positions))
        y = part["setting"].map(positions) + offset  # attacks side by side, so their bars do not overlap
        privacy_axis.errorbar(part["psnr_mean"], y, xerr=[part["psnr_mean"] - part["psnr_low"],
                                                          part["psnr_high"] - part["psnr_mean"]],
                              marker=markers[attack], markersize=4, linestyle="-", linewidth=0.8, elinewidth=0.7,
                              capsize=1.5, color=palette[attack], label=attack)
    reference = table[(table["defense_name"] == NO_DEFENSE) & (table["attack"] == REFERENCE_ATTACK)]
    if not reference.empty:
        privacy_axis.axvline(float(reference["psnr_mean"].iloc[0]), color="#333333", linestyle=":", linewidth=1,
                             label=f"{NO_DEFENSE} under {REFERENCE_ATTACK}")
    privacy_axis.set_yticks(range(len(settings)), settings, fontsize=7)
    privacy_axis.set_xlabel(f"mean PSNR (dB); lower = more private\nbars: {BOOTSTRAP_NOTE}", fontsize=7)
    privacy_axis.invert_yaxis()
    utility = rows.drop_duplicates("setting").set_index("setting").reindex(settings)
    utility_axis.errorbar(utility[report.UTILITY_MEAN], range(len(settings)),
                          xerr=[utility[report.UTILITY_MEAN] - utility[report.UTILITY_LOW],
                                utility[report.UTILITY_HIGH] - utility[report.UTILITY_MEAN]],
                          fmt="o", color=FAMILY_COLOURS.get(defense, "#d62728"), markersize=4, linewidth=1)
    interval = str(utility[report.UTILITY_INTERVAL].iloc[0]) if len(utility) else ""
    utility_axis.set_xlabel("test accuracy (last rounds)\n" + textwrap.fill(f"bars: {interval}", 40), fontsize=7)
    for axis in (privacy_axis, utility_axis):
        axis.grid(axis="x", alpha=0.3)
        axis.tick_params(labelsize=7)
    privacy_axis.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(0.0, -0.24), ncols=3)
    figure.tight_layout()
    _header(figure, f"{defense} settings against attackers who know it (round {first_round})", context, attacks)
    _save(figure, path)


def confusion_matrix(confusion: pd.DataFrame, path: str | Path, title: str) -> None:
    """A labeler's confusion matrix on the public pool (true class by row, label by column)."""
    import seaborn as sns

    size = max(4.0, 0.45 * len(confusion) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    if confusion.to_numpy().sum():
        sns.heatmap(confusion, annot=len(confusion) <= 20, fmt="d", cmap="Blues", cbar=True, ax=axis, square=True)
    else:
        axis.text(0.5, 0.5, "no pool image has a true label\nin the task's classes", ha="center", va="center")
        axis.set_axis_off()
    axis.set_title(title, fontsize=9)
    _save(figure, path)


def client_classes(histogram: pd.DataFrame, path: str | Path, title: str) -> None:
    """The clients' private images per class (clients by row, classes by column; counts written
    in the cells when the grid is small), with each client's total at the right."""
    import seaborn as sns

    grid = histogram.pivot(index="client", columns="label", values="images").sort_index()
    names = histogram.drop_duplicates("label").set_index("label")["class_name"]
    clients, classes = grid.shape
    width = min(PAGE_WIDTH * 2, max(4.0, 0.35 * classes + 2.5))
    height = min(PAGE_WIDTH * 1.5, max(3.0, 0.3 * clients + 1.5))
    figure, axis = plt.subplots(figsize=(width, height))
    small = clients * classes <= 400
    sns.heatmap(grid, annot=small, fmt="d", annot_kws={"fontsize": 6}, cmap="Blues", ax=axis,
                cbar_kws={"label": "private images"}, xticklabels=classes <= 40, yticklabels=clients <= 60)
    if classes <= 40:
        axis.set_xticklabels([names[label] for label in grid.columns], rotation=90, fontsize=7)
    if clients <= 60:
        axis.set_yticklabels([f"{client} ({total})" for client, total in grid.sum(axis=1).items()], rotation=0,
                             fontsize=7)
    axis.set_xlabel(f"class ({classes})", fontsize=8)
    axis.set_ylabel(f"client (its images), {clients} clients", fontsize=8)
    axis.set_title(title, fontsize=9)
    _save(figure, path)
