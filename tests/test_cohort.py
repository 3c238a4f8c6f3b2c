"""The study cohort (study rules §4): attrition steps, index line, baseline columns."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from pyspark.sql import functions as F

from builders import CLASS_NAMES, bronze, d, drug_exposures, therapy_lines
from cohort_engine import cohort as cohort_mod
from cohort_engine.conf_folder import default_study_path
from cohort_engine.config import load_study
from cohort_engine.facts import build_patient_facts

CLASS = {"paclitaxel liposome": "taxane", "docetaxel": "taxane", "trastuzumab": "anti_her2_mab",
         "pertuzumab": "anti_her2_mab", "inetetumab": "anti_her2_mab", "pyrotinib": "anti_her2_tki",
         "capecitabine": "chemo_other", "ondansetron": "supportive"}
PL_T = "paclitaxel liposome+trastuzumab"


def line(pid, setting, number, start, regimen, last=None):
    return {"patient_id": pid, "setting": setting, "line_number": number, "start_date": start,
            "last_admin_date": last or start, "regimen": regimen, "n_admin_days": 1}


def exposures(pid, day, regimen, hospital="H1", prefix=None):
    return [{"record_id": f"{prefix or pid}-{k}", "patient_id": pid, "hospital_id": hospital, "admin_date": day,
             "ingredient": ing, "drug_class": CLASS[ing]} for k, ing in enumerate(regimen.split("+"))]


def her2(pid, day, result, method="IHC"):
    return {"patient_id": pid, "test_date": day, "marker": "HER2", "method": method, "result": result}


def dx(pid, day, icd, stage=None):
    return {"patient_id": pid, "diagnosis_date": day, "icd10": icd, "stage": stage}


def person(pid, birth="1960-01-01", id_hash=None, sex="F"):
    return {"patient_id": pid, "sex": sex, "birth_date": birth, "id_hash": id_hash}


def adult_candidate(pid, index, her2_date, regimen=PL_T, bc="2019-01-01", advanced="2019-12-01"):
    """A patient passing steps 2-4 with advanced line 1 = `regimen` starting on `index`."""
    return dict(patients=[person(pid)], diagnoses=[dx(pid, bc, "C50.9"), dx(pid, advanced, "C78.0")],
                biomarkers=[her2(pid, her2_date, "3+")],
                lines=[line(pid, "advanced", 1, index, regimen)], exposures=exposures(pid, index, regimen))


def world_parts():
    parts = [
        # -- included ------------------------------------------------------------------
        # i1: index 2020-06-01, born 1970-06-01 → 50; bc 2020-04-02 = index − 60, C78.0 on 2020-05-22
        # = index − 10 → advanced 50 days after bc → de novo; visceral; ER 90% → HR positive; HP.
        # Death registered on the index date (kept: step 9 excludes deaths *before* index) and
        # again on 2020-06-06 (a disagreement, counted).
        dict(patients=[person("i1", "1970-06-01", "h_i1")],
             diagnoses=[dx("i1", "2020-04-02", "C50.9", "IIA"), dx("i1", "2020-05-22", "C78.0")],
             biomarkers=[her2("i1", "2020-04-10", "3+"),
                         {"patient_id": "i1", "test_date": "2020-04-10", "marker": "ER", "result": "90%"}],
             deaths=[{"id_hash": "h_i1", "death_date": "2020-06-01"}, {"id_hash": "h_i1", "death_date": "2020-06-06"}],
             lines=[line("i1", "advanced", 1, "2020-06-01", "paclitaxel liposome+pertuzumab+trastuzumab",
                         "2020-10-01")],
             exposures=exposures("i1", "2020-06-01", "paclitaxel liposome+pertuzumab+trastuzumab")),
        # i2: index 2021-01-09, born 1965-01-10 → 55 (one day short of 56); recurrent (bc 2018);
        # bone C79.5 + node C77.3 → bone-only; HER2 1+ then FISH amplified → positive + conflict;
        # ER 阴性, PR <1% → HR negative; early trastuzumab 2018-06-01 < advanced − 30 → prior;
        # pyrotinib → 'H+TKI'. Index-day prescriptions: a0 ondansetron (supportive, H1: not a
        # line drug), a9 (no hospital), b1 trastuzumab at H2, b2 at H1 → hospital H2.
        dict(patients=[person("i2", "1965-01-10")],
             diagnoses=[dx("i2", "2018-04-15", "C50.9", "IIB"), dx("i2", "2020-12-20", "C79.5"),
                        dx("i2", "2020-12-20", "C77.3")],
             biomarkers=[her2("i2", "2018-04-20", "1+"), her2("i2", "2018-05-20", "amplified", "FISH"),
                         {"patient_id": "i2", "test_date": "2018-04-20", "marker": "ER", "result": "阴性"},
                         {"patient_id": "i2", "test_date": "2018-04-20", "marker": "PR", "result": "<1%"}],
             lines=[line("i2", "early", 1, "2018-06-01", "trastuzumab"),
                    line("i2", "advanced", 1, "2021-01-09", "paclitaxel liposome+pyrotinib+trastuzumab")],
             exposures=[
                 {"record_id": "e0", "patient_id": "i2", "hospital_id": "H1", "admin_date": "2018-06-01",
                  "ingredient": "trastuzumab", "drug_class": "anti_her2_mab"},
                 {"record_id": "a0", "patient_id": "i2", "hospital_id": "H1", "admin_date": "2021-01-09",
                  "ingredient": "ondansetron", "drug_class": "supportive"},
                 {"record_id": "a9", "patient_id": "i2", "hospital_id": None, "admin_date": "2021-01-09",
                  "ingredient": "paclitaxel liposome", "drug_class": "taxane"},
                 {"record_id": "b1", "patient_id": "i2", "hospital_id": "H2", "admin_date": "2021-01-09",
                  "ingredient": "trastuzumab", "drug_class": "anti_her2_mab"},
                 {"record_id": "b2", "patient_id": "i2", "hospital_id": "H1", "admin_date": "2021-01-09",
                  "ingredient": "pyrotinib", "drug_class": "anti_her2_tki"}]),
        # i3: index 2020-03-15, born 2002-03-15 → exactly 18; bc 2019-12-06 (index − 100), stage IV
        # on 2020-03-10 (index − 5) → 95 days → recurrent; HER2 3+ on 2020-04-14 = index + 30 (in
        # the window); brain C79.3 on 2020-04-15 = index + 31 (outside) → no brain mets; HR unknown.
        dict(patients=[person("i3", "2002-03-15")],
             diagnoses=[dx("i3", "2019-12-06", "C50.9", "IIB"), dx("i3", "2020-03-10", "C50.9", "IV"),
                        dx("i3", "2020-04-15", "C79.3")],
             biomarkers=[her2("i3", "2020-04-14", "3+")],
             lines=[line("i3", "advanced", 1, "2020-03-15", "inetetumab+paclitaxel liposome")],
             exposures=exposures("i3", "2020-03-15", "inetetumab+paclitaxel liposome")),
        # -- one exclusion per step ------------------------------------------------------------
        # x1 (step 2): no breast cancer diagnosis; its ER result is unreadable (counted).
        dict(patients=[person("x1")], diagnoses=[dx("x1", "2020-01-01", "C34.1", "IV")],
             biomarkers=[{"patient_id": "x1", "test_date": "2020-01-01", "marker": "ER", "result": "不详"}]),
        # x2 (step 3): HER2 1+ only → negative.
        {**adult_candidate("x2", "2020-01-10", "2019-01-05"), "biomarkers": [her2("x2", "2019-01-05", "1+")]},
        # x2b (step 3): HER2 3+ on 2020-02-10 = index + 31 → outside the window → unknown.
        adult_candidate("x2b", "2020-01-10", "2020-02-10"),
        # x3 (step 4): no advanced diagnosis; its line is early.
        dict(patients=[person("x3")], diagnoses=[dx("x3", "2019-01-01", "C50.9", "IIA")],
             biomarkers=[her2("x3", "2019-01-05", "3+")],
             lines=[line("x3", "early", 1, "2019-02-01", PL_T)], exposures=exposures("x3", "2019-02-01", PL_T)),
        # x4, y1 (step 5): advanced line 1 without paclitaxel liposome.
        adult_candidate("x4", "2020-01-10", "2019-01-05", "docetaxel+trastuzumab"),
        adult_candidate("y1", "2020-01-10", "2019-01-05", "docetaxel+pertuzumab+trastuzumab"),
        # x5 (step 6): the matching line is advanced line 2 (2020-07-28). Its HER2 3+ of 2020-08-20
        # is within line 2's start + 30, not line 1's: it must pass step 3 and fail at step 6.
        dict(patients=[person("x5")], diagnoses=[dx("x5", "2019-01-01", "C50.9"), dx("x5", "2019-12-01", "C78.0")],
             biomarkers=[her2("x5", "2020-08-20", "3+")],
             lines=[line("x5", "advanced", 1, "2020-01-10", "capecitabine"),
                    line("x5", "advanced", 2, "2020-07-28", PL_T)],
             exposures=exposures("x5", "2020-01-10", "capecitabine", prefix="x5a")
             + exposures("x5", "2020-07-28", PL_T, prefix="x5b")),
        # x6 (step 7): born 2002-03-15, index 2020-03-14 → 17 (birthday the next day).
        {**adult_candidate("x6", "2020-03-14", "2019-06-05"), "patients": [person("x6", "2002-03-15")]},
        # x7 (step 8): index 2012-12-31, before the study period (2013-01-01).
        adult_candidate("x7", "2012-12-31", "2012-06-05", bc="2012-06-01", advanced="2012-12-01"),
        # x8 (step 9): death on 2020-01-09, index 2020-01-10.
        {**adult_candidate("x8", "2020-01-10", "2019-01-05"), "patients": [person("x8", id_hash="h_x8")],
         "deaths": [{"id_hash": "h_x8", "death_date": "2020-01-09"}]},
    ]
    merged: dict[str, list] = {}
    for part in parts:
        for key, rows in part.items():
            merged.setdefault(key, []).extend(rows)
    return merged


def build_world(spark, study):
    parts = world_parts()
    b = bronze(spark, patients=parts["patients"], diagnoses=parts["diagnoses"], biomarkers=parts["biomarkers"],
               deaths=parts["deaths"],
               hospitals=[{"hospital_id": "H1", "tier": "3A", "province": "Beijing", "hospital_type": "oncology"},
                          {"hospital_id": "H2", "tier": "2B", "province": "Sichuan", "hospital_type": "general"}])
    # Cached only to keep the test quick: the three outputs all read the same facts.
    facts = build_patient_facts(b, study).cache()
    return cohort_mod.build_cohort(facts, therapy_lines(spark, parts["lines"]),
                                   drug_exposures(spark, parts["exposures"]), b, study, CLASS_NAMES)


@pytest.fixture(scope="module")
def study(seed_study):
    return dataclasses.replace(seed_study, data_cutoff=dt.date(2025, 6, 30))


@pytest.fixture(scope="module")
def seed_run(spark, study):
    cohort, attrition, dq = build_world(spark, study)
    return ({r["patient_id"]: r.asDict() for r in cohort.collect()},
            [tuple(r) for r in attrition.orderBy("step").collect()],
            {(r["table"], r["check"]): r["n"] for r in dq.collect()},
            cohort, attrition)


def test_attrition_every_step(seed_run):
    _, attrition, *_ = seed_run
    # 13 patients; excluded: x1 at 2; x2, x2b at 3; x3 at 4; x4, y1 at 5; x5 at 6; x6 at 7; x7 at 8; x8 at 9.
    assert attrition == [
        (1, "all valid patients", 13, 0),
        (2, "breast cancer diagnosis (ICD-10 C50)", 12, 1),
        (3, "HER2-positive", 10, 2),
        (4, "advanced disease", 9, 1),
        (5, "an advanced-setting line containing paclitaxel liposome and an anti-HER2 antibody", 7, 2),
        (6, "that line is advanced line 1", 6, 1),
        (7, "age ≥ 18 at index", 5, 1),
        (8, "index date within the study period (2013-01-01 to 2025-06-30)", 4, 1),
        (9, "no death recorded before the index date", 3, 1),
    ]


def test_attrition_schema(seed_run):
    *_, attrition = seed_run
    assert [(f.name, f.dataType.simpleString()) for f in attrition.schema.fields] == [
        ("step", "int"), ("criterion", "string"), ("n_remaining", "bigint"), ("n_excluded", "bigint")]


def test_cohort_schema(seed_run):
    *_, cohort, _ = seed_run
    assert [(f.name, f.dataType.simpleString()) for f in cohort.schema.fields] == [
        ("patient_id", "string"), ("index_date", "date"), ("regimen", "string"), ("anti_her2", "string"),
        ("age_at_index", "int"), ("sex", "string"), ("hr_status", "string"), ("de_novo", "boolean"),
        ("visceral", "boolean"), ("brain_mets", "boolean"), ("bone_only", "boolean"),
        ("prior_anti_her2", "boolean"), ("hospital_tier", "string"), ("province", "string"), ("index_year", "int"),
        ("arm", "string"), ("index_setting", "string"), ("index_line_number", "int"),
        ("index_last_admin_date", "date")]


def test_cohort_rows(seed_run):
    rows, *_ = seed_run
    assert sorted(rows) == ["i1", "i2", "i3"]
    assert rows["i1"] == dict(
        patient_id="i1", index_date=d("2020-06-01"), regimen="paclitaxel liposome+pertuzumab+trastuzumab",
        anti_her2="HP", age_at_index=50, sex="F", hr_status="positive", de_novo=True, visceral=True,
        brain_mets=False, bone_only=False, prior_anti_her2=False, hospital_tier="3A", province="Beijing",
        index_year=2020, arm=None, index_setting="advanced", index_line_number=1,
        index_last_admin_date=d("2020-10-01"))  # the index line's last administration, as the line has it
    assert rows["i2"] == dict(
        patient_id="i2", index_date=d("2021-01-09"), regimen="paclitaxel liposome+pyrotinib+trastuzumab",
        anti_her2="H+TKI", age_at_index=55, sex="F", hr_status="negative", de_novo=False, visceral=False,
        brain_mets=False, bone_only=True, prior_anti_her2=True, hospital_tier="2B", province="Sichuan",
        index_year=2021, arm=None, index_setting="advanced", index_line_number=1,
        index_last_admin_date=d("2021-01-09"))
    assert rows["i3"] == dict(
        patient_id="i3", index_date=d("2020-03-15"), regimen="inetetumab+paclitaxel liposome",
        anti_her2="I", age_at_index=18, sex="F", hr_status="unknown", de_novo=False, visceral=False,
        brain_mets=False, bone_only=False, prior_anti_her2=False, hospital_tier="3A", province="Beijing",
        index_year=2020, arm=None, index_setting="advanced", index_line_number=1,
        index_last_admin_date=d("2020-03-15"))


def test_cohort_data_quality(seed_run):
    _, _, dq, *_ = seed_run
    # i2's HER2 1+ and amplified; i1's two death dates; x8's death before index; x1's ER '不详'.
    assert dq == {("biomarkers", "her2_conflicting_results"): 1, ("deaths", "death_dates_disagree"): 1,
                  ("cohort", "death_before_index"): 1, ("biomarkers", "unreadable_result"): 1}


def test_her2_conflicts_in_a_her2_negative_study(spark, study):
    # The same world read by a HER2-negative criterion: i2's conflicting results (1+ and
    # amplified) are still counted, among the 12 patients that criterion reads, and the reason
    # says they are classed positive and so excluded at its step.
    from cohort_engine.cohort import her2_consequence
    from cohort_engine.population_criteria import Biomarker
    population = tuple(dataclasses.replace(c, status=("negative",)) if isinstance(c, Biomarker) else c
                       for c in study.population)
    negative = dataclasses.replace(study, population=population)
    _, _, dq = build_world(spark, negative)
    rows = {r["check"]: (r["reason"], r["n"]) for r in dq.collect()}
    assert rows["her2_conflicting_results"] == (
        "HER2 results read both positive and negative up to index + window; classed HER2-positive; so excluded "
        "at step 3 (HER2 negative)", 1)
    assert her2_consequence(study) == ""  # a HER2-positive criterion keeps them: the seed's text
    without = dataclasses.replace(study, population=tuple(c for c in study.population if not isinstance(c, Biomarker)))
    assert her2_consequence(without) == " (HER2 is not a criterion of this study)"


LABEL_CASES = [
    (["trastuzumab"], ["anti_her2_mab"], "H"),
    (["pertuzumab", "trastuzumab"], ["anti_her2_mab"], "HP"),
    (["inetetumab"], ["anti_her2_mab"], "I"),
    (["inetetumab", "trastuzumab"], ["anti_her2_mab"], "HI"),
    (["inetetumab", "pertuzumab", "trastuzumab"], ["anti_her2_mab"], "HPI"),
    (["paclitaxel liposome", "pyrotinib", "trastuzumab"], ["anti_her2_mab", "anti_her2_tki", "taxane"], "H+TKI"),
    (["pertuzumab", "pyrotinib", "trastuzumab"], ["anti_her2_mab", "anti_her2_tki"], "HP+TKI"),
    (["capecitabine", "pyrotinib"], ["anti_her2_tki", "chemo_other"], "TKI"),
    (["paclitaxel liposome"], ["taxane"], None),
]


@pytest.fixture(scope="module")
def labels(spark):
    df = spark.createDataFrame([(i, ing, cls) for i, (ing, cls, _) in enumerate(LABEL_CASES)],
                               "i int, ingredients array<string>, drug_classes array<string>")
    seed = load_study(default_study_path({}))
    anti_her2 = next(v for v in seed.variables if v.name == "anti_her2")
    got = df.select("i", cohort_mod.regimen_label(anti_her2).alias("l"))
    return {r["i"]: r["l"] for r in got.collect()}


@pytest.mark.parametrize("i", range(len(LABEL_CASES)), ids=[str(c[2]) for c in LABEL_CASES])
def test_anti_her2_label(labels, i):
    assert labels[i] == LABEL_CASES[i][2]


def test_a_study_without_the_her2_criterion_has_one_step_fewer(spark, study):
    relaxed = dataclasses.replace(study, population=tuple(c for c in study.population if c.kind != "biomarker"))
    cohort, attrition, _ = build_world(spark, relaxed)
    # x2 (HER2 1+) and x2b (HER2 outside the window) now pass every step: 3 + 2 included.
    assert [tuple(r) for r in attrition.orderBy("step").collect()] == [
        (1, "all valid patients", 13, 0),
        (2, "breast cancer diagnosis (ICD-10 C50)", 12, 1),
        (3, "advanced disease", 11, 1),
        (4, "an advanced-setting line containing paclitaxel liposome and an anti-HER2 antibody", 9, 2),
        (5, "that line is advanced line 1", 8, 1),
        (6, "age ≥ 18 at index", 7, 1),
        (7, "index date within the study period (2013-01-01 to 2025-06-30)", 6, 1),
        (8, "no death recorded before the index date", 5, 1),
    ]
    assert sorted(r["patient_id"] for r in cohort.collect()) == ["i1", "i2", "i3", "x2", "x2b"]


def test_comparator_study_is_configuration_only(spark):
    from cohort_engine.conf_folder import REPO_ROOT
    comparator = load_study(REPO_ROOT / "conf" / "studies" / "docetaxel_hp_first_line.yaml")
    comparator = dataclasses.replace(comparator, data_cutoff=dt.date(2025, 6, 30))
    cohort, attrition, _ = build_world(spark, comparator)
    # Only y1 has advanced line 1 = docetaxel + pertuzumab + trastuzumab (x4 lacks pertuzumab).
    # x2b has no candidate line in this study, so its HER2 is read up to the cut-off: its
    # 3+ of 2020-02-10 counts and it reaches step 5 (13 → 12 → 11 → 10 → 1).
    steps = [tuple(r) for r in attrition.orderBy("step").collect()]
    assert steps[4] == (5, "an advanced-setting line containing docetaxel, trastuzumab and pertuzumab", 1, 9)
    assert [s[2] for s in steps] == [13, 12, 11, 10, 1, 1, 1, 1, 1]
    rows = cohort.collect()
    assert [(r["patient_id"], r["regimen"], r["anti_her2"]) for r in rows] == [
        ("y1", "docetaxel+pertuzumab+trastuzumab", "HP")]
