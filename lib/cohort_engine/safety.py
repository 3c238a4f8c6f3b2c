"""Safety (study rules §6): CTCAE v5.0 lab toxicities and recorded adverse events.

The window runs from the index date to the index line's last administration plus
`window_after_last_admin_days` (both ends included). Lab values are graded with
`ctcae.grade_labs` against each patient's baseline (the latest value in
[index − baseline_days, index], `ctcae.select_baseline`); recorded adverse events are
mapped to CTCAE terms with `ctcae.map_ae_terms`. A recorded term that maps to nothing is
kept as UNMAPPED_TERM, so it is counted and reported, never silently dropped.

The result per patient is the worst grade per term and source, with the earliest date
at that grade (gold/safety_events). The incidence table counts patients: any grade and
grade ≥ 3, with percentages of the whole cohort. A source table absent from the
extract is "not available", never zero.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .ctcae import TERMS, grade_labs, map_ae_terms, select_baseline
from .lake_tables import GOLD_SAFETY_EVENTS
from .publish import Gate
from .study_config import StudyConfig

SAFETY_EVENT_COLUMNS = list(GOLD_SAFETY_EVENTS.column_names)
INCIDENCE_COLUMNS = ["term", "source", "any_grade_n", "any_grade_percent", "grade3plus_n", "grade3plus_percent",
                     "tested_n", "cohort_n", "note"]
UNMAPPED_TERM = "unmapped term"
LAB, RECORD = "lab", "record"
SEVERE_GRADE = 3
NOT_AVAILABLE = {LAB: ("laboratory toxicities", "not available: the extract has no labs table"),
                 RECORD: ("recorded adverse events", "not available: the extract has no adverse_events table")}


@dataclasses.dataclass(frozen=True)
class SafetyResult:
    """Exact results: `events` stays in the lake, `incidence` goes out through disclosure control.

    events: gold/safety_events (patient_id str, term str, grade Int64 — null for a recorded
    event without a grade —, source 'lab'|'record', onset_date date).
    incidence: INCIDENCE_COLUMNS (counts as float with NaN where not applicable or not available).
    counts: exact tallies for the methods notes (see `analyse_safety`).
    """
    events: pd.DataFrame
    incidence: pd.DataFrame
    denominator: int
    labs_available: bool
    adverse_events_available: bool
    counts: dict[str, int]


def _dates(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values), errors="coerce")


def safety_windows(cohort: pd.DataFrame, study: StudyConfig) -> pd.DataFrame:
    """patient_id, index_date, window_start, window_end (Timestamps) per cohort patient.

    window_end = the index line's last administration (gold/cohort's index_last_admin_date)
    + window_after_last_admin_days; NaT without that date (such a patient has no safety
    window and no events).
    """
    out = cohort[["patient_id", "index_date"]].copy()
    after = pd.Timedelta(days=study.safety.window_after_last_admin_days)
    out["window_start"] = _dates(cohort["index_date"]).to_numpy()
    out["window_end"] = (_dates(cohort["index_last_admin_date"]) + after).to_numpy()
    return out.reset_index(drop=True)


def _in_window(rows: pd.DataFrame, windows: pd.DataFrame, date_col: str) -> pd.DataFrame:
    joined = rows.merge(windows[["patient_id", "window_start", "window_end"]], on="patient_id")
    when = _dates(joined[date_col]).to_numpy()
    keep = (when >= joined["window_start"].to_numpy()) & (when <= joined["window_end"].to_numpy())
    return joined[keep].drop(columns=["window_start", "window_end"]).reset_index(drop=True)


def graded_window_labs(labs: pd.DataFrame, windows: pd.DataFrame, baseline_days: int) -> pd.DataFrame:
    """The window's lab rows graded with CTCAE v5.0 against each patient's baseline.

    Columns of `ctcae.grade_labs` (term, grade Int64 with <NA> for an ungradable row …).
    """
    index_dates = windows[["patient_id", "index_date"]]
    baseline = select_baseline(labs, index_dates, days=baseline_days)
    return grade_labs(_in_window(labs, windows, "collect_date"), baseline)


def lab_events(graded: pd.DataFrame) -> pd.DataFrame:
    """Lab toxicities (grade ≥ 1): patient_id, term, grade, source, onset_date (one row per lab value)."""
    hit = graded[graded["grade"].notna() & (graded["grade"].fillna(0) >= 1)]
    return pd.DataFrame({"patient_id": hit["patient_id"].to_numpy(), "term": hit["term"].to_numpy(),
                         "grade": pd.array(hit["grade"].to_numpy(), dtype="Int64"), "source": LAB,
                         "onset_date": hit["collect_date"].to_numpy()})


def recorded_events(adverse_events: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Recorded adverse events in the window, mapped to CTCAE terms (UNMAPPED_TERM where none fits).

    Columns: patient_id, term, grade (Int64, <NA> where not recorded), source, onset_date,
    recorded_term (the text as recorded, for counting the unmapped ones).
    """
    rows = _in_window(adverse_events, windows, "onset_date")
    mapped = map_ae_terms(rows["term"]) if len(rows) else pd.Series(dtype=object)
    grade = pd.to_numeric(rows["grade"], errors="coerce") if len(rows) else pd.Series(dtype=float)
    return pd.DataFrame({"patient_id": rows["patient_id"].to_numpy(),
                         "term": mapped.fillna(UNMAPPED_TERM).to_numpy(dtype=object),
                         "grade": pd.array(grade.round().to_numpy(), dtype="Int64"), "source": RECORD,
                         "onset_date": rows["onset_date"].to_numpy(),
                         "recorded_term": rows["term"].to_numpy(dtype=object)})


def worst_grades(events: pd.DataFrame) -> pd.DataFrame:
    """Per patient, term and source: the worst grade and the earliest date at that grade.

    A recorded event without a grade ranks below any graded one; when all of a patient's
    records of a term lack a grade, the grade is <NA> and the onset the earliest record.
    """
    if events.empty:
        return pd.DataFrame({c: pd.Series(dtype="Int64" if c == "grade" else object) for c in SAFETY_EVENT_COLUMNS})
    ranked = events.assign(_rank=events["grade"].astype("Float64").fillna(-1.0).astype(float),
                           _when=_dates(events["onset_date"]).to_numpy())
    ranked = ranked.sort_values(["patient_id", "term", "source", "_rank", "_when"],
                                ascending=[True, True, True, False, True], kind="stable")
    worst = ranked.drop_duplicates(["patient_id", "term", "source"], keep="first")
    out = worst[SAFETY_EVENT_COLUMNS].reset_index(drop=True)
    out["grade"] = pd.array(out["grade"], dtype="Int64")
    out["onset_date"] = [None if pd.isna(d) else pd.Timestamp(d).date() for d in out["onset_date"]]
    return out


def _percent(n: float, denominator: int) -> float:
    return 100.0 * n / denominator if denominator else np.nan


def _incidence_row(term: str, source: str, patients: pd.DataFrame, denominator: int, tested=np.nan,
                   note: str = "") -> dict:
    any_grade = float(patients["patient_id"].nunique())
    severe = float(patients.loc[patients["grade"].fillna(0) >= SEVERE_GRADE, "patient_id"].nunique())
    return {"term": term, "source": source, "any_grade_n": any_grade,
            "any_grade_percent": _percent(any_grade, denominator), "grade3plus_n": severe,
            "grade3plus_percent": _percent(severe, denominator), "tested_n": tested, "cohort_n": denominator,
            "note": note}


def _not_available(source: str) -> dict:
    term, note = NOT_AVAILABLE[source]
    return {"term": term, "source": source, "any_grade_n": np.nan, "any_grade_percent": np.nan,
            "grade3plus_n": np.nan, "grade3plus_percent": np.nan, "tested_n": np.nan, "cohort_n": np.nan, "note": note}


def incidence_table(events: pd.DataFrame, denominator: int, graded_labs: pd.DataFrame | None,
                    adverse_events_available: bool, lab_terms: tuple[str, ...] = tuple(TERMS.values())
                    ) -> pd.DataFrame:
    """Patients with each term: any grade and grade ≥ 3, counts and percent of the cohort.

    Lab terms: each of `lab_terms` (the study's lab toxicities), with tested_n = patients with at least one gradable
    value of that test in the window (so a zero can be read against the patients tested).
    Recorded terms: those found, most frequent first, then UNMAPPED_TERM. Without the source
    table a single "not available" row stands for the source.
    """
    rows = []
    if graded_labs is None:
        rows.append(_not_available(LAB))
    else:
        gradable = graded_labs[graded_labs["grade"].notna()]
        for term in lab_terms:
            tested = float(gradable.loc[gradable["term"] == term, "patient_id"].nunique())
            found = events[(events["source"] == LAB) & (events["term"] == term)]
            rows.append(_incidence_row(term, LAB, found, denominator, tested))
    if not adverse_events_available:
        rows.append(_not_available(RECORD))
    else:
        recorded = events[events["source"] == RECORD]
        found = []
        for term, patients in recorded.groupby("term"):
            if term != UNMAPPED_TERM:
                found.append(_incidence_row(term, RECORD, patients, denominator))
        rows += sorted(found, key=lambda r: (-r["any_grade_n"], r["term"]))
        unmapped = recorded[recorded["term"] == UNMAPPED_TERM]
        if len(unmapped):
            rows.append(_incidence_row(UNMAPPED_TERM, RECORD, unmapped, denominator,
                                       note="recorded terms that match no CTCAE term of the map"))
        if recorded.empty:  # the table exists and holds nothing in the window: a true zero
            rows.append(_incidence_row(NOT_AVAILABLE[RECORD][0], RECORD, recorded, denominator,
                                       note="none recorded in the safety window"))
    return pd.DataFrame(rows, columns=INCIDENCE_COLUMNS)


def analyse_safety(cohort: pd.DataFrame, labs: pd.DataFrame | None, adverse_events: pd.DataFrame | None,
                   study: StudyConfig) -> SafetyResult:
    """Worst grades per patient and the incidence table of §6.

    counts (exact, for the methods notes): lab_rows_in_window, lab_rows_ungradable,
    ae_rows_in_window, ae_rows_unmapped, ae_rows_without_grade, patients_without_window, and
    with `safety.recorded_terms`, ae_rows_other_terms (rows of other CTCAE terms, not read;
    ae_rows_in_window counts the rest). `safety.lab_toxicities` limits the lab rows read
    to those of its tests.
    """
    lab_terms = study.safety.lab_toxicities or tuple(TERMS.values())
    windows = safety_windows(cohort, study)
    counts = {"patients_without_window": int(windows["window_end"].isna().sum())}
    parts = []
    graded = None
    if labs is not None:
        graded = graded_window_labs(labs, windows, study.safety.baseline_days)
        graded = graded[graded["term"].isin(lab_terms)]  # the tests of other toxicities are not read
        parts.append(lab_events(graded))
        counts.update(lab_rows_in_window=len(graded), lab_rows_ungradable=int(graded["grade"].isna().sum()))
    if adverse_events is not None:
        recorded = recorded_events(adverse_events, windows)
        if study.safety.recorded_terms:  # the study's terms; unmapped ones are always reported
            other = ~recorded["term"].isin((*study.safety.recorded_terms, UNMAPPED_TERM))
            counts["ae_rows_other_terms"] = int(other.sum())
            recorded = recorded[~other]
        parts.append(recorded.drop(columns="recorded_term"))
        counts.update(ae_rows_in_window=len(recorded),
                      ae_rows_unmapped=int((recorded["term"] == UNMAPPED_TERM).sum()),
                      ae_rows_without_grade=int(recorded["grade"].isna().sum()))
    parts = [p for p in parts if len(p)]
    events = worst_grades(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SAFETY_EVENT_COLUMNS))
    denominator = len(cohort)
    incidence = incidence_table(events, denominator, graded, adverse_events is not None, lab_terms)
    return SafetyResult(events, incidence, denominator, labs is not None, adverse_events is not None, counts)


# Percentages are withheld with their counts. Each count is a part of another, and a difference
# of 1–4 would name those few: any grade minus grade ≥ 3 (the grade 1–2 patients), patients
# tested minus any grade (tested, no toxicity), the cohort minus patients tested (never tested).
SAFETY_GATE = Gate("safety", count_columns=("any_grade_n", "grade3plus_n", "tested_n", "cohort_n"),
                   dependents={"any_grade_n": ("any_grade_percent",), "grade3plus_n": ("grade3plus_percent",)},
                   complements={"grade3plus_n": "any_grade_n", "any_grade_n": "tested_n", "tested_n": "cohort_n"})
