"""The builder of every source table but prescriptions (which also takes `clean`), by table name,
and the visits: one a patient and day with any record, from the days of all the other tables."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from .columns import arrow_table, chunk_patient_ids, dates, hospital_ids, pick, rng_for
from .diagnosis_tables import build_biomarkers, build_diagnoses, diagnosis_rows
from .drugs import PRODUCTS, ROUTES
from .lab_tables import build_labs, lab_rows
from .outcome_tables import assessment_rows, build_adverse_events, build_tumor_assessments
from .patient_tables import build_deaths, build_patients, build_vitals
from .prescription_tables import prescription_rows
from .schedules import COUNTS
from .sim import Sim


def build_visits(sim: Sim) -> pa.Table:
    rng = rng_for(sim, "visits")
    pat, prod, date, _, _, hosp = prescription_rows(sim)
    iv = np.array([ROUTES.get(p) == "iv" for p in PRODUCTS])[prod] & COUNTS[prod]
    parts = [(pat, date, hosp, iv)]
    dp, dd, _, _, _, dh = diagnosis_rows(sim)
    parts.append((dp, dd, dh, np.zeros(len(dp), dtype=bool)))
    ap, ad, _ = assessment_rows(sim)
    parts.append((ap, ad, sim.hospital[ap], np.zeros(len(ap), dtype=bool)))
    lp, ld, _, _ = lab_rows(sim)
    parts.append((lp, ld, sim.hospital[lp], np.zeros(len(lp), dtype=bool)))
    # follow-up visits every 2-6 months from diagnosis to the end of records
    gap = rng.integers(60, 181, sim.n)
    count = np.clip((sim.record_end - sim.dx) // gap, 0, 80)
    rep = np.repeat(np.arange(sim.n), count)
    k = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count) + 1
    fd = sim.dx[rep] + k * gap[rep] + rng.integers(-10, 11, len(rep))
    ok = fd <= sim.record_end[rep]
    parts.append((rep[ok], fd[ok], sim.hospital[rep[ok]], np.zeros(ok.sum(), dtype=bool)))
    P = np.concatenate([p[0] for p in parts]).astype(np.int64)
    D = np.concatenate([p[1] for p in parts]).astype(np.int64)
    H = np.concatenate([p[2] for p in parts]).astype(np.int64)
    IV = np.concatenate([p[3] for p in parts])
    # one visit per patient and day; inpatient when an infusion was given that day
    key = P * 100_000 + D
    order = np.lexsort((~IV, key))
    key_s = key[order]
    first = np.ones(len(key_s), dtype=bool)
    first[1:] = key_s[1:] != key_s[:-1]
    sel = order[first]
    inpatient = IV[sel] & (rng.random(len(sel)) < 0.7)
    return arrow_table("visits", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[sel])), "visit_date": dates(D[sel]),
        "hospital_id": hospital_ids(sim.plan.seed, H[sel]),
        "visit_type": pick(("outpatient", "inpatient"), inpatient.astype(int))})


BUILDERS = {
    "patients": build_patients, "diagnoses": build_diagnoses, "biomarkers": build_biomarkers,
    "deaths": build_deaths, "tumor_assessments": build_tumor_assessments, "labs": build_labs,
    "adverse_events": build_adverse_events, "visits": build_visits, "vitals": build_vitals,
}
