"""Scale benchmark: the whole pipeline on generated extracts of several sizes.

    python benchmarks/pipeline_bench.py --patients 250000 500000 1000000 --dir bench-out

For each size: generates the extract once (kept for reruns), then runs every stage
on a fresh lake and prints, per stage, wall time, peak memory of the whole Spark
process tree (driver JVM + Python workers + this driver, sampled from /proc every
0.25 s) and prescription rows per second. Results go to <dir>/bench.json.
A benchmark, not a test: the figures depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

from cohort_engine.cli import main

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


def bench_size(n: int, base: Path, conf: list[str]) -> dict:
    source, lake, out = base / f"extract-{n}", base / f"lake-{n}", base / f"out-{n}"
    environ = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    result = {"patients": n, "stages": {}}
    if not (source / "truth" / "manifest.json").exists():
        started = time.perf_counter()
        with PeakMemory() as peak:
            code = main(["generate", "--out", str(source), "--patients", str(n), "--seed", "1", "--quiet", *conf],
                        environ)
        if code:
            raise SystemExit(f"generate {n} failed")
        result["generate"] = {"seconds": round(time.perf_counter() - started, 1), "peak_pss_gb": round(peak.peak / 2**30, 2)}
    rx_rows, all_rows = prescription_rows(source)
    result.update(prescription_rows=rx_rows, source_rows=all_rows)
    shutil.rmtree(lake, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
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
    total = sum(s["seconds"] for s in result["stages"].values())
    result["pipeline_seconds"] = round(total, 1)
    result["pipeline_peak_pss_gb"] = max(s["peak_pss_gb"] for s in result["stages"].values())
    cohort = json.loads((out / "run_manifest.json").read_text())["row_counts"]["analysis"]["cohort_patients"]
    result["cohort_patients"] = cohort
    print(f"{n:>9,} patients  pipeline  {total:8.1f} s  peak {result['pipeline_peak_pss_gb']:5.2f} GB  "
          f"{rx_rows / total:>12,.0f} prescription rows/s  ({all_rows:,} source rows, cohort {cohort})", flush=True)
    return result


def run(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path("bench-out"))
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    conf = [x for kv in args.spark_conf for x in ("--spark-conf", kv)]
    results = [bench_size(n, args.dir, conf) for n in args.patients]
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "memory_gb": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1)},
              "driver_max_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
              "results": results}
    (args.dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
