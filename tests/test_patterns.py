"""Patterns of use (§7) on a three-patient cohort worked out by hand."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from cohort_engine.pathways import NO_LINE
from cohort_engine.patterns import (PATHWAY_SECTION, REPORT_ROWS_PER_SECTION, PatternVariables, dispensing_schedule_of,
                                    dose_in_mg, mosteller_bsa, nearest_body_size, patterns_table, report_rows,
                                    schedule_of)
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
    ("A", D(2020, 1, 1), PL, 175.0, "mg/m2", "iv"), ("A", D(2020, 1, 22), PL, 175.0, "mg/m2", "iv"),
    ("A", D(2020, 2, 12), PL, 175.0, "mg/m2", None), ("A", D(2020, 1, 1), "trastuzumab", 8.0, "mg/kg", "iv"),
    # B: weekly, 120 mg; the administration after the index line does not count
    ("B", D(2021, 3, 1), PL, 120.0, "mg", "iv"), ("B", D(2021, 3, 8), PL, 120.0, "mg", "iv"),
    ("B", D(2021, 3, 15), PL, 120.0, "mg", "iv"), ("B", D(2021, 3, 22), PL, 120.0, "mg", "iv"),
    ("B", D(2021, 9, 1), PL, 120.0, "mg", "iv"),
    # C: once, 0.3 g
    ("C", D(2021, 6, 1), PL, 0.3, "g", None),
], columns=["patient_id", "admin_date", "ingredient", "dose", "dose_unit", "route"])
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
    t = patterns_table(COHORT, LINES, EXPOSURES, VITALS, {"paclitaxel liposome": "body_surface_area"}, SEED_VARIABLES)
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


def test_second_lines(table):
    assert table[("second-line regimen", NO_LINE)].n == 1
    assert table[("second-line regimen", "capecitabine+pyrotinib")].n == 1
    # Without pooled pathways (they need the OS endpoint: pathways.pooled_pathways) no pathway rows.
    assert not any(section == PATHWAY_SECTION for section, _ in table)


def test_the_pooled_pathways_are_the_sequences_section():
    # Pathways as pathways.pooled_pathways gives them, each a share of the 3 patients.
    pathways = pd.DataFrame({"pathway": [f"{HP} > trastuzumab deruxtecan > died", "(other pathways)"], "n": [2, 1]})
    t = patterns_table(COHORT, LINES, EXPOSURES, VITALS, {}, PatternVariables(), pathways)
    rows = t[t["section"] == PATHWAY_SECTION]
    assert rows[["item", "n"]].values.tolist() == pathways.values.tolist()
    assert rows["percent"].tolist() == [pytest.approx(200 / 3), pytest.approx(100 / 3)]


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
    t = patterns_table(COHORT, LINES, EXPOSURES, VITALS, {}, PatternVariables(places=(("province", "province"),)))
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


def _rows(t: pd.DataFrame, drug: str) -> dict:
    return {(r.section, r.item): r for r in t.itertuples() if r.section.startswith(drug)}


def test_a_drug_dosed_by_body_weight_reads_in_mg_and_mg_per_kg():
    # Weights nearest the index date: A 64 kg, B 54 kg (10 days before, not 60 kg 30 days
    # after), C none. A: 8 mg/kg, 6 mg/kg, 384 mg = 512, 384, 384 mg = 8, 6, 6 mg/kg, every 3
    # weeks. B: 216, 108, 108 mg = 4, 2, 2 mg/kg, weekly. C: 0.44 g = 440 mg, no mg/kg, once.
    exposures = pd.DataFrame([
        ("A", D(2020, 1, 1), "trastuzumab", 8.0, "mg/kg", "iv"), ("A", D(2020, 1, 22), "trastuzumab", 6.0, "mg/kg", "iv"),
        ("A", D(2020, 2, 12), "trastuzumab", 384.0, "mg", "iv"),
        ("B", D(2021, 3, 1), "trastuzumab", 216.0, "mg", "iv"), ("B", D(2021, 3, 8), "trastuzumab", 108.0, "mg", "iv"),
        ("B", D(2021, 3, 15), "trastuzumab", 108.0, "mg", "iv"),
        ("C", D(2021, 6, 1), "trastuzumab", 0.44, "g", "iv"),
    ], columns=EXPOSURES.columns)
    rows = _rows(patterns_table(COHORT, LINES, exposures, VITALS, {"trastuzumab": "body_weight"}), "trastuzumab")
    got = {key: (r.n, r.median, r.q1, r.q3) if np.isnan(r.percent) else (r.n, r.percent) for key, r in rows.items()}
    assert got == {
        # 108, 108, 216, 384, 384, 440, 512: median 384; q1 at 1.5 = 162, q3 at 4.5 = 412
        ("trastuzumab dose", "mg per administration"): (7, 384.0, 162.0, 412.0),
        # 2, 2, 4, 6, 6, 8: median 5; q1 at 1.25 = 2.5, q3 at 3.75 = 6
        ("trastuzumab dose", "mg/kg per administration"): (6, 5.0, 2.5, 6.0),
        ("trastuzumab schedule", "every 3 weeks"): (1, pytest.approx(100 / 3)),
        ("trastuzumab schedule", "single administration"): (1, pytest.approx(100 / 3)),
        ("trastuzumab schedule", "weekly"): (1, pytest.approx(100 / 3)),
        ("trastuzumab dose by schedule", "every 3 weeks: mg/kg per administration"): (3, 6.0, 6.0, 7.0),
        ("trastuzumab dose by schedule", "single administration: mg/kg per administration"): (0, *[pytest.approx(np.nan, nan_ok=True)] * 3),
        ("trastuzumab dose by schedule", "weekly: mg/kg per administration"): (3, 2.0, 2.0, 3.0),
        ("trastuzumab administrations", "number per patient"): (3, 3.0, 2.0, 3.0),
    }


def test_a_flat_dosed_drug_reads_in_mg_only():
    # A: 840 mg then 420 mg twice, every 3 weeks; B: 420 mg once. No mg/m2 nor mg/kg row.
    exposures = pd.DataFrame([
        ("A", D(2020, 1, 1), "pertuzumab", 840.0, "mg", "iv"), ("A", D(2020, 1, 22), "pertuzumab", 420.0, "mg", "iv"),
        ("A", D(2020, 2, 12), "pertuzumab", 420.0, "mg", "iv"), ("B", D(2021, 3, 1), "pertuzumab", 420.0, "mg", "iv"),
    ], columns=EXPOSURES.columns)
    rows = _rows(patterns_table(COHORT, LINES, exposures, VITALS, {"pertuzumab": "flat"}), "pertuzumab")
    dose = {item: (r.n, r.median, r.q1, r.q3) for (section, item), r in rows.items() if "dose" in section}
    assert dose == {
        "mg per administration": (4, 420.0, 420.0, 525.0),                    # 420, 420, 420, 840
        "every 3 weeks: mg per administration": (3, 420.0, 420.0, 630.0),     # 420, 420, 840
        "single administration: mg per administration": (1, 420.0, 420.0, 420.0),
    }


def test_an_oral_drug_s_schedule_reads_as_dispensings():
    # Rows by mouth are dispensings. A: every 21 days; B: every 28 days (one row without a
    # route: the others say po); C: no route recorded, so its one row reads as an administration.
    exposures = pd.DataFrame([
        ("A", D(2020, 1, 1), "pyrotinib", 400.0, "mg", "po"), ("A", D(2020, 1, 22), "pyrotinib", 400.0, "mg", "po"),
        ("A", D(2020, 2, 12), "pyrotinib", 400.0, "mg", "PO "),
        ("B", D(2021, 3, 1), "pyrotinib", 320.0, "mg", "po"), ("B", D(2021, 3, 29), "pyrotinib", 320.0, "mg", None),
        ("B", D(2021, 4, 26), "pyrotinib", 320.0, "mg", "po"),
        ("C", D(2021, 6, 1), "pyrotinib", 400.0, "mg", None),
    ], columns=EXPOSURES.columns)
    rows = _rows(patterns_table(COHORT, LINES, exposures, VITALS, {"pyrotinib": "flat"}), "pyrotinib")
    assert {item: r.n for (section, item), r in rows.items() if section == "pyrotinib schedule"} == {
        "oral, dispensed every 17–25 days": 1, "oral, dispensed every 26–35 days": 1, "single administration": 1}
    assert {item: (r.n, r.median) for (section, item), r in rows.items() if section == "pyrotinib dose by schedule"} == {
        "oral, dispensed every 17–25 days: mg per administration": (3, 400.0),
        "oral, dispensed every 26–35 days: mg per administration": (3, 320.0),
        "single administration: mg per administration": (1, 400.0)}


@pytest.mark.parametrize("days, expected", [
    (None, "oral, dispensed once"), (7, "oral, dispensed every ≤ 10 days"), (11, "oral, dispensed every 11–16 days"),
    (16, "oral, dispensed every 11–16 days"), (25, "oral, dispensed every 17–25 days"),
    (26, "oral, dispensed every 26–35 days"), (35, "oral, dispensed every 26–35 days"),
    (35.5, "oral, dispensed less often than every 35 days"),
])
def test_dispensing_schedule_boundaries(days, expected):
    assert dispensing_schedule_of(days) == expected


def _gate_world():
    """Four patients of 150 cm and 54 kg (BSA exactly 1.5 m²) on one drug at 120 mg = 80 mg/m²:
    P1 and P2 weekly (6 administrations each), P3 every 3 weeks (6), P4 once."""
    start = D(2021, 1, 4)
    schedules = {"P1": (7, 6), "P2": (7, 6), "P3": (21, 6), "P4": (0, 1)}
    days = {p: [start + dt.timedelta(days=every * k) for k in range(times)] for p, (every, times) in schedules.items()}
    cohort = pd.DataFrame({"patient_id": list(schedules), "index_date": start, "regimen": PL,
                           "index_setting": "advanced", "index_line_number": 1,
                           "index_last_admin_date": [max(d) for d in days.values()]})
    exposures = pd.DataFrame([(p, day, PL, 120.0, "mg", "iv") for p, ds in days.items() for day in ds],
                             columns=EXPOSURES.columns)
    vitals = pd.DataFrame([(p, start, 150.0, 54.0) for p in schedules], columns=VITALS.columns)
    return cohort, LINES.iloc[:0], exposures, vitals


def test_the_dose_by_schedule_rows_are_one_set_under_the_gate(seed_study):
    # Administrations with mg/m2: weekly 12, every 3 weeks 6, single 1; their total 19 is shown
    # in the dose row. Alone, the single administration's "<5" would be 19 − 12 − 6 = 1; as one
    # set the next smallest, every 3 weeks (6), is withheld too: 7 hidden, split 5–6 and 1–2.
    from cohort_engine.patterns import PATTERNS_GATE, patterns_with_sets
    from cohort_engine.publish import shown
    table = patterns_with_sets(*_gate_world(), min_cell=5, drugs={PL: "body_surface_area"})
    cells = shown(table, PATTERNS_GATE, seed_study)
    dose = cells[cells["section"].isin([f"{PL} dose", f"{PL} dose by schedule"])]
    assert dose[["item", "n", "median", "q1", "q3"]].to_numpy().tolist() == [
        ["mg per administration", 19, 120.0, 120.0, 120.0],
        ["mg/m2 per administration", 19, 80.0, 80.0, 80.0],
        ["weekly: mg/m2 per administration", 12, 80.0, 80.0, 80.0],  # withheld rows after the shown ones
        ["every 3 weeks: mg/m2 per administration", "*", "*", "*", "*"],
        ["single administration: mg/m2 per administration", "<5", "*", "*", "*"],
    ]


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
