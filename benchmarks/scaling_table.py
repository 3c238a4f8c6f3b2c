"""The cluster size that runs a target number of patients in an hour, from measurements.

    python benchmarks/scaling_table.py --scaleout bench-out/scaleout-250000.json bench-out/scaleout-1000000.json \
        --bench bench-out/bench.json --doc docs/scaling.md

Reads the scale-out benchmark's JSONs (benchmarks/scaleout_bench.py) and, for a cross-check,
the local-mode benchmark's (benchmarks/pipeline_bench.py), and writes the tables of
docs/scaling.md between its `scaling-table` markers (or prints them without --doc).
The model, described in docs/scaling.md: the executors' work of each stage is its task
seconds on one core (the one-worker layout), proportional to the extract's source rows;
the driver's own work (seconds no task ran) is serial and does not shrink with cores.
Without measurements the tables say "to be measured"; the projection needs two sizes.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from pipeline_bench import STAGES

HOUR = 3600.0
START, END = "<!-- scaling-table:start -->", "<!-- scaling-table:end -->"
TO_BE_MEASURED = "to be measured"
NO_CLUSTER = "none: the driver's serial seconds fill the hour"


def _size(patients: int, rows: int, stages: dict, ratios: dict | None, memory_per_core: str) -> dict:
    """A measured size per source row, from each stage's seconds, task seconds and event-log bytes."""
    per_stage = {}
    for stage in STAGES:
        s = stages[stage]
        per_stage[stage] = {"seconds": s["seconds"], "task_seconds": s["task_seconds"],
                            "driver_only_seconds": s["driver_only_seconds"],
                            "task_us_per_row": s["task_seconds"] / rows * 1e6,
                            "shuffle_write_bytes_per_row": s.get("shuffle_write_bytes", 0) / rows,
                            "largest_shuffle_write_bytes_per_row": s.get("largest_shuffle_write_bytes", 0) / rows,
                            "disk_spill_bytes": s.get("disk_spill_bytes", 0),
                            "ratio_two_workers": ratios[stage] if ratios else None}
    return {"patients": patients, "source_rows": rows, "rows_per_patient": rows / patients,
            "memory_per_core": memory_per_core, "ratio_pipeline": ratios["pipeline"] if ratios else None,
            "stages": per_stage}


def per_row(scaleout: dict) -> dict:
    """One measured size, per source row: each stage's task core-seconds, driver-only seconds and
    shuffle bytes (one worker of one core, where task seconds are not shared with another executor)."""
    return _size(scaleout["patients"], scaleout["source_rows"], scaleout["layouts"]["1x1"]["stages"],
                 scaleout["ratio"], scaleout["memory_per_core"])


def per_row_local(bench: dict, result: dict) -> dict | None:
    """One size of pipeline_bench (local mode, every core of the machine), per source row, in the
    shape of `per_row`: task seconds are core-seconds whatever the number of cores; None for a
    result measured without Spark's event log."""
    if "task_seconds" not in result["stages"][STAGES[0]]:
        return None
    heap = result.get("spark", {}).get("spark.driver.memory", "?")
    return _size(result["patients"], result["source_rows"], result["stages"], None,
                 f"{heap} heap / {bench['machine']['cpus']} cores (local mode)")


def driver_seconds_at(sizes: list[dict], stage: str, rows: float) -> float:
    """A stage's driver-only seconds at `rows` source rows: the line through the two largest
    measured sizes (a fixed part, such as Delta commits, and a part growing with the data),
    and never less than either measurement: the driver's work does not shrink with the data,
    and a line falling between two sizes (250k: 36.8 s, 500k: 35.2 s of analysis) is noise."""
    (r0, d0), (r1, d1) = sorted((m["source_rows"], m["stages"][stage]["driver_only_seconds"]) for m in sizes)[-2:]
    return max(d0 + (d1 - d0) * (rows - r0) / (r1 - r0), d0, d1)


def projection(sizes: list[dict], patients: int, cores_per_node: int, partition_mb: int) -> dict:
    """Cores, nodes and shuffle partitions for `patients` in an hour, from the largest measured size's
    per-row figures: cores = rows x task-seconds-per-row / (3600 s - the driver's serial seconds)."""
    largest = max(sizes, key=lambda m: m["source_rows"])
    rows = largest["rows_per_patient"] * patients
    task_seconds = sum(s["task_us_per_row"] for s in largest["stages"].values()) * rows / 1e6
    driver = {stage: driver_seconds_at(sizes, stage, rows) for stage in STAGES}
    left = HOUR - sum(driver.values())
    cores = math.ceil(task_seconds / left) if left > 0 else None
    exchange = max(s["largest_shuffle_write_bytes_per_row"] for s in largest["stages"].values()) * rows
    partitions = None
    if cores:
        by_size = math.ceil(exchange / (partition_mb * 2**20))
        partitions = math.ceil(max(by_size, 2 * cores) / cores) * cores  # whole waves of tasks
    return {"patients": patients, "source_rows": round(rows), "from_patients": largest["patients"],
            "task_core_hours": task_seconds / HOUR, "driver_seconds": driver, "seconds_left_for_tasks": left,
            "cores": cores, "nodes": math.ceil(cores / cores_per_node) if cores else None,
            "largest_exchange_gb": exchange / 2**30, "shuffle_partitions": partitions,
            "memory_per_core": largest["memory_per_core"]}


def local_mode_core_us_per_row(bench: dict, patients: int) -> dict | None:
    """pipeline_bench's local-mode seconds x the machine's cores per source row: an upper bound
    of the same cost (it counts the driver's time and idle cores as work)."""
    for result in bench["results"]:
        if result["patients"] == patients:
            cores = bench["machine"]["cpus"]
            return {s: result["stages"][s]["seconds"] * cores / result["source_rows"] * 1e6 for s in STAGES}
    return None


def fmt(value, spec: str) -> str:
    if value is None:
        return TO_BE_MEASURED
    return value if value == NO_CLUSTER else format(value, spec)


def measured_table(sizes: list[dict], bench: dict | None) -> list[str]:
    lines = ["| patients | stage | 1 core s | driver-only s | task s | task µs / source row | "
             "local mode core-µs / row | shuffle written B / row | largest exchange B / row | disk spill B | "
             "2 workers / 1 |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    wanted = sizes or [None]
    for size in wanted:
        local = local_mode_core_us_per_row(bench, size["patients"]) if size and bench else None
        for stage in STAGES:
            if size is None:
                lines.append(f"| {TO_BE_MEASURED} | {stage} |" + f" {TO_BE_MEASURED} |" * 9)
                continue
            s = size["stages"][stage]
            lines.append(f"| {size['patients']:,} | {stage} | {s['seconds']:.1f} | {s['driver_only_seconds']:.1f} | "
                         f"{s['task_seconds']:.1f} | {s['task_us_per_row']:.2f} | "
                         f"{fmt(local and local[stage], '.2f')} | {s['shuffle_write_bytes_per_row']:.1f} | "
                         f"{s['largest_shuffle_write_bytes_per_row']:.1f} | {s['disk_spill_bytes']:,} | "
                         f"{fmt(s['ratio_two_workers'], '.2f')} |")
    return lines


def projection_table(p: dict | None, patients: int, cores_per_node: int) -> list[str]:
    if p is None:
        p = {"source_rows": None, "from_patients": None, "task_core_hours": None, "seconds_left_for_tasks": None,
             "cores": None, "nodes": None, "largest_exchange_gb": None, "shuffle_partitions": None,
             "memory_per_core": None, "driver_seconds": None}
    driver = sum(p["driver_seconds"].values()) if p["driver_seconds"] else None
    if p["seconds_left_for_tasks"] is not None and p["seconds_left_for_tasks"] <= 0:
        # Measured, and no number of cores helps: the cells say so rather than "to be measured".
        p = dict(p, cores=NO_CLUSTER, nodes=NO_CLUSTER, shuffle_partitions=NO_CLUSTER)
    return ["| quantity | value |", "|---|---:|",
            f"| patients | {patients:,} |",
            f"| source rows (rows per patient of the measured extract) | {fmt(p['source_rows'], ',')} |",
            f"| measured size the per-row figures come from | {fmt(p['from_patients'], ',')} patients |",
            f"| executors' work, core-hours | {fmt(p['task_core_hours'], '.2f')} |",
            f"| driver's serial seconds (all stages) | {fmt(driver, '.0f')} |",
            f"| seconds of the hour left for the executors | {fmt(p['seconds_left_for_tasks'], '.0f')} |",
            f"| cores | {fmt(p['cores'], 'd')} |",
            f"| nodes of {cores_per_node} cores | {fmt(p['nodes'], 'd')} |",
            f"| memory per core (measured at) | {fmt(p['memory_per_core'], '')} |",
            f"| largest exchange, GiB | {fmt(p['largest_exchange_gb'], '.1f')} |",
            f"| spark.sql.shuffle.partitions | {fmt(p['shuffle_partitions'], 'd')} |"]


def tables(scaleouts: list[dict], bench: dict | None, patients: int, cores_per_node: int, partition_mb: int) -> str:
    sizes = sorted((per_row(s) for s in scaleouts), key=lambda m: m["source_rows"])
    local = sorted((m for m in (per_row_local(bench, r) for r in (bench or {}).get("results", [])) if m),
                   key=lambda m: m["source_rows"])
    # The driver's serial part needs two sizes (one gives no split between its fixed part and
    # the part growing with the data; proportional to rows, 20,000 patients gave 59 hours).
    # The local-mode sizes (250k and 1M, the largest measured) come first; else the cluster's.
    basis = local if len({m["source_rows"] for m in local}) >= 2 else sizes
    p = projection(basis, patients, cores_per_node, partition_mb) \
        if len({m["source_rows"] for m in basis}) >= 2 else None
    return "\n".join(["Measured on a standalone cluster (one worker of one core; the ratio is the two-worker "
                      "run's seconds over it):", "",
                      *measured_table(sizes, bench), "",
                      "Measured in local mode (`pipeline_bench.py`, every core of the machine; task seconds "
                      "are core-seconds):", "",
                      *measured_table(local, None), "",
                      f"Projected for {patients:,} patients in one hour"
                      f" (from the {'local-mode' if basis is local else 'cluster'} sizes):", "",
                      *projection_table(p, patients, cores_per_node)])


def write_into(doc: Path, text: str) -> None:
    page = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(page):
        raise SystemExit(f"{doc}: no {START} ... {END} section to fill")
    doc.write_text(pattern.sub(lambda _m: f"{START}\n{text}\n{END}", page), encoding="utf-8")


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scaleout", type=Path, nargs="*", default=[], help="scaleout_bench.py JSONs")
    parser.add_argument("--bench", type=Path, help="pipeline_bench.py's bench.json (local mode, a cross-check)")
    parser.add_argument("--patients", type=int, default=15_000_000)
    parser.add_argument("--cores-per-node", type=int, default=8)
    parser.add_argument("--partition-mb", type=int, default=128, help="shuffle bytes per partition aimed at")
    parser.add_argument("--doc", type=Path, help="write the tables into this file's scaling-table section")
    args = parser.parse_args(argv)
    scaleouts = [json.loads(p.read_text()) for p in args.scaleout]
    bench = json.loads(args.bench.read_text()) if args.bench and args.bench.exists() else None
    text = tables(scaleouts, bench, args.patients, args.cores_per_node, args.partition_mb)
    if args.doc:
        write_into(args.doc, text)
        print(f"wrote the tables into {args.doc}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run())
