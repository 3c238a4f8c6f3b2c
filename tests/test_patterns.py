"""Patterns of use (§7) on a three-patient cohort worked out by hand."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from cohort_engine.patterns import (NO_LINE, REPORT_ROWS_PER_SECTION, PatternVariables, dose_in_mg, mosteller_bsa,
                                    nearest_body_size, patterns_table, report_rows, schedule_of)
from cohort_engine.regimen_rules import Arm, RegimenRule
from cohort_engine.report_sections import patterns_by_arm_display, rows_left_out

D = dt.date
PL = "paclitaxel liposome"
H, HP = f"{PL}+trastuzumab", f"{PL}+pertuzumab+trastuzumab"

COHORT = pd.DataFrame({
    "patient_id": ["A", "B", "C"],
    "index_date": [D(2020, 1, 1), D(2021, 3, 1), D(2021, 6, 1)],
    "regimen": [H, HP, HP], "anti_her2": ["H", "HP", "HP"],
    "hospital_tier": ["3A", "3B", "3A"], "province": ["北京", "上海", "北京"], "index_year": [2020, 2021, 2021],
    "index_setting": "advanced", "index_line_number": 1,
    "index_last_admin_date": [D(2020, 3, 1), D(2021, 5, 1), D(2021, 6, 1)],  # as LINES has the index lines
})
LINES = pd.DataFrame([
    ("A", "early", 1, D(2018, 1, 1), D(2018, 12, 1), "trastuzumab"),
    ("A", "advanced", 1, D(2020, 1, 1), D(2020, 3, 1), H),
    ("A", "advanced", 2, D(2020, 8, 1), D(2020, 12, 1), "capecitabine+pyrotinib"),
    ("A", "advanced", 3, D(2021, 1, 1), D(2021, 4, 1), "trastuzumab emtansine"),
    ("B", "advanced", 1, D(2021, 3, 1), D(2021, 5, 1), HP),
    ("B", "advanced", 2, D(2021, 9, 1), D(2021, 12, 1), "trastuzumab deruxtecan"),
    ("C", "advanced", 1, D(2021, 6, 1), D(2021, 6, 1), HP),
], columns=["patient_id", "setting", "line_number", "start_date", "last_admin_date", "regimen"])
EXPOSURES = pd.DataFrame([
    # A: every 3 weeks, 175 mg/m2
    ("A", D(2020, 1, 1), PL, 175.0, "mg/m2"), ("A", D(2020, 1, 22), PL, 175.0, "mg/m2"),
    ("A", D(2020, 2, 12), PL, 175.0, "mg/m2"), ("A", D(2020, 1, 1), "trastuzumab", 8.0, "mg/kg"),
    # B: weekly, 120 mg; the administration after the index line does not count
    ("B", D(2021, 3, 1), PL, 120.0, "mg"), ("B", D(2021, 3, 8), PL, 120.0, "mg"),
    ("B", D(2021, 3, 15), PL, 120.0, "mg"), ("B", D(2021, 3, 22), PL, 120.0, "mg"),
    ("B", D(2021, 9, 1), PL, 120.0, "mg"),
    # C: once, 0.3 g
    ("C", D(2021, 6, 1), PL, 0.3, "g"),
], columns=["patient_id", "admin_date", "ingredient", "dose", "dose_unit"])
VITALS = pd.DataFrame([
    ("A", D(2019, 12, 20), 160.0, 64.0),
    ("B", D(2021, 2, 19), 150.0, 54.0),   # 10 days before index: the nearest
    ("B", D(2021, 3, 31), 150.0, 60.0),   # 30 days after
], columns=["patient_id", "measure_date", "height_cm", "weight_kg"])

# The seed study's: its anti-HER2 label, crossed with index year, hospital tier and province.
SEED_VARIABLES = PatternVariables(labels=(("anti_her2", "anti-HER2 label"),),
                                  places=(("index_year", "index year"), ("hospital_tier", "hospital tier"),
                                          ("province", "province")))

BSA_A = math.sqrt(160 * 64 / 3600)  # 1.68655...
BSA_B = math.sqrt(150 * 54 / 3600)  # exactly 1.5


@pytest.fixture(scope="module")
def table():
    t = patterns_table(COHORT, LINES, EXPOSURES, VITALS, ["paclitaxel liposome"], SEED_VARIABLES)
    return {(r.section, r.item): r for r in t.itertuples()}


def test_index_regimens_and_labels(table):
    assert table[("index regimen", HP)].n == 2 and table[("index regimen", HP)].percent == pytest.approx(200 / 3)
    assert table[("index regimen", H)].n == 1
    assert (table[("anti-HER2 label", "HP")].n, table[("anti-HER2 label", "H")].n) == (2, 1)


def test_dose_in_mg_and_per_m2(table):
    # mg per administration: A 175*BSA_A (3x), B 120 (4x), C 300 -> 8 values
    # sorted 120,120,120,120,295.1,295.1,295.1,300: median = (120 + 295.1)/2; q1 = 120; q3 = 295.1
    mg = table[("paclitaxel liposome dose", "mg per administration")]
    assert mg.n == 8
    assert mg.median == pytest.approx((120 + 175 * BSA_A) / 2)
    assert (mg.q1, mg.q3) == (pytest.approx(120), pytest.approx(175 * BSA_A))
    # mg/m2: A 175 (3x), B 120/1.5 = 80 (4x), C unknown (no vitals) -> median 80, q1 80, q3 175
    m2 = table[("paclitaxel liposome dose", "mg/m2 per administration")]
    assert (m2.n, m2.median, m2.q1, m2.q3) == (7, pytest.approx(80), pytest.approx(80), pytest.approx(175))
    assert BSA_B == 1.5
    # Per schedule: A (every 3 weeks) 175 x3; B (weekly) 80 x4; C (single) has no mg/m2.
    by = "paclitaxel liposome dose by schedule"
    q3w, weekly = table[(by, "every 3 weeks: mg/m2 per administration")], table[(by, "weekly: mg/m2 per administration")]
    assert (q3w.n, q3w.median, weekly.n, weekly.median) == (3, pytest.approx(175), 4, pytest.approx(80))
    assert table[(by, "single administration: mg/m2 per administration")].n == 0


def test_schedule_administrations_and_duration(table):
    for item in ("every 3 weeks", "weekly", "single administration"):
        assert table[("paclitaxel liposome schedule", item)].n == 1
    admins = table[("paclitaxel liposome administrations", "number per patient")]
    assert (admins.median, admins.q1, admins.q3) == (3, 2, 3.5)  # of [3, 4, 1]
    # A: 2020-01-01 -> 2020-03-01 = 60 days (leap year); B: 61; C: 0
    duration = table[("index line", "duration in days (start to last administration)")]
    assert (duration.median, duration.q1, duration.q3) == (60, 30, 60.5)


def test_second_lines_and_sequences(table):
    assert table[("second-line regimen", NO_LINE)].n == 1
    assert table[("second-line regimen", "capecitabine+pyrotinib")].n == 1
    seq = "sequence line 1 > line 2 > line 3"
    assert table[(seq, f"{H} > capecitabine+pyrotinib > trastuzumab emtansine")].n == 1
    assert table[(seq, f"{HP} > trastuzumab deruxtecan > {NO_LINE}")].n == 1
    assert table[(seq, f"{HP} > {NO_LINE} > {NO_LINE}")].n == 1


def test_trends(table):
    assert (table[("index year", "2021")].n, table[("index year", "2020")].n) == (2, 1)
    assert table[("hospital tier", "3A")].n == 2
    assert table[("province by anti-HER2 label", "北京 | HP")].n == 1


@pytest.mark.parametrize("days, expected", [
    (None, "single administration"), (7, "weekly"), (10, "weekly"), (11, "every 2 weeks"),
    (16, "every 2 weeks"), (17, "every 3 weeks"), (25, "every 3 weeks"), (26, "longer than every 3 weeks"),
    (10.5, "every 2 weeks"),
])
def test_schedule_boundaries(days, expected):
    assert schedule_of(days) == expected


def test_dose_units():
    assert dose_in_mg(1.5, "g", None, None) == 1500
    assert dose_in_mg(500, "ug", None, None) == 0.5
    assert dose_in_mg(6, "mg/kg", None, 60) == 360
    assert dose_in_mg(6, "mg/kg", None, None) is None
    assert dose_in_mg(175, "mg/m2", None, None) is None
    assert mosteller_bsa(180, 80) == pytest.approx(2.0)  # sqrt(14400/3600)


def test_height_and_weight_are_each_taken_nearest_the_index_date():
    # A: height once (index − 100), weights on index − 2 (64) and index + 5 (70) → 160 cm, 64 kg,
    #    BSA sqrt(160 × 64 / 3600) = sqrt(2.8444…). B: weight only → no BSA, weight 50.
    # C: heights 150 (index − 3) and 155 (index + 3), equally near → the earlier; weight 60 on
    #    the index date → BSA sqrt(150 × 60 / 3600) = sqrt(2.5).
    index = D(2021, 3, 1)
    day = lambda n: index + dt.timedelta(days=n)  # noqa: E731
    vitals = pd.DataFrame([("A", day(-100), 160.0, None), ("A", day(-2), None, 64.0), ("A", day(5), None, 70.0),
                           ("B", day(0), None, 50.0),
                           ("C", day(-3), 150.0, None), ("C", day(3), 155.0, None), ("C", day(0), None, 60.0)],
                          columns=["patient_id", "measure_date", "height_cm", "weight_kg"])
    got = nearest_body_size(vitals, pd.DataFrame({"patient_id": list("ABC"), "index_date": [index] * 3}))
    got = got.set_index("patient_id")
    assert got.loc["A", ["height_cm", "weight_kg"]].tolist() == [160.0, 64.0]
    assert got.loc["A", "bsa_m2"] == pytest.approx((160 * 64 / 3600) ** 0.5)
    assert np.isnan(got.loc["B", "height_cm"]) and got.loc["B", "weight_kg"] == 50.0 and np.isnan(got.loc["B", "bsa_m2"])
    assert got.loc["C", ["height_cm", "weight_kg"]].tolist() == [150.0, 60.0]
    assert got.loc["C", "bsa_m2"] == pytest.approx(2.5 ** 0.5)


def test_the_variables_described_are_the_study_s(seed_study):
    # The seed study's file names anti_her2 (label "anti-HER2 label") and, in this order,
    # hospital_tier, province, index_year: places are taken in the order year, tier, province.
    assert PatternVariables.of(seed_study) == SEED_VARIABLES
    assert SEED_VARIABLES.cross_sections() == ["index year by anti-HER2 label", "hospital tier by anti-HER2 label",
                                               "province by anti-HER2 label"]


def test_a_study_without_a_regimen_label_has_no_cross_tables():
    t = patterns_table(COHORT, LINES, EXPOSURES, VITALS, [], PatternVariables(places=(("province", "province"),)))
    sections = list(dict.fromkeys(t["section"]))
    assert "anti-HER2 label" not in sections and not any(" by " in s for s in sections)
    assert dict(zip(t[t["section"] == "province"]["item"], t[t["section"] == "province"]["n"])) == {"北京": 2, "上海": 1}


def test_the_next_line_follows_the_index_line_whatever_its_number():
    # p1's index line is advanced line 2 (its next, line 3, is B); p2's is line 2 with no line 3;
    # an early-setting line 3 of p1 is not the next line of its advanced index line.
    from cohort_engine.patterns import NO_LINE, next_line_regimens
    cohort = pd.DataFrame({"patient_id": ["p1", "p2"], "index_setting": "advanced", "index_line_number": [2, 2]})
    lines = pd.DataFrame({"patient_id": ["p1", "p1", "p1", "p2"], "setting": ["advanced", "advanced", "early", "advanced"],
                          "line_number": [2, 3, 3, 2], "regimen": ["A", "B", "C", "A"]})
    section, regimens = next_line_regimens(cohort, lines)
    assert section == "next-line regimen (the line after the index line)"
    assert regimens.tolist() == ["B", NO_LINE]
    first, _ = next_line_regimens(cohort.assign(index_line_number=[1, 1]), lines)
    assert first == "second-line regimen"


def shown_by_arm() -> pd.DataFrame:
    """A published patterns_by_arm table worked by hand: arm h has 35 patients, arm hp 28; each
    arm's rows of a section come largest first, as patterns_by_arm writes them."""
    rows = [("h", "province", "A", 20, 57.1), ("h", "province", "B", 9, 25.7), ("h", "province", "C", 6, 17.1),
            ("hp", "province", "C", 12, 42.9), ("hp", "province", "A", 7, 25.0), ("hp", "province", "D", 5, 17.9),
            ("hp", "province", "B", "<5", "*")]
    frame = pd.DataFrame(rows, columns=["arm", "section", "item", "n", "percent"])
    frame["median"], frame["q1"], frame["q3"] = np.nan, np.nan, np.nan
    frame["across_arms"] = frame["section"] + " | " + frame["item"]
    duration = pd.DataFrame({"arm": ["h", "hp"], "section": "index line", "item": "duration in days",
                             "n": [35, 28], "percent": np.nan, "median": [120.0, 90.0], "q1": [60.0, 45.5],
                             "q3": [200.0, 150.0], "across_arms": None})
    return pd.concat([frame, duration], ignore_index=True)


def test_the_report_prints_each_section_s_largest_rows_and_counts_the_rest():
    # Two rows a section: province A 30 and B 20 are printed; the withheld C ("*") and D ("<5")
    # are left to the CSV, nothing of them added up. Index regimen has only two rows.
    shown = pd.DataFrame({"section": ["province"] * 4 + ["index regimen"] * 2,
                          "item": ["A", "B", "C", "D", "X", "Y"], "n": [30, 20, "*", "<5", 40, 10]})
    rows, left_out = report_rows(shown, keep=2)
    assert rows.values.tolist() == [["province", "A", 30], ["province", "B", 20],
                                    ["index regimen", "X", 40], ["index regimen", "Y", 10]]
    assert left_out == {"province": 2}


def test_by_arm_items_take_their_best_place_in_any_arm():
    # Ranks in h: A 0, B 1, C 2; in hp: C 0, A 1, D 2, B 3. By best rank, ties in the arms'
    # order: A (h's first), C (hp's first), B (h's second), D. Keeping three, D is left out;
    # each item printed comes with both arms' rows, and the one-row section is printed whole.
    rows, left_out = report_rows(shown_by_arm(), keep=3)
    assert rows[["arm", "item"]].values.tolist() == [["h", "A"], ["hp", "A"], ["h", "C"], ["hp", "C"], ["h", "B"],
                                                    ["hp", "B"], ["h", "duration in days"],
                                                    ["hp", "duration in days"]]
    assert left_out == {"province": 1}
    arms = [Arm("h", RegimenRule(all_of=("trastuzumab",))), Arm("hp", RegimenRule(all_of=("pertuzumab",)))]
    # Side by side in that order, each section named once; hp's B is withheld as published.
    assert patterns_by_arm_display(rows, arms).values.tolist() == [
        ["province", "A", "20 (57.1%)", "7 (25.0%)"],
        ["", "C", "6 (17.1%)", "12 (42.9%)"],
        ["", "B", "9 (25.7%)", "<5 (*)"],
        ["index line", "duration in days", "n 35, median 120.0 (IQR 60.0–200.0)",
         "n 28, median 90.0 (IQR 45.5–150.0)"]]
    assert rows_left_out(left_out, "tables/patterns_by_arm.csv") == (
        f"Each section shows its {REPORT_ROWS_PER_SECTION} largest items; tables/patterns_by_arm.csv holds them "
        "all (province: 1 more).")
