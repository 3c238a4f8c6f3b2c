"""Table 1 on a five-patient cohort counted by hand."""
from __future__ import annotations

import pandas as pd
import pytest

from cohort_engine.baseline import age_group, table1

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


def test_table1_counts_and_age():
    t = table1(COHORT).set_index(["characteristic", "level"])
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
