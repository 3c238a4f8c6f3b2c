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
"""
from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from .contract import (DOSE_UNITS, EARLIEST_DATE, LAB_UNITS, PATIENT_TABLES, SEXES,
                       SOURCE_TABLES, SourceTable)

log = logging.getLogger(__name__)

DUPLICATE = "__exact_duplicate__"
ALREADY_LOADED = "__already_in_lake__"  # an incremental row the lake already holds (a duplicate)
# Reference tables each monthly extract holds whole: an incremental load replaces them.
SNAPSHOT_TABLES = ("hospitals", "patients")
KEYS = {"prescriptions": "record_id", "patients": "patient_id", "hospitals": "hospital_id"}
# Full-width forms and micro signs that units are written with.
_UNIT_FROM = "ＭＧＫＵＬＤ／％µμ²"
_UNIT_TO = "mgkuld/%uu2"
_TRUE = ("true", "t", "1", "yes", "y", "是")
_FALSE = ("false", "f", "0", "no", "n", "否")


class IngestError(ValueError):
    """The extract cannot be ingested at all (a missing table or column)."""


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


# -- locating and reading the extract ------------------------------------------

def locate_table(source: Path, table: str) -> tuple[Path, str] | None:
    """Where a table lives in the extract and its format, or None when absent."""
    for candidate, fmt in ((source / f"{table}.csv", "csv"), (source / f"{table}.parquet", "parquet"),
                           (source / table, "parquet")):
        if candidate.exists():
            if fmt == "parquet" and candidate.is_dir() and not any(candidate.rglob("*.parquet")):
                if any(candidate.rglob("*.csv")):
                    return candidate, "csv"
            return candidate, fmt
    return None


def read_raw(spark, source: str | Path, table: str) -> DataFrame | None:
    spec = SOURCE_TABLES[table]
    source = Path(source)
    found = locate_table(source, table)
    if found is None:
        if spec.required:
            raise IngestError(f"source table {table!r} is missing in {source} "
                              f"(expected {table}.csv, {table}.parquet or a folder {table}/)")
        return None
    path, fmt = found
    if fmt == "csv":
        # multiLine: free text (diagnosis_text, terms) may hold a quoted line break; read line by
        # line, one record would become two broken rows. A CSV file is then read by one task,
        # so a large table is best delivered as several files or as Parquet.
        raw = (spark.read.option("header", True).option("encoding", "UTF-8")
               .option("inferSchema", False).option("escape", '"').option("mode", "PERMISSIVE")
               .option("multiLine", True).csv(str(path)))
    else:
        raw = spark.read.parquet(str(path))
    raw = raw.toDF(*[c.strip().lstrip("\ufeff") for c in raw.columns])
    missing = [c for c in spec.required_columns if c not in raw.columns]
    if missing:
        raise IngestError(f"source table {table!r} ({path.name}) lacks required column {missing[0]!r}")
    for column in spec.columns:
        if column.name not in raw.columns:  # optional contract column: present, empty
            raw = raw.withColumn(column.name, F.lit(None).cast("string"))
    return raw


# -- typing -----------------------------------------------------------------------

def _is_type(df: DataFrame, name: str, spark_type: str) -> bool:
    return df.schema[name].dataType.simpleString() == spark_type


def _text(c: Column) -> Column:
    return F.nullif(F.trim(c.cast("string")), F.lit(""))


def typed_column(df: DataFrame, name: str, kind: str) -> Column:
    """The contract-typed value of a raw column (null when it does not parse)."""
    c = F.col(name)
    if kind == "str":
        return _text(c)
    if kind == "date":
        if _is_type(df, name, "date"):
            return c
        if _is_type(df, name, "timestamp") or _is_type(df, name, "timestamp_ntz"):
            return F.to_date(c)
        return F.try_to_date(_text(c), "yyyy-MM-dd")
    if kind == "float":
        value = c.cast("double") if _is_type(df, name, "double") else _text(c).try_cast("double")
        # 'NaN' and 'Infinity' cast to doubles, but no dose or lab value is either.
        return F.when(~F.isnan(value) & (F.abs(value) != F.lit(float("inf"))), value)
    if kind == "int":
        if _is_type(df, name, "int"):
            return c
        value = _text(c).try_cast("double")
        return F.when(value == F.floor(value), value.try_cast("int"))  # 2.5 is no grade
    if kind == "bool":
        if _is_type(df, name, "boolean"):
            return c
        t = F.lower(_text(c))
        return F.when(t.isin(*_TRUE), True).when(t.isin(*_FALSE), False)
    raise ValueError(f"unknown contract type {kind!r}")  # pragma: no cover


def normalised_unit(c: Column) -> Column:
    # Full-width forms first: lower() would turn 'ＭＧ' into 'ｍｇ', which the table does not hold.
    return F.nullif(F.regexp_replace(F.lower(F.translate(F.trim(c), _UNIT_FROM, _UNIT_TO)), r"\s+", ""),
                    F.lit(""))


# -- row rules ------------------------------------------------------------------------

def row_reasons(df: DataFrame, spec: SourceTable, cutoff) -> list[Column]:
    """The checks of one row, in precedence order: the first that fails is its reason."""
    checks: list[tuple[Column, str]] = []
    raw = {c.name: _text(F.col(c.name)) for c in spec.columns}
    typed = {c.name: F.col(f"__t_{c.name}") for c in spec.columns}
    for c in spec.columns:
        if c.required:
            checks.append((raw[c.name].isNull(), "missing_required"))
    for c in spec.columns:
        if c.type == "date":
            checks.append((raw[c.name].isNotNull() & typed[c.name].isNull(), "unparseable_date"))
    for c in spec.columns:
        if c.type == "date":
            checks.append(((typed[c.name] < F.lit(EARLIEST_DATE).cast("date"))
                           | (typed[c.name] > F.lit(cutoff).cast("date")), "date_out_of_range"))
    for c in spec.columns:
        if c.type in ("float", "int"):
            checks.append((raw[c.name].isNotNull() & typed[c.name].isNull(), "unparseable_number"))
        if c.type == "bool":
            checks.append((raw[c.name].isNotNull() & typed[c.name].isNull(), "unparseable_bool"))
    if spec.name == "prescriptions":
        checks.append((typed["dose"] <= 0, "non_positive_dose"))
        checks.append((typed["dose_unit"].isNotNull() & ~typed["dose_unit"].isin(*DOSE_UNITS), "unknown_unit"))
    if spec.name == "labs":
        checks.append((typed["unit"].isNotNull() & ~typed["unit"].isin(*LAB_UNITS), "unknown_unit"))
    if spec.name == "adverse_events":
        checks.append((typed["grade"].isNotNull() & ~typed["grade"].between(1, 5), "invalid_grade"))
    if spec.name == "patients":
        checks.append((~typed["sex"].isin(*SEXES), "invalid_sex"))
    if spec.name == "biomarkers":
        from .facts import UNREADABLE, biomarker_reading_expr
        reading = biomarker_reading_expr(typed["marker"], typed["result"], typed["method"])
        checks.append((reading == UNREADABLE, "unreadable_result"))
    return [F.when(cond, F.lit(reason)) for cond, reason in checks]


_NULL_MARK = "\u0000null"


def _content_hash(columns: list[str]) -> Column:
    # xxhash64 skips nulls, so (a, null) and (null, a) would hash alike: mark them.
    return F.xxhash64(*[F.coalesce(F.col(c).cast("string"), F.lit(_NULL_MARK)) for c in columns])


def validate(raw: DataFrame, table: str, cutoff, patient_status: DataFrame | None = None,
             patient_births: DataFrame | None = None) -> DataFrame:
    """Raw rows with their typed contract columns and `reason` (null = keep).

    Exact duplicates carry the reason DUPLICATE. Keys seen twice with different
    content keep one deterministic row; the others go to quarantine.
    """
    spec = SOURCE_TABLES[table]
    raw_cols = list(raw.columns)
    df = raw
    for c in spec.columns:
        value = typed_column(raw, c.name, c.type)
        if c.name in ("dose_unit", "unit"):
            value = normalised_unit(F.col(c.name))
        if c.name == "sex":
            value = F.upper(_text(F.col(c.name)))
        df = df.withColumn(f"__t_{c.name}", value)

    # One sort serves both checks. Rows are grouped by their key (record_id,
    # patient_id, hospital_id) or, for tables without one, by a content hash, and
    # ordered by content: a row equal in every column to the one before it is an
    # exact duplicate (dropped, counted); a keyed row whose content differs from
    # the group's first row is a conflicting copy of the key (quarantined).
    key = KEYS.get(table)
    df = (df.withColumn("__hash", _content_hash(raw_cols))
          .withColumn("__row_reason", F.coalesce(*row_reasons(df, spec, cutoff))))
    reasons = [F.col("__row_reason")]
    group = F.col(f"__t_{key}") if key else F.col("__hash")
    # Valid rows first: of a key's conflicting copies, a usable one is the one kept.
    order = Window.partitionBy(group).orderBy(F.col("__row_reason").isNotNull(), "__hash", *raw_cols)
    same_as_previous = F.row_number().over(order) > 1
    for c in raw_cols:
        same_as_previous = same_as_previous & F.col(c).eqNullSafe(F.lag(c).over(order))
    df = df.withColumn("__duplicate", same_as_previous)
    if key:
        conflict = {"prescriptions": "conflicting_record_id", "patients": "duplicate_patient_id",
                    "hospitals": "duplicate_hospital_id"}[table]
        whole_group = order.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        df = df.withColumn("__first_of_key", F.first("__hash").over(whole_group))
        reasons.append(F.when(F.col(f"__t_{key}").isNotNull() & (F.col("__hash") != F.col("__first_of_key")),
                              F.lit(conflict)))
    if table in PATIENT_TABLES and patient_status is not None:
        df = df.join(patient_status.withColumnRenamed("patient_id", "__t_patient_id"), "__t_patient_id", "left")
        reasons.append(F.when(F.col("__t_patient_id").isNotNull() & F.col("__patient_status").isNull(),
                              F.lit("orphan_patient_id")))
        reasons.append(F.when(F.col("__patient_status") == "quarantined", F.lit("patient_quarantined")))
    if table == "deaths" and patient_births is not None:
        df = df.join(patient_births.withColumnRenamed("id_hash", "__t_id_hash"), "__t_id_hash", "left")
        reasons.append(F.when(F.col("__t_death_date") < F.col("__birth_date"), F.lit("death_before_birth")))

    reason = F.when(F.col("__duplicate"), F.lit(DUPLICATE)).otherwise(F.coalesce(*reasons))
    return df.withColumn("reason", reason)


def bronze_frame(validated: DataFrame, raw_columns: list[str], table: str) -> DataFrame:
    """Kept rows: contract columns typed, extra columns as read."""
    spec = SOURCE_TABLES[table]
    typed = [F.col(f"__t_{c.name}").cast(c.spark_type).alias(c.name) for c in spec.columns]
    extra = [F.col(c) for c in raw_columns if c not in spec.column_names]
    return validated.where(F.col("reason").isNull()).select(*typed, *extra)


def quarantine_frame(validated: DataFrame, raw_columns: list[str]) -> DataFrame:
    """Rejected rows as they were written, every column as text, with the reason."""
    return (validated.where(F.col("reason").isNotNull() & ~F.col("reason").isin(DUPLICATE, ALREADY_LOADED))
            .select(F.col("reason"), *[F.col(c).cast("string").alias(c) for c in raw_columns]))


def reason_counts(validated: DataFrame) -> dict[str | None, int]:
    return {r["reason"]: r["n"] for r in validated.groupBy("reason").agg(F.count(F.lit(1)).alias("n")).collect()}


def mark_already_loaded(validated: DataFrame, existing: DataFrame, table: str) -> DataFrame:
    """`validated` with the reason of rows the lake holds already (incremental loads).

    A row that would be kept and equals a bronze row in every column (as typed)
    gets ALREADY_LOADED; for prescriptions, a kept row whose record_id bronze holds
    with other content gets conflicting_record_id. Other reasons stay.
    """
    spec = SOURCE_TABLES[table]
    columns = list(existing.columns)

    def as_bronze(name: str) -> Column:  # the value this load would write to bronze
        if name in spec.column_names:
            return F.col(f"__t_{name}").cast(spec.column(name).spark_type)
        return F.col(name) if name in validated.columns else F.lit(None)

    df = validated.select("*", *[as_bronze(c).alias(f"__n{i}") for i, c in enumerate(columns)])
    rows = (existing.select(*[F.col(c).alias(f"__o{i}") for i, c in enumerate(columns)]).distinct()
            .withColumn("__in_lake", F.lit(True)))
    df = df.join(rows, [F.col(f"__n{i}").eqNullSafe(F.col(f"__o{i}")) for i in range(len(columns))], "left")
    kept = F.col("reason").isNull()
    reason = F.when(kept & F.col("__in_lake").isNotNull(), F.lit(ALREADY_LOADED))
    drop = [f"__n{i}" for i in range(len(columns))] + [f"__o{i}" for i in range(len(columns))] + ["__in_lake"]
    if table == "prescriptions":
        ids = existing.select(F.col("record_id").alias("__known_id")).distinct()
        df = df.join(ids, F.col("__t_record_id") == F.col("__known_id"), "left")
        reason = reason.when(kept & F.col("__known_id").isNotNull(), F.lit("conflicting_record_id"))
        drop.append("__known_id")
    return df.withColumn("reason", reason.otherwise(F.col("reason"))).drop(*drop)


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
                 patient_births=None, incremental: bool = False) -> TableResult:
    raw_columns = list(raw.columns)
    validated = validate(raw, table, cutoff, patient_status, patient_births)
    merge = incremental and table not in SNAPSHOT_TABLES
    existing = lake.read("bronze", table) if merge and lake.exists("bronze", table) else None
    if existing is not None:
        validated = mark_already_loaded(validated, existing, table)
    validated = validated.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = reason_counts(validated)
        bronze = bronze_frame(validated, raw_columns, table)
        quarantine = quarantine_frame(validated, raw_columns)
        if merge:
            _append_new(lake, bronze, quarantine, table, cutoff, counts.get(None, 0), existing)
        else:
            version = lake.version("bronze", table) if lake.exists("bronze", table) else 0
            lake.write(bronze, "bronze", table, txn=(full_load_app(table), version + 1))
            lake.write(quarantine, "quarantine", table)
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
        quarantine = aligned_to(quarantine, _table_columns(held))
        quarantine = quarantine.join(held, [quarantine[c].eqNullSafe(held[c]) for c in held.columns], "left_anti")
        if quarantine.isEmpty():
            return
    lake.write(quarantine, "quarantine", table, mode="append")


INGEST_ORDER = ("hospitals", "patients", "deaths") + tuple(t for t in PATIENT_TABLES)


def ingest(spark, lake, source: str | Path, cutoff, progress: typing.Callable[[str], None] = log.info,
           incremental: bool = False) -> list[TableResult]:
    """Ingest every table of the extract into bronze and quarantine.

    `incremental`: merge into the lake's bronze and quarantine (see the module's
    docstring) instead of replacing them.
    """
    source = Path(source)
    if not source.is_dir():
        raise IngestError(f"source directory {source} does not exist")
    raws = {t: read_raw(spark, source, t) for t in INGEST_ORDER}  # fails fast on a missing table/column
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
    for table in INGEST_ORDER:
        raw = raws[table]
        if raw is None:
            progress(f"ingest {table}: optional table absent")
            continue
        status = births = None
        if table in PATIENT_TABLES or table == "deaths":
            patients_bronze = lake.read("bronze", "patients")
            if table == "deaths":
                births = (patients_bronze.where(F.col("id_hash").isNotNull())
                          .groupBy("id_hash").agg(F.min("birth_date").alias("__birth_date")))
            else:
                status = patient_status(patients_bronze, lake.read("quarantine", "patients"))
        result = ingest_table(lake, raw, table, cutoff, status, births, incremental=incremental)
        merged = f" ({result.already_in_lake} already in the lake)" if incremental and table not in SNAPSHOT_TABLES \
            else ""
        progress(f"ingest {table}: {result.rows_read} read, {result.rows_kept} kept, "
                 f"{result.rows_quarantined} quarantined, {result.duplicates_removed} duplicates{merged}")
        results.append(result)
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


DATA_QUALITY_SCHEMA = "stage string, table string, check string, reason string, n long"
