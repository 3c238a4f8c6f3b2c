"""Every quarantine, silver and gold table the engine writes, declared once.

A declaration names the table's columns in the order they are written, their Spark
types and what they hold. The writers select their columns from it, `conform` checks
a frame against it before a write, and docs/tables.md is generated from it
(`reference_markdown`, `make docs-tables`). Bronze tables are the source contract's
(`contract.SOURCE_TABLES`).

Some tables take columns from their study or their extract (gold/cohort the study's
variables, a quarantine table the extract's columns as read): their declaration names
the fixed columns and where the others go (`VaryingColumns`).
"""
from __future__ import annotations

import dataclasses
import typing

from .contract import SOURCE_TABLES
from .errors import LakeTableError

DOCS_PATH = "docs/tables.md"  # from the repository's root


@dataclasses.dataclass(frozen=True)
class LakeColumn:
    name: str
    spark_type: str  # Spark DDL type: string, date, int, long, double, boolean
    description: str
    contract: bool = True  # False: the engine's own column, beyond shared/spec/interfaces.md


@dataclasses.dataclass(frozen=True)
class VaryingColumns:
    """Columns a table takes from its study or its extract, placed after the first
    `position` declared columns, in the order the study or the extract gives them."""
    position: int
    description: str


@dataclasses.dataclass(frozen=True)
class LakeTable:
    layer: str
    name: str
    description: str
    columns: tuple[LakeColumn, ...]
    varying: VaryingColumns | None = None
    per_study: bool = False  # each study its own copy, under <layer>/studies/<study>/<name>

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def contract_column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.contract)

    def column(self, name: str) -> LakeColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.key} declares no column {name!r}")

    def column_names_with(self, varying: typing.Sequence[str]) -> tuple[str, ...]:
        """The table's columns in the order written, given its varying columns."""
        if self.varying is None:
            if varying:
                raise LakeTableError(f"lake table {self.key} takes no columns beyond its declared ones, "
                                     f"got {', '.join(varying)}")
            return self.column_names
        at = self.varying.position
        return (*self.column_names[:at], *varying, *self.column_names[at:])

    @property
    def ddl(self) -> str:
        """Spark DDL of the declared columns."""
        return ", ".join(f"{c.name} {c.spark_type}" for c in self.columns)

    @property
    def spark_schema(self):
        """The declared columns as a StructType (every column nullable, as Delta stores them)."""
        from pyspark.sql.types import StructField, StructType
        return StructType([StructField(c.name, spark_data_type(c.spark_type), True) for c in self.columns])


def _table(layer: str, name: str, description: str, *columns: tuple, varying: VaryingColumns | None = None,
           per_study: bool = False) -> LakeTable:
    return LakeTable(layer, name, description, tuple(LakeColumn(*c) for c in columns), varying, per_study)


QUARANTINE_SOURCE = _table(
    "quarantine", "<source table>",
    "Rows of a source table that ingest rejected, as the extract wrote them, with the rule they broke.",
    ("reason", "string", "the rule the row broke (a reason code of contract.REASONS)"),
    ("reason_column", "string", "the column the rule read; null for a rule over the whole row", False),
    varying=VaryingColumns(2, "the extract's columns, every one as text; a column named like one above "
                              "takes the prefix source_"))

QUARANTINE_DRUG_EXPOSURES = _table(
    "quarantine", "drug_exposures",
    "Prescription rows whose drug name and code match no vocabulary entry.",
    ("reason", "string", "unmatched_drug_name"),
    varying=VaryingColumns(0, "the bronze/prescriptions row, its columns as bronze has them"))

SILVER_DRUG_EXPOSURES = _table(
    "silver", "drug_exposures",
    "One row per prescription and ingredient its drug name or code matched (a combination: one per ingredient).",
    ("record_id", "string", "the prescription's record_id"),
    ("patient_id", "string", "the patient"),
    ("hospital_id", "string", "the prescribing hospital"),
    ("admin_date", "date", "the administration date"),
    ("drug_name", "string", "the drug name as written"),
    ("ingredient", "string", "the vocabulary's ingredient"),
    ("drug_class", "string", "the vocabulary's class of the ingredient"),
    ("matched_by", "string", "name or code: what matched the vocabulary"),
    ("counts_for_lines", "boolean", "whether the class counts for lines of therapy (supportive care does not)"),
    ("dose", "double", "the dose as prescribed"),
    ("dose_unit", "string", "the dose's unit"),
    ("route", "string", "the route of administration"))

SILVER_LAST_CONTACTS = _table(
    "silver", "last_contacts",
    "Every patient's last contact at the run's data cut-off, shared by the lake's studies.",
    ("patient_id", "string", "the patient"),
    ("last_contact", "date", "the latest contact on or before the cut-off and the death date"),
    ("records_after_death", "long", "contact records dated after the death (ignored)"),
    ("data_cutoff", "date", "the cut-off they were found at"))

_FIRST_DATES = tuple(
    (f"{evidence}_first_date", "date", f"the first {words} (null: never)") for evidence, words in (
        ("her2_positive", "HER2-positive reading"), ("her2_negative", "HER2-negative reading"),
        ("her2_equivocal", "HER2-equivocal reading"), ("er_positive", "ER-positive reading"),
        ("er_negative", "ER-negative reading"), ("pr_positive", "PR-positive reading"),
        ("pr_negative", "PR-negative reading"), ("visceral", "visceral metastasis record (C78)"),
        ("brain", "brain metastasis record (C79.3)"), ("bone", "bone metastasis record (C79.5)"),
        ("other_distant", "other distant metastasis record (C79 except C79.5)")))

SILVER_PATIENT_FACTS = _table(
    "silver", "patient_facts",
    "One row per bronze patient: the dates the cohort's criteria and variables read.",
    ("patient_id", "string", "the patient"),
    ("sex", "string", "F, M or U"),
    ("birth_date", "date", "the birth date"),
    ("bc_date", "date", "the first diagnosis of the study's cancer"),
    ("advanced_date", "date", "the first diagnosis of advanced disease"),
    ("de_novo", "boolean", "advanced within de_novo_days of the first diagnosis (null without both dates)"),
    ("death_date", "date", "the earliest registered death on or before the cut-off"),
    ("death_dates_recorded", "int", "distinct death dates registered (0: none)"),
    *_FIRST_DATES,
    per_study=True)

GOLD_THERAPY_LINES = _table(
    "gold", "therapy_lines",
    "Lines of therapy of every patient with at least one exposure counting for lines.",
    ("patient_id", "string", "the patient"),
    ("setting", "string", "early or advanced"),
    ("line_number", "int", "1-based within the setting"),
    ("start_date", "date", "the line's first administration"),
    ("last_admin_date", "date", "the line's last administration"),
    ("regimen", "string", "ingredients sorted, joined with +"),
    ("n_admin_days", "int", "distinct administration dates of the line"),
    ("drug_classes", "string", "the regimen's classes sorted, joined with +", False))

GOLD_COHORT = _table(
    "gold", "cohort",
    "One row per included patient: the index line and the study's variables.",
    ("patient_id", "string", "the patient"),
    ("index_date", "date", "the index line's start"),
    ("regimen", "string", "the index line's regimen"),
    ("arm", "string", "the arm whose regimen rule the index regimen meets (null: none, or two)", False),
    ("index_setting", "string", "the index line's setting", False),
    ("index_line_number", "int", "the index line's number within its setting", False),
    ("index_last_admin_date", "date", "the index line's last administration", False),
    varying=VaryingColumns(3, "the study's variables, in the order of its file, named by it"),
    per_study=True)

GOLD_ATTRITION = _table(
    "gold", "attrition",
    "The population's criteria as steps, each cumulative over the steps before it.",
    ("step", "int", "1: all valid patients, then one per criterion in order"),
    ("criterion", "string", "the criterion in words"),
    ("n_remaining", "long", "patients who pass steps 1 to this one"),
    ("n_excluded", "long", "patients this step excludes"),
    per_study=True)

GOLD_ENDPOINTS = _table(
    "gold", "endpoints",
    "One row per included patient and endpoint the patient can be evaluated for.",
    ("patient_id", "string", "the patient"),
    ("endpoint", "string", "OS, rwPFS, TTP, TTF or TTNT"),
    ("time_days", "int", "days from the index date to the event or censoring"),
    ("event", "int", "1 event, 0 censored"),
    ("event_type", "string", "death, progression, next_line, discontinuation or censored"),
    ("source", "string", "rwPFS: assessment or ttnt_proxy; null for the others"),
    per_study=True)

GOLD_SAFETY_EVENTS = _table(
    "gold", "safety_events",
    "Per patient, term and source: the worst grade in the safety window and its earliest date.",
    ("patient_id", "string", "the patient"),
    ("term", "string", "the CTCAE term (or 'unmapped term')"),
    ("grade", "int", "the worst CTCAE grade (null: a record without a grade)"),
    ("source", "string", "lab or record"),
    ("onset_date", "date", "the earliest date at that grade"),
    per_study=True)

GOLD_COMPARISON_DATASET = _table(
    "gold", "comparison_dataset",
    "A comparative study's analysis data: one row per patient of its two arms and endpoint. It never leaves the lake.",
    ("study", "string", "the study"),
    ("patient_id", "string", "the patient"),
    ("arm", "string", "the patient's arm"),
    ("propensity_score", "double", "the probability of the study's treated arm given the covariates"),
    ("weight", "double", "the primary weight (stabilised IPTW of the study's estimand; null: left out by trimming)"),
    ("matched_set", "string", "the 1:1 matched pair (null: left unmatched)"),
    ("endpoint", "string", "OS, rwPFS, TTP, TTF or TTNT"),
    ("time_days", "int", "days from the index date to the event or censoring"),
    ("event", "int", "1 event, 0 censored"),
    per_study=True)

_DATA_QUALITY_COLUMNS = (
    ("stage", "string", "the stage that counted"),
    ("table", "string", "the table it read"),
    ("check", "string", "what was counted"),
    ("reason", "string", "the reason or value counted (null: none)"),
    ("n", "long", "rows or patients counted"))

GOLD_DATA_QUALITY = _table(
    "gold", "data_quality",
    "The study's data-quality counts: the lake stages' (as gold/lake_data_quality holds them) and its own.",
    *_DATA_QUALITY_COLUMNS, per_study=True)

GOLD_LAKE_DATA_QUALITY = _table(
    "gold", "lake_data_quality",
    "The data-quality counts of the stages that build the lake's shared tables (ingest, lines).",
    *_DATA_QUALITY_COLUMNS)

GOLD_UNMATCHED_DRUG_NAMES = _table(
    "gold", "unmatched_drug_names",
    "The most frequent drug names matching no vocabulary entry, with the entries nearest to each.",
    ("rank", "int", "1: the most frequent"),
    ("drug_name", "string", "the name's most frequent spelling as written"),
    ("drug_name_normalised", "string", "the name as the vocabulary compares it"),
    ("n_rows", "long", "prescription rows with the name, in any spelling"),
    ("nearest_entries", "string", "the nearest vocabulary names as 'name → ingredient (score)', best first"))

LAKE_TABLES: dict[str, LakeTable] = {t.key: t for t in (
    QUARANTINE_SOURCE, QUARANTINE_DRUG_EXPOSURES,
    SILVER_DRUG_EXPOSURES, SILVER_LAST_CONTACTS, SILVER_PATIENT_FACTS,
    GOLD_THERAPY_LINES, GOLD_COHORT, GOLD_ATTRITION, GOLD_ENDPOINTS, GOLD_SAFETY_EVENTS, GOLD_COMPARISON_DATASET,
    GOLD_DATA_QUALITY, GOLD_LAKE_DATA_QUALITY, GOLD_UNMATCHED_DRUG_NAMES,
)}

STUDIES_FOLDER = "studies"  # a per-study table of a study other than the default one: <layer>/studies/<study>/<name>


def lake_table(layer: str, name: str) -> LakeTable:
    """The declaration of a table as the lake names it (quarantine/patients, gold/studies/<study>/cohort …)."""
    if layer == "quarantine" and name in SOURCE_TABLES:
        return QUARANTINE_SOURCE
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == STUDIES_FOLDER:
        table = LAKE_TABLES.get(f"{layer}/{parts[2]}")
        if table is not None and table.per_study:
            return table
    table = LAKE_TABLES.get(f"{layer}/{name}")
    if table is None:
        raise LakeTableError(f"lake table {layer}/{name} is not declared in lake_tables.LAKE_TABLES")
    return table


# -- conformance ---------------------------------------------------------------------------

def spark_data_type(ddl_type: str):
    """The pyspark DataType of a declared column type."""
    from pyspark.sql import types as T
    known = {"string": T.StringType(), "date": T.DateType(), "int": T.IntegerType(), "long": T.LongType(),
             "double": T.DoubleType(), "boolean": T.BooleanType()}
    if ddl_type not in known:
        raise LakeTableError(f"unknown declared column type {ddl_type!r} (known: {', '.join(known)})")
    return known[ddl_type]


def _casts_without_loss(found, declared) -> bool:
    """Whether a column of DataType `found` may be cast to `declared` without losing values."""
    from pyspark.sql import types as T
    integral = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)  # narrowest first
    if found == declared or isinstance(found, T.NullType):  # NullType: an all-null column
        return True
    rank = {kind: i for i, kind in enumerate(integral)}
    if type(found) in rank and type(declared) in rank:
        return rank[type(found)] <= rank[type(declared)]
    return isinstance(declared, T.DoubleType) and isinstance(found, (*integral[:3], T.FloatType))


def conform(frame, table: LakeTable):
    """`frame` with the table's columns in the declared order and of the declared types.

    A column of a narrower type is cast (int to long, int to double, an all-null column
    to any type); a missing column, a column of another type, or an undeclared column
    (on a table without varying columns) raises LakeTableError naming the table and the
    column. A table's varying columns are the frame's undeclared ones, kept as they are
    and in the frame's order.
    """
    types = {f.name: f.dataType for f in frame.schema.fields}
    missing = [c.name for c in table.columns if c.name not in types]
    if missing:
        raise LakeTableError(f"lake table {table.key}: column {missing[0]!r} is missing "
                             f"(the frame has {', '.join(frame.columns) or 'no columns'})")
    declared = set(table.column_names)
    varying = [c for c in frame.columns if c not in declared]
    if varying and table.varying is None:
        raise LakeTableError(f"lake table {table.key}: column {varying[0]!r} is not declared "
                             f"(declared: {', '.join(table.column_names)})")
    selected = {}
    for c in table.columns:
        wanted = spark_data_type(c.spark_type)
        if not _casts_without_loss(types[c.name], wanted):
            raise LakeTableError(f"lake table {table.key}: column {c.name!r} is {types[c.name].simpleString()}, "
                                 f"declared {c.spark_type}")
        selected[c.name] = _column(c.name) if types[c.name] == wanted else _column(c.name).cast(wanted).alias(c.name)
    return frame.select(*[selected.get(name, _column(name)) for name in table.column_names_with(varying)])


def _column(name: str):
    # Quoted: an extract's column may be named with dots or spaces.
    from pyspark.sql import functions as F
    return F.col("`" + name.replace("`", "``") + "`")


# -- the reference ---------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def reference_markdown() -> str:
    """docs/tables.md: every declared table with its columns, types and descriptions."""
    out = ["# Lake tables", "",
           "Generated from `lib/cohort_engine/lake_tables.py` by `make docs-tables`: edit the declarations, "
           "not this file.", "",
           "Bronze tables are the source contract's (`contract.SOURCE_TABLES`, shared/spec/source-tables.md): "
           "its columns typed, then the extract's other columns as read. A table marked *per study* is the "
           "default study's under the name shown and another study's under "
           f"`<layer>/{STUDIES_FOLDER}/<study>/<name>`. Columns marked *engine* are the engine's own, beyond "
           "the contract (shared/spec/interfaces.md).", ""]
    for table in LAKE_TABLES.values():
        out += [f"## `{table.key}`", "", table.description + (" *Per study.*" if table.per_study else ""), "",
                "| column | type | description |", "|---|---|---|"]
        rows = [f"| `{c.name}` | {c.spark_type} | {_cell(c.description)}{' *(engine)*' if not c.contract else ''} |"
                for c in table.columns]
        if table.varying is not None:
            rows.insert(table.varying.position, f"| … | | {_cell(table.varying.description)} |")
        out += [*rows, ""]
    return "\n".join(out)


def main(argv: typing.Sequence[str] | None = None) -> None:
    """`python -m cohort_engine.lake_tables [PATH]`: write the reference (default docs/tables.md)."""
    import sys
    from pathlib import Path
    args = list(sys.argv[1:] if argv is None else argv)
    Path(args[0] if args else DOCS_PATH).write_text(reference_markdown(), encoding="utf-8")


if __name__ == "__main__":
    main()
