"""Data-quality counts as they leave the lake: their sets and their gate.

Every stage counts what it read, kept, quarantined or found wrong as rows (stage, table,
check, reason, n) of gold/lake_data_quality and the study's gold/data_quality. Shown,
some of those counts add up to others (kept + quarantined + duplicates = rows read; the
quarantine reasons to the rows quarantined): disclosure control suppresses within each
such set (`count_set`), so that no small count can be worked out from its total.
"""
from __future__ import annotations

import pandas as pd

from .lake_tables import GOLD_DATA_QUALITY, GOLD_LAKE_DATA_QUALITY
from .publish import Gate, publish

LAKE_STAGES = ("ingest", "lines")  # stages whose rows are the lake's (gold/lake_data_quality)
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


# -- Written once per run (ctx: pipeline.RunContext) --------------------------------------------

def write_lake_data_quality(ctx) -> None:
    """gold/lake_data_quality: the data-quality rows of the lake's own stages (ingest, lines),
    this run's for the stages it ran, the table's previous rows for the others."""
    ran = {row[0] for row in ctx.data_quality if row[0] in LAKE_STAGES}
    if not ran:
        return
    previous = [r for r in _lake_rows(ctx) if r[0] not in ran]
    rows = previous + [row for row in ctx.data_quality if row[0] in LAKE_STAGES]
    ctx.write(ctx.spark.createDataFrame(_sorted_rows(rows), GOLD_LAKE_DATA_QUALITY.ddl), "gold", "lake_data_quality")


def _lake_rows(ctx) -> list[tuple]:
    """The lake stages' data-quality rows as the lake holds them (before gold/lake_data_quality
    existed, the study's own data quality held them)."""
    for layer, name in (("gold", "lake_data_quality"), ctx.table("gold", "data_quality")):
        if ctx.lake.exists(layer, name):
            return [tuple(r) for r in ctx.lake.read(layer, name).collect() if r["stage"] in LAKE_STAGES]
    return []


def _sorted_rows(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))


def write_data_quality(ctx) -> None:
    """The study's gold/data_quality (exact, inside the lake) and tables/data_quality.csv
    (disclosure-controlled): the lake stages' rows as the lake holds them now, then the
    study's stages, this run's rows for the stages it ran and the study's previous rows for
    the others."""
    write_lake_data_quality(ctx)
    mine = [row for row in ctx.data_quality if row[0] not in LAKE_STAGES]
    ran = {row[0] for row in mine}
    previous = []
    if ctx.lake.exists(*ctx.table("gold", "data_quality")):
        previous = [tuple(r) for r in ctx.lake.read(*ctx.table("gold", "data_quality")).collect()
                    if r["stage"] not in ran and r["stage"] not in LAKE_STAGES]
    rows = _sorted_rows(_lake_rows(ctx) + previous + mine)
    frame = ctx.spark.createDataFrame(rows, GOLD_DATA_QUALITY.ddl)
    ctx.write(frame, *ctx.table("gold", "data_quality"))
    ctx.data_quality_written = list(ctx.data_quality)
    publish(with_count_sets(frame.toPandas()), DATA_QUALITY_GATE, ctx.study, ctx.tables_dir())
