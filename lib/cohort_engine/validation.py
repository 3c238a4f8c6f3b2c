"""Every row of a source table kept, quarantined with a reason, or dropped as an exact duplicate.

`validate` types a raw table by the contract and gives each row either no reason
(kept, to bronze), a reason code and the column that failed (to quarantine, with
its raw text), or the mark of an exact duplicate (dropped, counted).
`mark_already_loaded` does the same for the rows of an incremental load the lake
holds already. `reason_summary` counts the rows per reason, and `misread_message`
tells a misread extract from a noisy one.

Quarantine tables hold the engine's `reason` and `reason_column` (the column that
failed), then every source column as text. A source column that has one of those
two names (in any case) is kept as `source_<name>` (`source_reason`, …; more
`source_` prefixes while the name is taken). Bronze keeps every source column
under its own name. The engine's bookkeeping columns during validation carry a
prefix no source column starts with (`Names`).
"""
from __future__ import annotations

import dataclasses
import fractions
import typing

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from .contract import (DOSE_UNITS, EARLIEST_DATE, LAB_UNITS, PATIENT_TABLES, SEXES,
                       SOURCE_TABLES, SourceTable)
from .date_forms import ambiguous_date_text, date_parts
from .extract_files import DEFAULT_SETTINGS, ExtractSettings
from .lake_tables import QUARANTINE_SOURCE
from .raw_tables import column_named
from .typed_columns import needs_date_parts, normalised_unit, trimmed_text, typed_column


DUPLICATE = "__exact_duplicate__"
ALREADY_LOADED = "__already_in_lake__"  # an incremental row the lake already holds (a duplicate)
KEYS = {"prescriptions": "record_id", "patients": "patient_id", "hospitals": "hospital_id"}
# The engine's columns of a quarantine table; source columns of these names are renamed there.
QUARANTINE_COLUMNS = QUARANTINE_SOURCE.column_names


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
    raw = {c.name: trimmed_text(column_named(c.name)) for c in spec.columns}
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
    return F.xxhash64(*[F.coalesce(column_named(c).cast("string"), F.lit(_NULL_MARK)) for c in columns])


def _comparable(df: DataFrame, name: str) -> Column:
    """A raw column as it can be sorted and compared (maps cannot: as text)."""
    if "map<" in df.schema[name].dataType.simpleString():
        return column_named(name).cast("string")
    return column_named(name)


def validate(raw: DataFrame, table: str, cutoff, patient_status: DataFrame | None = None,
             patient_births: DataFrame | None = None, settings: ExtractSettings | None = None,
             names: Names | None = None, broadcast_patients: bool = False) -> DataFrame:
    """Raw rows with their typed contract columns, their reason (null = keep) and its column.

    The bookkeeping columns are named by `names` (`names.reason`, `names.reason_column`,
    `names.typed(column)`). Exact duplicates carry the reason DUPLICATE. Keys seen twice
    with different content keep one deterministic row; the others go to quarantine.
    `broadcast_patients`: the patient list is small enough to send to every task (it
    then spares a keyed patient table, prescriptions, its second shuffle).
    """
    spec = SOURCE_TABLES[table]
    settings = settings or DEFAULT_SETTINGS
    names = names or Names(raw.columns)
    raw_cols = list(raw.columns)
    # Text dates are taken apart once per row, in a projection of their own.
    parts = {c.name: names("date_parts_" + c.name) for c in spec.columns
             if c.type == "date" and needs_date_parts(raw, c.name)}
    with_parts = raw.select("*", *[date_parts(trimmed_text(column_named(c))).alias(p) for c, p in parts.items()])
    typed = []
    for c in spec.columns:
        value = typed_column(raw, c.name, c.type, settings.timezone, parts.get(c.name))
        if c.name in ("dose_unit", "unit"):
            value = normalised_unit(column_named(c.name))
        if c.name == "sex":
            value = F.upper(trimmed_text(column_named(c.name)))
        typed.append(value.alias(names.typed(c.name)))
    df = with_parts.select("*", *typed).drop(*parts.values())

    # One sort serves both checks. Rows are grouped by their key (record_id,
    # patient_id, hospital_id) or, for tables without one, by patient (exact copies
    # share their patient) or else by a content hash, and ordered by content: a row
    # equal in every column to the one before it is an exact duplicate (dropped,
    # counted); a keyed row whose content differs from the group's first row is a
    # conflicting copy of the key (quarantined). Grouping a patient table by patient
    # also serves the orphan check below: its join finds the rows already
    # partitioned by patient_id, so the table is shuffled once.
    key = KEYS.get(table)
    row_reason, content = names("row_reason"), names("hash")
    df = (df.withColumn(content, _content_hash(raw_cols))
          .withColumn(row_reason, F.coalesce(*row_reasons(df, spec, cutoff, names))))
    reasons = [F.col(row_reason)]
    if key:
        group = F.col(names.typed(key))
    elif table in PATIENT_TABLES:
        group = F.col(names.typed("patient_id"))
    else:
        group = F.col(content)
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
        statuses = patient_status.select(F.col("patient_id").alias(names.typed("patient_id")),
                                         F.col("__patient_status").alias(status))
        if key and broadcast_patients:
            # A keyed table is partitioned by its key, not by patient: sending it the
            # patient list spares it a second shuffle.
            statuses = F.broadcast(statuses)
        df = df.join(statuses, names.typed("patient_id"), "left")
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
    extra = [column_named(c) for c in raw_columns if c not in spec.column_names]
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
                    *[column_named(c).cast("string").alias(renamed[c]) for c in raw_columns]))


@dataclasses.dataclass(frozen=True)
class ReasonCount:
    reason: str | None  # None: kept
    column: str | None
    n: int
    example: str | None  # a value of the column as written (the smallest)


def _summary(frame: DataFrame, reason: str, reason_column: str,
             written: typing.Mapping[str, Column]) -> list[ReasonCount]:
    """Rows of `frame` per (reason, column), with the smallest value as written of the column
    (`written`: contract column -> its text in `frame`)."""
    example = F.lit(None).cast("string")
    for name, text in written.items():
        example = F.when(F.col(reason_column) == name, text).otherwise(example)
    rows = (frame.groupBy(reason, reason_column)
            .agg(F.count(F.lit(1)).alias("n"), F.min(example).alias("example")).collect())
    return [ReasonCount(r[0], r[1], r["n"], r["example"]) for r in rows]


def reason_summary(validated: DataFrame, table: str, names: Names) -> list[ReasonCount]:
    """Rows per (reason, column), with an example value of the column as written."""
    written = {c.name: column_named(c.name).cast("string") for c in SOURCE_TABLES[table].columns}
    return _summary(validated, names.reason, names.reason_column, written)


def quarantine_summary(quarantine: DataFrame, table: str, raw_columns: typing.Sequence[str]) -> list[ReasonCount]:
    """Rows per (reason, column) of a table's quarantine, with an example value of the column as written.

    The same figures as `reason_summary` gives for the rejected rows, read from the
    quarantine (every source column as text, under its quarantine name).
    """
    renamed = quarantine_names(raw_columns)
    written = {c.name: column_named(renamed[c.name]) for c in SOURCE_TABLES[table].columns if c.name in renamed}
    return _summary(quarantine, "reason", "reason_column", written)


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
        return column_named(name) if name in validated.columns else F.lit(None)

    new, old = [names(f"n{i}") for i in range(len(columns))], [names(f"o{i}") for i in range(len(columns))]
    in_lake, known = names("in_lake"), names("known_id")
    df = validated.select("*", *[as_bronze(c).alias(n) for c, n in zip(columns, new)])
    rows = (existing.select(*[column_named(c).alias(o) for c, o in zip(columns, old)]).distinct()
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
