"""The lines rebuilt with another maximum gap (study rules §3 and §8), through `rebuild_endpoints`.

A cohort built so that the 60-, 120- and 180-day rules give different lines. Every patient
is HER2-positive, advanced since 2023-12-01 (C50 stage IV) and starts paclitaxel liposome
plus trastuzumab on the index date 2024-01-01 (day 0); the gap rule ends a line when the
days since its previous administration *exceed* the maximum gap. Days are offsets from the
index date; the cut-off 2025-06-30 is day 546, and a visit on day 500 is the last contact
(day 380 for the patient who dies on day 400). Every index line's last administration is
more than 120 days (discontinuation_gap_days) before the cut-off, so each is discontinued
at its last administration whichever gap built it.

* gap60: administrations on days 0, 21, 81, 102 — a 60-day gap, no rule exceeds it: one line.
* gap90: days 0, 21, 42, 63, 153, 174, 195 — a 90-day gap: only the 60-day rule starts line 2 on day 153.
* gap150: days 0, 21, 42, 192, 213 — a 150-day gap: the 60- and 120-day rules start line 2 on day 192.
  SD on day 100, PD on day 300: rwPFS and TTP come from the assessments and do not move.
* gap180: days 0, 21, 201, 222 — a 180-day gap: the 60- and 120-day rules start line 2 on day 201.
  Death on day 400.
No patient but gap150 has a tumor assessment, so their rwPFS is the TTNT proxy.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from builders import CLASS_NAMES, bronze, drug_exposures
from cohort_engine.cohort import build_cohort
from cohort_engine.endpoints import lake_last_contacts
from cohort_engine.facts import advanced_dates, build_patient_facts
from cohort_engine.lines import build_therapy_lines
from cohort_engine.sensitivity import RebuildSources, rebuild_endpoints, sensitivity_studies

INDEX = dt.date(2024, 1, 1)
CUTOFF = dt.date(2025, 6, 30)  # day 546
MAIN, GAP60, GAP180 = "main analysis", "lines rebuilt with a 60-day gap", "lines rebuilt with a 180-day gap"
INDEX_REGIMEN = {"paclitaxel liposome": "taxane", "trastuzumab": "anti_her2_mab"}

ADMINISTRATIONS = {"gap60": (0, 21, 81, 102), "gap90": (0, 21, 42, 63, 153, 174, 195),
                   "gap150": (0, 21, 42, 192, 213), "gap180": (0, 21, 201, 222)}
ASSESSMENTS = {"gap150": ((100, "SD"), (300, "PD"))}
DEATHS = {"gap180": 400}
LAST_VISIT = {"gap180": 380}


def day(n: int) -> str:
    return (INDEX + dt.timedelta(days=n)).isoformat()


def world(spark):
    """(bronze tables, silver drug_exposures) of the four patients."""
    patients, diagnoses, biomarkers, deaths, visits, prescriptions, exposures, assessments = ([] for _ in range(8))
    for pid, days in ADMINISTRATIONS.items():
        patients.append({"patient_id": pid, "sex": "F", "birth_date": "1970-01-01",
                         "id_hash": f"h_{pid}" if pid in DEATHS else None})
        diagnoses.append({"patient_id": pid, "diagnosis_date": "2023-12-01", "icd10": "C50.9", "stage": "IV"})
        biomarkers.append({"patient_id": pid, "test_date": "2023-12-10", "marker": "HER2", "method": "IHC",
                           "result": "3+"})
        if pid in DEATHS:
            deaths.append({"id_hash": f"h_{pid}", "death_date": day(DEATHS[pid])})
        visits.append({"patient_id": pid, "visit_date": day(LAST_VISIT.get(pid, 500))})
        assessments += [{"patient_id": pid, "assessment_date": day(n), "response": r}
                        for n, r in ASSESSMENTS.get(pid, ())]
        for n in days:
            for ingredient, drug_class in INDEX_REGIMEN.items():
                record = {"record_id": f"{pid}-{n}-{ingredient}", "patient_id": pid, "hospital_id": "H1",
                          "admin_date": day(n), "drug_name": ingredient}
                prescriptions.append(record)
                exposures.append({**record, "ingredient": ingredient, "drug_class": drug_class})
    tables = bronze(spark, patients=patients, diagnoses=diagnoses, biomarkers=biomarkers, deaths=deaths,
                    visits=visits, prescriptions=prescriptions, tumor_assessments=assessments,
                    hospitals=[{"hospital_id": "H1", "tier": "3A", "province": "Beijing",
                                "hospital_type": "oncology"}])
    return tables, drug_exposures(spark, exposures)


def sources(spark, study):
    """What the pipeline's rebuilds read: the lake's lines and cohort as its stages build them
    with the study's own 120-day gap, and silver/last_contacts at the cut-off."""
    tables, exposures = world(spark)
    lines = build_therapy_lines(exposures, advanced_dates(tables["diagnoses"], study), study.lines)
    cohort = build_cohort(build_patient_facts(tables, study), lines, exposures, tables, study, CLASS_NAMES)[0]
    contacts = lake_last_contacts(tables, study)
    return RebuildSources(studies=(study,), bronze=tables, exposures=exposures, built=lambda: (lines, cohort),
                          contacts=lambda variant: contacts)


@pytest.fixture(scope="module")
def rebuilt(spark, seed_study):
    """Per analysis: (index_last_admin_date by patient, (time_days, event, event_type, source)
    by patient and endpoint)."""
    study = dataclasses.replace(seed_study, data_cutoff=CUTOFF)
    assert study.lines.max_gap_days == 120 and study.endpoints.discontinuation_gap_days == 120
    variants = {MAIN: study, **{label: v for label, v in sensitivity_studies(study).items() if "gap" in label}}
    assert set(variants) == {MAIN, GAP60, GAP180}
    read, shared = sources(spark, study), {}
    found = {}
    for label, variant in variants.items():
        cohort, endpoints = rebuild_endpoints(study, variant, read, shared)
        found[label] = ({r["patient_id"]: r["index_last_admin_date"] for r in cohort.collect()},
                        {(r["patient_id"], r["endpoint"]): (r["time_days"], r["event"], r["event_type"], r["source"])
                         for r in endpoints.collect()})
    return found


CENSORED_AT_LAST_CONTACT = {"rwPFS": (500, 0, "censored", "ttnt_proxy"), "TTNT": (500, 0, "censored", None)}
ALIVE = {"OS": (546, 0, "censored", None)}
GAP150_ASSESSED = {"rwPFS": (300, 1, "progression", "assessment"), "TTP": (300, 1, "progression", None)}

# The index line's last administration, then the endpoints (no TTP row without an assessment).
ONE_LINE = {
    "gap60": (102, {**ALIVE, **CENSORED_AT_LAST_CONTACT, "TTF": (102, 1, "discontinuation", None)}),
    "gap90": (195, {**ALIVE, **CENSORED_AT_LAST_CONTACT, "TTF": (195, 1, "discontinuation", None)}),
    "gap150": (213, {**ALIVE, **GAP150_ASSESSED, "TTNT": (500, 0, "censored", None),
                     "TTF": (213, 1, "discontinuation", None)}),
    # Died on day 400: the index line is discontinued at its last administration.
    "gap180": (222, {"OS": (400, 1, "death", None), "rwPFS": (400, 1, "death", "ttnt_proxy"),
                     "TTNT": (400, 1, "death", None), "TTF": (222, 1, "discontinuation", None)}),
}
# The line ends before the gap; the next line's start is the TTNT (and rwPFS proxy) event.
SPLIT = {
    "gap90": (63, {**ALIVE, "rwPFS": (153, 1, "next_line", "ttnt_proxy"), "TTNT": (153, 1, "next_line", None),
                   "TTF": (63, 1, "discontinuation", None)}),
    # PD on day 300 comes after the discontinuation on day 42: TTF is the discontinuation.
    "gap150": (42, {**ALIVE, **GAP150_ASSESSED, "TTNT": (192, 1, "next_line", None),
                    "TTF": (42, 1, "discontinuation", None)}),
    "gap180": (21, {"OS": (400, 1, "death", None), "rwPFS": (201, 1, "next_line", "ttnt_proxy"),
                    "TTNT": (201, 1, "next_line", None), "TTF": (21, 1, "discontinuation", None)}),
}
EXPECTED = {
    GAP60: {"gap60": ONE_LINE["gap60"], "gap90": SPLIT["gap90"], "gap150": SPLIT["gap150"],
            "gap180": SPLIT["gap180"]},
    MAIN: {"gap60": ONE_LINE["gap60"], "gap90": ONE_LINE["gap90"], "gap150": SPLIT["gap150"],
           "gap180": SPLIT["gap180"]},
    GAP180: ONE_LINE,
}


@pytest.mark.parametrize("label", [GAP60, MAIN, GAP180])
def test_each_gap_rule_gives_its_own_index_line_and_endpoints(rebuilt, label):
    last_admin, endpoints = rebuilt[label]
    expected = EXPECTED[label]
    assert last_admin == {pid: dt.date.fromisoformat(day(last)) for pid, (last, _) in expected.items()}
    assert endpoints == {(pid, name): row for pid, (_, rows) in expected.items() for name, row in rows.items()}
