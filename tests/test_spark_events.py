"""Spark jobs tagged with their pipeline stage, and an event log read back per stage."""
from __future__ import annotations

import json
import types

import pytest

from cohort_engine import pipeline
from cohort_engine.spark_events import (OUTSIDE_STAGES, busy_seconds, pipeline_stage_of, read_event_log,
                                        stage_loads, stage_tagged)


def job(job_id: int, stage_ids: list[int], tags: str) -> dict:
    return {"Event": "SparkListenerJobStart", "Job ID": job_id, "Stage IDs": stage_ids,
            "Properties": {"spark.job.tags": tags}}


def task(stage_id: int, launch: int, finish: int, run_ms: int, cpu_ns: int, remote: int = 0, local: int = 0,
         written: int = 0, read: int = 0, output: int = 0, spilled: int = 0) -> dict:
    return {"Event": "SparkListenerTaskEnd", "Stage ID": stage_id,
            "Task Info": {"Launch Time": launch, "Finish Time": finish},
            "Task Metrics": {"Executor Run Time": run_ms, "Executor CPU Time": cpu_ns, "Disk Bytes Spilled": spilled,
                             "Shuffle Read Metrics": {"Remote Bytes Read": remote, "Local Bytes Read": local},
                             "Shuffle Write Metrics": {"Shuffle Bytes Written": written},
                             "Input Metrics": {"Bytes Read": read}, "Output Metrics": {"Bytes Written": output}}}


EVENTS = [
    {"Event": "SparkListenerApplicationStart", "Timestamp": 0},
    job(0, [0, 1], "spark-session-a-thread-b-cohort-engine-stage-ingest,spark-session-a"),
    task(0, 1000, 3000, 1800, 1_500_000_000, written=500, read=10_000),
    task(1, 2000, 4000, 2000, 500_000_000, remote=300, local=200, output=700),
    task(1, 6000, 6500, 400, 100_000_000, written=800),
    job(1, [2], "spark-session-a"),
    task(2, 7000, 7100, 90, 80_000_000),
    job(2, [3], "spark-session-a-thread-b-cohort-engine-stage-lines"),
    task(3, 8000, 8250, 250, 200_000_000, local=40, spilled=4096),
    {"Event": "SparkListenerTaskEnd", "Stage ID": 3, "Task Info": {"Launch Time": 9000, "Finish Time": 9001}},
]


def test_the_tasks_of_each_stage_are_summed_and_their_busy_time_is_the_union():
    assert stage_loads(EVENTS) == {
        # busy: 1000-4000 (two overlapping tasks) and 6000-6500; Spark stage 1 wrote the most (800)
        "ingest": {"tasks": 3, "task_seconds": 4.2, "cpu_seconds": 2.1, "busy_seconds": 3.5,
                   "shuffle_read_bytes": 500, "shuffle_write_bytes": 1300, "input_bytes": 10_000,
                   "output_bytes": 700, "disk_spill_bytes": 0, "largest_shuffle_write_bytes": 800},
        OUTSIDE_STAGES: {"tasks": 1, "task_seconds": 0.09, "cpu_seconds": 0.08, "busy_seconds": 0.1,
                         "shuffle_read_bytes": 0, "shuffle_write_bytes": 0, "input_bytes": 0,
                         "output_bytes": 0, "disk_spill_bytes": 0, "largest_shuffle_write_bytes": 0},
        # the task that ended without metrics (lost with its executor) counts nothing
        "lines": {"tasks": 1, "task_seconds": 0.25, "cpu_seconds": 0.2, "busy_seconds": 0.25,
                  "shuffle_read_bytes": 40, "shuffle_write_bytes": 0, "input_bytes": 0,
                  "output_bytes": 0, "disk_spill_bytes": 4096, "largest_shuffle_write_bytes": 0},
    }


@pytest.mark.parametrize("intervals, seconds", [
    ([], 0.0),
    ([(0, 1000), (500, 1500), (3000, 3200)], 1.7),
    ([(0, 5000), (1000, 2000), (4000, 6000)], 6.0),
    ([(2000, 3000), (0, 1000)], 2.0),
])
def test_busy_seconds_count_overlapping_tasks_once(intervals, seconds):
    assert busy_seconds(intervals) == seconds


@pytest.mark.parametrize("tags, stage", [
    ("spark-session-1-thread-2-cohort-engine-stage-endpoints,spark-session-1", "endpoints"),
    ("cohort-engine-stage-analysis", "analysis"),
    ("spark-session-1", OUTSIDE_STAGES),
    ("", OUTSIDE_STAGES),
])
def test_the_stage_is_read_from_the_job_tags(tags, stage):
    assert pipeline_stage_of(tags) == stage


def test_a_rolling_log_is_read_in_the_order_of_its_parts(tmp_path):
    folder = tmp_path / "eventlog_v2_app-1"
    folder.mkdir()
    for n in (10, 2, 1):
        (folder / f"events_{n}_app-1").write_text(json.dumps({"part": n}) + "\n\n")
    (folder / "appstatus_app-1").write_text("")
    assert [e["part"] for e in read_event_log(folder)] == [1, 2, 10]
    assert list(read_event_log(folder / "events_2_app-1")) == [{"part": 2}]


def test_each_stage_tags_its_spark_jobs_and_only_while_it_runs(spark, monkeypatch):
    seen = {}
    context = spark.sparkContext

    def stage(ctx):
        seen["tags"] = set(context.getJobTags())

    def failing(ctx):
        raise RuntimeError("stage failed")

    monkeypatch.setitem(pipeline.STAGES, "lines", stage)
    ctx = types.SimpleNamespace(spark=spark, progress=lambda _m: None, timings={})
    pipeline._run_stages(ctx, ["lines"])
    assert seen["tags"] == {"cohort-engine-stage-lines"}
    assert set(context.getJobTags()) == set()
    with pytest.raises(RuntimeError), stage_tagged(spark, "ingest"):
        failing(ctx)
    assert set(context.getJobTags()) == set()


def test_a_log_cut_in_the_middle_of_its_last_line_is_read_up_to_it(tmp_path):
    log = tmp_path / "app-1.inprogress"
    log.write_text('{"Event": "A"}\n{"Event": "B"}\n{"Event": "SparkListenerTas')
    assert [e["Event"] for e in read_event_log(log)] == ["A", "B"]
    log.write_text('{"Event": "A"}\n{"Event": \n{"Event": "B"}\n')
    with pytest.raises(ValueError, match="not an event log line"):
        list(read_event_log(log))
