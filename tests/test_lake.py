"""The lake: versions, time travel, all-or-nothing writes, and other readers."""
from __future__ import annotations

import datetime as dt
import glob
import sysconfig
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from cohort_engine.errors import LakeError
from cohort_engine.lake import Lake
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


# -- batches: stage every write, commit all at the end or none ---------------------------------

def committed_versions(lake):
    from deltalake import DeltaTable
    return {key: DeltaTable(str(lake.root / key)).version() for key in lake.tables()}


def staging_folders(lake):
    return sorted(p for p in lake.root.glob("*/*/w-*"))


def test_a_batch_commits_every_write_when_it_ends(spark, lake):
    lake.write(frame(spark), "bronze", "old")
    with lake.batch() as results:
        staged = lake.write(frame(spark, ROWS[:1]), "bronze", "old")
        lake.write(frame(spark, ROWS[1:]), "bronze", "new")
        lake.write(frame(spark, ROWS[:1]), "bronze", "new", mode="append")
        assert (staged.staged, staged.version, staged.rows) == (True, None, 1)
        # Nothing committed yet: other readers see the lake as it was ...
        assert committed_versions(lake) == {"bronze/old": 1}
        # ... and reads inside the batch see what it wrote.
        assert as_set(lake.read("bronze", "old")) == {ROWS[0]}
        assert as_set(lake.read("bronze", "old", version=1)) == set(ROWS)
        assert lake.exists("bronze", "new") and sorted(lake.read("bronze", "new").collect()) == sorted(
            [*map(tuple, ROWS[1:]), ROWS[0]])
    assert [(r.table, r.version, r.rows) for r in results] == [
        ("bronze/old", 2, 1), ("bronze/new", 1, 2), ("bronze/new", 2, 1)]
    assert committed_versions(lake) == {"bronze/new": 2, "bronze/old": 2}
    assert lake.read("bronze", "new").count() == 3
    assert lake.versions_written == {"bronze/old": 2, "bronze/new": 2}
    assert not lake.in_batch


def test_an_exception_in_a_batch_commits_nothing(spark, lake):
    lake.write(frame(spark), "bronze", "old")
    with pytest.raises(ValueError, match="misread"):
        with lake.batch():
            lake.write(frame(spark, ROWS[:1]), "bronze", "old")
            lake.write(frame(spark), "quarantine", "new")
            raise ValueError("misread")
    assert committed_versions(lake) == {"bronze/old": 1}
    assert not (lake.root / "quarantine" / "new").exists()  # not even an empty folder
    assert [p.parent.name for p in staging_folders(lake)] == ["old"]  # version 1's files only
    assert as_set(lake.read("bronze", "old")) == set(ROWS)


def test_a_failed_commit_discards_the_writes_after_it(spark, lake, monkeypatch):
    import errno

    import deltalake
    real = deltalake.DeltaTable.create_write_transaction
    calls = []

    def second_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)
    lake.write(frame(spark), "silver", "b")
    monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", second_fails)
    with pytest.raises(LakeError, match=rf"cannot write lake table silver/b at {lake.root}/silver/b: No space left "
                                        r"on device \(it stays at version 1\)"):
        with lake.batch():
            for name in ("a", "b", "c"):
                lake.write(frame(spark), "silver", name)
    # The commits are separate transactions: the one before the failure stands.
    assert committed_versions(lake) == {"silver/a": 1, "silver/b": 1}
    assert not (lake.root / "silver" / "c").exists()
    assert [p.parent.name for p in staging_folders(lake)] == ["a", "b"]  # committed files only


def test_a_batch_keeps_transaction_ids_and_append_checks(spark, lake):
    lake.write(frame(spark), "bronze", "monthly", mode="append", txn=("load", 1))
    with lake.batch() as results:
        assert lake.write(frame(spark), "bronze", "monthly", mode="append", txn=("load", 1)).skipped
        lake.write(frame(spark), "bronze", "monthly", mode="append", txn=("load", 2))
        with pytest.raises(LakeError, match=r"append to bronze/monthly: column 'extra' is not in the table"):
            lake.write(frame(spark).withColumn("extra", F.lit(1)), "bronze", "monthly", mode="append")
        assert lake.read("bronze", "monthly").count() == 6
    assert [(r.version, r.skipped) for r in results] == [(2, False)]
    assert lake.transaction_version("bronze", "monthly", "load") == 2
    with pytest.raises(LakeError, match="do not nest"):
        with lake.batch():
            with lake.batch():
                pass
    assert staging_folders(lake) and not lake.in_batch


def test_a_killed_batch_leaves_only_folders_remove_unfinished_writes_clears(spark, lake):
    lake.write(frame(spark), "gold", "t")
    batch = lake.batch()
    batch.__enter__()
    lake.write(frame(spark, ROWS[:1]), "gold", "t")
    lake.write(frame(spark), "gold", "fresh")
    lake._batch = None  # the process died here: no exit, no clean-up
    assert len(staging_folders(lake)) == 3
    assert len(lake.remove_unfinished_writes()) == 2
    assert committed_versions(lake) == {"gold/t": 1} and not (lake.root / "gold" / "fresh").exists()


def test_a_native_batch_copies_its_staged_files_in_at_commit(spark, tmp_path, monkeypatch):
    # delta-spark is not on this classpath: its writer is replaced by one that records what it was given.
    from cohort_engine.lake import WriteResult
    lake = Lake(tmp_path / "lake", spark, environ={})
    lake.native = True
    copies = []

    def delta_spark_write(self, df, key, path, mode, txn):
        copies.append((key, sorted(tuple(r) for r in df.collect()), mode, txn))
        return WriteResult(key, 7, None)
    monkeypatch.setattr(Lake, "_write_native", delta_spark_write)
    with lake.batch() as results:
        lake.write(frame(spark), "gold", "t", txn=("app", 3))
        assert copies == []  # staged only
        assert as_set(lake.read("gold", "t")) == set(ROWS)
    assert copies == [("gold/t", sorted(ROWS), "overwrite", ("app", 3))]
    assert results == [WriteResult("gold/t", 7, 3)]
    assert list((tmp_path / "lake" / "gold" / "t").glob("w-*")) == []  # copied in, then removed
    lake.write(frame(spark), "gold", "u")  # outside a batch: delta-spark writes directly, nothing staged
    assert copies[-1][0] == "gold/u" and not (tmp_path / "lake" / "gold" / "u").exists()
