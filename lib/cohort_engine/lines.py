"""Lines of therapy (study-rules §3) from silver drug_exposures.

Rules, all parameters from `LinesConfig`:
1. Setting: an exposure on or after advanced_date − advanced_grace_days is
   `advanced`, an earlier one (or any of a patient without an advanced date)
   `early`; lines never span settings and are numbered 1, 2, … per setting.
2. A line starts at the date S of its first exposure; its regimen is the set of
   ingredients given in [S, S + regimen_window_days].
3. A later date D (D > S + window) ends the line and starts a new one at D when
   D − (previous administration date of the line) > max_gap_days, or when an
   ingredient given on D is neither in the regimen, nor in the substitution group
   of a regimen ingredient, nor of a class in additions_without_new_line.
   Otherwise D belongs to the line. Dropping a drug never starts a line.

Exposures of one date are judged together: when a new drug on D starts a line,
every exposure of D belongs to the new line (the order of rows within a day carries
no information, so the result must not depend on it).

How it runs at scale. Rule 3 is a walk whose state (the regimen) is fixed by an
earlier, data-dependent line start, so no fixed window frame expresses it. The
plan is therefore one shuffle and one vectorised pass:
- SQL keeps the counting exposures as (patient_id, day, ingredient, drug_class),
  adds one marker row per patient with an advanced date, hash-partitions both by
  patient_id (the only shuffle) and sorts each partition by patient and day;
- `mapInArrow` then walks whole partitions in large chunks with numpy, all
  patients of a chunk at once (state arrays indexed by patient-setting, one step per
  administration date), and emits one row per line. No Python runs per row or
  per patient, and no join is needed: the marker row carries the advanced date to
  its patient's exposures, which the sort has placed right after it.
The walk works on distinct (patient, setting, date, ingredient) by construction
(a repeated row sets the same mark twice), so duplicates need no separate SQL
pass, which would cost a second shuffle. Window functions would need the same
shuffle and sort and could still not carry the regimen state, so the gap rule is
evaluated in the same numpy step rather than in a separate window pass.
"""
from __future__ import annotations

import typing

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .errors import ConfigError, LinesInputError
from .lake_tables import GOLD_THERAPY_LINES
from .study_config import LinesConfig
from .vocabulary import DRUG_CLASSES, NON_COUNTING_CLASSES

LINE_COLUMNS = GOLD_THERAPY_LINES.contract_column_names

_WALK_SCHEMA = ("patient_id string, advanced boolean, line_number int, start_day int, last_day int, "
                "regimen string, n_admin_days int, drug_classes string")
DEFAULT_CHUNK_ROWS = 200_000


# -- configuration -----------------------------------------------------------------

def compat_groups(lines_cfg: LinesConfig) -> dict[str, str]:
    """ingredient → its substitution group label, for ingredients in a group."""
    groups: dict[str, str] = {}
    for i, group in enumerate(lines_cfg.substitutions):
        label = f"substitution group {i + 1}"
        for ingredient in group:
            if ingredient in groups and groups[ingredient] != label:
                raise ConfigError(f"lines.substitutions: {ingredient!r} is in more than one group")
            groups[ingredient] = label
    return groups


def check_lines_config(lines_cfg: LinesConfig,
                       vocabulary_classes: typing.Mapping[str, str] | pd.DataFrame | None = None) -> None:
    """Reject a configuration that would silently change nothing (a misspelt name)."""
    compat_groups(lines_cfg)
    for cls in lines_cfg.additions_without_new_line:
        if cls not in DRUG_CLASSES or cls in NON_COUNTING_CLASSES:
            raise ConfigError(f"lines.additions_without_new_line: {cls!r} is not a counting drug class "
                              f"(known: {', '.join(c for c in DRUG_CLASSES if c not in NON_COUNTING_CLASSES)})")
    if vocabulary_classes is None:
        return
    if isinstance(vocabulary_classes, pd.DataFrame):
        known = set(vocabulary_classes["ingredient"])
    else:
        known = set(vocabulary_classes)
    for group in lines_cfg.substitutions:
        for ingredient in group:
            if ingredient not in known:
                raise ConfigError(f"lines.substitutions: {ingredient!r} is not an ingredient of the vocabulary")


# -- Spark side ------------------------------------------------------------------------

def build_therapy_lines(exposures: DataFrame, advanced_dates: DataFrame, lines_cfg: LinesConfig,
                        vocabulary_classes: typing.Mapping[str, str] | pd.DataFrame | None = None,
                        chunk_rows: int = DEFAULT_CHUNK_ROWS) -> DataFrame:
    """gold/therapy_lines (lake_tables.GOLD_THERAPY_LINES): the contract columns, then drug_classes.

    exposures: silver drug_exposures (patient_id, admin_date, ingredient, drug_class,
    counts_for_lines); advanced_dates: patient_id, advanced_date (several rows of one
    patient: the earliest counts). `vocabulary_classes` (ingredient → class, or the
    vocabulary frame), when given, checks that the substitution groups name known
    ingredients. drug_classes = the classes of the regimen, sorted, joined with '+'.
    """
    check_lines_config(lines_cfg, vocabulary_classes)
    counts = (F.col("counts_for_lines") if "counts_for_lines" in exposures.columns
              else ~F.col("drug_class").isin(*NON_COUNTING_CLASSES))
    rows = (exposures.where(counts & F.col("admin_date").isNotNull() & F.col("patient_id").isNotNull())
            .select("patient_id", F.unix_date("admin_date").alias("day"), "ingredient", "drug_class",
                    F.lit(None).cast("int").alias("advanced_day")))
    markers = (advanced_dates.where(F.col("advanced_date").isNotNull() & F.col("patient_id").isNotNull())
               .groupBy("patient_id").agg(F.min("advanced_date").alias("advanced_date"))
               .select("patient_id", F.lit(None).cast("int").alias("day"), F.lit(None).cast("string").alias("ingredient"),
                       F.lit(None).cast("string").alias("drug_class"),
                       F.unix_date("advanced_date").alias("advanced_day")))
    walk = line_walker(lines_cfg, chunk_rows)
    lines = (rows.unionByName(markers)
             # every row of a patient in one partition, the marker first, then by day
             .repartition("patient_id")
             .sortWithinPartitions("patient_id", F.col("day").asc_nulls_first())
             .mapInArrow(walk, _WALK_SCHEMA))
    derived = {"setting": F.when(F.col("advanced"), F.lit("advanced")).otherwise(F.lit("early")),
               "start_date": F.date_from_unix_date("start_day"),
               "last_admin_date": F.date_from_unix_date("last_day")}
    return lines.select(*[derived[c].alias(c) if c in derived else F.col(c)
                          for c in GOLD_THERAPY_LINES.column_names])


# -- the vectorised walk (runs in the Python workers) -----------------------------------------

def line_walker(lines_cfg: LinesConfig, chunk_rows: int = DEFAULT_CHUNK_ROWS
                ) -> typing.Callable[[typing.Iterator[pa.RecordBatch]], typing.Iterator[pa.RecordBatch]]:
    """The mapInArrow function: sorted partition batches in, one row per line out."""
    params = _WalkParams(window=lines_cfg.regimen_window_days, gap=lines_cfg.max_gap_days,
                         grace=lines_cfg.advanced_grace_days, groups=compat_groups(lines_cfg),
                         additions=frozenset(lines_cfg.additions_without_new_line))

    def walk(batches: typing.Iterator[pa.RecordBatch]) -> typing.Iterator[pa.RecordBatch]:
        pending: list[pa.RecordBatch] = []
        n_pending = 0
        last_done: str | None = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            pending.append(batch)
            n_pending += batch.num_rows
            if n_pending < chunk_rows:
                continue
            table = pa.Table.from_batches(pending).combine_chunks()
            # The last patient may go on in the next batch: keep it back.
            pid = table.column("patient_id")
            tail = pid[-1].as_py()
            cut = table.num_rows - pc.sum(pc.equal(pid, tail)).as_py()
            if cut == 0:
                continue
            done = table.slice(0, cut)
            last_done = _check_order(done, last_done)
            out = lines_of_chunk(done, params)
            if out.num_rows:
                yield out
            rest = table.slice(cut)
            pending, n_pending = rest.to_batches(), rest.num_rows
        if n_pending:
            table = pa.Table.from_batches(pending).combine_chunks()
            _check_order(table, last_done)
            out = lines_of_chunk(table, params)
            if out.num_rows:
                yield out

    return walk


class _WalkParams(typing.NamedTuple):
    window: int
    gap: int
    grace: int
    groups: dict[str, str]
    additions: frozenset[str]


def _check_order(table: pa.Table, previous_last: str | None) -> str:
    """The walk is only correct on data sorted by patient and day: fail loudly otherwise."""
    pid = table.column("patient_id").combine_chunks()
    day = table.column("day").combine_chunks()
    if previous_last is not None and pid[0].as_py() <= previous_last:
        raise LinesInputError("therapy lines: a patient's rows are split across the input "
                              "(the data are not partitioned and sorted by patient_id)")
    if len(pid) > 1:
        later, earlier = pid.slice(1), pid.slice(0, len(pid) - 1)
        if pc.any(pc.less(later, earlier)).as_py():
            raise LinesInputError("therapy lines: input not sorted by patient_id")
        same = pc.equal(later, earlier)
        back = pc.and_(same, pc.less(pc.fill_null(day.slice(1), -2**31), pc.fill_null(day.slice(0, len(day) - 1), -2**31)))
        if pc.any(back).as_py():
            raise LinesInputError("therapy lines: input not sorted by day within a patient")
    return pid[-1].as_py()


def _codes(array: pa.Array) -> tuple[np.ndarray, list[str]]:
    encoded = array.dictionary_encode()
    return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
            encoded.dictionary.to_pylist())


def _joined_sets(line_of_item: np.ndarray, code_of_item: np.ndarray, names: list[str], n_lines: int) -> pa.Array:
    """Per line: the distinct names of its items, sorted, joined with '+'."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    sorted_names = pa.array([names[i] for i in order], type=pa.string())
    # A (line × name) mark matrix: its non-zero cells come out sorted by line, then by name.
    marks = np.zeros((n_lines, len(names)), dtype=bool)
    marks[line_of_item, rank[code_of_item]] = True
    line, name_rank = np.nonzero(marks)
    offsets = np.zeros(n_lines + 1, dtype=np.int32)
    np.cumsum(np.bincount(line, minlength=n_lines), out=offsets[1:])
    values = sorted_names.take(pa.array(name_rank))
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), "+")


def lines_of_chunk(table: pa.Table, params: _WalkParams) -> pa.RecordBatch:
    """One row per line for every patient of a chunk (whole patients, sorted by patient, day).

    Rows with a null day are the patients' advanced-date markers.
    """
    schema = pa.schema([("patient_id", pa.string()), ("advanced", pa.bool_()), ("line_number", pa.int32()),
                        ("start_day", pa.int32()), ("last_day", pa.int32()), ("regimen", pa.string()),
                        ("n_admin_days", pa.int32()), ("drug_classes", pa.string())])
    pid = table.column("patient_id").combine_chunks()
    n = len(pid)
    if n == 0:
        return pa.RecordBatch.from_pylist([], schema=schema)

    # The advanced date of each patient, from its marker row, onto every row.
    patient_start = np.ones(n, dtype=bool)
    if n > 1:
        patient_start[1:] = pc.not_equal(pid.slice(1), pid.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    patient_of_row = np.cumsum(patient_start) - 1
    marker_day = table.column("advanced_day").combine_chunks()
    is_marker = marker_day.is_valid().to_numpy(zero_copy_only=False)
    advanced_day = np.full(patient_of_row[-1] + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(advanced_day, patient_of_row[is_marker],
                  marker_day.filter(pa.array(is_marker)).to_numpy(zero_copy_only=False).astype(np.int64))

    keep = ~is_marker
    if not keep.any():
        return pa.RecordBatch.from_pylist([], schema=schema)
    row_index = np.flatnonzero(keep)
    day = table.column("day").combine_chunks().filter(pa.array(keep)).to_numpy(zero_copy_only=False).astype(np.int64)
    ing, ing_names = _codes(table.column("ingredient").combine_chunks().filter(pa.array(keep)))
    cls, cls_names = _codes(table.column("drug_class").combine_chunks().filter(pa.array(keep)))
    patient = patient_of_row[keep]
    adv = np.zeros(len(day), dtype=bool)
    has_adv = advanced_day[patient] != np.iinfo(np.int64).max
    adv[has_adv] = day[has_adv] >= advanced_day[patient[has_adv]] - params.grace

    # Substitutes share one id; an ingredient of an addition class never needs a line of its own.
    compat_names = [params.groups.get(name, name) for name in ing_names]
    compat_ids = {name: i for i, name in enumerate(dict.fromkeys(compat_names))}
    compat = np.array([compat_ids[c] for c in compat_names], dtype=np.int64)[ing]
    addition = np.array([c in params.additions for c in cls_names], dtype=bool)[cls]

    # Groups = (patient, setting); the sort by day puts early rows before advanced ones.
    m = len(day)
    group_start = np.ones(m, dtype=bool)
    group_start[1:] = (patient[1:] != patient[:-1]) | (adv[1:] != adv[:-1])
    date_start = group_start.copy()
    date_start[1:] |= day[1:] != day[:-1]
    date_of_row = np.cumsum(date_start) - 1
    n_dates = int(date_of_row[-1]) + 1
    first_row_of_date = np.flatnonzero(date_start)
    date_day = day[first_row_of_date]
    n_compat = len(compat_ids)
    present = np.zeros((n_dates, n_compat), dtype=bool)
    present[date_of_row, compat] = True
    needs = np.zeros((n_dates, n_compat), dtype=bool)
    needs[date_of_row[~addition], compat[~addition]] = True

    first_date_of_group = np.flatnonzero(group_start[first_row_of_date])
    group_len = np.diff(np.append(first_date_of_group, n_dates))
    by_len = np.argsort(-group_len, kind="stable")
    neg_sorted_len = -group_len[by_len]

    line_start = date_day[first_date_of_group].copy()
    previous = line_start.copy()
    regimen = present[first_date_of_group].copy()
    starts_line = np.zeros(n_dates, dtype=bool)
    starts_line[first_date_of_group] = True
    # Step k handles the k-th date of every group that has one, all groups at once.
    for k in range(1, int(group_len.max())):
        active = by_len[:np.searchsorted(neg_sorted_len, -k, side="left")]
        idx = first_date_of_group[active] + k
        d = date_day[idx]
        in_window = d - line_start[active] <= params.window
        gap = d - previous[active] > params.gap
        new_drug = (needs[idx] & ~regimen[active]).any(axis=1)
        new_line = ~in_window & (gap | new_drug)
        if in_window.any():
            regimen[active[in_window]] |= present[idx[in_window]]
        if new_line.any():
            regimen[active[new_line]] = present[idx[new_line]]
            line_start[active[new_line]] = d[new_line]
            starts_line[idx[new_line]] = True
        previous[active] = d

    first_date_of_line = np.flatnonzero(starts_line)
    n_lines = len(first_date_of_line)
    last_date_of_line = np.append(first_date_of_line[1:], n_dates) - 1
    line_of_date = np.cumsum(starts_line) - 1
    line_is_first = group_start[first_row_of_date][first_date_of_line]
    first_line_of_group = np.maximum.accumulate(np.where(line_is_first, np.arange(n_lines), 0))
    line_number = np.arange(n_lines) - first_line_of_group + 1
    start = date_day[first_date_of_line]

    line_of_row = line_of_date[date_of_row]
    in_regimen = day - start[line_of_row] <= params.window
    regimens = _joined_sets(line_of_row[in_regimen], ing[in_regimen], ing_names, n_lines)
    classes = _joined_sets(line_of_row[in_regimen], cls[in_regimen], cls_names, n_lines)
    first_row_of_line = first_row_of_date[first_date_of_line]
    return pa.RecordBatch.from_arrays([
        pid.take(pa.array(row_index[first_row_of_line])),
        pa.array(adv[first_row_of_line]),
        pa.array(line_number.astype(np.int32)),
        pa.array(start.astype(np.int32)),
        pa.array(date_day[last_date_of_line].astype(np.int32)),
        regimens,
        pa.array((last_date_of_line - first_date_of_line + 1).astype(np.int32)),
        classes,
    ], schema=schema)
