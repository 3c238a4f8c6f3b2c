"""Diagnoses and biomarkers: the primary diagnosis and its follow-up records, the metastasis
records that date the advanced disease, and the HER2, ER and PR tests as pathology writes them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import params as PR
from .columns import STR, arrow_table, chunk_patient_ids, dates, hospital_ids, rng_for
from .plan import NONE_DAY
from .sim import HER2_PLAN_NAMES, Sim


SITE_ORDER = ("bone", "lung", "liver", "brain")


def diagnosis_rows(sim: Sim):
    """(patient, day, icd10, stage, text, hospital) of every diagnosis record."""
    rng = rng_for(sim, "diagnoses")
    n = sim.n
    pats, days, icd, stage, text, hosp = [], [], [], [], [], []

    def add(p, d, codes, stages, texts, h=None):
        pats.append(p)
        days.append(d)
        icd.append(codes)
        stage.append(stages)
        text.append(texts)
        hosp.append(sim.hospital[p] if h is None else h)

    forms = [c[5] for c in PR.CANCERS]
    primary_code = np.array([forms[c][i % len(forms[c])] for c, i in zip(sim.cancer, rng.integers(0, 6, n))],
                            dtype=object)
    texts = np.array([PR.CANCER_TEXT[PR.CANCER_NAMES[c]][i % len(PR.CANCER_TEXT[PR.CANCER_NAMES[c]])]
                      for c, i in zip(sim.cancer, rng.integers(0, 5, n))], dtype=object)
    early_names = ("I", "II", "III")
    stage_text = np.empty(n, dtype=object)
    for s in range(4):
        options = PR.STAGE_TEXT[early_names[s] if s < 3 else "IV"]
        m = sim.stage == s
        stage_text[m] = np.array(options, dtype=object)[rng.integers(0, len(options), m.sum())]
    iv_options = np.array(PR.STAGE_TEXT["IV"], dtype=object)
    # breast de novo: stage IV recorded at diagnosis, or no stage (the metastasis record gives the date)
    de_novo_no_stage = sim.breast & (sim.stage == 3) & ~sim.stage_iv_recorded
    stage_text[de_novo_no_stage] = None
    stage_text[sim.breast & (sim.stage == 3) & sim.stage_iv_recorded] = iv_options[
        rng.integers(0, len(iv_options), (sim.breast & (sim.stage == 3) & sim.stage_iv_recorded).sum())]
    other = ~sim.breast
    stage_text[other] = np.where(sim.stage[other] == 3, "IV", np.array(["I", "II", "III", None], dtype=object)[
        rng.integers(0, 4, other.sum())])
    all_p = np.arange(n)
    add(all_p, sim.dx, primary_code, stage_text, texts)
    # follow-up records at every line start: no stage, or the stage of diagnosis (never IV before the
    # advanced date)
    ln_ok = sim.ln_start <= sim.record_end[sim.ln_pat]
    lp = sim.ln_pat[ln_ok]
    ld = sim.ln_start[ln_ok]
    keep_stage = rng.random(len(lp)) < 0.3
    fs = np.where(keep_stage & ((sim.stage[lp] < 3) | (ld >= sim.adv[lp])), stage_text[lp], None)
    fs = np.where(sim.breast[lp] & (sim.stage[lp] == 3) & (ld < sim.adv[lp]), None, fs)
    add(lp, ld, primary_code[lp], fs, texts[lp], sim.ln_hospital[ln_ok])
    # regional lymph nodes (C77, not distant) for some breast cancers at diagnosis
    c77 = np.flatnonzero(sim.breast & (rng.random(n) < 0.15))
    add(c77, sim.dx[c77] + rng.integers(0, 11, len(c77)), np.full(len(c77), "C77.3", dtype=object),
        np.full(len(c77), None, dtype=object), np.full(len(c77), "腋窝淋巴结继发恶性肿瘤", dtype=object))
    # distant metastases: the first site exactly at the advanced date, others within 10 days
    adv = np.flatnonzero(sim.adv < NONE_DAY)
    first_site = np.full(len(adv), -1)
    for j, s in enumerate(SITE_ORDER):
        first_site = np.where((first_site < 0) & sim.sites[s][adv], j, first_site)
    need_first = ~(sim.breast[adv] & sim.stage_iv_recorded[adv])
    site_text = {"bone": "骨继发恶性肿瘤", "lung": "肺继发恶性肿瘤", "liver": "肝继发恶性肿瘤",
                 "brain": "脑继发恶性肿瘤"}
    for j, s in enumerate(SITE_ORDER):
        has = sim.sites[s][adv]
        p = adv[has]
        is_first = (first_site[has] == j) & need_first[has]
        d = np.where(is_first, sim.adv[p], sim.adv[p] + rng.integers(0, 11, len(p)))
        codes = np.array(PR.SITE_CODES[s], dtype=object)[rng.integers(0, len(PR.SITE_CODES[s]), len(p))]
        add(p, d, codes, np.full(len(p), None, dtype=object), np.full(len(p), site_text[s], dtype=object))
        # repeated at the start of later advanced lines
        later = (sim.ln_setting == 1) & (sim.ln_order >= 2) & sim.sites[s][sim.ln_pat]
        later &= sim.ln_start <= sim.record_end[sim.ln_pat]
        q = sim.ln_pat[later]
        add(q, sim.ln_start[later], np.array(PR.SITE_CODES[s], dtype=object)[np.zeros(len(q), dtype=int)],
            np.full(len(q), None, dtype=object), np.full(len(q), site_text[s], dtype=object), sim.ln_hospital[later])
    # recurrence recorded on the breast code with stage IV
    rec = adv[sim.breast[adv] & ~sim.de_novo[adv] & (rng.random(len(adv)) < 0.3)]
    add(rec, sim.adv[rec] + rng.integers(0, 11, len(rec)), primary_code[rec],
        iv_options[rng.integers(0, len(iv_options), len(rec))], texts[rec])
    # a brain metastasis found at first progression (after index + 30 days)
    nb = np.flatnonzero(sim.new_brain & (sim.progression < NONE_DAY))
    first_line_start = np.full(n, NONE_DAY, dtype=np.int64)
    m1 = (sim.ln_setting == 1) & (sim.ln_order == 1)
    first_line_start[sim.ln_pat[m1]] = sim.ln_start[m1]
    nb_day = np.maximum(sim.progression[nb], first_line_start[nb] + 45)
    add(nb, nb_day, np.full(len(nb), "C79.3", dtype=object), np.full(len(nb), None, dtype=object),
        np.full(len(nb), "脑继发恶性肿瘤", dtype=object))
    P = np.concatenate(pats)
    D = np.concatenate(days)
    keep = (D <= sim.record_end[P]) | (D == sim.dx[P])
    keep &= D <= sim.plan.cutoff_day
    return (P[keep], D[keep], np.concatenate(icd)[keep], np.concatenate(stage)[keep], np.concatenate(text)[keep],
            np.concatenate(hosp)[keep])


def build_diagnoses(sim: Sim) -> pa.Table:
    P, D, icd, stage, text, hosp = diagnosis_rows(sim)
    order = np.lexsort((D, P))
    return arrow_table("diagnoses", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])),
        "hospital_id": hospital_ids(sim.plan.seed, hosp[order]),
        "diagnosis_date": dates(D[order]), "icd10": pa.array(list(icd[order]), type=STR),
        "stage": pa.array(list(stage[order]), type=STR), "diagnosis_text": pa.array(list(text[order]), type=STR)})


def biomarker_rows(sim: Sim):
    rng = rng_for(sim, "biomarkers")
    n = sim.n
    b = np.flatnonzero(sim.breast)
    test_day = sim.dx + rng.integers(-10, 6, n)
    plan = np.array(HER2_PLAN_NAMES, dtype=object)[sim.her2_plan]
    rows = []   # (patient, day, marker, method, result)

    def add(p, d, marker, method, result):
        rows.append((p, d, marker, method, result))

    def texts(kind, m):
        opts = np.array(PR.HER2_TEXT[kind], dtype=object)
        return opts[rng.integers(0, len(opts), m)]

    def her2_marker(m):
        return np.array(PR.HER2_MARKER_TEXT, dtype=object)[rng.integers(0, len(PR.HER2_MARKER_TEXT), m)]

    def ihc_method(m):
        return np.where(rng.random(m) < 0.9, "IHC", None).astype(object)

    ihc_kind = {"ihc3": "ihc3", "ihc2_ish_pos": "ihc2", "ihc2_only": "ihc2", "ihc2_ish_neg": "ihc2",
                "ihc0": "ihc0", "ihc1": "ihc1"}
    for plan_name, kind in ihc_kind.items():
        p = b[plan[b] == plan_name]
        add(p, test_day[p], her2_marker(len(p)), ihc_method(len(p)), texts(kind, len(p)))
        if plan_name in ("ihc2_ish_pos", "ihc2_ish_neg"):
            ish = "ish_pos" if plan_name == "ihc2_ish_pos" else "ish_neg"
            method = np.array(PR.ISH_METHODS, dtype=object)[rng.integers(0, len(PR.ISH_METHODS), len(p))]
            add(p, test_day[p] + rng.integers(3, 15, len(p)), her2_marker(len(p)), method, texts(ish, len(p)))
    # a re-test at recurrence reads like the recorded status (an unknown stays unknown: 2+ without ISH)
    rb = b[sim.rebiopsy[b] < NONE_DAY]
    kind = np.where(sim.her2_recorded[rb] == 1, "ihc3", np.where(sim.her2_recorded[rb] == 0, "ihc1", "ihc2"))
    res = np.empty(len(rb), dtype=object)
    for k in ("ihc3", "ihc1", "ihc2"):
        res[kind == k] = texts(k, (kind == k).sum())
    add(rb, sim.rebiopsy[rb], her2_marker(len(rb)), ihc_method(len(rb)), res)
    # ER and PR
    has_hr = b[sim.hr_recorded[b] < 2]
    for marker, pos in (("ER", sim.er_pos), ("PR", sim.pr_pos)):
        p = has_hr
        m = len(p)
        pct = rng.integers(1, 101, m)
        pct = np.where(rng.random(m) < 0.8, np.maximum(pct, 10), pct)
        pos_opts = np.array(["阳性", "positive", "+", "++", "+++", "(+)", "(++)", "(+++)"], dtype=object)
        neg_opts = np.array(["0%", "阴性", "negative", "Negative"], dtype=object)
        pos_text = np.where(rng.random(m) < 0.6, np.char.add(pct.astype(str), "%").astype(object),
                            pos_opts[rng.integers(0, len(pos_opts), m)])
        result = np.where(pos[p], pos_text, neg_opts[rng.integers(0, len(neg_opts), m)])
        add(p, test_day[p], np.full(m, marker, dtype=object), ihc_method(m), result)
    P = np.concatenate([r[0] for r in rows])
    D = np.concatenate([r[1] for r in rows])
    keep = D <= np.minimum(sim.record_end[P], sim.plan.cutoff_day)
    keep |= D <= sim.dx[P] + 30   # pathology of the diagnosis is kept even for patients lost soon after
    keep &= D <= sim.plan.cutoff_day
    cols = [np.concatenate([r[i] for r in rows])[keep] for i in range(5)]
    return cols


def build_biomarkers(sim: Sim) -> pa.Table:
    P, D, marker, method, result = biomarker_rows(sim)
    order = np.lexsort((D, P))
    return arrow_table("biomarkers", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "test_date": dates(D[order]),
        "marker": pa.array(list(marker[order]), type=STR), "method": pa.array(list(method[order]), type=STR),
        "result": pa.array(list(result[order]), type=STR)})
