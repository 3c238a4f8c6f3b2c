"""The one way out: a typed gate per output table, applied once for the CSV and the report."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from cohort_engine import (baseline, efficacy, pathways, patterns, report_sections, safety, sensitivity, studies,
                           subgroups)
from cohort_engine.data_quality import DATA_QUALITY_GATE, count_set, with_count_sets
from cohort_engine.errors import DisclosureError
from cohort_engine.publish import Gate, publish, shown


def test_a_misspelt_option_fails_when_the_gate_is_built():
    with pytest.raises(TypeError, match="count_column"):
        Gate("km_summary", count_column=("n",))
    with pytest.raises(ValueError, match="'events', which is not one of its count_columns"):
        Gate("km_summary", count_columns=("n",), dependents={"events": ["median_months"]})
    with pytest.raises(ValueError, match="'n_main', which is not one of its count_columns"):
        Gate("sensitivity", count_columns=("n",), complements={"n_main": "n"})
    with pytest.raises(TypeError, match="count_columns must be a list of column names"):
        Gate("table1", count_columns="n")  # a string would be read as the columns 'n'…
    with pytest.raises(ValueError, match="names a column twice"):
        Gate("table1", count_columns=("n", "n"))
    with pytest.raises(ValueError, match="gate name 'Table 1'"):
        Gate("Table 1", count_columns=("n",))


def test_a_gate_is_frozen_and_its_options_are_tuples():
    gate = Gate("patterns", count_columns=["n"], partition_by=["count_set"], partitions=[["row_set"]],
                dependents={"n": ["percent"]})
    assert (gate.count_columns, gate.partition_by, gate.partitions, gate.dependents) == (
        ("n",), ("count_set",), (("row_set",),), (("n", ("percent",)),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        gate.count_columns = ("events",)
    assert gate.columns() == {"n", "count_set", "row_set", "percent"}


def test_every_table_the_engine_writes_has_a_gate():
    declared = [subgroups.SUBGROUP_GATE, baseline.TABLE1_GATE, patterns.PATTERNS_GATE, report_sections.UNMATCHED_GATE,
                efficacy.km_gate(["n", "events", "median_months"]),
                sensitivity.sensitivity_gate(pd.DataFrame(columns=["n", "events", "n_main", "events_main"])),
                safety.SAFETY_GATE, studies.ATTRITION_GATE, DATA_QUALITY_GATE, pathways.PATHWAYS_GATE,
                baseline.TABLE1_BY_ARM_GATE, efficacy.km_by_arm_gate(["n", "events", "median_months"]),
                patterns.PATTERNS_BY_ARM_GATE]
    assert sorted(g.name for g in declared) == ["attrition", "data_quality", "km_summary", "km_summary_by_arm",
                                                "line_pathways", "patterns", "patterns_by_arm", "safety",
                                                "sensitivity", "subgroups", "table1", "table1_by_arm",
                                                "unmatched_drug_names"]


def test_a_table_without_a_column_its_gate_names_is_refused(seed_study, tmp_path):
    frame = pd.DataFrame({"characteristic": ["sex"], "level": ["F"], "n": [20]})  # no percent column
    with pytest.raises(DisclosureError, match="tables/table1.csv: its gate names column 'median'"):
        publish(frame, baseline.TABLE1_GATE, seed_study, tmp_path)
    assert not (tmp_path / "table1.csv").exists()


def test_publish_writes_exactly_the_frame_the_report_shows(seed_study, tmp_path):
    # Worked by hand (min_cell 5): sex F 12, M 3 of 15. M's 3 reads "<5"; 15 − 12 would give
    # it back, so F's 12 is withheld ("*"), and both percentages with their counts. Age, one
    # row of 15, stands.
    frame = pd.DataFrame({"characteristic": ["sex", "sex", "age"], "level": ["F", "M", "all"],
                          "n": [12, 3, 15], "percent": [80.0, 20.0, 100.0],
                          "median": [None, None, 56.0], "q1": [None, None, 48.0], "q3": [None, None, 63.0]})
    safe, path = publish(frame, baseline.TABLE1_GATE, seed_study, tmp_path)
    assert path == tmp_path / "table1.csv"
    assert safe["n"].tolist() == ["*", "<5", 15]
    assert safe["percent"].tolist() == ["*", "*", 100.0]
    written = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert written.values.tolist() == safe.fillna("").astype(str).values.tolist()
    assert written["n"].tolist() == ["*", "<5", "15"]


def test_data_quality_counts_are_suppressed_within_their_sets(seed_study):
    # Rows read from prescriptions: 1,000 = 990 kept + 3 quarantined + 7 duplicates. The 3
    # reads "<5" and, one small cell in the set, the next smallest (7) goes too; the
    # quarantine reasons are a set of their own (3 alone: "<5").
    rows = pd.DataFrame({"stage": ["ingest"] * 5, "table": ["prescriptions"] * 5,
                         "check": ["rows_read", "rows_kept", "rows_quarantined", "duplicates_removed", "quarantined"],
                         "reason": [""] * 4 + ["unparseable admin_date"], "n": [1000, 990, 3, 7, 3]})
    frame = with_count_sets(rows)
    assert frame["count_set"].tolist() == ["ingest/prescriptions/rows_read"] + ["ingest/prescriptions/balance"] * 3 \
        + ["ingest/prescriptions/reasons"]
    assert count_set("lines", "prescriptions", "rows_matched") == "lines/prescriptions/balance"
    assert shown(frame, DATA_QUALITY_GATE, seed_study)["n"].tolist() == [1000, 990, "<5", "*", "<5"]


def test_withheld_rows_go_last_in_their_set_so_their_place_tells_nothing(seed_study):
    # Largest first, as patterns writes them: A 30, B 12, D 4, C 2, E 1 (total 49). The three
    # small ones read "<5" and, together 7, are not pinned; in count order they would be 4, 2, 1
    # by their places alone. Withheld rows go after the shown ones, by item: C, D, E. The next
    # set keeps its own order.
    gate = Gate("ordered", count_columns=("n",), partition_by=("section",), withheld_last=("item",))
    frame = pd.DataFrame({"section": ["s"] * 5 + ["t"] * 2, "item": ["A", "B", "D", "C", "E", "Y", "X"],
                          "n": [30, 12, 4, 2, 1, 9, 8]})
    out = shown(frame, gate, seed_study)
    assert out[["section", "item", "n"]].values.tolist() == [
        ["s", "A", 30], ["s", "B", 12], ["s", "C", "<5"], ["s", "D", "<5"], ["s", "E", "<5"],
        ["t", "Y", 9], ["t", "X", 8]]
    with pytest.raises(ValueError, match="withheld_last orders rows within the sets of partition_by"):
        Gate("unordered", count_columns=("n",), withheld_last=("item",))
