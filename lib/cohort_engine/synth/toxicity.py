"""The toxicity plan of a chunk: which taxane administration carries a grade ≥3 neutrophil nadir,
LVEF declines on anti-HER2 antibodies and ADCs, T-DM1 thrombocytopenia and ALT rises. The labs and
adverse events are written from it."""
from __future__ import annotations

import numpy as np

from . import params as PR
from .draws import uniform_int
from .drugs import CODE as C
from .drugs import PRODUCTS
from .plan import NONE_DAY
from .schedules import IS_MAB, IS_TAXANE, PROD_CLASS


def toxicity_plans(rng, n, J):
    """Which taxane administration carries a grade ≥3 neutrophil nadir, LVEF declines, PLT/ALT events."""
    tax = np.flatnonzero((J.ad_line >= 0) & IS_TAXANE[J.ad_prod])
    # one candidate event per taxane line: the line's taxane administrations, one picked at random
    lines_t = J.ad_line[tax]
    order = np.lexsort((rng.random(len(tax)), lines_t))
    tax_sorted = tax[order]
    first_of_line = np.ones(len(tax_sorted), dtype=bool)
    first_of_line[1:] = J.ad_line[tax_sorted][1:] != J.ad_line[tax_sorted][:-1]
    cand = tax_sorted[first_of_line]
    p = np.zeros(len(PRODUCTS))
    for name, v in PR.P_NEUTROPENIA_G3.items():
        p[C[name]] = v
    neut_admin = cand[rng.random(len(cand)) < p[J.ad_prod[cand]]]
    on_ab = np.zeros(n, dtype=bool)
    ab = (J.ad_line >= 0) & (IS_MAB[J.ad_prod] | (PROD_CLASS[J.ad_prod] == "anti_her2_adc"))
    on_ab[J.ad_pat[ab]] = True
    decline = on_ab & (rng.random(n) < PR.P_LVEF_DECLINE)
    grade = np.where(decline, np.where(rng.random(n) < PR.P_LVEF_GRADE3, 3, 2), 0)
    first_ab = np.full(n, NONE_DAY, dtype=np.int64)
    np.minimum.at(first_ab, J.ad_pat[ab], J.ad_date[ab])
    lvef_day = np.where(decline, first_ab + uniform_int(rng, 90, 300, n), NONE_DAY)
    tdm1 = np.zeros(n, dtype=bool)
    tdm1[J.ad_pat[J.ad_prod == C["trastuzumab emtansine"]]] = True
    plt_g3 = tdm1 & (rng.random(n) < PR.P_PLT_G3_TDM1)
    risk = np.zeros(n)
    for name, v in PR.P_ALT_RISE.items():
        has = np.zeros(n, dtype=bool)
        has[J.ad_pat[J.ad_prod == C[name]]] = True
        risk = np.maximum(risk, np.where(has, v, 0))
    rise = rng.random(n) < risk
    alt = np.where(rise, np.where(rng.random(n) < PR.P_ALT_G3, 3, 1), 0)
    return {"neut_admin": neut_admin, "lvef_decline": grade, "lvef_day": lvef_day, "plt_g3": plt_g3,
            "alt_rise": alt}
