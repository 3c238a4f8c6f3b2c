"""Incremental loads: `run --incremental` merges a new monthly extract into bronze.

First by hand: two small monthly extracts whose every row says what must become of
it. Then on a generated extract: month A, then the rows after A merged in, must give
the lake a full load of the whole extract gives.
"""
from __future__ import annotations

import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from cohort_engine.cli import main
from cohort_engine.contract import EVENT_DATE, SOURCE_TABLES
from test_replay import ENV, gold_frame, reference_run

HEADERS = {
    "hospitals": "hospital_id,tier,province,hospital_type",
    "patients": "patient_id,sex,birth_date,id_hash,province",
    "deaths": "id_hash,death_date,cause_icd10",
    "diagnoses": "patient_id,hospital_id,diagnosis_date,icd10,stage,diagnosis_text",
    "biomarkers": "patient_id,test_date,marker,method,result",
    "prescriptions": "record_id,patient_id,hospital_id,admin_date,drug_name,drug_code,dose,dose_unit,route",
}

MONTH_1 = {  # cut-off 2025-01-31
    "hospitals": ["H1,3A,北京,oncology"],
    "patients": ["P1,F,1970-01-01,h1,北京", "P2,F,1980-05-05,h2,北京"],
    "deaths": ["h1,2024-12-01,C50.9"],
    "diagnoses": ["P1,H1,2020-01-01,C50.9,IV,"],
    "biomarkers": ["P1,2020-01-05,HER2,IHC,3+"],
    "prescriptions": ["R1,P1,H1,2024-11-01,曲妥珠单抗,,440,mg,iv",
                      "R2,P1,H1,2024-11-22,曲妥珠单抗,,440,mg,iv",
                      "R3,P2,H1,2024-12-01,卡培他滨,,0,mg,po"],  # non_positive_dose
}

MONTH_2 = {  # cut-off 2025-02-28; patients and hospitals are whole snapshots again
    "hospitals": ["H1,3A,北京,oncology", "H2,2B,广东,general"],
    "patients": ["P1,F,1970-01-01,h1,北京", "P2,F,1980-05-05,h2,北京", "P3,M,1975-03-03,h3,上海"],
    "deaths": ["h1,2024-12-01,C50.9",  # in the lake already
               "h3,2025-02-01,C50.9"],  # new
    "diagnoses": ["P1,H1,2020-01-01,C50.9,IV,",  # in the lake already
                  "P3,H1,2025-01-10,C50.9,IV,"],  # new
    "biomarkers": ["P1,2020-01-05,HER2,IHC,3+"],  # in the lake already: nothing to add
    "prescriptions": ["R2,P1,H1,2024-11-22,曲妥珠单抗,,440,mg,iv",  # in the lake already
                      "R4,P1,H1,2025-02-10,曲妥珠单抗,,440,mg,iv",  # new
                      "R1,P1,H1,2024-11-01,曲妥珠单抗,,420,mg,iv",  # R1 with another dose: conflicting_record_id
                      "R3,P2,H1,2024-12-01,卡培他滨,,0,mg,po",  # the same bad row: quarantined, stored once
                      "R5,P3,H1,2025-02-11,卡培他滨,,1000,mg,po",  # new
                      "R5,P3,H1,2025-02-11,卡培他滨,,1000,mg,po"],  # exact duplicate within the extract
}


def write_month(folder, tables):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        (folder / f"{name}.csv").write_text("\n".join([HEADERS[name], *rows]) + "\n", encoding="utf-8")
    return folder


def ingest_run(src, lake, out, cutoff, *extra):
    return main(["run", "--source", str(src), "--lake", str(lake), "--out", str(out), "--stages", "ingest",
                 "--cutoff", cutoff, "--quiet",
                 # These months are a few rows each, one bad row in three: far above the share at
                 # which a run stops as a misread extract.
                 "--max-rejected-share", "1", *extra], ENV)


def table(lake, key):
    from deltalake import DeltaTable
    return DeltaTable(str(lake / key))


def ingest_counts(lake, name):
    dq = table(lake, "gold/data_quality").to_pandas()
    rows = dq[(dq["stage"] == "ingest") & (dq["table"] == name) & dq["reason"].isna()]
    return {check: int(n) for check, n in zip(rows["check"], rows["n"])}


@pytest.fixture(scope="module")
def two_months(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("monthly")
    write_month(base / "m1", MONTH_1)
    write_month(base / "m2", MONTH_2)
    assert ingest_run(base / "m1", base / "lake", base / "out1", "2025-01-31") == 0
    after_1 = {k: table(base / "lake", k).version() for k in ("bronze/prescriptions", "bronze/biomarkers")}
    assert ingest_run(base / "m2", base / "lake", base / "out2", "2025-02-28", "--incremental") == 0
    return base, after_1


def test_second_month_adds_only_what_the_lake_lacks(two_months):
    base, after_1 = two_months
    lake = base / "lake"
    rx = table(lake, "bronze/prescriptions").to_pandas().sort_values("record_id")
    # R1 keeps its first-loaded dose 440; R2 is not doubled; R4 and R5 are new.
    assert rx["record_id"].tolist() == ["R1", "R2", "R4", "R5"]
    assert rx["dose"].tolist() == [440.0, 440.0, 440.0, 1000.0]
    quarantine = table(lake, "quarantine/prescriptions").to_pandas().sort_values("record_id")
    assert list(zip(quarantine["record_id"], quarantine["reason"])) == [
        ("R1", "conflicting_record_id"), ("R3", "non_positive_dose")]
    assert sorted(table(lake, "bronze/deaths").to_pandas()["id_hash"]) == ["h1", "h3"]
    assert len(table(lake, "bronze/diagnoses").to_pandas()) == 2
    assert sorted(table(lake, "bronze/patients").to_pandas()["patient_id"]) == ["P1", "P2", "P3"]  # replaced
    assert sorted(table(lake, "bronze/hospitals").to_pandas()["hospital_id"]) == ["H1", "H2"]
    # Nothing new in biomarkers: no commit at all.
    assert table(lake, "bronze/biomarkers").version() == after_1["bronze/biomarkers"]
    # The append carries the month's transaction id (since the full load of version 1).
    assert table(lake, "bronze/prescriptions").version() == after_1["bronze/prescriptions"] + 1
    assert table(lake, "bronze/prescriptions").transaction_version(
        "cohort-engine/ingest/prescriptions/since-full-1") == 20250228


def test_second_month_counts_balance(two_months):
    base, _ = two_months
    # 6 read = 2 kept (R4, R5) + 2 duplicates (R5's copy, R2 already in the lake)
    #        + 2 quarantined (R1 conflicting, R3 non-positive dose)
    assert ingest_counts(base / "lake", "prescriptions") == {
        "rows_read": 6, "rows_kept": 2, "duplicates_removed": 2, "rows_quarantined": 2}
    assert ingest_counts(base / "lake", "deaths") == {
        "rows_read": 2, "rows_kept": 1, "duplicates_removed": 1, "rows_quarantined": 0}
    assert ingest_counts(base / "lake", "biomarkers") == {
        "rows_read": 1, "rows_kept": 0, "duplicates_removed": 1, "rows_quarantined": 0}
    assert ingest_counts(base / "lake", "patients") == {
        "rows_read": 3, "rows_kept": 3, "duplicates_removed": 0, "rows_quarantined": 0}


def test_rerun_of_the_same_month_adds_nothing(two_months, tmp_path):
    base, _ = two_months
    lake = tmp_path / "lake"
    shutil.copytree(base / "lake", lake)
    event_tables = ["bronze/prescriptions", "bronze/deaths", "bronze/diagnoses", "quarantine/prescriptions"]
    before = {k: table(lake, k).version() for k in event_tables}
    # --mode incremental: the valued form of --incremental that scheduler parameters can carry.
    assert ingest_run(base / "m2", lake, tmp_path / "out", "2025-02-28", "--mode", "incremental") == 0
    assert {k: table(lake, k).version() for k in event_tables} == before
    assert len(table(lake, "bronze/prescriptions").to_pandas()) == 4
    assert len(table(lake, "quarantine/prescriptions").to_pandas()) == 2
    # 6 read = 0 kept + 4 duplicates (R5's copy; R2, R4, R5 in the lake) + 2 quarantined
    assert ingest_counts(lake, "prescriptions") == {
        "rows_read": 6, "rows_kept": 0, "duplicates_removed": 4, "rows_quarantined": 2}


@pytest.mark.parametrize("argv, message", [
    (["--mode", "weekly"], "cohort-engine run: argument --mode: expected full or incremental, got 'weekly'"),
    (["--mode", "full", "--incremental"], "cohort-engine: --incremental contradicts --mode full"),
])
def test_bad_load_mode_is_one_line(tmp_path, capsys, argv, message):
    code = ingest_run(tmp_path / "src", tmp_path / "lake", tmp_path / "out", "2025-02-28", *argv)
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_an_older_month_is_refused(two_months, tmp_path, capsys):
    base, _ = two_months
    lake = tmp_path / "lake"
    shutil.copytree(base / "lake", lake)
    code = ingest_run(base / "m1", lake, tmp_path / "out", "2025-01-31", "--incremental")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["cohort-engine: bronze/deaths already holds the incremental load of cut-off 2025-02-28, later "
                   "than 2025-01-31: an incremental load cannot go back in time (rebuild with a full load, "
                   "without --incremental)"]


def test_a_changed_extract_of_a_loaded_month_is_refused(two_months, tmp_path, capsys):
    base, _ = two_months
    lake = tmp_path / "lake"
    shutil.copytree(base / "lake", lake)
    corrected = dict(MONTH_2, prescriptions=MONTH_2["prescriptions"] + ["R6,P3,H1,2025-02-20,卡培他滨,,1000,mg,po"])
    code = ingest_run(write_month(tmp_path / "m2b", corrected), lake, tmp_path / "out", "2025-02-28",
                      "--incremental")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["cohort-engine: bronze/prescriptions already holds the load of cut-off 2025-02-28, yet this "
                   "extract has rows it lacks (1): a corrected extract of a loaded month needs a full load "
                   "(without --incremental)"]
    assert len(table(lake, "bronze/prescriptions").to_pandas()) == 4


def test_months_merge_again_after_a_full_rebuild(two_months, tmp_path):
    # A full load of month 1 drops month 2's rows; month 2 must then merge again,
    # not be skipped as "already loaded" (Delta keeps transaction ids across overwrites).
    base, _ = two_months
    lake = tmp_path / "lake"
    shutil.copytree(base / "lake", lake)
    assert ingest_run(base / "m1", lake, tmp_path / "out1", "2025-01-31") == 0
    assert sorted(table(lake, "bronze/prescriptions").to_pandas()["record_id"]) == ["R1", "R2"]
    assert ingest_run(base / "m2", lake, tmp_path / "out2", "2025-02-28", "--incremental") == 0
    assert sorted(table(lake, "bronze/prescriptions").to_pandas()["record_id"]) == ["R1", "R2", "R4", "R5"]


# -- a generated extract: month A, then the delta B, against one full load -----------

SPLIT = "2024-12-31"
REPEATED = 25  # prescriptions of month A sent again with B


def split_extract(source, month_a, delta_b):
    """Month A: rows dated up to SPLIT; B: the later rows plus REPEATED prescriptions of A.

    Patients and hospitals go whole into both (monthly snapshots). Returns the rows of B per table.
    """
    rows_b = {}
    for name in SOURCE_TABLES:
        if not (source / name).exists():
            continue
        whole = pq.read_table(source / name)
        if name in ("patients", "hospitals"):
            a = b = whole
        else:
            dates = whole[EVENT_DATE[name]]
            assert dates.null_count == 0  # a clean extract: every row lands in A or B
            early = pc.less_equal(dates, pa.scalar(SPLIT))  # ISO text orders as dates
            a, b = whole.filter(early), whole.filter(pc.invert(early))
            if name == "prescriptions":
                b = pa.concat_tables([b, a.slice(0, REPEATED)])
        for folder, part in ((month_a, a), (delta_b, b)):
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, folder / f"{name}.parquet")
        rows_b[name] = b.num_rows
    return rows_b


def sorted_frame(lake_root, key):
    frame = table(lake_root, key).to_pandas()
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def monthly_lake(spark, tmp_path_factory):
    reference = reference_run(spark, tmp_path_factory)
    base = tmp_path_factory.mktemp("split")
    rows_b = split_extract(reference / "extract", base / "A", base / "B")
    lake = base / "lake"
    assert main(["run", "--source", str(base / "A"), "--lake", str(lake), "--out", str(base / "outA"),
                 "--cutoff", SPLIT, "--stages", "ingest", "--quiet"], ENV) == 0
    assert main(["run", "--source", str(base / "B"), "--lake", str(lake), "--out", str(base / "outB"),
                 "--cutoff", "2025-06-30", "--incremental", "--stages", "ingest,lines,cohort,endpoints",
                 "--quiet"], ENV) == 0
    return reference / "lake", lake, rows_b


@pytest.mark.slow
def test_month_by_month_gives_the_full_loads_bronze(monthly_lake):
    full, merged, _ = monthly_lake
    for name in SOURCE_TABLES:
        key = f"bronze/{name}"
        if (full / key).exists():
            pd.testing.assert_frame_equal(sorted_frame(merged, key), sorted_frame(full, key), obj=key)


# Sizes of the reference run (1500 patients, seed 3): a guard against comparing empty tables.
@pytest.mark.slow
@pytest.mark.parametrize("name, at_least", [("therapy_lines", 1000), ("cohort", 10), ("endpoints", 40)])
def test_month_by_month_gives_the_full_loads_gold(monthly_lake, name, at_least):
    full, merged, _ = monthly_lake
    expected = gold_frame(full, name)
    assert len(expected) >= at_least
    pd.testing.assert_frame_equal(gold_frame(merged, name), expected)


@pytest.mark.slow
def test_repeated_prescriptions_count_as_duplicates(monthly_lake):
    full, merged, rows_b = monthly_lake
    # The generated prescriptions hold no duplicates of their own (the full load drops
    # none), so B's duplicates are exactly the rows of A it repeats.
    assert ingest_counts(full, "prescriptions")["duplicates_removed"] == 0
    assert ingest_counts(merged, "prescriptions") == {
        "rows_read": rows_b["prescriptions"], "rows_kept": rows_b["prescriptions"] - REPEATED,
        "duplicates_removed": REPEATED, "rows_quarantined": 0}
    assert ingest_counts(merged, "patients")["rows_kept"] == 1500
