"""Figures of the report, drawn with matplotlib (Agg) and returned as PNG bytes.

Every number printed on a figure has been through disclosure control before it
arrives here: the functions draw what they are given.
"""
from __future__ import annotations

import io
import logging
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HR_TICKS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
PALETTE = ["#1f5f99", "#c0392b", "#2e8b57", "#8e44ad", "#d35400", "#566573", "#b7950b", "#17a589"]
# Latin text in DejaVu Sans; glyphs it lacks (province and drug names in Chinese) fall back to a
# CJK font where one is installed. matplotlib falls back glyph by glyph only along an explicit
# font.family list, not along the generic sans-serif one. Its font manager logs each family it
# cannot find or weight it has to guess: noise, so only its errors are kept.
plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "font.family": ["DejaVu Sans", "Noto Sans CJK SC", "WenQuanYi Zen Hei", "sans-serif"]})
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def attrition_flow(attrition: pd.DataFrame) -> bytes:
    """The attrition table as a flow diagram: a box per step, exclusions to the side.

    `attrition` has step, criterion, n_remaining, n_excluded, already as display text.
    """
    steps = attrition.sort_values("step").reset_index(drop=True)
    height = 1.0 + 1.05 * len(steps)
    fig, ax = plt.subplots(figsize=(8.0, height))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.2, (len(steps) - 1) * 1.05 + 0.9)  # no blank band above the first box
    ax.axis("off")
    for i, row in steps.iterrows():
        y = (len(steps) - 1 - i) * 1.05 + 0.35
        label = "\n".join(textwrap.wrap(f"{row['step']}. {row['criterion']}", 46))
        ax.text(3.2, y, f"{label}\nn = {row['n_remaining']}", ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.4", fc="#eaf1f8", ec="#1f5f99"))
        if i > 0:
            ax.annotate("", xy=(3.2, y + 0.42), xytext=(3.2, y + 0.63),
                        arrowprops=dict(arrowstyle="->", color="#444"))
            if str(row["n_excluded"]) not in ("0", ""):
                ax.text(7.6, y + 0.5, f"excluded: {row['n_excluded']}", ha="center", va="center",
                        bbox=dict(boxstyle="round,pad=0.3", fc="#fbeee6", ec="#c0392b"))
    return to_png(fig)


def km_with_risk_table(curves: pd.DataFrame, risk: pd.DataFrame, title: str, horizon_months: float = 60.0
                       ) -> bytes:
    """Kaplan–Meier curves (step, with CI band) and the numbers at risk under them.

    curves: group, time_months, survival, ci_low, ci_high.
    risk: group, month, at_risk (display text, disclosure-controlled).
    """
    groups = list(dict.fromkeys([*curves["group"], *risk["group"]]))  # a group's colour, curve or not
    colour = {g: PALETTE[k % len(PALETTE)] for k, g in enumerate(groups)}
    rows = [g for g in groups if (risk["group"] == g).any()]  # risk-table rows: only groups given one
    fig = plt.figure(figsize=(8.0, 4.6 + 0.28 * len(rows)))
    grid = fig.add_gridspec(2, 1, height_ratios=[4.0, 0.5 + 0.28 * len(rows)], hspace=0.45)
    ax = fig.add_subplot(grid[0])
    drawn = [g for g in groups if (curves["group"] == g).any()]
    for group in drawn:
        c = curves[curves["group"] == group].sort_values("time_months")
        ax.step(c["time_months"], c["survival"], where="post", color=colour[group], lw=1.6, label=str(group))
        ax.fill_between(c["time_months"], c["ci_low"], c["ci_high"], step="post", color=colour[group], alpha=0.12)
    ax.set_xlim(0, horizon_months)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(np.arange(0, horizon_months + 0.1, 6))
    ax.set_ylabel("Probability")
    ax.set_xlabel("Months since index date")
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    ax.axhline(0.5, color="#999", lw=0.6, ls=":")
    if len(drawn) > 1:
        ax.legend(frameon=False, loc="best")
    table_ax = fig.add_subplot(grid[1], sharex=ax)
    table_ax.axis("off")
    table_ax.set_title("Number at risk", loc="left", fontsize=8)
    for k, group in enumerate(rows):
        r = risk[risk["group"] == group]
        y = len(rows) - 1 - k
        if len(groups) > 1:  # colour alone does not say which row belongs to which curve
            table_ax.text(-0.05, y, "\n".join(textwrap.wrap(str(group), 28)), transform=table_ax.get_yaxis_transform(),
                          ha="right", va="center", fontsize=7, color=colour[group])
        for _, row in r.iterrows():
            if row["month"] <= horizon_months:
                table_ax.text(row["month"], y, str(row["at_risk"]), ha="center", va="center", fontsize=7.5,
                              color=colour[group])
    table_ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    return to_png(fig)


def forest(rows: pd.DataFrame, title: str) -> bytes:
    """Hazard ratios with 95% CI on a log axis. rows: label, hr, ci_low, ci_high, text."""
    rows = rows.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.0, 0.9 + 0.32 * max(len(rows), 1)))
    y = np.arange(len(rows))[::-1]
    ok = rows["hr"].notna() & np.isfinite(rows["hr"].astype(float))
    hr, low, high = (rows.loc[ok, c].to_numpy(dtype=float) for c in ("hr", "ci_low", "ci_high"))
    ax.errorbar(hr, y[ok.values], xerr=[hr - low, high - hr],
                fmt="s", color="#1f5f99", ecolor="#1f5f99", ms=4, capsize=2)
    ax.axvline(1.0, color="#444", lw=0.8)
    ax.set_xscale("log")
    # Hazard ratios read as 0.5, 1, 2 — not 5×10^-1.
    left, right = ax.get_xlim()
    ax.set_xticks([t for t in HR_TICKS if left <= t <= right] or [1.0])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y)
    ax.set_yticklabels(rows["label"])
    for yy, text in zip(y, rows.get("text", [""] * len(rows))):
        ax.text(1.02, yy, text, transform=ax.get_yaxis_transform(), va="center", fontsize=7.5)
    ax.set_xlabel("Hazard ratio (95% CI), log scale")
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    return to_png(fig)


def sequence_sunburst(sequences: pd.DataFrame, title: str) -> bytes:
    """Lines 1 → 2 → 3 as rings (inner = line 1). sequences: line1, line2, line3, n (n ≥ min_cell)."""
    fig, ax = plt.subplots(figsize=(7.0, 7.0))  # pie() keeps the aspect equal itself
    total = sequences["n"].sum()
    colors: dict[str, str] = {}
    greys = iter(["#a6a6a6", "#7a7a7a", "#c8c8c8"])  # pooled groups such as "(other sequences)"

    def color(label: str) -> str:
        if label not in colors:
            if label.startswith("(no "):  # "(no further line)": the palest, it is the absence of a line
                colors[label] = "#e6e6e6"
            elif label.startswith("("):
                colors[label] = next(greys, "#bbbbbb")
            else:
                colors[label] = PALETTE[sum(not k.startswith("(") for k in colors) % len(PALETTE)]
        return colors[label]

    for ring, depth in enumerate(("line1", "line2", "line3")):
        keys = ["line1", "line2", "line3"][: ring + 1]
        agg = sequences.groupby(keys, sort=True)["n"].sum().reset_index()
        labels = agg[depth].tolist()
        ax.pie(agg["n"], radius=0.45 + 0.27 * ring, colors=[color(x) for x in labels], startangle=90,
               counterclock=False, wedgeprops=dict(width=0.26, edgecolor="white", linewidth=0.8))
    handles = [matplotlib.patches.Patch(color=c, label="\n".join(textwrap.wrap(k, 48))) for k, c in colors.items()]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=7, ncol=2)
    ax.set_title(f"{title} (n = {total}; inner ring line 1, outer ring line 3)", fontsize=10, fontweight="bold")
    return to_png(fig)
