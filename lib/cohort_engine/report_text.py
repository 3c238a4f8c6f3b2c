"""Numbers and blocks of the report in words: an estimate with its CI, a p-value, a percent,
an SMD, and the table, note and figure blocks the sections are made of (`report` lays them
out). A withheld value ("<5", "*") is a string and stays as it is.
"""
from __future__ import annotations

import pandas as pd

from . import report


def number(value, digits: int = 1) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    return f"{float(value):.{digits}f}"


def with_ci(value, low, high, digits: int = 1, scale: float = 1.0, missing: str = "not reached") -> str:
    """"12.3 (9.8–15.1)"; a withheld value stays "*"; no estimate: `missing`; no limit: NE."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return missing
    limits = ["NE" if (v is None or isinstance(v, str) or pd.isna(v)) else f"{v * scale:.{digits}f}"
              for v in (low, high)]
    return f"{value * scale:.{digits}f} ({limits[0]}–{limits[1]})"


def p_value_text(p) -> str:
    if isinstance(p, str) or p is None or pd.isna(p):
        return "" if not isinstance(p, str) else p
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def percent_text(value, digits: int = 1) -> str:
    return value if isinstance(value, str) else ("" if value is None or pd.isna(value) else f"{value:.{digits}f}%")


def smd_text(value) -> str:
    """Two decimals; a difference that rounds to zero reads 0.00, not -0.00; withheld stays "*"."""
    if isinstance(value, str) or value is None or pd.isna(value):
        return number(value, 2)
    return number(value if abs(value) >= 0.005 else 0.0, 2)


def signed_with_ci(value, low, high, digits: int = 1) -> str:
    """A difference and its CI, signs written out: "−1.5 (−3.0 to 0.1)" ("*" stays "*")."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""

    def text(v):
        return "NE" if v is None or isinstance(v, str) or pd.isna(v) else f"{v:.{digits}f}".replace("-", "−")
    return f"{text(value)} ({text(low)} to {text(high)})"


def table_block(frame: pd.DataFrame, caption: str = "") -> report.Block:
    return report.Block("table", frame, caption)


def note_block(text: str) -> report.Block:
    return report.Block("note", text)


def figure_block(png: bytes, caption: str) -> report.Block:
    return report.Block("figure", png, caption)
