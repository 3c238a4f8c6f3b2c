"""The lake tables' declarations: their DDL, `conform`, the generated reference, and that
every table the engine names is declared."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohort_engine import lake_tables
from cohort_engine.contract import SOURCE_TABLES
from cohort_engine.errors import LakeTableError
from cohort_engine.lake_tables import (GOLD_ATTRITION, GOLD_COHORT, GOLD_ENDPOINTS, LAKE_TABLES, QUARANTINE_SOURCE,
                                       conform, lake_table, reference_markdown)
from cohort_engine.pipeline import STUDY_TABLES

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", list(LAKE_TABLES))
def test_declared_ddl_parses_in_spark_to_the_declared_schema(spark, key):
    table = LAKE_TABLES[key]
    assert spark.createDataFrame([], table.ddl).schema == table.spark_schema
    assert [f.name for f in table.spark_schema.fields] == list(table.column_names)


def test_declarations_name_the_types_written_today():
    assert GOLD_ENDPOINTS.ddl == ("patient_id string, endpoint string, time_days int, event int, "
                                  "event_type string, source string")
    assert GOLD_ATTRITION.spark_schema == T.StructType([
        T.StructField("step", T.IntegerType()), T.StructField("criterion", T.StringType()),
        T.StructField("n_remaining", T.LongType()), T.StructField("n_excluded", T.LongType())])


def test_conform_puts_columns_in_declared_order_and_widens_their_types(spark):
    frame = spark.createDataFrame([(5, 2, "aged 18 or over", 40)],
                                  "n_excluded int, step int, criterion string, n_remaining int")
    out = conform(frame, GOLD_ATTRITION)
    assert out.schema == GOLD_ATTRITION.spark_schema
    assert [tuple(r) for r in out.collect()] == [(2, "aged 18 or over", 40, 5)]


def test_conform_keeps_a_tables_varying_columns_where_declared(spark):
    frame = spark.createDataFrame(
        [("p1", 61, dt.date(2021, 3, 4), "A+B", "positive", "advanced", 1, dt.date(2021, 6, 1))],
        "patient_id string, age_at_index int, index_date date, regimen string, hr_status string, "
        "index_setting string, index_line_number int, index_last_admin_date date").withColumn("arm", F.lit(None))
    out = conform(frame, GOLD_COHORT)
    assert out.columns == ["patient_id", "index_date", "regimen", "age_at_index", "hr_status", "arm",
                           "index_setting", "index_line_number", "index_last_admin_date"]
    assert out.schema["arm"].dataType == T.StringType()  # an all-null column takes the declared type
    assert out.schema["age_at_index"].dataType == T.IntegerType()
    assert tuple(out.first()) == ("p1", dt.date(2021, 3, 4), "A+B", 61, "positive", None, "advanced", 1,
                                  dt.date(2021, 6, 1))


def test_conform_quotes_an_extracts_column_names(spark):
    frame = spark.createDataFrame([("x", "orphan_patient_id", None)], "`note.1` string, reason string, "
                                                                      "reason_column string")
    assert conform(frame, QUARANTINE_SOURCE).columns == ["reason", "reason_column", "note.1"]


def test_conform_names_the_table_and_a_missing_column(spark):
    frame = spark.createDataFrame([(1, "all", 10)], "step int, criterion string, n_remaining long")
    with pytest.raises(LakeTableError, match=re.escape(
            "lake table gold/attrition: column 'n_excluded' is missing "
            "(the frame has step, criterion, n_remaining)")):
        conform(frame, GOLD_ATTRITION)


@pytest.mark.parametrize("ddl, message", [
    ("n_remaining string", "column 'n_remaining' is string, declared long"),
    ("n_remaining double", "column 'n_remaining' is double, declared long"),
])
def test_conform_names_the_table_and_a_column_of_another_type(spark, ddl, message):
    frame = spark.createDataFrame([], f"step int, criterion string, {ddl}, n_excluded long")
    with pytest.raises(LakeTableError, match=re.escape(f"lake table gold/attrition: {message}")):
        conform(frame, GOLD_ATTRITION)


def test_conform_refuses_to_narrow_a_type(spark):
    frame = spark.createDataFrame([], "patient_id string, endpoint string, time_days long, event int, "
                                      "event_type string, source string")
    with pytest.raises(LakeTableError, match=re.escape(
            "lake table gold/endpoints: column 'time_days' is bigint, declared int")):
        conform(frame, GOLD_ENDPOINTS)


def test_conform_names_an_undeclared_column(spark):
    frame = spark.createDataFrame([], "step int, criterion string, n_remaining long, n_excluded long, note string")
    with pytest.raises(LakeTableError, match=re.escape(
            "lake table gold/attrition: column 'note' is not declared "
            "(declared: step, criterion, n_remaining, n_excluded)")):
        conform(frame, GOLD_ATTRITION)


def test_committed_reference_is_the_generated_one():
    committed = (REPO / lake_tables.DOCS_PATH).read_text(encoding="utf-8")
    assert committed == reference_markdown(), "docs/tables.md is out of date: run `make docs-tables`"


def test_reference_shows_where_varying_columns_go():
    text = reference_markdown()
    cohort = text[text.index("## `gold/cohort`"):text.index("## `gold/attrition`")]
    rows = [line.split(" | ")[0].lstrip("| ") for line in cohort.splitlines() if line.startswith("| ")][1:]
    assert rows == ["`patient_id`", "`index_date`", "`regimen`", "…", "`arm`", "`index_setting`",
                    "`index_line_number`", "`index_last_admin_date`"]


# A (layer, name) pair written as two string literals, as writers and readers name tables
# (a name that is itself a layer is the list of layers, not a table).
_TABLE_NAMED = re.compile(r'"(bronze|quarantine|silver|gold)",\s*"(?!(?:bronze|quarantine|silver|gold)")([^"]+)"')


def _tables_named_in_lib() -> set[tuple[str, str]]:
    """The tables lib/ names, the declarations themselves aside."""
    named = set()
    for path in (REPO / "lib" / "cohort_engine").rglob("*.py"):
        if path.name != "lake_tables.py":
            named |= set(_TABLE_NAMED.findall(path.read_text(encoding="utf-8")))
    return named


def test_every_table_lib_names_is_declared():
    named = _tables_named_in_lib()
    assert ("gold", "therapy_lines") in named and ("quarantine", "drug_exposures") in named
    undeclared = []
    for layer, name in sorted(named):
        if layer == "bronze":
            if name not in SOURCE_TABLES:
                undeclared.append(f"{layer}/{name}")
            continue
        try:
            lake_table(layer, name)
        except LakeTableError:
            undeclared.append(f"{layer}/{name}")
    assert undeclared == []


def test_every_declared_table_is_named_in_lib():
    named = {f"{layer}/{name}" for layer, name in _tables_named_in_lib()}
    # quarantine/<source table> is written under each source table's name, held in a variable.
    assert sorted(set(LAKE_TABLES) - named) == [QUARANTINE_SOURCE.key]


def test_lake_names_resolve_to_their_declarations():
    assert lake_table("quarantine", "prescriptions") is QUARANTINE_SOURCE
    assert lake_table("gold", "studies/other_study/cohort") is GOLD_COHORT
    assert lake_table("gold", "cohort") is GOLD_COHORT
    with pytest.raises(LakeTableError, match="lake table gold/studies/other_study/therapy_lines is not declared"):
        lake_table("gold", "studies/other_study/therapy_lines")


def test_per_study_tables_are_the_pipelines_study_tables():
    assert {(t.layer, t.name) for t in LAKE_TABLES.values() if t.per_study} == STUDY_TABLES


def test_cohort_columns_follow_the_declaration():
    assert GOLD_COHORT.column_names_with(["age_at_index", "sex"]) == (
        "patient_id", "index_date", "regimen", "age_at_index", "sex", "arm", "index_setting", "index_line_number",
        "index_last_admin_date")
    with pytest.raises(LakeTableError, match="lake table gold/attrition takes no columns beyond its declared ones"):
        GOLD_ATTRITION.column_names_with(["extra"])
