"""CTCAE v5.0 grading of laboratory values and mapping of recorded adverse-event terms (§6).

Thresholds: shared/reference/ctcae_v5_lab_grades.md (NCI CTCAE v5.0, as in admiral's
machine-readable table); v6.0 moved several of them, so only v5.0 is implemented.
Grades are computed on pandas columns at once (the safety-window labs of a cohort are
small). Grade 0 means "not a toxicity"; <NA> means the row cannot be graded (an unknown
test or a unit that does not fit the test).

Units: counts in 10^9/L, hemoglobin in g/dL (g/L ÷ 10), bilirubin and creatinine in
µmol/L (mg/dL × 17.1 and × 88.4), enzymes in U/L, LVEF in %. A row's ref_low/ref_high
are taken in the row's own unit and converted with its value. A missing unit is read as
the unit Chinese laboratories report (10^9/L, U/L, µmol/L, %), except hemoglobin, whose
unit is told by its size (above 25 it is g/L: 25 g/dL is not a human value).

Default reference limits where a row has none (DEFAULT_LIMITS), in the units above:
ANC 2.0–7.5, WBC 4.0–10.0, PLT 100–300, HGB 11.5–15.0, ALT 7–40, AST 13–35,
TBIL 0–21, CREA 41–81, LVEF ≥ 50 (the LVEF grades use fixed cut-offs, not the limit).

Baseline (the latest value in [index − 30, index], see `select_baseline`):
- ALT and AST: when the baseline is above its ULN, the grades are multiples of the
  baseline (grade 1 from 1.5 × baseline inclusive, then > 3, > 5, > 20 ×) instead of the
  ULN. The reference table gives the same rule for bilirubin (> 1, 1.5, 3, 10 ×
  baseline); the study rules apply it to ALT and AST only, so bilirubin uses it only
  when "TBIL" is passed in `abnormal_baseline_tests`.
- Creatinine: > 1.5 × baseline is at least grade 2 and > 3 × baseline at least grade 3,
  whatever the ULN (CTCAE v5 literally).
- LVEF: a drop of 10–19 points from baseline is grade 2, of 20 or more grade 3. CTCAE's
  "50–40 %" makes a resting LVEF of exactly 50 grade 2.
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

TERMS = {
    "ANC": "Neutrophil count decreased",
    "WBC": "White blood cell decreased",
    "PLT": "Platelet count decreased",
    "HGB": "Anemia",
    "ALT": "Alanine aminotransferase increased",
    "AST": "Aspartate aminotransferase increased",
    "TBIL": "Blood bilirubin increased",
    "CREA": "Creatinine increased",
    "LVEF": "Ejection fraction decreased",
}

DEFAULT_LIMITS = {  # (LLN, ULN) in the canonical unit of each test
    "ANC": (2.0, 7.5), "WBC": (4.0, 10.0), "PLT": (100.0, 300.0), "HGB": (11.5, 15.0),
    "ALT": (7.0, 40.0), "AST": (13.0, 35.0), "TBIL": (0.0, 21.0), "CREA": (41.0, 81.0),
    "LVEF": (50.0, np.nan),
}

# unit (lower case, no spaces, µ/μ as u) → factor to the canonical unit, per test
UNIT_FACTORS = {
    "ANC": {"10^9/l": 1.0, "x10^9/l": 1.0, "10*9/l": 1.0, "10e9/l": 1.0, "": 1.0},
    "WBC": {"10^9/l": 1.0, "x10^9/l": 1.0, "10*9/l": 1.0, "10e9/l": 1.0, "": 1.0},
    "PLT": {"10^9/l": 1.0, "x10^9/l": 1.0, "10*9/l": 1.0, "10e9/l": 1.0, "": 1.0},
    "HGB": {"g/dl": 1.0, "g/l": 0.1},
    "ALT": {"u/l": 1.0, "iu/l": 1.0, "": 1.0},
    "AST": {"u/l": 1.0, "iu/l": 1.0, "": 1.0},
    "TBIL": {"umol/l": 1.0, "mg/dl": 17.1, "": 1.0},
    "CREA": {"umol/l": 1.0, "mg/dl": 88.4, "": 1.0},
    "LVEF": {"%": 1.0, "": 1.0},
}
HGB_G_PER_L_ABOVE = 25.0
ABNORMAL_BASELINE_TESTS = ("ALT", "AST")
_DECIMALS = 9  # compare after rounding, so 3 × 0.1-style float noise never moves a grade


def _unit_key(unit) -> str:
    if unit is None or (isinstance(unit, float) and np.isnan(unit)):
        return ""
    text = unicodedata.normalize("NFKC", str(unit)).lower().replace(" ", "")
    return text.replace("µ", "u").replace("μ", "u")


def _factors(tests: pd.Series, units: pd.Series, values: pd.Series) -> np.ndarray:
    """Factor from each row's unit to the canonical unit of its test; NaN when they do not fit."""
    keys = units.map(_unit_key)
    factors = np.array([UNIT_FACTORS.get(t, {}).get(k, np.nan) for t, k in zip(tests, keys)], dtype=float)
    hgb_unitless = (tests == "HGB").to_numpy() & (keys == "").to_numpy()
    factors[hgb_unitless] = np.where(values.to_numpy(dtype=float)[hgb_unitless] > HGB_G_PER_L_ABOVE, 0.1, 1.0)
    return factors


def standardise(labs: pd.DataFrame) -> pd.DataFrame:
    """test (upper case), value_std, lln, uln in canonical units, defaults where the row has none."""
    out = labs.copy()
    out["test"] = out["test"].astype(str).str.strip().str.upper()
    unit = out["unit"] if "unit" in out else pd.Series(None, index=out.index, dtype=object)
    factor = _factors(out["test"], unit, out["value"])
    out["value_std"] = out["value"].to_numpy(dtype=float) * factor
    for limit, col, k in (("lln", "ref_low", 0), ("uln", "ref_high", 1)):
        given = (out[col] if col in out else pd.Series(np.nan, index=out.index)).to_numpy(dtype=float) * factor
        default = out["test"].map(lambda t: DEFAULT_LIMITS.get(t, (np.nan, np.nan))[k]).to_numpy(dtype=float)
        out[limit] = np.where(np.isnan(given), default, given)
    return out


def select_baseline(labs: pd.DataFrame, index_dates: pd.DataFrame, days: int = 30) -> pd.DataFrame:
    """Each patient's baseline per test: the latest value with collect_date in [index − days, index].

    labs: patient_id, collect_date, test, value, unit, ref_low, ref_high; index_dates:
    patient_id, index_date. Returns the chosen lab rows (same columns). Several values on
    the latest day: the highest, so a baseline is never made to look better than it was
    for the rising tests (and the choice is deterministic).
    """
    rows = labs.merge(index_dates[["patient_id", "index_date"]], on="patient_id")
    collected = pd.to_datetime(rows["collect_date"])
    index = pd.to_datetime(rows["index_date"])
    rows = rows[(collected <= index) & (collected >= index - pd.Timedelta(days=days))]
    rows = rows.assign(test=rows["test"].astype(str).str.strip().str.upper())
    rows = rows.sort_values(["patient_id", "test", "collect_date", "value"])
    return rows.groupby(["patient_id", "test"], as_index=False).tail(1).drop(columns="index_date") \
        .reset_index(drop=True)


def _round(x) -> np.ndarray:
    return np.round(np.asarray(x, dtype=float), _DECIMALS)


def _low_grades(value, lln, cut2, cut3, cut4=None) -> np.ndarray:
    """Grades of a 'decreased' term: 1 below LLN; 2, 3, 4 below fixed cut-offs."""
    v = _round(value)
    conditions = [v < cut4] if cut4 is not None else []
    conditions += [v < cut3, v < cut2, v < _round(lln)]
    grades = ([4] if cut4 is not None else []) + [3, 2, 1]
    return np.select(conditions, grades, default=0)


def _multiple_grades(value, reference, multiples, first_inclusive: bool = False) -> np.ndarray:
    """Grades 1–4 of a rising term: above reference × multiples[g − 1] (grade 1 may be ≥)."""
    v = _round(value)
    ref = np.asarray(reference, dtype=float)
    first = v >= _round(ref * multiples[0]) if first_inclusive else v > _round(ref * multiples[0])
    conditions = [v > _round(ref * m) for m in multiples[:0:-1]] + [first]
    return np.select(conditions, [4, 3, 2, 1], default=0)


def _liver_grades(g: pd.DataFrame, baseline_rule: bool, abnormal_multiples, first_inclusive: bool,
                  normal_multiples) -> np.ndarray:
    normal = _multiple_grades(g["value_std"], g["uln"], normal_multiples)
    if not baseline_rule:
        return normal
    abnormal = _multiple_grades(g["value_std"], g["baseline_value"], abnormal_multiples, first_inclusive)
    return np.where(g["baseline_abnormal"].to_numpy(dtype=bool), abnormal, normal)


def _creatinine_grades(g: pd.DataFrame) -> np.ndarray:
    by_uln = _multiple_grades(g["value_std"], g["uln"], (1.0, 1.5, 3.0, 6.0))
    v, base = _round(g["value_std"]), g["baseline_value"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        by_base = np.select([v > _round(base * 3.0), v > _round(base * 1.5)], [3, 2], default=0)
    return np.maximum(by_uln, by_base)


def _lvef_grades(g: pd.DataFrame) -> np.ndarray:
    v = _round(g["value_std"])
    absolute = np.select([v < 20, v < 40, v <= 50], [4, 3, 2], default=0)
    drop = _round(g["baseline_value"].to_numpy(dtype=float) - g["value_std"].to_numpy(dtype=float))
    with np.errstate(invalid="ignore"):
        by_drop = np.select([drop >= 20, drop >= 10], [3, 2], default=0)
    return np.maximum(absolute, by_drop)


def _attach_baseline(graded: pd.DataFrame, baseline: pd.DataFrame | None) -> pd.DataFrame:
    if baseline is None or baseline.empty:
        return graded.assign(baseline_value=np.nan, baseline_abnormal=False)
    base = standardise(baseline)
    base = base.assign(baseline_abnormal=base["value_std"] > base["uln"])
    base = base.rename(columns={"value_std": "baseline_value"})[
        ["patient_id", "test", "baseline_value", "baseline_abnormal"]]
    base = base.drop_duplicates(["patient_id", "test"], keep="last")
    out = graded.merge(base, on=["patient_id", "test"], how="left")
    out["baseline_abnormal"] = out["baseline_abnormal"].astype("boolean").fillna(False).astype(bool)
    return out


def grade_labs(labs: pd.DataFrame, baseline: pd.DataFrame | None = None, *,
               abnormal_baseline_tests=ABNORMAL_BASELINE_TESTS) -> pd.DataFrame:
    """CTCAE v5.0 grade of every lab row.

    labs: patient_id, test, value, unit, ref_low, ref_high (collect_date and others kept);
    baseline: one row per patient and test in the same layout (see `select_baseline`), or None.
    Adds value_std, lln, uln (float, canonical units), baseline_value (float),
    baseline_abnormal (bool), term (str; None for an unknown test) and grade (Int64:
    0 = not a toxicity, <NA> = not gradable).
    """
    rules = set(abnormal_baseline_tests)
    graded = _attach_baseline(standardise(labs).reset_index(drop=True), baseline)
    grade = np.full(len(graded), -1)
    for test, rows in graded.groupby("test").groups.items():
        g = graded.loc[rows]
        if test == "ANC":
            values = _low_grades(g["value_std"], g["lln"], 1.5, 1.0, 0.5)
        elif test == "WBC":
            values = _low_grades(g["value_std"], g["lln"], 3.0, 2.0, 1.0)
        elif test == "PLT":
            values = _low_grades(g["value_std"], g["lln"], 75.0, 50.0, 25.0)
        elif test == "HGB":
            values = _low_grades(g["value_std"], g["lln"], 10.0, 8.0)
        elif test in ("ALT", "AST"):
            values = _liver_grades(g, test in rules, (1.5, 3.0, 5.0, 20.0), True, (1.0, 3.0, 5.0, 20.0))
        elif test == "TBIL":
            values = _liver_grades(g, test in rules, (1.0, 1.5, 3.0, 10.0), False, (1.0, 1.5, 3.0, 10.0))
        elif test == "CREA":
            values = _creatinine_grades(g)
        elif test == "LVEF":
            values = _lvef_grades(g)
        else:
            continue
        grade[rows] = values
    gradable = (grade >= 0) & ~np.isnan(graded["value_std"].to_numpy(dtype=float))
    graded["term"] = graded["test"].map(TERMS)
    graded["grade"] = pd.array(np.where(gradable, grade, 0), dtype="Int64")
    graded.loc[~gradable, "grade"] = pd.NA
    return graded


# -- Recorded adverse events ----------------------------------------------------------------

# CTCAE term → the spellings recorded for it (after `_normalise_term`).
AE_TERMS = {
    "Peripheral sensory neuropathy": (
        "peripheral neuropathy", "peripheral sensory neuropathy", "neuropathy peripheral",
        "peripheral neurotoxicity", "周围神经病变", "外周神经病变", "周围神经毒性", "外周神经毒性",
        "周围神经炎"),
    "Allergic reaction": ("hypersensitivity", "hypersensitivity reaction", "allergic reaction", "allergy",
                          "过敏反应", "超敏反应", "过敏"),
    # Antibody infusion reactions and the hand-foot syndrome of oral fluoropyrimidines: the
    # second readers found them as "unmapped term" (CTCAE v5 names both).
    "Infusion related reaction": ("infusion related reaction", "infusion-related reaction", "infusion reaction",
                                  "输液反应", "输注反应", "输液相关反应"),
    "Palmar-plantar erythrodysesthesia syndrome": (
        "palmar-plantar erythrodysesthesia syndrome", "palmar plantar erythrodysesthesia syndrome",
        "hand-foot syndrome", "hand foot syndrome", "手足综合征", "手足综合症"),
    "Nausea": ("nausea", "恶心"),
    "Vomiting": ("vomiting", "emesis", "呕吐"),
    "Diarrhea": ("diarrhea", "diarrhoea", "腹泻"),
    "Fatigue": ("fatigue", "asthenia", "tiredness", "乏力", "疲乏", "疲劳"),
    "Alopecia": ("alopecia", "hair loss", "脱发"),
    "Rash maculo-papular": ("rash", "skin rash", "rash maculo-papular", "皮疹"),
    "Neutrophil count decreased": ("neutropenia", "neutrophil count decreased", "中性粒细胞减少",
                                   "中性粒细胞减少症", "粒细胞减少", "中性粒细胞计数降低"),
    "Febrile neutropenia": ("febrile neutropenia", "发热性中性粒细胞减少", "发热性中性粒细胞减少症",
                            "粒细胞缺乏伴发热", "粒缺伴发热"),
    "Heart failure": ("heart failure", "cardiac failure", "congestive heart failure", "心力衰竭", "心衰",
                      "充血性心力衰竭"),
    "Ejection fraction decreased": ("ejection fraction decreased", "lvef decreased",
                                    "left ventricular ejection fraction decreased", "射血分数降低",
                                    "射血分数下降", "左室射血分数降低", "左室射血分数下降"),
    "Mucositis oral": ("stomatitis", "oral mucositis", "mucositis oral", "口腔炎", "口腔黏膜炎", "口腔粘膜炎"),
    "White blood cell decreased": ("leukopenia", "white blood cell decreased", "白细胞减少", "白细胞减少症"),
    "Platelet count decreased": ("thrombocytopenia", "platelet count decreased", "血小板减少", "血小板减少症"),
    "Anemia": ("anemia", "anaemia", "贫血"),
}
_SPELLING = {spelling: term for term, spellings in AE_TERMS.items() for spelling in spellings}


def _normalise_term(text) -> str:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = re.sub(r"[\s_]+", " ", text).strip(" .;,。；，")
    return text


def map_ae_terms(terms: pd.Series) -> pd.Series:
    """Recorded AE terms (English or Chinese, any case, full-width characters) → CTCAE terms.

    A term that matches no spelling in AE_TERMS gives None, so unmapped terms can be
    counted and reported rather than guessed.
    """
    return terms.map(lambda t: _SPELLING.get(_normalise_term(t))).astype(object)
