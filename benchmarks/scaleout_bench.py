"""Scale-out benchmark: the whole pipeline on a Spark standalone cluster on this machine,
one worker of one core, then two workers of one core each.

    python benchmarks/scaleout_bench.py --patients 250000 --memory-per-core 4g --dir bench-out

Each layout gets a fresh cluster (`cohort_engine.cluster.StandaloneCluster`), a fresh
lake and one spark-submit of jobs/run_pipeline.py (all stages, driver in client mode on
this machine, one executor per worker sized to it). Per stage it prints the wall seconds
(from the run manifest), the seconds no task of the stage was running (the driver's own
work: Delta commits through deltalake, pandas and lifelines; more workers do not shorten
it), the task seconds and the shuffle bytes (from the application's event log, the jobs
attributed to stages by their tags, `cohort_engine.spark_events`), and the ratio two
workers / one worker. Results go to <dir>/scaleout-<patients>.json (or --json).
A benchmark, not a test: the figures depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pipeline_bench import STAGES, PeakMemory, prescription_rows

from cohort_engine.cluster import StandaloneCluster, build_pyfiles_zip, spark_submit
from cohort_engine.spark_events import OUTSIDE_STAGES, read_event_log, stage_loads

REPO = Path(__file__).resolve().parents[1]
LAYOUTS = {"1x1": 1, "2x1": 2}  # name: workers, each of one core
TARGET_RATIO = 0.6  # the bar: two workers in at most 0.6x the time of one


def extract_for(args) -> Path:
    """--source as given, or the generated extract of --patients under --dir (generated once,
    where pipeline_bench keeps it too, so both benchmarks read the same data)."""
    if args.source:
        return args.source
    source = args.dir / f"extract-{args.patients}"
    if not (source / "truth" / "manifest.json").exists():
        print(f"generating {args.patients:,} patients into {source}", flush=True)
        subprocess.run([sys.executable, "-m", "cohort_engine", "generate", "--out", str(source), "--patients",
                        str(args.patients), "--seed", "1", "--quiet"], check=True)
    return source


def submit_conf(workers: int, args, event_dir: Path) -> dict:
    return {"spark.executor.cores": "1", "spark.executor.memory": args.memory_per_core,
            "spark.cores.max": str(workers), "spark.driver.memory": args.driver_memory,
            "spark.eventLog.enabled": "true", "spark.eventLog.dir": event_dir.resolve().as_uri(),
            "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false",
            **dict(kv.split("=", 1) for kv in args.spark_conf)}


def run_layout(name: str, workers: int, source: Path, base: Path, args, py_files: Path) -> dict:
    lake, out, events, logs = base / f"lake-{name}", base / f"out-{name}", base / f"events-{name}", base / f"logs-{name}"
    for folder in (lake, out, events, logs):
        shutil.rmtree(folder, ignore_errors=True)
    events.mkdir(parents=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with StandaloneCluster(workers=workers, cores=1, memory=args.memory_per_core, log_dir=logs,
                           environ=environ) as cluster, PeakMemory() as peak:
        started = time.perf_counter()
        result = spark_submit(cluster.master_url, REPO / "jobs" / "run_pipeline.py",
                              ["--source", str(source), "--lake", str(lake), "--out", str(out),
                               "--spark-profile", args.spark_profile],
                              py_files, environ, conf=submit_conf(workers, args, events),
                              log_path=logs / "submit.log")
        submit_seconds = time.perf_counter() - started
    if result.returncode:
        tail = (logs / "submit.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"layout {name}: spark-submit exited {result.returncode}\n{tail}")
    return {"workers": workers, "cores_per_worker": 1, "memory_per_core": args.memory_per_core,
            "submit_seconds": round(submit_seconds, 1), "peak_pss_gb": round(peak.peak / 2**30, 2),
            **run_figures(out, events)}


def run_figures(out: Path, events: Path) -> dict:
    """A run's stages from its manifest (wall seconds) and its event log (the tasks' work)."""
    manifest = json.loads((out / "run_manifest.json").read_text())
    (log_file,) = [p for p in events.iterdir() if not p.name.endswith(".inprogress")]
    loads = stage_loads(read_event_log(log_file))
    stages = {}
    for stage in STAGES:
        seconds = manifest["timings_seconds"][stage]
        load = loads.get(stage, {"tasks": 0, "task_seconds": 0.0, "cpu_seconds": 0.0, "busy_seconds": 0.0})
        stages[stage] = {"seconds": round(seconds, 1), **load,
                         "driver_only_seconds": round(max(seconds - load["busy_seconds"], 0.0), 1)}
    pipeline = sum(s["seconds"] for s in stages.values())
    return {"pipeline_seconds": round(pipeline, 1),
            "driver_only_seconds": round(sum(s["driver_only_seconds"] for s in stages.values()), 1),
            "delta_writer": manifest["delta_writer"],
            "cohort_patients": manifest["row_counts"]["analysis"]["cohort_patients"],
            "stages": stages, "outside_stages": loads.get(OUTSIDE_STAGES), "event_log": str(log_file)}


def ratios(one: dict, two: dict) -> dict:
    per_stage = {s: round(two["stages"][s]["seconds"] / one["stages"][s]["seconds"], 2) for s in STAGES}
    return {**per_stage, "pipeline": round(two["pipeline_seconds"] / one["pipeline_seconds"], 2),
            "submit": round(two["submit_seconds"] / one["submit_seconds"], 2)}


def print_report(report: dict) -> None:
    one, two, ratio = report["layouts"]["1x1"], report["layouts"]["2x1"], report["ratio"]
    print(f"\n{report['patients']:,} patients, {report['source_rows']:,} source rows; "
          f"{report['memory_per_core']} per core; Delta writer: {one['delta_writer']}")
    print(f"{'stage':<10}{'1x1 s':>8}{'2x1 s':>8}{'ratio':>7}{'driver-only 1x1':>17}{'2x1':>6}"
          f"{'task s 1x1':>12}{'2x1':>7}{'shuffle read MB':>17}{'shuffle write MB':>18}")
    for stage in STAGES:
        a, b = one["stages"][stage], two["stages"][stage]
        print(f"{stage:<10}{a['seconds']:8.1f}{b['seconds']:8.1f}{ratio[stage]:7.2f}"
              f"{a['driver_only_seconds']:17.1f}{b['driver_only_seconds']:6.1f}"
              f"{a['task_seconds']:12.1f}{b['task_seconds']:7.1f}"
              f"{a.get('shuffle_read_bytes', 0) / 1e6:17.1f}{a.get('shuffle_write_bytes', 0) / 1e6:18.1f}")
    print(f"{'pipeline':<10}{one['pipeline_seconds']:8.1f}{two['pipeline_seconds']:8.1f}{ratio['pipeline']:7.2f}"
          f"{one['driver_only_seconds']:17.1f}{two['driver_only_seconds']:6.1f}")
    print(f"spark-submit wall (with JVM start and session): {one['submit_seconds']:.1f} s and "
          f"{two['submit_seconds']:.1f} s, ratio {ratio['submit']:.2f}")
    verdict = "meets" if ratio["pipeline"] <= TARGET_RATIO else "misses"
    print(f"two workers / one worker: {ratio['pipeline']:.2f} of the pipeline's time ({verdict} the "
          f"{TARGET_RATIO}x bar); driver-only is the time no task of the stage ran. Shuffle bytes are the "
          f"one-worker run's (the two-worker run's are in the JSON).")


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--source", type=Path, help="an extract to run on")
    given.add_argument("--patients", type=int, help="generate an extract of this many patients (cached in --dir)")
    parser.add_argument("--dir", type=Path, default=Path("bench-out"))
    parser.add_argument("--memory-per-core", default="4g", help="each worker's memory and its executor's heap")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--spark-profile", default="standalone")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", type=Path, help="default: <dir>/scaleout-<patients>.json")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    source = extract_for(args)
    rx_rows, all_rows = prescription_rows(source)
    patients = args.patients or json.loads((source / "truth" / "manifest.json").read_text()).get("patients")
    base = args.dir / f"scaleout-{patients}"
    base.mkdir(parents=True, exist_ok=True)
    py_files = build_pyfiles_zip(base)
    layouts = {}
    for name, workers in LAYOUTS.items():
        layouts[name] = run_layout(name, workers, source, base, args, py_files)
        print(f"{name}: pipeline {layouts[name]['pipeline_seconds']:.1f} s "
              f"(spark-submit {layouts[name]['submit_seconds']:.1f} s)", flush=True)
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
                          "load_average_at_end": os.getloadavg()},
              "patients": patients, "source": str(source), "source_rows": all_rows, "prescription_rows": rx_rows,
              "memory_per_core": args.memory_per_core, "driver_memory": args.driver_memory,
              "spark_profile": args.spark_profile, "spark_conf": args.spark_conf,
              "layouts": layouts, "ratio": ratios(layouts["1x1"], layouts["2x1"])}
    path = args.json or args.dir / f"scaleout-{patients}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
