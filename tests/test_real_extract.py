"""A study from an extract written as hospital systems export it equals the study from the
plain extract of the same seed.

The generator writes the same clean simulation twice: once plain (UTF-8 Parquet, canonical
drug names, ISO dates) and once as hospitals export it (GB18030 CSV, drug names printed with
brands, makers and strengths in brackets, dates as date-times, slashed, dotted, compact and
Chinese forms). Nothing of the second may change a line, a cohort member or an endpoint.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from cohort_engine.cli import main

PATIENTS = 1500
SEED = 5
CUTOFF = dt.date(2025, 6, 30)
ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}
STAGES = "ingest,lines,cohort,endpoints"


def _run(spark, base, **options):
    from cohort_engine.synth import generate_extract
    generate_extract(spark, base / "extract", patients=PATIENTS, seed=SEED, clean=True, cutoff=CUTOFF, **options)
    code = main(["run", "--source", str(base / "extract"), "--lake", str(base / "lake"), "--out", str(base / "out"),
                 "--stages", STAGES, "--quiet"], ENV)
    assert code == 0
    return base


@pytest.fixture(scope="module")
def plain(spark, tmp_path_factory):
    return _run(spark, tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def hospital(spark, tmp_path_factory):
    return _run(spark, tmp_path_factory.mktemp("hospital"), fmt="csv", encoding="gb18030", hospital_forms=True)


def gold(base, name, order):
    from deltalake import DeltaTable
    frame = DeltaTable(str(base / "lake" / name)).to_pandas()
    return frame.sort_values(order).reset_index(drop=True)


def test_the_export_is_really_written_as_hospitals_write_it(hospital):
    raw = (hospital / "extract" / "prescriptions.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = pd.read_csv(hospital / "extract" / "prescriptions.csv", encoding="gb18030", dtype=str)
    assert text["drug_name"].str.contains(r"[(（【\[]").mean() > 0.2          # bracketed brands, makers
    assert text["admin_date"].str.contains(":").mean() > 0.03               # date-times
    assert text["admin_date"].str.contains("/").mean() > 0.03               # slashed dates
    assert text["admin_date"].str.contains("年").mean() > 0.005              # 2019年3月5日


@pytest.mark.parametrize("table, order", [
    ("silver/drug_exposures", ["record_id", "ingredient"]),
    ("gold/therapy_lines", ["patient_id", "setting", "line_number"]),
    ("gold/cohort", ["patient_id"]),
    ("gold/attrition", ["step"]),
    ("gold/endpoints", ["patient_id", "endpoint"]),
])
def test_the_study_is_the_same(plain, hospital, table, order):
    expected, got = gold(plain, table, order), gold(hospital, table, order)
    if table == "silver/drug_exposures":  # the names as written differ, by design
        expected, got = expected.drop(columns="drug_name"), got.drop(columns="drug_name")
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)
