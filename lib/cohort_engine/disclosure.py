"""Disclosure control (study rules §9): the one gate between exact numbers and an output.

Every table written under `<out>` leaves through `publish.publish`, which applies
`safe_frame` here once for both its CSV and the report; every risk table under a figure
goes through `risk_table_display`, and `audit_output_dir` checks the finished directory.

Rules, with `min_cell` = 5 by default:
- a count from 1 to min_cell − 1 is shown as "<5" (`small_text(min_cell)`);
- zero stays 0: a zero reveals no one (`keep_zero=False` shows it as "<5" too);
- a cell that would give a suppressed count away is withheld as "*" (MASKED):
  * the statistics beside a suppressed count (its percent, and whatever the caller
    names in `dependents`);
  * within a set of categories that add up to a known total (`partition_by`), more
    counts are withheld, the next smallest non-zero first, until no suppressed count
    can be worked out from the total (each "<5" is known to be 1–4 and each "*" at
    least 5; with one suppressed cell it is the next smallest that goes) and the withheld
    cells together hold 0 or at least min_cell (1 + 2 would show 3 in none of the others);
  * with `total_column`, a count whose complement (total − count) is 1–4 is withheld,
    since the complement would name those few patients;
- no identifier column (patient_id, id_hash, record_id, …), no birth date and no exact
  date: a frame with such a column, a date-typed column or a cell holding an ISO date
  or a patient-id-looking string is refused with DisclosureError naming the column.
  Dates of the study itself (cut-off, study period) can be allowed by the caller.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import html.parser
import json
import re
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .errors import DisclosureError

MIN_CELL = 5
MASKED = "*"
POOLED = "(others, pooled)"

IDENTIFIER_COLUMNS = re.compile(
    r"^(patient[ _]?(id|name)|person[ _]?id|subject[ _]?id|id[ _]?hash|record[ _]?id|mrn"
    r"|medical[ _]record[ _]no|id[ _]?number|national[ _]id)$", re.IGNORECASE)
DATE_COLUMNS = re.compile(r"(date|^dob$|birth|_dt$|datetime|timestamp)", re.IGNORECASE)
COUNT_COLUMNS = re.compile(r"^(n|n_.+|.+_n|count|.+_count|events|.+_events|at_risk|patients)$", re.IGNORECASE)
DATE_PATTERNS = (re.compile(r"(?<!\d)(1[89]|20)\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?!\d)"),
                 re.compile(r"(?<!\d)(1[89]|20)\d\d/(0?[1-9]|1[0-2])/(0?[1-9]|[12]\d|3[01])(?!\d)"),
                 # 2021年3月15日, as Chinese free text (an unmatched drug name, say) writes a date
                 re.compile(r"(?<!\d)(1[89]|20)\d\d年(0?[1-9]|1[0-2])月(0?[1-9]|[12]\d|3[01])[日号]"),
                 # 15.03.2021 and 15/03/2021
                 re.compile(r"(?<![\d.])(0?[1-9]|[12]\d|3[01])[./](0?[1-9]|1[0-2])[./](1[89]|20)\d\d(?![\d.])"))
ID_PATTERNS = (re.compile(r"\bP\d{6,}\b"),)
AUDITED_SUFFIXES = (".csv", ".html", ".htm", ".json", ".svg")


def small_text(min_cell: int = MIN_CELL) -> str:
    return f"<{min_cell}"


def footnote(min_cell: int = MIN_CELL) -> str:
    """The legend to print under a suppressed table."""
    return (f"{small_text(min_cell)}: a count from 1 to {min_cell - 1}. {MASKED}: withheld so that a small "
            "count cannot be worked out from the others. 0 is shown as 0.")


# -- Refusing identifying columns ------------------------------------------------------------

def _date_strings(allowed_dates: Iterable) -> set[str]:
    return {d.isoformat() if isinstance(d, (dt.date, dt.datetime)) else str(d) for d in allowed_dates}


def _strip_allowed(text: str, allowed: set[str]) -> str:
    for date in allowed:
        text = text.replace(date, "")
    return text


def find_dates(text: str, allowed_dates: Iterable = (), patterns=DATE_PATTERNS) -> int:
    """How many date-looking strings `text` holds, not counting the allowed dates."""
    text = _strip_allowed(text, _date_strings(allowed_dates))
    return sum(len(p.findall(text)) for p in patterns)


def find_identifiers(text: str, patterns=ID_PATTERNS) -> int:
    return sum(len(p.findall(text)) for p in patterns)


def check_frame(df: pd.DataFrame, *, allowed_dates: Iterable = (), id_patterns=ID_PATTERNS,
                date_patterns=DATE_PATTERNS) -> None:
    """Raise DisclosureError for an identifier or date column, or a cell holding a date or an id."""
    allowed_dates = _date_strings(allowed_dates)
    for col in df.columns:
        name = str(col)
        if IDENTIFIER_COLUMNS.match(name):
            raise DisclosureError(f"column {name!r} is a patient identifier and may not be written")
        if DATE_COLUMNS.search(name):
            raise DisclosureError(f"column {name!r} holds dates and may not be written")
        series = df[col]
        if pd.api.types.is_datetime64_any_dtype(series) or series.map(
                lambda v: isinstance(v, (dt.date, dt.datetime, pd.Timestamp))).any():
            raise DisclosureError(f"column {name!r} holds dates and may not be written")
        if series.dtype == object or pd.api.types.is_string_dtype(series):
            text = series.dropna().astype(str)
            if text.map(lambda v: find_dates(v, allowed_dates, date_patterns) > 0).any():
                raise DisclosureError(f"column {name!r} holds an exact date and may not be written")
            if text.map(lambda v: find_identifiers(v, id_patterns) > 0).any():
                raise DisclosureError(f"column {name!r} holds a patient identifier and may not be written")


# -- Suppressing counts ------------------------------------------------------------------------

def _pinned(values: np.ndarray, small: np.ndarray, hidden: np.ndarray, min_cell: int, small_floor: int) -> bool:
    """Could someone knowing the hidden cells' total (the set's total minus its shown cells) work
    out one of them exactly, or is that total itself 1 to min_cell − 1? Each hidden small cell
    lies in [small_floor, min_cell − 1], each masked cell in [min_cell, total]; a cell is
    pinned when the others' bounds leave it one value."""
    total = values[hidden].sum()
    if 1 <= total < min_cell:
        return True
    low = np.where(small[hidden], small_floor, min_cell)
    high = np.where(small[hidden], min_cell - 1, total)
    for i in range(hidden.sum()):
        least = max(low[i], total - (high.sum() - high[i]))
        most = min(high[i], total - (low.sum() - low[i]))
        if least >= most:
            return True
    return False


def complementary_suppression(values, small, masked=None, min_cell: int = MIN_CELL,
                              keep_zero: bool = True, spared=None) -> np.ndarray:
    """Which counts of one set of categories (adding up to a known total) to withhold: `masked`
    and more, the next smallest non-zero count first (`spared` ones only when no other is left),
    until no hidden count, nor their sum, can be worked out as 1 to min_cell − 1. `small`: the
    counts shown as "<5"; `masked`: those already withheld."""
    values = np.asarray(values, dtype=float)
    small = np.asarray(small, dtype=bool)
    masked = np.zeros(len(values), dtype=bool) if masked is None else np.asarray(masked, dtype=bool).copy()
    floor = 1 if keep_zero else 0
    # A cell withheld for another reason (its complement, say) must not be recoverable either.
    while (small | masked).any() and _pinned(values, small, small | masked, min_cell, floor):
        candidates = np.flatnonzero(~small & ~masked & (values > 0) & ~np.isnan(values))
        if candidates.size == 0:
            break
        if spared is not None and (~np.asarray(spared, dtype=bool)[candidates]).any():
            candidates = candidates[~np.asarray(spared, dtype=bool)[candidates]]
        masked[candidates[np.argmin(values[candidates])]] = True
    return masked


def pool_cross_table_rows(cells: pd.DataFrame, *, min_cell: int = MIN_CELL, pooled_label: str = POOLED
                          ) -> pd.DataFrame:
    """A cross-table (row, column, n) whose rows holding a count of 1 to min_cell − 1 are pooled.

    The margins of both dimensions are public elsewhere (Table 1, the patterns sections),
    so suppressing cells one set at a time cannot protect a cross-table: a row with one
    category is fixed by its margin, and its column then gives the others away. Instead
    such rows are added up into one row, `pooled_label`, together with the next smallest
    rows until every pooled count is 0 or at least min_cell. No published cell is then
    small (but for a pooled row that had to take every row: its cells are the column
    margins, small only where a margin is), and a pooled row's counts cannot be split
    back into its rows: several rows share one set of sums.
    """
    if cells.empty:
        return cells.copy()
    grid = cells.pivot_table(index="row", columns="column", values="n", aggfunc="sum", fill_value=0)
    small = ((grid > 0) & (grid < min_cell)).any(axis=1)
    pooled = list(grid.index[small])
    if pooled:
        candidates = grid.drop(index=pooled).sum(axis=1).sort_values(kind="stable")
        while True:
            together = grid.loc[pooled].sum()
            if ((together == 0) | (together >= min_cell)).all() or candidates.empty:
                break
            pooled.append(candidates.index[0])
            candidates = candidates.iloc[1:]
        grid = pd.concat([grid.drop(index=pooled), grid.loc[pooled].sum().to_frame(pooled_label).T])
    out = grid.stack().rename("n").reset_index()
    out.columns = ["row", "column", "n"]
    return out[out["n"] > 0].reset_index(drop=True)


def _default_dependents(df: pd.DataFrame, counts: list[str]) -> dict[str, list[str]]:
    out = {}
    for c in counts:
        names = [f"{c}_percent", f"{c}_pct"] + (["percent", "pct"] if c == "n" else [])
        out[c] = [n for n in names if n in df.columns]
    return out


def suppress_counts(df: pd.DataFrame, count_columns: Iterable[str] = (), *, min_cell: int = MIN_CELL,
                    keep_zero: bool = True, dependents: Mapping[str, Iterable[str]] | None = None,
                    partition_by: Iterable[str] | None = None, total_column: str | None = None,
                    complements: Mapping[str, str | Iterable[str]] | None = None,
                    partitions: Iterable[Iterable[str]] = (), spare: str | None = None) -> pd.DataFrame:
    """The frame with count columns (and the cells that would reveal them) as display values.

    count_columns: besides these, every column whose name looks like a count (COUNT_COLUMNS).
    dependents: {count column: columns withheld with it}; by default `<c>_percent`,
      `<c>_pct`, and for `n` also `percent` and `pct`.
    partition_by: columns whose rows form a set of categories of one total (a Table 1
      variable, say); [] for the whole frame as one set; None for no such set.
    total_column: a column holding each row's total, for the complement rule.
    partitions: more sets of categories that cross the first (the rows and the columns of a
      cross-table, each adding up to a margin shown elsewhere); a row whose key is empty
      belongs to none. All sets are suppressed over again until no cell changes.
    complements: {count column: the column (or columns) holding its own total}, where the counts of a
      row have different totals (patients tested of the cohort, patients with a toxicity
      of those tested); `total_column` is the same for every count column at once.
    spare: a boolean column: its True rows are complements of last resort. Shown counts stay
    ints; suppressed ones become SMALL ("<5") or MASKED ("*").
    """
    if min_cell < 1:
        raise ValueError("min_cell must be at least 1")
    counts = list(dict.fromkeys([*count_columns, *(c for c in df.columns if COUNT_COLUMNS.match(str(c)))]))
    missing = [c for c in counts if c not in df.columns]
    if missing:
        raise KeyError(f"no column {missing[0]!r} to suppress")
    deps = _default_dependents(df, counts)
    deps.update({c: list(v) for c, v in (dependents or {}).items()})
    out = df.copy().reset_index(drop=True)
    # Cells already withheld upstream (a "<5" or "*" from suppress_attrition, say) stay as they are.
    preset = {c: out[c].isin([small_text(min_cell), MASKED]).to_numpy() for c in counts}
    numbers = {c: pd.to_numeric(out[c], errors="coerce").to_numpy(dtype=float) for c in counts}
    for c, v in numbers.items():
        if (~np.isnan(v) & (v != np.round(v))).any():
            raise DisclosureError(f"column {c!r} is treated as a count but holds non-whole numbers")
    floor = 1 if keep_zero else 0
    small = {c: (v >= floor) & (v < min_cell) for c, v in numbers.items()}
    masked = {c: np.zeros(len(out), dtype=bool) for c in counts}
    pairs = {c: [total_column] for c in counts if c != total_column} if total_column is not None else {}
    pairs.update({c: [t] if isinstance(t, str) else list(t) for c, t in (complements or {}).items()})
    for c, totals_of_c in pairs.items():
        for total in totals_of_c:
            totals = pd.to_numeric(out[total], errors="coerce").to_numpy(dtype=float)
            # Either way round: a sensitivity analysis with 3 patients more than the main one names them too.
            complement = np.abs(totals - numbers[c])
            masked[c] |= (complement >= 1) & (complement < min_cell) & ~small[c]
    group_sets = []
    if partition_by is not None:
        keys = list(partition_by)
        group_sets.append(list(out.groupby(keys, sort=False, dropna=False).indices.values()) if keys
                          else [np.arange(len(out))])
    for keys in partitions:
        group_sets.append(list(out.groupby(list(keys), sort=False, dropna=True).indices.values()))
    spare_rows = None if spare is None else out[spare].fillna(False).astype(bool).to_numpy()  # taken last
    for c in counts:
        changed = True
        while changed:  # a cell withheld in one set can expose another in a crossing set
            before = masked[c].copy()
            for groups in group_sets:
                for rows in groups:
                    masked[c][rows] = complementary_suppression(numbers[c][rows], small[c][rows], masked[c][rows],
                                                                min_cell, keep_zero,
                                                                None if spare_rows is None else spare_rows[rows])
            changed = len(group_sets) > 1 and not np.array_equal(before, masked[c])
    for c in counts:
        shown = [token if p else MASKED if m else small_text(min_cell) if s else (None if np.isnan(v) else int(v))
                 for v, s, m, p, token in zip(numbers[c], small[c], masked[c], preset[c], out[c])]
        out[c] = pd.Series(shown, index=out.index, dtype=object)
        withheld = small[c] | masked[c] | preset[c]
        for d in deps.get(c, []):
            out[d] = out[d].astype(object)
            out.loc[withheld, d] = MASKED
    return out


def suppress_attrition(attrition: pd.DataFrame, *, min_cell: int = MIN_CELL, keep_zero: bool = True) -> pd.DataFrame:
    """An attrition table (step, criterion, n_remaining, n_excluded) fit to be shown.

    Each exclusion is the difference of two consecutive remaining counts, so a small
    exclusion cannot be hidden cell by cell: the remaining count after it is withheld
    too. The exclusions between two shown remaining counts then add up to a known
    total, and within each such run the complementary rule withholds more until no
    hidden count can be worked out; where a run cannot be made safe, it is merged with
    the next one. The final count (the cohort) is shown unless it is itself small.
    """
    a = attrition.sort_values("step").reset_index(drop=True)
    remaining = pd.to_numeric(a["n_remaining"]).to_numpy(dtype=float)
    excluded = pd.to_numeric(a["n_excluded"]).to_numpy(dtype=float)
    floor = 1 if keep_zero else 0
    small_rem = (remaining >= floor) & (remaining < min_cell)
    small_ex = (excluded >= floor) & (excluded < min_cell)
    last = len(a) - 1
    shown_rem = ~small_rem
    shown_rem[1:last] &= ~small_ex[1:last]
    while True:
        masked_ex, masked_final = np.zeros(len(a), dtype=bool), False
        bounds = [i for i in range(len(a)) if shown_rem[i]]
        runs = list(zip(bounds, bounds[1:]))
        if not bounds or bounds[-1] != last:  # an open end: the final count is one of the run's parts
            runs.append(((bounds[-1] if bounds else -1), None))
        unsafe = None
        for start, end in runs:
            idx = np.arange(start + 1, (last if end is None else end) + 1)
            values, small = excluded[idx], small_ex[idx]
            if end is None:
                values, small = np.append(values, remaining[last]), np.append(small, small_rem[last])
            masked = complementary_suppression(values, small, None, min_cell, keep_zero)
            if small.any() and _pinned(values, small, small | masked, min_cell, floor):
                unsafe = (start, end)
                break
            masked_ex[idx] = masked[:len(idx)]
            masked_final = masked_final or (end is None and bool(masked[-1]))
        if unsafe is None:
            break
        start, end = unsafe
        # Merge the run with a neighbour: forward, unless that would hide the cohort count.
        if end is not None and end != last:
            shown_rem[end] = False
        elif start > 0:
            shown_rem[start] = False
        elif end is not None:
            shown_rem[end] = False
        else:
            break  # nothing left to hide but the total itself
    shown_rem[last] &= not masked_final
    out = a.copy()
    out["n_remaining"] = pd.Series([int(v) if keep else (small_text(min_cell) if sm else MASKED)
                                    for v, keep, sm in zip(remaining, shown_rem, small_rem)], dtype=object)
    out["n_excluded"] = pd.Series([small_text(min_cell) if sm else MASKED if m else int(v)
                                   for v, sm, m in zip(excluded, small_ex, masked_ex)], dtype=object)
    return out


def safe_frame(df: pd.DataFrame, count_columns: Iterable[str] = (), *, min_cell: int = MIN_CELL,
               keep_zero: bool = True, dependents: Mapping[str, Iterable[str]] | None = None,
               partition_by: Iterable[str] | None = None, total_column: str | None = None,
               complements: Mapping[str, str | Iterable[str]] | None = None, partitions: Iterable[Iterable[str]] = (),
               allowed_dates: Iterable = (), id_patterns=ID_PATTERNS, spare: str | None = None) -> pd.DataFrame:
    """Refuse identifying columns (DisclosureError), then suppress counts: the frame fit to be shown."""
    check_frame(df, allowed_dates=allowed_dates, id_patterns=id_patterns)
    return suppress_counts(df, count_columns, min_cell=min_cell, keep_zero=keep_zero, dependents=dependents,
                           partition_by=partition_by, total_column=total_column, complements=complements,
                           partitions=partitions, spare=spare)


def risk_table_display(risk: pd.DataFrame, *, min_cell: int = MIN_CELL, at_risk_col: str = "at_risk",
                       keep_zero: bool = True) -> pd.DataFrame:
    """Numbers at risk for a figure: the same suppression, the counts as text ("157", "<5", "0")."""
    shown = suppress_counts(risk, [at_risk_col], min_cell=min_cell, keep_zero=keep_zero)
    shown[at_risk_col] = shown[at_risk_col].map(lambda v: "" if v is None else str(v))
    return shown


# -- Auditing an output directory ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding. `detail` never repeats the value found, so it can go to a log."""
    path: str
    kind: str  # "small_count" | "date" | "identifier" | "identifier_column" | "date_column" | "unreadable"
    location: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path} [{self.location}] {self.kind}: {self.detail}"


def _is_small(value, min_cell: int) -> bool:
    text = str(value).strip().replace(",", "")
    if not re.fullmatch(r"-?\d+(\.0+)?", text):
        return False
    return 1 <= float(text) < min_cell


def _scan_text(path: str, where: str, text: str, allowed: Iterable, id_patterns, date_patterns) -> list[Problem]:
    problems = []
    if find_dates(text, allowed, date_patterns):
        problems.append(Problem(path, "date", where, "an exact date"))
    if find_identifiers(text, id_patterns):
        problems.append(Problem(path, "identifier", where, "a patient-identifier-like string"))
    return problems


def _audit_table(path: str, table: pd.DataFrame, where: str, min_cell: int, allowed, id_patterns,
                 date_patterns) -> list[Problem]:
    problems = []
    for col in table.columns:
        name = str(col)
        if IDENTIFIER_COLUMNS.match(name):
            problems.append(Problem(path, "identifier_column", f"{where} column {name}", "an identifier column"))
        elif DATE_COLUMNS.search(name):
            problems.append(Problem(path, "date_column", f"{where} column {name}", "a date column"))
        for i, value in enumerate(table[col]):
            at = f"{where} row {i + 1} column {name}"
            if COUNT_COLUMNS.match(name) and _is_small(value, min_cell):
                problems.append(Problem(path, "small_count", at, f"a count below {min_cell}"))
            problems += _scan_text(path, at, str(value), allowed, id_patterns, date_patterns)
    return problems


class _Tables(html.parser.HTMLParser):
    """The <table> elements of an HTML page as lists of rows of cell text."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _audit_html(path: str, text: str, min_cell, allowed, id_patterns, date_patterns) -> list[Problem]:
    text = re.sub(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+", "", text)  # embedded figures are not text
    parser = _Tables()
    parser.feed(text)
    problems = []
    for k, rows in enumerate(parser.tables, start=1):
        if rows and rows[0]:
            width = len(rows[0])
            body = [(r + [""] * width)[:width] for r in rows[1:]]
            frame = pd.DataFrame(body, columns=rows[0])
            problems += _audit_table(path, frame, f"table {k}", min_cell, allowed, id_patterns, date_patterns)
    found = {p.kind for p in problems}
    page = _scan_text(path, "page text", re.sub(r"<[^>]+>", " ", text), allowed, id_patterns, date_patterns)
    return problems + [p for p in page if p.kind not in found]


def _audit_json(path: str, value, min_cell, allowed, id_patterns, date_patterns, where="$") -> list[Problem]:
    problems = []
    if isinstance(value, dict):
        for key, item in value.items():
            at = f"{where}.{key}"
            problems += _scan_text(path, at, str(key), allowed, id_patterns, date_patterns)
            if COUNT_COLUMNS.match(str(key)) and isinstance(item, (int, float)) and not isinstance(item, bool) \
                    and _is_small(item, min_cell):
                problems.append(Problem(path, "small_count", at, f"a count below {min_cell}"))
            problems += _audit_json(path, item, min_cell, allowed, id_patterns, date_patterns, at)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            problems += _audit_json(path, item, min_cell, allowed, id_patterns, date_patterns, f"{where}[{i}]")
    elif isinstance(value, str):
        problems += _scan_text(path, where, value, allowed, id_patterns, date_patterns)
    return problems


def audit_file(path, *, min_cell: int = MIN_CELL, allowed_dates: Iterable = (), id_patterns=ID_PATTERNS,
               date_patterns=DATE_PATTERNS) -> list[Problem]:
    """Problems of one CSV, HTML, JSON or SVG file (SVG: dates and identifiers only)."""
    path = Path(path)
    name = str(path)
    allowed = _date_strings(allowed_dates)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(name, "unreadable", "file", type(exc).__name__)]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            return [Problem(name, "unreadable", "file", type(exc).__name__)]
        return _audit_table(name, table, "csv", min_cell, allowed, id_patterns, date_patterns)
    if suffix in (".html", ".htm"):
        return _audit_html(name, text, min_cell, allowed, id_patterns, date_patterns)
    if suffix == ".json":
        try:
            return _audit_json(name, json.loads(text), min_cell, allowed, id_patterns, date_patterns)
        except json.JSONDecodeError as exc:
            return [Problem(name, "unreadable", "file", type(exc).__name__)]
    return _scan_text(name, "file", text, allowed, id_patterns, date_patterns)


def audit_output_dir(path, *, min_cell: int = MIN_CELL, allowed_dates: Iterable = (), id_patterns=ID_PATTERNS,
                     date_patterns=DATE_PATTERNS) -> list[Problem]:
    """Every problem in every CSV, HTML, JSON and SVG file under `path` (empty list: clean).

    Looks for counts below min_cell in count columns (CSV and HTML tables, JSON keys
    named like counts), dates (ISO YYYY-MM-DD and YYYY/MM/DD, except `allowed_dates`, e.g.
    the cut-off, the study period and the run date) and identifier-looking strings
    (`id_patterns`, default P followed by six or more digits), and identifier or date
    columns. PNG figures cannot be read back: their numbers must come from
    `risk_table_display` and other suppressed frames.
    """
    root = Path(path)
    problems = []
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDITED_SUFFIXES):
        problems += audit_file(file, min_cell=min_cell, allowed_dates=allowed_dates, id_patterns=id_patterns,
                               date_patterns=date_patterns)
    return problems
