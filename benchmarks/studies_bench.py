"""Benchmark: the five shipped studies run together against the seed study alone.

    .venv/bin/python benchmarks/studies_bench.py [--patients 20000] [--seed 42] [--keep DIR]

Generates one clean extract, then runs the whole pipeline (ingest, lines, cohort,
endpoints, analysis) twice on fresh lakes, each in its own process (as a user runs
it): the seed study alone, then the five shipped studies with one `--study` each.
Prints the wall time of each run, the time per stage from the run manifests, and
the ratio (five together / seed alone). Writes bench-out/studies_bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDIES = ["her2_paclitaxel_liposome", "docetaxel_hp_first_line", "hr_positive_cdk46_first_line",
           "her2_pyrotinib_capecitabine_second_line", "her2_taxane_arms_first_line"]


def cli(*args: str) -> float:
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cohort_engine", *args, "--quiet"], check=True, env=env)
    return time.perf_counter() - started


def stage_times(manifest: Path) -> dict[str, float]:
    return json.loads(manifest.read_text())["timings_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, default=None, help="keep the extract, lakes and outputs here")
    args = parser.parse_args()
    from cohort_engine.conf_folder import default_study_path
    folder = default_study_path({}).parent
    base = args.keep or Path(tempfile.mkdtemp(prefix="studies-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        generate = cli("generate", "--out", str(base / "extract"), "--patients", str(args.patients),
                       "--seed", str(args.seed), "--clean")
        alone = cli("run", "--source", str(base / "extract"), "--lake", str(base / "lake1"), "--out",
                    str(base / "out1"), "--study", str(folder / f"{STUDIES[0]}.yaml"))
        studies = [a for s in STUDIES for a in ("--study", str(folder / f"{s}.yaml"))]
        together = cli("run", "--source", str(base / "extract"), "--lake", str(base / "lake5"), "--out",
                       str(base / "out5"), *studies)
        result = {
            "patients": args.patients, "generate_seconds": round(generate, 1),
            "seed_alone_seconds": round(alone, 1), "five_together_seconds": round(together, 1),
            "ratio": round(together / alone, 3),
            "seed_alone_stages": stage_times(base / "out1" / "run_manifest.json"),
            "five_together_stages": {s: stage_times(base / "out5" / s / "run_manifest.json") for s in STUDIES},
        }
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"patients {args.patients}: seed study alone {result['seed_alone_seconds']} s; five studies together "
          f"{result['five_together_seconds']} s; ratio {result['ratio']}")
    print("seed alone, per stage (s):", result["seed_alone_stages"])
    for study, times in result["five_together_stages"].items():
        own = {k: v for k, v in times.items() if k in ("cohort", "endpoints", "analysis")}
        print(f"  {study}: {own}")
    shared = result["five_together_stages"][STUDIES[0]]
    print("shared stages of the five (s):", {k: v for k, v in shared.items() if k in ("ingest", "lines")})
    Path("bench-out").mkdir(exist_ok=True)
    Path("bench-out/studies_bench.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
