"""Tiny hand-made frames shaped exactly like the bronze contract and the internal interfaces.

Rows are dicts; a column left out is null; dates are written 'YYYY-MM-DD'.
"""
from __future__ import annotations

import datetime as dt

from cohort_engine.conf_folder import shipped_conf_dir
from cohort_engine.contract import SOURCE_TABLES
from cohort_engine.vocabulary import class_names

# The shipped classes' names, as a run reads them beside the shipped vocabulary.
CLASS_NAMES = class_names(shipped_conf_dir() / "vocabulary" / "drugs.csv")

DRUG_EXPOSURES_DDL = ("record_id string, patient_id string, hospital_id string, admin_date date, "
                      "drug_name string, ingredient string, drug_class string, matched_by string, "
                      "counts_for_lines boolean, dose double, dose_unit string, route string")
THERAPY_LINES_DDL = ("patient_id string, setting string, line_number int, start_date date, "
                     "last_admin_date date, regimen string, n_admin_days int")
COHORT_DDL = ("patient_id string, index_date date, regimen string, anti_her2 string, age_at_index int, "
              "sex string, hr_status string, de_novo boolean, visceral boolean, brain_mets boolean, "
              "bone_only boolean, prior_anti_her2 boolean, hospital_tier string, province string, index_year int, "
              "arm string, index_setting string, index_line_number int, index_last_admin_date date")


def d(text: str | None) -> dt.date | None:
    return None if text is None else dt.date.fromisoformat(text)


def frame(spark, ddl: str, rows: list[dict]):
    columns = [part.strip().split(" ") for part in ddl.split(",")]
    names = [c[0] for c in columns]
    unknown = {k for r in rows for k in r} - set(names)
    if unknown:
        raise KeyError(f"columns not in the schema: {sorted(unknown)}")
    values = []
    for r in rows:
        row = []
        for name, kind in columns:
            v = r.get(name)
            row.append(d(v) if kind == "date" and isinstance(v, str) else v)
        values.append(tuple(row))
    return spark.createDataFrame(values, ddl)


def bronze_table(spark, table: str, rows: list[dict]):
    return frame(spark, SOURCE_TABLES[table].ddl, rows)


def bronze(spark, **tables: list[dict]):
    """A bronze dict: every required table present (empty unless given), optional ones only if given."""
    out = {}
    for name, spec in SOURCE_TABLES.items():
        if name in tables:
            out[name] = bronze_table(spark, name, tables[name])
        elif spec.required:
            out[name] = bronze_table(spark, name, [])
    return out


def drug_exposures(spark, rows: list[dict]):
    defaults = {"drug_name": None, "matched_by": "name", "counts_for_lines": True}
    full = []
    for i, r in enumerate(rows):
        row = {**defaults, "record_id": f"rx{i:04d}", **r}
        if row.get("drug_name") is None:
            row["drug_name"] = row.get("ingredient")
        if "counts_for_lines" not in r:
            row["counts_for_lines"] = row.get("drug_class") != "supportive"
        full.append(row)
    return frame(spark, DRUG_EXPOSURES_DDL, full)


def therapy_lines(spark, rows: list[dict]):
    return frame(spark, THERAPY_LINES_DDL, rows)


def cohort(spark, rows: list[dict]):
    """gold/cohort rows; the index line is advanced line 1 unless a row says otherwise."""
    rows = [{"index_setting": "advanced", "index_line_number": 1, **r} for r in rows]
    return frame(spark, COHORT_DDL, rows)
