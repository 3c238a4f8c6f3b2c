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
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from .contract import PATIENT_TABLES
from .errors import ExtractMisreadError, IngestError
from .extract_files import DEFAULT_SETTINGS, ExtractSettings, plan_table
from .lake_tables import QUARANTINE_SOURCE, conform
from .progress_lines import ProgressLine
from .raw_tables import java_charsets, nanos_as_long, read_plan
from .validation import (ALREADY_LOADED, DUPLICATE, QUARANTINE_COLUMNS, Names, ReasonCount, bronze_frame,
                         mark_already_loaded, misread_message, quarantine_frame, quarantine_summary, reason_counts,
                         reason_summary, validate)

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
                 check_table: typing.Callable[[str, DataFrame], None] | None = None,
                 broadcast_patients: bool = False) -> TableResult:
    """Validate one table and stage (inside a lake batch) its bronze and quarantine.

    Before the batch commits: ExtractMisreadError when one reason rejects more than
    the run's share of the rows, then `check_table(table, kept rows)`.
    `broadcast_patients`: the patient list is small enough to send to every task.
    """
    settings = settings or DEFAULT_SETTINGS
    if not lake.in_batch:  # the checks come after the writes: only a batch can take them back
        raise IngestError("ingest_table stages its writes: call it inside a lake batch (Lake.batch)")
    raw_columns = list(raw.columns)
    names = Names(raw_columns)
    validated = validate(raw, table, cutoff, patient_status, patient_births, settings, names,
                         broadcast_patients=broadcast_patients)
    if incremental and table not in SNAPSHOT_TABLES:
        counts = _merge_incremental(lake, validated, raw_columns, table, cutoff, names, settings, check_table)
    else:
        counts = _full_load(lake, validated, raw_columns, table, names, settings, check_table)
    already = counts.get(ALREADY_LOADED, 0)
    quarantined = {r: n for r, n in counts.items() if r not in (None, DUPLICATE, ALREADY_LOADED)}
    return TableResult(table, rows_read=sum(counts.values()), rows_kept=counts.get(None, 0),
                       duplicates_removed=counts.get(DUPLICATE, 0) + already, quarantined=quarantined,
                       already_in_lake=already)


def _full_load(lake, validated: DataFrame, raw_columns: list[str], table: str, names: Names,
               settings: ExtractSettings, check_table) -> dict[str | None, int]:
    """Stage bronze and quarantine of a full load; the rows per reason (None: kept).

    One pass over the source: the bronze write computes the validated rows (one
    shuffle) and counts them on the way (an observation); the quarantine write reads
    the same shuffle output again instead of recomputing it, and no copy of the
    table is cached. The reasons and their examples are then counted on the staged
    quarantine, which holds only rejected rows.
    """
    rows = over_computed_rows(validated)
    observed = Observation(f"ingest {table}")
    reason = F.col(names.reason)
    counted = rows.observe(observed, F.count(F.lit(1)).alias("read"),
                           F.count_if(reason.isNull()).alias("kept"),
                           F.count_if(reason == DUPLICATE).alias("duplicates"))
    version = lake.version("bronze", table) if lake.exists("bronze", table) else 0
    lake.write(bronze_frame(counted, raw_columns, table, names), "bronze", table,
               txn=(full_load_app(table), version + 1))
    lake.write(conform(quarantine_frame(rows, raw_columns, names), QUARANTINE_SOURCE), "quarantine", table)
    totals = observed.get
    summary = quarantine_summary(lake.read("quarantine", table), table, raw_columns)
    summary += [ReasonCount(None, None, totals["kept"], None), ReasonCount(DUPLICATE, None, totals["duplicates"], None)]
    counts = reason_counts(summary)
    if sum(counts.values()) != totals["read"]:  # pragma: no cover - the two writes read one shuffle output
        raise RuntimeError(f"ingest of {table}: {totals['read']} rows read, but bronze, quarantine and "
                           f"duplicates hold {sum(counts.values())}")
    misread = misread_message(table, summary, settings.max_rejected_share)
    if misread:
        raise ExtractMisreadError(misread)
    if check_table is not None:
        check_table(table, lake.read("bronze", table))
    return counts


def _merge_incremental(lake, validated: DataFrame, raw_columns: list[str], table: str, cutoff, names: Names,
                       settings: ExtractSettings, check_table) -> dict[str | None, int]:
    """Stage the new rows of an incremental load; the rows per reason (None: kept).

    A monthly extract is small beside the lake, and what is appended depends on its
    counts, so its validated rows are cached for the three passes over them.
    """
    existing = lake.read("bronze", table) if lake.exists("bronze", table) else None
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
        _append_new(lake, bronze, quarantine, table, cutoff, counts.get(None, 0), existing)
    finally:
        validated.unpersist()
    return counts


def over_computed_rows(df: DataFrame) -> DataFrame:
    """`df` as a frame over the rows its plan computes, so that two writes share its shuffles.

    Each query on a DataFrame plans anew and so shuffles anew; a frame over the
    plan's RDD of rows reads the shuffle files the first query left (Spark skips a
    shuffle stage it has already run), and only the work after the shuffle runs
    twice. Spark Connect has no RDDs: there `df` itself is returned, and the table
    is computed once per write.
    """
    try:
        jdf, session = df._jdf, df.sparkSession
        rows = jdf.rdd().toJavaRDD()
        return DataFrame(session._jsparkSession.createDataFrame(rows, jdf.schema()), session)
    except AttributeError:  # pragma: no cover - a Spark Connect DataFrame
        return df


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


# Up to this many patients, the patient list is sent to every task of the orphan check of a
# table partitioned by another key (prescriptions, by record_id) instead of shuffling the
# table a second time: two million ids are about 100 MB of hash table.
BROADCAST_PATIENTS = 2_000_000

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
        statuses = None  # patient_id -> status, once the patients are in: every patient table joins it
        with contextlib.ExitStack() as cleanup, contextlib.nullcontext() if lake.in_batch else lake.batch():
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
                        if statuses is None:
                            statuses = patient_status(patients_bronze, lake.read("quarantine", "patients")).persist()
                            cleanup.callback(statuses.unpersist)
                        status = statuses
                kept_patients = next((r.rows_kept for r in results if r.table == "patients"), 0)
                result = ingest_table(lake, raw, table, cutoff, status, births, incremental=incremental,
                                      settings=settings, check_table=check_table,
                                      broadcast_patients=kept_patients <= BROADCAST_PATIENTS)
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



