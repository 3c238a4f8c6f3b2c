"""Dates as hospital systems write them: the forms of a noisy extract, and the generator's reading of them.

A clean extract writes every date `YYYY-MM-DD`. A noisy one writes a share of the valid
dates of every table in another form that means the same calendar date in Asia/Shanghai
(params.DATE_FORMS), and adds copies of rows with an ambiguous day-first / month-first
date (`05/03/2019`, noise.py). `read_dates` is the generator's own reading of everything
it writes (the tests use it, and the pandas writer turns text into timestamps with it);
it is strict: a form it does not know, or a date that does not exist, reads as empty.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

STR = pa.string()
TIME_ZONE = "Asia/Shanghai"
UTC_OFFSET = "+08:00"

# The forms, by name (an example of each for 2019-03-05 at 08:30).
FORM_EXAMPLES = {
    "iso": "2019-03-05", "datetime": "2019-03-05 08:30:00", "iso_offset": "2019-03-05T08:30:00+08:00",
    "slash": "2019/03/05", "slash_unpadded": "2019/3/5", "dot": "2019.03.05", "compact": "20190305",
    "chinese": "2019年3月5日",
}
FORMS = tuple(FORM_EXAMPLES)
TIMED_FORMS = ("datetime", "iso_offset")

# Columns whose clock time is midnight when a date-time is written (a birth date, a registered
# death); the others get a daytime clock (07:00-20:59).
MIDNIGHT_COLUMNS = ("birth_date", "death_date")

_TWO = pa.array([f"{i:02d}" for i in range(60)], type=STR)
_ONE = pa.array([str(i) for i in range(60)], type=STR)


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def clock_seconds(rng: np.random.Generator, n: int, midnight: bool) -> np.ndarray:
    """Seconds after midnight of the clock time written with a date-time form."""
    if midnight:
        return np.zeros(n, dtype=np.int64)
    minute = rng.integers(7 * 60, 21 * 60, n)
    second = np.where(rng.random(n) < 0.7, 0, rng.integers(0, 60, n))
    return minute * 60 + second


def _clock_text(seconds: np.ndarray) -> pa.Array:
    s = np.asarray(seconds, dtype=np.int64)
    return _join(_TWO.take(pa.array(s // 3600)), ":", _TWO.take(pa.array(s // 60 % 60)), ":",
                 _TWO.take(pa.array(s % 60)))


def format_dates(iso: pa.Array, form: str, seconds: np.ndarray | None = None) -> pa.Array:
    """ISO dates (`YYYY-MM-DD`, no nulls) written in `form`; `seconds`: the clock of the timed forms."""
    if form == "iso":
        return iso
    if form == "datetime":
        return _join(iso, " ", _clock_text(seconds))
    if form == "iso_offset":
        return _join(iso, "T", _clock_text(seconds), UTC_OFFSET)
    if form == "compact":
        return pc.replace_substring(iso, "-", "")
    y = pc.utf8_slice_codeunits(iso, 0, 4)
    m = pc.utf8_slice_codeunits(iso, 5, 7)
    d = pc.utf8_slice_codeunits(iso, 8, 10)
    if form == "slash":
        return _join(y, "/", m, "/", d)
    m1 = pc.utf8_ltrim(m, characters="0")
    d1 = pc.utf8_ltrim(d, characters="0")
    if form == "slash_unpadded":
        return _join(y, "/", m1, "/", d1)
    if form == "dot":
        return _join(y, ".", m, ".", d)
    if form == "chinese":
        return _join(y, "年", m1, "月", d1, "日")
    raise ValueError(f"unknown date form {form!r}")


def write_forms(iso: pa.Array, rng: np.random.Generator, shares: dict, midnight: bool) -> pa.Array:
    """A date column with a share of its (valid, ISO) values written in the other forms.

    Each row is drawn once: form k with probability shares[k], else left as it is. Null
    values stay null. Draws: one uniform per row, then the clock of the timed rows.
    """
    iso = (iso.combine_chunks() if isinstance(iso, pa.ChunkedArray) else iso).cast(STR)
    n = len(iso)
    u = rng.random(n)
    names = [f for f in FORMS if f in shares]
    edges = np.cumsum([shares[f] for f in names])
    which = np.searchsorted(edges, u, side="right")          # len(names) = keep
    if iso.null_count:
        which[np.asarray(iso.is_null().to_numpy(zero_copy_only=False))] = len(names)
    timed = np.isin(which, [names.index(f) for f in TIMED_FORMS if f in names])
    seconds = np.zeros(n, dtype=np.int64)
    seconds[timed] = clock_seconds(rng, int(timed.sum()), midnight)
    pieces, order = [], []
    for k, form in enumerate(names):
        rows = np.flatnonzero(which == k)
        if len(rows):
            pieces.append(format_dates(iso.take(pa.array(rows)), form, seconds[rows]).cast(STR))
            order.append(rows)
    if not pieces:
        return iso
    rows = np.concatenate(order)
    replaced = pa.concat_arrays(pieces).take(pa.array(np.argsort(rows, kind="stable")))
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(iso, pa.array(mask), replaced)


def ambiguous_dates(iso: pa.Array, day_first: np.ndarray) -> pa.Array:
    """ISO dates written `DD/MM/YYYY` (day_first) or `MM/DD/YYYY`: both readings are dates when the day
    is 12 or less (the caller picks such dates with day != month, so the two readings differ)."""
    y = pc.utf8_slice_codeunits(iso, 0, 4)
    m = pc.utf8_slice_codeunits(iso, 5, 7)
    d = pc.utf8_slice_codeunits(iso, 8, 10)
    first = pc.if_else(pa.array(day_first), d, m)
    second = pc.if_else(pa.array(day_first), m, d)
    return _join(first, "/", second, "/", y)


def is_ambiguous_candidate(iso: pa.Array, rows: np.ndarray) -> np.ndarray:
    """For each of `rows`: does its ISO date read as two different dates when written day-first or
    month-first (day 12 or less, day != month)?"""
    if not len(rows):
        return np.zeros(0, dtype=bool)
    sub = iso.take(pa.array(rows, type=pa.int64()))
    ok = np.asarray(pc.match_substring_regex(sub, r"^\d{4}-\d{2}-\d{2}$").fill_null(False)
                    .to_numpy(zero_copy_only=False))
    out = np.zeros(len(rows), dtype=bool)
    if ok.any():
        good = sub.filter(pa.array(ok))
        m = np.asarray(pc.cast(pc.utf8_slice_codeunits(good, 5, 7), pa.int64()))
        d = np.asarray(pc.cast(pc.utf8_slice_codeunits(good, 8, 10), pa.int64()))
        out[ok] = (d <= 12) & (d != m)
    return out


def ambiguous_candidates(iso: pa.Array) -> np.ndarray:
    """All rows whose ISO date reads as two different dates written day-first or month-first."""
    iso = iso.combine_chunks() if isinstance(iso, pa.ChunkedArray) else iso
    rows = np.arange(len(iso))
    return rows[is_ambiguous_candidate(iso, rows)]


AMBIGUOUS_PATTERN = r"^\d{2}/\d{2}/\d{4}$"       # the injected ambiguous copies
_YEAR_LAST = re.compile(r"^(\d{1,2})([-/.])(\d{1,2})\2(\d{4})$")


def _is_date(y: int, m: int, d: int) -> bool:
    try:
        dt.date(y, m, d)
    except ValueError:
        return False
    return True


def is_ambiguous_text(text: str) -> bool:
    """The source contract's ambiguous date: year last, day-first or month-first (`05/03/2019`,
    `31-12-2019`), and at least one of the two readings is a date (`20-20-2020` is none: unparseable)."""
    found = _YEAR_LAST.match(text.strip())
    if not found:
        return False
    a, b, y = int(found.group(1)), int(found.group(3)), int(found.group(4))
    return _is_date(y, b, a) or _is_date(y, a, b)

# The generator's reading of its own forms: (pattern, has clock). Named groups y, m, d (H, M, S).
_READ = (
    (r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})$", False),
    (r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2}) (?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})$", True),
    (r"^(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})T(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})\+08:00$", True),
    (r"^(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})$", False),
    (r"^(?P<y>\d{4})\.(?P<m>\d{2})\.(?P<d>\d{2})$", False),
    (r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$", False),
    (r"^(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日$", False),
)


def read_dates(values) -> tuple[np.ndarray, np.ndarray]:
    """(calendar day as datetime64[D], NaT when the text is no date of a known form; clock seconds).

    Knows exactly the forms of FORM_EXAMPLES (a date-time's calendar date is its written
    date: the offset is always +08:00, Asia/Shanghai). Ambiguous `05/03/2019`, the bad date
    texts and impossible dates (`2019/02/30`) read as NaT.
    """
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=STR,
                                                                                  from_pandas=True)
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = arr.cast(STR)
    n = len(arr)
    y = np.full(n, -1, dtype=np.int64)
    m = np.zeros(n, dtype=np.int64)
    d = np.zeros(n, dtype=np.int64)
    secs = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    for pattern, timed in _READ:
        if not len(todo):
            break
        sub = arr.take(pa.array(todo))
        hit = np.asarray(pc.match_substring_regex(sub, pattern).fill_null(False).to_numpy(zero_copy_only=False))
        rows = todo[hit]
        if len(rows):
            got = pc.extract_regex(sub.filter(pa.array(hit)), pattern)
            y[rows] = np.asarray(pc.cast(got.field("y"), pa.int64()))
            m[rows] = np.asarray(pc.cast(got.field("m"), pa.int64()))
            d[rows] = np.asarray(pc.cast(got.field("d"), pa.int64()))
            if timed:
                secs[rows] = (np.asarray(pc.cast(got.field("H"), pa.int64())) * 3600
                              + np.asarray(pc.cast(got.field("M"), pa.int64())) * 60
                              + np.asarray(pc.cast(got.field("S"), pa.int64())))
        todo = todo[~hit]
    ok = (y >= 0) & (m >= 1) & (m <= 12) & (d >= 1)
    month = np.where(ok, (y - 1970) * 12 + m - 1, 0).astype("datetime64[M]")
    length = ((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64)
    ok &= d <= length
    ok &= secs < 86400
    days = np.where(ok, month.astype("datetime64[D]").astype(np.int64) + d - 1, 0).astype("datetime64[D]")
    days[~ok] = np.datetime64("NaT")
    return days, np.where(ok, secs, 0)


def to_iso(values) -> np.ndarray:
    """Each value as `YYYY-MM-DD` (object array), None where read_dates reads no date."""
    days, _ = read_dates(values)
    out = np.asarray(days.astype(str), dtype=object)
    out[np.isnat(days)] = None
    return out
