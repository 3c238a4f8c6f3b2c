"""Ground truth of a chunk, read off the simulation's own bookkeeping.

Lines: every counting administration was drawn for one line, so a line's start,
last administration, regimen (ingredients given in its first 28 days) and
administration days come from the administrations that line owns; no rule of
the engine is re-implemented. Patients: what the simulation intended (true HER2,
advanced date, index line, cohort membership) and the true event dates.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from .drugs import CODE, FIXED_DOSE_HP, FIXED_DOSE_HP_INGREDIENTS, INGREDIENTS, PRODUCTS
from .advanced_lines import first_assessment_on_or_after
from .draws import age_years
from .plan import NONE_DAY, day
from .schedules import COUNTS
from .sim import Sim

INGREDIENT_NAMES = tuple(INGREDIENTS)
ING_INDEX = {name: i for i, name in enumerate(INGREDIENT_NAMES)}
MAB = ("trastuzumab", "pertuzumab", "inetetumab")
TKI = ("pyrotinib", "lapatinib", "neratinib", "tucatinib")
TAXANES = tuple(name for name, (drug_class, *_) in INGREDIENTS.items() if drug_class == "taxane")
HORIZON_DAYS = 1826   # study rules §5: a longer time is cut to 1826 days and censored
REGIMEN_WINDOW = 28
STUDY_START = day(dt.date(2013, 1, 1))


def counting_exposures(sim: Sim):
    """(patient, line row, ingredient index, date) of every counting administration; the
    fixed-dose product gives one exposure per ingredient."""
    m = (sim.ad_line >= 0) & COUNTS[sim.ad_prod]
    pat, line, prod, date = sim.ad_pat[m], sim.ad_line[m], sim.ad_prod[m], sim.ad_date[m]
    ing = np.array([ING_INDEX.get(p, -1) for p in PRODUCTS])[prod]
    fdc = prod == CODE[FIXED_DOSE_HP]
    extra = [(pat[fdc], line[fdc], np.full(fdc.sum(), ING_INDEX[name]), date[fdc])
             for name in FIXED_DOSE_HP_INGREDIENTS]
    ing = np.where(fdc, ING_INDEX[FIXED_DOSE_HP_INGREDIENTS[0]], ing)
    keep = ~fdc
    parts = [(pat[keep], line[keep], ing[keep], date[keep])] + extra
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def lines(sim: Sim) -> dict:
    """One row per line that has at least one administration in the extract."""
    pat, line, ing, date = counting_exposures(sim)
    if len(line) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return {"pat": empty, "line_row": empty, "setting": empty, "line_number": empty, "start": empty,
                "last": empty, "regimen": np.zeros(0, dtype=object), "n_admin_days": empty}
    n_lines = len(sim.ln_pat)
    start = np.full(n_lines, NONE_DAY, dtype=np.int64)
    last = np.full(n_lines, -1, dtype=np.int64)
    np.minimum.at(start, line, date)
    np.maximum.at(last, line, date)
    present = last >= 0
    in_window = date <= start[line] + REGIMEN_WINDOW
    mask = np.zeros((n_lines, len(INGREDIENT_NAMES)), dtype=bool)
    mask[line[in_window], ing[in_window]] = True
    days = np.unique(line.astype(np.int64) * 1_000_000 + date)
    n_days = np.bincount((days // 1_000_000).astype(np.int64), minlength=n_lines)
    rows = np.flatnonzero(present)
    # numbering within patient and setting by start date
    order = np.lexsort((start[rows], sim.ln_setting[rows], sim.ln_pat[rows]))
    rows = rows[order]
    key = sim.ln_pat[rows].astype(np.int64) * 2 + sim.ln_setting[rows]
    new_group = np.ones(len(rows), dtype=bool)
    new_group[1:] = key[1:] != key[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(len(rows)), 0))
    number = np.arange(len(rows)) - group_start + 1
    names = np.array(INGREDIENT_NAMES, dtype=object)
    packed = np.packbits(mask[rows], axis=1)
    uniq, inverse = np.unique(packed, axis=0, return_inverse=True)
    uniq_names = np.array(["+".join(sorted(names[np.unpackbits(u)[:len(names)].astype(bool)]))
                           for u in uniq], dtype=object)
    return {"pat": sim.ln_pat[rows], "line_row": rows, "setting": sim.ln_setting[rows],
            "line_number": number, "start": start[rows], "last": last[rows],
            "regimen": uniq_names[inverse.ravel()], "n_admin_days": n_days[rows]}


def anti_her2_label(regimen: str) -> str:
    parts = set(regimen.split("+"))
    label = "".join(letter for name, letter in (("trastuzumab", "H"), ("pertuzumab", "P"),
                                                  ("inetetumab", "I")) if name in parts)
    if parts & set(TKI):
        label += "+TKI"
    return label


def patients(sim: Sim, tl: dict | None = None) -> dict:
    tl = lines(sim) if tl is None else tl
    n = sim.n
    index_row = np.full(n, -1, dtype=np.int64)
    first_adv = (tl["setting"] == 1) & (tl["line_number"] == 1)
    index_row[tl["pat"][first_adv]] = np.flatnonzero(first_adv)
    second_adv = (tl["setting"] == 1) & (tl["line_number"] == 2)
    next_line = np.full(n, NONE_DAY, dtype=np.int64)
    next_line[tl["pat"][second_adv]] = tl["start"][second_adv]
    has_index = index_row >= 0
    index_date = np.where(has_index, tl["start"][np.maximum(index_row, 0)], NONE_DAY)
    regimen = np.where(has_index, tl["regimen"][np.maximum(index_row, 0)], None)
    has_pl = np.array([r is not None and "paclitaxel liposome" in r.split("+") for r in regimen])
    has_mab = np.array([r is not None and bool(set(r.split("+")) & set(MAB)) for r in regimen])
    has_taxane = np.array([r is not None and bool(set(r.split("+")) & set(TAXANES)) for r in regimen])
    label = np.array([anti_her2_label(r) if r is not None else None for r in regimen], dtype=object)
    age = np.where(has_index, age_years(sim.birth, np.where(has_index, index_date, sim.dx)), -1)
    cutoff = sim.plan.cutoff_day
    has_adv = (sim.adv < NONE_DAY) & (sim.adv <= sim.record_end)
    eligible = (sim.breast & (sim.her2_recorded == 1) & has_adv & has_index & has_mab
                & (age >= 18) & (index_date >= STUDY_START) & (index_date <= cutoff)
                & (sim.death > index_date))
    visceral = sim.sites["lung"] | sim.sites["liver"]
    brain = sim.sites["brain"]
    bone_only = sim.sites["bone"] & ~visceral & ~brain
    # neutropenia of grade ≥3 on the index line
    neut_lines = sim.ad_line[sim.neut_admin]
    line_to_truth = np.full(len(sim.ln_pat), -1, dtype=np.int64)
    line_to_truth[tl["line_row"]] = np.arange(len(tl["line_row"]))
    t_rows = line_to_truth[neut_lines]
    nadir = nadir_day(sim, sim.neut_admin)
    on_index = (t_rows >= 0) & (nadir <= sim.record_end[sim.ad_pat[sim.neut_admin]])
    on_index &= np.isin(t_rows, index_row[has_index])
    anc_g3 = np.zeros(n, dtype=bool)
    anc_g3[sim.ad_pat[sim.neut_admin][on_index]] = True
    return {
        "index_row": index_row, "index_date": index_date, "index_regimen": regimen, "anti_her2": label,
        "age_at_index": age, "intended": eligible & has_pl,
        "in_taxane_arms": eligible & has_taxane, "visceral": visceral & has_adv, "brain": brain & has_adv,
        "bone_only": bone_only & has_adv, "next_line": next_line, "anc_g3_index_line": anc_g3,
    }


def nadir_day(sim: Sim, admin_rows: np.ndarray) -> np.ndarray:
    """Day of the nadir blood count after a taxane administration (7-12 days later)."""
    return sim.ad_date[admin_rows] + 7 + (admin_rows % 6)


def potential_outcomes(sim: Sim, tp: dict) -> dict:
    """Both potential outcomes of every patient of the two-arm cohort under the confounded taxane
    choice (sim.taxane_choice), from the index date (the first advanced line's start).

    Per arm: the true first-line progression day and the day the assessment schedule documents it
    (the first scheduled assessment on or after it, drawn for every patient: whether a patient is
    assessed is drawn independently of everything else), both only when before death; the
    endpoints `ttp` (documented progression; censored at death), `pfs` (documented progression or
    death) and `os` (death, the same under both arms), each censored at the cut-off and at
    HORIZON_DAYS after the index date; grade ≥ 3 hypersensitivity at the first taxane dose.
    """
    choice = sim.taxane_choice
    rows = np.flatnonzero(choice.population & tp["in_taxane_arms"])
    start = tp["index_date"][rows]
    death = sim.death[rows]
    end = np.minimum(sim.plan.cutoff_day, start + HORIZON_DAYS)
    os_event = death <= end
    out = {"pat": rows, "index_date": start, "death": death, "os_days": np.minimum(death, end) - start,
           "os_event": os_event}
    for arm, pfs in (("liposome", choice.pfs_liposome), ("conventional", choice.pfs_conventional)):
        progression = start + pfs[rows]
        before_death = progression < death
        documented = first_assessment_on_or_after(sim.plan.seed, sim.gid[rows], 0, start, progression,
                                                  sim.assess_q[rows])
        documented = np.where(before_death & (documented < death), documented, NONE_DAY)
        ttp_event = documented <= end
        first_event = np.minimum(documented, death)
        out.update({
            f"progression_{arm}": np.where(before_death, progression, NONE_DAY),
            f"pd_documented_{arm}": documented,
            f"ttp_days_{arm}": np.where(ttp_event, documented, np.minimum(death, end)) - start,
            f"ttp_event_{arm}": ttp_event,
            f"pfs_days_{arm}": np.minimum(first_event, end) - start,
            f"pfs_event_{arm}": first_event <= end,
            f"hypersensitivity_g3_{arm}": getattr(choice, f"hypersensitivity_{arm}")[rows],
        })
    return out
