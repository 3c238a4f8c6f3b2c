"""Table 1: the cohort's characteristics at the index date (study rules §8)."""
from __future__ import annotations

import typing

import numpy as np
import pandas as pd

from .publish import Gate

TABLE1_COLUMNS = ["characteristic", "level", "n", "percent", "median", "q1", "q3"]
TABLE1_GATE = Gate("table1", count_columns=("n",), partition_by=("characteristic",),
                   dependents={"n": ("percent", "median", "q1", "q3")})
AGE_GROUPS = ((0, 50, "<50"), (50, 65, "50-64"), (65, 200, ">=65"))


def age_group(age: float) -> str:
    """<50, 50–64, ≥65 (the subgroup bands of §8)."""
    for low, high, label in AGE_GROUPS:
        if low <= age < high:
            return label
    return "unknown"


def _yes_no(value) -> str:
    if value is None or pd.isna(value):
        return "unknown"
    return "yes" if bool(value) else "no"


# The contract's gold/cohort columns and their Table 1 rows, in the order Table 1 shows them.
_KNOWN = {
    "sex": ("sex", lambda c: c.fillna("unknown")),
    "hr_status": ("hormone receptor status", lambda c: c.fillna("unknown")),
    "de_novo": ("advanced disease", lambda c: c.map(lambda v: "unknown" if pd.isna(v)
                                                     else ("de novo" if v else "recurrent"))),
    "visceral": ("visceral metastasis", lambda c: c.map(_yes_no)),
    "brain_mets": ("brain metastasis", lambda c: c.map(_yes_no)),
    "bone_only": ("bone-only metastasis", lambda c: c.map(_yes_no)),
    "prior_anti_her2": ("prior anti-HER2 therapy", lambda c: c.map(_yes_no)),
    "anti_her2": ("anti-HER2 label", lambda c: c.fillna("unknown")),
    "hospital_tier": ("hospital tier", lambda c: c.fillna("unknown")),
    "province": ("region (province)", lambda c: c.fillna("unknown")),
    "index_year": ("index year", lambda c: c.astype("Int64").astype(str).replace("<NA>", "unknown")),
}


def is_boolean(values: pd.Series) -> bool:
    """A yes/no column: boolean dtype, or (collected from Spark with nulls) only bools and nulls."""
    present = values.dropna()
    return pd.api.types.is_bool_dtype(values) or (len(present) > 0 and
                                                  present.map(lambda v: isinstance(v, (bool, np.bool_))).all())


def _levels_of(values: pd.Series) -> pd.Series:
    if is_boolean(values):
        return values.map(_yes_no)
    return values.map(lambda v: "unknown" if v is None or pd.isna(v) else str(v))


def table1(cohort: pd.DataFrame, variables: typing.Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    """Table 1 of the cohort: the contract's columns it holds, in their order, then the
    study's other variables (`variables`: (column, label) pairs) as yes/no or their values."""
    n = len(cohort)
    rows: list[dict] = [{"characteristic": "patients", "level": "all", "n": n, "percent": 100.0 if n else None}]
    levels = {}
    if "age_at_index" in cohort:
        age = pd.to_numeric(cohort["age_at_index"], errors="coerce").dropna()
        rows.append({"characteristic": "age at index, years", "level": "median (IQR)", "n": int(age.size),
                     "median": float(age.median()) if age.size else None,
                     "q1": float(age.quantile(0.25)) if age.size else None,
                     "q3": float(age.quantile(0.75)) if age.size else None})
        levels["age group"] = cohort["age_at_index"].map(age_group)
    for column, (characteristic, read) in _KNOWN.items():
        if column in cohort:
            levels[characteristic] = read(cohort[column])
    for column, label in variables:
        if column not in _KNOWN and column != "age_at_index" and column in cohort:
            levels[label] = _levels_of(cohort[column])
    band_order = {label: i for i, (_, _, label) in enumerate(AGE_GROUPS)}
    for characteristic, values in levels.items():
        counts = values.value_counts()
        # age bands young to old ("50-64" sorts before "<50" as text); other levels alphabetically
        order = (lambda v: (band_order.get(v, len(band_order)), str(v))) if characteristic == "age group" else str
        for level in sorted(counts.index, key=order):
            rows.append({"characteristic": characteristic, "level": str(level), "n": int(counts[level]),
                         "percent": 100.0 * counts[level] / n})
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)
