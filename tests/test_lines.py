"""Lines of therapy (study-rules §3), hand-worked case by case.

Dates are written as day offsets from 2020-01-01 (D(0)); every case states the
expected lines as (setting, line, start, last, regimen, n_admin_days).
Defaults: window 28 days, gap 120 days, grace 30 days, substitution groups
{paclitaxel, paclitaxel liposome, nab-paclitaxel} and {cisplatin, carboplatin},
additions without a new line: endocrine.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pyarrow as pa
import pytest

from cohort_engine.errors import ConfigError, LinesInputError
from cohort_engine.lines import LINE_COLUMNS, build_therapy_lines, check_lines_config, line_walker
from cohort_engine.study_config import LinesConfig

BASE = dt.date(2020, 1, 1)
CLASSES = {  # written out here, independent of the shipped vocabulary
    "paclitaxel": "taxane", "paclitaxel liposome": "taxane", "nab-paclitaxel": "taxane", "docetaxel": "taxane",
    "trastuzumab": "anti_her2_mab", "pertuzumab": "anti_her2_mab", "pyrotinib": "anti_her2_tki",
    "trastuzumab deruxtecan": "anti_her2_adc", "capecitabine": "chemo_other", "cisplatin": "chemo_other",
    "carboplatin": "chemo_other", "nedaplatin": "chemo_other", "epirubicin": "chemo_other",
    "cyclophosphamide": "chemo_other", "letrozole": "endocrine", "palbociclib": "cdk46_inhibitor",
    "dexamethasone": "supportive", "ondansetron": "supportive", "pegfilgrastim": "supportive",
}
PL, T, P = "paclitaxel liposome", "trastuzumab", "pertuzumab"

# Study rules §3's defaults (the seed study's file writes the same).
SPEC_LINES = LinesConfig(substitutions=(("paclitaxel", "paclitaxel liposome", "nab-paclitaxel"),
                                        ("cisplatin", "carboplatin")),
                         additions_without_new_line=("endocrine",))


def D(n: int) -> dt.date:
    return BASE + dt.timedelta(days=n)


def exposures_frame(spark, rows):
    """rows: (patient_id, day offset, ingredient) → silver drug_exposures rows."""
    full = [(f"r{i}", pid, "H1", D(day), ing, ing, CLASSES[ing], "name", CLASSES[ing] != "supportive",
             None, None, None) for i, (pid, day, ing) in enumerate(rows)]
    return spark.createDataFrame(full, "record_id string, patient_id string, hospital_id string, admin_date date, "
                                       "drug_name string, ingredient string, drug_class string, matched_by string, "
                                       "counts_for_lines boolean, dose double, dose_unit string, route string")


def advanced_frame(spark, advanced):
    return spark.createDataFrame([(pid, D(day)) for pid, day in advanced.items()],
                                 "patient_id string, advanced_date date")


def run(spark, rows, advanced=None, cfg=SPEC_LINES, **kwargs):
    lines = build_therapy_lines(exposures_frame(spark, rows), advanced_frame(spark, advanced or {}), cfg, **kwargs)
    return lines, sorted(
        (r["patient_id"], r["setting"], r["line_number"], (r["start_date"] - BASE).days,
         (r["last_admin_date"] - BASE).days, r["regimen"], r["n_admin_days"]) for r in lines.collect())


def lines_of(spark, rows, advanced=None, cfg=SPEC_LINES):
    return run(spark, rows, advanced, cfg)[1]


def test_contract_columns_and_types(spark):
    lines, got = run(spark, [("a", 0, PL), ("a", 0, T)])
    assert tuple(lines.columns[:len(LINE_COLUMNS)]) == LINE_COLUMNS
    assert lines.columns[len(LINE_COLUMNS):] == ["drug_classes"]
    assert [f.dataType.simpleString() for f in lines.schema.fields] == [
        "string", "string", "int", "date", "date", "string", "int", "string"]
    assert got == [("a", "early", 1, 0, 0, "paclitaxel liposome+trastuzumab", 1)]
    assert lines.first()["drug_classes"] == "anti_her2_mab+taxane"


def test_regimen_window_day_28_vs_29(spark):
    rows = [
        # a: day 28 is inside [S, S+28] → pertuzumab joins the regimen; day 49 continues. One line.
        ("a", 0, PL), ("a", 0, T), ("a", 28, P), ("a", 49, PL), ("a", 49, T), ("a", 49, P),
        # b: day 29 is after the window and pertuzumab is new → line 2 starts on day 29, and the
        #    trastuzumab of day 29 belongs to it (a date is judged as a whole).
        #    line 1: days 0, 21 → last 21, n 2; line 2: days 29, 50 → regimen P+T.
        ("b", 0, PL), ("b", 0, T), ("b", 21, PL), ("b", 21, T), ("b", 29, P), ("b", 29, T), ("b", 50, P), ("b", 50, T),
    ]
    assert lines_of(spark, rows) == [
        ("a", "early", 1, 0, 49, "paclitaxel liposome+pertuzumab+trastuzumab", 3),
        ("b", "early", 1, 0, 21, "paclitaxel liposome+trastuzumab", 2),
        ("b", "early", 2, 29, 50, "pertuzumab+trastuzumab", 2),
    ]


def test_gap_120_vs_121_from_the_previous_administration(spark):
    rows = [
        # a: gaps 100 then 120 (not > 120) → one line, days 0, 100, 220.
        ("a", 0, T), ("a", 100, T), ("a", 220, T),
        # b: gaps 100 then 121 → line 1 days 0, 100; line 2 from day 221 (same drug, still a new line).
        ("b", 0, T), ("b", 100, T), ("b", 221, T),
    ]
    assert lines_of(spark, rows) == [
        ("a", "early", 1, 0, 220, "trastuzumab", 3),
        ("b", "early", 1, 0, 100, "trastuzumab", 2),
        ("b", "early", 2, 221, 221, "trastuzumab", 1),
    ]


def test_substitutions(spark):
    rows = [
        # a: paclitaxel → paclitaxel liposome (day 60) → nab-paclitaxel (day 81): one group, one line.
        #    The regimen is what was given in [0, 28]: paclitaxel+trastuzumab.
        ("a", 0, "paclitaxel"), ("a", 0, T), ("a", 21, "paclitaxel"), ("a", 60, PL), ("a", 60, T),
        ("a", 81, "nab-paclitaxel"), ("a", 81, T),
        # b: cisplatin → carboplatin on day 42: same line.
        ("b", 0, "cisplatin"), ("b", 0, "docetaxel"), ("b", 42, "carboplatin"), ("b", 42, "docetaxel"),
        # c: cisplatin → nedaplatin on day 42: not in the group → line 2 (docetaxel+nedaplatin).
        ("c", 0, "cisplatin"), ("c", 0, "docetaxel"), ("c", 42, "nedaplatin"), ("c", 42, "docetaxel"),
    ]
    assert lines_of(spark, rows) == [
        ("a", "early", 1, 0, 81, "paclitaxel+trastuzumab", 4),
        ("b", "early", 1, 0, 42, "cisplatin+docetaxel", 2),
        ("c", "early", 1, 0, 0, "cisplatin+docetaxel", 1),
        ("c", "early", 2, 42, 42, "docetaxel+nedaplatin", 1),
    ]
    # Without substitution groups (a study setting), a's switch on day 60 starts line 2, and
    # nab-paclitaxel on day 81 falls inside line 2's window [60, 88], so it joins that regimen.
    no_subs = dataclasses.replace(SPEC_LINES, substitutions=())
    assert [l for l in lines_of(spark, rows, cfg=no_subs) if l[0] == "a"] == [
        ("a", "early", 1, 0, 21, "paclitaxel+trastuzumab", 2),
        ("a", "early", 2, 60, 81, "nab-paclitaxel+paclitaxel liposome+trastuzumab", 2),
    ]


def test_endocrine_addition_does_not_start_a_line(spark):
    rows = [
        # HP on days 0 and 21; letrozole added on day 90; HP + letrozole on day 105 → one line of 4 days.
        ("a", 0, T), ("a", 0, P), ("a", 21, T), ("a", 21, P), ("a", 90, "letrozole"),
        ("a", 105, T), ("a", 105, P), ("a", 105, "letrozole"),
        # A CDK4/6 inhibitor is not an addition class: palbociclib on day 90 starts line 2.
        ("b", 0, T), ("b", 0, P), ("b", 90, "palbociclib"), ("b", 90, "letrozole"),
    ]
    assert lines_of(spark, rows) == [
        ("a", "early", 1, 0, 105, "pertuzumab+trastuzumab", 4),
        ("b", "early", 1, 0, 0, "pertuzumab+trastuzumab", 1),
        ("b", "early", 2, 90, 90, "letrozole+palbociclib", 1),
    ]
    # With no addition classes, a's letrozole on day 90 starts line 2; day 105 is in its window
    # [90, 118], so line 2's regimen is letrozole+pertuzumab+trastuzumab.
    strict = dataclasses.replace(SPEC_LINES, additions_without_new_line=())
    assert [l for l in lines_of(spark, rows, cfg=strict) if l[0] == "a"] == [
        ("a", "early", 1, 0, 21, "pertuzumab+trastuzumab", 2),
        ("a", "early", 2, 90, 105, "letrozole+pertuzumab+trastuzumab", 2),
    ]


def test_dropped_drug_is_maintenance(spark):
    # PL+T+P every 21 days for 6 cycles (days 0..105), then T+P alone on 126, 147, 168: one line of 9 days.
    rows = [("a", d, ing) for d in range(0, 106, 21) for ing in (PL, T, P)]
    rows += [("a", d, ing) for d in (126, 147, 168) for ing in (T, P)]
    assert lines_of(spark, rows) == [("a", "early", 1, 0, 168, "paclitaxel liposome+pertuzumab+trastuzumab", 9)]


def test_setting_boundary_grace_30_vs_31(spark):
    # Advanced date on day 200 for all; advanced from day 200 − 30 = 170.
    rows = [
        # a: EC on day 100 (early); PL+T on day 170 = A − 30 → advanced line 1; T-DXd on day 300 → advanced line 2.
        ("a", 100, "epirubicin"), ("a", 100, "cyclophosphamide"), ("a", 170, PL), ("a", 170, T),
        ("a", 191, PL), ("a", 191, T), ("a", 300, "trastuzumab deruxtecan"),
        # b: PL+T on day 169 = A − 31 → still early, and new drugs after EC → early line 2;
        #    day 190 is advanced (≥ 170) → advanced line 1 even though it continues the same drugs.
        ("b", 100, "epirubicin"), ("b", 100, "cyclophosphamide"), ("b", 169, PL), ("b", 169, T),
        ("b", 190, PL), ("b", 190, T),
    ]
    assert lines_of(spark, rows, advanced={"a": 200, "b": 200}) == [
        ("a", "advanced", 1, 170, 191, "paclitaxel liposome+trastuzumab", 2),
        ("a", "advanced", 2, 300, 300, "trastuzumab deruxtecan", 1),
        ("a", "early", 1, 100, 100, "cyclophosphamide+epirubicin", 1),
        ("b", "advanced", 1, 190, 190, "paclitaxel liposome+trastuzumab", 1),
        ("b", "early", 1, 100, 100, "cyclophosphamide+epirubicin", 1),
        ("b", "early", 2, 169, 169, "paclitaxel liposome+trastuzumab", 1),
    ]


def test_a_line_never_spans_both_settings(spark):
    # Trastuzumab on days 150 and 175 with advanced date 200 (threshold 170): 25 days apart,
    # same drug, but early line 1 = day 150 and advanced line 1 = day 175.
    rows = [("a", 150, T), ("a", 175, T), ("a", 196, T)]
    assert lines_of(spark, rows, advanced={"a": 200}) == [
        ("a", "advanced", 1, 175, 196, "trastuzumab", 2),
        ("a", "early", 1, 150, 150, "trastuzumab", 1),
    ]


def test_several_drugs_one_day_and_duplicate_rows(spark):
    # Day 0: PL, T twice (two records), P; day 21: PL twice, T, P → one line, 2 distinct days.
    rows = [("a", 0, PL), ("a", 0, T), ("a", 0, T), ("a", 0, P),
            ("a", 21, PL), ("a", 21, PL), ("a", 21, T), ("a", 21, P)]
    assert lines_of(spark, rows) == [("a", "early", 1, 0, 21, "paclitaxel liposome+pertuzumab+trastuzumab", 2)]


def test_supportive_drugs_are_ignored(spark):
    rows = [
        # Dexamethasone and ondansetron with the chemotherapy and alone on day 60 and 300: they are in no
        # regimen, do not extend last_admin_date or n_admin_days, and do not start a line.
        ("a", 0, PL), ("a", 0, T), ("a", 0, "dexamethasone"), ("a", 21, PL), ("a", 21, T), ("a", 21, "ondansetron"),
        ("a", 60, "pegfilgrastim"), ("a", 300, "ondansetron"),
        # b has supportive drugs only → no line at all.
        ("b", 0, "ondansetron"), ("b", 0, "dexamethasone"),
    ]
    assert lines_of(spark, rows, advanced={"b": 0}) == [
        ("a", "early", 1, 0, 21, "paclitaxel liposome+trastuzumab", 2)]


def test_no_advanced_date_all_early_and_numbering_per_setting(spark):
    rows = [
        # a, no advanced date: EC days 0, 21, 42 → line 1; docetaxel+T day 84 (new drugs) → line 2;
        # T alone day 105 (maintenance), T day 300 (gap 195 > 120) → line 3.
        ("a", 0, "epirubicin"), ("a", 0, "cyclophosphamide"), ("a", 21, "epirubicin"), ("a", 21, "cyclophosphamide"),
        ("a", 42, "epirubicin"), ("a", 42, "cyclophosphamide"), ("a", 84, "docetaxel"), ("a", 84, T),
        ("a", 105, T), ("a", 300, T),
        # c, advanced on day 1000: early lines 1, 2 and advanced lines 1, 2 (numbering restarts).
        ("c", 0, "epirubicin"), ("c", 60, "docetaxel"), ("c", 1000, PL), ("c", 1000, T), ("c", 1100, "pyrotinib"),
        ("c", 1100, "capecitabine"),
    ]
    assert lines_of(spark, rows, advanced={"c": 1000, "nobody": 5}) == [
        ("a", "early", 1, 0, 42, "cyclophosphamide+epirubicin", 3),
        ("a", "early", 2, 84, 105, "docetaxel+trastuzumab", 2),
        ("a", "early", 3, 300, 300, "trastuzumab", 1),
        ("c", "advanced", 1, 1000, 1000, "paclitaxel liposome+trastuzumab", 1),
        ("c", "advanced", 2, 1100, 1100, "capecitabine+pyrotinib", 1),
        ("c", "early", 1, 0, 0, "epirubicin", 1),
        ("c", "early", 2, 60, 60, "docetaxel", 1),
    ]


def test_earliest_of_several_advanced_dates_counts(spark):
    # Advanced dates 200 and 150 → 150 counts, threshold 120: day 130 is advanced.
    exposures = exposures_frame(spark, [("a", 0, T), ("a", 130, T)])
    advanced = spark.createDataFrame([("a", D(200)), ("a", D(150))], "patient_id string, advanced_date date")
    got = sorted((r["setting"], r["line_number"], (r["start_date"] - BASE).days)
                 for r in build_therapy_lines(exposures, advanced, SPEC_LINES).collect())
    assert got == [("advanced", 1, 130), ("early", 1, 0)]


def test_parameters_come_from_the_configuration(spark):
    rows = [("a", 0, T), ("a", 50, T), ("a", 50, P), ("a", 100, T)]
    # Defaults: P on day 50 is new after the window → lines [0] and [50, 100].
    assert lines_of(spark, rows) == [
        ("a", "early", 1, 0, 0, "trastuzumab", 1), ("a", "early", 2, 50, 100, "pertuzumab+trastuzumab", 2)]
    # Window 50: P on day 50 is inside [0, 50] → one line; gap 49: day 100 − 50 = 50 > 49 → new line.
    cfg = dataclasses.replace(SPEC_LINES, regimen_window_days=50, max_gap_days=49)
    assert lines_of(spark, rows, cfg=cfg) == [
        ("a", "early", 1, 0, 50, "pertuzumab+trastuzumab", 2), ("a", "early", 2, 100, 100, "trastuzumab", 1)]
    # Grace 0 with advanced date 50: day 50 and later are advanced.
    cfg = dataclasses.replace(SPEC_LINES, advanced_grace_days=0)
    assert lines_of(spark, rows, advanced={"a": 50}, cfg=cfg) == [
        ("a", "advanced", 1, 50, 100, "pertuzumab+trastuzumab", 2), ("a", "early", 1, 0, 0, "trastuzumab", 1)]


def test_configuration_checks():
    with pytest.raises(ConfigError, match="'cisplatin' is in more than one group"):
        check_lines_config(dataclasses.replace(SPEC_LINES, substitutions=(("cisplatin", "carboplatin"),
                                                                             ("cisplatin", "nedaplatin"))))
    with pytest.raises(ConfigError, match="'endocrin' is not a counting drug class"):
        check_lines_config(dataclasses.replace(SPEC_LINES, additions_without_new_line=("endocrin",)))
    with pytest.raises(ConfigError, match="'paclitaxel liposom' is not an ingredient of the vocabulary"):
        check_lines_config(dataclasses.replace(SPEC_LINES, substitutions=(("paclitaxel", "paclitaxel liposom"),)),
                           CLASSES)
    check_lines_config(SPEC_LINES, CLASSES)


# -- the Arrow walk on its own: batches that split a patient, unsorted input --------------------------

WALK_SCHEMA = pa.schema([("patient_id", pa.string()), ("day", pa.int32()), ("ingredient", pa.string()),
                         ("drug_class", pa.string()), ("advanced_day", pa.int32())])


def batch(rows):
    cols = list(zip(*rows))
    return pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, WALK_SCHEMA)],
                                      schema=WALK_SCHEMA)


def test_walk_joins_a_patient_split_across_batches():
    # Patient "a" (advanced day 100, threshold 70) spans three batches; chunk size 2 forces carrying it over.
    # a: early day 0 T; advanced days 80, 101 T → early 1 [0], advanced 1 [80..101] n 2. b: day 5 P → early 1.
    batches = [batch([("a", None, None, None, 100), ("a", 0, T, "anti_her2_mab", None)]),
               batch([("a", 80, T, "anti_her2_mab", None)]),
               batch([("a", 101, T, "anti_her2_mab", None), ("b", 5, P, "anti_her2_mab", None)])]
    out = pa.Table.from_batches(list(line_walker(SPEC_LINES, chunk_rows=2)(iter(batches))))
    assert sorted(zip(*[out.column(c).to_pylist() for c in
                        ("patient_id", "advanced", "line_number", "start_day", "last_day", "regimen",
                         "n_admin_days")])) == [
        ("a", False, 1, 0, 0, "trastuzumab", 1),
        ("a", True, 1, 80, 101, "trastuzumab", 2),
        ("b", False, 1, 5, 5, "pertuzumab", 1),
    ]


def test_walk_rejects_unsorted_input():
    walk = line_walker(SPEC_LINES, chunk_rows=1)
    with pytest.raises(LinesInputError, match="not sorted by day"):
        list(walk(iter([batch([("a", 10, T, "anti_her2_mab", None), ("a", 5, T, "anti_her2_mab", None)])])))
    with pytest.raises(LinesInputError, match="split across the input"):
        list(walk(iter([batch([("a", 1, T, "anti_her2_mab", None), ("b", 5, T, "anti_her2_mab", None)]),
                        batch([("a", 7, T, "anti_her2_mab", None)])])))


# -- agreement with a direct, per-patient transcription of §3 on random journeys ------------------

def reference_lines(rows, advanced, cfg: LinesConfig):
    """§3 written as literally as possible: one patient, one setting, one date at a time."""
    group = {ing: i for i, g in enumerate(cfg.substitutions) for ing in g}
    compat = lambda ing: group.get(ing, ing)  # noqa: E731
    out = []
    by_patient = {}
    for pid, day, ing in rows:
        if CLASSES[ing] != "supportive":
            by_patient.setdefault(pid, []).append((day, ing))
    for pid, exposures in by_patient.items():
        adv = advanced.get(pid)
        for setting in ("early", "advanced"):
            mine = [(d, i) for d, i in exposures
                    if (adv is not None and d >= adv - cfg.advanced_grace_days) == (setting == "advanced")]
            lines = []
            for day in sorted({d for d, _ in mine}):
                ings = {i for d, i in mine if d == day}
                line = lines[-1] if lines else None
                if line is not None and day <= line["start"] + cfg.regimen_window_days:
                    line["regimen"] |= ings
                elif line is not None and day - line["days"][-1] <= cfg.max_gap_days and all(
                        compat(i) in {compat(r) for r in line["regimen"]}
                        or CLASSES[i] in cfg.additions_without_new_line for i in ings):
                    pass
                else:
                    lines.append({"start": day, "regimen": set(ings), "days": []})
                    line = lines[-1]
                line["days"].append(day)
            for n, line in enumerate(lines, 1):
                out.append((pid, setting, n, line["start"], line["days"][-1], "+".join(sorted(line["regimen"])),
                            len(line["days"])))
    return sorted(out)


def random_journeys(n_patients: int, seed: int):
    rng = random.Random(seed)
    drugs = sorted(CLASSES)
    rows, advanced = [], {}
    for p in range(n_patients):
        pid = f"p{p:04d}"
        day = rng.randint(0, 50)
        regimen = rng.sample(drugs, rng.randint(1, 3))
        for _ in range(rng.randint(1, 25)):
            if rng.random() < 0.15:
                regimen = rng.sample(drugs, rng.randint(1, 3))
            for ing in regimen:
                if rng.random() < 0.85:
                    rows.extend([(pid, day, ing)] * rng.choice((1, 1, 1, 2)))
            # steps near every boundary: 28/29 (window), 120/121 (gap)
            day += rng.choice((0, 1, 7, 14, 21, 21, 28, 29, 60, 119, 120, 121, 200))
        if rng.random() < 0.6:
            advanced[pid] = rng.randint(0, day + 60)
    return rows, advanced


@pytest.mark.parametrize("cfg", [SPEC_LINES, dataclasses.replace(SPEC_LINES, regimen_window_days=10,
                                                                     max_gap_days=30, advanced_grace_days=0,
                                                                     additions_without_new_line=())])
def test_agrees_with_a_literal_transcription_of_the_rules(spark, cfg):
    rows, advanced = random_journeys(300, seed=20240611)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    # Small Arrow batches and chunks: patients cross batch boundaries inside the walk.
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "37")
    try:
        lines = build_therapy_lines(exposures_frame(spark, rows), advanced_frame(spark, advanced), cfg, chunk_rows=100)
        got = sorted((r["patient_id"], r["setting"], r["line_number"], (r["start_date"] - BASE).days,
                      (r["last_admin_date"] - BASE).days, r["regimen"], r["n_admin_days"]) for r in lines.collect())
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
    expected = reference_lines(rows, advanced, cfg)
    assert len(expected) > 500
    assert got == expected
