"""Outcomes as recorded: tumour assessments (the response readings on the assessment schedule,
progression on its documented day, baseline readings) and adverse events (CTCAE terms and
grades, in English or Chinese)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import params as PR
from . import truth as TR
from .columns import F64, STR, arrow_table, chunk_patient_ids, dates, pick, rng_for
from .draws import assessment_jitter, categories
from .drugs import CODE, PRODUCTS
from .plan import NONE_DAY
from .schedules import IS_ANTI_HER2, IS_CHEMO_DAY, IS_TAXANE
from .sim import Sim


RESPONSE_ZH = {"CR": "完全缓解", "PR": "部分缓解", "SD": "疾病稳定", "PD": "疾病进展", "NE": "NE"}


def assessment_rows(sim: Sim):
    rng = rng_for(sim, "tumor_assessments")
    lines = np.flatnonzero((sim.ln_setting == 1) & sim.assessed[sim.ln_pat] & sim.breast[sim.ln_pat])
    pat = sim.ln_pat[lines]
    S = sim.ln_start[lines]
    q = sim.assess_q[pat]
    detect = sim.ln_detect[lines]
    end = np.minimum(np.where(detect < NONE_DAY, detect, sim.record_end[pat]), sim.record_end[pat])
    end = np.minimum(end, sim.death[pat] - 1)
    K = np.clip((end - S + PR.ASSESSMENT_JITTER) // q + 1, 0, 200)
    rep = np.repeat(np.arange(len(lines)), K)
    k = np.arange(len(rep)) - np.repeat(np.cumsum(K) - K, K) + 1
    lp = pat[rep]
    d = S[rep] + k * q[rep] + assessment_jitter(sim.plan.seed, sim.gid[lp], sim.ln_order[lines][rep] - 1, k)
    ok = (d <= end[rep]) & (d > S[rep])
    rep, k, d, lp = rep[ok], k[ok], d[ok], lp[ok]
    responder = sim.ln_responder[lines][rep]
    u = rng.random(len(rep))
    resp = np.where(responder, np.where(k == 1, np.where(u < 0.5, "SD", "PR"), np.where(u < 0.1, "CR", "PR")), "SD")
    resp = np.where(rng.random(len(rep)) < PR.P_NE_READING, "NE", resp)
    resp = np.where(d == detect[rep], "PD", resp).astype(object)
    # baseline reading around the first-line start (within index + 14 days: describes the baseline)
    bp = np.flatnonzero(sim.baseline_assess < NONE_DAY)
    recurrent = ~sim.de_novo[bp]
    ub = rng.random(len(bp))
    b_resp = np.where(recurrent & (ub < 0.4), "PD", np.where(ub < 0.85, "SD", "NE")).astype(object)
    P = np.concatenate([lp, bp])
    D = np.concatenate([d, sim.baseline_assess[bp]])
    R = np.concatenate([resp, b_resp])
    return P, D, R


def build_tumor_assessments(sim: Sim) -> pa.Table:
    rng = rng_for(sim, "tumor_assessments", 1)
    P, D, R = assessment_rows(sim)
    m = len(P)
    zh = rng.random(m) < PR.P_CHINESE_RESPONSE
    R = np.where(zh, np.array([RESPONSE_ZH[r] for r in R], dtype=object), R)
    methods = ("CT", "MRI", "PET-CT", "US", "clinical")
    mi = categories(rng, m, (0.70, 0.15, 0.05, 0.05, 0.05))
    source = np.where(mi == 4, "medical_record", np.where(rng.random(m) < 0.9, "imaging", "medical_record"))
    order = np.lexsort((D, P))
    return arrow_table("tumor_assessments", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "assessment_date": dates(D[order]),
        "response": pa.array(list(R[order]), type=STR), "method": pick(methods, mi[order]),
        "source": pa.array(list(source[order]), type=STR)})


AE_TERMS = {  # key: (English, Chinese)
    "neutropenia": ("neutrophil count decreased", "中性粒细胞减少"),
    "febrile_neutropenia": ("febrile neutropenia", "发热性中性粒细胞减少"),
    "neuropathy": ("peripheral neuropathy", "周围神经病变"),
    "hypersensitivity": ("hypersensitivity", "过敏反应"),
    "diarrhea": ("diarrhea", "腹泻"),
    "hand_foot": ("palmar-plantar erythrodysesthesia syndrome", "手足综合征"),
    "infusion": ("infusion related reaction", "输液反应"),
    "lvef": ("ejection fraction decreased", "射血分数降低"),
    "nausea": ("nausea", "恶心"),
    "alopecia": ("alopecia", "脱发"),
    "fatigue": ("fatigue", "乏力"),
}
AE_KEYS = tuple(AE_TERMS)


def adverse_event_rows(sim: Sim):
    rng = rng_for(sim, "adverse_events")
    P, D, K, G = [], [], [], []

    def add(p, d, key, grade):
        P.append(p), D.append(d), K.append(np.full(len(p), AE_KEYS.index(key))), G.append(grade)
    ev = sim.neut_admin
    rec = ev[rng.random(len(ev)) < 0.4]
    add(sim.ad_pat[rec], TR.nadir_day(sim, rec), "neutropenia", rng.integers(3, 5, len(rec)))
    fn = ev[rng.random(len(ev)) < 0.2]
    add(sim.ad_pat[fn], TR.nadir_day(sim, fn) + 1, "febrile_neutropenia", np.full(len(fn), 3))
    # per line and drug: first administration of the drug in the line
    counting = np.flatnonzero(sim.ad_line >= 0)
    key = sim.ad_line[counting].astype(np.int64) * 100 + sim.ad_prod[counting]
    order = np.lexsort((sim.ad_date[counting], key))
    ks = key[order]
    first = np.ones(len(ks), dtype=bool)
    first[1:] = ks[1:] != ks[:-1]
    fr = counting[order][first]
    fprod, fpat, fday = sim.ad_prod[fr], sim.ad_pat[fr], sim.ad_date[fr]

    choice = sim.taxane_choice
    # under the confounded taxane choice its population's hypersensitivity is the planted one only
    planted = np.zeros(sim.n, dtype=bool) if choice is None else choice.population

    def per_drug(probs, key, offset_lo, offset_hi, grade_p):
        p = np.zeros(len(PRODUCTS))
        for name, v in probs.items():
            p[CODE[name]] = v
        hit = rng.random(len(fr)) < p[fprod]
        if key == "hypersensitivity":
            hit &= ~planted[fpat]
        g = 1 + categories(rng, hit.sum(), grade_p)
        add(fpat[hit], fday[hit] + rng.integers(offset_lo, offset_hi + 1, hit.sum()), key, g)
    per_drug({"paclitaxel liposome": 0.20, "paclitaxel": 0.30, "nab-paclitaxel": 0.40, "docetaxel": 0.20},
             "neuropathy", 42, 120, (0.6, 0.3, 0.1))
    per_drug({"paclitaxel": 0.05, "docetaxel": 0.03, "paclitaxel liposome": 0.015, "nab-paclitaxel": 0.01},
             "hypersensitivity", 0, 0, (0.2, 0.5, 0.3))
    per_drug({"pyrotinib": 0.60, "lapatinib": 0.30, "neratinib": 0.70}, "diarrhea", 3, 14, (0.4, 0.35, 0.25))
    per_drug({"capecitabine": 0.30}, "hand_foot", 30, 60, (0.5, 0.4, 0.1))
    per_drug({"trastuzumab": 0.05}, "infusion", 0, 0, (0.6, 0.35, 0.05))
    chemo = {PRODUCTS[i]: 0.15 for i in np.flatnonzero(IS_CHEMO_DAY)}
    per_drug(chemo, "nausea", 0, 3, (0.7, 0.3, 0.0))
    per_drug({p: 0.25 for p in ("paclitaxel liposome", "paclitaxel", "nab-paclitaxel", "docetaxel")},
             "alopecia", 14, 30, (0.5, 0.5, 0.0))
    per_drug({PRODUCTS[i]: 0.10 for i in np.flatnonzero(IS_ANTI_HER2 | IS_TAXANE)}, "fatigue", 7, 60,
             (0.7, 0.25, 0.05))
    dec = np.flatnonzero((sim.lvef_decline > 0) & (rng.random(sim.n) < 0.6))
    add(dec, sim.lvef_day[dec], "lvef", sim.lvef_decline[dec])
    if choice is not None:
        # at the first taxane dose, the first line's start (every regimen of the choice opens with it)
        first_line = (sim.ln_setting == 1) & (sim.ln_order == 1)
        start = np.full(sim.n, NONE_DAY, dtype=np.int64)
        start[sim.ln_pat[first_line]] = sim.ln_start[first_line]
        hs = np.flatnonzero(choice.hypersensitivity() & (start < NONE_DAY))
        add(hs, start[hs], "hypersensitivity", np.full(len(hs), 3))
    Pa, Da, Ka, Ga = (np.concatenate(x) for x in (P, D, K, G))
    ok = (Da <= sim.record_end[Pa]) & (Da <= sim.plan.cutoff_day)
    return Pa[ok], Da[ok], Ka[ok], Ga[ok]


def build_adverse_events(sim: Sim) -> pa.Table:
    rng = rng_for(sim, "adverse_events", 1)
    P, D, K, G = adverse_event_rows(sim)
    m = len(P)
    zh = rng.random(m) < 0.4
    terms = np.array([AE_TERMS[k][0] for k in AE_KEYS] + [AE_TERMS[k][1] for k in AE_KEYS], dtype=object)
    term = terms[K + np.where(zh, len(AE_KEYS), 0)]
    grade = np.where(rng.random(m) < 0.25, np.nan, G.astype(float))
    if sim.taxane_choice is not None:
        # the planted events keep their grade, so that the recorded grade ≥ 3 risk is the planted one
        planted = (K == AE_KEYS.index("hypersensitivity")) & sim.taxane_choice.population[P]
        grade = np.where(planted, G.astype(float), grade)
    serious = np.where(G >= 3, np.where(rng.random(m) < 0.8, 1.0, np.nan), 0.0)
    order = np.lexsort((D, P))
    return arrow_table("adverse_events", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "onset_date": dates(D[order]),
        "term": pa.array(list(term[order]), type=STR),
        "grade": pa.array(grade[order], type=F64, from_pandas=True).cast(pa.int32()),
        "serious": pa.array(serious[order], type=F64, from_pandas=True).cast(pa.bool_())})
