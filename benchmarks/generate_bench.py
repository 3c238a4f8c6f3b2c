"""Benchmark of the synthetic extract generation (Spark, local mode).

    .venv/bin/python benchmarks/generate_bench.py --patients 1000000 [--out DIR] [--format parquet]
    /usr/bin/time -v .venv/bin/python benchmarks/generate_bench.py --patients 1000000

Prints the wall time, the peak resident memory of the Python driver, of the Spark
JVM and of the Python workers (sampled from /proc every second; with
`/usr/bin/time -v` the "Maximum resident set size" line is the largest single
process of the tree), and the rows written per table. The output folder is
deleted at the end unless --keep is given.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from cohort_engine.session import build_session  # noqa: E402
from cohort_engine.synth import generate_extract  # noqa: E402


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[tuple[int, str]]:
    parent, name = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        name[pid] = stat[stat.index("(") + 1:stat.rindex(")")]
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += [(c, name[c]) for c in kids]
        todo += kids
    return out


class MemorySampler(threading.Thread):
    """Peak RSS of the driver, the JVM and the sum of Python workers."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {"driver_python": 0, "spark_jvm": 0, "python_workers": 0}
        self._halt = threading.Event()

    def run(self):
        me = os.getpid()
        while not self._halt.is_set():
            jvm = workers = 0
            for pid, name in _descendants(me):
                if name == "java":
                    jvm += _rss_kb(pid)
                elif name.startswith("python"):
                    workers += _rss_kb(pid)
            self.peak["driver_python"] = max(self.peak["driver_python"], _rss_kb(me))
            self.peak["spark_jvm"] = max(self.peak["spark_jvm"], jvm)
            self.peak["python_workers"] = max(self.peak["python_workers"], workers)
            self._halt.wait(1.0)

    def stop(self):
        self._halt.set()
        self.join()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    parser.add_argument("--clean", action="store_true")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary folder)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--keep", action="store_true", help="keep the generated extract")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="synth-bench-")) / "extract"
    spark = build_session("local", master=args.master, overrides={"spark.driver.memory": "4g",
                                                                   "spark.ui.showConsoleProgress": "false"})
    sampler = MemorySampler()
    sampler.start()
    start = time.perf_counter()
    counts = generate_extract(spark, out, args.patients, args.seed, fmt=args.format, clean=args.clean,
                              progress=lambda msg: print(f"[{time.perf_counter() - start:7.1f}s] {msg}",
                                                         flush=True))
    seconds = time.perf_counter() - start
    sampler.stop()
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    spark.stop()
    report = {
        "patients": args.patients, "format": args.format, "clean": args.clean, "master": args.master,
        "seconds": round(seconds, 1),
        "peak_rss_mb": {k: round(v / 1024) for k, v in sampler.peak.items()},
        "driver_python_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "jvm_heap_limit": "spark.driver.memory=4g",
        "bytes_written": size, "rows": counts, "total_rows": sum(v for k, v in counts.items()
                                                                 if not k.startswith("truth/")),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if not args.keep:
        shutil.rmtree(out.parent if not args.out else out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
