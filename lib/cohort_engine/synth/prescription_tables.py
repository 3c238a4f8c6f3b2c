"""Prescriptions: every administration as a hospital records it, with its dose and unit as
written and its drug name in one of the forms of drugs.py (Chinese, Latin, decorated or printed;
canonical in a clean extract)."""
from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from . import params as PR
from .columns import F64, STR, arrow_table, chunk_patient_ids, dates, hospital_ids, record_ids, rng_for
from .drugs import (CODE, DRUG_CODE_SHARE, FORM_WEIGHTS, FIXED_DOSE_HP, FIXED_DOSE_HP_ATC, FIXED_DOSE_HP_CANONICAL,
                    INGREDIENTS, NAME_FORMS, PRODUCTS, ROUTES, printed_forms, printed_indices)
from .plan import SUB_PRINTED_NAMES
from .schedules import DOSE_KIND
from .sim import Sim


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
    return arrow_table("prescriptions", {
        "record_id": record_ids(record_no), "patient_id": chunk_patient_ids(sim).take(pa.array(pat)),
        "hospital_id": hospital_ids(sim.plan.seed, hosp), "admin_date": dates(date),
        "drug_name": vocab.take(pa.array(name_idx)), "drug_code": pa.array(list(code), type=STR),
        "dose": pa.array(dose, type=F64, from_pandas=True), "dose_unit": pa.array(list(unit_text), type=STR),
        "route": pa.array(list(route), type=STR)})
