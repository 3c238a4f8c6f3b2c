"""Each source table's raw rows, as Spark reads the files `extract_files` planned.

Spark reads a CSV file in the encoding found (GB18030 needs
`spark.sql.legacy.javaCharsets` in Spark 4: set for the length of the ingest, then
restored). Nanosecond Parquet timestamps (pandas' default) are read as numbers
through `spark.sql.legacy.parquet.nanosAsLong` and made timestamps again; a
timestamp stored as an instant (UTC-adjusted) becomes a Spark TIMESTAMP, a
wall-clock one (pandas naive, Spark TIMESTAMP_NTZ) a TIMESTAMP_NTZ.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .contract import SOURCE_TABLES
from .date_forms import wall_clock
from .errors import IngestError
from .extract_files import DEFAULT_SETTINGS, ENCODING_NAMES, ExtractSettings, ParquetColumn, SourcePlan, plan_table

NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"
JAVA_CHARSETS = "spark.sql.legacy.javaCharsets"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def column_named(name: str) -> Column:
    """A column by its exact name (dots and other characters taken literally)."""
    return F.col(_quoted(name))


def _timestamps_as_spark_reads_them(raw: DataFrame, columns: dict[str, ParquetColumn]) -> DataFrame:
    """Nanosecond columns (read as numbers) as timestamps again; wall-clock ones as TIMESTAMP_NTZ.

    An instant becomes TIMESTAMP, a wall-clock date-time TIMESTAMP_NTZ, whatever the
    writer and Spark's inference settings (spark.sql.parquet.inferTimestampNTZ.enabled).
    """
    out = []
    for field in raw.schema:
        column = columns.get(field.name.strip().lstrip("\ufeff"))
        c, kind = column_named(field.name), field.dataType.simpleString()
        if column is not None and column.category == "timestamp":
            if column.nanos and kind == "bigint":
                micros = F.expr(f"({_quoted(field.name)} - pmod({_quoted(field.name)}, 1000)) div 1000")
                c = F.timestamp_micros(micros) if column.instant else wall_clock(micros)
            elif kind == "timestamp" and not column.instant:
                c = wall_clock(F.unix_micros(c))
        out.append(c.alias(field.name))
    return raw.select(*out)


def read_plan(spark, plan: SourcePlan) -> DataFrame:
    """The raw rows of a planned table, every contract column present (an optional one empty)."""
    spec = SOURCE_TABLES[plan.table]
    path = plan.path
    if plan.fmt == "csv":
        # Free text (diagnosis_text, terms) may hold a quoted line break: read line by line, such
        # a record would become two broken rows, so the file is then read as one (multiLine), by
        # one task. Without one (extract_files found none), Spark splits a large file into tasks.
        raw = (spark.read.option("header", True).option("encoding", ENCODING_NAMES[plan.encoding])
               .option("inferSchema", False).option("escape", '"').option("mode", "PERMISSIVE")
               .option("multiLine", plan.multiline).csv(str(path)))
    else:
        raw = _timestamps_as_spark_reads_them(spark.read.parquet(str(path)), plan.columns)
    raw = raw.toDF(*[c.strip().lstrip("\ufeff") for c in raw.columns])
    missing = [c for c in spec.required_columns if c not in raw.columns]
    if missing:
        raise IngestError(f"source table {plan.table!r} ({path.name}) lacks required column {missing[0]!r}")
    for column in spec.columns:
        if column.name not in raw.columns:  # optional contract column: present, empty
            raw = raw.withColumn(column.name, F.lit(None).cast("string"))
    return raw


def read_raw(spark, source: str | Path, table: str,
             settings: ExtractSettings | None = None) -> DataFrame | None:
    """Plan and read one table (None: an absent optional table). Nanosecond Parquet columns
    need `nanos_as_long`, GB18030 text `java_charsets`, around the read and every use of the frame."""
    plan = plan_table(Path(source), table, settings or DEFAULT_SETTINGS)
    return None if plan is None else read_plan(spark, plan)


@contextlib.contextmanager
def _session_conf(spark, key: str, value: str, missing: str | None):
    """`key` set to `value` while open, then as it was. A Spark that lacks the key: IngestError
    with `missing`, or (missing=None) go on without it."""
    try:
        before = spark.conf.get(key)
    except Exception:  # noqa: BLE001 - a Spark without the setting
        if missing is not None:
            raise IngestError(missing) from None
        yield
        return
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.set(key, before)


def nanos_as_long(spark, needed: bool = True):
    """Spark reads INT64 TIMESTAMP(NANOS) as numbers while this is open (it cannot read them otherwise)."""
    if not needed:
        return contextlib.nullcontext()
    return _session_conf(spark, NANOS_AS_LONG, "true",
                         f"this Spark cannot read nanosecond Parquet timestamps (it lacks {NANOS_AS_LONG}); "
                         "write the extract with timestamp('us') or as text")


def java_charsets(spark, needed: bool = True):
    """Spark 4 reads CSV only in UTF-8, UTF-16/32 and Latin-1 unless `spark.sql.legacy.javaCharsets`
    is on; GB18030 needs it (a Spark without the setting reads any Java charset)."""
    if not needed:
        return contextlib.nullcontext()
    return _session_conf(spark, JAVA_CHARSETS, "true", None)
