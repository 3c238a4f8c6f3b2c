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

Reading (`ExtractSettings` holds the run's choices):

* CSV is UTF-8 (with or without a byte-order mark) or GB18030/GBK. Every file is
  decoded whole, in chunks, by Python's strict decoders before Spark reads it: with
  `encoding="auto"` a file that is valid UTF-8 is UTF-8, else one that is valid
  GB18030 is GB18030, else the run stops naming the file and its first bad line.
  Text is never read in an encoding it is not valid in. Spark reads the file in the
  encoding found (GB18030 needs `spark.sql.legacy.javaCharsets` in Spark 4: set for
  the length of the ingest, then restored).
* Parquet footers are read first (pyarrow, footers only, every file of a folder):
  a column of a type the engine cannot read stops the run naming table, column and
  type. Nanosecond timestamps (pandas' default) are read as numbers through
  `spark.sql.legacy.parquet.nanosAsLong` and made timestamps again; a timestamp
  stored as an instant (UTC-adjusted) becomes a Spark TIMESTAMP, a wall-clock one
  (pandas naive, Spark TIMESTAMP_NTZ) a TIMESTAMP_NTZ.
* Dates: see `date_parts`; an instant is dated in the extract's time zone, a
  wall-clock date-time by its own calendar date, whatever Spark's session time zone.

A misread extract stops the run: when one reason rejects more than
`max_rejected_share` of a table's rows, ingest raises ExtractMisreadError naming
table, column, reason, share and an example, and nothing of the run is committed:
every table is staged in one lake batch (`Lake.batch`), committed only after all
tables passed their checks (and the caller's `check_table`).

Quarantine tables hold the engine's `reason` and `reason_column` (the column that
failed), then every source column as text. A source column that has one of those
two names (in any case) is kept as `source_<name>` (`source_reason`, …; more
`source_` prefixes while the name is taken). Bronze keeps every source column
under its own name. The engine's bookkeeping columns during validation carry a
prefix no source column starts with.
"""
from __future__ import annotations

import codecs
import contextlib
import dataclasses
import fractions
import logging
import math
import typing
import zoneinfo
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from .contract import (DOSE_UNITS, EARLIEST_DATE, LAB_UNITS, PATIENT_TABLES, SEXES,
                       SOURCE_TABLES, SourceTable)
from .errors import ExtractMisread, UserError

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
# The engine's columns of a quarantine table; source columns of these names are renamed there.
QUARANTINE_COLUMNS = ("reason", "reason_column")


class IngestError(UserError, ValueError):
    """The extract cannot be ingested at all (a missing table or column, an unreadable file)."""


class ExtractMisreadError(IngestError, ExtractMisread):
    """The extract was read wrongly as a whole (an encoding, a date form): nothing is written."""


# -- the run's settings ------------------------------------------------------------

ENCODINGS = {"auto": "auto", "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
             "gb18030": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "gb2312": "gb18030"}
_ENCODING_NAME = {"utf-8": "UTF-8", "gb18030": "GB18030"}  # also the Java charset Spark reads with


@dataclasses.dataclass(frozen=True)
class ExtractSettings:
    """How a run reads its extract.

    encoding: `auto` (each CSV file's bytes tell: UTF-8, else GB18030), `utf-8`, or
      `gb18030` (`gbk` names it too: GB18030 is its superset).
    timezone: the extract's time zone (an IANA name): a date-time with an offset, or a
      Parquet timestamp stored as an instant, is dated in it.
    max_rejected_share: one reason rejecting more than this share of a table's rows
      (rows read) stops the run as a misread extract; exactly the share goes on.
    """
    encoding: str = "auto"
    timezone: str = "Asia/Shanghai"
    max_rejected_share: float = 0.10

    def __post_init__(self):
        encoding = str(self.encoding).strip().lower().replace("_", "-")
        if encoding not in ENCODINGS:
            raise IngestError(f"encoding must be auto, utf-8, gb18030 or gbk, got {self.encoding!r}")
        object.__setattr__(self, "encoding", ENCODINGS[encoding])
        try:
            zoneinfo.ZoneInfo(str(self.timezone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise IngestError(f"unknown time zone {self.timezone!r} (expected an IANA name such as "
                              "Asia/Shanghai or UTC)") from None
        share = self.max_rejected_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or math.isnan(share) \
                or not 0 <= share <= 1:
            raise IngestError(f"the maximum rejected share must be a number from 0 to 1, got {share!r}")


DEFAULT_SETTINGS = ExtractSettings()


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


# -- encodings ------------------------------------------------------------------------

_CHUNK = 1 << 20


def _first_bad_line(path: Path, codec: str) -> tuple[tuple[int, bytes] | None, bool]:
    """((line, bytes) of the first sequence `codec` cannot decode, or None; whether the file is ASCII).

    The whole file goes through Python's strict incremental decoder in chunks: C speed,
    linear, constant memory.
    """
    decoder = codecs.getincrementaldecoder(codec)("strict")
    lines, ascii_only = 0, True
    with open(path, "rb") as stream:
        while True:
            chunk = stream.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's pending bytes of the chunk before, then this chunk;
                # pending bytes are never a line break.
                pending = len(exc.object) - len(chunk)
                before = chunk[:max(0, exc.start - pending)]
                return (lines + before.count(b"\n") + 1, bytes(exc.object[exc.start:exc.end])[:4]), False
            if not chunk:
                return None, ascii_only
            ascii_only = ascii_only and chunk.isascii()
            lines += chunk.count(b"\n")


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02x}" for b in data)


def file_encoding(path: Path, wanted: str = "auto") -> tuple[str, bool]:
    """(the encoding a CSV file is in, whether it is plain ASCII); ExtractMisreadError if none fits."""
    tried = []
    for codec in (("utf-8", "gb18030") if wanted == "auto" else (wanted,)):
        bad, ascii_only = _first_bad_line(path, codec)
        if bad is None:
            return codec, ascii_only
        tried.append((codec, bad))
    if wanted == "auto":
        (_, (l1, b1)), (_, (l2, b2)) = tried
        raise ExtractMisreadError(f"source file {path} is neither UTF-8 nor GB18030: line {l1} is not UTF-8 "
                                  f"(bytes {_hex(b1)}) and line {l2} is not GB18030 (bytes {_hex(b2)}); "
                                  "re-export it as UTF-8 or GB18030/GBK (--encoding)")
    name = _ENCODING_NAME[wanted]
    (_, (line, data)), = tried
    raise ExtractMisreadError(f"source file {path} is not {name} (the run's --encoding): line {line} holds "
                              f"bytes {_hex(data)} that {name} cannot decode")


def csv_encoding(table: str, files: list[Path], wanted: str = "auto") -> str:
    """The one encoding every CSV file of a table is in (plain ASCII files fit any)."""
    found: dict[str, Path] = {}
    for file in files:
        codec, ascii_only = file_encoding(file, wanted)
        if not ascii_only:
            found.setdefault(codec, file)
    if len(found) > 1:
        raise ExtractMisreadError(f"source table {table!r}: {found['utf-8']} is UTF-8 but {found['gb18030']} is "
                                  "GB18030; re-export the table in one encoding")
    if found:
        return next(iter(found))
    return "utf-8" if wanted == "auto" else wanted


# -- Parquet types ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ParquetColumn:
    """A Parquet column as its footers describe it."""
    arrow_type: str  # as pyarrow names it
    category: str  # string, integer, float, decimal, bool, date, timestamp, null, binary, nested, ...
    unit: str | None = None  # of a timestamp: s, ms, us, ns, or int96
    instant: bool = False  # a timestamp stored UTC-adjusted (with a time zone, or INT96)

    @property
    def nanos(self) -> bool:
        return self.category == "timestamp" and self.unit == "ns"

    def same_as(self, other: "ParquetColumn") -> bool:
        return (self.category, self.unit, self.instant) == (other.category, other.unit, other.instant)


# Categories Spark cannot read at all (the whole file fails, whatever columns are selected).
_SPARK_UNREADABLE = ("time", "float16", "other")
# Categories a contract column of each type can be read from.
_READABLE = {
    "str": ("string", "integer", "float", "decimal", "bool", "date", "timestamp", "null"),
    "date": ("date", "timestamp", "string", "integer", "null"),
    "float": ("float", "integer", "decimal", "string", "null"),
    "int": ("integer", "float", "decimal", "string", "null"),
    "bool": ("bool", "integer", "string", "null"),
}
_KIND_NAME = {"str": "text", "date": "a date", "float": "a number", "int": "a whole number",
              "bool": "a yes/no value"}


def _category(t: pa.DataType) -> str:
    if isinstance(t, pa.ExtensionType):
        return _category(t.storage_type)
    if pa.types.is_dictionary(t):
        return _category(t.value_type)
    checks = (
        (pa.types.is_string, "string"), (pa.types.is_large_string, "string"),
        (lambda x: hasattr(pa.types, "is_string_view") and pa.types.is_string_view(x), "string"),
        (pa.types.is_integer, "integer"), (pa.types.is_float16, "float16"), (pa.types.is_floating, "float"),
        (pa.types.is_decimal, "decimal"), (pa.types.is_boolean, "bool"), (pa.types.is_date, "date"),
        (pa.types.is_timestamp, "timestamp"), (pa.types.is_null, "null"), (pa.types.is_time, "time"),
        (pa.types.is_duration, "duration"), (pa.types.is_interval, "interval"),
        (pa.types.is_binary, "binary"), (pa.types.is_large_binary, "binary"),
        (pa.types.is_fixed_size_binary, "binary"),
        (lambda x: hasattr(pa.types, "is_binary_view") and pa.types.is_binary_view(x), "binary"),
        (pa.types.is_nested, "nested"),
    )
    for check, category in checks:
        if check(t):
            return category
    return "other"


def _parquet_column(t: pa.DataType, int96: bool) -> ParquetColumn:
    category = _category(t)
    if category == "timestamp":
        if isinstance(t, pa.DictionaryType):  # pragma: no cover - no writer makes these
            t = t.value_type
        if int96:  # Hive and old Spark: an instant, read by Spark as TIMESTAMP
            return ParquetColumn(str(t), category, "int96", True)
        return ParquetColumn(str(t), category, t.unit, t.tz is not None)
    return ParquetColumn(str(t), category)


def data_files(path: Path) -> list[Path]:
    """The files Spark reads of a table: the file itself, or a folder's files (hidden ones skipped)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))


def parquet_columns(table: str, path: Path) -> dict[str, ParquetColumn]:
    """The columns of a Parquet table from every file's footer; IngestError naming what Spark cannot read."""
    spec = SOURCE_TABLES[table]
    columns: dict[str, tuple[ParquetColumn, Path]] = {}
    for file in data_files(path):
        try:
            parquet = pq.ParquetFile(file)
        except (OSError, pa.ArrowException) as exc:
            raise IngestError(f"source table {table!r}: {file} is not a readable Parquet file "
                              f"({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
                              ) from None
        try:
            schema = parquet.schema
            int96 = {schema.column(i).path for i in range(parquet.metadata.num_columns)
                     if schema.column(i).physical_type == "INT96"}
            arrow = parquet.schema_arrow
        finally:
            parquet.close()
        for field in arrow:
            name = field.name.strip().lstrip("\ufeff")
            column = _parquet_column(field.type, field.name in int96)
            where = file.name if file == path else str(file.relative_to(path))
            if column.category in _SPARK_UNREADABLE:
                raise IngestError(f"source table {table!r} ({where}): column {name!r} is {column.arrow_type}, "
                                  "a Parquet type the engine cannot read (write it as text, or leave it out)")
            if name in spec.column_names:
                kind = spec.column(name).type
                if column.category not in _READABLE[kind]:
                    raise IngestError(f"source table {table!r} ({where}): column {name!r} is {column.arrow_type}, "
                                      f"which the engine cannot read as {_KIND_NAME[kind]}")
            if name in columns and not columns[name][0].same_as(column):
                first, first_file = columns[name]
                raise IngestError(f"source table {table!r}: column {name!r} is {first.arrow_type} in "
                                  f"{first_file.name} but {column.arrow_type} in {file.name}; the files of a "
                                  "table must agree")
            columns.setdefault(name, (column, file))
    return {name: column for name, (column, _) in columns.items()}


# -- locating and reading the extract ------------------------------------------

@dataclasses.dataclass
class SourcePlan:
    """Where a table is and how to read it, checked before Spark reads anything."""
    table: str
    path: Path
    fmt: str  # csv or parquet
    encoding: str | None = None  # csv
    columns: dict[str, ParquetColumn] = dataclasses.field(default_factory=dict)  # parquet, by stripped name

    @property
    def nanos(self) -> bool:
        return any(c.nanos for c in self.columns.values())


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


def plan_table(source: Path, table: str, settings: ExtractSettings = DEFAULT_SETTINGS) -> SourcePlan | None:
    """Locate a table and check its files (CSV encodings, Parquet footers); None for an absent optional table."""
    spec = SOURCE_TABLES[table]
    found = locate_table(source, table)
    if found is None:
        if spec.required:
            raise IngestError(f"source table {table!r} is missing in {source} "
                              f"(expected {table}.csv, {table}.parquet or a folder {table}/)")
        return None
    path, fmt = found
    if fmt == "csv":
        return SourcePlan(table, path, fmt, encoding=csv_encoding(table, data_files(path), settings.encoding))
    return SourcePlan(table, path, fmt, columns=parquet_columns(table, path))


_EPOCH_NTZ = "TIMESTAMP_NTZ'1970-01-01 00:00:00'"
NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"
JAVA_CHARSETS = "spark.sql.legacy.javaCharsets"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Column:
    """A column by its exact name (dots and other characters taken literally)."""
    return F.col(_quoted(name))


def _wall_clock(micros: Column) -> Column:
    """TIMESTAMP_NTZ of the wall clock that microseconds since 1970-01-01 00:00 count to."""
    return F.timestamp_add("MICROSECOND", micros, F.expr(_EPOCH_NTZ))


def _timestamps_as_spark_reads_them(raw: DataFrame, columns: dict[str, ParquetColumn]) -> DataFrame:
    """Nanosecond columns (read as numbers) as timestamps again; wall-clock ones as TIMESTAMP_NTZ.

    An instant becomes TIMESTAMP, a wall-clock date-time TIMESTAMP_NTZ, whatever the
    writer and Spark's inference settings (spark.sql.parquet.inferTimestampNTZ.enabled).
    """
    out = []
    for field in raw.schema:
        column = columns.get(field.name.strip().lstrip("\ufeff"))
        c, kind = _col(field.name), field.dataType.simpleString()
        if column is not None and column.category == "timestamp":
            if column.nanos and kind == "bigint":
                micros = F.expr(f"({_quoted(field.name)} - pmod({_quoted(field.name)}, 1000)) div 1000")
                c = F.timestamp_micros(micros) if column.instant else _wall_clock(micros)
            elif kind == "timestamp" and not column.instant:
                c = _wall_clock(F.unix_micros(c))
        out.append(c.alias(field.name))
    return raw.select(*out)


def read_plan(spark, plan: SourcePlan) -> DataFrame:
    """The raw rows of a planned table, every contract column present (an optional one empty)."""
    spec = SOURCE_TABLES[plan.table]
    path = plan.path
    if plan.fmt == "csv":
        # multiLine: free text (diagnosis_text, terms) may hold a quoted line break; read line by
        # line, one record would become two broken rows. A CSV file is then read by one task,
        # so a large table is best delivered as several files or as Parquet.
        raw = (spark.read.option("header", True).option("encoding", _ENCODING_NAME[plan.encoding])
               .option("inferSchema", False).option("escape", '"').option("mode", "PERMISSIVE")
               .option("multiLine", True).csv(str(path)))
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


# -- dates ---------------------------------------------------------------------------

# Forms that are rewritten to YYYY-MM-DD first: 2019年3月5日, 20190305.
_CHINESE_DATE = r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
_COMPACT_DATE = r"^(\d{4})(\d{2})(\d{2})(?=$|[T ])"
# An optional time of day, then an optional offset (Z, +08:00, +0800, -05).
_CLOCK = (r"(?:(?:T|\s+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?"
          r"(?:\s*(Z|[+-]\d{2}(?::?\d{2})?))?)?")
# Year first, one separator throughout: 2019-03-05, 2019/3/5, 2019.03.05, with a time or not.
_YEAR_FIRST = r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _CLOCK + "$"
# Year last: 05/03/2019 reads as 5 March or as 3 May. The column's form is ambiguous, whatever the day.
_YEAR_LAST = r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})" + _CLOCK + "$"


def _normalised_date_text(text: Column) -> Column:
    text = F.regexp_replace(text, _CHINESE_DATE, "$1-$2-$3 ")
    return F.trim(F.regexp_replace(text, _COMPACT_DATE, "$1-$2-$3"))


def _valid_date(year: Column, month: Column, day: Column) -> Column:
    return F.try_make_timestamp_ntz(year.try_cast("int"), month.try_cast("int"), day.try_cast("int"),
                                    F.lit(0), F.lit(0), F.lit(0)).isNotNull()


def date_parts(text: Column) -> Column:
    """The parts a date text writes, [year, month, day, hour, minute, second, offset], or null.

    Forms: YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD (one or two digits for month and day),
    YYYYMMDD, 2019年3月5日, each optionally followed by a time of day (`T` or spaces,
    HH:MM[:SS[.fff]]) and an offset (`Z`, `+08:00`, `-0500`). Absent parts are empty.
    One regular expression takes the text apart; `date_from_parts` reads the parts.
    Kept apart so that ingest can compute the parts once per row as a column: the
    parts are referenced a dozen times, and inlined they made an expression too big
    for Spark's code generator (64 KB per method), evaluating the same regular
    expressions many times per row.
    """
    norm = _normalised_date_text(text)
    return F.when(norm.rlike(_YEAR_FIRST),
                  F.split(F.regexp_replace(norm, _YEAR_FIRST, "$1|$3|$4|$5|$6|$7|$8"), r"\|"))


def date_from_parts(parts: Column, timezone: str) -> Column:
    """The calendar date of `date_parts`, or null. Spark SQL only; no Python, no session time zone.

    `try_make_timestamp_ntz` checks the parts (2019-02-30 or 25:00 give null). A time
    with an offset marks an instant: the offset is subtracted in minutes, giving the
    UTC wall clock, which `convert_timezone('UTC', timezone, …)` turns into the wall
    clock of the extract's zone (TIMESTAMP_NTZ arithmetic: session-independent), and
    it is dated there. A time without one is local already: its own calendar date.
    """
    def part(i: int) -> Column:
        return F.nullif(parts.getItem(i), F.lit(""))

    year, month, day, hour, minute, second, offset = (part(i) for i in range(7))
    local = F.try_make_timestamp_ntz(year.try_cast("int"), month.try_cast("int"), day.try_cast("int"),
                                     F.coalesce(hour.try_cast("int"), F.lit(0)),
                                     F.coalesce(minute.try_cast("int"), F.lit(0)),
                                     F.coalesce(second.try_cast("int"), F.lit(0)))
    digits = F.regexp_replace(offset, "[^0-9]", "")
    off_hours = F.substring(digits, 1, 2).try_cast("int")
    off_minutes = F.coalesce(F.nullif(F.substring(digits, 3, 2), F.lit("")).try_cast("int"), F.lit(0))
    sign = F.when(F.startswith(offset, F.lit("-")), F.lit(-1)).otherwise(F.lit(1))
    shift = F.when(offset == "Z", F.lit(0)).otherwise(sign * (off_hours * 60 + off_minutes))
    offset_ok = (offset == "Z") | ((off_hours <= 18) & (off_minutes < 60))
    utc = F.timestamp_add("MINUTE", -shift, local)
    in_zone = F.to_date(F.convert_timezone(F.lit("UTC"), F.lit(timezone), utc))
    return F.when(parts.isNotNull(), F.when(offset.isNull(), F.to_date(local)).when(offset_ok, in_zone))


def date_from_text(text: Column, timezone: str) -> Column:
    """The calendar date a text writes, or null (the forms of `date_parts`), as one expression.

    For a few values; on a table, compute `date_parts` as a column first (as `validate` does).
    """
    return date_from_parts(date_parts(text), timezone)


def ambiguous_date_text(text: Column) -> Column:
    """True for a day-first or month-first date (05/03/2019, 5-3-2019) that either reading makes a date."""
    norm = F.trim(text)
    first, second, year = (F.regexp_extract(norm, _YEAR_LAST, i) for i in (1, 3, 4))
    return norm.rlike(_YEAR_LAST) & (_valid_date(year, second, first) | _valid_date(year, first, second))


def date_of_instant(c: Column, timezone: str) -> Column:
    """The calendar date in `timezone` of a TIMESTAMP (an instant), whatever the session time zone."""
    return F.to_date(F.convert_timezone(F.lit("UTC"), F.lit(timezone), _wall_clock(F.unix_micros(c))))


# -- typing -----------------------------------------------------------------------

def _is_type(df: DataFrame, name: str, spark_type: str) -> bool:
    return df.schema[name].dataType.simpleString() == spark_type


def _text(c: Column) -> Column:
    return F.nullif(F.trim(c.cast("string")), F.lit(""))


def needs_date_parts(df: DataFrame, name: str) -> bool:
    """Whether a date column is text (dated through `date_parts`) rather than a date or timestamp."""
    return not any(_is_type(df, name, t) for t in ("date", "timestamp_ntz", "timestamp"))


def typed_column(df: DataFrame, name: str, kind: str, timezone: str = DEFAULT_SETTINGS.timezone,
                 parts: str | None = None) -> Column:
    """The contract-typed value of a raw column (null when it does not parse).

    parts: for a text date column, the name of a column holding its `date_parts`.
    """
    c = _col(name)
    if kind == "str":
        return _text(c)
    if kind == "date":
        if _is_type(df, name, "date"):
            return c
        if _is_type(df, name, "timestamp_ntz"):  # a wall clock: its own date
            return F.to_date(c)
        if _is_type(df, name, "timestamp"):  # an instant: its date in the extract's zone
            return date_of_instant(c, timezone)
        return date_from_parts(_col(parts), timezone) if parts else date_from_text(_text(c), timezone)
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


# -- bookkeeping columns ------------------------------------------------------------

class Names:
    """The engine's bookkeeping columns of one table's validation, named apart from its source columns.

    Every name starts with a prefix that no source column starts with (compared
    without case, as Spark does): `__ce_`, with more leading underscores if needed.
    """

    def __init__(self, source_columns: typing.Iterable[str]):
        columns = [c.lower() for c in source_columns]
        prefix = "__ce_"
        while any(c.startswith(prefix) for c in columns):
            prefix = "_" + prefix
        self.prefix = prefix

    def __call__(self, name: str) -> str:
        return self.prefix + name

    def typed(self, column: str) -> str:
        return f"{self.prefix}t_{column}"

    @property
    def reason(self) -> str:
        return self("reason")

    @property
    def reason_column(self) -> str:
        return self("reason_column")


_SEP = "|"  # between a reason and its column while they travel as one value


def _reason(condition: Column, reason: str, column: str) -> Column:
    return F.when(condition, F.lit(f"{reason}{_SEP}{column}"))


# -- row rules ------------------------------------------------------------------------

def row_reasons(df: DataFrame, spec: SourceTable, cutoff, names: Names | None = None) -> list[Column]:
    """The checks of one row, in precedence order: the first that fails is its reason.

    Each is null or 'reason|column' (the column that failed).
    """
    names = names or Names(df.columns)
    checks: list[tuple[Column, str, str]] = []
    raw = {c.name: _text(_col(c.name)) for c in spec.columns}
    typed = {c.name: F.col(names.typed(c.name)) for c in spec.columns}
    for c in spec.columns:
        if c.required:
            checks.append((raw[c.name].isNull(), "missing_required", c.name))
    for c in spec.columns:
        if c.type == "date":
            unparsed = raw[c.name].isNotNull() & typed[c.name].isNull()
            checks.append((unparsed & ambiguous_date_text(raw[c.name]), "ambiguous_date", c.name))
            checks.append((unparsed, "unparseable_date", c.name))
    for c in spec.columns:
        if c.type == "date":
            checks.append(((typed[c.name] < F.lit(EARLIEST_DATE).cast("date"))
                           | (typed[c.name] > F.lit(cutoff).cast("date")), "date_out_of_range", c.name))
    for c in spec.columns:
        if c.type in ("float", "int"):
            checks.append((raw[c.name].isNotNull() & typed[c.name].isNull(), "unparseable_number", c.name))
        if c.type == "bool":
            checks.append((raw[c.name].isNotNull() & typed[c.name].isNull(), "unparseable_bool", c.name))
    if spec.name == "prescriptions":
        checks.append((typed["dose"] <= 0, "non_positive_dose", "dose"))
        checks.append((typed["dose_unit"].isNotNull() & ~typed["dose_unit"].isin(*DOSE_UNITS), "unknown_unit",
                       "dose_unit"))
    if spec.name == "labs":
        checks.append((typed["unit"].isNotNull() & ~typed["unit"].isin(*LAB_UNITS), "unknown_unit", "unit"))
    if spec.name == "adverse_events":
        checks.append((typed["grade"].isNotNull() & ~typed["grade"].between(1, 5), "invalid_grade", "grade"))
    if spec.name == "patients":
        checks.append((~typed["sex"].isin(*SEXES), "invalid_sex", "sex"))
    if spec.name == "biomarkers":
        from .facts import UNREADABLE, biomarker_reading_expr
        reading = biomarker_reading_expr(typed["marker"], typed["result"], typed["method"])
        checks.append((reading == UNREADABLE, "unreadable_result", "result"))
    return [_reason(cond, reason, column) for cond, reason, column in checks]


_NULL_MARK = "\u0000null"


def _content_hash(columns: list[str]) -> Column:
    # xxhash64 skips nulls, so (a, null) and (null, a) would hash alike: mark them.
    return F.xxhash64(*[F.coalesce(_col(c).cast("string"), F.lit(_NULL_MARK)) for c in columns])


def _comparable(df: DataFrame, name: str) -> Column:
    """A raw column as it can be sorted and compared (maps cannot: as text)."""
    if "map<" in df.schema[name].dataType.simpleString():
        return _col(name).cast("string")
    return _col(name)


def validate(raw: DataFrame, table: str, cutoff, patient_status: DataFrame | None = None,
             patient_births: DataFrame | None = None, settings: ExtractSettings | None = None,
             names: Names | None = None) -> DataFrame:
    """Raw rows with their typed contract columns, their reason (null = keep) and its column.

    The bookkeeping columns are named by `names` (`names.reason`, `names.reason_column`,
    `names.typed(column)`). Exact duplicates carry the reason DUPLICATE. Keys seen twice
    with different content keep one deterministic row; the others go to quarantine.
    """
    spec = SOURCE_TABLES[table]
    settings = settings or DEFAULT_SETTINGS
    names = names or Names(raw.columns)
    raw_cols = list(raw.columns)
    # Text dates are taken apart once per row, in a projection of their own.
    parts = {c.name: names("date_parts_" + c.name) for c in spec.columns
             if c.type == "date" and needs_date_parts(raw, c.name)}
    with_parts = raw.select("*", *[date_parts(_text(_col(c))).alias(p) for c, p in parts.items()])
    typed = []
    for c in spec.columns:
        value = typed_column(raw, c.name, c.type, settings.timezone, parts.get(c.name))
        if c.name in ("dose_unit", "unit"):
            value = normalised_unit(_col(c.name))
        if c.name == "sex":
            value = F.upper(_text(_col(c.name)))
        typed.append(value.alias(names.typed(c.name)))
    df = with_parts.select("*", *typed).drop(*parts.values())

    # One sort serves both checks. Rows are grouped by their key (record_id,
    # patient_id, hospital_id) or, for tables without one, by a content hash, and
    # ordered by content: a row equal in every column to the one before it is an
    # exact duplicate (dropped, counted); a keyed row whose content differs from
    # the group's first row is a conflicting copy of the key (quarantined).
    key = KEYS.get(table)
    row_reason, content = names("row_reason"), names("hash")
    df = (df.withColumn(content, _content_hash(raw_cols))
          .withColumn(row_reason, F.coalesce(*row_reasons(df, spec, cutoff, names))))
    reasons = [F.col(row_reason)]
    group = F.col(names.typed(key)) if key else F.col(content)
    comparable = [_comparable(raw, c) for c in raw_cols]
    # Valid rows first: of a key's conflicting copies, a usable one is the one kept.
    order = Window.partitionBy(group).orderBy(F.col(row_reason).isNotNull(), content, *comparable)
    same_as_previous = F.row_number().over(order) > 1
    for c in comparable:
        same_as_previous = same_as_previous & c.eqNullSafe(F.lag(c).over(order))
    duplicate = names("duplicate")
    df = df.withColumn(duplicate, same_as_previous)
    if key:
        conflict = {"prescriptions": "conflicting_record_id", "patients": "duplicate_patient_id",
                    "hospitals": "duplicate_hospital_id"}[table]
        whole_group = order.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        first = names("first_of_key")
        df = df.withColumn(first, F.first(content).over(whole_group))
        reasons.append(_reason(F.col(names.typed(key)).isNotNull() & (F.col(content) != F.col(first)),
                               conflict, key))
    if table in PATIENT_TABLES and patient_status is not None:
        status = names("patient_status")
        df = df.join(patient_status.select(F.col("patient_id").alias(names.typed("patient_id")),
                                           F.col("__patient_status").alias(status)),
                     names.typed("patient_id"), "left")
        reasons.append(_reason(F.col(names.typed("patient_id")).isNotNull() & F.col(status).isNull(),
                               "orphan_patient_id", "patient_id"))
        reasons.append(_reason(F.col(status) == "quarantined", "patient_quarantined", "patient_id"))
    if table == "deaths" and patient_births is not None:
        birth = names("birth_date")
        df = df.join(patient_births.select(F.col("id_hash").alias(names.typed("id_hash")),
                                           F.col("__birth_date").alias(birth)),
                     names.typed("id_hash"), "left")
        reasons.append(_reason(F.col(names.typed("death_date")) < F.col(birth), "death_before_birth",
                               "death_date"))

    both = names("reason_and_column")
    df = df.withColumn(both, F.when(F.col(duplicate), F.lit(DUPLICATE)).otherwise(F.coalesce(*reasons)))
    return _split_reason(df, both, names)


def _split_reason(df: DataFrame, both: str, names: Names) -> DataFrame:
    value = F.col(both)
    return (df.withColumn(names.reason, F.substring_index(value, _SEP, 1))
            .withColumn(names.reason_column, F.when(F.instr(value, _SEP) > 0, F.substring_index(value, _SEP, -1)))
            .drop(both))


def bronze_frame(validated: DataFrame, raw_columns: list[str], table: str, names: Names) -> DataFrame:
    """Kept rows: contract columns typed, extra columns as read."""
    spec = SOURCE_TABLES[table]
    typed = [F.col(names.typed(c.name)).cast(c.spark_type).alias(c.name) for c in spec.columns]
    extra = [_col(c) for c in raw_columns if c not in spec.column_names]
    return validated.where(F.col(names.reason).isNull()).select(*typed, *extra)


def quarantine_names(raw_columns: typing.Sequence[str]) -> dict[str, str]:
    """Source column -> its name in quarantine: `source_<name>` for one named like an engine column."""
    engine = {c.lower() for c in QUARANTINE_COLUMNS}
    taken = engine | {c.lower() for c in raw_columns}
    out = {}
    for c in raw_columns:
        name = c
        if c.lower() in engine:
            name = f"source_{c}"
            while name.lower() in taken:
                name = f"source_{name}"
            taken.add(name.lower())
        out[c] = name
    return out


def quarantine_frame(validated: DataFrame, raw_columns: list[str], names: Names) -> DataFrame:
    """Rejected rows as they were written, every column as text, with the reason and its column."""
    renamed = quarantine_names(raw_columns)
    return (validated.where(F.col(names.reason).isNotNull() & ~F.col(names.reason).isin(DUPLICATE, ALREADY_LOADED))
            .select(F.col(names.reason).alias("reason"), F.col(names.reason_column).alias("reason_column"),
                    *[_col(c).cast("string").alias(renamed[c]) for c in raw_columns]))


@dataclasses.dataclass(frozen=True)
class ReasonCount:
    reason: str | None  # None: kept
    column: str | None
    n: int
    example: str | None  # a value of the column as written (the smallest)


def reason_summary(validated: DataFrame, table: str, names: Names) -> list[ReasonCount]:
    """Rows per (reason, column), with an example value of the column as written."""
    spec = SOURCE_TABLES[table]
    example = F.lit(None).cast("string")
    for c in spec.columns:
        example = F.when(F.col(names.reason_column) == c.name, _col(c.name).cast("string")).otherwise(example)
    rows = (validated.groupBy(names.reason, names.reason_column)
            .agg(F.count(F.lit(1)).alias("n"), F.min(example).alias("example")).collect())
    return [ReasonCount(r[0], r[1], r["n"], r["example"]) for r in rows]


def reason_counts(summary: typing.Iterable[ReasonCount]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for r in summary:
        counts[r.reason] = counts.get(r.reason, 0) + r.n
    return counts


def misread_message(table: str, summary: list[ReasonCount], max_share: float) -> str | None:
    """The line a misread table stops the run with, or None: one reason rejecting more than `max_share`
    of the table's rows (duplicates are no rejections, but rows read)."""
    rows = sum(r.n for r in summary)
    limit = fractions.Fraction(repr(float(max_share))) * rows
    by_reason: dict[str, list[ReasonCount]] = {}
    for r in summary:
        if r.reason not in (None, DUPLICATE, ALREADY_LOADED):
            by_reason.setdefault(r.reason, []).append(r)
    failed = [(sum(r.n for r in parts), reason, parts) for reason, parts in by_reason.items()]
    failed = [f for f in failed if f[0] > limit]
    if not failed:
        return None
    n, reason, parts = max(failed, key=lambda f: (f[0], f[1]))
    top = max(parts, key=lambda r: (r.n, r.column or ""))
    example = f"e.g. {top.example!r}" if top.example is not None else "e.g. an empty value"
    where = f"{table}.{top.column}" if top.column else table
    return (f"{where}: {100 * n / rows:.1f}% of {rows:,} rows rejected as {reason} ({example}); the extract looks "
            f"misread (threshold {100 * max_share:g}%, --max-rejected-share)")


def mark_already_loaded(validated: DataFrame, existing: DataFrame, table: str, names: Names) -> DataFrame:
    """`validated` with the reason of rows the lake holds already (incremental loads).

    A row that would be kept and equals a bronze row in every column (as typed)
    gets ALREADY_LOADED; for prescriptions, a kept row whose record_id bronze holds
    with other content gets conflicting_record_id. Other reasons stay.
    """
    spec = SOURCE_TABLES[table]
    columns = list(existing.columns)

    def as_bronze(name: str) -> Column:  # the value this load would write to bronze
        if name in spec.column_names:
            return F.col(names.typed(name)).cast(spec.column(name).spark_type)
        return _col(name) if name in validated.columns else F.lit(None)

    new, old = [names(f"n{i}") for i in range(len(columns))], [names(f"o{i}") for i in range(len(columns))]
    in_lake, known = names("in_lake"), names("known_id")
    df = validated.select("*", *[as_bronze(c).alias(n) for c, n in zip(columns, new)])
    rows = (existing.select(*[_col(c).alias(o) for c, o in zip(columns, old)]).distinct()
            .withColumn(in_lake, F.lit(True)))
    df = df.join(rows, [F.col(n).eqNullSafe(F.col(o)) for n, o in zip(new, old)], "left")
    kept = F.col(names.reason).isNull()
    both = F.when(kept & F.col(in_lake).isNotNull(), F.lit(ALREADY_LOADED))
    drop = new + old + [in_lake]
    if table == "prescriptions":
        ids = existing.select(F.col("record_id").alias(known)).distinct()
        df = df.join(ids, F.col(names.typed("record_id")) == F.col(known), "left")
        both = both.when(kept & F.col(known).isNotNull(), F.lit(f"conflicting_record_id{_SEP}record_id"))
        drop.append(known)
    current = F.when(F.col(names.reason_column).isNull(), F.col(names.reason)).otherwise(
        F.concat(F.col(names.reason), F.lit(_SEP), F.col(names.reason_column)))
    joined = names("reason_and_column")
    df = df.withColumn(joined, both.otherwise(current)).drop(*drop, names.reason, names.reason_column)
    return _split_reason(df, joined, names)


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
        # A quarantine table written before reason_column existed keeps its columns.
        quarantine = quarantine.drop(*[c for c in QUARANTINE_COLUMNS if c not in held.columns])
        quarantine = aligned_to(quarantine, _table_columns(held))
        quarantine = quarantine.join(held, [quarantine[c].eqNullSafe(held[c]) for c in held.columns], "left_anti")
        if quarantine.isEmpty():
            return
    lake.write(quarantine, "quarantine", table, mode="append")


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
                    progress(f"ingest {table}: optional table absent")
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
                progress(f"ingest {table}: {result.rows_read} read, {result.rows_kept} kept, "
                         f"{result.rows_quarantined} quarantined, {result.duplicates_removed} duplicates{merged}")
                results.append(result)
            progress(f"ingest: {len(results)} tables passed their checks")
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
