"""Early-setting lines: the (neo)adjuvant protocols of breast cancer with adjuvant endocrine
therapy, and the adjuvant chemotherapy of other cancers. Every early administration of a breast
cancer ends at least 45 days before the advanced date."""
from __future__ import annotations

import numpy as np

from . import params as PR
from .draws import YEAR, categories, sample_rows, uniform_int
from .drugs import CODE as C
from .plan import NONE_DAY
from .regimens import EARLY_HER2_ACCESS, EARLY_HER2_NEG, EARLY_MIN_YEAR
from .schedules import DOSE_LO, FIRST_W, REG_PROD, REG_ROLE, draw_dose


def early_breast_lines(J, rng, mask, dx, hr, access, age, adv, year_dx):
    """(Neo)adjuvant protocols; every administration ends ≥ 45 days before the advanced date."""
    idx = np.flatnonzero(mask)
    m = len(idx)
    if m == 0:
        return
    her2_access = access[idx]
    names = sorted(set(EARLY_HER2_ACCESS) | set(EARLY_HER2_NEG))
    proto = np.empty(m, dtype=object)
    yr = year_dx[idx]
    for table, sel in ((EARLY_HER2_ACCESS, her2_access), (EARLY_HER2_NEG, ~her2_access)):
        keys = list(table)
        w = np.array([table[k] for k in keys], dtype=float)
        wm = np.tile(w, (m, 1))
        for j, k in enumerate(keys):
            if k in EARLY_MIN_YEAR:
                wm[:, j] = np.where(yr >= EARLY_MIN_YEAR[k], wm[:, j], 0)
            if k == "ENDO_ONLY":
                wm[:, j] = np.where(hr[idx], wm[:, j], 0)
        pick = sample_rows(rng, wm)
        proto[sel] = np.array(keys, dtype=object)[pick[sel]]
    # HER2+ patients without anti-HER2 access are treated like HER2- ones
    s0 = dx[idx] + uniform_int(rng, 10, 45, m)
    limit = np.where(adv[idx] < NONE_DAY, adv[idx] - 45 - uniform_int(rng, 0, 30, m), NONE_DAY)
    taxane_choice = np.array([C["docetaxel"], C["paclitaxel"], C["paclitaxel liposome"]])[
        categories(rng, m, [0.5, 0.3, 0.2])]
    neo_taxane = np.array([C["docetaxel"], C["nab-paclitaxel"], C["paclitaxel liposome"]])[
        categories(rng, m, [0.5, 0.2, 0.3])]
    n6 = rng.integers(4, 7, m)
    pause = uniform_int(rng, 21, 42, m)
    s_second = s0 + 84 + uniform_int(rng, 0, 10, m)
    last_chemo = np.full(m, -1, dtype=np.int64)
    last_line_rows = np.full(m, -1, dtype=np.int64)
    last_line_start = np.full(m, NONE_DAY, dtype=np.int64)

    def lines_for(sel, order, start):
        rows = J.add_lines(idx[sel], setting=0, order=order, start=start[sel], stop=limit[sel], reg=-1)
        return rows

    def taxane_stream(rows, sel, start, prod, count_q3w):
        weekly = (prod[sel] == C["paclitaxel"])
        cycle = np.where(weekly, 7, 21)
        count = np.where(weekly, 3 * count_q3w, count_q3w)
        J.add_stream(rows, prod[sel], start, count, cycle=cycle, dose=draw_dose(rng, prod[sel], weekly),
                     weekly=weekly)
        return start + (count - 1) * cycle

    def simple(rows, sel, start, name, count, **kw):
        p = np.full(len(rows), C[name])
        J.add_stream(rows, p, start, count, dose=draw_dose(rng, p), **kw)
        return start + (np.asarray(count) - 1) * 21

    for name in names:
        sel = np.flatnonzero(proto == name)
        if len(sel) == 0 or name == "NONE":
            continue
        if name in ("ECTH", "ECT", "ECPL"):
            r1 = lines_for(sel, 1, s0)
            simple(r1, sel, s0[sel], "epirubicin", 4)
            simple(r1, sel, s0[sel], "cyclophosphamide", 4)
            r2 = lines_for(sel, 2, s_second)
            prod = taxane_choice if name != "ECPL" else np.full(m, C["paclitaxel liposome"])
            end = taxane_stream(r2, sel, s_second[sel], prod, 4)
            if name == "ECTH":
                simple(r2, sel, s_second[sel], "trastuzumab", 17, load=True)
            last_chemo[sel], last_line_rows[sel], last_line_start[sel] = end, r2, s_second[sel]
        elif name in ("TCBH", "TC"):
            r1 = lines_for(sel, 1, s0)
            end = taxane_stream(r1, sel, s0[sel], np.full(m, C["docetaxel"]), n6[sel])
            simple(r1, sel, s0[sel], "carboplatin" if name == "TCBH" else "cyclophosphamide", n6[sel])
            if name == "TCBH":
                simple(r1, sel, s0[sel] + rng.integers(0, 2, len(sel)), "trastuzumab", 17, load=True)
            last_chemo[sel], last_line_rows[sel], last_line_start[sel] = end, r1, s0[sel]
        elif name in ("THP_NEO", "THP_TDM1", "PLH"):
            r1 = lines_for(sel, 1, s0)
            if name == "PLH":
                end = taxane_stream(r1, sel, s0[sel], np.full(m, C["paclitaxel liposome"]), n6[sel])
                simple(r1, sel, s0[sel] + rng.integers(0, 2, len(sel)), "trastuzumab", 17, load=True)
                last_line_rows[sel], last_line_start[sel] = r1, s0[sel]
            else:
                end = taxane_stream(r1, sel, s0[sel], neo_taxane, np.full(len(sel), 6))
                hp_n = 17 if name == "THP_NEO" else 6
                simple(r1, sel, s0[sel], "trastuzumab", hp_n, load=True, pause_k=6, pause=pause[sel])
                simple(r1, sel, s0[sel], "pertuzumab", hp_n, load=True, pause_k=6, pause=pause[sel])
                last_line_rows[sel], last_line_start[sel] = r1, s0[sel]
                if name == "THP_TDM1":
                    s2 = s0[sel] + 6 * 21 + pause[sel]
                    r2 = J.add_lines(idx[sel], setting=0, order=2, start=s2, stop=limit[sel], reg=-1)
                    simple(r2, sel, s2, "trastuzumab emtansine", 14)
                    last_line_rows[sel], last_line_start[sel] = r2, s2
                    end = s2 + 2
            last_chemo[sel] = end
        elif name == "ENDO_ONLY":
            last_line_start[sel] = s0[sel]
            last_chemo[sel] = s0[sel] - 20   # endocrine opens the line on s0 (see below)
    # adjuvant endocrine for HR+ tumours, 5 years, dispensed every 28/56/84 days
    endo = hr[idx] & (last_chemo > 0)
    pre = age[idx] < 50
    drug = np.where(pre, C["tamoxifen"], np.array([C["letrozole"], C["anastrozole"], C["exemestane"]])[
        categories(rng, m, [0.5, 0.35, 0.15])])
    interval = np.array([28, 56, 84])[categories(rng, m, [0.4, 0.4, 0.2])]
    start = last_chemo + uniform_int(rng, 14, 42, m)
    start = np.where(proto == "ENDO_ONLY", s0, start)
    years = np.where(rng.random(m) < 0.2, rng.uniform(1, 3, m), 5.0)
    count = np.floor(years * YEAR / interval).astype(np.int64) + 1
    only = np.flatnonzero(endo & (proto == "ENDO_ONLY"))
    if len(only):
        r = J.add_lines(idx[only], setting=0, order=1, start=start[only], stop=limit[only], reg=-1)
        last_line_rows[only] = r
    sel = np.flatnonzero(endo & (last_line_rows >= 0))
    J.add_stream(last_line_rows[sel], drug[sel], start[sel], count[sel], cycle=interval[sel],
                 dose=DOSE_LO[drug[sel]])
    gos = sel[pre[sel] & (rng.random(len(sel)) < 0.3)]
    J.add_stream(last_line_rows[gos], np.full(len(gos), C["goserelin"]), start[gos], count[gos] * interval[gos] // 28,
                 dose=np.full(len(gos), 3.6))


def early_other_lines(J, rng, mask, dx, cancer):
    """Adjuvant chemotherapy of other cancers: one line of 4-6 cycles."""
    treat_p = np.nan_to_num(np.array([c[7] if c[7] is not None else 0 for c in PR.CANCERS], dtype=float))
    idx = np.flatnonzero(mask & (rng.random(len(mask)) < treat_p[cancer]))
    if len(idx) == 0:
        return
    group = 2 + cancer[idx]
    reg = sample_rows(rng, FIRST_W[group, 0])
    idx, reg = idx[reg >= 0], reg[reg >= 0]
    start = dx[idx] + uniform_int(rng, 14, 45, len(idx))
    rows = J.add_lines(idx, setting=0, order=1, start=start, stop=np.full(len(idx), NONE_DAY), reg=reg)
    n_ind = rng.integers(4, 7, len(idx))
    for r in np.unique(reg):
        sel = np.flatnonzero(reg == r)
        for p, role in zip(REG_PROD[r], REG_ROLE[r]):
            count = n_ind[sel] if role == "ind" else n_ind[sel] * 3
            J.add_stream(rows[sel], p, start[sel], count, dose=draw_dose(rng, np.full(len(sel), p)))
