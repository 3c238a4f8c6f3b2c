"""Safety (§6) on a five-patient cohort worked out by hand.

Every patient has index 2021-03-01 and an index line (advanced line 1) whose last
administration is 2021-05-01, so:
- baseline window [2021-01-30, 2021-03-01]: 2021-01-30 is index − 30 (in), 2021-01-29 is
  index − 31 (out);
- safety window [2021-03-01, 2021-05-31]: 2021-05-31 is last_admin + 30 (in), 2021-06-01
  is last_admin + 31 (out).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cohort_engine.ctcae import TERMS
from cohort_engine.safety import (
    INCIDENCE_COLUMNS, SAFETY_EVENT_COLUMNS, SAFETY_GATE, UNMAPPED_TERM, analyse_safety, safety_windows,
    worst_grades)
from cohort_engine.publish import publish


def write_safety_table(result, tables_dir, study):
    return publish(result.incidence, SAFETY_GATE, study, tables_dir)[1]

D = dt.date
INDEX, LAST_ADMIN = D(2021, 3, 1), D(2021, 5, 1)
ALT, ANC, PLT = TERMS["ALT"], TERMS["ANC"], TERMS["PLT"]
NEURO = "Peripheral sensory neuropathy"

# The index line as gold/cohort holds it: its start (the index date) and last administration.
# (A's later lines, of whatever dates, never widen its window: only the index line's dates do.)
COHORT = pd.DataFrame({"patient_id": list("ABCDE"), "index_date": [INDEX] * 5,
                       "index_setting": "advanced", "index_line_number": 1, "index_last_admin_date": [LAST_ADMIN] * 5})


def lab(patient, date, test, value, ref_high=np.nan, unit=None):
    default_unit = {"ALT": "U/L", "ANC": "10^9/L", "PLT": "10^9/L"}[test]
    return (patient, date, test, value, unit or default_unit, np.nan, ref_high)


LABS = pd.DataFrame([
    # A: ALT 200 on index − 31 is not the baseline; ALT 30 on index − 30 is (normal), so 130 on
    # 03-20 is graded against the ULN: 130 / 40 = 3.25 × ULN → grade 2 (> 3–5 × ULN). Had 200 been
    # the baseline (abnormal), 130 < 1.5 × 200 would be grade 0.
    lab("A", D(2021, 1, 29), "ALT", 200.0, 40.0), lab("A", D(2021, 1, 30), "ALT", 30.0, 40.0),
    lab("A", D(2021, 3, 20), "ALT", 130.0, 40.0),
    # B: baseline ALT 80 > ULN 40 (abnormal): 130 / 80 = 1.625 × baseline → grade 1 (≥ 1.5 ×), not
    # the grade 2 of the ULN rule.
    lab("B", D(2021, 2, 15), "ALT", 80.0, 40.0), lab("B", D(2021, 3, 10), "ALT", 130.0, 40.0),
    # C: ANC 0.3 the day before index is baseline, not an event; 0.8 on last_admin + 30 is grade 3
    # (< 1.0–0.5) and in the window; 0.4 on last_admin + 31 (grade 4) is out.
    lab("C", D(2021, 2, 28), "ANC", 0.3), lab("C", D(2021, 5, 31), "ANC", 0.8),
    lab("C", D(2021, 6, 1), "ANC", 0.4),
    # D: platelets 60 (grade 2, 03-10), 40 (grade 3, 03-20), 45 (grade 3, 04-01), 80 (grade 1):
    # worst grade 3, onset 03-20 (the earliest at the worst grade, not the first toxicity).
    lab("D", D(2021, 3, 10), "PLT", 60.0), lab("D", D(2021, 3, 20), "PLT", 40.0),
    lab("D", D(2021, 4, 1), "PLT", 45.0), lab("D", D(2021, 4, 10), "PLT", 80.0),
], columns=["patient_id", "collect_date", "test", "value", "unit", "ref_low", "ref_high"])

AES = pd.DataFrame([
    ("A", D(2021, 3, 15), "周围神经病变", 2, False),            # Chinese → neuropathy, grade 2
    ("A", D(2021, 4, 15), "peripheral neuropathy", 3, False),   # worst: grade 3 on 04-15
    ("A", D(2021, 8, 1), "vomiting", 3, False),                 # in line 2's time, out of the window
    ("B", D(2021, 3, 1), "过敏反应", 1, False),                 # the index day is in
    ("B", D(2021, 3, 5), "headache of unknown kind", 2, False),  # unmapped: counted, not dropped
    ("C", D(2021, 5, 31), "Nausea", None, False),               # last_admin + 30: in; no grade
    ("C", D(2021, 6, 1), "vomiting", 3, False),                 # last_admin + 31: out
    ("D", D(2021, 2, 28), "neutropenia", 4, True),              # before index: out
], columns=["patient_id", "onset_date", "term", "grade", "serious"])


@pytest.fixture(scope="module")
def result(seed_study):
    return analyse_safety(COHORT, LABS, AES, seed_study)


def test_windows_use_the_index_line(seed_study):
    w = safety_windows(COHORT, seed_study).set_index("patient_id")
    assert w.loc["A", "window_start"] == pd.Timestamp("2021-03-01")
    assert w.loc["A", "window_end"] == pd.Timestamp("2021-05-31")  # 2021-05-01 + 30


def test_worst_grade_per_patient_term_and_source(result):
    events = result.events
    assert events.columns.tolist() == SAFETY_EVENT_COLUMNS
    got = [(r.patient_id, r.term, None if pd.isna(r.grade) else int(r.grade), r.source, r.onset_date)
           for r in events.itertuples(index=False)]
    assert got == [
        ("A", ALT, 2, "lab", D(2021, 3, 20)),
        ("A", NEURO, 3, "record", D(2021, 4, 15)),
        ("B", ALT, 1, "lab", D(2021, 3, 10)),
        ("B", "Allergic reaction", 1, "record", D(2021, 3, 1)),
        ("B", UNMAPPED_TERM, 2, "record", D(2021, 3, 5)),
        ("C", "Nausea", None, "record", D(2021, 5, 31)),
        ("C", ANC, 3, "lab", D(2021, 5, 31)),
        ("D", PLT, 3, "lab", D(2021, 3, 20)),
    ]
    assert str(events["grade"].dtype) == "Int64"


def test_incidence_counts_and_percents(result):
    t = result.incidence
    assert t.columns.tolist() == INCIDENCE_COLUMNS and result.denominator == 5
    rows = {(r.term, r.source): r for r in t.itertuples(index=False)}
    # lab terms: all nine, in the ctcae order, zero where tested patients had no toxicity
    assert t.loc[t["source"] == "lab", "term"].tolist() == list(TERMS.values())
    alt = rows[(ALT, "lab")]  # A grade 2, B grade 1: 2 of 5 = 40 %; both tested
    assert (alt.any_grade_n, alt.any_grade_percent, alt.grade3plus_n, alt.grade3plus_percent, alt.tested_n) == \
        (2, 40.0, 0, 0.0, 2)
    anc = rows[(ANC, "lab")]  # C grade 3; only C has a neutrophil count in the window
    assert (anc.any_grade_n, anc.any_grade_percent, anc.grade3plus_n, anc.grade3plus_percent, anc.tested_n) == \
        (1, 20.0, 1, 20.0, 1)
    hgb = rows[(TERMS["HGB"], "lab")]
    assert (hgb.any_grade_n, hgb.grade3plus_n, hgb.tested_n) == (0, 0, 0)
    # recorded terms: found ones (1 patient each, so by name), then the unmapped count
    assert t.loc[t["source"] == "record", "term"].tolist() == ["Allergic reaction", "Nausea", NEURO, UNMAPPED_TERM]
    nausea = rows[("Nausea", "record")]  # no recorded grade: any grade yes, grade ≥ 3 no
    assert (nausea.any_grade_n, nausea.grade3plus_n) == (1, 0) and np.isnan(nausea.tested_n)
    assert (rows[(NEURO, "record")].grade3plus_n, rows[(UNMAPPED_TERM, "record")].any_grade_n) == (1, 1)
    # window rows: labs of A (03-20), B (03-10), C (05-31), D (4) = 7; AEs A 2, B 2, C 1 = 5
    assert result.counts == {"patients_without_window": 0, "lab_rows_in_window": 7, "lab_rows_ungradable": 0,
                             "ae_rows_in_window": 5, "ae_rows_unmapped": 1, "ae_rows_without_grade": 1}


def test_safety_csv_suppresses_counts_and_their_percents(seed_study, tmp_path):
    # 20 patients. Alopecia: 12 (all grade 1). Nausea: 10, of whom 7 grade 3 — the 3 with grade
    # 1 would be 10 − 7, so the grade ≥ 3 count and its percent are withheld ("*"). Vomiting: 6,
    # all grade 3 (6 − 6 = 0 reveals nobody). Percent = n / 20.
    ids = [f"p{i:02d}" for i in range(20)]
    cohort = pd.DataFrame({"patient_id": ids, "index_date": [INDEX] * 20, "index_setting": "advanced",
                           "index_line_number": 1, "index_last_admin_date": LAST_ADMIN})
    rows = [(p, D(2021, 4, 1), "alopecia", 1, False) for p in ids[:12]]
    rows += [(p, D(2021, 4, 2), "恶心", 3 if i < 7 else 1, False) for i, p in enumerate(ids[:10])]
    rows += [(p, D(2021, 4, 3), "vomiting", 3, False) for p in ids[10:16]]
    aes = pd.DataFrame(rows, columns=["patient_id", "onset_date", "term", "grade", "serious"])
    result = analyse_safety(cohort, None, aes, seed_study)
    path = write_safety_table(result, tmp_path, seed_study)
    csv = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert csv[["term", "source", "any_grade_n", "any_grade_percent", "grade3plus_n", "grade3plus_percent",
                "tested_n"]].values.tolist() == [
        ["laboratory toxicities", "lab", "", "", "", "", ""],
        ["Alopecia", "record", "12", "60.0", "0", "0.0", ""],
        ["Nausea", "record", "10", "50.0", "*", "*", ""],
        ["Vomiting", "record", "6", "30.0", "6", "30.0", ""],
    ]
    assert csv.loc[0, "note"].startswith("not available")


def test_small_counts_are_shown_as_less_than_five(result, seed_study, tmp_path):
    csv = pd.read_csv(write_safety_table(result, tmp_path, seed_study), dtype=str,
                      keep_default_na=False)
    # ALT: any grade 2 → "<5" and its percent "*"; grade ≥ 3 is 0, but 2 − 0 = 2 patients with
    # grade 1–2 is a complement of 1–4, so it is withheld too; 2 tested → "<5".
    alt = csv[csv["term"] == ALT].iloc[0]
    assert (alt.any_grade_n, alt.any_grade_percent, alt.grade3plus_n, alt.tested_n) == ("<5", "*", "*", "<5")
    # HGB: nobody with a value in the window, so 0 of 0 tested.
    hgb = csv[csv["term"] == TERMS["HGB"]].iloc[0]
    assert (hgb.any_grade_n, hgb.any_grade_percent, hgb.grade3plus_n, hgb.tested_n) == ("0", "0.0", "0", "0")


def test_absent_sources_are_not_available_not_zero(seed_study):
    result = analyse_safety(COHORT, None, None, seed_study)
    assert result.events.empty and result.events.columns.tolist() == SAFETY_EVENT_COLUMNS
    t = result.incidence
    assert t["term"].tolist() == ["laboratory toxicities", "recorded adverse events"]
    assert t["any_grade_n"].isna().all() and t["note"].str.startswith("not available").all()
    assert not result.labs_available and not result.adverse_events_available


def test_patient_without_index_line_has_no_window(seed_study):
    cohort = COHORT.assign(index_last_admin_date=[None if p == "C" else LAST_ADMIN for p in COHORT["patient_id"]])
    result = analyse_safety(cohort, LABS, AES, seed_study)
    assert "C" not in set(result.events["patient_id"])
    assert result.counts["patients_without_window"] == 1 and result.denominator == 5


def test_worst_grade_ties_take_the_earliest_date():
    events = pd.DataFrame({"patient_id": ["A", "A", "A"], "term": ["Nausea"] * 3,
                           "grade": pd.array([2, 2, None], dtype="Int64"), "source": "record",
                           "onset_date": [D(2021, 4, 9), D(2021, 4, 2), D(2021, 3, 2)]})
    out = worst_grades(events)
    assert out[["grade", "onset_date"]].values.tolist() == [[2, D(2021, 4, 2)]]


def test_recorded_table_present_but_nothing_in_the_window_is_a_true_zero(seed_study):
    # D's neutropenia (2021-02-28) is before index: the adverse_events table exists, the window is empty.
    result = analyse_safety(COHORT, None, AES[AES["patient_id"] == "D"], seed_study)
    row = result.incidence[result.incidence["source"] == "record"]
    assert row[["term", "any_grade_n", "grade3plus_n"]].values.tolist() == [["recorded adverse events", 0, 0]]
    assert row["note"].tolist() == ["none recorded in the safety window"]


def test_patients_tested_and_untested_are_not_given_away(seed_study, tmp_path):
    # 20 patients; ANC measured in the window for 18 (2 never tested: 20 − 18 names them, so 18
    # is withheld). Of the 18: 15 below the LLN of 2.0 (any grade; 18 − 15 = 3 tested without
    # toxicity, so 15 and its percent are withheld), 5 of them below 1.0 (grade ≥ 3; 15 − 5 = 10
    # reveals nobody, so 5 and 25.0 % stand). ANC 0.8 → grade 3; 1.8 → grade 1; 2.5 → none.
    ids = [f"p{i:02d}" for i in range(20)]
    cohort = pd.DataFrame({"patient_id": ids, "index_date": [INDEX] * 20, "index_setting": "advanced",
                           "index_line_number": 1, "index_last_admin_date": LAST_ADMIN})
    values = [0.8] * 5 + [1.8] * 10 + [2.5] * 3
    labs = pd.DataFrame([lab(p, D(2021, 3, 15), "ANC", v) for p, v in zip(ids, values)],
                        columns=LABS.columns)
    result = analyse_safety(cohort, labs, None, seed_study)
    anc = result.incidence.set_index("term").loc[ANC]
    assert (anc.any_grade_n, anc.grade3plus_n, anc.tested_n, anc.cohort_n) == (15, 5, 18, 20)
    csv = pd.read_csv(write_safety_table(result, tmp_path, seed_study), dtype=str,
                      keep_default_na=False).set_index("term")
    assert csv.loc[ANC, ["any_grade_n", "any_grade_percent", "grade3plus_n", "grade3plus_percent", "tested_n",
                         "cohort_n"]].tolist() == ["*", "*", "5", "25.0", "*", "20"]
