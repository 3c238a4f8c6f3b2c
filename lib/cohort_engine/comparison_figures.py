"""Figures of a comparative study: the Love plot of the covariates' balance and the overlap
of the propensity scores by arm (the weighted curves and the forest are `efficacy` and
`figures`' own).

Nothing here counts patients: the Love plot draws standardised mean differences whose
levels passed the balance table's gate, and the overlap draws densities, not counts.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import PALETTE, to_png  # figures chooses matplotlib's file-only backend first

import matplotlib.pyplot as plt  # noqa: E402  isort:skip

SAMPLE_MARKERS = {"before": ("o", "#9e9e9e"), "weighted": ("s", PALETTE[0]), "matched": ("^", PALETTE[1])}


def love_plot(love: pd.DataFrame, threshold: float, title: str) -> bytes:
    """|SMD| per covariate level before weighting, weighted and matched; the threshold as a
    dashed line. love: balance.love_plot_data's rows (label, sample, abs_smd), levels in
    their order (largest imbalance before weighting first)."""
    labels = list(dict.fromkeys(love["label"]))
    y = {label: len(labels) - 1 - k for k, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.22 * max(len(labels), 1)))
    for sample, (marker, colour) in SAMPLE_MARKERS.items():
        rows = love[(love["sample"] == sample) & love["abs_smd"].notna()]
        ax.scatter(rows["abs_smd"], [y[label] for label in rows["label"]], marker=marker, color=colour, s=18,
                   label=sample, zorder=3)
    ax.axvline(threshold, color="#444", lw=0.8, ls="--")
    ax.set_yticks(list(y.values()))
    ax.set_yticklabels(list(y.keys()), fontsize=7)
    ax.set_xlabel("Absolute standardised mean difference")
    ax.set_xlim(left=0)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    return to_png(fig)


def score_overlap(scores: pd.DataFrame, arms: tuple[str, str], labels: dict[str, str], title: str,
                  min_cell: int) -> bytes:
    """The distribution of the propensity score in each arm, as densities over 20 bins of
    [0, 1] (one arm above the axis, the other mirrored below it, as in a mirrored
    histogram). scores: arm, score. A bin holding 1 to min_cell − 1 of an arm's patients is
    not drawn: with the arm's size published, its height would give the count."""
    bins = np.linspace(0.0, 1.0, 21)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for sign, arm, colour in ((1, arms[0], PALETTE[0]), (-1, arms[1], PALETTE[1])):
        values = scores.loc[scores["arm"] == arm, "score"].to_numpy(dtype=float)
        counts, _ = np.histogram(values, bins=bins)
        counts = np.where(counts < min_cell, 0, counts)
        density = counts / (max(values.size, 1) * (bins[1] - bins[0]))
        ax.bar(bins[:-1], sign * density, width=bins[1] - bins[0], align="edge", color=colour, alpha=0.75,
               edgecolor="white", label=labels.get(arm, arm))
    ax.axhline(0, color="#444", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("Propensity score (probability of the first arm)")
    ax.set_ylabel("Density (second arm below)")
    ax.legend(frameon=False, fontsize=7, loc="upper center")
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    return to_png(fig)
