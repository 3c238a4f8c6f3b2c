"""Figures of the report, drawn with matplotlib (Agg) and returned as PNG bytes; the line
pathways also as inline SVG, drawn from the same layout.

Every number printed on a figure has been through disclosure control before it
arrives here: the functions draw what they are given.
"""
from __future__ import annotations

import dataclasses
import html
import io
import logging
import re
import textwrap
import typing

import matplotlib

matplotlib.use("Agg")
import matplotlib.path  # noqa: E402
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
                     "font.family": ["DejaVu Sans", "Noto Sans CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
                                     "sans-serif"]})
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


# The sunburst's regimens: hues far apart, none grey (the greys are the endings' and the pooled
# groups'). A tenth regimen reuses a hue with a hatch, so that a colour and its hatch still name
# one regimen.
SEQUENCE_COLOURS = ("#1f5f99", "#e67e22", "#27ae60", "#c0392b", "#8e44ad", "#f1c40f", "#17becf", "#e377c2",
                    "#8c564b")
SEQUENCE_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
ENDING_GREYS = ("#7a7a7a", "#c8c8c8", "#a6a6a6", "#5d6d7e")  # "died", "no further line", pooled groups
BLANK = ""  # a ring past a pathway's end


def pathway_rings(counts: pd.DataFrame, step: str = " > ") -> list[pd.DataFrame]:
    """Each ring's wedges in drawing order (ring k: the patients per node 1 … k + 1 of their
    pathway, columns c0 … ck, and n). counts: pathway (nodes joined by `step`), n; a pooled
    row (its name in brackets) stands in every ring, a ring past a pathway's end is BLANK."""
    parts = counts["pathway"].str.split(step, regex=False)
    depth = int(parts.map(len).max()) if len(parts) else 0
    pooled = counts["pathway"].str.startswith("(")
    nodes = pd.DataFrame({f"c{k}": [p[k] if k < len(p) else (p[0] if q else BLANK) for p, q in zip(parts, pooled)]
                          for k in range(depth)}).assign(n=counts["n"].to_numpy())
    return [nodes.groupby([f"c{k}" for k in range(ring + 1)], sort=True)["n"].sum().reset_index()
            for ring in range(depth)]


def sunburst_styles(rings: list[pd.DataFrame], endings: typing.Sequence[str] = ()) -> dict[str, tuple[str, str]]:
    """label → (colour, hatch) of each wedge label, in the legend's order (ring by ring).

    Endings and pooled groups (in brackets) are greys; a BLANK wedge is not drawn. Two labels
    whose wedges touch (side by side in a ring, or a wedge and the one it grows from) get
    different colours wherever the palette allows; the larger labels choose first. Once every
    hue is taken a label reuses the least used one with the next hatch."""
    order, total, touching = {}, {}, {}
    for ring, wedges in enumerate(rings):
        labels = wedges[f"c{ring}"].tolist()
        for label, n in zip(labels, wedges["n"]):
            order.setdefault(label, len(order))
            total[label] = total.get(label, 0) + n
        pairs = list(zip(labels, labels[1:] + labels[:1])) if len(labels) > 1 else []
        if ring:
            pairs += list(zip(wedges[f"c{ring - 1}"], labels))
        for a, b in pairs:
            if a != b:
                touching.setdefault(a, set()).add(b)
                touching.setdefault(b, set()).add(a)
    styles: dict[str, tuple[str, str]] = {BLANK: ("none", "")}
    greys = iter(ENDING_GREYS)
    for label in order:
        if label != BLANK and (label in endings or label.startswith("(")):
            styles[label] = (next(greys, "#bbbbbb"), "")
    uses = dict.fromkeys(SEQUENCE_COLOURS, 0)
    for label in sorted((x for x in order if x not in styles), key=lambda x: (-total[x], order[x])):
        taken = {styles[other][0] for other in touching.get(label, ()) if other in styles}
        free = [c for c in SEQUENCE_COLOURS if c not in taken] or list(SEQUENCE_COLOURS)
        colour = min(free, key=lambda c: uses[c])  # min keeps the palette's order among equals
        styles[label] = (colour, SEQUENCE_HATCHES[uses[colour] % len(SEQUENCE_HATCHES)])
        uses[colour] += 1
    return {label: styles[label] for label in order}


def pathway_sunburst(counts: pd.DataFrame, title: str, endings: typing.Sequence[str], step: str = " > ") -> bytes:
    """Pathways as rings, the index line innermost (pathway_rings, sunburst_styles). counts:
    pathway, n (each n ≥ min_cell, a pooled row included)."""
    fig, ax = plt.subplots(figsize=(7.0, 7.0))  # pie() keeps the aspect equal itself
    total = int(counts["n"].sum())
    rings = pathway_rings(counts, step)
    styles = sunburst_styles(rings, endings)
    spacing = 0.54 / max(len(rings) - 1, 2)  # the outer ring's edge at 0.99 whatever the depth
    for ring, wedges in enumerate(rings):
        labels = wedges[f"c{ring}"].tolist()
        drawn, _ = ax.pie(wedges["n"], radius=0.45 + spacing * ring, colors=[styles[x][0] for x in labels],
                          startangle=90, counterclock=False,
                          wedgeprops=dict(width=spacing - 0.01, edgecolor="white", linewidth=0.8))
        for wedge, label in zip(drawn, labels):
            wedge.set_hatch(styles[label][1])
            if label == BLANK:
                wedge.set_edgecolor("none")
    handles = [matplotlib.patches.Patch(facecolor=colour, hatch=hatch, edgecolor="white",
                                        label="\n".join(textwrap.wrap(label, 48)))
               for label, (colour, hatch) in styles.items() if label != BLANK]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False, fontsize=7, ncol=2)
    ax.set_title(f"{title} (n = {total}; inner ring the index line)", fontsize=10, fontweight="bold")
    return to_png(fig)


# -- Line pathways as a Sankey diagram --------------------------------------------------------------
# One layout, two renderers: `sankey_layout` places the nodes and shapes the bands; the PNG (print)
# and the inline SVG (hover tooltips in the report) only draw what it computed.

SANKEY_NODE_WIDTH = 0.06  # of the distance between two columns
SANKEY_GAP = 0.04  # between two nodes of a column, as a share of the tallest column
WITHHELD_BAND = "#bfbfbf"
ENDING_COLOURS = ("#5d6d7e", "#aab7b8")  # the nodes where pathways end, in the order given: greys


@dataclasses.dataclass(frozen=True)
class SankeyNode:
    column: int
    label: str
    count: str  # "" when a withheld flow leaves the node's total unknown
    x: float
    top: float
    bottom: float
    colour: str


@dataclasses.dataclass(frozen=True)
class SankeyBand:
    step: int
    source: str
    target: str
    count: str
    withheld: bool  # drawn at a nominal width: its width must not tell its count
    outline: tuple  # ("M", (p,)), ("C", (c1, c2, p)), ("L", (p,)), ("C", …), ("Z", ())
    label_at: tuple[float, float]  # where its count is printed: just before its target, clear of labels
    colour: str


@dataclasses.dataclass(frozen=True)
class SankeyLayout:
    """Columns at x = 0, 1, 2 …; y from 0 (top) to 1 (bottom)."""
    nodes: tuple[SankeyNode, ...]
    bands: tuple[SankeyBand, ...]
    columns: int


def _count_of(value) -> float | None:
    """A shown count as a number; None for a withheld one ("<5", "*")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _node_count(counts: list) -> str:
    return f"{int(sum(counts))}" if counts and all(c is not None for c in counts) else ""


def sankey_layout(flows: pd.DataFrame, endings: typing.Sequence[str] = ()) -> SankeyLayout:
    """Nodes and bands of the flows (step, source, target, n; n as shown by disclosure control).

    A node of column k is the source of step k and the target of step k − 1. A band is as wide as
    its count; a withheld count is drawn as wide as the narrowest shown one and greyed. A node is
    as tall as the larger of its two sides; its count is its entrants' (its leavers' in column 1)
    when all of those are shown. endings: the labels of the nodes where pathways end ("died" …),
    drawn in greys so that the regimens keep the colours.
    """
    flows = flows.reset_index(drop=True)
    counts = [_count_of(v) for v in flows["n"]]
    shown = [c for c in counts if c is not None and c > 0]
    nominal = min(shown) if shown else 1.0
    width = [nominal if c is None else c for c in counts]
    sources = list(zip(flows["step"].astype(int), flows["source"]))
    targets = list(zip(flows["step"].astype(int) + 1, flows["target"]))
    keys = list(dict.fromkeys(sources + targets))
    inflow = {k: [i for i, t in enumerate(targets) if t == k] for k in keys}
    outflow = {k: [i for i, s in enumerate(sources) if s == k] for k in keys}
    height = {k: max(sum(width[i] for i in inflow[k]), sum(width[i] for i in outflow[k])) for k in keys}
    columns = max(c for c, _ in keys) if keys else 0
    by_column = {c: sorted((k for k in keys if k[0] == c), key=lambda k: (-height[k], k[1]))
                 for c in range(1, columns + 1)}
    tallest = max((sum(height[k] for k in ks) for ks in by_column.values()), default=1.0)
    gap = SANKEY_GAP * tallest
    scale = 1.0 / max((sum(height[k] for k in ks) + gap * (len(ks) - 1) for ks in by_column.values()),
                      default=1.0)
    colours: dict[str, str] = dict(zip(endings, ENDING_COLOURS))
    top = {}
    for ks in by_column.values():
        y = 0.0
        for k in ks:
            top[k] = y
            colours.setdefault(k[1], PALETTE[(len(colours) - len(endings)) % len(PALETTE)])
            y += (height[k] + gap) * scale
    nodes = tuple(SankeyNode(column=k[0], label=k[1],
                             count=_node_count([counts[i] for i in (inflow[k] or outflow[k])]),
                             x=float(k[0] - 1), top=top[k], bottom=top[k] + height[k] * scale, colour=colours[k[1]])
                  for ks in by_column.values() for k in ks)
    # Bands leave a node in the order of their targets and enter in the order of their sources,
    # so they do not cross at the nodes.

    def stacked(side: dict, other_end: list) -> dict:
        """Each band's upper edge at one of its nodes, the node's bands stacked from its top."""
        edge = {}
        for k in keys:
            y = top[k]
            for i in sorted(side[k], key=lambda i: (top[other_end[i]], other_end[i][1])):
                edge[i] = y
                y += width[i] * scale
        return edge

    start, end = stacked(outflow, targets), stacked(inflow, sources)
    bands = []
    for i, row in flows.iterrows():
        x0, x1 = sources[i][0] - 1 + SANKEY_NODE_WIDTH, float(targets[i][0] - 1)
        s0, t0, w = start[i], end[i], width[i] * scale
        mid = (x0 + x1) / 2
        outline = (("M", ((x0, s0),)), ("C", ((mid, s0), (mid, t0), (x1, t0))), ("L", ((x1, t0 + w),)),
                   ("C", ((mid, t0 + w), (mid, s0 + w), (x0, s0 + w))), ("Z", ()))
        bands.append(SankeyBand(step=int(row["step"]), source=str(row["source"]), target=str(row["target"]),
                                count=str(row["n"]), withheld=counts[i] is None, outline=outline,
                                label_at=(x1 - 0.01, t0 + w / 2),
                                colour=WITHHELD_BAND if counts[i] is None else colours[sources[i][1]]))
    return SankeyLayout(nodes=nodes, bands=tuple(bands), columns=columns)


def _node_text(node: SankeyNode) -> str:
    return f"{node.label} ({node.count})" if node.count else node.label


def _band_text(band: SankeyBand) -> str:
    return f"{band.source} → {band.target}: {band.count}" + (" (withheld)" if band.withheld else "")


def _wrapped(label: str, width: int) -> list[str]:
    """Lines of at most about `width` characters, broken after a space or a "+" (a regimen's
    ingredients are joined by "+"), never inside an ingredient's name."""
    pieces = re.findall(r"[^ +]*[ +]*", label)
    lines = [""]
    for piece in filter(None, pieces):
        if lines[-1] and len(lines[-1]) + len(piece.rstrip()) > width:
            lines.append("")
        lines[-1] += piece
    return [line.rstrip() for line in lines]


def _label_lines(node: SankeyNode, width: int) -> list[str]:
    return _wrapped(node.label, width) + ([f"n = {node.count}"] if node.count else [])


def _height_for_labels(layout: SankeyLayout, width: int, line_height: float, minimum: float) -> float:
    """The drawing's height (in the unit of line_height) at which no two node labels of a column
    overlap: each is centred on its node, so two neighbours need their centres half their labels
    apart, plus half a line."""
    needed = minimum
    for column in range(1, layout.columns + 1):
        nodes = sorted((n for n in layout.nodes if n.column == column), key=lambda n: n.top)
        for upper, lower in zip(nodes, nodes[1:]):
            apart = (lower.top + lower.bottom - upper.top - upper.bottom) / 2
            room = (len(_label_lines(upper, width)) + len(_label_lines(lower, width)) + 1) * line_height / 2
            needed = max(needed, room / max(apart, 1e-6))
    return needed


def line_sankey(flows: pd.DataFrame, title: str, endings: typing.Sequence[str] = ()) -> bytes:
    """The pathways for print: node bars per column, bands as wide as their counts, counts printed."""
    layout = sankey_layout(flows, endings)
    height = _height_for_labels(layout, 26, line_height=7 * 1.3 / 72, minimum=4.0)  # inches, 7-point labels
    fig, ax = plt.subplots(figsize=(2.9 * max(layout.columns, 1) + 1.0, height + 0.6))
    codes = {"M": [matplotlib.path.Path.MOVETO], "L": [matplotlib.path.Path.LINETO],
             "C": [matplotlib.path.Path.CURVE4] * 3}
    for band in layout.bands:
        vertices, kinds = [], []
        for command, points in band.outline:
            if command == "Z":
                vertices.append(band.outline[0][1][0])
                kinds.append(matplotlib.path.Path.CLOSEPOLY)
            else:
                vertices += list(points)
                kinds += codes[command]
        ax.add_patch(matplotlib.patches.PathPatch(matplotlib.path.Path(vertices, kinds), facecolor=band.colour,
                                                  edgecolor="none", alpha=0.45, hatch="//" if band.withheld else None))
        ax.text(*band.label_at, band.count, ha="right", va="center", fontsize=6.5, color="#1b2631")
    for node in layout.nodes:
        ax.add_patch(matplotlib.patches.Rectangle((node.x, node.top), SANKEY_NODE_WIDTH, node.bottom - node.top,
                                                  facecolor=node.colour, edgecolor="#1b2631", linewidth=0.4))
        words = "\n".join(_label_lines(node, 26))
        ax.text(node.x + SANKEY_NODE_WIDTH + 0.02, (node.top + node.bottom) / 2, words, ha="left", va="center",
                fontsize=7, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    ax.set_xlim(-0.05, max(layout.columns - 1, 0) + 0.75)
    ax.set_ylim(1.02, -0.02)  # the layout's y grows downwards
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=10, fontweight="bold")
    return to_png(fig)


def line_sankey_svg(flows: pd.DataFrame, title: str, endings: typing.Sequence[str] = (), column_px: float = 240.0,
                    min_height_px: float = 420.0) -> str:
    """The pathways as one inline <svg> (no script, nothing fetched): hovering a band or a node
    shows its count in a tooltip (<title>). Every text is escaped here."""
    layout = sankey_layout(flows, endings)
    height_px = _height_for_labels(layout, 28, line_height=13.0, minimum=min_height_px)
    # A label is centred on its node: the lowest can reach half its lines below the drawing.
    overhang = max((len(_label_lines(n, 28)) * 13.0 / 2 for n in layout.nodes), default=0.0)
    top_px, label_px = 28.0, 190.0
    width_px = column_px * max(layout.columns - 1, 0) + label_px + 12.0
    total_px = top_px + height_px + overhang + 8

    def at(point) -> str:
        return f"{point[0] * column_px + 4:.1f},{point[1] * height_px + top_px:.1f}"

    def attr(text: str) -> str:
        return html.escape(text, quote=True)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sankey" role="img" aria-label="{attr(title)}" '
             f'viewBox="0 0 {width_px:.0f} {total_px:.0f}" width="{width_px:.0f}" '
             f'height="{total_px:.0f}" font-family="sans-serif">',
             "<style>.sankey .band{fill-opacity:.45}.sankey .band:hover{fill-opacity:.8}"
             ".sankey text{font-size:11px;fill:#1b2631;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}.sankey text.count{font-size:9px;pointer-events:none}</style>",
             f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>']
    counts = []  # drawn after the bands, so no band covers them
    for band in layout.bands:
        path = " ".join(command + " ".join(at(p) for p in points) for command, points in band.outline)
        hatch = ' stroke="#7a7a7a" stroke-dasharray="3 2"' if band.withheld else ""
        parts.append(f'<path class="band" d="{path}" fill="{band.colour}"{hatch}>'
                     f"<title>{html.escape(_band_text(band))}</title></path>")
        counts.append(f'<text x="{band.label_at[0] * column_px + 4:.1f}" y="{band.label_at[1] * height_px + top_px + 3:.1f}" '
                      f'text-anchor="end" class="count">{html.escape(band.count)}</text>')
    for node in layout.nodes:
        x, y = node.x * column_px + 4, node.top * height_px + top_px
        h = max((node.bottom - node.top) * height_px, 1.0)
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{SANKEY_NODE_WIDTH * column_px:.1f}" height="{h:.1f}" '
                     f'fill="{node.colour}" stroke="#1b2631" stroke-width=".5">'
                     f"<title>{html.escape(_node_text(node))}</title></rect>")
        words = _label_lines(node, 28)
        x_text, y_text = x + SANKEY_NODE_WIDTH * column_px + 4, y + h / 2 + 4 - 6.5 * (len(words) - 1)
        lines = "".join(f'<tspan x="{x_text:.1f}" dy="{0 if k == 0 else 13}">{html.escape(w)}</tspan>'
                        for k, w in enumerate(words))
        parts.append(f'<text x="{x_text:.1f}" y="{y_text:.1f}">{lines}</text>')
    parts += counts
    parts.append("</svg>")
    return "".join(parts)
