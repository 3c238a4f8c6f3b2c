"""The source-table contract (shared/spec/source-tables.md) as data.

The generator writes to it, ingest validates against it, and every later step
reads bronze tables typed by it.
"""
from __future__ import annotations

import dataclasses

SPARK_TYPES = {"str": "string", "date": "date", "float": "double", "int": "int", "bool": "boolean"}


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    type: str  # str | date | float | int | bool
    required: bool = False

    @property
    def spark_type(self) -> str:
        return SPARK_TYPES[self.type]


@dataclasses.dataclass(frozen=True)
class SourceTable:
    name: str
    required: bool
    columns: tuple[Column, ...]

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def ddl(self) -> str:
        """Spark DDL of the typed bronze table (contract columns only)."""
        return ", ".join(f"{c.name} {c.spark_type}" for c in self.columns)


def _t(name: str, required: bool, *cols: tuple) -> SourceTable:
    return SourceTable(name, required, tuple(Column(*c) for c in cols))


SOURCE_TABLES: dict[str, SourceTable] = {t.name: t for t in (
    _t("hospitals", True,
       ("hospital_id", "str", True), ("tier", "str"), ("province", "str"), ("hospital_type", "str")),
    _t("patients", True,
       ("patient_id", "str", True), ("sex", "str", True), ("birth_date", "date", True),
       ("id_hash", "str"), ("province", "str")),
    _t("diagnoses", True,
       ("patient_id", "str", True), ("hospital_id", "str"), ("diagnosis_date", "date", True),
       ("icd10", "str", True), ("stage", "str"), ("diagnosis_text", "str")),
    _t("biomarkers", True,
       ("patient_id", "str", True), ("test_date", "date", True), ("marker", "str", True),
       ("method", "str"), ("result", "str", True)),
    _t("prescriptions", True,
       ("record_id", "str", True), ("patient_id", "str", True), ("hospital_id", "str"),
       ("admin_date", "date", True), ("drug_name", "str", True), ("drug_code", "str"),
       ("dose", "float"), ("dose_unit", "str"), ("route", "str")),
    _t("deaths", True,
       ("id_hash", "str", True), ("death_date", "date", True), ("cause_icd10", "str")),
    _t("tumor_assessments", False,
       ("patient_id", "str", True), ("assessment_date", "date", True), ("response", "str", True),
       ("method", "str"), ("source", "str")),
    _t("labs", False,
       ("patient_id", "str", True), ("collect_date", "date", True), ("test", "str", True),
       ("value", "float", True), ("unit", "str"), ("ref_low", "float"), ("ref_high", "float")),
    _t("adverse_events", False,
       ("patient_id", "str", True), ("onset_date", "date", True), ("term", "str", True),
       ("grade", "int"), ("serious", "bool")),
    _t("visits", False,
       ("patient_id", "str", True), ("visit_date", "date", True), ("hospital_id", "str"),
       ("visit_type", "str")),
    _t("vitals", False,
       ("patient_id", "str", True), ("measure_date", "date", True), ("height_cm", "float"),
       ("weight_kg", "float")),
)}

# Tables whose patient_id must name a row of `patients`.
PATIENT_TABLES = ("diagnoses", "biomarkers", "prescriptions", "tumor_assessments", "labs",
                  "adverse_events", "visits", "vitals")

# The event date of each table (checked for parse and range, used for last contact).
EVENT_DATE = {
    "patients": "birth_date", "diagnoses": "diagnosis_date", "biomarkers": "test_date",
    "prescriptions": "admin_date", "deaths": "death_date", "tumor_assessments": "assessment_date",
    "labs": "collect_date", "adverse_events": "onset_date", "visits": "visit_date",
    "vitals": "measure_date",
}

# Units as the source spec lists them, after lower-casing and removing spaces.
DOSE_UNITS = ("mg", "g", "mg/m2", "mg/kg", "ug")
LAB_UNITS = ("10^9/l", "g/l", "g/dl", "u/l", "umol/l", "mg/dl", "%")
SEXES = ("F", "M", "U")
EARLIEST_DATE = "1900-01-01"

# Quarantine reason codes (one per rule, stable: downstream reports group by them).
REASONS = {
    "missing_required": "a required column is empty",
    "unparseable_date": "a date in none of the contract's forms (YYYY-MM-DD, a date-time, YYYY/MM/DD, "
                        "YYYY.MM.DD, YYYYMMDD, 2019年3月5日), or no calendar date (2019-02-30)",
    "ambiguous_date": "a day-first or month-first date (05/03/2019): the day and the month cannot be told apart",
    "date_out_of_range": "a date before 1900-01-01 or after the data cut-off",
    "unparseable_number": "a number that does not parse",
    "unparseable_bool": "a yes/no value that does not parse",
    "invalid_grade": "a CTCAE grade outside 1-5",
    "unreadable_result": "a HER2, ER or PR result that cannot be read",
    "non_positive_dose": "a dose of zero or less",
    "unknown_unit": "a unit not in the source contract",
    "invalid_sex": "sex other than F, M or U",
    "orphan_patient_id": "a patient_id absent from patients",
    "patient_quarantined": "a patient_id whose patients row was quarantined",
    "death_before_birth": "a death dated before the linked patient's birth",
    "conflicting_record_id": "a record_id seen before with different content",
    "duplicate_patient_id": "a patient_id seen before with different content",
    "duplicate_hospital_id": "a hospital_id seen before with different content",
}
