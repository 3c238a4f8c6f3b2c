"""The calendar dates an extract writes: text in its date and date-time forms, instants, wall clocks.

Spark SQL expressions only: no Python per row, and no dependence on Spark's session
time zone. An instant is dated in the extract's time zone, a wall-clock date-time
by its own calendar date.
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

_EPOCH_NTZ = "TIMESTAMP_NTZ'1970-01-01 00:00:00'"


def wall_clock(micros: Column) -> Column:
    """TIMESTAMP_NTZ of the wall clock that microseconds since 1970-01-01 00:00 count to."""
    return F.timestamp_add("MICROSECOND", micros, F.expr(_EPOCH_NTZ))


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
    by_pattern = F.when(norm.rlike(_YEAR_FIRST),
                        F.split(F.regexp_replace(norm, _YEAR_FIRST, "$1|$3|$4|$5|$6|$7|$8"), r"\|"))
    # Most of an extract is written 2019-03-05 or 2019-03-05 08:30:00: those are cut by
    # position, without the regular expressions, which cost most of ingest's time when
    # run on every row. The parts are the ones the pattern gives these forms.
    digits_removed = F.translate(text, "0123456789", "")
    iso_date = (F.length(text) == 10) & (digits_removed == "--") & (F.substring(text, 5, 1) == "-") \
        & (F.substring(text, 8, 1) == "-")
    iso_date_time = (F.length(text) == 19) & (digits_removed == "-- ::") & (F.substring(text, 5, 1) == "-") \
        & (F.substring(text, 8, 1) == "-") & (F.substring(text, 11, 1) == " ") \
        & (F.substring(text, 14, 1) == ":") & (F.substring(text, 17, 1) == ":")
    date_part = [F.substring(text, 1, 4), F.substring(text, 6, 2), F.substring(text, 9, 2)]
    clock_part = [F.substring(text, 12, 2), F.substring(text, 15, 2), F.substring(text, 18, 2)]
    empty = F.lit("")
    return (F.when(iso_date, F.array(*date_part, empty, empty, empty, empty))
            .when(iso_date_time, F.array(*date_part, *clock_part, empty))
            .otherwise(by_pattern))


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
    return F.to_date(F.convert_timezone(F.lit("UTC"), F.lit(timezone), wall_clock(F.unix_micros(c))))
