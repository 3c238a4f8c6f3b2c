"""Scale benchmark: the whole pipeline on generated extracts of several sizes.

    python benchmarks/pipeline_bench.py --patients 250000 500000 1000000 --dir bench-out

For each size: generates the extract once (kept for reruns), then runs every stage
on a fresh lake, in a process of its own so that the engine sizes its Spark session
for that extract, and prints, per stage, wall time, peak memory of the whole Spark
process tree (driver JVM + Python workers + the driver, PSS sampled from /proc every
0.25 s) and prescription rows per second. Spark's event log gives each stage's task
seconds and shuffle bytes (`cohort_engine.spark_events`). Results go to <dir>/bench.json.
A benchmark, not a test: the figures depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from cohort_engine.cli import main
from cohort_engine.spark_events import read_event_log, stage_loads

STAGES = ["ingest", "lines", "cohort", "endpoints", "analysis"]
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                tree.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return tree


def _pss(pid: int) -> int:
    """Proportional set size: shared pages (pyspark forks its Python workers) counted once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> int:
    """Memory of a process and all its descendants (PSS, so shared pages count once)."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        total += _pss(pid)
        todo += tree.get(pid, [])
    return total


class PeakMemory:
    def __init__(self, interval: float = 0.25):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def prescription_rows(source: Path) -> int:
    manifest = json.loads((source / "truth" / "manifest.json").read_text())
    return int(manifest["rows"]["prescriptions"]), int(sum(v for k, v in manifest["rows"].items()
                                                           if not k.startswith("truth/")))


def generate_extract(n: int, source: Path, conf: list[str]) -> dict:
    """Generate the extract of `n` patients in a process of its own (its own Spark session)."""
    started = time.perf_counter()
    with PeakMemory() as peak:
        code = subprocess.call([sys.executable, __file__, "--generate-only", str(n), "--out", str(source), *conf])
    if code:
        raise SystemExit(f"generate {n} failed")
    return {"seconds": round(time.perf_counter() - started, 1), "peak_pss_gb": round(peak.peak / 2**30, 2)}


def bench_size(n: int, base: Path, conf: list[str]) -> dict:
    """Every stage on a fresh lake, in a process of its own: the engine sizes its Spark session for
    this extract (the `local` profile's `auto` settings), as a run of `cohort-engine run` would."""
    source = base / f"extract-{n}"
    result = {"patients": n}
    if not (source / "truth" / "manifest.json").exists():
        result["generate"] = generate_extract(n, source, conf)
    figures = base / f"result-{n}.json"
    figures.unlink(missing_ok=True)
    if subprocess.call([sys.executable, __file__, "--one-size", str(n), "--dir", str(base), *conf]):
        raise SystemExit(f"the pipeline failed at {n} patients")
    result.update(json.loads(figures.read_text()))
    return result


def run_stages(n: int, base: Path, conf: list[str]) -> dict:
    """(In the child process) every stage, timed one by one in one Spark session, with Spark's event
    log on: each stage's task seconds and shuffle bytes are read back from it."""
    from pyspark.sql import SparkSession

    source, lake, out, events = base / f"extract-{n}", base / f"lake-{n}", base / f"out-{n}", base / f"events-{n}"
    environ = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    for folder in (lake, out, events):
        shutil.rmtree(folder, ignore_errors=True)
    events.mkdir(parents=True)
    conf = [*conf, "--spark-conf", "spark.eventLog.enabled=true", "--spark-conf",
            f"spark.eventLog.dir={events.resolve().as_uri()}", "--spark-conf", "spark.eventLog.compress=false"]
    rx_rows, all_rows = prescription_rows(source)
    result = {"prescription_rows": rx_rows, "source_rows": all_rows, "stages": {}}
    for stage in STAGES:
        started = time.perf_counter()
        with PeakMemory() as peak:
            code = main(["run", "--source", str(source), "--lake", str(lake), "--out", str(out),
                         "--stages", stage, "--quiet", *conf], environ)
        seconds = time.perf_counter() - started
        if code:
            raise SystemExit(f"stage {stage} failed at {n} patients")
        result["stages"][stage] = {"seconds": round(seconds, 1), "peak_pss_gb": round(peak.peak / 2**30, 2),
                                   "prescription_rows_per_s": round(rx_rows / seconds)}
        print(f"{n:>9,} patients  {stage:<9} {seconds:8.1f} s  peak {peak.peak / 2**30:5.2f} GB  "
              f"{rx_rows / seconds:>12,.0f} prescription rows/s", flush=True)
    spark = SparkSession.getActiveSession()
    result["spark"] = {k: spark.conf.get(k) for k in ("spark.driver.memory", "spark.sql.shuffle.partitions")}
    spark.stop()
    (log_file,) = [p for p in events.iterdir() if not p.name.endswith(".inprogress")]
    loads = stage_loads(read_event_log(log_file))
    for stage in STAGES:
        load = loads.get(stage, {"task_seconds": 0.0, "busy_seconds": 0.0})
        seconds = result["stages"][stage]["seconds"]
        result["stages"][stage].update({k: v for k, v in load.items()},
                                       driver_only_seconds=round(max(seconds - load["busy_seconds"], 0.0), 1))
    total = sum(s["seconds"] for s in result["stages"].values())
    result["pipeline_seconds"] = round(total, 1)
    result["pipeline_peak_pss_gb"] = max(s["peak_pss_gb"] for s in result["stages"].values())
    cohort = json.loads((out / "run_manifest.json").read_text())["row_counts"]["analysis"]["cohort_patients"]
    result["cohort_patients"] = cohort
    print(f"{n:>9,} patients  pipeline  {total:8.1f} s  peak {result['pipeline_peak_pss_gb']:5.2f} GB  "
          f"{rx_rows / total:>12,.0f} prescription rows/s  ({all_rows:,} source rows, cohort {cohort}; "
          f"heap {result['spark']['spark.driver.memory']}, {result['spark']['spark.sql.shuffle.partitions']} "
          "shuffle partitions)", flush=True)
    return result


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path("bench-out"))
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--one-size", type=int, help=argparse.SUPPRESS)  # the child process of one size
    parser.add_argument("--generate-only", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    conf = [x for kv in args.spark_conf for x in ("--spark-conf", kv)]
    if args.generate_only:
        return main(["generate", "--out", str(args.out), "--patients", str(args.generate_only), "--seed", "1",
                     "--quiet", *conf], dict(os.environ, PYSPARK_PYTHON=sys.executable))
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.one_size:
        figures = run_stages(args.one_size, args.dir, conf)
        (args.dir / f"result-{args.one_size}.json").write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    results = [bench_size(n, args.dir, conf) for n in args.patients]
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1)},
              "results": results}
    (args.dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
