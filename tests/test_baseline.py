"""Table 1 on a five-patient cohort counted by hand; Table 1 by arm with SMDs worked by hand."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from cohort_engine.baseline import TABLE1_BY_ARM_GATE, age_group, proportion_smd, table1, table1_by_arm
from cohort_engine.baseline_variables import (AgeVariable, BiomarkerVariable, DeNovoVariable, EarlierTreatmentVariable,
                                              HospitalTierVariable, IndexYearVariable, MetastaticSiteVariable,
                                              ProvinceVariable, SexVariable)
from cohort_engine.publish import shown
from cohort_engine.regimen_rules import Arm, RegimenRule

COHORT = pd.DataFrame({
    "patient_id": list("ABCDE"),
    "age_at_index": [42, 50, 64, 65, 71],
    "sex": ["F", "F", "F", "F", "M"],
    "hr_status": ["positive", "negative", "positive", "unknown", "positive"],
    "de_novo": [True, False, True, True, False],
    "visceral": [True, False, False, True, True],
    "brain_mets": [False, False, True, False, False],
    "bone_only": [False, True, False, False, False],
    "prior_anti_her2": [False, True, False, False, True],
    "anti_her2": ["HP", "H", "HP", "HP", "H+TKI"],
    "hospital_tier": ["3A", "3A", "3B", None, "3A"],
    "province": ["北京", "上海", "北京", "广东", "北京"],
    "index_year": [2019, 2020, 2020, 2021, 2021],
})


def test_table1_counts_and_age(seed_study):
    t = table1(COHORT, seed_study.variables).set_index(["characteristic", "level"])
    assert t.loc[("patients", "all"), "n"] == 5
    age = t.loc[("age at index, years", "median (IQR)")]
    assert (age["median"], age["q1"], age["q3"]) == (64, 50, 65)  # of 42, 50, 64, 65, 71
    assert [t.loc[("age group", g), "n"] for g in ("<50", "50-64", ">=65")] == [1, 2, 2]
    assert t.loc[("hormone receptor status", "positive"), "n"] == 3
    assert t.loc[("hormone receptor status", "positive"), "percent"] == pytest.approx(60.0)
    assert (t.loc[("advanced disease", "de novo"), "n"], t.loc[("advanced disease", "recurrent"), "n"]) == (3, 2)
    assert t.loc[("visceral metastasis", "yes"), "n"] == 3
    assert t.loc[("bone-only metastasis", "yes"), "n"] == 1
    assert t.loc[("prior anti-HER2 therapy", "yes"), "n"] == 2
    assert t.loc[("anti-HER2 label", "H+TKI"), "n"] == 1
    assert t.loc[("hospital tier", "unknown"), "n"] == 1
    assert t.loc[("region (province)", "北京"), "n"] == 3
    assert t.loc[("index year", "2021"), "n"] == 2
    assert t.loc[("sex", "M"), "n"] == 1


@pytest.mark.parametrize("age, group", [(18, "<50"), (49.99, "<50"), (50, "50-64"), (64.9, "50-64"), (65, ">=65")])
def test_age_bands(age, group):
    assert age_group(age) == group


def test_the_seed_study_keeps_its_table1_characteristics_in_the_order_of_study_rules_8(seed_study):
    # gold/cohort holds anti_her2 first; Table 1 shows the regimen label after earlier treatment.
    t = table1(COHORT, seed_study.variables)
    assert list(dict.fromkeys(t["characteristic"])) == [
        "patients", "age at index, years", "age group", "sex", "hormone receptor status", "advanced disease",
        "visceral metastasis", "brain metastasis", "bone-only metastasis", "prior anti-HER2 therapy",
        "anti-HER2 label", "hospital tier", "region (province)", "index year"]


def test_table1_words_a_study_s_own_variables_by_their_labels_and_kinds():
    variables = [
        IndexYearVariable("year_started"),
        BiomarkerVariable("er", marker="ER", label="oestrogen receptor status"),
        DeNovoVariable("first_presentation", label="stage at presentation"),
        EarlierTreatmentVariable("prior_chemotherapy", drugs=("chemotherapy",)),
        ProvinceVariable("treating_province", label="province of the treating hospital"),
    ]
    cohort = pd.DataFrame({"year_started": [2020.0, None, 2020.0], "er": ["positive", "negative", None],
                           "first_presentation": [True, False, None], "prior_chemotherapy": [True, False, False],
                           "treating_province": ["北京", "北京", "上海"]})
    t = table1(cohort, variables)
    assert list(zip(t["characteristic"], t["level"], t["n"])) == [
        ("patients", "all", 3),
        ("oestrogen receptor status", "negative", 1), ("oestrogen receptor status", "positive", 1),
        ("oestrogen receptor status", "unknown", 1),
        # de novo or recurrent by the variable's kind, whatever its column is called
        ("stage at presentation", "de novo", 1), ("stage at presentation", "recurrent", 1),
        ("stage at presentation", "unknown", 1),
        ("prior chemotherapy", "no", 2), ("prior chemotherapy", "yes", 1),  # no label: the name's words
        ("province of the treating hospital", "上海", 1), ("province of the treating hospital", "北京", 2),
        ("year started", "2020", 2), ("year started", "unknown", 1),
    ]


# -- Table 1 by arm --------------------------------------------------------------------------------

ARMS = (Arm("reference", RegimenRule(all_of=("drug_a",))), Arm("comparator", RegimenRule(all_of=("drug_b",))))
ARM_VARIABLES = [
    AgeVariable("age_at_index", label="age at index"), SexVariable("sex"),
    DeNovoVariable("de_novo", label="advanced disease"),
    MetastaticSiteVariable("visceral", icd10=("C78",), label="visceral metastasis"),
    MetastaticSiteVariable("brain_mets", icd10=("C79.3",), label="brain metastasis"),
]
# 10 reference patients and 20 comparator patients, every one female and de novo.
TWO_ARMS = pd.DataFrame({
    "arm": ["reference"] * 10 + ["comparator"] * 20,
    "age_at_index": [40] * 5 + [60] * 5 + [50] * 10 + [70] * 10,
    "sex": ["F"] * 30,
    "de_novo": [True] * 30,
    "visceral": [True] * 5 + [False] * 5 + [True] * 15 + [False] * 5,
    "brain_mets": [True] * 2 + [False] * 8 + [True] * 3 + [False] * 17,
})


def test_table1_by_arm_standardised_mean_differences_worked_by_hand():
    t = table1_by_arm(TWO_ARMS, ARM_VARIABLES, ARMS, min_cell=5)
    assert t["arm"].drop_duplicates().tolist() == ["all", "reference", "comparator"]
    assert t[t["arm"] != "comparator"]["smd"].isna().all()  # the reference arm and everyone: no SMD
    comparator = t[t["arm"] == "comparator"]
    got = list(zip(comparator["characteristic"], comparator["level"], comparator["n"], comparator["smd"]))
    # Age: means 60 and 50; sample variances 20·10²/19 (ten 50s and ten 70s about 60) and
    # 10·10²/9 (five 40s and five 60s about 50): (60 − 50) / sqrt((2000/19 + 1000/9) / 2) = 0.9614.
    age = 10 / math.sqrt((2000 / 19 + 1000 / 9) / 2)
    # Age group <50: p1 0/20, p0 5/10: (0 − 0.5) / sqrt((0 + 0.25) / 2) = −0.5 / sqrt(0.125) = −√2;
    # ≥65 the mirror image, +√2; 50-64: 10/20 and 5/10, no difference.
    # Sex and advanced disease: everyone F and de novo in both arms, p1 = p0 = 1: 0/0, defined as 0.
    # Visceral yes: p1 15/20 = 0.75, p0 5/10 = 0.5: 0.25 / sqrt((0.75·0.25 + 0.5·0.5) / 2)
    # = 0.25 / sqrt(7/32) = sqrt(2/7) = 0.5345; no: −sqrt(2/7).
    # Brain metastasis: 3 comparator and 2 reference patients with it (1–4): no SMD on either level.
    expected = [
        ("patients", "all", 20, None), ("age at index, years", "median (IQR)", 20, age),
        ("age group", "<50", 0, -math.sqrt(2)), ("age group", "50-64", 10, 0.0), ("age group", ">=65", 10, math.sqrt(2)),
        ("sex", "F", 20, 0.0), ("advanced disease", "de novo", 20, 0.0),
        ("visceral metastasis", "no", 5, -math.sqrt(2 / 7)), ("visceral metastasis", "yes", 15, math.sqrt(2 / 7)),
        ("brain metastasis", "no", 17, None), ("brain metastasis", "yes", 3, None),
    ]
    assert [row[:3] for row in got] == [row[:3] for row in expected]
    for (*_, smd), (*_, want) in zip(got, expected):
        assert (math.isnan(smd) if want is None else smd == pytest.approx(want, abs=1e-12))
    assert round(age, 4) == 0.9614 and round(math.sqrt(2 / 7), 4) == 0.5345


def test_table1_by_arm_everyone_is_table1():
    t = table1_by_arm(TWO_ARMS, ARM_VARIABLES, ARMS, min_cell=5)
    everyone = t[t["arm"] == "all"].drop(columns=["arm", "smd", "across_arms"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(everyone, table1(TWO_ARMS, ARM_VARIABLES))


def test_the_gate_withholds_the_smd_with_a_small_count(seed_study):
    # min_cell 5: brain metastasis yes is 3 of 20 (comparator) and 2 of 10 (reference): "<5", and
    # no (17, 8) is withheld as "*" since the arm's total would give the small count back; the
    # SMD goes with its n. Visceral metastasis (15 and 5 of 20, 5 and 5 of 10) stands.
    t = table1_by_arm(TWO_ARMS, ARM_VARIABLES, ARMS, min_cell=seed_study.disclosure.min_cell)
    safe = shown(t, TABLE1_BY_ARM_GATE, seed_study).set_index(["arm", "characteristic", "level"])
    brain = safe.xs("brain metastasis", level="characteristic")
    assert brain["n"].tolist() == [25, 5, "*", "<5", "*", "<5"]  # all: 25 no, 5 yes
    assert brain.loc[("comparator", "no"), "smd"] == brain.loc[("comparator", "yes"), "smd"] == "*"
    assert safe.loc[("comparator", "visceral metastasis", "yes"), "smd"] == pytest.approx(math.sqrt(2 / 7))


def test_a_reference_count_withheld_beside_a_small_one_blanks_the_smd(seed_study):
    # Reference (12): tier 3A 2, 3B 5, 3C 5. The 2 is "<5" and, the tier's three counts adding
    # up to 12, the next smallest (3B, the first of the two 5s) is withheld too. Comparator (30):
    # 10, 10, 10. Across the arms each level adds up to all patients' count (12, 15, 15): the
    # comparator's 3A and 3B are withheld too, or 12 − 10 and 15 − 10 would give the reference's
    # back; hidden in pairs (2 and 10 of 12, 5 and 10 of 15) no count is pinned.
    # 3A: a reference count of 2, no SMD; 3B: the reference's count withheld, no SMD; 3C: p1
    # 10/30 = 1/3, p0 5/12: (1/3 − 5/12) / sqrt((1/3·2/3 + 5/12·7/12) / 2) = (−1/12) / sqrt(67/288)
    # = −sqrt(2/67).
    cohort = pd.DataFrame({"arm": ["reference"] * 12 + ["comparator"] * 30,
                           "tier": ["3A"] * 2 + ["3B"] * 5 + ["3C"] * 5 + ["3A"] * 10 + ["3B"] * 10 + ["3C"] * 10})
    t = table1_by_arm(cohort, [HospitalTierVariable("tier")], ARMS, min_cell=5)
    comparator = t[(t["arm"] == "comparator") & (t["characteristic"] == "tier")].set_index("level")["smd"]
    assert comparator.index.tolist() == ["3A", "3B", "3C"]
    assert comparator[["3A", "3B"]].isna().all()
    assert comparator["3C"] == pytest.approx(-math.sqrt(2 / 67), abs=1e-12)
    safe = shown(t, TABLE1_BY_ARM_GATE, seed_study)
    tier = safe[safe["characteristic"] == "tier"]
    assert tier["n"].tolist() == [12, 15, 15, "<5", "*", 5, "*", "*", 10]


def test_the_arms_of_a_level_are_suppressed_together(seed_study):
    # 7 men among all patients, 2 in the reference arm and 5 in the comparator: the 2 is "<5"
    # and the 5 is withheld, or 7 − 5 would give the 2 back; the comparator's women then too
    # (its 20 patients less the men), and the reference's (10 less 2).
    cohort = pd.DataFrame({"arm": ["reference"] * 10 + ["comparator"] * 20,
                           "sex": ["M"] * 2 + ["F"] * 8 + ["M"] * 5 + ["F"] * 15})
    safe = shown(table1_by_arm(cohort, [SexVariable("sex")], ARMS, min_cell=5), TABLE1_BY_ARM_GATE, seed_study)
    sex = safe[safe["characteristic"] == "sex"]
    assert list(zip(sex["arm"], sex["level"], sex["n"])) == [
        ("all", "F", 23), ("all", "M", 7), ("reference", "F", "*"), ("reference", "M", "<5"),
        ("comparator", "F", "*"), ("comparator", "M", "*")]


def test_a_difference_with_no_spread_is_infinite():
    # Every comparator patient has the level and no reference patient has it: (1 − 0) / 0.
    assert proportion_smd(1.0, 0.0) == math.inf and proportion_smd(0.0, 1.0) == -math.inf
    assert proportion_smd(1.0, 1.0) == 0.0
