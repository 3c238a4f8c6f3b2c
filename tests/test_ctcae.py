"""CTCAE v5.0 lab grading: every grade boundary, each side of it, from ctcae_v5_lab_grades.md.

Each case is (test, value, unit, ref_low, ref_high, expected grade); NaN limits mean the
module's defaults (ANC LLN 2.0, WBC 4.0, PLT 100, HGB 11.5 g/dL, ALT ULN 40, AST 35,
TBIL 21 µmol/L, CREA 81 µmol/L). "Exactly at" a threshold tells whether the bound is
inclusive: "< 1.5 – 1.0" for ANC grade 2 means 1.5 itself is still grade 1.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from cohort_engine.ctcae import DEFAULT_LIMITS, TERMS, grade_labs, map_ae_terms, select_baseline

NA = np.nan


def grade_one(test, value, unit=None, ref_low=NA, ref_high=NA, baseline=None, **kwargs):
    labs = pd.DataFrame({"patient_id": ["p"], "test": [test], "value": [value], "unit": [unit],
                         "ref_low": [ref_low], "ref_high": [ref_high]})
    base = None
    if baseline is not None:
        b_value, b_unit, b_high = baseline
        base = pd.DataFrame({"patient_id": ["p"], "test": [test], "value": [b_value], "unit": [b_unit],
                             "ref_low": [NA], "ref_high": [b_high]})
    out = grade_labs(labs, base, **kwargs)
    return out["grade"].iloc[0]


def cases(test, unit, pairs):
    return [pytest.param(test, v, unit, g, id=f"{test}-{v}") for v, g in pairs]


# Decreased counts, 10^9/L: grade 1 < LLN, then fixed cut-offs (the upper end inclusive).
LOW_CASES = (
    cases("ANC", "10^9/L", [(2.0, 0), (1.99, 1), (1.5, 1), (1.49, 2), (1.0, 2), (0.99, 3), (0.5, 3), (0.49, 4)])
    + cases("WBC", "10^9/L", [(4.0, 0), (3.99, 1), (3.0, 1), (2.99, 2), (2.0, 2), (1.99, 3), (1.0, 3), (0.99, 4)])
    + cases("PLT", "10^9/L", [(100, 0), (99.9, 1), (75, 1), (74.9, 2), (50, 2), (49.9, 3), (25, 3), (24.9, 4)])
    # Anemia in g/dL (LLN 11.5): no grade 4 from a value.
    + cases("HGB", "g/dL", [(11.5, 0), (11.4, 1), (10.0, 1), (9.9, 2), (8.0, 2), (7.9, 3), (4.0, 3)])
    # The same boundaries given in g/L (÷ 10); 115 g/L × 0.1 is 11.500000000000002 in floating
    # point and must still be "not below 11.5".
    + cases("HGB", "g/L", [(115, 0), (114, 1), (100, 1), (99, 2), (80, 2), (79, 3)])
)


@pytest.mark.parametrize("test, value, unit, expected", LOW_CASES)
def test_decreased_count_boundaries(test, value, unit, expected):
    assert grade_one(test, value, unit) == expected


# Increased, normal baseline: > ULN, > 3, > 5, > 20 × ULN (ALT ULN 40, AST ULN 35).
HIGH_CASES = (
    cases("ALT", "U/L", [(40, 0), (40.1, 1), (120, 1), (120.1, 2), (200, 2), (200.1, 3), (800, 3), (800.1, 4)])
    + cases("AST", "U/L", [(35, 0), (35.1, 1), (105, 1), (105.1, 2), (175, 2), (175.1, 3), (700, 3), (700.1, 4)])
    # Bilirubin: > ULN, > 1.5, > 3, > 10 × ULN (21 µmol/L).
    + cases("TBIL", "umol/L", [(21, 0), (21.1, 1), (31.5, 1), (31.6, 2), (63, 2), (63.1, 3), (210, 3), (210.1, 4)])
    # Creatinine: > ULN, > 1.5, > 3, > 6 × ULN (81 µmol/L).
    + cases("CREA", "umol/L", [(81, 0), (81.1, 1), (121.5, 1), (121.6, 2), (243, 2), (243.1, 3), (486, 3),
                               (486.1, 4)])
    # LVEF: 50–40 grade 2 (50 included), 39–20 grade 3, < 20 grade 4.
    + cases("LVEF", "%", [(50.1, 0), (50, 2), (40, 2), (39.9, 3), (20, 3), (19.9, 4)])
)


@pytest.mark.parametrize("test, value, unit, expected", HIGH_CASES)
def test_increased_and_lvef_boundaries(test, value, unit, expected):
    assert grade_one(test, value, unit) == expected


# ALT/AST with an abnormal baseline (baseline above its ULN): grade 1 from 1.5 × baseline
# inclusive, then > 3, > 5, > 20 × baseline. ALT baseline 60 (ULN 40): 90, 180, 300, 1200.
@pytest.mark.parametrize("value, expected", [(89.9, 0), (90, 1), (180, 1), (180.1, 2), (300, 2), (300.1, 3),
                                             (1200, 3), (1200.1, 4)])
def test_alt_abnormal_baseline_uses_multiples_of_baseline(value, expected):
    assert grade_one("ALT", value, "U/L", ref_high=40, baseline=(60, "U/L", 40)) == expected


@pytest.mark.parametrize("value, expected", [(74.9, 0), (75, 1), (150, 1), (150.1, 2), (250, 2), (250.1, 3),
                                             (1000, 3), (1000.1, 4)])
def test_ast_abnormal_baseline_uses_multiples_of_baseline(value, expected):
    # AST baseline 50 above the default ULN 35: 1.5× = 75, 3× = 150, 5× = 250, 20× = 1000.
    assert grade_one("AST", value, "U/L", baseline=(50, "U/L", NA)) == expected


def test_normal_baseline_keeps_the_uln_rule():
    # Baseline 40 equals the ULN: not abnormal, so 40.1 is grade 1 (> ULN), not 0 (< 1.5 × 40).
    assert grade_one("ALT", 40.1, "U/L", ref_high=40, baseline=(40, "U/L", 40)) == 1
    # The baseline's own ULN decides: 45 with ULN 50 is normal.
    assert grade_one("ALT", 61, "U/L", ref_high=40, baseline=(45, "U/L", 50)) == 1


def test_bilirubin_baseline_rule_only_when_asked():
    # Baseline 30 µmol/L (above ULN 21). Study rules: ALT/AST only → 30 is > ULN → grade 1.
    assert grade_one("TBIL", 30, "umol/L", baseline=(30, "umol/L", NA)) == 1
    # With TBIL in the abnormal-baseline tests: > 1.0, 1.5, 3, 10 × baseline (30, 45, 90, 300).
    pairs = [(30, 0), (30.1, 1), (45, 1), (45.1, 2), (90, 2), (90.1, 3), (300, 3), (300.1, 4)]
    got = [grade_one("TBIL", v, "umol/L", baseline=(30, "umol/L", NA), abnormal_baseline_tests=("ALT", "AST", "TBIL"))
           for v, _ in pairs]
    assert got == [g for _, g in pairs]


@pytest.mark.parametrize("value, expected", [(90, 1), (90.1, 2), (180, 2), (180.1, 3)])
def test_creatinine_relative_to_baseline(value, expected):
    # Baseline 60 µmol/L, ULN 81: by ULN 90 and 180 are grades 1 and 2; > 1.5 × 60 = 90 is
    # at least grade 2 and > 3 × 60 = 180 at least grade 3.
    assert grade_one("CREA", value, "umol/L", baseline=(60, "umol/L", NA)) == expected


def test_creatinine_above_one_and_a_half_baseline_within_normal_range():
    # CTCAE v5 literally: 61 > 1.5 × 40 is grade 2 even below the ULN of 81.
    assert grade_one("CREA", 61, "umol/L", baseline=(40, "umol/L", NA)) == 2
    assert grade_one("CREA", 60, "umol/L", baseline=(40, "umol/L", NA)) == 0


@pytest.mark.parametrize("value, expected", [(60.1, 0), (60, 2), (50.1, 2), (50, 3)])
def test_lvef_drop_from_baseline(value, expected):
    # Baseline 70 %: a drop of 9.9 points is nothing, 10–19.9 grade 2, 20 or more grade 3.
    assert grade_one("LVEF", value, "%", baseline=(70, "%", NA)) == expected


def test_unit_conversions():
    # Bilirubin 1.8 mg/dL with ULN 1.2 mg/dL: 30.78 vs 20.52 µmol/L, exactly 1.5 × ULN → 1.
    assert grade_one("TBIL", 1.8, "mg/dL", ref_high=1.2) == 1
    assert grade_one("TBIL", 1.81, "mg/dL", ref_high=1.2) == 2
    # 1.23 mg/dL × 17.1 = 21.033 µmol/L > default ULN 21 → 1; 1.22 → 20.862 → 0.
    assert grade_one("TBIL", 1.23, "mg/dL") == 1 and grade_one("TBIL", 1.22, "mg/dL") == 0
    # Creatinine 1.35 mg/dL with ULN 0.9 mg/dL: 119.34 = 1.5 × 79.56 µmol/L → 1; 1.36 → 2.
    assert grade_one("CREA", 1.35, "mg/dL", ref_high=0.9) == 1
    assert grade_one("CREA", 1.36, "mg/dL", ref_high=0.9) == 2
    # Hemoglobin 95 g/L, LLN 115 g/L → 9.5 g/dL → grade 2.
    assert grade_one("HGB", 95, "g/L", ref_low=115) == 2
    labs = pd.DataFrame({"patient_id": "p", "test": ["HGB", "CREA", "TBIL"], "value": [95, 1.0, 1.0],
                         "unit": ["g/L", "mg/dL", "mg/dL"], "ref_low": NA, "ref_high": NA})
    assert grade_labs(labs)["value_std"].tolist() == pytest.approx([9.5, 88.4, 17.1], abs=1e-12)


def test_unit_spellings_and_missing_units():
    assert grade_one("TBIL", 40, "μmol/L") == 2 and grade_one("TBIL", 40, "µmol/l") == 2  # Greek mu, micro sign
    assert grade_one("TBIL", 40, None) == 2  # µmol/L assumed
    # Hemoglobin without a unit: above 25 it is g/L.
    assert grade_one("HGB", 79, None) == 3 and grade_one("HGB", 7.9, None) == 3
    assert grade_one("HGB", 100, None) == 1


def test_defaults_when_limits_missing_and_row_limits_when_given():
    assert grade_one("ANC", 1.9) == 1  # default LLN 2.0
    assert grade_one("ANC", 1.9, "10^9/L", ref_low=1.8) == 0  # the lab's own LLN
    assert grade_one("ANC", 1.79, "10^9/L", ref_low=1.8) == 1
    assert grade_one("ALT", 45, "U/L", ref_high=50) == 0 and grade_one("ALT", 45, "U/L") == 1
    labs = pd.DataFrame({"patient_id": "p", "test": list(DEFAULT_LIMITS), "value": 1.0, "unit": None,
                         "ref_low": NA, "ref_high": NA})
    out = grade_labs(labs)
    assert out["lln"].tolist() == [2.0, 4.0, 100.0, 11.5, 7.0, 13.0, 0.0, 41.0, 50.0]
    assert out["uln"].tolist()[:8] == [7.5, 10.0, 300.0, 15.0, 40.0, 35.0, 21.0, 81.0]


def test_terms_and_ungradable_rows():
    labs = pd.DataFrame({"patient_id": "p", "test": ["anc ", "HGB", "GLU"], "value": [0.4, 8.5, 5.0],
                         "unit": ["10^9/L", "U/L", "mmol/L"], "ref_low": NA, "ref_high": NA})
    out = grade_labs(labs)
    assert out["term"].tolist()[:2] == [TERMS["ANC"], "Anemia"] and pd.isna(out["term"].iloc[2])
    assert out["grade"].iloc[0] == 4
    assert out["grade"].isna().tolist() == [False, True, True]  # hemoglobin in U/L; unknown test
    assert str(out["grade"].dtype) == "Int64"


def test_select_baseline_latest_value_in_window():
    d = dt.date
    labs = pd.DataFrame({
        "patient_id": ["a", "a", "a", "a", "b"],
        "collect_date": [d(2020, 1, 1), d(2020, 1, 20), d(2020, 2, 1), d(2020, 2, 2), d(2020, 1, 1)],
        "test": ["ALT", "ALT", "ALT", "ALT", "ALT"], "value": [50.0, 70.0, 65.0, 99.0, 80.0],
        "unit": "U/L", "ref_low": NA, "ref_high": 40.0})
    index = pd.DataFrame({"patient_id": ["a", "b"], "index_date": [d(2020, 2, 1), d(2020, 3, 1)]})
    # a: window 2020-01-02 … 2020-02-01 → 70 (01-20) and 65 (02-01, the latest; 02-02 is after
    # index, 01-01 is 31 days before). b: 01-01 is 60 days before → no baseline.
    base = select_baseline(labs, index, days=30)
    assert base[["patient_id", "value"]].values.tolist() == [["a", 65.0]]


AE_PAIRS = [
    ("peripheral neuropathy", "周围神经病变", "Peripheral sensory neuropathy"),
    ("hypersensitivity", "过敏反应", "Allergic reaction"),
    ("nausea", "恶心", "Nausea"),
    ("vomiting", "呕吐", "Vomiting"),
    ("diarrhea", "腹泻", "Diarrhea"),
    ("fatigue", "乏力", "Fatigue"),
    ("alopecia", "脱发", "Alopecia"),
    ("rash", "皮疹", "Rash maculo-papular"),
    ("neutropenia", "中性粒细胞减少", "Neutrophil count decreased"),
    ("febrile neutropenia", "发热性中性粒细胞减少", "Febrile neutropenia"),
    ("heart failure", "心力衰竭", "Heart failure"),
    ("ejection fraction decreased", "射血分数降低", "Ejection fraction decreased"),
    ("stomatitis", "口腔炎", "Mucositis oral"),
]


@pytest.mark.parametrize("english, chinese, canonical", AE_PAIRS)
def test_map_ae_terms_english_and_chinese(english, chinese, canonical):
    # Case, outer spaces, full-width letters and a trailing full stop do not matter.
    full_width = "".join(chr(ord(c) + 0xFEE0) if "a" <= c <= "z" else c for c in english)
    got = map_ae_terms(pd.Series([english, chinese, f"  {english.upper()} ", full_width, f"{chinese}。"]))
    assert got.tolist() == [canonical] * 5


def test_map_ae_terms_unknown_is_none():
    got = map_ae_terms(pd.Series(["headache of unknown kind", None, "", "中性粒细胞"]))
    assert got.tolist() == [None, None, None, None]
    # Febrile neutropenia is not swallowed by neutropenia.
    assert map_ae_terms(pd.Series(["发热性中性粒细胞减少症"])).tolist() == ["Febrile neutropenia"]
