"""Clean source tables of one chunk, as Arrow tables (dates as ISO text).

Each builder reads the chunk's simulation and draws its table-specific details
(spellings, units, lab values…) from its own random stream, so building one
table never shifts another. Date columns are built as `YYYY-MM-DD` strings
(in CSV and Parquet alike), because noisy extracts put unparseable text in them;
noise.py writes a share of them in the other forms of dates.py, and the pandas
writer turns them into timestamps.
"""
from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from . import params as PR
from . import truth as TR
from .draws import assessment_jitter, mix64
from .drugs import (CODE, DRUG_CODE_SHARE, FORM_WEIGHTS, FIXED_DOSE_HP, FIXED_DOSE_HP_ATC, FIXED_DOSE_HP_CANONICAL,
                    INGREDIENTS, NAME_FORMS, PRODUCTS, ROUTES, printed_forms, printed_indices)
from .hospitals import hospitals
from .plan import NONE_DAY, STREAM_TABLE, SUB_PRINTED_NAMES, TABLE_NUMBER, day
from .schedules import COUNTS, DOSE_KIND, IS_ANTI_HER2, IS_CHEMO_DAY, IS_MAB, IS_TAXANE, PROD_CLASS
from .sim import HER2_PLAN_NAMES, Sim

STR = pa.string()
F64 = pa.float64()
SCHEMAS = {
    "hospitals": pa.schema([("hospital_id", STR), ("tier", STR), ("province", STR), ("hospital_type", STR)]),
    "patients": pa.schema([("patient_id", STR), ("sex", STR), ("birth_date", STR), ("id_hash", STR),
                           ("province", STR)]),
    "diagnoses": pa.schema([("patient_id", STR), ("hospital_id", STR), ("diagnosis_date", STR), ("icd10", STR),
                            ("stage", STR), ("diagnosis_text", STR)]),
    "biomarkers": pa.schema([("patient_id", STR), ("test_date", STR), ("marker", STR), ("method", STR),
                             ("result", STR)]),
    "prescriptions": pa.schema([("record_id", STR), ("patient_id", STR), ("hospital_id", STR),
                                ("admin_date", STR), ("drug_name", STR), ("drug_code", STR), ("dose", F64),
                                ("dose_unit", STR), ("route", STR)]),
    "deaths": pa.schema([("id_hash", STR), ("death_date", STR), ("cause_icd10", STR)]),
    "tumor_assessments": pa.schema([("patient_id", STR), ("assessment_date", STR), ("response", STR),
                                    ("method", STR), ("source", STR)]),
    "labs": pa.schema([("patient_id", STR), ("collect_date", STR), ("test", STR), ("value", F64), ("unit", STR),
                       ("ref_low", F64), ("ref_high", F64)]),
    "adverse_events": pa.schema([("patient_id", STR), ("onset_date", STR), ("term", STR), ("grade", pa.int32()),
                                 ("serious", pa.bool_())]),
    "visits": pa.schema([("patient_id", STR), ("visit_date", STR), ("hospital_id", STR), ("visit_type", STR)]),
    "vitals": pa.schema([("patient_id", STR), ("measure_date", STR), ("height_cm", F64), ("weight_kg", F64)]),
}
DATE_COLUMN = {"patients": "birth_date", "diagnoses": "diagnosis_date", "biomarkers": "test_date",
               "prescriptions": "admin_date", "deaths": "death_date", "tumor_assessments": "assessment_date",
               "labs": "collect_date", "adverse_events": "onset_date", "visits": "visit_date",
               "vitals": "measure_date"}

_DATE_BASE = day(__import__("datetime").date(1850, 1, 1))


@functools.lru_cache(maxsize=1)
def _date_strings() -> pa.Array:
    days = np.arange(_DATE_BASE, _DATE_BASE + 300 * 366, dtype="int64")
    return pa.array(days.astype("datetime64[D]").astype(str))


def dates(days) -> pa.Array:
    return _date_strings().take(pa.array(np.asarray(days, dtype=np.int64) - _DATE_BASE))


def pick(values, idx) -> pa.Array:
    return pa.array(list(values), type=STR).take(pa.array(np.asarray(idx, dtype=np.int64)))


def rng_for(sim: Sim, table: str, sub: int = 0) -> np.random.Generator:
    return sim.plan.rng(sim.chunk, STREAM_TABLE + 10 * TABLE_NUMBER[table] + sub)


def patient_ids(plan, numbers) -> np.ndarray:
    """'P' + zero-padded 1-based number."""
    if len(numbers) == 0:
        return np.zeros(0, dtype=str)
    return np.char.add("P", np.char.zfill(np.asarray(numbers, dtype=np.int64).astype(str), plan.id_width))


def chunk_patient_ids(sim: Sim) -> pa.Array:
    return pa.array(patient_ids(sim.plan, sim.gid + 1))


def hex_hash(a: np.ndarray, b: np.ndarray) -> pa.Array:
    """32 hex characters from two 64-bit hashes."""
    raw = np.stack([a, b], axis=1).astype(">u8").view(np.uint8).reshape(len(a), 16)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((len(a), 32), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    return pa.array(out.view("S32").ravel()).cast(STR)


def id_hashes(sim: Sim) -> pa.Array:
    return hex_hash(mix64(sim.plan.seed, sim.gid, 1), mix64(sim.plan.seed, sim.gid, 2))


@functools.lru_cache(maxsize=4)
def _hospital_frame(seed: int):
    h = hospitals(seed)
    ids = np.char.add("H", np.char.zfill(np.arange(1, PR.N_HOSPITALS + 1).astype(str), 4))
    return h, pa.array(ids)


def hospital_ids(seed: int, idx) -> pa.Array:
    return _hospital_frame(seed)[1].take(pa.array(np.asarray(idx, dtype=np.int64)))


def _table(name: str, columns: dict) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = []
    for field in schema:
        col = columns[field.name]
        if not isinstance(col, (pa.Array, pa.ChunkedArray)):
            col = pa.array(col, type=field.type, from_pandas=True)
        arrays.append(col.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _choice(rng, n, options, weights=None):
    w = np.ones(len(options)) if weights is None else np.asarray(weights, dtype=float)
    return rng.choice(len(options), size=n, p=w / w.sum())


# -- hospitals and patients -------------------------------------------------------------------------

def build_hospitals(seed: int) -> pa.Table:
    h, ids = _hospital_frame(seed)
    return _table("hospitals", {
        "hospital_id": ids, "tier": pick(PR.TIERS, h.tier), "province": pick([p for p, _ in PR.PROVINCES], h.province),
        "hospital_type": pick(("general", "oncology"), h.oncology.astype(int))})


def build_patients(sim: Sim) -> pa.Table:
    return _table("patients", {
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
    other_day = day(__import__("datetime").date(2013, 1, 1)) + rng.integers(0, cutoff - day(
        __import__("datetime").date(2013, 1, 1)) + 1, m)
    other_cause = np.array(NON_CANCER_CAUSES + ("C34.9", "C16.9", "C22.0"), dtype=object)[
        rng.integers(0, len(NON_CANCER_CAUSES) + 3, m)]
    return _table("deaths", {
        "id_hash": pa.concat_arrays([id_hashes(sim).take(pa.array(dead)), other_hash]),
        "death_date": pa.concat_arrays([dates(sim.death[dead]), dates(other_day)]),
        "cause_icd10": pa.array(list(cause) + list(other_cause), type=STR)})


# -- diagnoses and biomarkers ----------------------------------------------------------------------

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
    return _table("diagnoses", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "hospital_id": hospital_ids(sim.plan.seed, hosp[order]),
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
    return _table("biomarkers", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "test_date": dates(D[order]),
        "marker": pa.array(list(marker[order]), type=STR), "method": pa.array(list(method[order]), type=STR),
        "result": pa.array(list(result[order]), type=STR)})


# -- prescriptions ---------------------------------------------------------------------------------------

def _fullwidth(text: str) -> str:
    return "".join(chr(ord(ch) + 0xFEE0) if 0x21 <= ord(ch) <= 0x7E else ("\u3000" if ch == " " else ch)
                   for ch in text)


def _decorations(form: str) -> list[str]:
    out = [" " + form, form + " ", form.replace("", " ").strip() if len(form) <= 6 else form + "  "]
    if any("a" <= ch.lower() <= "z" for ch in form):
        out += [form.upper(), form.lower(), form.title(), _fullwidth(form.upper())]
    else:
        out += [_fullwidth(form)] if any(ord(ch) < 128 for ch in form) else []
    return [d for d in dict.fromkeys(out) if d != form]


@functools.lru_cache(maxsize=1)
def name_vocabulary():
    """All drug-name strings a noisy extract writes, with per-product index lists."""
    strings: list[str] = []
    index: dict[str, int] = {}

    def idx(s):
        if s not in index:
            index[s] = len(strings)
            strings.append(s)
        return index[s]
    canonical, chinese, latin, decorated, printed = {}, {}, {}, {}, {}
    for prod in PRODUCTS:
        forms = NAME_FORMS[prod]
        canon = FIXED_DOSE_HP_CANONICAL if prod == FIXED_DOSE_HP else INGREDIENTS[prod][2]
        canonical[prod] = idx(canon)
        is_latin = [all(ord(ch) < 128 for ch in f) for f in forms]
        chinese[prod] = [idx(f) for f, lat in zip(forms, is_latin) if not lat]
        latin[prod] = [idx(f) for f, lat in zip(forms, is_latin) if lat]
        decorated[prod] = [idx(d) for f in forms for d in _decorations(f)]
    for prod in PRODUCTS:
        printed[prod] = np.array([idx(f) for f in printed_forms(prod)], dtype=np.int64)
    return pa.array(strings, type=STR), canonical, chinese, latin, decorated, printed


UNIT_NAMES = ("mg", "g", "mg/m2", "mg/kg", "ug")
UNIT_VARIANTS = {"mg": ("MG", "mg ", "Mg", " mg"), "mg/m2": ("mg/m²", "MG/M2", "mg/M2"),
                 "mg/kg": ("MG/KG", "mg/Kg"), "ug": ("μg", "UG"), "g": ("G",)}


def prescription_rows(sim: Sim):
    """Administrations in record order with their recorded dose, unit and hospital."""
    rng = rng_for(sim, "prescriptions")
    order = np.lexsort((sim.ad_prod, sim.ad_date, sim.ad_pat))
    pat, prod, date, line = sim.ad_pat[order], sim.ad_prod[order], sim.ad_date[order], sim.ad_line[order]
    value = sim.ad_dose[order]
    m = len(pat)
    kind = DOSE_KIND[prod]
    bsa = np.sqrt(sim.height * sim.weight / 3600.0)[pat]
    wt = sim.weight[pat]
    as_mg = rng.random(m) < np.where(kind == 0, 0.85, np.where(kind == 1, 0.80, 1.0))
    mg = np.where(kind == 0, value * bsa, np.where(kind == 1, value * wt, value))
    mg = np.where(mg >= 50, np.round(mg / 10) * 10, np.round(mg, 2))
    dose = np.where(as_mg, mg, value)
    unit = np.where(as_mg, 0, np.where(kind == 0, 2, 3))
    unit = np.where(prod == CODE["filgrastim"], 4, unit)
    dose = np.where(rng.random(m) < PR.P_DOSE_MISSING, np.nan, dose)
    hosp = np.where(line >= 0, sim.ln_hospital[np.maximum(line, 0)], sim.hospital[pat])
    hosp = np.where(hosp >= 0, hosp, sim.hospital[pat])
    return pat, prod, date, dose, unit, hosp


def build_prescriptions(sim: Sim, clean: bool) -> pa.Table:
    rng = rng_for(sim, "prescriptions", 1)
    pat, prod, date, dose, unit, hosp = prescription_rows(sim)
    m = len(pat)
    vocab, canonical, chinese, latin, decorated, printed = name_vocabulary()
    name_idx = np.empty(m, dtype=np.int64)
    for p in np.unique(prod):
        sel = np.flatnonzero(prod == p)
        name = PRODUCTS[p]
        if clean:
            name_idx[sel] = canonical[name]
            continue
        zh, la, dec = chinese[name], latin[name], decorated[name]
        u = rng.random(len(sel))
        use_latin = (u < FORM_WEIGHTS["latin"]) if la else np.zeros(len(sel), dtype=bool)
        pick_zh = np.array(zh)[rng.integers(0, len(zh), len(sel))]
        pick_la = np.array(la or zh)[rng.integers(0, len(la or zh), len(sel))]
        chosen = np.where(use_latin, pick_la, pick_zh)
        if dec:
            deco = rng.random(len(sel)) < PR.NOISE["name_decoration"]
            chosen = np.where(deco, np.array(dec)[rng.integers(0, len(dec), len(sel))], chosen)
        name_idx[sel] = chosen
    if sim.plan.forms:
        # names as a pharmacy prints them, from their own stream (the draws above stay as they were)
        prng = rng_for(sim, "prescriptions", SUB_PRINTED_NAMES)
        for p in np.unique(prod):
            sel = np.flatnonzero(prod == p)
            sel = sel[prng.random(len(sel)) < PR.NOISE["printed_name"]]
            name_idx[sel] = printed[PRODUCTS[p]][printed_indices(PRODUCTS[p], prng, len(sel))]
    atc = np.array([FIXED_DOSE_HP_ATC if p == FIXED_DOSE_HP else INGREDIENTS[p][1] for p in PRODUCTS], dtype=object)
    code = np.where(rng.random(m) < DRUG_CODE_SHARE, atc[prod], None)
    unit_text = np.array(UNIT_NAMES, dtype=object)[unit]
    if not clean:
        vary = rng.random(m) < PR.NOISE["unit_variant"]
        for u_name, variants in UNIT_VARIANTS.items():
            sel = np.flatnonzero(vary & (unit_text == u_name))
            unit_text[sel] = np.array(variants, dtype=object)[rng.integers(0, len(variants), len(sel))]
    routes = np.array([ROUTES.get(p) for p in PRODUCTS], dtype=object)
    route = np.where(rng.random(m) < 0.1, None, routes[prod])
    record_no = sim.chunk * 10 ** 9 + np.arange(m, dtype=np.int64)
    return _table("prescriptions", {
        "record_id": record_ids(record_no), "patient_id": chunk_patient_ids(sim).take(pa.array(pat)),
        "hospital_id": hospital_ids(sim.plan.seed, hosp), "admin_date": dates(date),
        "drug_name": vocab.take(pa.array(name_idx)), "drug_code": pa.array(list(code), type=STR),
        "dose": pa.array(dose, type=F64, from_pandas=True), "dose_unit": pa.array(list(unit_text), type=STR),
        "route": pa.array(list(route), type=STR)})


def record_ids(numbers: np.ndarray) -> pa.Array:
    if len(numbers) == 0:
        return pa.array([], type=STR)
    return pa.array(np.char.add("RX", np.char.zfill(np.asarray(numbers, dtype=np.int64).astype(str), 14)))


# -- tumor assessments -------------------------------------------------------------------------------

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
    mi = _choice(rng, m, methods, (0.70, 0.15, 0.05, 0.05, 0.05))
    source = np.where(mi == 4, "medical_record", np.where(rng.random(m) < 0.9, "imaging", "medical_record"))
    order = np.lexsort((D, P))
    return _table("tumor_assessments", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "assessment_date": dates(D[order]),
        "response": pa.array(list(R[order]), type=STR), "method": pick(methods, mi[order]),
        "source": pa.array(list(source[order]), type=STR)})


# -- labs ------------------------------------------------------------------------------------------------

LAB_TESTS = ("ANC", "WBC", "PLT", "HGB", "ALT", "AST", "TBIL", "CREA", "LVEF")


def lab_rows(sim: Sim):
    """(patient, day, test index, value in canonical unit) of every lab result."""
    rng = rng_for(sim, "labs")
    n = sim.n
    cls = PROD_CLASS[sim.ad_prod]
    anchor_m = (sim.ad_line >= 0) & COUNTS[sim.ad_prod] & ~np.isin(cls, ["endocrine", "cdk46_inhibitor"])
    key = np.unique(sim.ad_pat[anchor_m].astype(np.int64) * 100_000 + sim.ad_date[anchor_m])
    chemo_m = (sim.ad_line >= 0) & IS_CHEMO_DAY[sim.ad_prod]
    chemo_key = np.unique(sim.ad_pat[chemo_m].astype(np.int64) * 100_000 + sim.ad_date[chemo_m])
    # blood is drawn before every chemotherapy day, before every other antibody/TKI-only day
    key = key[np.isin(key, chemo_key) | (rng.random(len(key)) < PR.P_LAB_MAINTENANCE)]
    a_pat, a_day = key // 100_000, key % 100_000
    na = len(a_pat)
    pre = a_day - _choice(rng, na, (0, 1, 2), (0.5, 0.3, 0.2))
    anc0 = np.clip(np.exp(rng.normal(np.log(3.8), 0.25, n)), 2.0, 8.0)
    plt0 = np.clip(rng.normal(230, 50, n), 130, 420)
    hgb0 = np.clip(rng.normal(128, 10, n), 105, 160)
    alt0 = np.clip(np.exp(rng.normal(np.log(20), 0.35, n)), 7, 38)
    liver_abn = sim.sites["liver"] & (rng.random(n) < 0.3)
    alt0 = np.where(liver_abn, 40 * rng.uniform(1.5, 2.5, n), alt0)
    tbil0 = rng.uniform(5, 18, n)
    crea0 = np.where(sim.sex == 1, rng.normal(75, 10, n), rng.normal(60, 9, n)).clip(35, 95)
    P, D, T, V = [], [], [], []

    def add(p, d, t, v):
        P.append(p), D.append(d), T.append(np.full(len(p), t)), V.append(v)
    # pre-treatment blood count at every anchor; chemistry at half of them
    anc = anc0[a_pat] * rng.uniform(0.75, 1.15, na)
    add(a_pat, pre, 0, anc)
    add(a_pat, pre, 1, anc / rng.uniform(0.55, 0.70, na))
    add(a_pat, pre, 2, plt0[a_pat] * rng.uniform(0.75, 1.05, na))
    add(a_pat, pre, 3, np.maximum(hgb0[a_pat] - rng.uniform(0, 15, na), 82))
    chem = rng.random(na) < PR.P_CHEMISTRY
    cp = a_pat[chem]
    alt = alt0[cp] * rng.uniform(0.85, 1.15, chem.sum())
    add(cp, pre[chem], 4, alt)
    add(cp, pre[chem], 5, np.clip(alt * rng.uniform(0.8, 1.1, chem.sum()), 8, None))
    add(cp, pre[chem], 6, tbil0[cp] * rng.uniform(0.9, 1.1, chem.sum()))
    add(cp, pre[chem], 7, crea0[cp] * rng.uniform(0.92, 1.08, chem.sum()))
    # nadir counts after taxane doses; grade ≥3 neutropenia where the simulation planned it
    tax = np.flatnonzero((sim.ad_line >= 0) & IS_TAXANE[sim.ad_prod])
    event = np.zeros(len(sim.ad_pat), dtype=bool)
    event[sim.neut_admin] = True
    nad = tax[(rng.random(len(tax)) < PR.P_NADIR_LAB) | event[tax]]
    nd = TR.nadir_day(sim, nad)
    npat = sim.ad_pat[nad]
    ok = nd <= sim.record_end[npat]
    nad, nd, npat = nad[ok], nd[ok], npat[ok]
    m = len(nad)
    nanc = np.where(event[nad], rng.uniform(0.1, 0.99, m), rng.uniform(1.05, 2.5, m))
    add(npat, nd, 0, nanc)
    add(npat, nd, 1, nanc / rng.uniform(0.5, 0.65, m) + 0.3)
    add(npat, nd, 2, plt0[npat] * rng.uniform(0.6, 1.0, m))
    add(npat, nd, 3, np.maximum(hgb0[npat] - rng.uniform(5, 20, m), 80))
    # T-DM1 thrombocytopenia, ALT rises on TKIs/T-DM1/capecitabine
    for flag, test, lo, hi, prods in ((sim.plt_g3, 2, 20, 49, ["trastuzumab emtansine"]),):
        rows = np.flatnonzero(np.isin(sim.ad_prod, [CODE[p] for p in prods]) & flag[sim.ad_pat])
        first = _first_per_patient(sim.ad_pat[rows], rows)
        d = sim.ad_date[first] + 8
        ok = d <= sim.record_end[sim.ad_pat[first]]
        add(sim.ad_pat[first][ok], d[ok], test, rng.uniform(lo, hi, ok.sum()))
    alt_prods = [CODE[p] for p in PR.P_ALT_RISE]
    rows = np.flatnonzero(np.isin(sim.ad_prod, alt_prods) & (sim.alt_rise[sim.ad_pat] > 0))
    first = _first_per_patient(sim.ad_pat[rows], rows)
    fp = sim.ad_pat[first]
    d = sim.ad_date[first] + rng.integers(28, 57, len(first))
    ok = d <= sim.record_end[fp]
    fp, d = fp[ok], d[ok]
    mult = np.where(sim.alt_rise[fp] == 3, rng.uniform(5.5, 8.0, len(fp)), rng.uniform(1.3, 2.8, len(fp)))
    base = np.maximum(alt0[fp], 40.0)
    add(fp, d, 4, base * mult)
    add(fp, d, 5, base * mult * rng.uniform(0.6, 0.9, len(fp)))
    # LVEF on anti-HER2 antibodies and ADCs: baseline, then every 12 weeks
    ab = np.flatnonzero((sim.ad_line >= 0) & (IS_MAB[sim.ad_prod] | (PROD_CLASS[sim.ad_prod] == "anti_her2_adc")))
    first_ab = np.full(n, NONE_DAY, dtype=np.int64)
    last_ab = np.full(n, -1, dtype=np.int64)
    np.minimum.at(first_ab, sim.ad_pat[ab], sim.ad_date[ab])
    np.maximum.at(last_ab, sim.ad_pat[ab], sim.ad_date[ab])
    on = np.flatnonzero(last_ab >= 0)
    base_day = first_ab[on] - rng.integers(0, 15, len(on))
    count = (last_ab[on] - base_day) // 84 + 1
    rep = np.repeat(np.arange(len(on)), count)
    kk = np.arange(len(rep)) - np.repeat(np.cumsum(count) - count, count)
    lp = on[rep]
    ld = base_day[rep] + 84 * kk
    lvef0 = rng.uniform(55, 70, n)
    lv = np.where(kk == 0, lvef0[lp], np.clip(lvef0[lp] + rng.uniform(-6, 3, len(lp)), 50.5, None))
    # the planned decline replaces the scheduled measurement nearest to it
    dec = np.flatnonzero(sim.lvef_decline > 0)
    dec_day = np.minimum(sim.lvef_day[dec], np.maximum(last_ab[dec], first_ab[dec] + 30))
    dec_val = np.where(sim.lvef_decline[dec] == 3, rng.uniform(30, 39, len(dec)), rng.uniform(40, 49, len(dec)))
    keep_sched = ~np.isin(lp, dec) | (kk == 0)
    add(lp[keep_sched], ld[keep_sched], 8, lv[keep_sched])
    add(dec, dec_day, 8, dec_val)
    Pa, Da, Ta, Va = (np.concatenate(x) for x in (P, D, T, V))
    ok = (Da <= sim.record_end[Pa]) & (Da <= sim.plan.cutoff_day)
    return Pa[ok], Da[ok], Ta[ok], Va[ok]


def _first_per_patient(pat, rows):
    if len(rows) == 0:
        return rows
    order = np.lexsort((rows, pat))
    p = pat[order]
    first = np.ones(len(p), dtype=bool)
    first[1:] = p[1:] != p[:-1]
    return rows[order][first]


LAB_UNIT = ("10^9/L", "10^9/L", "10^9/L", "g/L", "U/L", "U/L", "umol/L", "umol/L", "%")
LAB_REFS = {  # two reference sets seen across hospitals (canonical units)
    0: ((1.8, 6.3), (2.0, 7.5)), 1: ((3.5, 9.5), (4.0, 10.0)), 2: ((125, 350), (100, 300)),
    3: ((115, 150), (110, 150)), 4: ((7, 40), (7, 40)), 5: ((13, 35), (15, 40)), 6: ((0, 21), (3.4, 20.5)),
    7: ((41, 73), (45, 84)), 8: ((50, None), (50, 70)),
}


def build_labs(sim: Sim) -> pa.Table:
    rng = rng_for(sim, "labs", 1)
    P, D, T, V = lab_rows(sim)
    m = len(P)
    habit = (mix64(sim.plan.seed, sim.hospital[P], 21) % np.uint64(100)).astype(np.int64)
    ref_set = habit % 2
    lo = np.array([[LAB_REFS[t][s][0] for s in (0, 1)] for t in range(9)], dtype=float)[T, ref_set]
    hi = np.array([[np.nan if LAB_REFS[t][s][1] is None else LAB_REFS[t][s][1] for s in (0, 1)]
                   for t in range(9)], dtype=float)[T, ref_set]
    unit = np.array(LAB_UNIT, dtype=object)[T]
    value = V.copy()
    g_dl = (T == 3) & (habit < PR.P_HGB_G_DL * 100)
    value = np.where(g_dl, value / 10, value)
    lo = np.where(g_dl, lo / 10, lo)
    hi = np.where(g_dl, hi / 10, hi)
    unit = np.where(g_dl, "g/dL", unit)
    mgdl = np.isin(T, [6, 7]) & ((habit // 10) < PR.P_UMOL_MG_DL * 10)
    factor = np.where(T == 6, 17.1, 88.4)
    value = np.where(mgdl, value / factor, value)
    lo = np.where(mgdl, lo / factor, lo)
    hi = np.where(mgdl, hi / factor, hi)
    unit = np.where(mgdl, "mg/dL", unit)
    no_ref = rng.random(m) < 0.08
    lo = np.where(no_ref, np.nan, lo)
    hi = np.where(no_ref, np.nan, hi)
    decimals = np.array([2, 2, 0, 1, 0, 0, 1, 0, 0])[T]
    value = np.where(g_dl | mgdl, np.round(value, 2), np.round(value * 10.0 ** decimals) / 10.0 ** decimals)
    order = np.lexsort((T, D, P))
    return _table("labs", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "collect_date": dates(D[order]),
        "test": pick(LAB_TESTS, T[order]), "value": pa.array(value[order], type=F64),
        "unit": pa.array(list(unit[order]), type=STR),
        "ref_low": pa.array(np.round(lo[order], 3), type=F64, from_pandas=True),
        "ref_high": pa.array(np.round(hi[order], 3), type=F64, from_pandas=True)})


# -- adverse events ------------------------------------------------------------------------------------

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

    def per_drug(probs, key, offset_lo, offset_hi, grade_p):
        p = np.zeros(len(PRODUCTS))
        for name, v in probs.items():
            p[CODE[name]] = v
        hit = rng.random(len(fr)) < p[fprod]
        g = 1 + _choice(rng, hit.sum(), (1, 2, 3), grade_p)
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
    serious = np.where(G >= 3, np.where(rng.random(m) < 0.8, 1.0, np.nan), 0.0)
    order = np.lexsort((D, P))
    return _table("adverse_events", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "onset_date": dates(D[order]),
        "term": pa.array(list(term[order]), type=STR),
        "grade": pa.array(grade[order], type=F64, from_pandas=True).cast(pa.int32()),
        "serious": pa.array(serious[order], type=F64, from_pandas=True).cast(pa.bool_())})


# -- visits and vitals -------------------------------------------------------------------------------------

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
    return _table("visits", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[sel])), "visit_date": dates(D[sel]),
        "hospital_id": hospital_ids(sim.plan.seed, H[sel]),
        "visit_type": pick(("outpatient", "inpatient"), inpatient.astype(int))})


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
    return _table("vitals", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "measure_date": dates(D[order]),
        "height_cm": pa.array(height[order], type=F64, from_pandas=True),
        "weight_kg": pa.array(weight[order], type=F64)})


BUILDERS = {
    "patients": build_patients, "diagnoses": build_diagnoses, "biomarkers": build_biomarkers,
    "deaths": build_deaths, "tumor_assessments": build_tumor_assessments, "labs": build_labs,
    "adverse_events": build_adverse_events, "visits": build_visits, "vitals": build_vitals,
}
