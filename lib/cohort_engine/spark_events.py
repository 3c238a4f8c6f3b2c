"""The Spark jobs of each pipeline stage tagged, and an event log read back as the
cluster's work per pipeline stage.

Every job a stage starts carries the job tag `cohort-engine-stage-<stage>`
(`stage_tagged`); its tasks' metrics, summed per stage, say what the
stage cost the executors (task seconds, shuffle bytes) and when any of its tasks
ran. A stage's wall time minus the time any of its tasks ran is the driver's own
work (Delta commits, pandas), which more executors do not shorten.
"""
from __future__ import annotations

import contextlib
import json
import typing
from pathlib import Path

STAGE_TAG_PREFIX = "cohort-engine-stage-"
OUTSIDE_STAGES = "(outside stages)"


@contextlib.contextmanager
def stage_tagged(spark, stage: str):
    """Tag every Spark job started inside with `cohort-engine-stage-<stage>` (in the event
    log, the UI and the REST API): how a benchmark or an operator attributes a cluster's
    task time and shuffle bytes to the pipeline's stages.

    The SparkContext's job tags, not the session's: a session tag marks SQL executions only,
    and misses the jobs Spark starts outside them, such as listing a long file list."""
    try:
        add, remove = spark.sparkContext.addJobTag, spark.sparkContext.removeJobTag
    except NotImplementedError:  # Spark Connect has no SparkContext: its SQL jobs are all it runs
        add, remove = spark.addTag, spark.removeTag
    tag = STAGE_TAG_PREFIX + stage
    add(tag)
    try:
        yield
    finally:
        remove(tag)


def read_event_log(path: str | Path) -> typing.Iterator[dict]:
    """The events of one application's log: a file, or the folder of a rolling log
    (`eventlog_v2_<app>/events_<n>_<app>`, read in the order of n). The log of a running
    (`.inprogress`) or killed application may end in half a line: it is left out."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    for file in files:
        broken = None
        with open(file, encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                if broken:
                    raise broken
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    broken = ValueError(f"{file}: not an event log line ({exc})")
                    continue
                yield event


def pipeline_stage_of(tags: str) -> str:
    """The pipeline stage a job's `spark.job.tags` name. A classic session prefixes a tag
    with its session and thread (`spark-session-<id>-thread-<id>-<tag>`), hence the search."""
    for tag in tags.split(","):
        at = tag.find(STAGE_TAG_PREFIX)
        if at >= 0:
            return tag[at + len(STAGE_TAG_PREFIX):]
    return OUTSIDE_STAGES


def busy_seconds(intervals: list[tuple[int, int]]) -> float:
    """Seconds covered by at least one of the (start ms, end ms) intervals."""
    covered, reach = 0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            covered += end - start
            reach = end
        elif end > reach:
            covered += end - reach
            reach = end
    return covered / 1000


def stage_loads(events: typing.Iterable[dict]) -> dict[str, dict]:
    """{pipeline stage: its tasks' work} from an application's events: tasks, task and CPU
    seconds summed over tasks, busy seconds (wall time with at least one task running),
    shuffle bytes read and written, input and output bytes, bytes spilled to disk, and the
    shuffle bytes the largest of its Spark stages wrote (what one exchange's partitions share)."""
    owner: dict[int, str] = {}
    written_by_spark_stage: dict[int, int] = {}
    loads: dict[str, dict] = {}
    intervals: dict[str, list[tuple[int, int]]] = {}
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            stage = pipeline_stage_of((event.get("Properties") or {}).get("spark.job.tags", ""))
            for spark_stage in event["Stage IDs"]:
                owner[spark_stage] = stage
        elif kind == "SparkListenerTaskEnd" and event.get("Task Metrics"):
            stage = owner.get(event["Stage ID"], OUTSIDE_STAGES)
            info, metrics = event["Task Info"], event["Task Metrics"]
            shuffle_read, shuffle_write = metrics["Shuffle Read Metrics"], metrics["Shuffle Write Metrics"]
            load = loads.setdefault(stage, dict.fromkeys(
                ("tasks", "task_ms", "cpu_ns", "shuffle_read_bytes", "shuffle_write_bytes", "input_bytes",
                 "output_bytes", "disk_spill_bytes"), 0))
            load["tasks"] += 1
            load["task_ms"] += metrics["Executor Run Time"]
            load["cpu_ns"] += metrics["Executor CPU Time"]
            load["shuffle_read_bytes"] += shuffle_read["Remote Bytes Read"] + shuffle_read["Local Bytes Read"]
            load["shuffle_write_bytes"] += shuffle_write["Shuffle Bytes Written"]
            written_by_spark_stage[event["Stage ID"]] = (written_by_spark_stage.get(event["Stage ID"], 0)
                                                         + shuffle_write["Shuffle Bytes Written"])
            load["input_bytes"] += metrics["Input Metrics"]["Bytes Read"]
            load["output_bytes"] += metrics["Output Metrics"]["Bytes Written"]
            load["disk_spill_bytes"] += metrics["Disk Bytes Spilled"]
            intervals.setdefault(stage, []).append((info["Launch Time"], info["Finish Time"]))
    largest: dict[str, int] = {}
    for spark_stage, written in written_by_spark_stage.items():
        stage = owner.get(spark_stage, OUTSIDE_STAGES)
        largest[stage] = max(largest.get(stage, 0), written)
    return {stage: {"tasks": load["tasks"], "task_seconds": load["task_ms"] / 1000,
                    "cpu_seconds": round(load["cpu_ns"] / 1e9, 3), "busy_seconds": busy_seconds(intervals[stage]),
                    **{k: v for k, v in load.items() if k.endswith("_bytes")},
                    "largest_shuffle_write_bytes": largest[stage]}
            for stage, load in loads.items()}
