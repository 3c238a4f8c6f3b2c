"""Patient facts (study rules §2): result strings, marker names, diagnoses, silver/patient_facts."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import functions as F

from builders import bronze, bronze_table, d
from cohort_engine import facts

# -- HER2 result strings ------------------------------------------------------------------
# (result as written, method, expected reading). Expected readings follow §2: IHC 3+ or ISH
# positive/amplified/阳性/扩增 → positive; IHC 2+ alone → equivocal; 0, 1+, not amplified,
# 阴性 → negative; anything else → unreadable.
HER2_CASES = [
    ("3+", "IHC", "positive"), ("+++", "IHC", "positive"), ("(+++)", None, "positive"),
    ("（+++）", None, "positive"), ("３＋", "IHC", "positive"), ("3 +", None, "positive"),
    (" 3+ ", None, "positive"), ("IHC 3+", None, "positive"), ("HER2(3+)", None, "positive"),
    ("Her-2 (+++)", None, "positive"), ("3", "IHC", "positive"), ("3", None, "positive"),
    ("阳性", None, "positive"), ("阳性(+++)", None, "positive"), ("positive", "ISH", "positive"),
    ("Positive", None, "positive"), ("POSITIVE", "FISH", "positive"), ("pos", None, "positive"),
    ("amplified", "FISH", "positive"), ("Amplified", "ISH", "positive"), ("AMPLIFIED", None, "positive"),
    ("扩增", "FISH", "positive"), ("FISH扩增", None, "positive"), ("2+, FISH amplified", None, "positive"),
    ("2+，FISH扩增", None, "positive"), ("阳性", "DISH", "positive"), ("ｐｏｓｉｔｉｖｅ", None, "positive"),
    ("0", "IHC", "negative"), ("1+", "IHC", "negative"), ("+", "IHC", "negative"), ("(+)", None, "negative"),
    ("-", None, "negative"), ("(-)", None, "negative"), ("0~1+", None, "negative"), ("1", "IHC", "negative"),
    ("阴性", None, "negative"), ("阴性(-)", None, "negative"), ("negative", "FISH", "negative"),
    ("Negative", None, "negative"), ("NEG", None, "negative"), ("negative (-)", None, "negative"),
    ("not amplified", "FISH", "negative"), ("Not Amplified", None, "negative"),
    ("non-amplified", "ISH", "negative"), ("NOT AMPLIFIED", None, "negative"), ("无扩增", "FISH", "negative"),
    ("未扩增", None, "negative"), ("未见扩增", None, "negative"), ("2+, FISH 阴性", None, "negative"),
    ("2+，FISH无扩增", None, "negative"), ("2+ (not amplified)", None, "negative"), ("１＋", None, "negative"),
    # Negation apart from the finding, with the marker or 'gene' between them.
    ("未见HER2基因扩增", "FISH", "negative"), ("无HER2扩增", None, "negative"), ("未见明显扩增", None, "negative"),
    ("no HER2 gene amplification", "FISH", "negative"), ("amplification not detected", None, "negative"),
    ("No amplification", "ISH", "negative"), ("扩增(-)", None, "negative"), ("HER2基因扩增", "FISH", "positive"),
    ("HER 2 3+", None, "positive"), ("HER 2 (1+)", None, "negative"),
    # An amplification finding stated as uncertain is no reading at all.
    ("无法判断是否扩增", "FISH", "unreadable"), ("扩增待定", None, "unreadable"), ("amplification?", None, "unreadable"),
    ("2+, FISH扩增待定", None, "equivocal"),
    ("2+", "IHC", "equivocal"), ("++", None, "equivocal"), ("(++)", None, "equivocal"),
    ("２＋", None, "equivocal"), ("2", "IHC", "equivocal"), ("弱阳性", None, "equivocal"),
    ("weakly positive", None, "equivocal"), ("2+ 弱阳性", None, "equivocal"),
    ("N/A", None, "unreadable"), ("不详", None, "unreadable"), ("见报告", None, "unreadable"),
    ("10%", None, "unreadable"), ("3", "FISH", "unreadable"), ("阳性/阴性", None, "unreadable"),
    ("++++", None, "unreadable"), ("pending", None, "unreadable"),
]

# ER/PR: positive = 1% or more, `+` or more, positive, 阳性 (弱阳性 too); negative = <1%, 0,
# `-`, negative, 阴性.
RECEPTOR_CASES = [
    ("90%", "positive"), ("1%", "positive"), ("≥1%", "positive"), (">10%", "positive"),
    ("1-10%", "positive"), ("约80%", "positive"), ("９０％", "positive"), ("阳性", "positive"),
    ("阳性(90%)", "positive"), ("强阳性", "positive"), ("positive", "positive"), ("Positive", "positive"),
    ("POS", "positive"), ("+", "positive"), ("++", "positive"), ("+++", "positive"), ("(+)", "positive"),
    ("(++)", "positive"), ("1+", "positive"), ("3+", "positive"), ("弱阳性", "positive"),
    ("weakly positive", "positive"), ("弱阳性(5%)", "positive"), ("（＋）", "positive"),
    ("<1%", "negative"), ("＜1%", "negative"), ("≤1%", "negative"), ("0%", "negative"), ("0.5%", "negative"),
    ("阴性", "negative"), ("negative", "negative"), ("Negative", "negative"), ("NEG", "negative"),
    ("-", "negative"), ("(-)", "negative"), ("0", "negative"), ("阴性(<1%)", "negative"),
    ("negative (0%)", "negative"),
    # The marker name repeated in the result.
    ("ER(-)", "negative"), ("PR (-)", "negative"), ("ER(+)", "positive"), ("ER 90%", "positive"),
    ("雌激素受体(-)", "negative"), ("孕激素受体阳性", "positive"), ("PgR 0", "negative"),
    ("<10%", "unreadable"), ("N/A", "unreadable"), ("不详", "unreadable"), ("阳性/阴性", "unreadable"),
    ("pending", "unreadable"),
]

MARKER_CASES = [
    ("HER2", "HER2"), ("HER-2", "HER2"), ("Her2", "HER2"), ("her2", "HER2"), ("HER 2", "HER2"),
    ("c-erbB-2", "HER2"), ("CerbB-2", "HER2"), ("C-erbB-2", "HER2"), ("ERBB2", "HER2"), ("HER2/neu", "HER2"),
    ("ＨＥＲ２", "HER2"), ("HER2 (FISH)", "HER2"),
    ("ER", "ER"), ("er", "ER"), (" ER ", "ER"), ("ESR1", "ER"), ("ERα", "ER"), ("Estrogen receptor", "ER"),
    ("Oestrogen Receptor", "ER"), ("雌激素受体", "ER"), ("ER(雌激素受体)", "ER"), ("ＥＲ", "ER"),
    ("PR", "PR"), ("PgR", "PR"), ("PGR", "PR"), ("pr", "PR"), ("Progesterone receptor", "PR"),
    ("孕激素受体", "PR"), ("孕酮受体", "PR"), ("PR(孕激素受体)", "PR"),
    ("Ki-67", None), ("AR", None), ("EGFR", None), ("P53", None), ("CK5/6", None),
]


@pytest.fixture(scope="module")
def her2_readings(spark):
    rows = [(i, r, m) for i, (r, m, _) in enumerate(HER2_CASES)]
    df = spark.createDataFrame(rows, "i int, result string, method string")
    got = df.select("i", facts.parse_her2_expr("result", "method").alias("reading")).collect()
    return {r["i"]: r["reading"] for r in got}


@pytest.fixture(scope="module")
def receptor_readings(spark):
    rows = [(i, r) for i, (r, _) in enumerate(RECEPTOR_CASES)]
    df = spark.createDataFrame(rows, "i int, result string")
    got = df.select("i", facts.parse_receptor_expr("result").alias("reading")).collect()
    return {r["i"]: r["reading"] for r in got}


@pytest.fixture(scope="module")
def marker_names(spark):
    rows = [(i, m) for i, (m, _) in enumerate(MARKER_CASES)]
    df = spark.createDataFrame(rows, "i int, marker string")
    got = df.select("i", facts.normalise_marker_expr("marker").alias("m")).collect()
    return {r["i"]: r["m"] for r in got}


@pytest.mark.parametrize("i", range(len(HER2_CASES)), ids=[f"{r!r}-{m}" for r, m, _ in HER2_CASES])
def test_her2_result_variant(her2_readings, i):
    assert her2_readings[i] == HER2_CASES[i][2]


@pytest.mark.parametrize("i", range(len(RECEPTOR_CASES)), ids=[repr(r) for r, _ in RECEPTOR_CASES])
def test_receptor_result_variant(receptor_readings, i):
    assert receptor_readings[i] == RECEPTOR_CASES[i][1]


@pytest.mark.parametrize("i", range(len(MARKER_CASES)), ids=[repr(m) for m, _ in MARKER_CASES])
def test_marker_name_variant(marker_names, i):
    assert marker_names[i] == MARKER_CASES[i][1]


def test_traps_never_read_positive(her2_readings):
    # The substring traps of the brief, checked together: 'not amplified' contains
    # 'amplified', '无扩增' contains '扩增', '弱阳性' contains '阳性'.
    by_text = {HER2_CASES[i][0]: her2_readings[i] for i in her2_readings}
    assert by_text["not amplified"] == "negative"
    assert by_text["无扩增"] == "negative"
    assert by_text["弱阳性"] == "equivocal"
    assert by_text["阴性"] == "negative"


# -- diagnoses: breast cancer, advanced date, de novo ------------------------------------------

# One patient per case; expected advanced_date written beside it (None = not advanced).
STAGE_CASES = [
    ("IV", "2021-03-01"), ("IVA", "2021-03-01"), ("ⅣA", "2021-03-01"), ("Ⅳ", "2021-03-01"),
    ("ⅣB期", "2021-03-01"), ("iv", "2021-03-01"), ("Stage IV", "2021-03-01"), ("T2N1M1", "2021-03-01"),
    ("cT4N2M1a", "2021-03-01"), ("M1", "2021-03-01"), ("ＩＶ", "2021-03-01"),
    ("IIIA", None), ("III", None), ("IIB", None), ("T2N1M0", None), ("I", None), (None, None),
]


def test_stage_iv_variants(spark):
    rows = [{"patient_id": f"s{i}", "diagnosis_date": "2021-03-01", "icd10": "C50.9", "stage": st}
            for i, (st, _) in enumerate(STAGE_CASES)]
    got = {r["patient_id"]: r["advanced_date"]
           for r in facts.advanced_dates(bronze_table(spark, "diagnoses", rows)).collect()}
    expected = {f"s{i}": d(adv) for i, (_, adv) in enumerate(STAGE_CASES) if adv}
    assert got == expected


def test_advanced_date_is_earliest_of_stage_iv_and_c78_c79(spark):
    rows = [
        # a: C50 stage IIA in 2019, bone metastasis C79.5 in 2021, stage IV C50 record in 2022 → 2021-05-10
        {"patient_id": "a", "diagnosis_date": "2019-01-10", "icd10": "C50.4", "stage": "IIA"},
        {"patient_id": "a", "diagnosis_date": "2021-05-10", "icd10": "C79.5"},
        {"patient_id": "a", "diagnosis_date": "2022-01-01", "icd10": "c509", "stage": "IV"},
        # b: only C77 (lymph nodes, not distant) → not advanced
        {"patient_id": "b", "diagnosis_date": "2020-01-01", "icd10": "C50.9", "stage": "IIIC"},
        {"patient_id": "b", "diagnosis_date": "2020-06-01", "icd10": "C77.3"},
        # c: lung metastasis C78.0 recorded as 'c780' → 2020-02-02
        {"patient_id": "c", "diagnosis_date": "2020-02-02", "icd10": "c780"},
        # e: stage IV on a lung cancer (C34) record is not breast stage IV → not advanced
        {"patient_id": "e", "diagnosis_date": "2020-02-02", "icd10": "C34.1", "stage": "IV"},
        # f: stage IV on C50.911 (extension code) → 2018-07-07
        {"patient_id": "f", "diagnosis_date": "2018-07-07", "icd10": "C50.911", "stage": "ⅣA"},
    ]
    got = {r["patient_id"]: r["advanced_date"]
           for r in facts.advanced_dates(bronze_table(spark, "diagnoses", rows)).collect()}
    assert got == {"a": d("2021-05-10"), "c": d("2020-02-02"), "f": d("2018-07-07")}


@pytest.fixture(scope="module")
def facts_world(spark, seed_study):
    study = dataclasses.replace(seed_study, data_cutoff=dt.date(2025, 6, 30))
    b = bronze(
        spark,
        patients=[
            {"patient_id": "p1", "sex": "F", "birth_date": "1970-05-05", "id_hash": "h1"},
            {"patient_id": "p2", "sex": "F", "birth_date": "1980-01-01", "id_hash": "h2"},
            {"patient_id": "p3", "sex": "M", "birth_date": "1960-01-01", "id_hash": None},
            {"patient_id": "p4", "sex": "F", "birth_date": "1975-01-01", "id_hash": "h4"},
        ],
        diagnoses=[
            # p1: bc 2020-01-01; advanced 2020-03-31 = bc + 90 days (31+29+30, 2020 a leap year) → de novo
            {"patient_id": "p1", "diagnosis_date": "2020-01-01", "icd10": "C50.9", "stage": "IIIA"},
            {"patient_id": "p1", "diagnosis_date": "2020-03-31", "icd10": "C78.7"},
            {"patient_id": "p1", "diagnosis_date": "2020-05-01", "icd10": "C79.3"},
            {"patient_id": "p1", "diagnosis_date": "2020-06-01", "icd10": "C79.5"},
            {"patient_id": "p1", "diagnosis_date": "2020-07-01", "icd10": "C79.2"},
            # p2: bc 2020-01-01; advanced 2020-04-01 = bc + 91 days → recurrent
            {"patient_id": "p2", "diagnosis_date": "2020-01-01", "icd10": "C50.1"},
            {"patient_id": "p2", "diagnosis_date": "2020-04-01", "icd10": "C79.51"},
            # p3: advanced (C78) with no breast diagnosis → de_novo null
            {"patient_id": "p3", "diagnosis_date": "2021-01-01", "icd10": "C78.0"},
        ],
        biomarkers=[
            {"patient_id": "p1", "test_date": "2020-01-05", "marker": "HER-2", "method": "IHC", "result": "1+"},
            {"patient_id": "p1", "test_date": "2020-01-06", "marker": "c-erbB-2", "method": "IHC", "result": "2+"},
            {"patient_id": "p1", "test_date": "2020-02-01", "marker": "HER2", "method": "FISH", "result": "扩增"},
            {"patient_id": "p1", "test_date": "2020-03-01", "marker": "Her2", "method": "IHC", "result": "(+++)"},
            {"patient_id": "p1", "test_date": "2020-01-05", "marker": "ER", "result": "<1%"},
            {"patient_id": "p1", "test_date": "2020-01-05", "marker": "PgR", "result": "弱阳性"},
            {"patient_id": "p1", "test_date": "2020-01-05", "marker": "Ki-67", "result": "30%"},
            {"patient_id": "p2", "test_date": "2020-01-05", "marker": "HER2", "result": "不详"},
            {"patient_id": "p2", "test_date": "2020-01-05", "marker": "雌激素受体", "result": "90%"},
        ],
        deaths=[
            # h1: two registrations that disagree → earliest (2024-01-01); h2: only after the cut-off
            {"id_hash": "h1", "death_date": "2024-02-01"}, {"id_hash": "h1", "death_date": "2024-01-01"},
            {"id_hash": "h2", "death_date": "2025-07-01"},
        ],
    )
    rows = facts.build_patient_facts(b, study).collect()
    return b, {r["patient_id"]: r.asDict() for r in rows}


def test_patient_facts_one_row_per_patient_with_columns(facts_world):
    _, got = facts_world
    assert sorted(got) == ["p1", "p2", "p3", "p4"]
    assert tuple(got["p1"]) == facts.FACT_COLUMNS


def test_patient_facts_dates_and_de_novo(facts_world):
    _, got = facts_world
    p1, p2, p3, p4 = got["p1"], got["p2"], got["p3"], got["p4"]
    assert (p1["bc_date"], p1["advanced_date"], p1["de_novo"]) == (d("2020-01-01"), d("2020-03-31"), True)
    assert (p2["bc_date"], p2["advanced_date"], p2["de_novo"]) == (d("2020-01-01"), d("2020-04-01"), False)
    assert (p3["bc_date"], p3["advanced_date"], p3["de_novo"]) == (None, d("2021-01-01"), None)
    assert (p4["bc_date"], p4["advanced_date"], p4["de_novo"]) == (None, None, None)
    assert (p1["sex"], p1["birth_date"]) == ("F", d("1970-05-05"))


def test_patient_facts_deaths(facts_world):
    _, got = facts_world
    assert (got["p1"]["death_date"], got["p1"]["death_dates_recorded"]) == (d("2024-01-01"), 2)
    assert (got["p2"]["death_date"], got["p2"]["death_dates_recorded"]) == (None, 1)  # after the cut-off
    assert (got["p3"]["death_date"], got["p3"]["death_dates_recorded"]) == (None, 0)  # not linkable
    assert (got["p4"]["death_date"], got["p4"]["death_dates_recorded"]) == (None, 0)


def test_patient_facts_dated_evidence(facts_world):
    _, got = facts_world
    p1 = got["p1"]
    # HER2: 1+ on 01-05 (negative), 2+ on 01-06 (equivocal), 扩增 on 02-01 (first positive)
    assert (p1["her2_negative_first_date"], p1["her2_equivocal_first_date"], p1["her2_positive_first_date"]) == (
        d("2020-01-05"), d("2020-01-06"), d("2020-02-01"))
    assert (p1["er_positive_first_date"], p1["er_negative_first_date"]) == (None, d("2020-01-05"))
    assert (p1["pr_positive_first_date"], p1["pr_negative_first_date"]) == (d("2020-01-05"), None)
    assert (p1["visceral_first_date"], p1["brain_first_date"], p1["bone_first_date"],
            p1["other_distant_first_date"]) == (d("2020-03-31"), d("2020-05-01"), d("2020-06-01"), d("2020-05-01"))
    p2 = got["p2"]  # HER2 '不详' is unreadable: no dated HER2 evidence at all
    assert (p2["her2_positive_first_date"], p2["her2_negative_first_date"], p2["her2_equivocal_first_date"]) == (
        None, None, None)
    assert (p2["er_positive_first_date"], p2["bone_first_date"], p2["other_distant_first_date"]) == (
        d("2020-01-05"), d("2020-04-01"), None)


def test_index_relative_statuses(spark, facts_world):
    b, _ = facts_world
    # The same facts read at three limits (reference date + window, computed by the cohort step).
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    f = facts.build_patient_facts(b, load_study(default_study_path()))
    limits = spark.createDataFrame([("p1", d("2020-01-05")), ("p1", d("2020-02-01")), ("p1", d("2020-05-31")),
                                    ("p1", d("2020-07-01")), ("p2", d("2020-12-31")), ("p4", d("2020-12-31"))],
                                   "patient_id string, limit date")
    lim = F.col("limit")
    rows = (f.join(limits, "patient_id")
            .select("patient_id", "limit", facts.her2_status_expr(lim).alias("her2"),
                    facts.her2_conflict_expr(lim).alias("conflict"), facts.hr_status_expr(lim).alias("hr"),
                    *[e.alias(n) for n, e in facts.site_exprs(lim).items()])
            .orderBy("patient_id", "limit").collect())
    got = [(r["patient_id"], str(r["limit"]), r["her2"], r["conflict"], r["hr"], r["visceral"], r["brain_mets"],
            r["bone_only"]) for r in rows]
    assert got == [
        # 01-05: only 1+ → negative; ER <1% negative, PR 弱阳性 positive → HR positive; no sites yet
        ("p1", "2020-01-05", "negative", False, "positive", False, False, False),
        # 02-01: 扩增 → positive, and the 1+ before it → a conflict
        ("p1", "2020-02-01", "positive", True, "positive", False, False, False),
        # 05-31: C78.7 (03-31) visceral, C79.3 (05-01) brain; bone not yet
        ("p1", "2020-05-31", "positive", True, "positive", True, True, False),
        ("p1", "2020-07-01", "positive", True, "positive", True, True, False),
        # p2: HER2 unreadable only → unknown; ER 90% → HR positive; C79.51 bone and nothing else → bone-only
        ("p2", "2020-12-31", "unknown", False, "positive", False, False, True),
        ("p4", "2020-12-31", "unknown", False, "unknown", False, False, False),
    ]


def test_hr_negative_needs_both_er_and_pr_negative(spark, seed_study):
    b = bronze(spark,
               patients=[{"patient_id": x, "sex": "F", "birth_date": "1970-01-01"} for x in ("n", "e", "u")],
               biomarkers=[
                   {"patient_id": "n", "test_date": "2020-01-01", "marker": "ER", "result": "阴性"},
                   {"patient_id": "n", "test_date": "2020-01-01", "marker": "PR", "result": "0%"},
                   {"patient_id": "e", "test_date": "2020-01-01", "marker": "ER", "result": "negative"},
                   {"patient_id": "e", "test_date": "2020-01-01", "marker": "PR", "result": "N/A"},
                   {"patient_id": "u", "test_date": "2020-01-01", "marker": "ER", "result": "阳性/阴性"},
               ])
    f = facts.build_patient_facts(b, seed_study)
    got = {r["patient_id"]: r["hr"] for r in
           f.select("patient_id", facts.hr_status_expr(F.lit(d("2020-12-31"))).alias("hr")).collect()}
    # n: both negative → negative; e: PR unreadable → unknown; u: ER contradictory text → unknown
    assert got == {"n": "negative", "e": "unknown", "u": "unknown"}
