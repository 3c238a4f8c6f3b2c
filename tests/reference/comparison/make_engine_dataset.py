"""Writes engine_dataset.csv, the engine's own analysis data that engine_reference.R reads:
gold/comparison_dataset of a run of the two-arm study (her2_taxane_arms_first_line), its OS
and TTP rows only (they keep the file small: the other endpoints go through the same code),
every column but the study's name.

Each patient_id is replaced by a running number (no identifier of the extract is in the
repository): the patient's place in gold/cohort as the engine read it and matched the
patients, which is Spark's reading of the table's files, the largest first (Spark packs a
small table's files into one partition by size, descending). The order matters: patients
with the same covariates have the same score, and MatchIt and the engine both take tied
treated patients in the data's order, so another numbering (by patient_id, or in the order
the deltalake package reads the files) could hand a comparator to another of them. In this
order the engine's pair numbers (1, 2, … in the treated patients' order) come out again.

Run from the repository root with the project's venv, the study's gold folder as argument:
    python tests/reference/comparison/make_engine_dataset.py <lake>/gold/studies/her2_taxane_arms_first_line
"""
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

ENDPOINTS = ["OS", "TTP"]

gold = Path(sys.argv[1])
files = pa.table(DeltaTable(str(gold / "cohort")).get_add_actions(flatten=True)).to_pandas()
files = files.sort_values("size_bytes", ascending=False, kind="stable")
cohort_order = pd.concat([pd.read_parquet(gold / "cohort" / path, columns=["patient_id"]) for path in files["path"]],
                         ignore_index=True)["patient_id"]
numbers = dict(zip(cohort_order, range(1, len(cohort_order) + 1)))
table = DeltaTable(str(gold / "comparison_dataset")).to_pandas()
kept = table[table["endpoint"].isin(ENDPOINTS)].drop(columns="study")
kept = kept.assign(patient_id=kept["patient_id"].map(numbers)).sort_values(["patient_id", "endpoint"])
kept.to_csv(Path(__file__).parent / "engine_dataset.csv", index=False)
