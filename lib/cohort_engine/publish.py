"""The one way out of the secure environment (study rules §9).

Exact numbers stay in the lake. A table leaves it only through `publish`, under the
`Gate` declared for that table: which columns are counts of patients, which cells go
with a withheld count, which rows add up to a shown total. `publish` applies the gate
once (the study's `min_cell`; the study's own dates the only dates allowed), writes
`tables/<name>.csv`, audits the file, and returns the very frame it wrote for the report
to show: the CSV and the report cannot disagree. A frame the report shows without a file
(a note's denominator, say) goes through `shown`, under a gate too.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pandas as pd

from .disclosure import MASKED, audit_file, audit_output_dir, safe_frame
from .errors import DisclosureError
from .study_config import StudyConfig

_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _names(gate: str, option: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"gate {gate}: {option} must be a list of column names, got {value!r}")
    names = tuple(value)
    if len(set(names)) != len(names):
        raise ValueError(f"gate {gate}: {option} names a column twice: {list(names)}")
    return names


def _by_count(gate: str, option: str, value, counts: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    pairs = tuple(value.items()) if isinstance(value, typing.Mapping) else tuple(value)
    out = []
    for count, columns in pairs:
        if count not in counts:
            raise ValueError(f"gate {gate}: {option} names {count!r}, which is not one of its count_columns "
                             f"{list(counts)}")
        out.append((count, _names(gate, f"{option}[{count}]", [columns] if isinstance(columns, str) else columns)))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Gate:
    """How one output table passes disclosure control. Checked when it is built (gates are
    declared beside the code that builds their table, so a misspelt option fails when the
    engine loads, before any Spark stage has run).

    name: the table's file, `tables/<name>.csv`.
    count_columns: the columns holding counts of patients (besides any column whose name
      reads as a count, `disclosure.COUNT_COLUMNS`).
    dependents: {count column: the columns withheld with it}, beyond its own percent.
    partition_by: columns whose rows are the categories of one total (`()`: the whole table
      is one set; None: no such set).
    partitions: more sets of categories that cross the first (a cross-table's rows and columns).
    total_column: the column holding each row's total, for the complement rule.
    complements: {count column: the column(s) holding its own total}.
    keep_zero: a zero count is shown (a zero names no one).
    spare: a boolean column: its True rows are withheld as a complement only when no other row
      of the set can be (the compared levels of a subgroup factor, whose hazard ratios go with
      their events).
    relative_to: (flag column, count column, columns): where the count of a set's flagged row (its
      reference) is withheld, these columns are withheld on every row of the set: a hazard
      ratio's CI carries the reference's events as well as its own (var ≈ 1/d + 1/d_reference).
    withheld_last: for a table whose rows come largest count first (patterns), the columns that
      order, within each set of `partition_by`, the rows whose first count is withheld: they go
      after the shown rows, in the order of these columns, since their place among the others
      would bound their counts (nine "<5" rows adding up to 20, in decreasing order, are 4, 4, 3 …).
    """
    name: str
    count_columns: tuple[str, ...] = ()
    dependents: tuple[tuple[str, tuple[str, ...]], ...] = ()
    partition_by: tuple[str, ...] | None = None
    partitions: tuple[tuple[str, ...], ...] = ()
    total_column: str | None = None
    complements: tuple[tuple[str, tuple[str, ...]], ...] = ()
    keep_zero: bool = True
    spare: str | None = None
    relative_to: tuple | None = None
    withheld_last: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"gate name {self.name!r}: a table's file name (lower case, digits, _)")
        put = object.__setattr__
        counts = _names(self.name, "count_columns", self.count_columns)
        put(self, "count_columns", counts)
        put(self, "dependents", _by_count(self.name, "dependents", self.dependents, counts))
        put(self, "complements", _by_count(self.name, "complements", self.complements, counts))
        if self.partition_by is not None:
            put(self, "partition_by", _names(self.name, "partition_by", self.partition_by))
        put(self, "withheld_last", _names(self.name, "withheld_last", self.withheld_last) if self.withheld_last else ())
        if self.relative_to is not None:
            flag, count, columns = self.relative_to
            if count not in counts or not self.partition_by:
                raise ValueError(f"gate {self.name}: relative_to needs one of its count_columns and partition_by")
            put(self, "relative_to", (_names(self.name, "relative_to", [flag])[0], count,
                                      _names(self.name, "relative_to", columns)))
        if self.withheld_last and not self.partition_by:
            raise ValueError(f"gate {self.name}: withheld_last orders rows within the sets of partition_by, "
                             "which it does not name")
        put(self, "partitions", tuple(_names(self.name, "partitions", p) for p in self.partitions))
        if self.total_column is not None and (not isinstance(self.total_column, str) or not self.total_column):
            raise TypeError(f"gate {self.name}: total_column must be a column name, got {self.total_column!r}")
        if not isinstance(self.keep_zero, bool):
            raise TypeError(f"gate {self.name}: keep_zero must be true or false")

    def columns(self) -> set[str]:
        """Every column the gate names: the table must have each."""
        named = {*self.count_columns, *(self.partition_by or ()), *(c for p in self.partitions for c in p),
                 *self.withheld_last, *([self.spare] if self.spare else []),
                 *((self.relative_to[0], *self.relative_to[2]) if self.relative_to else ())}
        named |= {c for _, cs in self.dependents + self.complements for c in cs}
        return named | ({self.total_column} if self.total_column else set())

    def check(self, frame: pd.DataFrame) -> None:
        missing = sorted(self.columns() - set(map(str, frame.columns)))
        if missing:
            raise DisclosureError(f"tables/{self.name}.csv: its gate names column {missing[0]!r}, which the "
                                  "table does not have")

    def options(self) -> dict:
        """The gate as `disclosure.safe_frame`'s options."""
        return {"keep_zero": self.keep_zero, "dependents": {c: list(cs) for c, cs in self.dependents},
                "partition_by": None if self.partition_by is None else list(self.partition_by),
                "partitions": [list(p) for p in self.partitions], "total_column": self.total_column,
                "complements": {c: list(cs) for c, cs in self.complements}, "spare": self.spare}


def study_dates(study: StudyConfig) -> list:
    """The only dates an output may hold: the study's cut-off and period."""
    return [study.data_cutoff, study.study_period.start, study.study_end]


def shown(frame: pd.DataFrame, gate: Gate, study: StudyConfig) -> pd.DataFrame:
    """The frame as it may be shown: identifying columns refused, counts suppressed."""
    gate.check(frame)
    safe = safe_frame(frame, list(gate.count_columns), min_cell=study.disclosure.min_cell,
                      allowed_dates=study_dates(study), **gate.options())
    if gate.relative_to is not None:
        safe = _relative_to_withheld(safe, gate)
    return _withheld_last(safe, gate) if gate.withheld_last else safe


def _relative_to_withheld(safe: pd.DataFrame, gate: Gate) -> pd.DataFrame:
    """gate.relative_to applied: every set whose flagged row's count is withheld loses the columns."""
    flag, count, columns = gate.relative_to
    keys = list(gate.partition_by)
    reference_withheld = safe[count].map(lambda v: isinstance(v, str)) & safe[flag].fillna(False).astype(bool)
    sets = safe[keys].astype(str).agg(" | ".join, axis=1)
    lost = sets.isin(set(sets[reference_withheld]))
    out = safe.copy()
    for column in columns:
        out[column] = out[column].astype(object)
        out.loc[lost, column] = MASKED
    return out


def _withheld_last(safe: pd.DataFrame, gate: Gate) -> pd.DataFrame:
    """Within each set of gate.partition_by (in the order the sets first appear), the shown rows
    in their order, then the rows whose first count is withheld, ordered by gate.withheld_last."""
    withheld = safe[gate.count_columns[0]].map(lambda v: isinstance(v, str))
    keys = list(gate.partition_by)
    first = {k: i for i, k in enumerate(dict.fromkeys(map(tuple, safe[keys].astype(str).to_numpy())))}
    order = pd.DataFrame({"set": [first[tuple(k)] for k in safe[keys].astype(str).to_numpy()],
                          "withheld": withheld.to_numpy(), "position": range(len(safe))}, index=safe.index)
    for column in gate.withheld_last:
        order[column] = safe[column].astype(str).where(withheld, "")
    ranked = order.sort_values(["set", "withheld", *gate.withheld_last, "position"], kind="stable")
    return safe.loc[ranked.index].reset_index(drop=True)


def publish(frame: pd.DataFrame, gate: Gate, study: StudyConfig, tables_dir: Path) -> tuple[pd.DataFrame, Path]:
    """Gate `frame` once; write it as `<tables_dir>/<gate.name>.csv` (UTF-8, no index, NaN as
    empty) and audit the file (a file that fails its audit is deleted: DisclosureError).
    Returns (the shown frame, for the report; the file's path)."""
    safe = shown(frame, gate, study)
    path = Path(tables_dir) / f"{gate.name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    safe.to_csv(path, index=False, na_rep="", encoding="utf-8")
    problems = audit_file(path, min_cell=study.disclosure.min_cell, allowed_dates=study_dates(study))
    if problems:
        path.unlink()
        raise DisclosureError(f"{path.name}: {problems[0].detail}")
    return safe, path


def audit(out: Path, study: StudyConfig, run_dates=()) -> list:
    """Findings under <out>; `run_dates` (the run's own timestamps, as in the manifest) are allowed."""
    return audit_output_dir(out, min_cell=study.disclosure.min_cell,
                            allowed_dates=study_dates(study) + list(run_dates))
