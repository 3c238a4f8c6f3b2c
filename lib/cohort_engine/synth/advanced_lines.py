"""Advanced (metastatic) lines: the administrations of a line's regimen, and the day a progression
is documented by the assessment schedule.

Each component of a regimen starts within 4 days of the line start; a next line begins with a drug
new to the previous regimen, and any drug carried over starts 1-4 days later."""
from __future__ import annotations

import numpy as np

from . import params as PR
from .draws import assessment_jitter, categories, uniform_int
from .drugs import CODE as C
from .drugs import FIXED_DOSE_HP
from .plan import NONE_DAY
from .schedules import (CYCLE, DOSE_LO, IS_MAB, IS_TAXANE, LOAD, P_WEEKLY, REG_HAS_ENDO, REG_HAS_H_AND_P,
                        REG_HAS_TAXANE_IND, REG_PROD, REG_ROLE, draw_dose)


def first_assessment_on_or_after(seed, gid, line, start, target, q):
    """Day of the first scheduled assessment (start + k·q + jitter, k ≥ 1) on or after target."""
    k0 = np.maximum(1, np.ceil((target - start - PR.ASSESSMENT_JITTER) / q).astype(np.int64))
    out = np.full(len(gid), NONE_DAY, dtype=np.int64)
    todo = np.ones(len(gid), dtype=bool)
    for step in range(4):
        k = k0 + step
        d = start + k * q + assessment_jitter(seed, gid, line, k)
        hit = todo & (d >= target)
        out[hit] = d[hit]
        todo &= ~hit
    return out


def regimen_streams(J, rng, rows, reg, new_set, S, stop, hr_pos, age, year_of):
    """Streams of advanced lines from their regimens."""
    m = len(rows)
    n_ind = np.array(PR.TAXANE_CYCLES)[rng.integers(0, len(PR.TAXANE_CYCLES), m)]
    ind_end = np.full(m, -1, dtype=np.int64)
    fdc = (year_of >= 2023) & REG_HAS_H_AND_P[reg] & (rng.random(m) < PR.P_FIXED_DOSE_HP)
    mab_offset = np.where(rng.random(m) < 0.5, 0, 1)
    for r in np.unique(reg):
        sel = np.flatnonzero(reg == r)
        prods, roles = REG_PROD[r], REG_ROLE[r]
        for j, (p, role) in enumerate(zip(prods, roles)):
            # offset 0 for the drugs that open the line, 1-4 days for drugs carried over
            if new_set[sel[0]] is None:
                off = np.where(IS_MAB[p], mab_offset[sel], 0) if j > 0 else np.zeros(len(sel), dtype=np.int64)
            else:
                is_new = np.array([p in new_set[i] for i in sel])
                off = np.where(is_new, 0, rng.integers(1, 5, len(sel)))
            first = S[sel] + off
            weekly = IS_TAXANE[p] & (rng.random(len(sel)) < P_WEEKLY[p]) & (role == "ind")
            cycle = np.where(weekly, 7, CYCLE[p])
            if role == "ind":
                count = np.where(weekly, 3 * n_ind[sel], n_ind[sel])
                ind_end[sel] = np.maximum(ind_end[sel], first + (count - 1) * cycle)
            else:
                count = np.full(len(sel), -1)
            dose = draw_dose(rng, np.full(len(sel), p), weekly)
            f = fdc[sel] & np.isin(p, [C["trastuzumab"], C["pertuzumab"]])
            if f.any():
                # HP maintenance switches to the fixed-dose product when the taxane stops
                count = np.where(f, n_ind[sel], count)
            J.add_stream(rows[sel], p, first, count, cycle=cycle, dose=dose, load=bool(LOAD[p] > 0),
                         weekly=weekly, end=stop[sel])
        f = fdc[sel]
        if f.any():
            h_first = S[sel] + mab_offset[sel]
            J.add_stream(rows[sel][f], C[FIXED_DOSE_HP], h_first[f] + n_ind[sel][f] * 21, -1,
                         dose=np.full(f.sum(), 1200.0), end=stop[sel][f])
    # endocrine maintenance after the taxane for HR+ patients
    add = hr_pos & REG_HAS_TAXANE_IND[reg] & ~REG_HAS_ENDO[reg] & (rng.random(m) < PR.P_ENDOCRINE_MAINTENANCE)
    add &= ind_end > 0
    if add.any():
        pre = age < 50
        choice = np.where(pre, C["tamoxifen"], np.array([C["letrozole"], C["anastrozole"], C["exemestane"]])[
            categories(rng, m, [0.5, 0.35, 0.15])])
        first = ind_end + uniform_int(rng, 7, 28, m)
        sel = np.flatnonzero(add & (first < stop))
        J.add_stream(rows[sel], choice[sel], first[sel], -1, dose=DOSE_LO[choice[sel]], end=stop[sel])
