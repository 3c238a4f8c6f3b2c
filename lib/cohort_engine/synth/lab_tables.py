"""Labs: blood counts and chemistry before treatment days, nadir counts after taxane doses, the
planned toxicities (neutropenia, thrombocytopenia, ALT rises, LVEF declines), and the units and
reference ranges each hospital writes."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import params as PR
from . import truth as TR
from .columns import F64, STR, arrow_table, chunk_patient_ids, dates, pick, rng_for
from .draws import categories, mix64
from .drugs import CODE
from .plan import NONE_DAY
from .schedules import COUNTS, IS_CHEMO_DAY, IS_MAB, IS_TAXANE, PROD_CLASS
from .sim import Sim


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
    pre = a_day - categories(rng, na, (0.5, 0.3, 0.2))
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
    return arrow_table("labs", {
        "patient_id": chunk_patient_ids(sim).take(pa.array(P[order])), "collect_date": dates(D[order]),
        "test": pick(LAB_TESTS, T[order]), "value": pa.array(value[order], type=F64),
        "unit": pa.array(list(unit[order]), type=STR),
        "ref_low": pa.array(np.round(lo[order], 3), type=F64, from_pandas=True),
        "ref_high": pa.array(np.round(hi[order], 3), type=F64, from_pandas=True)})
