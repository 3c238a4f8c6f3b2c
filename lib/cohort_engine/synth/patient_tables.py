"""The tables of the people and places: hospitals, patients, the death registry (with deaths of
people outside the extract) and vital signs."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from . import params as PR
from .columns import (F64, STR, arrow_table, chunk_patient_ids, dates, hex_hash, hospital_frame, id_hashes, pick,
                      rng_for)
from .draws import mix64
from .plan import day
from .schedules import IS_CHEMO_DAY
from .sim import Sim


def build_hospitals(seed: int) -> pa.Table:
    h, ids = hospital_frame(seed)
    return arrow_table("hospitals", {
        "hospital_id": ids, "tier": pick(PR.TIERS, h.tier),
        "province": pick([p for p, _ in PR.PROVINCES], h.province),
        "hospital_type": pick(("general", "oncology"), h.oncology.astype(int))})


def build_patients(sim: Sim) -> pa.Table:
    return arrow_table("patients", {
        "patient_id": chunk_patient_ids(sim), "sex": pick(("F", "M", "U"), sim.sex), "birth_date": dates(sim.birth),
        "id_hash": id_hashes(sim), "province": pick([p for p, _ in PR.PROVINCES], sim.province)})


NON_CANCER_CAUSES = ("I21.9", "I63.9", "J18.9", "I50.9", "E11.9", "J44.1", "V89.2")


def build_deaths(sim: Sim) -> pa.Table:
    rng = rng_for(sim, "deaths")
    cutoff = sim.plan.cutoff_day
    dead = np.flatnonzero(sim.death <= cutoff)
    primary = np.array([PR.CANCERS[c][5][0] for c in range(len(PR.CANCERS))], dtype=object)
    cause = np.where(sim.cancer_death[dead], primary[sim.cancer[dead]],
                     np.array(NON_CANCER_CAUSES, dtype=object)[rng.integers(0, len(NON_CANCER_CAUSES), len(dead))])
    # registry deaths of people outside the extract
    m = int(round(PR.REGISTRY_EXTRA_DEATHS * sim.n))
    other = np.arange(m) + sim.gid[0] if sim.n else np.arange(0)
    other_hash = hex_hash(mix64(sim.plan.seed, other, 3), mix64(sim.plan.seed, other, 4))
    other_day = day(dt.date(2013, 1, 1)) + rng.integers(0, cutoff - day(dt.date(2013, 1, 1)) + 1, m)
    other_cause = np.array(NON_CANCER_CAUSES + ("C34.9", "C16.9", "C22.0"), dtype=object)[
        rng.integers(0, len(NON_CANCER_CAUSES) + 3, m)]
    return arrow_table("deaths", {
        "id_hash": pa.concat_arrays([id_hashes(sim).take(pa.array(dead)), other_hash]),
        "death_date": pa.concat_arrays([dates(sim.death[dead]), dates(other_day)]),
        "cause_icd10": pa.array(list(cause) + list(other_cause), type=STR)})


def build_vitals(sim: Sim) -> pa.Table:
    rng = rng_for(sim, "vitals")
    n = sim.n
    has = rng.random(n) >= PR.P_NO_VITALS
    chemo = (sim.ad_line >= 0) & IS_CHEMO_DAY[sim.ad_prod] & has[sim.ad_pat]
    key = np.unique(sim.ad_pat[chemo].astype(np.int64) * 100_000 + sim.ad_date[chemo])
    p, d = key // 100_000, key % 100_000
    take = rng.random(len(p)) < PR.P_VITALS_PER_CYCLE
    p, d = p[take], d[take]
    dxp = np.flatnonzero(has)
    P = np.concatenate([dxp, p])
    D = np.concatenate([sim.dx[dxp], d])
    m = len(P)
    height = np.round((sim.height[P] + rng.normal(0, 0.7, m)) * 2) / 2
    weight = np.round(sim.weight[P] + rng.normal(0, 1.2, m), 1)
    no_height = rng.random(m) < 0.15
    height = np.where(no_height, np.nan, height)
    ok = D <= np.minimum(sim.record_end[P], sim.plan.cutoff_day)
    P, D, height, weight = P[ok], D[ok], height[ok], weight[ok]
    order = np.lexsort((D, P))
    return arrow_table("vitals", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "measure_date": dates(D[order]),
        "height_cm": pa.array(height[order], type=F64, from_pandas=True),
        "weight_kg": pa.array(weight[order], type=F64)})
