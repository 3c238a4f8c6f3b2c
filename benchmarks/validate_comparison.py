"""Validation of the comparative study against a planted truth (not a timed test).

    .venv/bin/python benchmarks/validate_comparison.py --patients 400000 --seed 11 --work /tmp/validate

Generates a clean extract with the confounded taxane choice (`generate --confounded-taxane`:
the taxane depends on covariates that also drive the outcomes, with planted effects of
paclitaxel liposome), runs the shipped two-arm study on it, and prints per effect the
truth (the marginal effect over the two-arm cohort, from both potential outcomes of every
patient: truth/effects), the naive estimate and the weighted one (the study's primary
weights), each with its 95% CI, from the lake's exact analysis data
(gold/comparison_dataset, gold/safety_events) through the engine's own estimators. The
weighted CI should cover the truth, the naive one should not.

Effects and the engine endpoints that estimate them (docs/generator.md): progression → TTP,
progression-free → rwPFS (approximately), death → OS (no effect planted), grade ≥ 3
hypersensitivity ("Allergic reaction") → the safety window's risk difference and ratio.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from cohort_engine.comparison import hazard_ratio, risk_comparison  # noqa: E402

STUDY = Path(__file__).resolve().parents[1] / "conf/studies/her2_taxane_arms_first_line.yaml"
TREATED = "paclitaxel_liposome"
ENDPOINTS = {"progression": "TTP", "progression_free": "rwPFS", "death": "OS"}
HYPERSENSITIVITY = "Allergic reaction"


def _engine(*args: str) -> None:
    started = time.time()
    subprocess.run([sys.executable, "-m", "cohort_engine", *args], check=True)
    print(f"# cohort-engine {args[0]}: {time.time() - started:.0f} s", flush=True)


def _delta(lake: Path, name: str) -> pd.DataFrame:
    from deltalake import DeltaTable
    found = sorted(p.parent for p in lake.glob(f"gold/**/{name}/_delta_log"))
    if len(found) != 1:
        raise SystemExit(f"expected one gold table {name} under {lake}, found {found}")
    return DeltaTable(str(found[0])).to_pandas()


def _interval(row: dict, value: str, low: str, high: str) -> str:
    return f"{row[value]:.3f} ({row[low]:.3f}–{row[high]:.3f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, required=True, help="folder for the extract, the lake and the outputs")
    args = parser.parse_args(argv)
    extract, lake, out = args.work / "extract", args.work / "lake", args.work / "out"
    if not (extract / "truth" / "effects").exists():
        _engine("generate", "--out", str(extract), "--patients", str(args.patients), "--seed", str(args.seed),
                "--clean", "--confounded-taxane")
    if not list(lake.glob("gold/**/comparison_dataset/_delta_log")):
        _engine("run", "--source", str(extract), "--lake", str(lake), "--out", str(out), "--study", str(STUDY))

    truth = pd.read_parquet(extract / "truth" / "effects")
    ate = truth[truth["estimand"] == "ATE"].set_index(["effect", "measure"])["value"]
    dataset = _delta(lake, "comparison_dataset")
    events = _delta(lake, "safety_events")
    patients = dataset.drop_duplicates("patient_id")
    print(f"# {args.patients:,} patients generated (seed {args.seed}); two-arm cohort {len(patients):,} "
          f"({(patients['arm'] == TREATED).sum():,} paclitaxel liposome); weighted rows exclude "
          f"{patients['weight'].isna().sum()} trimmed")
    rows = []
    for effect, endpoint in ENDPOINTS.items():
        frame = dataset[dataset["endpoint"] == endpoint]
        naive, _ = hazard_ratio(frame, TREATED, weight_col=None)
        weighted, _ = hazard_ratio(frame[frame["weight"].notna()], TREATED, weight_col="weight")
        rows.append((effect, endpoint, "hazard ratio", ate[(effect, "hazard_ratio")], naive, weighted,
                     ("hr", "ci_low", "ci_high")))
    severe = events[(events["term"] == HYPERSENSITIVITY) & (events["grade"].fillna(0) >= 3)]["patient_id"]
    flags = patients.assign(severe=patients["patient_id"].isin(set(severe)).astype(int), naive_weight=1.0)
    naive = risk_comparison(flags, TREATED, weight_col="naive_weight")
    weighted = risk_comparison(flags[flags["weight"].notna()], TREATED, weight_col="weight")
    for measure, keys, scale in (("risk_difference", ("risk_difference_percent", "risk_difference_ci_low",
                                                       "risk_difference_ci_high"), 100.0),
                                 ("risk_ratio", ("risk_ratio", "risk_ratio_ci_low", "risk_ratio_ci_high"), 1.0)):
        rows.append(("hypersensitivity_g3", "safety: grade ≥ 3 Allergic reaction", measure,
                     ate[("hypersensitivity_g3", measure)] * scale, naive, weighted, keys))
    print("| effect | engine estimate | measure | truth (ATE) | naive (95% CI) | weighted (95% CI) | "
          "weighted CI covers truth | naive CI covers truth |")
    print("|---|---|---|---|---|---|---|---|")
    for effect, endpoint, measure, value, naive, weighted, (point, low, high) in rows:
        print(f"| {effect} | {endpoint} | {measure} | {value:.3f} | {_interval(naive, point, low, high)} | "
              f"{_interval(weighted, point, low, high)} | {'yes' if weighted[low] <= value <= weighted[high] else 'NO'} | "
              f"{'yes' if naive[low] <= value <= naive[high] else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
