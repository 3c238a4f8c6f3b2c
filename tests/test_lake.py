"""The lake: versions, time travel, all-or-nothing writes, and other readers."""
from __future__ import annotations

import datetime as dt
import glob
import sysconfig
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from cohort_engine.lake import Lake, LakeError
from cohort_engine.session import delta_jars_available, native_delta_enabled

ROWS = [("P1", 1, dt.date(2020, 1, 1)), ("P2", 2, dt.date(2021, 6, 30)), ("P3", 3, None)]
DDL = "patient_id string, n int, index_date date"


def frame(spark, rows=ROWS):
    return spark.createDataFrame(rows, DDL)


def as_set(df):
    return {tuple(r) for r in df.collect()}


def test_versions_and_time_travel(spark, lake):
    first = lake.write(frame(spark), "gold", "t")
    second = lake.write(frame(spark, ROWS[:1]), "gold", "t")
    # Version 0 is the table's creation; each write is one new version.
    assert (first.version, first.rows, second.version, second.rows) == (1, 3, 2, 1)
    assert as_set(lake.read("gold", "t")) == {ROWS[0]}
    assert as_set(lake.read("gold", "t", version=1)) == set(ROWS)
    assert lake.read("gold", "t", version=0).count() == 0
    assert lake.versions_read["gold/t"] == 0 and lake.versions_written["gold/t"] == 2


def test_failed_write_leaves_previous_version(spark, lake):
    lake.write(frame(spark), "silver", "t")
    # Four partitions: some finish and leave files before the one holding id 77 fails.
    poisoned = (spark.range(0, 100, 1, 4)
                .select(F.when(F.col("id") == 77, F.raise_error(F.lit("boom")))
                        .otherwise(F.col("id").cast("string")).alias("patient_id"),
                        F.lit(1).alias("n"), F.lit(None).cast("date").alias("index_date")))
    with pytest.raises(Exception, match="boom"):
        lake.write(poisoned, "silver", "t")
    assert lake.version("silver", "t") == 1
    assert as_set(lake.read("silver", "t")) == set(ROWS)
    table_dir = lake.path("silver", "t")
    write_folders = [p for p in table_dir.iterdir() if p.name.startswith("w-")]
    assert len(write_folders) == 1  # the failed write's files are gone


def test_failed_first_write_leaves_no_table(spark, lake):
    poisoned = spark.range(0, 10, 1, 2).select(F.raise_error(F.lit("boom")).cast("string").alias("x"))
    with pytest.raises(Exception, match="boom"):
        lake.write(poisoned, "gold", "never")
    assert not lake.exists("gold", "never")
    with pytest.raises(LakeError, match="gold/never does not exist"):
        lake.read("gold", "never")


def test_append_checks_the_schema(spark, lake):
    lake.write(frame(spark), "bronze", "t")
    lake.write(frame(spark, ROWS[:1]), "bronze", "t", mode="append")
    assert lake.read("bronze", "t").count() == 4
    wrong_type = frame(spark).withColumn("n", F.col("n").cast("string"))
    with pytest.raises(LakeError, match=r"append to bronze/t: column 'n' is string, the table has int32"):
        lake.write(wrong_type, "bronze", "t", mode="append")
    with pytest.raises(LakeError, match=r"column 'extra' is not in the table"):
        lake.write(frame(spark).withColumn("extra", F.lit(1)), "bronze", "t", mode="append")
    with pytest.raises(LakeError, match=r"column 'index_date' is missing"):
        lake.write(frame(spark).drop("index_date"), "bronze", "t", mode="append")
    assert lake.version("bronze", "t") == 2


def test_transaction_ids_make_commits_idempotent(spark, lake):
    a = lake.write(frame(spark), "bronze", "monthly", mode="append", txn=("monthly-load", 202501))
    b = lake.write(frame(spark), "bronze", "monthly", mode="append", txn=("monthly-load", 202501))
    c = lake.write(frame(spark), "bronze", "monthly", mode="append", txn=("monthly-load", 202502))
    assert (a.skipped, b.skipped, c.skipped) == (False, True, False)
    assert (a.version, b.version, c.version) == (1, 1, 2)
    assert lake.read("bronze", "monthly").count() == 6


def test_bad_layer_and_mode(spark, lake):
    with pytest.raises(LakeError, match="unknown lake layer 'platinum'"):
        lake.write(frame(spark), "platinum", "t")
    with pytest.raises(LakeError, match="mode must be overwrite or append"):
        lake.write(frame(spark), "gold", "t", mode="merge")


def test_empty_table_keeps_its_schema(spark, lake):
    lake.write(frame(spark).limit(0), "gold", "empty")
    back = lake.read("gold", "empty")
    assert back.count() == 0
    assert [(f.name, f.dataType.simpleString()) for f in back.schema] == [
        ("patient_id", "string"), ("n", "int"), ("index_date", "date")]


def test_readable_by_deltalake_and_pandas(spark, lake):
    from deltalake import DeltaTable
    lake.write(frame(spark), "gold", "cohort")
    table = DeltaTable(str(lake.path("gold", "cohort")))
    assert table.version() == 1
    # Offline tables stay at the most widely readable protocol.
    assert (table.protocol().min_reader_version, table.protocol().min_writer_version) == (1, 2)
    pdf = table.to_pandas().sort_values("patient_id").reset_index(drop=True)
    assert pdf["patient_id"].tolist() == ["P1", "P2", "P3"]
    assert pdf["n"].tolist() == [1, 2, 3]
    assert pdf["index_date"].iloc[0] == dt.date(2020, 1, 1)
    assert lake.read_pandas("gold", "cohort").shape == (3, 3)


def test_readable_by_duckdb_delta_scan(spark, lake):
    duckdb = pytest.importorskip("duckdb")
    ext = glob.glob(str(Path(sysconfig.get_paths()["purelib"]) / "duckdb_ext" / "extensions" / "*" / "*"
                        / "delta.duckdb_extension"))
    if not ext:
        pytest.skip("duckdb-ext-delta is not installed")
    lake.write(frame(spark), "gold", "duck")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext[0]}'")
    rows = con.sql(f"select patient_id, n from delta_scan('{lake.path('gold', 'duck')}') order by 1").fetchall()
    assert rows == [("P1", 1), ("P2", 2), ("P3", 3)]


def test_native_delta_path(spark, tmp_path):
    if not delta_jars_available(spark):
        pytest.skip("delta-spark jars are not on the classpath here (Maven is unreachable); "
                    "the native path runs where they are (clusters, --packages io.delta:delta-spark_2.13)")
    if not native_delta_enabled(spark, {}):
        pytest.skip("Delta jars present but spark.sql.extensions lacks DeltaSparkSessionExtension")
    lake = Lake(tmp_path / "lake", spark, environ={})
    assert lake.native
    lake.write(frame(spark), "gold", "t")
    lake.write(frame(spark, ROWS[:1]), "gold", "t")
    assert as_set(lake.read("gold", "t", version=0)) == set(ROWS)
    assert as_set(lake.read("gold", "t")) == {ROWS[0]}


def test_offline_table_read_by_delta_spark(spark, lake):
    if not delta_jars_available(spark):
        pytest.skip("delta-spark jars are not on the classpath here (Maven is unreachable)")
    lake.write(frame(spark), "gold", "x")
    assert as_set(spark.read.format("delta").load(str(lake.path("gold", "x")))) == set(ROWS)
