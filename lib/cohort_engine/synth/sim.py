"""The clean simulation of one chunk of patients (numpy, vectorised).

`simulate(plan, chunk)` draws the population, the natural history, the treatment
journeys and the outcomes, and expands every line into its administrations. Its
result carries everything the tables and the truth are written from; nothing in
it depends on which table is being written, so every table re-simulates the
chunk and gets the same patients.

Lines are drawn so that the study rules find exactly them on the clean extract:
each component of a regimen starts within 4 days of the line start; a next line
always begins with a drug that is new to the previous regimen (not a substitute,
not endocrine), and any drug carried over starts 1-4 days later; the previous
line's administrations stop before it; gaps within a line stay ≤ 35 days except
adjuvant endocrine dispensing (≤ 91 days); early-setting administrations end at
least 45 days before the advanced date. Every administration belongs to exactly
one line, so the truth lines are read off the simulation's own bookkeeping
(journeys.py). The lines themselves are drawn by early_lines.py and advanced_lines.py,
supportive care by supportive.py and the toxicity plan by toxicity.py; this module
fixes the order of the draws, on which every table's content depends.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from . import params as PR
from . import regimens as RG
from .advanced_lines import first_assessment_on_or_after, regimen_streams
from .confounding import TaxaneChoice, choose_taxane, first_line_weights, with_progression
from .draws import YEAR, calendar_year, categories, sample_rows, uniform_int, weibull_days
from .early_lines import early_breast_lines, early_other_lines
from .hospitals import hospitals, line_hospital, pick_hospital
from .journeys import Journeys
from .plan import NONE_DAY, STREAM_CONFOUNDING, STREAM_CORE, Plan, day
from .schedules import (FAMILIES, G_HER2, G_NOHER2_NEG, G_NOHER2_POS, IS_ANTI_HER2, LATER_W, NEW_DRUG,
                        REG_FAM, VALID_NEXT)
from .supportive import supportive_care
from .toxicity import toxicity_plans


@dataclasses.dataclass
class Sim:
    plan: Plan
    chunk: int
    gid: np.ndarray
    n: int
    # patient
    sex: np.ndarray          # 0 F, 1 M, 2 U
    birth: np.ndarray
    cancer: np.ndarray
    dx: np.ndarray
    province: np.ndarray
    hospital: np.ndarray
    height: np.ndarray
    weight: np.ndarray
    breast: np.ndarray
    her2: np.ndarray         # biological (breast only)
    hr: np.ndarray
    stage: np.ndarray        # 0 I, 1 II, 2 III, 3 IV (breast); other cancers: 3 if metastatic else 1
    her2_plan: np.ndarray    # index into HER2 plan names
    her2_recorded: np.ndarray  # 0 negative, 1 positive, 2 unknown
    er_pos: np.ndarray
    pr_pos: np.ndarray
    hr_recorded: np.ndarray  # 0 negative, 1 positive, 2 unknown
    adv: np.ndarray          # advanced date (NONE_DAY when none by the cutoff)
    de_novo: np.ndarray
    stage_iv_recorded: np.ndarray
    sites: dict              # site -> bool array, present at the advanced date
    new_brain: np.ndarray    # brain metastasis recorded at first progression
    rebiopsy: np.ndarray     # day of a HER2 re-test at recurrence, NONE_DAY if none
    death: np.ndarray        # true death day (may be after cutoff)
    cancer_death: np.ndarray
    record_end: np.ndarray   # last day with records (≤ cutoff)
    assessed: np.ndarray
    assess_q: np.ndarray
    baseline_assess: np.ndarray  # day or NONE_DAY
    progression: np.ndarray  # true first-line progression day, NONE_DAY if none before death
    pd_detect: np.ndarray    # first-line progression detection (PD assessment) day or NONE_DAY
    prior_anti_her2: np.ndarray
    # lines (planned; one row per line)
    ln_pat: np.ndarray
    ln_setting: np.ndarray   # 0 early, 1 advanced
    ln_order: np.ndarray     # planned number within the setting
    ln_start: np.ndarray
    ln_stop: np.ndarray      # administrations are < stop
    ln_reg: np.ndarray       # regimen index (-1: early protocol line)
    ln_fam: np.ndarray
    ln_prog: np.ndarray      # true progression day of the line, NONE_DAY if none
    ln_detect: np.ndarray    # day the progression is documented
    ln_hospital: np.ndarray
    ln_responder: np.ndarray
    # administrations (counting and supportive)
    ad_pat: np.ndarray
    ad_line: np.ndarray      # line row, -1 for supportive
    ad_prod: np.ndarray
    ad_date: np.ndarray
    ad_k: np.ndarray         # cycle number within its stream
    ad_stream: np.ndarray
    ad_dose: np.ndarray      # dose value (per m2 / per kg / flat, by product's kind)
    st_weekly: np.ndarray
    # toxicity plans
    neut_admin: np.ndarray   # administration row carrying a grade ≥3 ANC nadir (taxane), per event
    lvef_decline: np.ndarray  # per patient: 0 none, 2 grade 2, 3 grade 3
    lvef_day: np.ndarray
    plt_g3: np.ndarray
    alt_rise: np.ndarray     # 0 none, 1 grade 1-2, 3 grade 3
    # the confounded taxane choice and its potential outcomes (None without the switch)
    taxane_choice: TaxaneChoice | None = None


def simulate(plan: Plan, chunk: int) -> Sim:
    rng = plan.rng(chunk, STREAM_CORE)
    lo, hi = plan.bounds(chunk)
    n = hi - lo
    gid = np.arange(lo, hi, dtype=np.int64)
    cutoff = plan.cutoff_day
    hosp = hospitals(plan.seed)

    # -- population ------------------------------------------------------------------------
    shares = np.array([c[1] for c in PR.CANCERS])
    cancer = categories(rng, n, shares)
    breast = cancer == PR.BREAST
    female = rng.random(n) < np.array([c[2] for c in PR.CANCERS])[cancer]
    sex = np.where(female, 0, 1)
    sex = np.where((~breast) & (rng.random(n) < 0.001), 2, sex)
    age_dx = np.clip(rng.normal(np.array([c[3] for c in PR.CANCERS])[cancer],
                                np.array([c[4] for c in PR.CANCERS])[cancer]), PR.AGE_MIN, PR.AGE_MAX)
    start = day(PR.DX_START)
    span = cutoff - 30 - start
    u = rng.random(n)
    a = PR.DX_GROWTH
    t = (-1 + np.sqrt(1 + 2 * a * u * (1 + a / 2))) / a   # inverse CDF of density ∝ 1 + a t
    dx = start + np.floor(t * span).astype(np.int64)
    birth = dx - np.floor(age_dx * YEAR).astype(np.int64)
    province = categories(rng, n, [w for _, w in PR.PROVINCES])
    treat_prov = np.where(rng.random(n) < PR.P_OTHER_PROVINCE, categories(rng, n, [w for _, w in PR.PROVINCES]),
                          province)
    hospital = pick_hospital(rng, hosp, treat_prov)
    height = np.where(sex == 1, rng.normal(170, 6, n), rng.normal(158, 6, n)).round(0)
    weight = np.clip(np.where(sex == 1, rng.normal(70, 10, n), rng.normal(60, 9, n)), 38, 115).round(1)

    # -- breast cancer biology -----------------------------------------------------------------
    her2 = breast & (rng.random(n) < PR.P_HER2_POSITIVE)
    hr = rng.random(n) < np.where(her2, PR.P_HR_POS_HER2POS, PR.P_HR_POS_HER2NEG)
    hr &= breast
    de_novo_draw = rng.random(n) < PR.P_DE_NOVO
    early_stage = categories(rng, n, [w for _, w in PR.EARLY_STAGES])
    stage = np.where(breast & de_novo_draw, 3, early_stage)
    met_other = (~breast) & (rng.random(n) < np.nan_to_num(
        np.array([c[6] if c[6] is not None else 0 for c in PR.CANCERS], dtype=float)[cancer]))
    stage = np.where(breast, stage, np.where(met_other, 3, 1))
    year_dx = calendar_year(dx)
    access_early = her2 & (rng.random(n) < PR.p_anti_her2_access(year_dx))

    plans_pos = [p for p, _ in PR.HER2_PLANS_POS]
    plans_neg = [p for p, _ in PR.HER2_PLANS_NEG]
    plan_names = list(dict.fromkeys(plans_pos + plans_neg))
    pos_pick = np.array([plan_names.index(p) for p in plans_pos])[
        categories(rng, n, [w for _, w in PR.HER2_PLANS_POS])]
    neg_pick = np.array([plan_names.index(p) for p in plans_neg])[
        categories(rng, n, [w for _, w in PR.HER2_PLANS_NEG])]
    her2_plan = np.where(her2, pos_pick, neg_pick)
    her2_plan = np.where(breast, her2_plan, plan_names.index("none"))
    plan_status = {"ihc3": 1, "ihc2_ish_pos": 1, "ihc2_only": 2, "none": 2, "ihc0": 0, "ihc1": 0,
                   "ihc2_ish_neg": 0}
    her2_recorded = np.array([plan_status[p] for p in plan_names])[her2_plan]
    er_missing = breast & (rng.random(n) < PR.P_ER_PR_MISSING)
    # ER and PR as recorded: an HR+ tumour has ER+ (90%) and/or PR+; HR- has both negative.
    er_pos = hr & (rng.random(n) < 0.90)
    pr_pos = hr & (~er_pos | (rng.random(n) < 0.75))
    hr_recorded = np.where(er_missing | ~breast, 2, np.where(er_pos | pr_pos, 1, 0))

    # -- background mortality ---------------------------------------------------------------------
    rate = PR.BACKGROUND_RATE_50 * 2.0 ** ((age_dx - 50.0) / PR.BACKGROUND_DOUBLING_YEARS)
    death = dx + np.floor(rng.exponential(1.0 / rate) * YEAR).astype(np.int64) + 1
    death = np.minimum(death, birth + int(105 * YEAR))   # nobody lives past 105
    cancer_death = np.zeros(n, dtype=bool)

    # -- advanced disease -------------------------------------------------------------------------
    hazard = np.array([PR.RECURRENCE_HAZARD[s] for s in ("I", "II", "III")])[np.minimum(early_stage, 2)]
    hazard = hazard * np.where(her2 & ~access_early, PR.RECURRENCE_HR_HER2_NO_ANTIHER2, 1.0)
    t_rec = PR.RECURRENCE_MIN_DAYS + np.floor(rng.exponential(1.0 / hazard) * YEAR).astype(np.int64)
    stage_iv_recorded = breast & (stage == 3) & (rng.random(n) < PR.P_DE_NOVO_STAGE_RECORDED)
    adv_de_novo = np.where(stage_iv_recorded, dx, dx + uniform_int(rng, 3, 40, n))
    adv_other = dx + uniform_int(rng, 0, 10, n)
    adv = np.where(breast, np.where(stage == 3, adv_de_novo, dx + t_rec), np.where(met_other, adv_other, NONE_DAY))
    adv = np.where((adv <= cutoff) & (adv < death), adv, NONE_DAY)
    has_adv = adv < NONE_DAY
    de_novo = has_adv & breast & (stage == 3)
    site_draw = {s: rng.random(n) < p for s, p in PR.P_SITE.items()}
    no_site = ~(site_draw["bone"] | site_draw["lung"] | site_draw["liver"] | site_draw["brain"])
    site_draw["bone"] |= no_site
    sites = {s: has_adv & v for s, v in site_draw.items()}
    new_brain = has_adv & breast & ~sites["brain"] & (rng.random(n) < PR.P_NEW_BRAIN_AT_PROGRESSION)
    rebiopsy = np.where(has_adv & breast & ~de_novo & (rng.random(n) < PR.P_REBIOPSY_AT_RECURRENCE),
                        adv - uniform_int(rng, 0, 20, n), NONE_DAY)

    # -- follow-up ------------------------------------------------------------------------------
    lost = rng.random(n) < PR.P_LOST_TO_FOLLOW_UP
    lost_day = dx + np.floor(rng.random(n) * np.maximum(cutoff - dx, 1)).astype(np.int64)
    assessed = rng.random(n) < PR.P_ASSESSED
    assess_q = np.array(PR.ASSESSMENT_INTERVALS)[categories(rng, n, [1] * len(PR.ASSESSMENT_INTERVALS))]

    # -- journeys ----------------------------------------------------------------------------------
    J = Journeys()
    early_breast_lines(J, rng, breast & ~de_novo, dx, hr, access_early, age_dx, adv, year_dx)
    early_other_lines(J, rng, (~breast) & ~met_other, dx, cancer)

    # advanced: first line
    untreated = rng.random(n) < np.where(breast, 0.08, 1.0 - np.nan_to_num(np.array(
        [c[7] if c[7] is not None else 1.0 for c in PR.CANCERS], dtype=float)[cancer]))
    s1 = np.where(breast, adv + uniform_int(rng, -20, 45, n), adv + uniform_int(rng, 7, 40, n))
    s1 = np.where(breast & de_novo, np.maximum(s1, dx + 3), s1)
    year1 = calendar_year(np.where(has_adv, s1, dx))
    access = her2 & (rng.random(n) < PR.p_anti_her2_access(year1))
    group = np.where(breast, np.where(access, G_HER2, np.where(hr, G_NOHER2_POS, G_NOHER2_NEG)),
                     2 + cancer)
    era = RG.era_of_year(year1)
    reg1 = sample_rows(rng, first_line_weights(group, era, plan.confounded_taxane))
    choice = None
    if plan.confounded_taxane:
        choice = choose_taxane(plan.rng(chunk, STREAM_CONFOUNDING), breast & has_adv & (group == G_HER2), reg1,
                               birth, s1, sites["lung"] | sites["liver"], sites["brain"], de_novo, year1, era)
        reg1 = choice.regimen

    # survival: copula between first-line PFS and OS, AFT covariate multipliers
    fam = REG_FAM[reg1]
    z = rng.multivariate_normal([0, 0], [[1, PR.PFS_OS_CORRELATION], [PR.PFS_OS_CORRELATION, 1]], size=n)
    u_pfs, u_os = stats.norm.cdf(z[:, 0]), stats.norm.cdf(z[:, 1])
    surv = np.array([PR.FIRST_LINE_SURVIVAL[f] for f in FAMILIES])
    pfs_med, pfs_k, os_med, os_k = (surv[fam, i] for i in range(4))
    aft = np.ones(n)
    aft *= np.where(sites["brain"], PR.SURVIVAL_AFT["brain"], 1.0)
    aft *= np.where(sites["lung"] | sites["liver"], PR.SURVIVAL_AFT["visceral"], 1.0)
    aft *= np.where(hr & breast, PR.SURVIVAL_AFT["hr_positive"], 1.0)
    aft *= np.where(de_novo, PR.SURVIVAL_AFT["de_novo"], 1.0)
    aft *= np.where(age_dx >= 65, PR.SURVIVAL_AFT["age65"], 1.0)
    other_pfs = PR.NON_BREAST_PFS
    os_med_other = np.nan_to_num(np.array([c[8] if c[8] is not None else 12 for c in PR.CANCERS],
                                          dtype=float)[cancer])
    pfs_med = np.where(breast, pfs_med, other_pfs[0])
    pfs_k = np.where(breast, pfs_k, other_pfs[1])
    os_med = np.where(breast, os_med, os_med_other)
    os_k = np.where(breast, os_k, 1.2)
    pfs1 = weibull_days(u_pfs, pfs_med * aft, pfs_k)
    if choice is not None:
        pfs1 = with_progression(choice, u_pfs, pfs_med * aft, pfs_k, pfs1)
    os1 = weibull_days(u_os, os_med * aft, os_k)
    treated1 = has_adv & ~untreated & (reg1 >= 0) & (s1 <= cutoff)
    os_untreated = weibull_days(rng.random(n), np.full(n, PR.UNTREATED_ADVANCED_OS[0]) * aft,
                                PR.UNTREATED_ADVANCED_OS[1])
    cancer_os_day = np.where(treated1, s1 + os1, adv + os_untreated)
    cancer_death = has_adv & (cancer_os_day < death)
    death = np.where(cancer_death, cancer_os_day, death)
    # non-metastatic other cancers: a share is not cured
    cured_share = np.nan_to_num(np.array([c[9] if c[9] is not None else 1 for c in PR.CANCERS],
                                         dtype=float)[cancer])
    not_cured = (~breast) & ~met_other & (rng.random(n) >= cured_share)
    other_os = dx + weibull_days(rng.random(n), np.full(n, PR.NON_CURED_OS[0]), PR.NON_CURED_OS[1])
    oc = not_cured & (other_os < death)
    cancer_death |= oc
    death = np.where(oc, other_os, death)
    # a patient lost around the advanced date is kept until its metastasis records (A + 10 days), so
    # that recorded advanced dates and settings agree with the lines drawn
    near = lost & (lost_day >= adv - 60) & (lost_day <= adv + 10)
    lost_day = np.where(near, adv + 11, lost_day)
    record_end = np.minimum(np.minimum(death - 1, cutoff), np.where(lost, lost_day, cutoff))
    # last day a drug is given: some days to weeks before death
    last_treat = np.minimum(record_end, death - uniform_int(rng, 5, 40, n))

    # advanced lines
    progression = np.full(n, NONE_DAY, dtype=np.int64)
    pd_detect = np.full(n, NONE_DAY, dtype=np.int64)
    line_no = np.zeros(n, dtype=np.int64)
    cur_start = np.where(treated1 & (s1 <= last_treat), s1, NONE_DAY)
    cur_reg = reg1
    prev_reg = np.full(n, -1)
    cur_pfs = pfs1
    max_lines = np.where(breast, PR.MAX_ADVANCED_LINES, 2)
    stop_early = rng.random(n) < PR.P_STOP_WITHOUT_PROGRESSION
    stop_early_day = uniform_int(rng, 180, 540, n)
    baseline_assess = np.where(assessed & breast & (cur_start < NONE_DAY)
                               & (rng.random(n) < PR.P_BASELINE_ASSESSMENT),
                               cur_start + uniform_int(rng, -21, 14, n), NONE_DAY)
    baseline_assess = np.where(baseline_assess <= record_end, baseline_assess, NONE_DAY)
    for L in range(PR.MAX_ADVANCED_LINES):
        active = cur_start < NONE_DAY
        if not active.any():
            break
        idx = np.flatnonzero(active)
        S = cur_start[idx]
        T = S + cur_pfs[idx]
        progressed = T < death[idx]
        # documented progression: first scheduled assessment on/after T (assessed breast patients)
        doc_by_scan = assessed[idx] & breast[idx]
        detect = np.where(doc_by_scan, first_assessment_on_or_after(plan.seed, gid[idx], L, S, T,
                                                                    assess_q[idx]), T)
        detect = np.where(progressed, detect, NONE_DAY)
        stop = np.minimum(detect, last_treat[idx] + 1)
        if L == 0:
            stop = np.where(stop_early[idx], np.minimum(stop, S + stop_early_day[idx]), stop)
            progression[idx] = np.where(progressed, T, NONE_DAY)
            pd_detect[idx] = np.where(progressed & doc_by_scan & (detect <= record_end[idx]), detect, NONE_DAY)
        responder = rng.random(len(idx)) < np.array([PR.ORR[f] for f in FAMILIES])[REG_FAM[cur_reg[idx]]]
        rows = J.add_lines(idx, setting=1, order=L + 1, start=S, stop=stop, reg=cur_reg[idx],
                           prog=np.where(progressed, T, NONE_DAY), detect=detect,
                           hospital=line_hospital(rng, hosp, hospital[idx], treat_prov[idx]),
                           responder=responder)
        new_set = [NEW_DRUG.get((p, r), frozenset()) if p >= 0 else None
                   for p, r in zip(prev_reg[idx], cur_reg[idx])]
        regimen_streams(J, rng, rows, cur_reg[idx], new_set, S, stop, hr[idx] & breast[idx],
                        age_dx[idx], year_of=calendar_year(S))
        line_no[idx] = L + 1
        # next line
        nxt = progressed & (detect <= record_end[idx]) & (L + 1 < max_lines[idx])
        nxt &= rng.random(len(idx)) < PR.P_NEXT_LINE[min(L, len(PR.P_NEXT_LINE) - 1)]
        s_next = np.maximum(detect + uniform_int(rng, *PR.NEXT_LINE_DELAY_DAYS, len(idx)),
                            S + PR.MIN_LINE_DAYS)
        nxt &= (s_next < death[idx] - 14) & (s_next <= last_treat[idx])
        g = group[idx]
        w = LATER_W[g, RG.era_of_year(calendar_year(s_next))] * VALID_NEXT[cur_reg[idx]]
        reg_next = sample_rows(rng, w)
        nxt &= reg_next >= 0
        fam_next = REG_FAM[np.maximum(reg_next, 0)]
        later_med = np.array([PR.LATER_LINE_PFS[f] for f in FAMILIES])[fam_next]
        pfs_next = weibull_days(rng.random(len(idx)), later_med * aft[idx], PR.LATER_LINE_SHAPE)
        new_start = np.full(n, NONE_DAY, dtype=np.int64)
        new_start[idx] = np.where(nxt, s_next, NONE_DAY)
        prev_reg = cur_reg.copy()
        cur_reg = cur_reg.copy()
        cur_reg[idx] = np.where(nxt, reg_next, cur_reg[idx])
        cur_pfs = cur_pfs.copy()
        cur_pfs[idx] = pfs_next
        cur_start = new_start

    # supportive care beside the counting drugs, and bone-targeted agents for bone metastases
    J.finish(rng, record_end)
    supportive_care(J, rng, n, sites["bone"] & breast, adv, last_treat)
    J.finish_supportive(rng, record_end)

    prior_anti_her2 = np.zeros(n, dtype=bool)
    early_rows = J.ad_line >= 0
    early_rows &= J.ln_setting_arr()[np.maximum(J.ad_line, 0)] == 0
    prior_anti_her2[np.unique(J.ad_pat[early_rows & IS_ANTI_HER2[J.ad_prod]])] = True

    tox = toxicity_plans(rng, n, J)
    ln = J.lines()
    ln["ln_hospital"] = np.where(ln["ln_hospital"] >= 0, ln["ln_hospital"], hospital[ln["ln_pat"]])
    return Sim(plan=plan, chunk=chunk, gid=gid, n=n, sex=sex, birth=birth, cancer=cancer, dx=dx,
               province=province, hospital=hospital, height=height, weight=weight, breast=breast,
               her2=her2, hr=hr, stage=stage, her2_plan=her2_plan, her2_recorded=her2_recorded,
               er_pos=er_pos, pr_pos=pr_pos, hr_recorded=hr_recorded, adv=adv, de_novo=de_novo,
               stage_iv_recorded=stage_iv_recorded, sites=sites, new_brain=new_brain, rebiopsy=rebiopsy,
               death=death, cancer_death=cancer_death, record_end=record_end, assessed=assessed,
               assess_q=assess_q, baseline_assess=baseline_assess, progression=progression,
               pd_detect=pd_detect, prior_anti_her2=prior_anti_her2, **ln,
               ad_pat=J.ad_pat, ad_line=J.ad_line, ad_prod=J.ad_prod, ad_date=J.ad_date, ad_k=J.ad_k,
               ad_stream=J.ad_stream, ad_dose=J.ad_dose, st_weekly=J.st_weekly_arr, **tox,
               taxane_choice=choice)


HER2_PLAN_NAMES = tuple(dict.fromkeys([p for p, _ in PR.HER2_PLANS_POS] + [p for p, _ in PR.HER2_PLANS_NEG]))
