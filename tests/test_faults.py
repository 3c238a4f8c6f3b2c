"""Faults: a run killed mid-stage, two runs on one lake, a full disk, an unwritable folder."""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from pyspark.sql import functions as F
from test_extract_forms import BASE, prescriptions, write_csv_extract
from test_replay import ENV, gold_frame, reference_run

from cohort_engine.cli import main
from cohort_engine.errors import LakeBusy, LakeError
from cohort_engine.lake import Lake
from cohort_engine.lake_lock import LakeLock

REPO = Path(__file__).resolve().parents[1]


def delta_tables(lake_root: Path) -> list[Path]:
    return sorted(p.parent for p in lake_root.glob("*/*/_delta_log"))


def unreferenced_write_folders(lake_root: Path) -> list[Path]:
    """Offline write folders no version of their table references (read through deltalake)."""
    from deltalake import DeltaTable
    found = []
    for table in sorted(p for p in lake_root.glob("*/*") if p.is_dir() and p.parent.name != "_locks"):
        referenced = set()
        if (table / "_delta_log").is_dir():
            for version in range(DeltaTable(str(table)).version() + 1):
                referenced |= {Path(uri).parent.name for uri in DeltaTable(str(table), version=version).file_uris()}
        found += [p for p in table.iterdir() if p.name.startswith("w-") and p.name not in referenced]
    return found


def versions(lake_root: Path) -> dict[str, int]:
    from deltalake import DeltaTable
    return {f"{t.parent.name}/{t.name}": DeltaTable(str(t)).version() for t in delta_tables(lake_root)}


def wait_for(condition, seconds: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- SIGKILL in the middle of a stage, and a second run meanwhile --------------------

@pytest.mark.slow
def test_killed_run_leaves_readable_tables_and_the_next_run_completes(spark, tmp_path_factory, capsys, caplog):
    reference = reference_run(spark, tmp_path_factory)
    base = tmp_path_factory.mktemp("killed")
    lake = base / "lake"
    shutil.copytree(reference / "lake", lake)  # bronze in place: the killed run starts at lines
    argv = ["run", "--lake", str(lake), "--out", str(base / "out"), "--stages", "lines,cohort,endpoints"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "COHORT_ENGINE_DELTA_WRITER": "offline"}
    exposures = lake / "silver" / "drug_exposures"
    written_before = {p.name for p in exposures.iterdir()}
    proc = subprocess.Popen([sys.executable, "-m", "cohort_engine", *argv, "--spark-conf",
                             "spark.ui.showConsoleProgress=false"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    said: list[str] = []
    threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True).start()
    try:
        wait_for(lambda: any("stage lines: start" in line for line in said), 240, proc, "stage lines started")

        # A second run on the same lake fails at once, naming the run that holds it.
        capsys.readouterr()
        assert main([*argv, "--quiet"], ENV) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert err[0].startswith(f"cohort-engine: lake {lake.resolve()} is in use by pid {proc.pid} on "
                                 f"{socket.gethostname()} since ")
        assert err[0].endswith("(cohort-engine run --stages lines,cohort,endpoints); wait for it to finish "
                               "(or pass --wait-lock SECONDS)")

        # Kill it (driver, JVM and workers: the process group) while it writes silver/drug_exposures.
        wait_for(lambda: any(p.name not in written_before for p in exposures.iterdir()), 240, proc,
                 "the write of silver/drug_exposures")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)
    assert proc.returncode == -signal.SIGKILL

    # Every table opens and reads at its latest version.
    from deltalake import DeltaTable
    tables = delta_tables(lake)
    assert len(tables) >= 20
    for table in tables:
        DeltaTable(str(table)).to_pandas()
    # The killed run never released its lock; the kernel did.
    assert json.loads((lake / "_locks" / "run.lock").read_text())["pid"] == proc.pid
    # It died before its commit: the table stays at the reference's version, and the
    # folder Spark had begun is referenced by no version.
    reference_exposures = reference / "lake" / "silver" / "drug_exposures"
    assert DeltaTable(str(exposures)).version() == DeltaTable(str(reference_exposures)).version()
    left_behind = unreferenced_write_folders(lake)
    assert [p.parent for p in left_behind] == [exposures]

    caplog.set_level(logging.INFO, logger="cohort_engine")
    assert main(argv, ENV) == 0
    assert f"lake lock: taking over from pid {proc.pid} on {socket.gethostname()}" in caplog.text
    assert "lake: removed 1 unfinished write folders of an interrupted run" in caplog.text
    assert unreferenced_write_folders(lake) == []
    assert (lake / "_locks" / "run.lock").read_text() == ""  # released cleanly this time
    for name in ("therapy_lines", "cohort", "endpoints"):
        pd.testing.assert_frame_equal(gold_frame(lake, name), gold_frame(reference / "lake", name))


# -- the lock itself, without Spark -----------------------------------------------------

HOLDER = """
import sys, time
from cohort_engine.lake_lock import LakeLock
LakeLock(sys.argv[1], command="holder").acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_a_second_run_fails_at_once_or_waits_for_the_lock(tmp_path):
    root = tmp_path / "lake"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(root), "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        held_from = time.monotonic()
        with pytest.raises(LakeBusy) as busy:
            LakeLock(root).acquire()
        message = str(busy.value)
        assert message.startswith(f"lake {root.resolve()} is in use by pid {proc.pid} on {socket.gethostname()} "
                                  "since ")
        assert message.endswith(" (holder); wait for it to finish (or pass --wait-lock SECONDS)")
        lock = LakeLock(root, command="waiter").acquire(wait_seconds=60, poll_seconds=0.05)
        # The holder slept 2 s with the lock: the waiter got it no earlier.
        assert time.monotonic() - held_from >= 1.5
        assert proc.wait(10) == 0
        assert lock.holder()["pid"] == os.getpid() and lock.holder()["command"] == "waiter"
        lock.release()
        assert (root / "_locks" / "run.lock").read_text() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    lock_file = tmp_path / "lake" / "_locks" / "run.lock"
    lock_file.parent.mkdir(parents=True)
    lock_file.write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(),
                                     "started_utc": "2025-07-01T03:00:00+00:00",
                                     "command": "cohort-engine run --stages ingest"}))
    said = []
    lock = LakeLock(tmp_path / "lake", progress=said.append).acquire()
    assert said == [f"lake lock: taking over from pid {dead_pid} on {socket.gethostname()} since "
                    "2025-07-01T03:00:00+00:00 (cohort-engine run --stages ingest), which ended without releasing it"]
    assert lock.holder()["pid"] == os.getpid()
    lock.release()


def test_wait_lock_takes_seconds(tmp_path, capsys):
    code = main(["run", "--lake", str(tmp_path / "l"), "--out", str(tmp_path / "o"), "--wait-lock", "-1"], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["cohort-engine run: argument --wait-lock: expected a number of seconds (0 or more), got '-1'"]


# -- folders that cannot be written ------------------------------------------------------

@pytest.mark.parametrize("option", ["--out", "--lake"])
def test_unwritable_folder_is_one_line_and_exit_2(tmp_path, capsys, option):
    # Tests run as root, where permissions do not stop writes: a path under a file does.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    folders = {"--lake": tmp_path / "lake", "--out": tmp_path / "out", option: blocker / "sub"}
    code = main(["run", "--source", str(tmp_path), "--lake", str(folders["--lake"]), "--out", str(folders["--out"]),
                 "--stages", "ingest"], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"cohort-engine: cannot write {option} {blocker / 'sub'}: Not a directory"]


# -- a full disk ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_lake(spark, tmp_path_factory):
    """A small clean extract, and a lake holding bronze/hospitals at version 1.

    Clean: test_ingest's hand-made extract rejects a fifth of some tables' rows, which stops
    a run as a misread extract before anything is written (the run's threshold is 10 %).
    """
    base = tmp_path_factory.mktemp("disk")
    write_csv_extract(base / "src", {**BASE, "prescriptions": prescriptions(["2019-03-05", "2019-03-06"])})
    hospitals = spark.createDataFrame([("H1", "3A", "北京", "oncology")],
                                      "hospital_id string, tier string, province string, hospital_type string")
    assert Lake(base / "lake", spark, ENV).write(hospitals, "bronze", "hospitals").version == 1
    return base


def test_full_disk_at_the_delta_commit_keeps_the_previous_version(small_lake, tmp_path, monkeypatch, capsys):
    import deltalake
    lake = tmp_path / "lake"
    shutil.copytree(small_lake / "lake", lake)
    before = versions(lake)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", no_space)
    code = main(["run", "--source", str(small_lake / "src"), "--lake", str(lake), "--out", str(tmp_path / "out"),
                 "--stages", "ingest", "--quiet"], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    # Every table is staged, then committed in the order ingested: hospitals first; their bronze
    # table was at version 1. The tables staged after it are discarded, none committed.
    assert err == [f"cohort-engine: cannot write lake table bronze/hospitals at {lake.resolve()}/bronze/hospitals: "
                   "No space left on device (it stays at version 1)"]
    assert versions(lake) == before
    assert unreferenced_write_folders(lake) == []  # the failed write's files are gone


class FakeJavaError(Exception):
    """Stands for py4j's Py4JJavaError, whose text carries the JVM's exception chain."""


def test_full_disk_while_spark_writes_leaves_no_table(small_lake, tmp_path, monkeypatch, capsys):
    from pyspark.sql.readwriter import DataFrameWriter

    def no_space(self, path, *args, **kwargs):
        Path(path).mkdir(parents=True)  # Spark had begun the folder
        raise FakeJavaError("An error occurred while calling o812.parquet.\n: org.apache.spark.SparkException: "
                            "Job aborted.\nCaused by: java.io.IOException: No space left on device")
    monkeypatch.setattr(DataFrameWriter, "parquet", no_space)
    lake = tmp_path / "lake"
    code = main(["run", "--source", str(small_lake / "src"), "--lake", str(lake), "--out", str(tmp_path / "out"),
                 "--stages", "ingest", "--quiet"], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"cohort-engine: cannot write lake table bronze/hospitals at {lake.resolve()}/bronze/hospitals: "
                   "No space left on device (it was not created)"]
    assert not (lake / "bronze" / "hospitals").exists()


def test_a_failed_first_commit_leaves_no_half_table(spark, lake, monkeypatch):
    import deltalake

    def refused(*args, **kwargs):
        raise RuntimeError("commit refused")
    monkeypatch.setattr(deltalake.DeltaTable, "create_write_transaction", refused)
    with pytest.raises(RuntimeError, match="commit refused"):
        lake.write(spark.createDataFrame([("P1", 1)], "patient_id string, n int"), "gold", "t")
    # Not a version-0 table without rows: no table at all.
    assert not lake.path("gold", "t").exists()


# -- what a killed run leaves behind ---------------------------------------------------------

def test_unfinished_write_folders_are_removed(spark, lake):
    rows = spark.createDataFrame([("P1", 1), ("P2", 2)], "patient_id string, n int")
    lake.write(rows, "silver", "t")
    lake.write(rows.where(F.col("n") == 1), "silver", "t")
    table = lake.path("silver", "t")
    committed = sorted(p for p in table.iterdir() if p.name.startswith("w-"))
    assert len(committed) == 2  # version 1's folder stays for time travel
    killed = table / "w-20250701T030000-0123456789ab"  # Spark was writing when the run died
    (killed / "_temporary").mkdir(parents=True)
    (killed / "part-00000.snappy.parquet").write_bytes(b"partial")
    first = lake.root / "gold" / "never" / "w-20250701T030001-0123456789ab"  # died before the table existed
    first.mkdir(parents=True)
    assert sorted(lake.remove_unfinished_writes()) == sorted([killed, first])
    assert sorted(p for p in table.iterdir() if p.name.startswith("w-")) == committed
    assert not (lake.root / "gold" / "never").exists()
    assert lake.read("silver", "t", version=1).count() == 2 and lake.read("silver", "t").count() == 1


def test_a_table_created_but_never_written_is_no_input(spark, tmp_path, capsys):
    # What a run killed between creating a table and its first commit leaves.
    from deltalake import DeltaTable
    root = tmp_path / "lake"
    for name in ("prescriptions", "diagnoses"):
        DeltaTable.create(str(root / "bronze" / name), schema=pa.schema([("patient_id", pa.string())]))
    code = main(["run", "--lake", str(root), "--out", str(tmp_path / "out"), "--stages", "lines", "--quiet"], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"cohort-engine: lake table bronze/prescriptions under {root.resolve()} was created but never "
                   "written (an earlier run stopped): run the stage that builds it first"]


def test_storage_failures_are_recognised_through_the_exception_chain():
    from cohort_engine.lake import storage_problem
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system")
        except OSError as inner:
            raise RuntimeError("delta commit failed") from inner
    except RuntimeError as outer:
        assert storage_problem(outer) == "Read-only file system"
    assert storage_problem(ValueError("division by zero")) is None
    assert storage_problem(LakeError("Caused by: java.io.IOException: Disk quota exceeded")) == "Disk quota exceeded"
