"""Data-quality counts as they leave the lake: their sets and their gate.

Every stage counts what it read, kept, quarantined or found wrong as rows (stage, table,
check, reason, n) of gold/lake_data_quality and the study's gold/data_quality. Shown,
some of those counts add up to others (kept + quarantined + duplicates = rows read; the
quarantine reasons to the rows quarantined): disclosure control suppresses within each
such set (`count_set`), so that no small count can be worked out from its total.
"""
from __future__ import annotations

import pandas as pd

from .publish import Gate

# Checks whose counts add up to the rows a stage read from a table.
BALANCE_CHECKS = {("ingest", "rows_kept"), ("ingest", "rows_quarantined"), ("ingest", "duplicates_removed"),
                  ("lines", "rows_matched"), ("lines", "quarantined")}

DATA_QUALITY_GATE = Gate("data_quality", count_columns=("n",), partition_by=("count_set",))


def count_set(stage: str, table: str, check: str) -> str:
    """The set of data-quality counts that add up to a shown total.

    Disclosure control suppresses within such a set, so that a small count cannot be
    worked out from the total: kept + quarantined + duplicates = rows read; the
    quarantine reasons of ingest add up to the rows quarantined.
    """
    if (stage, check) in BALANCE_CHECKS:
        return f"{stage}/{table}/balance"
    if stage == "ingest" and check == "quarantined":
        return f"{stage}/{table}/reasons"
    return f"{stage}/{table}/{check}"


def with_count_sets(rows: pd.DataFrame) -> pd.DataFrame:
    """The data-quality rows (stage, table, check, reason, n) with their `count_set`."""
    frame = rows.reset_index(drop=True).copy()
    frame["count_set"] = [count_set(s, t, c) for s, t, c in zip(frame["stage"], frame["table"], frame["check"])]
    return frame
