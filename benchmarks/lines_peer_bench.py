"""The lines stage against its DuckDB peer, on the same exposures and cores, in one run.

    .venv/bin/python benchmarks/lines_peer_bench.py [--patients 250000 1000000] [--runs 3]
        [--master local[2]] [--profile local-large] [--peer-dir ../shared/peers] [--dir bench-out/lines-peer]

For each patient count the peer folder's `make_exposures.py` writes the exposures
once (cached under --dir). Then, back to back, --runs times: the peer
`lines_duckdb.py` in a subprocess (its wall time, start included, with --threads =
the Spark session's cores) and the engine's `build_therapy_lines` read from and
written to Parquet (the session is started once before; its start is reported, not
counted, as the peer's own start is tiny). Both outputs must hold the same lines
(patient_id, setting, line_number, start_date, last_admin_date, regimen), else the
run fails. Prints engine s, DuckDB s (medians), their ratio and the lines, and
writes the figures to --dir/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cohort_engine.lines import build_therapy_lines
from cohort_engine.session import build_session
from cohort_engine.study_config import LinesConfig

REPO = Path(__file__).resolve().parents[1]
# The peer's rules (lines_duckdb.DEFAULT_PARAMS), which its generated data are drawn for.
PEER_LINES_CONFIG = LinesConfig(
    substitutions=(("paclitaxel", "paclitaxel liposome", "nab-paclitaxel"), ("cisplatin", "carboplatin")),
    additions_without_new_line=("endocrine",))
COMPARED = ("patient_id", "setting", "line_number", "start_date", "last_admin_date", "regimen")
SEED = 7


def exposures_folder(peer_dir: Path, out_dir: Path, n_patients: int) -> Path:
    folder = out_dir / f"p{n_patients}"
    if not (folder / "exposures.parquet").exists() or not (folder / "advanced.parquet").exists():
        subprocess.run([sys.executable, str(peer_dir / "make_exposures.py"), "--patients", str(n_patients),
                        "--seed", str(SEED), "--out", str(folder)], check=True)
    return folder


def run_peer(peer_dir: Path, folder: Path, threads: int) -> float:
    out = folder / "duckdb_lines.parquet"
    started = time.perf_counter()
    subprocess.run([sys.executable, str(peer_dir / "lines_duckdb.py"), str(folder / "exposures.parquet"),
                    str(folder / "advanced.parquet"), str(out), "--threads", str(threads), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_engine(spark, folder: Path) -> float:
    out = folder / "engine_lines"
    started = time.perf_counter()
    exposures = spark.read.parquet(str(folder / "exposures.parquet"))
    advanced = spark.read.parquet(str(folder / "advanced.parquet"))
    build_therapy_lines(exposures, advanced, PEER_LINES_CONFIG).write.mode("overwrite").parquet(str(out))
    return time.perf_counter() - started


def compared_lines(path: Path, schema: pa.Schema) -> pa.Table:
    table = pq.read_table(str(path), columns=list(COMPARED)).cast(schema)
    return table.sort_by([(c, "ascending") for c in COMPARED])


def check_agreement(folder: Path) -> int:
    """The number of lines, when engine and peer hold the same ones; a disagreement raises."""
    engine = pq.read_table(str(folder / "engine_lines"), columns=list(COMPARED))
    engine = engine.sort_by([(c, "ascending") for c in COMPARED])
    peer = compared_lines(folder / "duckdb_lines.parquet", engine.schema)
    if engine.equals(peer):
        return engine.num_rows
    engine_rows, peer_rows = set(zip(*engine.to_pydict().values())), set(zip(*peer.to_pydict().values()))
    only_engine, only_peer = sorted(engine_rows - peer_rows), sorted(peer_rows - engine_rows)
    raise SystemExit(f"{folder}: engine and DuckDB disagree: {engine.num_rows} vs {peer.num_rows} lines, "
                     f"{len(only_engine)} only in the engine (e.g. {only_engine[:3]}), "
                     f"{len(only_peer)} only in DuckDB (e.g. {only_peer[:3]})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--profile", default="local-large", help="Spark profile of the session")
    parser.add_argument("--peer-dir", type=Path, default=REPO.parent / "shared" / "peers")
    parser.add_argument("--dir", type=Path, default=REPO / "bench-out" / "lines-peer")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    folders = {n: exposures_folder(args.peer_dir, args.dir, n) for n in args.patients}

    started = time.perf_counter()
    spark = build_session(args.profile, master=args.master)
    session_seconds = time.perf_counter() - started
    cores = spark.sparkContext.defaultParallelism
    print(f"session start {session_seconds:.1f} s (master {spark.sparkContext.master}, {cores} cores, "
          f"profile {args.profile}, not counted); load average {os.getloadavg()[0]:.2f}", flush=True)
    print("patients,exposure_rows,lines,engine_s,duckdb_s,ratio,engine_runs,duckdb_runs", flush=True)
    results = []
    for n, folder in folders.items():
        engine_runs, peer_runs = [], []
        for _ in range(args.runs):
            peer_runs.append(run_peer(args.peer_dir, folder, cores))
            engine_runs.append(run_engine(spark, folder))
        n_lines = check_agreement(folder)
        engine_s, peer_s = statistics.median(engine_runs), statistics.median(peer_runs)
        result = {"patients": n, "exposure_rows": pq.ParquetFile(folder / "exposures.parquet").metadata.num_rows,
                  "lines": n_lines, "engine_s": round(engine_s, 2), "duckdb_s": round(peer_s, 2),
                  "ratio": round(engine_s / peer_s, 2), "engine_runs": [round(s, 2) for s in engine_runs],
                  "duckdb_runs": [round(s, 2) for s in peer_runs], "cores": cores,
                  "session_start_s": round(session_seconds, 1), "load_average_after": os.getloadavg()[0]}
        results.append(result)
        print(",".join(str(result[k]) if k not in ("engine_runs", "duckdb_runs")
                       else "/".join(map(str, result[k]))
                       for k in ("patients", "exposure_rows", "lines", "engine_s", "duckdb_s", "ratio",
                                 "engine_runs", "duckdb_runs")), flush=True)
        shutil.rmtree(folder / "engine_lines", ignore_errors=True)
    (args.dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    spark.stop()


if __name__ == "__main__":
    main()
