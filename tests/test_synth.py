"""The synthetic extract: determinism, schema contract, noise rates, truth consistency, output options.

Small extracts are written with Spark (a clean Parquet one of 1,200 patients in two
chunks; a noisy CSV one of 300 patients, and the same seed again as GB18030 CSV and as
pandas-written Parquet); rates and calibration are checked on the chunk simulation
directly (the same code Spark runs per partition).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from cohort_engine.contract import DOSE_UNITS, LAB_UNITS, SOURCE_TABLES
from cohort_engine.synth import DEFAULT_DEMO_PATIENTS, SOURCE_ORDER, generate_extract
from cohort_engine.synth import params as PR
from cohort_engine.synth.dates import AMBIGUOUS_PATTERN, TIME_ZONE, read_dates, to_iso
from cohort_engine.synth.drugs import (FIXED_DOSE_HP_CANONICAL, FIXED_DOSE_HP_INGREDIENTS, GARBLED_NAMES,
                                       INGREDIENTS, PRODUCTS, printed_forms)
from cohort_engine.synth.generate import chunk_table
from cohort_engine.synth.plan import Plan
from cohort_engine.synth.columns import DATE_COLUMN

ISO = r"^\d{4}-\d{2}-\d{2}$"

CUTOFF = dt.date(2025, 6, 30)
ALL_TABLES = SOURCE_ORDER + ("truth/patients", "truth/lines")


@pytest.fixture(scope="module")
def clean_extract(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "clean"
    counts = generate_extract(spark, out, patients=1200, seed=11, fmt="parquet", clean=True, cutoff=CUTOFF)
    return out, counts


@pytest.fixture(scope="module")
def noisy_csv(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "noisy_csv"
    counts = generate_extract(spark, out, patients=300, seed=5, fmt="csv", clean=False, cutoff=CUTOFF)
    return out, counts


def _read(spark, out: Path, table: str):
    return spark.read.parquet(str(out / table))


def _pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


def _concat(plan: Plan, name: str) -> pa.Table:
    return pa.concat_tables([chunk_table(plan, name, c) for c in range(plan.n_chunks)])


# -- determinism --------------------------------------------------------------------------------------

def test_same_seed_same_rows_other_seed_other_rows():
    plan = Plan(1500, 3, CUTOFF)          # 2 chunks of 1,000 and 500 patients
    other = Plan(1500, 4, CUTOFF)
    assert plan.n_chunks == 2
    for name in ALL_TABLES:
        first = chunk_table(plan, name, 1 if name != "hospitals" else 0)
        again = chunk_table(plan, name, 1 if name != "hospitals" else 0)
        assert first.equals(again), name
        assert not first.equals(chunk_table(other, name, 1 if name != "hospitals" else 0)), name


def test_spark_writes_exactly_the_simulated_rows(spark, clean_extract):
    out, counts = clean_extract
    plan = Plan(1200, 11, CUTOFF, clean=True)
    assert plan.n_chunks == 2
    for name in ("patients", "prescriptions", "truth/lines"):
        expected = _pandas(_concat(plan, name))
        written = _read(spark, out, name).toPandas()
        assert counts[name] == len(expected)
        cols = list(expected.columns)
        key = cols
        pd.testing.assert_frame_equal(
            written[cols].sort_values(key, na_position="first").reset_index(drop=True).astype(str),
            expected.sort_values(key, na_position="first").reset_index(drop=True).astype(str))


# -- the source contract -----------------------------------------------------------------------------

def test_every_table_and_required_column_with_parseable_types(spark, clean_extract):
    out, counts = clean_extract
    for name, spec in SOURCE_TABLES.items():
        df = _read(spark, out, name)
        assert set(spec.column_names) <= set(df.columns), name
        assert counts[name] > 0, name
        checks = []
        for col in spec.columns:
            c = F.col(col.name)
            if col.required:
                checks.append(F.sum(F.when(c.isNull() | (F.trim(c.cast("string")) == ""), 1).otherwise(0)))
            if col.type == "date":
                parsed = F.try_to_date(c, "yyyy-MM-dd")
                checks.append(F.sum(F.when(c.isNotNull() & parsed.isNull(), 1).otherwise(0)))
                checks.append(F.sum(F.when((parsed < F.lit("1900-01-01").cast("date"))
                                           | (parsed > F.lit(CUTOFF.isoformat()).cast("date")), 1).otherwise(0)))
        bad = df.agg(*checks).first()
        assert all(v == 0 for v in bad), (name, list(bad))
    hospitals = _read(spark, out, "hospitals")
    assert hospitals.count() == 1400
    assert hospitals.select("hospital_id").distinct().count() == 1400
    assert {r[0] for r in hospitals.select("tier").distinct().collect()} == {"3A", "3B", "3C", "2A", "2B", "other"}
    assert {r[0] for r in hospitals.select("hospital_type").distinct().collect()} == {"oncology", "general"}
    rx = _read(spark, out, "prescriptions")
    assert rx.where(F.col("dose") <= 0).count() == 0
    units = {r[0] for r in rx.select("dose_unit").distinct().collect()} - {None}
    assert units <= set(DOSE_UNITS)
    assert rx.groupBy("record_id").count().where("count > 1").count() == 0
    labs = _read(spark, out, "labs")
    assert {r[0].lower() for r in labs.select("unit").distinct().collect()} <= set(LAB_UNITS)
    patients = _read(spark, out, "patients")
    assert {r[0] for r in patients.select("sex").distinct().collect()} <= {"F", "M", "U"}
    assert patients.where(F.col("id_hash").isNull()).count() == 0     # clean: every patient linkable
    for name in ("diagnoses", "biomarkers", "prescriptions", "labs", "visits", "vitals", "adverse_events",
                 "tumor_assessments"):
        orphans = _read(spark, out, name).join(patients, "patient_id", "left_anti").count()
        assert orphans == 0, name


@pytest.fixture(scope="module")
def gb18030_csv(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "gb18030_csv"
    counts = generate_extract(spark, out, patients=300, seed=5, fmt="csv", clean=False, cutoff=CUTOFF,
                              encoding="gb18030")
    return out, counts


@pytest.fixture(scope="module")
def pandas_parquet(spark, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "pandas_parquet"
    counts = generate_extract(spark, out, patients=300, seed=5, fmt="parquet", clean=False, cutoff=CUTOFF,
                              parquet_writer="pandas")
    return out, counts


def _manifest(out: Path) -> dict:
    return json.loads((out / "truth" / "manifest.json").read_text(encoding="utf-8"))


def test_gb18030_csv_is_gb18030_and_says_what_the_utf8_file_says(noisy_csv, gb18030_csv):
    utf8, counts = noisy_csv
    gb, gb_counts = gb18030_csv
    assert gb_counts == counts
    for name in SOURCE_ORDER:
        raw = (gb / f"{name}.csv").read_bytes()
        text = (utf8 / f"{name}.csv").read_bytes().decode("utf-8")
        assert raw.decode("gb18030") == text, name
        if any(ord(ch) > 127 for ch in text):
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
    # a Chinese drug name, as bytes: GB18030, not UTF-8
    rx = pd.read_csv(gb / "prescriptions.csv", dtype=str, keep_default_na=False, encoding="gb18030")
    name = next(n for n in rx["drug_name"] if n.startswith("注射用紫杉醇脂质体"))
    assert name.encode("gb18030") in (gb / "prescriptions.csv").read_bytes()
    assert name.encode("utf-8") not in (gb / "prescriptions.csv").read_bytes()
    assert _manifest(gb)["encoding"] == "gb18030" and _manifest(utf8)["encoding"] == "utf-8"
    assert _manifest(gb)["injected"] == _manifest(utf8)["injected"]


def _truth(spark, out: Path, name: str) -> pd.DataFrame:
    frame = spark.read.parquet(str(out / name)).toPandas().astype(str)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_same_seed_same_truth_with_and_without_the_output_options(spark, noisy_csv, gb18030_csv, pandas_parquet):
    plan = Plan(300, 5, CUTOFF)
    for name in ("truth/patients", "truth/lines"):
        want = _pandas(_concat(plan, name)).astype(str)
        want = want.sort_values(list(want.columns)).reset_index(drop=True)
        for out, _ in (noisy_csv, gb18030_csv, pandas_parquet):
            pd.testing.assert_frame_equal(_truth(spark, out, name), want)
        # and the clean extract of the same seed has the same truth but for `linkable`
        clean = _pandas(_concat(Plan(300, 5, CUTOFF, clean=True), name)).astype(str)
        cols = [c for c in want.columns if c != "linkable"]
        pd.testing.assert_frame_equal(clean.sort_values(cols).reset_index(drop=True)[cols],
                                      want.sort_values(cols).reset_index(drop=True)[cols])


def _local_days(column: pd.Series) -> pd.Series:
    if getattr(column.dtype, "tz", None) is not None:
        column = column.dt.tz_convert(TIME_ZONE).dt.tz_localize(None)
    return column.dt.strftime("%Y-%m-%d").where(column.notna(), None)


def test_pandas_parquet_has_ns_timestamps_of_the_same_calendar_days(noisy_csv, pandas_parquet):
    text_out, counts = noisy_csv
    out, pd_counts = pandas_parquet
    assert pd_counts == counts
    aware_shift = 0
    for name, col in DATE_COLUMN.items():
        parts = sorted((out / name).glob("part-*.parquet"))
        assert parts, name
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        tz = TIME_ZONE if name in PR.PANDAS_TZ_TABLES else None
        assert table.schema.field(col).type == pa.timestamp("ns", tz=tz), name
        assert b"pandas" in pq.read_schema(parts[0]).metadata
        written = table.to_pandas()
        days = _local_days(written[col])
        csv = pd.read_csv(text_out / f"{name}.csv", dtype=str, keep_default_na=False)
        key = "record_id" if name == "prescriptions" else "id_hash" if name == "deaths" else "patient_id"
        got = pd.DataFrame({"k": written[key].fillna(""), "d": days.fillna("")}).sort_values(["k", "d"])
        want = pd.DataFrame({"k": csv[key], "d": pd.Series(to_iso(csv[col])).fillna("")}).sort_values(["k", "d"])
        assert got.reset_index(drop=True).equals(want.reset_index(drop=True)), name
        # text that is no date (unparseable, ambiguous) is NaT, nothing else is
        no_date = csv[col].isin(PR.BAD_DATE_TEXT) | csv[col].str.match(AMBIGUOUS_PATTERN)
        assert int(written[col].isna().sum()) == int(no_date.sum()), name
        if tz:   # stored as UTC instants: a reader that ignores the zone would see other days
            utc_days = written[col].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
            aware_shift += int((utc_days.notna() & (utc_days != days)).sum())
    assert aware_shift > 100


def test_manifest_records_the_injected_date_rows(noisy_csv, pandas_parquet, noisy_and_clean):
    out, _ = noisy_csv
    manifest = _manifest(out)
    plan = Plan(300, 5, CUTOFF)
    total = 0
    for name, col in DATE_COLUMN.items():
        csv = pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
        simulated = _pandas(_concat(plan, name))[col]
        recorded = manifest["injected"][name]
        copies = int(simulated.str.match(AMBIGUOUS_PATTERN).sum())
        assert recorded["ambiguous_copies"] == copies == int(csv[col].str.match(AMBIGUOUS_PATTERN).sum()), name
        # the source contract's reasons: a day-first text one of whose readings is a date (31-12-2019)
        # is ambiguous too; the other bad texts are unparseable
        day_first = int((simulated == "31-12-2019").sum())
        bad = int(simulated.isin(PR.BAD_DATE_TEXT).sum())
        assert recorded["ambiguous_date"] == copies + day_first, name
        assert recorded["unparseable_date"] == bad - day_first, name
        assert sum(recorded["bad_date_text"].values()) == bad
        # no two spoiled copies alike: each is quarantined, none is an exact duplicate
        spoiled = csv[csv[col].isin(PR.BAD_DATE_TEXT) | csv[col].str.match(AMBIGUOUS_PATTERN)]
        assert not spoiled.duplicated().any(), name
        noisy4000 = noisy_and_clean[0].get(name)
        if noisy4000 is not None:
            text = noisy4000[col]
            spoiled = noisy4000[text.isin(PR.BAD_DATE_TEXT) | text.str.match(AMBIGUOUS_PATTERN)]
            assert len(spoiled) > 5 and not spoiled.duplicated().any(), name
        days = pd.Series(read_dates(simulated)[0])
        assert recorded["date_out_of_range"] == int(((days < "1900-01-01") | (days > CUTOFF.isoformat())).sum())
        assert recorded["missing_required"] == 0
        pandas_recorded = _manifest(pandas_parquet[0])["injected"][name]
        # emptied rows alike (one clean row copied with two bad texts) are exact duplicates instead
        emptied = _pandas(_concat(plan, name))
        emptied = emptied[emptied[col].isin(PR.BAD_DATE_TEXT) | emptied[col].str.match(AMBIGUOUS_PATTERN)]
        alike = int(emptied.drop(columns=[col]).astype(str).duplicated().sum())
        assert pandas_recorded["emptied_duplicates"] == alike
        assert pandas_recorded["missing_required"] == copies + bad - alike
        assert pandas_recorded["emptied"] == {"ambiguous_date": recorded["ambiguous_date"],
                                              "unparseable_date": recorded["unparseable_date"]}
        assert pandas_recorded["ambiguous_date"] == pandas_recorded["unparseable_date"] == 0
        assert pandas_recorded["date_out_of_range"] == recorded["date_out_of_range"]
        total += copies
    assert manifest["injected"]["prescriptions"]["ambiguous_copies"] > 0 and total > 20
    assert manifest["hospital_forms"] is True and manifest["shares"]["date_forms"] == PR.DATE_FORMS
    assert manifest["shares"]["printed_name"] == PR.NOISE["printed_name"]


def test_csv_extract_is_one_utf8_file_per_table_with_bad_rows_as_text(noisy_csv):
    out, counts = noisy_csv
    for name in SOURCE_ORDER:
        path = out / f"{name}.csv"
        assert path.is_file(), name
        header = path.read_text(encoding="utf-8").splitlines()[0]
        assert set(SOURCE_TABLES[name].column_names) <= set(header.split(",")), name
        assert sum(1 for _ in path.open(encoding="utf-8")) - 1 == counts[name], name
    rx = pd.read_csv(out / "prescriptions.csv", dtype=str, keep_default_na=False)
    assert rx["admin_date"].isin(PR.BAD_DATE_TEXT).any()
    assert rx["drug_name"].str.contains("[\u4e00-\u9fff]", regex=True).any()
    assert (out / "truth" / "patients").is_dir() and (out / "truth" / "lines").is_dir()


# -- noise rates ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def noisy_and_clean():
    noisy, clean = Plan(4000, 21, CUTOFF), Plan(4000, 21, CUTOFF, clean=True)
    tables = ("patients", "deaths", "diagnoses", "biomarkers", "prescriptions", "labs", "visits")
    return ({t: _pandas(_concat(noisy, t)) for t in tables}, {t: _pandas(_concat(clean, t)) for t in tables})


def _within(observed: int, base: int, rate: float, rel: float):
    expected = base * rate
    assert abs(observed - expected) <= rel * expected, (observed, expected)


def test_noise_rates_match_the_documented_rates(noisy_and_clean):
    noisy, clean = noisy_and_clean
    # Each kind is Binomial(clean rows, rate). With ~120,000 prescription rows, 0.2% gives 240 ± 15.5:
    # a 30% tolerance is ~4.6 standard deviations; summed over date tables it is tighter still.
    date_cols = {"diagnoses": "diagnosis_date", "biomarkers": "test_date", "prescriptions": "admin_date",
                 "labs": "collect_date", "visits": "visit_date", "deaths": "death_date"}
    base = sum(len(clean[t]) for t in date_cols)
    unparseable = out_of_range = ambiguous = 0
    for t, col in date_cols.items():
        # (valid dates are also written in other forms now: read with the generator's own reader)
        text = noisy[t][col]
        days = pd.Series(read_dates(text)[0])
        unparseable += int(text.isin(PR.BAD_DATE_TEXT).sum())
        ambiguous += int(text.str.match(AMBIGUOUS_PATTERN).sum())
        assert int(days.isna().sum()) == int(text.isin(PR.BAD_DATE_TEXT).sum() + text.str.match(
            AMBIGUOUS_PATTERN).sum()), t      # every other written date reads as a date
        out_of_range += int(((days < "1900-01-01") | (days > CUTOFF.isoformat())).sum())
    _within(unparseable, base, PR.NOISE["unparseable_date"], 0.15)
    _within(out_of_range, base, PR.NOISE["date_out_of_range"], 0.2)
    _within(ambiguous, base, PR.NOISE["ambiguous_date"], 0.15)
    rx, rx_clean = noisy["prescriptions"], clean["prescriptions"]
    n = len(rx_clean)
    _within(int(rx.duplicated().sum()), n, PR.NOISE["exact_duplicate"], 0.3)
    _within(int((rx["dose"] <= 0).sum()), n, PR.NOISE["non_positive_dose"], 0.35)
    # same record_id, other content: 0.05% of ~120,000 = 60 ± 7.7
    doses = rx.groupby("record_id")["dose"].nunique()
    _within(int((doses > 1).sum()), n, PR.NOISE["conflicting_record_id"], 0.5)
    unit = rx["dose_unit"].dropna().str.lower().str.replace(" ", "").str.replace("²", "2").str.replace("μ", "u")
    _within(int((~unit.isin(DOSE_UNITS)).sum()), n, PR.NOISE["unknown_unit"], 0.35)
    _within(int(rx["drug_name"].isin(GARBLED_NAMES).sum()), n, PR.NOISE["unmatched_drug_name"], 0.25)
    known = set(clean["patients"]["patient_id"])
    _within(int((~rx["patient_id"].isin(known)).sum()), n, PR.NOISE["orphan_patient_id"], 0.35)
    pts = noisy["patients"]
    _within(int(pts["id_hash"].isna().sum()), len(clean["patients"]), PR.NOISE["unlinkable"], 0.1)
    her2 = clean["biomarkers"][~clean["biomarkers"]["marker"].isin(["ER", "PR"])]
    _within(int(noisy["biomarkers"]["result"].isin(PR.UNREADABLE_HER2).sum()), len(her2),
            PR.NOISE["unreadable_her2"], 0.3)
    # a second registration of a death: same id_hash, a later date (before-birth rows excluded)
    deaths = noisy["deaths"][noisy["deaths"]["cause_icd10"] != "R99"]
    deaths = deaths[pd.to_datetime(deaths["death_date"], format="%Y-%m-%d", errors="coerce").notna()]
    twice = deaths.groupby("id_hash")["death_date"].nunique()
    _within(int((twice > 1).sum()), len(clean["deaths"]), PR.NOISE["duplicate_death"], 0.3)


def test_noise_only_adds_rows_so_the_clean_extract_is_inside_the_noisy_one(noisy_and_clean):
    noisy, clean = noisy_and_clean
    rx, rx_clean = noisy["prescriptions"].copy(), clean["prescriptions"]
    # a fifth of the valid dates are written in other forms; read back, they are the clean dates
    assert 0.15 < (~rx["admin_date"].str.match(ISO)).mean() < 0.25
    rx["admin_date"] = to_iso(rx["admin_date"])
    # every clean prescription is in the noisy extract under the same record_id with the same facts
    key = ["record_id", "patient_id", "hospital_id", "admin_date", "dose"]
    merged = rx_clean[key].merge(rx[key].drop_duplicates(), on=key, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    extra = len(rx) - len(rx_clean)
    day = rx["admin_date"].fillna("")
    bad = ((day == "") | (day > CUTOFF.isoformat()) | (day < "1900-01-01")
           | (rx["dose"] <= 0) | rx["drug_name"].isin(GARBLED_NAMES) | ~rx["patient_id"].isin(
               set(clean["patients"]["patient_id"])))
    unit = rx["dose_unit"].str.lower().str.replace(" ", "").str.replace("²", "2").str.replace("μ", "u")
    bad |= unit.notna() & ~unit.isin(DOSE_UNITS)
    # the added rows are exactly the spoiled ones (new record_ids) plus the rows repeating a
    # record_id (exact duplicates and conflicting copies)
    assert extra == int(bad.sum()) + int(rx["record_id"].duplicated().sum())
    assert rx["record_id"].duplicated().sum() > rx.duplicated().sum() > 0
    # the other tables of the noisy extract, dates read back, minus unusable rows and duplicates, are
    # the clean ones (the date forms change no calendar date)
    for t in ("diagnoses", "biomarkers", "labs", "visits"):
        dg, dg_clean = noisy[t].copy(), clean[t]
        col = DATE_COLUMN[t]
        dg[col] = to_iso(dg[col])
        ok = dg[col].fillna("").between("1900-01-01", CUTOFF.isoformat())
        ok &= dg["patient_id"].isin(set(clean["patients"]["patient_id"]))
        if t == "biomarkers":
            ok &= ~dg["result"].isin(PR.UNREADABLE_HER2)
        kept = dg[ok].drop_duplicates().astype(str).sort_values(list(dg.columns)).reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, dg_clean.drop_duplicates().astype(str).sort_values(
            list(dg.columns)).reset_index(drop=True))


def test_a_clean_extract_in_hospital_forms_reads_back_as_the_clean_extract():
    plain, hospital = Plan(1500, 8, CUTOFF, clean=True), Plan(1500, 8, CUTOFF, clean=True, hospital_forms=True)
    assert hospital.forms and not plain.forms and Plan(1500, 8, CUTOFF).forms
    assert not Plan(1500, 8, CUTOFF, hospital_forms=False).forms
    for name, col in DATE_COLUMN.items():
        got, want = _pandas(_concat(hospital, name)), _pandas(_concat(plain, name))
        assert len(got) == len(want), name
        assert (~got[col].str.match(ISO)).mean() > 0.1, name           # other forms are written …
        got[col] = to_iso(got[col])                                    # … and read back as the same days
        if name == "prescriptions":
            printed = {f for p in PRODUCTS for f in printed_forms(p)}
            assert abs(got["drug_name"].isin(printed).mean() - PR.NOISE["printed_name"]) < 0.02
            got, want = got.drop(columns="drug_name"), want.drop(columns="drug_name")
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    for name in ("truth/patients", "truth/lines"):
        assert _concat(hospital, name).equals(_concat(plain, name))


def test_written_forms_of_names_and_dates_have_their_documented_shares(noisy_and_clean):
    noisy, clean = noisy_and_clean
    rx = noisy["prescriptions"]
    # printed names: 35 % of prescription rows (~120,000 rows: ±0.14 point is one standard deviation)
    printed = {f for p in PRODUCTS for f in printed_forms(p)}
    assert abs(rx["drug_name"].isin(printed).mean() - PR.NOISE["printed_name"]) < 0.01
    assert not clean["prescriptions"]["drug_name"].isin(printed - {v[2] for v in INGREDIENTS.values()}).any()
    # date forms: each share of params.DATE_FORMS, in every table (the forms with a pattern of their own)
    patterns = {"datetime": r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
                "iso_offset": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$",
                "dot": r"^\d{4}\.\d{2}\.\d{2}$", "compact": r"^\d{8}$", "chinese": r"^\d{4}年\d{1,2}月\d{1,2}日$"}
    for t in ("patients", "deaths", "diagnoses", "biomarkers", "prescriptions", "labs", "visits"):
        text = noisy[t][DATE_COLUMN[t]]
        n = len(clean[t])
        for form, pattern in patterns.items():
            _within(int(text.str.match(pattern).sum()), n, PR.DATE_FORMS[form], 0.5 if n < 20_000 else 0.15)
        slashes = int(text.str.match(r"^\d{4}/\d{1,2}/\d{1,2}$").sum())
        _within(slashes, n, PR.DATE_FORMS["slash"] + PR.DATE_FORMS["slash_unpadded"], 0.3 if n < 20_000 else 0.1)
        if t in ("patients", "deaths"):       # birth and death date-times are written at midnight
            timed = text[text.str.match(patterns["datetime"])]
            assert timed.str.endswith(" 00:00:00").all()
    visits = noisy["visits"]["visit_date"]
    clocks = visits[visits.str.match(patterns["datetime"])].str[11:13].astype(int)
    assert clocks.between(7, 20).all() and clocks.nunique() == 14


# -- truth consistent with the extract ---------------------------------------------------------------------

SUBSTITUTES = ({"paclitaxel", "paclitaxel liposome", "nab-paclitaxel"}, {"cisplatin", "carboplatin"})


def _lines_by_the_rules(rx: pd.DataFrame, advanced: dict) -> pd.DataFrame:
    """study-rules §3 read literally, patient by patient (an oracle independent of the generator)."""
    ingredient_of = {v[2]: [k] for k, v in INGREDIENTS.items()}
    ingredient_of[FIXED_DOSE_HP_CANONICAL] = list(FIXED_DOSE_HP_INGREDIENTS)
    cls = {k: v[0] for k, v in INGREDIENTS.items()}
    exp = [(p, d, ing) for p, d, name in zip(rx.patient_id, rx.admin_date, rx.drug_name)
           for ing in ingredient_of[name] if cls[ing] != "supportive"]
    exp = pd.DataFrame(exp, columns=["patient_id", "date", "ingredient"])
    out = []
    for pid, g in exp.groupby("patient_id"):
        a = advanced.get(pid)
        for setting in ("early", "advanced"):
            if a is None:
                part = g if setting == "early" else g.iloc[0:0]
            else:
                grace = a - pd.Timedelta(days=30)
                part = g[g.date < grace] if setting == "early" else g[g.date >= grace]
            days = sorted(part.date.unique())
            given = {d: set(part.ingredient[part.date == d]) for d in days}
            i, number = 0, 0
            while i < len(days):
                start, number = days[i], number + 1
                regimen, j = set(), i
                while j < len(days) and days[j] <= start + pd.Timedelta(days=28):
                    regimen |= given[days[j]]
                    j += 1
                covered = set().union(*[next((s for s in SUBSTITUTES if x in s), {x}) for x in regimen])
                last = days[j - 1]
                while j < len(days) and (days[j] - last).days <= 120 and all(
                        x in covered or cls[x] == "endocrine" for x in given[days[j]]):
                    last, j = days[j], j + 1
                out.append((pid, setting, number, start, last, "+".join(sorted(regimen)), j - i))
                i = j
    return pd.DataFrame(out, columns=["patient_id", "setting", "line_number", "start_date", "last_admin_date",
                                      "regimen", "n_admin_days"])


@pytest.fixture(scope="module")
def clean_frames(spark, clean_extract):
    out, _ = clean_extract
    frames = {t: _read(spark, out, t).toPandas() for t in ("prescriptions", "diagnoses", "biomarkers", "deaths",
                                                           "patients", "truth/patients", "truth/lines")}
    for t, cols in (("prescriptions", ["admin_date"]), ("diagnoses", ["diagnosis_date"]),
                    ("deaths", ["death_date"]), ("biomarkers", ["test_date"]),
                    ("truth/lines", ["start_date", "last_admin_date"]),
                    ("truth/patients", ["advanced_date", "index_date", "death_date", "bc_date"])):
        for c in cols:
            frames[t][c] = pd.to_datetime(frames[t][c])
    return frames


def _advanced_dates(dg: pd.DataFrame) -> dict:
    icd = dg.icd10.str.upper().str.replace(".", "", regex=False)
    stage = dg.stage.fillna("")
    stage_iv = icd.str.startswith("C50") & (stage.str.startswith("IV") | stage.str.startswith("Ⅳ")
                                            | stage.str.contains("M1"))
    distant = icd.str.startswith("C78") | icd.str.startswith("C79")
    return dg[stage_iv | distant].groupby("patient_id").diagnosis_date.min().to_dict()


def test_truth_lines_are_what_the_study_rules_find_on_the_clean_extract(clean_frames):
    rules = _lines_by_the_rules(clean_frames["prescriptions"], _advanced_dates(clean_frames["diagnoses"]))
    truth = clean_frames["truth/lines"]
    key = ["patient_id", "setting", "line_number"]
    cols = key + ["start_date", "last_admin_date", "regimen", "n_admin_days"]
    got = rules[cols].sort_values(key).reset_index(drop=True)
    want = truth[cols].sort_values(key).reset_index(drop=True)
    want["line_number"] = want["line_number"].astype(int)
    want["n_admin_days"] = want["n_admin_days"].astype(int)
    assert len(want) > 500
    assert set(want["setting"]) == {"early", "advanced"}
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # supportive drugs are given on line days and never appear in a regimen
    supportive = {k for k, v in INGREDIENTS.items() if v[0] == "supportive"}
    assert not any(set(r.split("+")) & supportive for r in truth["regimen"])
    rx = clean_frames["prescriptions"]
    assert rx["drug_name"].isin([INGREDIENTS[s][2] for s in supportive]).sum() > 100


def test_truth_patients_agree_with_the_extract(clean_frames):
    tp = clean_frames["truth/patients"].set_index("patient_id")
    adv = pd.Series(_advanced_dates(clean_frames["diagnoses"]), dtype="datetime64[ns]")
    recorded = tp["advanced_date"].dropna()
    assert recorded.sort_index().equals(adv.reindex(recorded.index).sort_index())
    assert set(adv.index) == set(recorded.index)
    # HER2 recorded positive <=> a positive reading exists (IHC 3+ or ISH positive)
    bm = clean_frames["biomarkers"]
    her2 = bm[~bm["marker"].isin(["ER", "PR"])]
    positive = her2["result"].str.strip().isin(["3+", "+++", "(+++)", "amplified", "Amplified", "扩增", "positive",
                                                "阳性"])
    pos_ids = set(her2.loc[positive, "patient_id"])
    assert pos_ids == set(tp.index[tp["her2_recorded"] == "positive"])
    assert set(tp.index[tp["her2_true"] == "positive"]) >= pos_ids
    # true deaths up to the cutoff are registered under the patient's id_hash, none other
    deaths = clean_frames["deaths"].merge(clean_frames["patients"][["patient_id", "id_hash"]], on="id_hash")
    registered = deaths.set_index("patient_id")["death_date"].sort_index()
    expected = tp.loc[tp["death_recorded"], "death_date"].sort_index()
    assert registered.equals(expected.rename(registered.name)) and len(expected) > 50
    assert (tp.loc[~tp["death_recorded"], "death_date"] > pd.Timestamp(CUTOFF)).all()
    # index date = start of advanced line 1; the cohort follows study-rules §4
    lines = clean_frames["truth/lines"]
    first = lines[(lines.setting == "advanced") & (lines.line_number == 1)].set_index("patient_id")
    assert tp["index_date"].dropna().sort_index().equals(first["start_date"].sort_index().rename("index_date"))
    regimen = first["regimen"].reindex(tp.index).fillna("")
    has_pl = regimen.str.split("+").apply(lambda r: "paclitaxel liposome" in r)
    has_mab = regimen.str.split("+").apply(lambda r: bool({"trastuzumab", "pertuzumab", "inetetumab"} & set(r)))
    cohort = (tp["is_breast"] & tp.index.isin(pos_ids) & tp["advanced_date"].notna() & has_pl & has_mab
              & (tp["age_at_index"] >= 18) & (tp["index_date"] >= "2013-01-01")
              & (tp["index_date"] <= pd.Timestamp(CUTOFF)) & (tp["death_date"] > tp["index_date"]))
    assert cohort.equals(tp["intended_in_cohort"]) and 5 < cohort.sum()
    # breast cancer diagnosis date = earliest C50 record
    dg = clean_frames["diagnoses"]
    c50 = dg[dg.icd10.str.upper().str.startswith("C50")].groupby("patient_id").diagnosis_date.min()
    assert tp["bc_date"].dropna().sort_index().equals(c50.sort_index().rename("bc_date"))


# -- calibration -----------------------------------------------------------------------------------------------

def _km_median(days: np.ndarray) -> float:
    """Median of uncensored times (true event dates are known for everyone)."""
    return float(np.median(days)) / PR.MONTH


@pytest.fixture(scope="module")
def population_truth():
    plan = Plan(DEFAULT_DEMO_PATIENTS * 2, 42, CUTOFF, clean=True)
    tp = pd.concat([_pandas(chunk_table(plan, "truth/patients", c)) for c in range(plan.n_chunks)])
    return tp


def test_first_line_outcomes_match_published_medians(population_truth):
    tp = population_truth[population_truth["index_date"].notna() & population_truth["is_breast"]].copy()
    for c in ("index_date", "death_date", "progression_date"):
        tp[c] = pd.to_datetime(tp[c])
    os_days = (tp["death_date"] - tp["index_date"]).dt.days
    pfs_days = (tp["progression_date"].fillna(tp["death_date"]).clip(upper=tp["death_date"])
                - tp["index_date"]).dt.days
    label = tp["anti_her2"].fillna("")
    taxane = tp["index_regimen"].str.contains("paclitaxel|docetaxel")
    hp = taxane & (label == "HP")
    h = taxane & (label == "H")
    assert hp.sum() > 300 and h.sum() > 300
    # published first-line HER2+ results: THP PFS 16-19 / OS 50-57 months; TH PFS 10-12.5 / OS 35-41
    assert 16 <= _km_median(pfs_days[hp]) <= 19
    assert 50 <= _km_median(os_days[hp]) <= 57
    assert 10 <= _km_median(pfs_days[h]) <= 12.5
    assert 35 <= _km_median(os_days[h]) <= 41


def test_demo_default_size_gives_a_cohort_of_at_least_500():
    plan = Plan(DEFAULT_DEMO_PATIENTS, 42, CUTOFF, clean=True)
    cohort = sum(int(pc_sum(chunk_table(plan, "truth/patients", c))) for c in range(plan.n_chunks))
    assert cohort >= 500


def pc_sum(table: pa.Table) -> int:
    return int(np.asarray(table.column("intended_in_cohort").to_numpy(zero_copy_only=False)).sum())


def test_toxicity_and_assessment_shares(population_truth):
    tp = population_truth
    cohort = tp[tp["intended_in_cohort"]]
    # grade ≥3 neutropenia on a paclitaxel liposome index line: P_NEUTROPENIA_G3 = 0.20 per taxane line
    share = cohort["anc_g3_index_line"].mean()
    assert 0.12 <= share <= 0.30
    treated = tp[tp["is_breast"] & tp["index_date"].notna()]
    assert abs((~treated["assessed"]).mean() - (1 - PR.P_ASSESSED)) < 0.04
    # every cohort patient is on an anti-HER2 antibody: LVEF declines in P_LVEF_DECLINE = 3% of them
    # (~1,200 cohort patients: standard deviation 0.5 point)
    declined = (cohort["lvef_decline_grade"] > 0).mean()
    assert abs(declined - PR.P_LVEF_DECLINE) < 0.02
