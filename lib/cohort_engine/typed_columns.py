"""A raw column's value as the contract types it: text, date, number, whole number, yes/no, unit.

A value that does not parse is null; `validation` tells an unparsed value from an
empty one and names the reason.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .date_forms import date_from_parts, date_from_text, date_of_instant
from .extract_files import DEFAULT_SETTINGS
from .raw_tables import column_named

# Full-width forms and micro signs that units are written with.
_UNIT_FROM = "ＭＧＫＵＬＤ／％µμ²"
_UNIT_TO = "mgkuld/%uu2"
_TRUE = ("true", "t", "1", "yes", "y", "是")
_FALSE = ("false", "f", "0", "no", "n", "否")


def _is_type(df: DataFrame, name: str, spark_type: str) -> bool:
    return df.schema[name].dataType.simpleString() == spark_type


def trimmed_text(c: Column) -> Column:
    """A value as text without surrounding blanks; null when nothing is left."""
    return F.nullif(F.trim(c.cast("string")), F.lit(""))


def needs_date_parts(df: DataFrame, name: str) -> bool:
    """Whether a date column is text (dated through `date_parts`) rather than a date or timestamp."""
    return not any(_is_type(df, name, t) for t in ("date", "timestamp_ntz", "timestamp"))


def typed_column(df: DataFrame, name: str, kind: str, timezone: str = DEFAULT_SETTINGS.timezone,
                 parts: str | None = None) -> Column:
    """The contract-typed value of a raw column (null when it does not parse).

    parts: for a text date column, the name of a column holding its `date_parts`.
    """
    c = column_named(name)
    if kind == "str":
        return trimmed_text(c)
    if kind == "date":
        if _is_type(df, name, "date"):
            return c
        if _is_type(df, name, "timestamp_ntz"):  # a wall clock: its own date
            return F.to_date(c)
        if _is_type(df, name, "timestamp"):  # an instant: its date in the extract's zone
            return date_of_instant(c, timezone)
        return date_from_parts(column_named(parts), timezone) if parts else date_from_text(trimmed_text(c), timezone)
    if kind == "float":
        value = c.cast("double") if _is_type(df, name, "double") else trimmed_text(c).try_cast("double")
        # 'NaN' and 'Infinity' cast to doubles, but no dose or lab value is either.
        return F.when(~F.isnan(value) & (F.abs(value) != F.lit(float("inf"))), value)
    if kind == "int":
        if _is_type(df, name, "int"):
            return c
        value = trimmed_text(c).try_cast("double")
        return F.when(value == F.floor(value), value.try_cast("int"))  # 2.5 is no grade
    if kind == "bool":
        if _is_type(df, name, "boolean"):
            return c
        t = F.lower(trimmed_text(c))
        return F.when(t.isin(*_TRUE), True).when(t.isin(*_FALSE), False)
    raise ValueError(f"unknown contract type {kind!r}")  # pragma: no cover


def normalised_unit(c: Column) -> Column:
    # Full-width forms first: lower() would turn 'ＭＧ' into 'ｍｇ', which the table does not hold.
    return F.nullif(F.regexp_replace(F.lower(F.translate(F.trim(c), _UNIT_FROM, _UNIT_TO)), r"\s+", ""),
                    F.lit(""))
