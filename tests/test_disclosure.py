"""Disclosure control (§9): small counts, complementary suppression, identifiers and dates."""
from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from cohort_engine.disclosure import (MASKED, POOLED, audit_output_dir, check_frame, complementary_suppression,
                                      footnote, pool_cross_table_rows, risk_table_display, safe_frame, suppress_counts)
from cohort_engine.errors import DisclosureError
from cohort_engine.publish import Gate, publish


def write_csv(df, path, count_columns=(), **options):
    """The table at `path` through the one way out (`publish`), under a gate made for it
    (the seed study's min_cell of 5 and dates)."""
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    gate = Gate(path.stem, count_columns=tuple(count_columns), **options)
    return publish(df, gate, load_study(default_study_path()), path.parent)[1]


def shown(values, **kwargs):
    return suppress_counts(pd.DataFrame({"n": values}), **kwargs)["n"].tolist()


# -- small counts ---------------------------------------------------------------------------

def test_boundary_four_is_suppressed_five_is_shown():
    assert shown([4, 5]) == ["<5", 5]
    assert shown([1, 2, 3, 4, 5, 6, 100]) == ["<5", "<5", "<5", "<5", 5, 6, 100]
    assert shown([9, 10], min_cell=10) == ["<10", 10]
    assert footnote(5).startswith("<5: a count from 1 to 4.") and footnote(10).startswith("<10: a count from 1 to 9.")


def test_zero_stays_zero_unless_configured():
    assert shown([0, 3]) == [0, "<5"]
    assert shown([0, 3], keep_zero=False) == ["<5", "<5"]


def test_percent_beside_a_suppressed_count_is_withheld():
    df = pd.DataFrame({"term": ["Nausea", "Alopecia"], "n": [3, 40], "percent": [3.0, 40.0],
                       "n_grade3": [0, 7], "n_grade3_percent": [0.0, 7.0]})
    out = suppress_counts(df)
    assert out["n"].tolist() == ["<5", 40] and out["percent"].tolist() == [MASKED, 40.0]
    assert out["n_grade3"].tolist() == [0, 7] and out["n_grade3_percent"].tolist() == [0.0, 7.0]


def test_non_whole_counts_are_refused():
    with pytest.raises(DisclosureError, match="'n'"):
        shown([1.5, 10])


# -- complementary suppression, worked by hand -----------------------------------------------
# A set of categories adds up to a total the reader knows (from a total row, or from any
# count and its percent). The hidden cells add up to total − (shown cells); "<5" means
# 1–4, "*" at least 5. Withhold the next smallest non-zero count until no hidden cell
# is pinned to one value.

def test_one_small_category_takes_the_next_smallest_with_it():
    # HR status, N = 100: positive 60, negative 37, unknown 3. Hiding only 3 leaves
    # 100 − 60 − 37 = 3. Hide 37 too: hidden total 40 = unknown (1–4) + negative (≥ 5), so
    # unknown ∈ [1, 4] and negative ∈ [36, 39]: neither is pinned.
    df = pd.DataFrame({"variable": "hr_status", "level": ["positive", "negative", "unknown"], "n": [60, 37, 3],
                       "percent": [60.0, 37.0, 3.0]})
    out = suppress_counts(df, partition_by=["variable"])
    assert out["n"].tolist() == [60, MASKED, "<5"]
    assert out["percent"].tolist() == [60.0, MASKED, MASKED]


@pytest.mark.parametrize("counts, expected", [
    # 2 + 3 = 100 − 95 = 5: each of two cells in 1–4 adding to 5 could be 1–4: safe.
    ([2, 3, 95], ["<5", "<5", 95]),
    # 1 + 1 = 2: two cells of at least 1 adding to 2 are both 1 → hide 98 too.
    ([1, 1, 98], ["<5", "<5", MASKED]),
    # 1 + 2 = 3: neither cell is pinned (1 + 2 or 2 + 1), but 100 − 97 = 3 patients are in
    # neither of the shown categories: a small count all the same → hide 97 too.
    ([1, 2, 97], ["<5", "<5", MASKED]),
    # 4 + 4 = 8: two cells of at most 4 adding to 8 are both 4 → hide 92 too.
    ([4, 4, 92], ["<5", "<5", MASKED]),
    # 1 with the next smallest 5: 1 + 5 = 6 = (1–4) + (≥ 5) forces 1 and 5 → hide 94 as well;
    # then 100 = (1–4) + (≥ 5) + (≥ 5) pins nobody.
    ([1, 5, 94], ["<5", MASKED, MASKED]),
    # 4 with 5: 9 = (1–4) + (5–8): not pinned.
    ([4, 5, 91], ["<5", MASKED, 91]),
    # A zero stays 0 and is not the complement (it hides nothing): the next non-zero is.
    ([0, 3, 97], [0, "<5", MASKED]),
    # Nothing small: nothing withheld.
    ([10, 20, 70], [10, 20, 70]),
])
def test_complementary_suppression_cases(counts, expected):
    assert shown(counts, partition_by=[]) == expected


def test_partitions_are_handled_separately():
    df = pd.DataFrame({"variable": ["a", "a", "b", "b"], "n": [3, 50, 20, 30]})
    out = suppress_counts(df, partition_by=["variable"])
    assert out["n"].tolist() == ["<5", MASKED, 20, 30]


def test_a_cross_table_is_protected_along_its_rows_and_columns():
    # Year × label, every year with both labels; the year and label margins are public.
    #          H    HP   | year
    #   2020   8    2    | 10
    #   2021   6    9    | 15
    #   2022   7    12   | 19
    # Worked by hand: the section's set (the 6 cells, total 44) takes 2020|HP (2, "<5") and the
    # next smallest, 2021|H (6). Row 2020 (total 10) then pins the 2: 8 goes. Column HP (total
    # 23) holds only the 2: the next smallest there, 9, goes. Row 2021 now hides 6 and 9, column
    # H hides 8 and 6: each set hides two cells or none, so no hidden cell has one value left.
    cells = [("2020", "H", 8), ("2020", "HP", 2), ("2021", "H", 6), ("2021", "HP", 9),
             ("2022", "H", 7), ("2022", "HP", 12)]
    df = pd.DataFrame({"section": "year by label", "item": [f"{y} | {lab}" for y, lab, _ in cells],
                       "n": [n for _, _, n in cells], "row_set": [y for y, _, _ in cells],
                       "column_set": [lab for _, lab, _ in cells]})
    alone = suppress_counts(df, ["n"], partition_by=["section"])
    assert alone["n"].tolist() == [8, "<5", "*", 9, 7, 12]  # 10 − 8 = 2: one set is not enough
    crossed = suppress_counts(df, ["n"], partition_by=["section"], partitions=[["row_set"], ["column_set"]])
    assert crossed["n"].tolist() == ["*", "<5", "*", "*", 7, 12]


def _cells(rows):
    return pd.DataFrame(rows, columns=["row", "column", "n"])


def test_cross_table_rows_with_small_counts_are_pooled():
    # The case per-set suppression cannot protect (margins public: years 10, 6, 7; H 14, HP 9):
    #   2020: H 8, HP 2   2021: H 6   2022: HP 7
    # 2020 holds a 2: pooled; alone its HP is still 2, so the smallest other row joins (2021, 6):
    # H 14, HP 2 — still small; then 2022 (7): H 14, HP 9. Every row pooled: the margins, nothing more.
    cells = _cells([("2020", "H", 8), ("2020", "HP", 2), ("2021", "H", 6), ("2022", "HP", 7)])
    out = pool_cross_table_rows(cells)
    assert out.values.tolist() == [[POOLED, "H", 14], [POOLED, "HP", 9]]


def test_cross_table_pooling_takes_the_smallest_rows_until_no_pooled_count_is_small():
    #   2019: H 20, HP 11   2020: H 8, HP 2   2021: H 6, HP 5   2022: H 30, HP 25
    # 2020 is pooled (2); H 8, HP 2 → add the smallest other row, 2021 (11): H 14, HP 7 → done.
    # 2019 and 2022 stand; no published count is 1–4, and 2020 and 2021 cannot be told apart.
    cells = _cells([("2019", "H", 20), ("2019", "HP", 11), ("2020", "H", 8), ("2020", "HP", 2),
                    ("2021", "H", 6), ("2021", "HP", 5), ("2022", "H", 30), ("2022", "HP", 25)])
    out = pool_cross_table_rows(cells)
    assert sorted(out.values.tolist()) == sorted([["2019", "H", 20], ["2019", "HP", 11], ["2022", "H", 30],
                                                  ["2022", "HP", 25], [POOLED, "H", 14], [POOLED, "HP", 7]])
    # Nothing small, nothing to pool: the table as it was (zeros left out).
    plain = _cells([("2019", "H", 20), ("2019", "HP", 0), ("2022", "HP", 5)])
    assert pool_cross_table_rows(plain).values.tolist() == [["2019", "H", 20], ["2022", "HP", 5]]


def test_complementary_suppression_function_directly():
    hidden = complementary_suppression([60, 37, 3], [False, False, True])
    assert hidden.tolist() == [False, True, False]


def test_complement_of_a_row_total():
    # 97 of 100 patients had an event: the 3 without one are 100 − 97, so 97 is withheld.
    df = pd.DataFrame({"endpoint": ["OS", "TTF"], "n": [100, 100], "events": [97, 40]})
    out = suppress_counts(df, total_column="n")
    assert out["events"].tolist() == [MASKED, 40] and out["n"].tolist() == [100, 100]


def test_statistics_of_a_small_group_are_withheld_with_its_count():
    km = pd.DataFrame({"endpoint": ["OS", "OS"], "level": ["H", "HP"], "n": [4, 60], "events": [2, 30],
                       "median_months": [10.2, 20.5], "rate_12m": [0.5, 0.7]})
    out = suppress_counts(km, dependents={"n": ["median_months", "rate_12m"]})
    assert out.iloc[0].tolist() == ["OS", "H", "<5", "<5", MASKED, MASKED]
    assert out.iloc[1].tolist() == ["OS", "HP", 60, 30, 20.5, 0.7]


def test_numbers_at_risk_for_a_figure():
    risk = pd.DataFrame({"group": "H", "month": [0, 6, 12, 18, 24], "at_risk": [100, 12, 5, 4, 0]})
    assert risk_table_display(risk)["at_risk"].tolist() == ["100", "12", "5", "<5", "0"]


# -- identifiers and dates -----------------------------------------------------------------------

@pytest.mark.parametrize("column", ["patient_id", "id_hash", "record_id", "PatientID", "Patient ID", "birth_date",
                                    "index_date", "death_date", "dob"])
def test_identifier_and_date_columns_are_refused_by_name(column):
    df = pd.DataFrame({column: ["x"], "n": [10]})
    with pytest.raises(DisclosureError, match=re.escape(repr(column))):
        safe_frame(df, ["n"])


def test_date_values_and_identifier_values_are_refused():
    with pytest.raises(DisclosureError, match="'when'"):
        check_frame(pd.DataFrame({"when": pd.to_datetime(["2021-03-04"])}))
    with pytest.raises(DisclosureError, match="'when'"):
        check_frame(pd.DataFrame({"when": [dt.date(2021, 3, 4)]}))
    with pytest.raises(DisclosureError, match="'label'"):
        check_frame(pd.DataFrame({"label": ["progression on 2021-03-04"]}))
    with pytest.raises(DisclosureError, match="'label'"):
        check_frame(pd.DataFrame({"label": ["see P0000123"]}))


@pytest.mark.parametrize("text", ["赫赛汀 2021年3月15日", "停药 2021年03月15号", "given 15.03.2021", "15/3/2021 Herceptin"])
def test_dates_written_other_ways_are_refused(text):
    with pytest.raises(DisclosureError, match="'name'"):
        check_frame(pd.DataFrame({"name": [text]}))


@pytest.mark.parametrize("text", ["Herceptin 440 mg", "5.3.2 version", "2021年", "paclitaxel 175 mg/m2 q3w", "1.5/10.0"])
def test_numbers_that_are_no_dates_pass(text):
    check_frame(pd.DataFrame({"name": [text]}))


def test_study_dates_can_be_allowed():
    df = pd.DataFrame({"criterion": ["index date 2013-01-01 to 2025-06-30"], "n_remaining": [500]})
    with pytest.raises(DisclosureError):
        check_frame(df)
    check_frame(df, allowed_dates=[dt.date(2013, 1, 1), "2025-06-30"])


# -- writing and auditing ------------------------------------------------------------------------

def patient_level(n=60, seed=7):
    """A patient-level frame with identifiers and dates, as inside the secure environment."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:07d}" for i in range(1, n + 1)]
    return pd.DataFrame({
        "patient_id": ids,
        "index_date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        # category sizes 40, 13, 4, 2, 1: three small cells
        "tier": ["3A"] * 40 + ["3B"] * 13 + ["2A"] * 4 + ["2B"] * 2 + ["other"] * 1,
    })


def test_nothing_from_one_to_four_no_identifier_no_date_reaches_the_files(tmp_path):
    people = patient_level()
    # Table 1 style: counts and percents of one variable (adds up to N = 60).
    table = people.groupby("tier").size().rename("n").reset_index().assign(variable="hospital_tier")
    table["percent"] = 100 * table["n"] / len(people)
    write_csv(table, tmp_path / "tables" / "table1.csv", ["n"], partition_by=["variable"])
    risk = pd.DataFrame({"month": [0, 6, 12, 18], "at_risk": [60, 22, 3, 0]})
    write_csv(risk, tmp_path / "tables" / "risk.csv", ["at_risk"])
    # A patient list, by mistake: refused, nothing written.
    with pytest.raises(DisclosureError, match="'patient_id'"):
        write_csv(people, tmp_path / "tables" / "patients.csv")
    with pytest.raises(DisclosureError, match="'index_date'"):
        write_csv(people.drop(columns="patient_id"), tmp_path / "tables" / "dates.csv")
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["risk.csv", "table1.csv"]

    assert audit_output_dir(tmp_path) == []
    written = pd.read_csv(tmp_path / "tables" / "table1.csv", dtype=str, keep_default_na=False)
    # 2A 4, 2B 2, other 1 small; hidden sum 7 = three cells of 1–4: 1+2+4 is not pinned.
    assert dict(zip(written["tier"], written["n"])) == {"2A": "<5", "2B": "<5", "3A": "40", "3B": "13",
                                                       "other": "<5"}
    assert dict(zip(written["tier"], written["percent"]))["2A"] == MASKED
    text = "".join(p.read_text() for p in tmp_path.rglob("*.csv"))
    assert not any(pid in text for pid in people["patient_id"])
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    for p in tmp_path.rglob("*.csv"):
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
        for col in ("n", "at_risk"):
            if col in frame:
                assert not frame[col].isin(["1", "2", "3", "4"]).any()


def test_columns_named_like_counts_are_suppressed_even_if_not_declared(tmp_path):
    df = pd.DataFrame({"group": ["a", "b"], "n_patients": [3, 30]})
    path = write_csv(df, tmp_path / "t.csv")
    assert pd.read_csv(path, dtype=str)["n_patients"].tolist() == ["<5", "30"]


def test_publish_deletes_a_file_that_fails_its_own_audit(tmp_path, monkeypatch):
    # The audit after writing is a second line: with suppression broken, the file is refused.
    from cohort_engine import disclosure
    monkeypatch.setattr(disclosure, "suppress_counts", lambda df, *a, **k: df)
    with pytest.raises(DisclosureError, match="a count below 5"):
        write_csv(pd.DataFrame({"group": ["a"], "n": [3]}), tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()


def test_audit_finds_small_counts_dates_and_identifiers(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    pd.DataFrame({"level": ["a", "b"], "n": [3, 50], "note": ["", "first seen 2021-02-03"]}).to_csv(
        tmp_path / "tables" / "bad.csv", index=False)
    pd.DataFrame({"patient_id": ["x"], "events": [10]}).to_csv(tmp_path / "tables" / "ids.csv", index=False)
    (tmp_path / "report.html").write_text(
        "<html><body><table><tr><th>arm</th><th>n</th></tr><tr><td>H</td><td>2</td></tr>"
        "<tr><td>HP</td><td>&lt;5</td></tr></table><p>patient P0001234 seen</p>"
        '<img src="data:image/png;base64,AAAAP12345678AAAA2021-01-01"></body></html>', encoding="utf-8")
    (tmp_path / "run_manifest.json").write_text(json.dumps(
        {"data_cutoff": "2025-06-30", "row_counts": {"n": 4, "n_cohort": 1200}, "ok": [1, 2, 3]}))
    (tmp_path / "figures" / "km.svg").write_text("<svg><dc:date>2025-07-01T10:00:00</dc:date></svg>")
    (tmp_path / "figures" / "km.png").write_bytes(b"\x89PNG 2021-01-01 P0001234")  # not readable text: skipped

    problems = audit_output_dir(tmp_path, allowed_dates=["2025-06-30"])
    found = sorted((p.path.replace(str(tmp_path) + "/", ""), p.kind, p.location) for p in problems)
    assert found == [
        ("figures/km.svg", "date", "file"),
        ("report.html", "identifier", "page text"),
        ("report.html", "small_count", "table 1 row 1 column n"),
        ("run_manifest.json", "small_count", "$.row_counts.n"),
        ("tables/bad.csv", "date", "csv row 2 column note"),
        ("tables/bad.csv", "small_count", "csv row 1 column n"),
        ("tables/ids.csv", "identifier_column", "csv column patient_id"),
    ]
    # Findings go to logs: they never repeat the value found.
    assert not any("P0001234" in str(p) or "2021-02-03" in str(p) for p in problems)


def test_audit_of_a_report_built_from_safe_frames_is_clean(tmp_path):
    from cohort_engine import report
    people = patient_level()
    table = people.groupby("tier").size().rename("n").reset_index().assign(variable="tier")
    safe = safe_frame(table, ["n"], partition_by=["variable"])
    page = report.render("Study", "Data cut-off 2025-06-30", [report.Section("t", "Table 1", [
        report.Block("table", safe), report.Block("figure", b"\x89PNG P0000001 2020-01-01")])],
        generated=dt.date(2025, 7, 1))
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    assert audit_output_dir(tmp_path, allowed_dates=["2025-06-30"]) == []
    # The same page with the raw counts would not pass.
    raw = report.render("Study", "", [report.Section("t", "Table 1", [report.Block("table", table)])],
                        generated=dt.date(2025, 7, 1))
    (tmp_path / "report.html").write_text(raw, encoding="utf-8")
    assert [p.kind for p in audit_output_dir(tmp_path)] == ["small_count"] * 3


# -- Attrition: exclusions are differences of shown counts ----------------------------------------

def _attrition(rows):
    return pd.DataFrame([(k + 1, f"step {k + 1}", r, e) for k, (r, e) in enumerate(rows)],
                        columns=["step", "criterion", "n_remaining", "n_excluded"])


def _display(frame):
    return list(zip(frame["n_remaining"], frame["n_excluded"]))


def test_attrition_small_exclusion_hides_the_next_remaining_and_a_partner():
    # 200 -> 197 (3 excluded) -> 150 (47 excluded). Showing 197 would give 3 away, so it is
    # withheld; 200 - 150 = 50 = 3 + 47 would then pin 3 if 47 were shown, so 47 goes too:
    # <5 and * add to 50 with * >= 5, leaving 1-4 possible for the small one.
    from cohort_engine.disclosure import suppress_attrition
    shown = suppress_attrition(_attrition([(200, 0), (197, 3), (150, 47), (150, 0)]))
    assert _display(shown) == [(200, 0), ("*", "<5"), (150, "*"), (150, 0)]


def test_attrition_run_with_a_zero_merges_forward():
    # 100 -> 98 (2) -> 98 (0) -> 60 (38): the run 100..98 holds only the 2 and a shown 0,
    # so the next remaining count is withheld as well and the 38 masks the 2.
    from cohort_engine.disclosure import suppress_attrition
    shown = suppress_attrition(_attrition([(100, 0), (98, 2), (98, 0), (60, 38)]))
    assert _display(shown) == [(100, 0), ("*", "<5"), ("*", 0), (60, "*")]


def test_attrition_small_last_step_merges_backward_keeping_the_cohort():
    # 60 -> 40 (20) -> 37 (3): the cohort (37) stays; 40 is withheld and 20 with it.
    from cohort_engine.disclosure import suppress_attrition
    shown = suppress_attrition(_attrition([(60, 0), (40, 20), (37, 3)]))
    assert _display(shown) == [(60, 0), ("*", "*"), (37, "<5")]


def test_attrition_without_small_counts_is_unchanged_and_written_as_is(tmp_path):
    from cohort_engine.disclosure import suppress_attrition
    rows = [(500, 0), (300, 200), (120, 180), (120, 0)]
    assert _display(suppress_attrition(_attrition(rows))) == rows
    shown = suppress_attrition(_attrition([(200, 0), (197, 3), (150, 47)]))
    path = write_csv(shown, tmp_path / "attrition.csv", ["n_remaining", "n_excluded"])
    back = pd.read_csv(path, dtype=str)
    assert list(zip(back["n_remaining"], back["n_excluded"])) == [("200", "0"), ("*", "<5"), ("150", "*")]
