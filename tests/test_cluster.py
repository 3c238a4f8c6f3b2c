"""spark-submit on a real standalone cluster (a master and two workers on loopback)
gives the same lake as local mode.

The distributed stages (ingest, lines, cohort, endpoints) run on both; the analysis
runs on the driver over the collected cohort (pandas), so equal gold tables give
equal outputs, and it is left out here to keep the suite's time."""
from __future__ import annotations

import filecmp
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

from cohort_engine.cli import main
from cohort_engine.cluster import StandaloneCluster, build_pyfiles_zip, spark_submit
from cohort_engine.spark_events import read_event_log, stage_loads

REPO = Path(__file__).resolve().parents[1]
ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}
STAGES = "ingest,lines,cohort,endpoints"
GOLD = {"therapy_lines": ["patient_id", "setting", "line_number"], "cohort": ["patient_id"],
        "endpoints": ["patient_id", "endpoint"], "attrition": ["step"]}


def gold(lake: Path, name: str) -> pd.DataFrame:
    from deltalake import DeltaTable
    return DeltaTable(str(lake / "gold" / name)).to_pandas().sort_values(GOLD[name]).reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("cluster")
    assert main(["generate", "--out", str(base / "extract"), "--patients", "800", "--seed", "5", "--quiet"], ENV) == 0
    assert main(["run", "--source", str(base / "extract"), "--lake", str(base / "lake_local"), "--out",
                 str(base / "out_local"), "--stages", STAGES, "--quiet"], ENV) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.update(ENV, PYSPARK_PYTHON=sys.executable, COHORT_ENGINE_CONF_DIR=str(REPO / "conf"))
    (base / "events").mkdir()
    with StandaloneCluster(workers=2, cores=1, memory="1g", log_dir=base / "cluster-logs") as cluster:
        status = cluster.status()
        result = spark_submit(cluster.master_url, REPO / "jobs" / "run_pipeline.py",
                              ["--source", str(base / "extract"), "--lake", str(base / "lake_cluster"),
                               "--out", str(base / "out_cluster"), "--stages", STAGES, "--spark-profile", "standalone",
                               "--quiet"],
                              build_pyfiles_zip(base), env, log_path=base / "submit.log",
                              conf={"spark.eventLog.enabled": "true", "spark.eventLog.dir": (base / "events").as_uri(),
                                    "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false"})
    return base, status, result


def test_a_cluster_that_does_not_come_up_leaves_no_process_running(tmp_path, monkeypatch):
    spawned = []
    spawn = StandaloneCluster._spawn

    def spawn_and_keep(self, name, *args):
        spawn(self, name, *args)
        spawned.append(self.processes[-1])

    monkeypatch.setattr(StandaloneCluster, "_spawn", spawn_and_keep)
    with pytest.raises(TimeoutError, match="no master after 0s"):
        StandaloneCluster(workers=1, log_dir=tmp_path).start(timeout=0)
    assert len(spawned) == 1 and spawned[0].poll() is not None


def test_the_cluster_had_two_workers_and_the_job_succeeded(runs):
    base, status, result = runs
    assert status["aliveworkers"] == 2 and status["cores"] == 2
    assert result.returncode == 0, (base / "submit.log").read_text()[-3000:]
    log = (base / "submit.log").read_text()
    assert "StandaloneSchedulerBackend" in log  # executors on the workers, not local mode


def test_the_event_log_gives_each_stage_its_executors_work(runs):
    base, _, _ = runs
    (log,) = list((base / "events").iterdir())
    loads = stage_loads(read_event_log(log))
    for stage in STAGES.split(","):
        assert loads[stage]["tasks"] > 0 and loads[stage]["busy_seconds"] > 0, stage
    # ingest's duplicate window shuffles every source table
    assert loads["ingest"]["shuffle_write_bytes"] > 0 and loads["ingest"]["shuffle_read_bytes"] > 0


@pytest.mark.parametrize("name", sorted(GOLD))
def test_gold_tables_equal_local_mode(runs, name):
    base, _, _ = runs
    local, cluster = gold(base / "lake_local", name), gold(base / "lake_cluster", name)
    assert len(local) > 0
    pd.testing.assert_frame_equal(local, cluster)


def test_output_tables_equal_local_mode(runs):
    base, _, _ = runs
    tables = sorted(p.name for p in (base / "out_local" / "tables").glob("*.csv"))
    assert "attrition.csv" in tables and "data_quality.csv" in tables
    match, mismatch, errors = filecmp.cmpfiles(base / "out_local" / "tables", base / "out_cluster" / "tables",
                                               tables, shallow=False)
    assert (mismatch, errors) == ([], [])
