"""Benchmark of gold/therapy_lines on synthetic exposures built in Spark.

    .venv/bin/python benchmarks/lines_bench.py --patients 250000 [500000 1000000] [--master local[2]]

Each patient gets ~30 exposures (10 cycles of 3 drugs, one of them supportive in
the first cycles), some with a treatment gap and a switch, 60 % with an advanced
date, so that patients have 2–4 lines across both settings. The exposures are
written to Parquet first (not timed), then the lines are computed from the Parquet
files and written to the `noop` sink (timed): the time covers the read, the
shuffle, the sort and the Arrow walk, as in a real run.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from pyspark.sql import functions as F

from cohort_engine.study_config import LinesConfig
from cohort_engine.lines import build_therapy_lines
from cohort_engine.session import build_session

CYCLES = 10
CLASSES = {
    "epirubicin": "chemo_other", "cyclophosphamide": "chemo_other", "dexamethasone": "supportive",
    "docetaxel": "taxane", "paclitaxel liposome": "taxane", "trastuzumab": "anti_her2_mab",
    "pertuzumab": "anti_her2_mab", "trastuzumab deruxtecan": "anti_her2_adc", "letrozole": "endocrine",
}


def synthetic_exposures(spark, n_patients: int):
    ids = spark.range(n_patients).select(
        F.format_string("P%09d", "id").alias("patient_id"),
        F.pmod(F.hash("id"), F.lit(3000)).alias("start"),
        F.pmod(F.hash("id", F.lit(1)), F.lit(100)).alias("u1"),
        F.pmod(F.hash("id", F.lit(2)), F.lit(100)).alias("u2"))
    cycles = ids.select("*", F.explode(F.sequence(F.lit(0), F.lit(CYCLES - 1))).alias("cycle"))
    # Early EC × 3, then a taxane with HP × 3, then HP maintenance or T-DXd; 25 % pause 130 days first.
    day = (F.col("start") + F.col("cycle") * 21
           + F.when((F.col("cycle") >= 6) & (F.col("u1") < 25), F.lit(130)).otherwise(F.lit(0)))
    drugs = (F.when(F.col("cycle") < 3, F.array(F.lit("epirubicin"), F.lit("cyclophosphamide"), F.lit("dexamethasone")))
             .when(F.col("cycle") < 6, F.array(F.when(F.col("u2") < 50, F.lit("paclitaxel liposome"))
                                               .otherwise(F.lit("docetaxel")),
                                               F.lit("trastuzumab"), F.lit("pertuzumab")))
             .when(F.col("u2") < 30, F.array(F.lit("trastuzumab deruxtecan"), F.lit("dexamethasone"), F.lit("letrozole")))
             .otherwise(F.array(F.lit("trastuzumab"), F.lit("pertuzumab"), F.lit("letrozole"))))
    classes = F.create_map(*[F.lit(x) for kv in CLASSES.items() for x in kv])
    exposures = (cycles.select("patient_id", "u1", F.date_add(F.lit("2015-01-01").cast("date"), day.cast("int")).alias("admin_date"),
                               F.explode(drugs).alias("ingredient"))
                 .withColumn("drug_class", classes[F.col("ingredient")])
                 .withColumn("counts_for_lines", F.col("drug_class") != "supportive")
                 .select("patient_id", "admin_date", "ingredient", "drug_class", "counts_for_lines"))
    advanced = (ids.where(F.col("u1") < 60)
                .select("patient_id", F.date_add(F.lit("2015-01-01").cast("date"),
                                                 (F.col("start") + 100).cast("int")).alias("advanced_date")))
    return exposures, advanced


def run(spark, n_patients: int, work: Path) -> dict:
    exposures, advanced = synthetic_exposures(spark, n_patients)
    exposures.write.mode("overwrite").parquet(str(work / f"exposures_{n_patients}"))
    advanced.write.mode("overwrite").parquet(str(work / f"advanced_{n_patients}"))
    exposures = spark.read.parquet(str(work / f"exposures_{n_patients}"))
    advanced = spark.read.parquet(str(work / f"advanced_{n_patients}"))
    n_rows = exposures.count()

    started = time.perf_counter()
    lines = build_therapy_lines(exposures, advanced, LinesConfig())
    lines.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - started
    n_lines = build_therapy_lines(exposures, advanced, LinesConfig()).count()
    return {"patients": n_patients, "exposure_rows": n_rows, "lines": n_lines, "seconds": round(seconds, 1),
            "rows_per_second": round(n_rows / seconds), "patients_per_second": round(n_patients / seconds)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--master", default=None, help="Spark master (default: the local profile's)")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one, removed after)")
    args = parser.parse_args(argv)
    spark = build_session("local", master=args.master)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="lines_bench_"))
    try:
        print("patients,exposure_rows,lines,seconds,rows_per_second,patients_per_second", flush=True)
        for n in args.patients:
            r = run(spark, n, work)
            print(",".join(str(r[k]) for k in ("patients", "exposure_rows", "lines", "seconds", "rows_per_second",
                                                "patients_per_second")), flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
