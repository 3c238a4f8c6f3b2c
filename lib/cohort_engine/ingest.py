"""Ingest: raw extract in, typed and validated bronze tables out.

Each source table is read once, typed by the contract, and every row gets either
no reason (kept, to bronze), a reason code (to quarantine, with its raw text), or
the mark of an exact duplicate (dropped, counted). The three always add up to the
rows read, and the counts land in the data-quality table.

A full load replaces bronze and quarantine. An incremental load (a new monthly
extract) merges into them instead: the reference tables that every extract holds
whole (SNAPSHOT_TABLES: patients, hospitals) are replaced; every other table gets
only the rows it does not hold yet, compared by record_id for prescriptions and by
the whole typed row elsewhere. A row the lake already holds counts as a duplicate;
a record_id the lake holds with other content is quarantined as
conflicting_record_id (the lake keeps the first-loaded record). Each append
commits with a Delta transaction id (table, cut-off), so that a month goes in
once, and a load older than one already merged is refused.

The steps, in the data's order (`ExtractSettings` holds the run's choices):
`extract_files` locates each table and checks its files (CSV encodings, Parquet
footers) before Spark reads any; `raw_tables` reads them; `date_forms` and
`typed_columns` type the values; `validation` gives each row its reason and builds
the bronze and quarantine frames. This module ties them together and loads the lake.

A misread extract stops the run: when one reason rejects more than
`max_rejected_share` of a table's rows, ingest raises ExtractMisreadError naming
table, column, reason, share and an example, and nothing of the run is committed:
every table is staged in one lake batch (`Lake.batch`), committed only after all
tables passed their checks (and the caller's `check_table`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import typing
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .contract import PATIENT_TABLES
from .errors import ExtractMisreadError, IngestError
from .extract_files import DEFAULT_SETTINGS, ExtractSettings, plan_table
from .lake_tables import QUARANTINE_SOURCE, conform
from .progress_lines import ProgressLine
from .raw_tables import java_charsets, nanos_as_long, read_plan
from .validation import (ALREADY_LOADED, DUPLICATE, QUARANTINE_COLUMNS, Names, bronze_frame, mark_already_loaded,
                         misread_message, quarantine_frame, reason_counts, reason_summary, validate)

log = logging.getLogger(__name__)


# Reference tables each monthly extract holds whole: an incremental load replaces them.
SNAPSHOT_TABLES = ("hospitals", "patients")


@dataclasses.dataclass
class TableResult:
    table: str
    rows_read: int
    rows_kept: int
    duplicates_removed: int
    quarantined: dict[str, int]
    already_in_lake: int = 0  # of duplicates_removed: rows an incremental load found in bronze

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined.values())

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_kept + self.rows_quarantined + self.duplicates_removed


def aligned_to(df: DataFrame, table_columns: typing.Sequence[tuple[str, str]]) -> DataFrame:
    """`df` in a table's column order, a column it lacks added empty; (name, Spark type) pairs.

    Columns the table lacks stay, so that the lake's append check names them.
    """
    have = set(df.columns)
    wanted = [F.col(n) if n in have else F.lit(None).cast(t).alias(n) for n, t in table_columns]
    return df.select(*wanted, *[c for c in df.columns if c not in {n for n, _ in table_columns}])


def full_load_app(table: str) -> str:
    """Delta transaction id recording each full load of a bronze table."""
    return f"cohort-engine/ingest/{table}/full"


def incremental_app(lake, table: str) -> str:
    """Delta transaction id of the incremental loads since the table's last full load.

    The transaction state of a Delta table survives overwrites, so the id names the
    full load it builds on: after a rebuild, months merge again from a clean slate.
    """
    base = lake.transaction_version("bronze", table, full_load_app(table)) or 0
    return f"cohort-engine/ingest/{table}/since-full-{base}"


def cutoff_number(cutoff) -> int:
    """A cut-off as the transaction number of its load: 2025-06-30 -> 20250630."""
    return cutoff.year * 10_000 + cutoff.month * 100 + cutoff.day


def check_incremental_order(lake, tables: typing.Iterable[str], cutoff) -> None:
    """Refuse an incremental load older than one the lake already merged."""
    n = cutoff_number(cutoff)
    for table in tables:
        if table in SNAPSHOT_TABLES or not lake.exists("bronze", table):
            continue
        done = lake.transaction_version("bronze", table, incremental_app(lake, table))
        if done is not None and done > n:
            raise IngestError(f"bronze/{table} already holds the incremental load of cut-off {_number_date(done)}, "
                              f"later than {cutoff.isoformat()}: an incremental load cannot go back in time "
                              "(rebuild with a full load, without --incremental)")


def _number_date(n: int) -> str:
    return f"{n // 10_000:04d}-{n // 100 % 100:02d}-{n % 100:02d}"


def _table_columns(df: DataFrame) -> list[tuple[str, str]]:
    return [(f.name, f.dataType.simpleString()) for f in df.schema]


def ingest_table(lake, raw: DataFrame, table: str, cutoff, patient_status=None,
                 patient_births=None, incremental: bool = False, settings: ExtractSettings | None = None,
                 check_table: typing.Callable[[str, DataFrame], None] | None = None) -> TableResult:
    """Validate one table and write (inside a lake batch: stage) its bronze and quarantine.

    Before writing: ExtractMisreadError when one reason rejects more than the run's
    share of the rows, then `check_table(table, kept rows)`.
    """
    settings = settings or DEFAULT_SETTINGS
    raw_columns = list(raw.columns)
    names = Names(raw_columns)
    validated = validate(raw, table, cutoff, patient_status, patient_births, settings, names)
    merge = incremental and table not in SNAPSHOT_TABLES
    existing = lake.read("bronze", table) if merge and lake.exists("bronze", table) else None
    if existing is not None:
        validated = mark_already_loaded(validated, existing, table, names)
    validated = validated.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        summary = reason_summary(validated, table, names)
        counts = reason_counts(summary)
        misread = misread_message(table, summary, settings.max_rejected_share)
        if misread:
            raise ExtractMisreadError(misread)
        bronze = bronze_frame(validated, raw_columns, table, names)
        if check_table is not None:
            check_table(table, bronze)
        quarantine = quarantine_frame(validated, raw_columns, names)
        if merge:
            _append_new(lake, bronze, quarantine, table, cutoff, counts.get(None, 0), existing)
        else:
            version = lake.version("bronze", table) if lake.exists("bronze", table) else 0
            lake.write(bronze, "bronze", table, txn=(full_load_app(table), version + 1))
            lake.write(conform(quarantine, QUARANTINE_SOURCE), "quarantine", table)
    finally:
        validated.unpersist()
    already = counts.get(ALREADY_LOADED, 0)
    quarantined = {r: n for r, n in counts.items() if r not in (None, DUPLICATE, ALREADY_LOADED)}
    result = TableResult(table, rows_read=sum(counts.values()), rows_kept=counts.get(None, 0),
                         duplicates_removed=counts.get(DUPLICATE, 0) + already, quarantined=quarantined,
                         already_in_lake=already)
    if not result.balanced:  # pragma: no cover - an invariant of the split above
        raise RuntimeError(f"ingest of {table}: counts do not balance")
    return result


def _append_new(lake, bronze: DataFrame, quarantine: DataFrame, table: str, cutoff, n_new: int,
                existing: DataFrame | None) -> None:
    """Append an incremental load's new rows to bronze and quarantine."""
    app, n = incremental_app(lake, table), cutoff_number(cutoff)
    if n_new or existing is None:  # a table this load starts is created even when empty
        if n_new and lake.transaction_version("bronze", table, app) == n:
            raise IngestError(f"bronze/{table} already holds the load of cut-off {cutoff.isoformat()}, yet this "
                              f"extract has rows it lacks ({n_new}): a corrected extract of a loaded month needs "
                              "a full load (without --incremental)")
        if existing is not None:
            bronze = aligned_to(bronze, _table_columns(existing))
        lake.write(bronze, "bronze", table, mode="append", txn=(app, n))
    if lake.exists("quarantine", table):
        # Rejected rows go in once, however often a cumulative extract repeats them.
        held = lake.read("quarantine", table)
        # A quarantine table written before reason_column existed keeps its columns.
        quarantine = quarantine.drop(*[c for c in QUARANTINE_COLUMNS if c not in held.columns])
        quarantine = aligned_to(quarantine, _table_columns(held))
        quarantine = quarantine.join(held, [quarantine[c].eqNullSafe(held[c]) for c in held.columns], "left_anti")
        if quarantine.isEmpty():
            return
    lake.write(conform(quarantine, QUARANTINE_SOURCE), "quarantine", table, mode="append")


INGEST_ORDER = ("hospitals", "patients", "deaths") + tuple(t for t in PATIENT_TABLES)


def ingest(spark, lake, source: str | Path, cutoff, progress: typing.Callable[[str], None] = log.info,
           incremental: bool = False, *, settings: ExtractSettings | None = None,
           check_table: typing.Callable[[str, DataFrame], None] | None = None) -> list[TableResult]:
    """Ingest every table of the extract into bronze and quarantine, all or nothing.

    `incremental`: merge into the lake's bronze and quarantine (see the module's
    docstring) instead of replacing them. `settings`: how to read the extract
    (default: DEFAULT_SETTINGS). `check_table(table, kept)` is called with each
    table's kept (bronze-typed) rows after its own checks passed; an exception from
    it, like any other, leaves the lake as it was. Every table is staged in one lake
    batch (joining the caller's, if one is open) and committed after the last one.
    """
    settings = DEFAULT_SETTINGS if settings is None else settings
    source = Path(source)
    if not source.is_dir():
        raise IngestError(f"source directory {source} does not exist")
    # Every table located and its files checked (encodings, Parquet types) before Spark reads any.
    plans = {t: plan_table(source, t, settings) for t in INGEST_ORDER}
    present = [p for p in plans.values() if p is not None]
    with nanos_as_long(spark, any(p.nanos for p in present)), \
            java_charsets(spark, any(p.encoding not in (None, "utf-8") for p in present)):
        raws = {t: read_plan(spark, p) if p is not None else None for t, p in plans.items()}
        if incremental:
            check_incremental_order(lake, [t for t in INGEST_ORDER if raws[t] is not None], cutoff)
        else:
            for table in INGEST_ORDER:
                if raws[table] is None and lake.exists("bronze", table):
                    # A full load replaces bronze; keeping the earlier extract's table would mix two extracts.
                    raise IngestError(f"optional source table {table!r} is absent from {source}, but "
                                      f"{lake.path('bronze', table)} holds it from an earlier load: a full load "
                                      "would mix two extracts (use a new --lake, or remove that table to go on "
                                      "without it)")
        results = []
        with contextlib.nullcontext() if lake.in_batch else lake.batch():
            for table in INGEST_ORDER:
                raw = raws[table]
                if raw is None:
                    progress(ProgressLine(f"ingest {table}: optional table absent", "ingest"))
                    continue
                status = births = None
                if table in PATIENT_TABLES or table == "deaths":
                    patients_bronze = lake.read("bronze", "patients")  # this run's, staged
                    if table == "deaths":
                        births = (patients_bronze.where(F.col("id_hash").isNotNull())
                                  .groupBy("id_hash").agg(F.min("birth_date").alias("__birth_date")))
                    else:
                        status = patient_status(patients_bronze, lake.read("quarantine", "patients"))
                result = ingest_table(lake, raw, table, cutoff, status, births, incremental=incremental,
                                      settings=settings, check_table=check_table)
                merged = f" ({result.already_in_lake} already in the lake)" \
                    if incremental and table not in SNAPSHOT_TABLES else ""
                progress(ProgressLine(f"ingest {table}: {result.rows_read} read, {result.rows_kept} kept, "
                                      f"{result.rows_quarantined} quarantined, {result.duplicates_removed} "
                                      f"duplicates{merged}", "ingest", rows=result.rows_read))
                results.append(result)
            progress(ProgressLine(f"ingest: {len(results)} tables passed their checks", "ingest"))
    return results


def patient_status(patients_bronze: DataFrame, patients_quarantine: DataFrame) -> DataFrame:
    """patient_id → 'valid' or 'quarantined' (a valid row wins over a rejected one)."""
    valid = patients_bronze.select("patient_id", F.lit("valid").alias("__patient_status"))
    rejected = (patients_quarantine.select(F.trim("patient_id").alias("patient_id"))
                .where(F.col("patient_id").isNotNull() & (F.col("patient_id") != ""))
                .join(valid, "patient_id", "left_anti")
                .select("patient_id", F.lit("quarantined").alias("__patient_status")))
    return valid.unionByName(rejected).dropDuplicates(["patient_id"])


def data_quality_rows(results: list[TableResult]) -> list[tuple]:
    """Long layout: (stage, table, check, reason, n)."""
    rows = []
    for r in results:
        rows += [("ingest", r.table, "rows_read", None, r.rows_read),
                 ("ingest", r.table, "rows_kept", None, r.rows_kept),
                 ("ingest", r.table, "duplicates_removed", None, r.duplicates_removed),
                 ("ingest", r.table, "rows_quarantined", None, r.rows_quarantined)]
        rows += [("ingest", r.table, "quarantined", reason, n) for reason, n in sorted(r.quarantined.items())]
    return rows



