"""Sensitivity analyses (study rules §8): the study rebuilt with other choices, and their table.

Two of them need Spark: OS censored at the last contact instead of the cut-off, and the
lines rebuilt with another maximum gap (the whole cohort and its endpoints built again).
`rebuild_endpoints` does that for the patients who can matter only, with what the studies
of a run share built once; the rest is pandas on the collected endpoints.
"""
from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pandas as pd

from . import efficacy, survival
from .publish import Gate
from .study_config import StudyConfig

MAIN = "main analysis"
ASSESSMENTS_ONLY = "rwPFS from assessments only"
SENSITIVITY_RATE_MONTHS = (12, 24)


def sensitivity_frames(main: pd.DataFrame, rebuilt: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The main endpoints and every sensitivity analysis, by label: rwPFS from assessments only
    (a subset of the main rows), then the rebuilt analyses (`rebuilt`, by label)."""
    frames = {MAIN: main, ASSESSMENTS_ONLY: main[(main["endpoint"] == "rwPFS") & (main["source"] == "assessment")]}
    frames.update(rebuilt)
    return frames


def sensitivity_table(frames: dict[str, pd.DataFrame], study: StudyConfig) -> pd.DataFrame:
    """endpoint, analysis, n, events, n_main, events_main, median with CI, 12- and 24-month rates with CI.

    One row for the main analysis of each endpoint, then one per sensitivity analysis that
    has that endpoint. n_main (sensitivity rows only) is the main analysis's n: a difference
    of 1–4 patients between the two would name those few, so such an n is withheld. The rows of
    "rwPFS from assessments only" are a subset of the main rwPFS, so their events_main is the
    main events count: 3 events fewer would name 3 proxy events.
    """
    summaries = {label: efficacy.km_table(frame, study, SENSITIVITY_RATE_MONTHS) for label, frame in frames.items()
                 if len(frame)}
    main = summaries.get(MAIN, pd.DataFrame(columns=["endpoint", "n", "events"])).set_index("endpoint")
    rows = []
    for endpoint in efficacy.endpoint_order(pd.concat([f[["endpoint"]] for f in frames.values()])):
        for label, summary in summaries.items():
            found = summary[summary["endpoint"] == endpoint]
            if found.empty:
                continue
            row = found.iloc[0].to_dict()
            known = label != MAIN and endpoint in main.index
            row.update(analysis=label, n_main=float(main.loc[endpoint, "n"]) if known else np.nan,
                       events_main=float(main.loc[endpoint, "events"]) if known and label == ASSESSMENTS_ONLY
                       else np.nan)
            rows.append(row)
    stats = [c for c in survival.km_summary_columns(SENSITIVITY_RATE_MONTHS) if c.startswith(("median", "rate_"))]
    columns = ["endpoint", "analysis", "n", "events", "n_main", "events_main", *stats, "ci_method"]
    return pd.DataFrame(rows, columns=columns)


def sensitivity_gate(table: pd.DataFrame) -> Gate:
    """The statistics are withheld with an events count of 1–4 (the steps of the curve would give
    it away; n < 5 implies it), not with an n withheld only because it differs from the main n by
    1–4: a cohort rebuilt with another gap usually differs by a few patients, and its median and
    rates are the point of the analysis."""
    stats = [c for c in table.columns if c.startswith(("median", "rate_"))]
    return Gate("sensitivity", count_columns=("n", "events", "n_main", "events_main"),
                complements={"n": "n_main", "events": ("events_main", "n")}, dependents={"n": (), "events": stats})


# -- The rebuilds (Spark) -------------------------------------------------------------------------

def sensitivity_studies(study: StudyConfig) -> dict[str, StudyConfig]:
    """The §8 sensitivity analyses that need a Spark rebuild, by display label."""
    studies = {}
    if "OS" in study.endpoints.include:
        studies["OS censored at last contact"] = dataclasses.replace(
            study, endpoints=dataclasses.replace(study.endpoints, os_censoring="last_contact", include=("OS",)))
    for gap in study.analysis.sensitivity_gap_days:
        if gap != study.lines.max_gap_days:
            studies[f"lines rebuilt with a {gap}-day gap"] = dataclasses.replace(
                study, lines=dataclasses.replace(study.lines, max_gap_days=gap))
    return studies


def patients_who_can_matter(exposures, study: StudyConfig):
    """Patients with an exposure the index line requires: the only ones a rebuild can move.

    Sensitivity analyses rebuild lines, cohort and endpoints for these patients only,
    so their cost follows the study's drug, not the size of the prescription table.
    """
    from pyspark.sql import functions as F
    rule = study.index.regimen
    # all_of: one of its drugs is enough to narrow; else any_of: every one of them.
    names = rule.all_of[:1] or rule.any_of
    wanted = F.col("ingredient").isin(*names) | F.col("drug_class").isin(*names)
    return exposures.where(wanted).select("patient_id").distinct()


def of_patients(bronze: dict, ids, names) -> dict:
    """The tables `names` of `bronze` (those it has) narrowed to the patients `ids` (a semi-join)."""
    return {name: bronze[name].join(ids, "patient_id", "left_semi") for name in names if name in bronze}


def _once(shared: dict, key, build):
    if key not in shared:
        shared[key] = build()
    return shared[key]


@dataclasses.dataclass(frozen=True)
class RebuildSources:
    """What a rebuild reads. studies: the studies of the run (their rebuilds share one set of
    patients who can matter); bronze: the source tables; exposures: silver/drug_exposures;
    built: () → (gold/therapy_lines, the study's gold/cohort) as the lake holds them;
    contacts: study → silver/last_contacts at its cut-off, or None."""
    studies: tuple[StudyConfig, ...]
    bronze: dict
    exposures: typing.Any
    built: typing.Callable[[], tuple]
    contacts: typing.Callable[[StudyConfig], typing.Any]


def sensitivity_base(study: StudyConfig, sources: RebuildSources, shared: dict) -> dict:
    """The patients who can matter to any study of the run, with their bronze rows, their
    last contacts and exposures, materialised once (local checkpoints: few patients): every
    rebuild of every study reads them. A patient who can matter to another study only is in
    no rebuilt cohort of this one (it lacks the drug this index line requires), so one set
    serves all."""
    def build() -> dict:
        first, *others = sources.studies
        ids = patients_who_can_matter(sources.exposures, first)
        for other in others:
            ids = ids.union(patients_who_can_matter(sources.exposures, other))
        ids = ids.distinct().localCheckpoint()
        bronze = sources.bronze
        few = {name: frame.localCheckpoint() for name, frame in
               of_patients(bronze, ids, ("patients", "diagnoses", "biomarkers", "tumor_assessments")).items()}
        few.update(deaths=bronze["deaths"], hospitals=bronze["hospitals"])  # keyed by id_hash, hospital_id
        contacts = sources.contacts(study)
        if contacts is not None:
            contacts = contacts.join(ids, "patient_id", "left_semi").localCheckpoint()
        return {"bronze": few, "contacts": contacts,
                "exposures": sources.exposures.join(ids, "patient_id", "left_semi").localCheckpoint()}
    return _once(shared, "base", build)


def rebuild_endpoints(study: StudyConfig, variant: StudyConfig, sources: RebuildSources, shared: dict):
    """(cohort, endpoints) of a variant of the study: for a variant of the lines, on the
    patients who can matter and with the cohort's index lines only (the endpoints read no more).

    shared: the rebuilt intermediates by what they depend on (the lines by the variant's
    `lines`, the facts by the cancer, `facts` and cut-off), so that the studies of a run and
    the two gap variants of one study build each once.
    """
    from pyspark.sql import functions as F

    from .cohort import cohort_index_lines
    from .endpoints import ENDPOINT_TABLES, build_endpoints
    from .facts import advanced_dates, build_patient_facts
    from .lines import build_therapy_lines
    bronze = sources.bronze
    if variant.lines == study.lines:
        lines, cohort = sources.built()
        # The same lines give the same cohort: its endpoints read the cohort's patients only,
        # not every patient's lines, assessments and contacts.
        ids = F.broadcast(cohort.select("patient_id"))
        lines = lines.join(ids, "patient_id", "left_semi")
        bronze = {**bronze, **of_patients(bronze, ids, ENDPOINT_TABLES)}
        contacts = sources.contacts(variant)
        if contacts is not None:
            contacts = contacts.join(ids, "patient_id", "left_semi")
    else:
        base = sensitivity_base(study, sources, shared)
        few, mine = base["bronze"], base["exposures"]
        # The lines and facts are read by several later steps: materialised once (local
        # checkpoints) rather than recomputed by every plan that reads them.
        lines = _once(shared, ("lines", variant.diagnosis_icd10, variant.lines), lambda: build_therapy_lines(
            mine, advanced_dates(few["diagnoses"], variant), variant.lines).localCheckpoint())
        facts = _once(shared, ("facts", variant.diagnosis_icd10, variant.facts, variant.data_cutoff),
                      lambda: build_patient_facts(few, variant).localCheckpoint())
        cohort = cohort_index_lines(facts, lines, mine, variant)
        bronze = {**bronze, **few}
        contacts = base["contacts"]  # a variant keeps the cut-off, which the studies of a run share
    endpoints, _ = build_endpoints(cohort, lines, bronze, variant, contacts)
    return cohort, endpoints
