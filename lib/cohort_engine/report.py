"""report.html: one self-contained page a clinician reads from top to bottom.

Tables arrive already through disclosure control; figures arrive as PNG bytes
and are embedded as data URIs, or as inline SVG drawn by `figures` (checked here to hold
no script, event handler or link), so the page opens offline with nothing beside it.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html
import re
import xml.etree.ElementTree as ElementTree

import pandas as pd

CSS = """
body{font-family:"Helvetica Neue",Arial,"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",
     "WenQuanYi Micro Hei",sans-serif;max-width:1000px;margin:2em auto;
     color:#1b2631;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #1f5f99;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em;color:#1f5f99} .meta{color:#566573;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #d5d8dc;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#eaf1f8} td:first-child,th:first-child{text-align:left}
td.text,th.text{text-align:left} img{max-width:100%;display:block;margin:.5em 0 1.2em}
figure.svg{margin:.5em 0 1.2em} figure.svg svg{max-width:100%;height:auto}
figure.svg figcaption{font-size:.85em;color:#566573}
td.interval{white-space:nowrap}
@media print{h2,h3{break-after:avoid} img,figure,tr{break-inside:avoid} body{margin:0;max-width:none}}
.note{background:#fbfcfc;border-left:4px solid #aab7b8;padding:.4em .8em;font-size:.9em;color:#34495e}
nav a{margin-right:1em}
"""


@dataclasses.dataclass
class Block:
    """One piece of a section: a heading, a paragraph, a table or a figure (PNG bytes, or an
    SVG document as text for "svg")."""
    kind: str  # "h3" | "p" | "note" | "table" | "figure" | "svg"
    content: object
    caption: str = ""


@dataclasses.dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return html.escape(str(value))


def _is_text(value) -> bool:
    return isinstance(value, str) and not value.lstrip("<").replace(".", "").isdigit() and value != "*"


# A column headed "… (95% CI)" holds estimates with their intervals, "12.3 (9.8–15.6)": broken
# over two lines in print it reads as two numbers, so it is kept on one.
INTERVAL_HEADING = "(95% CI)"


def _column_class(name, values) -> str:
    kinds = ["text"] * any(_is_text(v) for v in values) + ["interval"] * str(name).endswith(INTERVAL_HEADING)
    return f' class="{" ".join(kinds)}"' if kinds else ""


def html_table(df: pd.DataFrame) -> str:
    """A column aligns left when it holds words, right when it holds numbers ("<5" and "*" are
    numbers here), so a column of years or counts does not zigzag."""
    cls = [_column_class(c, df[c]) for c in df.columns]
    head = "".join(f"<th{k}>{html.escape(str(c))}</th>" for c, k in zip(df.columns, cls))
    body = []
    for row in df.itertuples(index=False):
        cells = [f"<td{k}>{_cell(value)}</td>" for value, k in zip(row, cls)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


SVG = "{http://www.w3.org/2000/svg}"
_FETCHES = re.compile(r"url\s*\(|@import", re.IGNORECASE)
_DECLARATIONS = re.compile(r"<!DOCTYPE|<!ENTITY|<\?", re.IGNORECASE)


def inline_svg(svg: str) -> str:
    """`svg` as it may go into the page: one well-formed <svg> element with no script, no event
    handler, no link and nothing fetched (the tooltips are <title> elements: no code runs, and
    the page still opens offline). ValueError otherwise."""
    if _DECLARATIONS.search(svg):  # an entity would expand past the checks below
        raise ValueError("an SVG block may not carry a DOCTYPE, an entity or a processing instruction")
    try:
        root = ElementTree.fromstring(svg)
    except ElementTree.ParseError as exc:
        raise ValueError(f"an SVG block is not well-formed XML: {exc}") from None
    if root.tag != f"{SVG}svg":
        raise ValueError(f"an SVG block must be one <svg> element, not <{root.tag}>")
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("script", "foreignObject", "a", "image", "use"):
            raise ValueError(f"an SVG block may not hold <{tag}>")
        for name in element.attrib:
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or local == "href":
                raise ValueError(f"an SVG block may not carry the attribute {local!r}")
        styles = [element.text or ""] if tag == "style" else []
        if any(_FETCHES.search(text) for text in [*styles, *element.attrib.values()]):
            raise ValueError("an SVG block may not fetch anything (url(…) or @import)")
    return svg.strip()


def render_block(block: Block) -> str:
    if block.kind in ("h3", "p"):
        return f"<{block.kind}>{html.escape(str(block.content))}</{block.kind}>"
    if block.kind == "note":
        return f'<p class="note">{html.escape(str(block.content))}</p>'
    if block.kind == "table":
        caption = f"<h3>{html.escape(block.caption)}</h3>" if block.caption else ""
        return caption + html_table(block.content)
    if block.kind == "figure":
        alt = html.escape(block.caption or "figure")
        return f'<img alt="{alt}" src="{data_uri(block.content)}">'
    if block.kind == "svg":
        caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
        return f'<figure class="svg">{inline_svg(block.content)}{caption}</figure>'
    raise ValueError(f"unknown report block {block.kind!r}")


def render(title: str, subtitle: str, sections: list[Section], generated: dt.date | None = None) -> str:
    """The whole page as one HTML string."""
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1><p class=\"meta\">{html.escape(subtitle)}</p>",
             f"<nav>{nav}</nav>"]
    for section in sections:
        parts.append(f'<h2 id="{section.anchor}">{html.escape(section.title)}</h2>')
        parts += [render_block(b) for b in section.blocks]
    stamp = (generated or dt.date.today()).strftime("%B %Y")
    parts.append(f'<p class="meta">Generated by cohort-engine, {stamp}. Counts from 1 to 4 are shown as '
                 '&lt;5; no patient identifier or exact date is shown.</p></body></html>')
    return "\n".join(parts)
