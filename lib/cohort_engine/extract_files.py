"""An extract's files, checked before Spark reads any: where each table is, in which encoding, of which types.

The run's choices are an `ExtractSettings`. Python reads the files here, never Spark:

* CSV is UTF-8 (with or without a byte-order mark) or GB18030/GBK. Every file is
  decoded whole, in chunks, by Python's strict decoders: with `encoding="auto"` a
  file that is valid UTF-8 is UTF-8, else one that is valid GB18030 is GB18030, else
  the run stops naming the file and its first bad line. Text is never read in an
  encoding it is not valid in.
* Parquet footers are read (pyarrow, footers only, every file of a folder): a column
  of a type the engine cannot read stops the run naming table, column and type.

What this finds is a `SourcePlan` per table, which `raw_tables` reads with Spark.
"""
from __future__ import annotations

import codecs
import dataclasses
import math
import zoneinfo
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .contract import SOURCE_TABLES
from .errors import ExtractMisreadError, IngestError

# -- the run's settings ------------------------------------------------------------

ENCODINGS = {"auto": "auto", "utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8",
             "gb18030": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "gb2312": "gb18030"}
ENCODING_NAMES = {"utf-8": "UTF-8", "gb18030": "GB18030"}  # also the Java charset Spark reads with


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
    name = ENCODING_NAMES[wanted]
    (_, (line, data)), = tried
    raise ExtractMisreadError(f"source file {path} is not {name} (the run's --encoding): line {line} holds "
                              f"bytes {_hex(data)} that {name} cannot decode")


_QUOTE, _LINE_BREAK = ord('"'), ord("\n")


def has_quoted_line_break(path: Path) -> bool:
    """Whether a CSV file holds a line break inside a quoted value (a record over several lines).

    A line break is inside quotes when an odd number of quote characters precede it
    (an escaped quote, `""`, adds two). In UTF-8 and GB18030 neither byte occurs
    inside a multi-byte character, so the bytes are counted without decoding them.
    Spark can split a file into tasks only when no record spans lines.
    """
    odd = False  # quotes so far, modulo 2
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            data = np.frombuffer(chunk, dtype=np.uint8)
            quotes = np.cumsum(data == _QUOTE, dtype=np.int64)
            breaks = np.flatnonzero(data == _LINE_BREAK)
            if breaks.size and np.any((quotes[breaks] + odd) % 2 == 1):
                return True
            odd = bool((int(quotes[-1]) + odd) % 2)
    return False


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


# -- locating the extract's tables ---------------------------------------------

@dataclasses.dataclass
class SourcePlan:
    """Where a table is and how to read it, checked before Spark reads anything."""
    table: str
    path: Path
    fmt: str  # csv or parquet
    encoding: str | None = None  # csv
    multiline: bool = False  # csv: a record spans lines, so each file is read whole by one task
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
        files = data_files(path)
        return SourcePlan(table, path, fmt, encoding=csv_encoding(table, files, settings.encoding),
                          multiline=any(has_quoted_line_break(f) for f in files))
    return SourcePlan(table, path, fmt, columns=parquet_columns(table, path))
