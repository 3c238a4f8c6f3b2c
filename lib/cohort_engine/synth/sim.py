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
one line, so the truth lines are read off the simulation's own bookkeeping.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from . import params as PR
from . import regimens as RG
from .drugs import CODE, FIXED_DOSE_HP, INGREDIENTS, PRODUCTS
from .plan import NONE_DAY, STREAM_CORE, Plan, day

YEAR = 365.25
N_PROD = len(PRODUCTS)
PROD_CLASS = np.array([INGREDIENTS[p][0] if p in INGREDIENTS else "anti_her2_mab" for p in PRODUCTS])
COUNTS = PROD_CLASS != "supportive"
IS_TAXANE = PROD_CLASS == "taxane"
IS_MAB = np.isin(PRODUCTS, ["trastuzumab", "pertuzumab", "inetetumab", FIXED_DOSE_HP])
IS_ANTI_HER2 = IS_MAB | np.isin(PROD_CLASS, ["anti_her2_tki", "anti_her2_adc"])
IS_CHEMO_DAY = np.isin(PROD_CLASS, ["taxane", "chemo_other", "anti_her2_adc"])
C = CODE

# -- schedules and doses per product --------------------------------------------------------
# cycle days, d1/d8 pattern, dose kind (m2 | kg | flat), maintenance dose, loading dose
SCHEDULE = {
    "paclitaxel liposome": (21, 0, "m2", (135, 175), None), "paclitaxel": (21, 0, "m2", (175, 175), None),
    "nab-paclitaxel": (21, 0, "m2", (260, 260), None), "docetaxel": (21, 0, "m2", (60, 75), None),
    "trastuzumab": (21, 0, "kg", (6, 6), 8), "pertuzumab": (21, 0, "flat", (420, 420), 840),
    "inetetumab": (7, 0, "kg", (2, 2), 4), "pyrotinib": (28, 0, "flat", (320, 400), None),
    "lapatinib": (28, 0, "flat", (1250, 1250), None), "neratinib": (28, 0, "flat", (240, 240), None),
    "trastuzumab emtansine": (21, 0, "kg", (3.6, 3.6), None),
    "trastuzumab deruxtecan": (21, 0, "kg", (5.4, 5.4), None),
    "capecitabine": (21, 0, "m2", (1000, 1000), None), "vinorelbine": (21, 1, "m2", (25, 25), None),
    "gemcitabine": (21, 1, "m2", (1000, 1000), None), "eribulin": (21, 1, "m2", (1.4, 1.4), None),
    "cisplatin": (21, 0, "m2", (60, 80), None), "carboplatin": (21, 0, "flat", (300, 500), None),
    "doxorubicin": (21, 0, "m2", (50, 60), None), "epirubicin": (21, 0, "m2", (90, 100), None),
    "pegylated liposomal doxorubicin": (28, 0, "m2", (35, 40), None),
    "cyclophosphamide": (21, 0, "m2", (600, 600), None), "fluorouracil": (21, 0, "m2", (500, 600), None),
    "tamoxifen": (28, 0, "flat", (20, 20), None), "toremifene": (28, 0, "flat", (60, 60), None),
    "letrozole": (28, 0, "flat", (2.5, 2.5), None), "anastrozole": (28, 0, "flat", (1, 1), None),
    "exemestane": (28, 0, "flat", (25, 25), None), "fulvestrant": (28, 0, "flat", (500, 500), None),
    "goserelin": (28, 0, "flat", (3.6, 3.6), None), "leuprorelin": (28, 0, "flat", (3.75, 3.75), None),
    "palbociclib": (28, 0, "flat", (125, 125), None), "abemaciclib": (28, 0, "flat", (300, 300), None),
    "dalpiciclib": (28, 0, "flat", (150, 150), None),
    "ondansetron": (0, 0, "flat", (8, 8), None), "granisetron": (0, 0, "flat", (3, 3), None),
    "palonosetron": (0, 0, "flat", (0.25, 0.25), None), "aprepitant": (0, 0, "flat", (125, 125), None),
    "dexamethasone": (0, 0, "flat", (5, 10), None), "filgrastim": (0, 0, "flat", (150, 300), None),
    "pegfilgrastim": (0, 0, "flat", (6, 6), None), "zoledronic acid": (28, 0, "flat", (4, 4), None),
    "denosumab": (28, 0, "flat", (120, 120), None), FIXED_DOSE_HP: (21, 0, "flat", (1200, 1200), None),
}
CYCLE = np.array([SCHEDULE[p][0] for p in PRODUCTS])
D1D8 = np.array([SCHEDULE[p][1] for p in PRODUCTS], dtype=bool)
DOSE_KIND = np.array([{"m2": 0, "kg": 1, "flat": 2}[SCHEDULE[p][2]] for p in PRODUCTS])
DOSE_LO = np.array([SCHEDULE[p][3][0] for p in PRODUCTS], dtype=float)
DOSE_HI = np.array([SCHEDULE[p][3][1] for p in PRODUCTS], dtype=float)
LOAD = np.array([SCHEDULE[p][4] or 0 for p in PRODUCTS], dtype=float)
WEEKLY_DOSE = {"paclitaxel liposome": (60, 80), "paclitaxel": (80, 80), "nab-paclitaxel": (100, 125)}
P_WEEKLY = np.array([PR.P_WEEKLY.get(p, 0.0) for p in PRODUCTS])

REG_PROD = [np.array([C[i] for i, _ in RG.components(r)]) for r in RG.NAMES]
REG_ROLE = [np.array([role for _, role in RG.components(r)]) for r in RG.NAMES]
REG_FAMILY = np.array([RG.family(r) for r in RG.NAMES])
FAMILIES = tuple(PR.FIRST_LINE_SURVIVAL)
FAM_INDEX = {f: i for i, f in enumerate(FAMILIES)}
REG_FAM = np.array([FAM_INDEX[f] for f in REG_FAMILY])
REG_HAS_H_AND_P = np.array([{"trastuzumab", "pertuzumab"} <= RG.ingredients(r) for r in RG.NAMES])
REG_HAS_TAXANE_IND = np.array([any(IS_TAXANE[C[i]] and role == "ind" for i, role in RG.components(r))
                               for r in RG.NAMES])
REG_HAS_ENDO = np.array([any(role == "endo" for _, role in RG.components(r)) for r in RG.NAMES])
VALID_NEXT = RG.valid_next_matrix()
NEW_DRUG = {(a, b): frozenset(C[i] for i in RG.new_drugs(RG.NAMES[a], RG.NAMES[b]))
            for a in range(len(RG.NAMES)) for b in range(len(RG.NAMES)) if VALID_NEXT[a, b]}

# Regimen weight tables: group -> (4 eras × regimens)
G_HER2, G_NOHER2_POS, G_NOHER2_NEG = 0, 1, 2
FIRST_W = [RG.era_table(RG.HER2_FIRST), RG.era_table(RG.NO_HER2_FIRST_HR_POS),
           RG.era_table(RG.NO_HER2_FIRST_HR_NEG)]
LATER_W = [RG.era_table(RG.HER2_LATER), RG.era_table(RG.NO_HER2_LATER), RG.era_table(RG.NO_HER2_LATER)]
for _name in PR.CANCER_NAMES[1:]:
    FIRST_W.append(np.vstack([RG.weight_vector(RG.OTHER_FIRST[_name])] * 4))
    LATER_W.append(np.vstack([RG.weight_vector(RG.OTHER_LATER)] * 4))
FIRST_W = np.stack(FIRST_W)   # (groups, eras, regimens)
LATER_W = np.stack(LATER_W)


def _cat(rng, n, weights):
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _uniform_int(rng, lo, hi, n):
    """Integers in [lo, hi] inclusive."""
    return rng.integers(lo, hi + 1, size=n)


def _year(days):
    return (np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[Y]").astype(int)
            + 1970)


def _sample_rows(rng, weights):
    """One category per row of a (n, k) weight matrix; -1 where a row is all zero."""
    total = weights.sum(axis=1)
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * total
    pick = (cum < u[:, None]).sum(axis=1)
    pick = np.minimum(pick, weights.shape[1] - 1)
    return np.where(total > 0, pick, -1)


def mix64(*parts):
    """A stateless 64-bit hash of integer arrays (splitmix64 finaliser)."""
    x = np.zeros(np.broadcast(*parts).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            x = x ^ (np.asarray(p).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) + (x << np.uint64(6))
                     + (x >> np.uint64(2)))
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x = x ^ (x >> np.uint64(31))
    return x


def assessment_jitter(seed, gid, line, k):
    """Days an assessment is early or late (−7..7), the same wherever it is computed."""
    return (mix64(seed, gid, line, k) % np.uint64(2 * PR.ASSESSMENT_JITTER + 1)).astype(np.int64) \
        - PR.ASSESSMENT_JITTER


# -- hospitals ----------------------------------------------------------------------------------

@dataclasses.dataclass
class Hospitals:
    province: np.ndarray   # province index
    tier: np.ndarray       # tier index
    oncology: np.ndarray   # bool
    seg_start: np.ndarray  # first hospital of each province (hospitals sorted by province)
    seg_count: np.ndarray
    key: np.ndarray        # province + cumulative pull within province, for sampling


def hospitals(seed: int) -> Hospitals:
    rng = np.random.default_rng([seed, 0, 13])
    weights = np.array([w for _, w in PR.PROVINCES])
    n_prov = len(weights)
    counts = np.maximum(5, np.floor(weights / weights.sum() * PR.N_HOSPITALS)).astype(int)
    while counts.sum() < PR.N_HOSPITALS:
        counts[np.argmax(weights / weights.sum() * PR.N_HOSPITALS - counts)] += 1
    while counts.sum() > PR.N_HOSPITALS:
        counts[np.argmax(counts)] -= 1
    province = np.repeat(np.arange(n_prov), counts)
    tier = _cat(rng, PR.N_HOSPITALS, PR.TIER_SHARE)
    p_onc = np.array([PR.ONCOLOGY_SHARE.get(t, 0.03) for t in PR.TIERS])[tier]
    oncology = rng.random(PR.N_HOSPITALS) < p_onc
    pull = np.array(PR.TIER_PULL)[tier] * np.where(oncology, PR.ONCOLOGY_PULL, 1.0)
    seg_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    key = np.empty(PR.N_HOSPITALS)
    for p in range(n_prov):
        s, c = seg_start[p], counts[p]
        cum = np.cumsum(pull[s:s + c])
        key[s:s + c] = p + cum / cum[-1]
    return Hospitals(province, tier, oncology, seg_start, counts, key)


def pick_hospital(rng, hosp: Hospitals, province: np.ndarray) -> np.ndarray:
    u = rng.random(len(province))
    idx = np.searchsorted(hosp.key, province + u * (1 - 1e-12), side="left")
    return np.minimum(idx, PR.N_HOSPITALS - 1)


# -- the simulation -------------------------------------------------------------------------------

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


def simulate(plan: Plan, chunk: int) -> Sim:
    rng = plan.rng(chunk, STREAM_CORE)
    lo, hi = plan.bounds(chunk)
    n = hi - lo
    gid = np.arange(lo, hi, dtype=np.int64)
    cutoff = plan.cutoff_day
    hosp = hospitals(plan.seed)

    # -- population ------------------------------------------------------------------------
    shares = np.array([c[1] for c in PR.CANCERS])
    cancer = _cat(rng, n, shares)
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
    province = _cat(rng, n, [w for _, w in PR.PROVINCES])
    treat_prov = np.where(rng.random(n) < PR.P_OTHER_PROVINCE, _cat(rng, n, [w for _, w in PR.PROVINCES]),
                          province)
    hospital = pick_hospital(rng, hosp, treat_prov)
    height = np.where(sex == 1, rng.normal(170, 6, n), rng.normal(158, 6, n)).round(0)
    weight = np.clip(np.where(sex == 1, rng.normal(70, 10, n), rng.normal(60, 9, n)), 38, 115).round(1)

    # -- breast cancer biology -----------------------------------------------------------------
    her2 = breast & (rng.random(n) < PR.P_HER2_POSITIVE)
    hr = rng.random(n) < np.where(her2, PR.P_HR_POS_HER2POS, PR.P_HR_POS_HER2NEG)
    hr &= breast
    de_novo_draw = rng.random(n) < PR.P_DE_NOVO
    early_stage = _cat(rng, n, [w for _, w in PR.EARLY_STAGES])
    stage = np.where(breast & de_novo_draw, 3, early_stage)
    met_other = (~breast) & (rng.random(n) < np.nan_to_num(
        np.array([c[6] if c[6] is not None else 0 for c in PR.CANCERS], dtype=float)[cancer]))
    stage = np.where(breast, stage, np.where(met_other, 3, 1))
    year_dx = _year(dx)
    access_early = her2 & (rng.random(n) < PR.p_anti_her2_access(year_dx))

    plans_pos = [p for p, _ in PR.HER2_PLANS_POS]
    plans_neg = [p for p, _ in PR.HER2_PLANS_NEG]
    plan_names = list(dict.fromkeys(plans_pos + plans_neg))
    pos_pick = np.array([plan_names.index(p) for p in plans_pos])[_cat(rng, n, [w for _, w in PR.HER2_PLANS_POS])]
    neg_pick = np.array([plan_names.index(p) for p in plans_neg])[_cat(rng, n, [w for _, w in PR.HER2_PLANS_NEG])]
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
    adv_de_novo = np.where(stage_iv_recorded, dx, dx + _uniform_int(rng, 3, 40, n))
    adv_other = dx + _uniform_int(rng, 0, 10, n)
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
                        adv - _uniform_int(rng, 0, 20, n), NONE_DAY)

    # -- follow-up ------------------------------------------------------------------------------
    lost = rng.random(n) < PR.P_LOST_TO_FOLLOW_UP
    lost_day = dx + np.floor(rng.random(n) * np.maximum(cutoff - dx, 1)).astype(np.int64)
    assessed = rng.random(n) < PR.P_ASSESSED
    assess_q = np.array(PR.ASSESSMENT_INTERVALS)[_cat(rng, n, [1] * len(PR.ASSESSMENT_INTERVALS))]

    # -- journeys ----------------------------------------------------------------------------------
    J = _Journeys()
    _early_breast(J, rng, breast & ~de_novo, dx, hr, access_early, age_dx, adv, year_dx)
    _early_other(J, rng, (~breast) & ~met_other, dx, cancer)

    # advanced: first line
    untreated = rng.random(n) < np.where(breast, 0.08, 1.0 - np.nan_to_num(np.array(
        [c[7] if c[7] is not None else 1.0 for c in PR.CANCERS], dtype=float)[cancer]))
    s1 = np.where(breast, adv + _uniform_int(rng, -20, 45, n), adv + _uniform_int(rng, 7, 40, n))
    s1 = np.where(breast & de_novo, np.maximum(s1, dx + 3), s1)
    year1 = _year(np.where(has_adv, s1, dx))
    access = her2 & (rng.random(n) < PR.p_anti_her2_access(year1))
    group = np.where(breast, np.where(access, G_HER2, np.where(hr, G_NOHER2_POS, G_NOHER2_NEG)),
                     2 + cancer)
    era = RG.era_of_year(year1)
    reg1 = _sample_rows(rng, FIRST_W[group, era])

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
    pfs1 = _weibull_inv(u_pfs, pfs_med * aft, pfs_k)
    os1 = _weibull_inv(u_os, os_med * aft, os_k)
    treated1 = has_adv & ~untreated & (reg1 >= 0) & (s1 <= cutoff)
    os_untreated = _weibull_inv(rng.random(n), np.full(n, PR.UNTREATED_ADVANCED_OS[0]) * aft,
                                PR.UNTREATED_ADVANCED_OS[1])
    cancer_os_day = np.where(treated1, s1 + os1, adv + os_untreated)
    cancer_death = has_adv & (cancer_os_day < death)
    death = np.where(cancer_death, cancer_os_day, death)
    # non-metastatic other cancers: a share is not cured
    cured_share = np.nan_to_num(np.array([c[9] if c[9] is not None else 1 for c in PR.CANCERS],
                                         dtype=float)[cancer])
    not_cured = (~breast) & ~met_other & (rng.random(n) >= cured_share)
    other_os = dx + _weibull_inv(rng.random(n), np.full(n, PR.NON_CURED_OS[0]), PR.NON_CURED_OS[1])
    oc = not_cured & (other_os < death)
    cancer_death |= oc
    death = np.where(oc, other_os, death)
    # a patient lost around the advanced date is kept until its metastasis records (A + 10 days), so
    # that recorded advanced dates and settings agree with the lines drawn
    near = lost & (lost_day >= adv - 60) & (lost_day <= adv + 10)
    lost_day = np.where(near, adv + 11, lost_day)
    record_end = np.minimum(np.minimum(death - 1, cutoff), np.where(lost, lost_day, cutoff))
    # last day a drug is given: some days to weeks before death
    last_treat = np.minimum(record_end, death - _uniform_int(rng, 5, 40, n))

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
    stop_early_day = _uniform_int(rng, 180, 540, n)
    baseline_assess = np.where(assessed & breast & (cur_start < NONE_DAY)
                               & (rng.random(n) < PR.P_BASELINE_ASSESSMENT),
                               cur_start + _uniform_int(rng, -21, 14, n), NONE_DAY)
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
        detect = np.where(doc_by_scan, _first_assessment_on_or_after(plan.seed, gid[idx], L, S, T,
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
                           hospital=_line_hospital(rng, hosp, hospital[idx], treat_prov[idx]),
                           responder=responder)
        new_set = [NEW_DRUG.get((p, r), frozenset()) if p >= 0 else None
                   for p, r in zip(prev_reg[idx], cur_reg[idx])]
        _regimen_streams(J, rng, rows, cur_reg[idx], new_set, S, stop, hr[idx] & breast[idx],
                         age_dx[idx], year_of=_year(S))
        line_no[idx] = L + 1
        # next line
        nxt = progressed & (detect <= record_end[idx]) & (L + 1 < max_lines[idx])
        nxt &= rng.random(len(idx)) < PR.P_NEXT_LINE[min(L, len(PR.P_NEXT_LINE) - 1)]
        s_next = np.maximum(detect + _uniform_int(rng, *PR.NEXT_LINE_DELAY_DAYS, len(idx)),
                            S + PR.MIN_LINE_DAYS)
        nxt &= (s_next < death[idx] - 14) & (s_next <= last_treat[idx])
        g = group[idx]
        w = LATER_W[g, RG.era_of_year(_year(s_next))] * VALID_NEXT[cur_reg[idx]]
        reg_next = _sample_rows(rng, w)
        nxt &= reg_next >= 0
        fam_next = REG_FAM[np.maximum(reg_next, 0)]
        later_med = np.array([PR.LATER_LINE_PFS[f] for f in FAMILIES])[fam_next]
        pfs_next = _weibull_inv(rng.random(len(idx)), later_med * aft[idx], PR.LATER_LINE_SHAPE)
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
    _supportive(J, rng, n, sites["bone"] & breast, adv, last_treat)
    J.finish_supportive(rng, record_end)

    prior_anti_her2 = np.zeros(n, dtype=bool)
    early_rows = J.ad_line >= 0
    early_rows &= J.ln_setting_arr()[np.maximum(J.ad_line, 0)] == 0
    prior_anti_her2[np.unique(J.ad_pat[early_rows & IS_ANTI_HER2[J.ad_prod]])] = True

    tox = _toxicity(rng, n, J)
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
               ad_stream=J.ad_stream, ad_dose=J.ad_dose, st_weekly=J.st_weekly_arr, **tox)


HER2_PLAN_NAMES = tuple(dict.fromkeys([p for p, _ in PR.HER2_PLANS_POS] + [p for p, _ in PR.HER2_PLANS_NEG]))


def _weibull_inv(u, median_months, shape):
    scale = median_months / np.log(2.0) ** (1.0 / shape)
    months = scale * (-np.log1p(-np.clip(u, 1e-12, 1 - 1e-12))) ** (1.0 / shape)
    return np.maximum(1, np.round(months * PR.MONTH)).astype(np.int64)


def _first_assessment_on_or_after(seed, gid, line, start, target, q):
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


def _line_hospital(rng, hosp, main, province):
    other = pick_hospital(rng, hosp, province)
    return np.where(rng.random(len(main)) < PR.P_LINE_OTHER_HOSPITAL, other, main)


# -- journey bookkeeping ----------------------------------------------------------------------------

class _Journeys:
    """Lines and streams as they are drawn; expanded into administrations by finish()."""

    def __init__(self):
        self._lines = {k: [] for k in ("pat", "setting", "order", "start", "stop", "reg", "fam", "prog",
                                       "detect", "hospital", "responder")}
        self._n_lines = 0
        self._st = {k: [] for k in ("line", "prod", "first", "cycle", "n", "pause_k", "pause", "dose",
                                    "load", "weekly", "end")}
        self.support_rows = []

    # lines
    def add_lines(self, pat, setting, order, start, stop, reg, prog=None, detect=None, hospital=None,
                  responder=None):
        m = len(pat)
        rows = np.arange(self._n_lines, self._n_lines + m)
        self._n_lines += m
        none = np.full(m, NONE_DAY, dtype=np.int64)
        L = self._lines
        L["pat"].append(np.asarray(pat))
        L["setting"].append(np.full(m, setting))
        L["order"].append(np.broadcast_to(np.asarray(order), (m,)).copy())
        L["start"].append(np.asarray(start, dtype=np.int64))
        L["stop"].append(np.asarray(stop, dtype=np.int64))
        reg = np.broadcast_to(np.asarray(reg), (m,)).copy()
        L["reg"].append(reg)
        L["fam"].append(np.where(reg >= 0, REG_FAM[np.maximum(reg, 0)], -1))
        L["prog"].append(none if prog is None else prog)
        L["detect"].append(none if detect is None else detect)
        L["hospital"].append(np.full(m, -1) if hospital is None else hospital)
        L["responder"].append(np.zeros(m, dtype=bool) if responder is None else responder)
        return rows

    def add_stream(self, line_rows, prod, first, n, cycle=None, pause_k=None, pause=None, dose=None,
                   load=False, weekly=None, end=None):
        m = len(line_rows)
        if m == 0:
            return
        prod = np.broadcast_to(np.asarray(prod), (m,)).copy()
        S = self._st
        S["line"].append(np.asarray(line_rows))
        S["prod"].append(prod)
        S["first"].append(np.asarray(first, dtype=np.int64))
        S["cycle"].append(CYCLE[prod] if cycle is None else np.broadcast_to(np.asarray(cycle), (m,)).copy())
        S["n"].append(np.broadcast_to(np.asarray(n), (m,)).astype(np.int64))
        S["pause_k"].append(np.full(m, 10 ** 6) if pause_k is None else np.broadcast_to(pause_k, (m,)).copy())
        S["pause"].append(np.zeros(m, dtype=np.int64) if pause is None else np.asarray(pause))
        S["dose"].append(np.full(m, np.nan) if dose is None else np.asarray(dose, dtype=float))
        S["load"].append(np.broadcast_to(np.asarray(load), (m,)).copy())
        S["weekly"].append(np.zeros(m, dtype=bool) if weekly is None else np.asarray(weekly))
        S["end"].append(np.full(m, NONE_DAY, dtype=np.int64) if end is None else np.asarray(end, dtype=np.int64))

    def _cat_lines(self):
        return {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in self._lines.items()}

    def ln_setting_arr(self):
        return self._ln["setting"]

    def lines(self):
        L = self._ln
        return {"ln_pat": L["pat"], "ln_setting": L["setting"], "ln_order": L["order"],
                "ln_start": L["start"], "ln_stop": L["stop"], "ln_reg": L["reg"], "ln_fam": L["fam"],
                "ln_prog": L["prog"], "ln_detect": L["detect"], "ln_hospital": L["hospital"],
                "ln_responder": L["responder"]}

    def finish(self, rng, record_end):
        """Expand streams into administrations; doses per administration."""
        self._ln = L = self._cat_lines()
        S = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in self._st.items()}
        n_st = len(S["line"])
        line = S["line"].astype(np.int64)
        pat = L["pat"][line].astype(np.int64)
        limit = np.minimum(np.minimum(L["stop"][line], record_end[pat] + 1), S["end"])
        cycle = S["cycle"].astype(np.int64)
        # open-ended streams: as many cycles as fit before the limit
        n = np.where(S["n"] < 0, np.maximum(0, (limit - S["first"]) // np.maximum(cycle, 1) + 2), S["n"])
        n = np.minimum(n, 400)
        st = np.repeat(np.arange(n_st), n)
        k = np.arange(len(st)) - np.repeat(np.cumsum(n) - n, n)
        delay = np.array([d for d, _ in PR.ADMIN_DELAY])[_cat(rng, len(st), [p for _, p in PR.ADMIN_DELAY])]
        delay = np.where(k == 0, 0, delay)
        # weekly schedules tolerate less delay
        delay = np.where(cycle[st] <= 7, np.minimum(delay, 2), delay)
        date = S["first"][st].astype(np.int64) + k * cycle[st] + delay + np.where(
            k >= S["pause_k"][st], S["pause"][st], 0).astype(np.int64)
        prod = S["prod"][st].astype(np.int64)
        # d1/d8 schedules: a second administration 7 days after each cycle start
        d8 = D1D8[prod] & ~S["weekly"][st].astype(bool)
        st = np.concatenate([st, st[d8]])
        k = np.concatenate([k, k[d8]])
        date = np.concatenate([date, date[d8] + 7])
        prod = S["prod"][st].astype(np.int64)
        keep = date < limit[st]
        st, k, date, prod = st[keep], k[keep], date[keep], prod[keep]
        dose_base = S["dose"][st]
        dose = np.where(S["load"][st].astype(bool) & (k == 0) & (LOAD[prod] > 0), LOAD[prod], dose_base)
        self.ad_pat = pat[st]
        self.ad_line = line[st]
        self.ad_prod = prod
        self.ad_date = date
        self.ad_k = k
        self.ad_stream = st
        self.ad_dose = dose
        self.st_weekly_arr = S["weekly"].astype(bool)

    def finish_supportive(self, rng, record_end):
        if not self.support_rows:
            return
        pat = np.concatenate([r[0] for r in self.support_rows])
        prod = np.concatenate([r[1] for r in self.support_rows])
        date = np.concatenate([r[2] for r in self.support_rows])
        dose = np.concatenate([r[3] for r in self.support_rows])
        keep = date <= record_end[pat]
        m = keep.sum()
        self.ad_pat = np.concatenate([self.ad_pat, pat[keep]])
        self.ad_line = np.concatenate([self.ad_line, np.full(m, -1)])
        self.ad_prod = np.concatenate([self.ad_prod, prod[keep]])
        self.ad_date = np.concatenate([self.ad_date, date[keep]])
        self.ad_k = np.concatenate([self.ad_k, np.zeros(m, dtype=np.int64)])
        self.ad_stream = np.concatenate([self.ad_stream, np.full(m, -1)])
        self.ad_dose = np.concatenate([self.ad_dose, dose[keep]])


def _draw_dose(rng, prod, weekly=None):
    prod = np.asarray(prod)
    lo, hi = DOSE_LO[prod], DOSE_HI[prod]
    if weekly is not None:
        for name, (wlo, whi) in WEEKLY_DOSE.items():
            m = weekly & (prod == C[name])
            lo = np.where(m, wlo, lo)
            hi = np.where(m, whi, hi)
    step = np.where(hi - lo >= 10, 5.0, np.where(hi - lo > 0, 1.0, 1.0))
    val = lo + rng.random(len(prod)) * (hi - lo)
    return np.where(hi - lo >= 10, np.round(val / step) * step, np.round(val, 1))


def _regimen_streams(J, rng, rows, reg, new_set, S, stop, hr_pos, age, year_of):
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
            dose = _draw_dose(rng, np.full(len(sel), p), weekly)
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
            _cat(rng, m, [0.5, 0.35, 0.15])])
        first = ind_end + _uniform_int(rng, 7, 28, m)
        sel = np.flatnonzero(add & (first < stop))
        J.add_stream(rows[sel], choice[sel], first[sel], -1, dose=DOSE_LO[choice[sel]], end=stop[sel])


def _early_breast(J, rng, mask, dx, hr, access, age, adv, year_dx):
    """(Neo)adjuvant protocols; every administration ends ≥ 45 days before the advanced date."""
    idx = np.flatnonzero(mask)
    m = len(idx)
    if m == 0:
        return
    her2_access = access[idx]
    from .regimens import EARLY_HER2_ACCESS, EARLY_HER2_NEG, EARLY_MIN_YEAR
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
        pick = _sample_rows(rng, wm)
        proto[sel] = np.array(keys, dtype=object)[pick[sel]]
    # HER2+ patients without anti-HER2 access are treated like HER2- ones
    s0 = dx[idx] + _uniform_int(rng, 10, 45, m)
    limit = np.where(adv[idx] < NONE_DAY, adv[idx] - 45 - _uniform_int(rng, 0, 30, m), NONE_DAY)
    taxane_choice = np.array([C["docetaxel"], C["paclitaxel"], C["paclitaxel liposome"]])[
        _cat(rng, m, [0.5, 0.3, 0.2])]
    neo_taxane = np.array([C["docetaxel"], C["nab-paclitaxel"], C["paclitaxel liposome"]])[
        _cat(rng, m, [0.5, 0.2, 0.3])]
    n6 = rng.integers(4, 7, m)
    pause = _uniform_int(rng, 21, 42, m)
    s_second = s0 + 84 + _uniform_int(rng, 0, 10, m)
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
        J.add_stream(rows, prod[sel], start, count, cycle=cycle, dose=_draw_dose(rng, prod[sel], weekly),
                     weekly=weekly)
        return start + (count - 1) * cycle

    def simple(rows, sel, start, name, count, **kw):
        p = np.full(len(rows), C[name])
        J.add_stream(rows, p, start, count, dose=_draw_dose(rng, p), **kw)
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
        _cat(rng, m, [0.5, 0.35, 0.15])])
    interval = np.array([28, 56, 84])[_cat(rng, m, [0.4, 0.4, 0.2])]
    start = last_chemo + _uniform_int(rng, 14, 42, m)
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


def _early_other(J, rng, mask, dx, cancer):
    """Adjuvant chemotherapy of other cancers: one line of 4-6 cycles."""
    treat_p = np.nan_to_num(np.array([c[7] if c[7] is not None else 0 for c in PR.CANCERS], dtype=float))
    idx = np.flatnonzero(mask & (rng.random(len(mask)) < treat_p[cancer]))
    if len(idx) == 0:
        return
    group = 2 + cancer[idx]
    reg = _sample_rows(rng, FIRST_W[group, 0])
    idx, reg = idx[reg >= 0], reg[reg >= 0]
    start = dx[idx] + _uniform_int(rng, 14, 45, len(idx))
    rows = J.add_lines(idx, setting=0, order=1, start=start, stop=np.full(len(idx), NONE_DAY), reg=reg)
    n_ind = rng.integers(4, 7, len(idx))
    for r in np.unique(reg):
        sel = np.flatnonzero(reg == r)
        for p, role in zip(REG_PROD[r], REG_ROLE[r]):
            count = n_ind[sel] if role == "ind" else n_ind[sel] * 3
            J.add_stream(rows[sel], p, start[sel], count, dose=_draw_dose(rng, np.full(len(sel), p)))


def _supportive(J, rng, n, bone, adv, last_treat):
    """Antiemetics, premedication and G-CSF on chemotherapy days; bone agents for bone metastases."""
    chemo = (J.ad_line >= 0) & IS_CHEMO_DAY[J.ad_prod]
    key = np.unique(J.ad_pat[chemo].astype(np.int64) * 100_000 + J.ad_date[chemo])
    pat, date = key // 100_000, key % 100_000
    m = len(pat)
    anti = np.array([C["ondansetron"], C["granisetron"], C["palonosetron"]])[
        (mix64(pat, 7) % np.uint64(3)).astype(np.int64)]   # one antiemetic habit per patient
    give = rng.random(m) < 0.8
    J.support_rows.append((pat[give], anti[give], date[give], DOSE_LO[anti[give]]))
    tax = (J.ad_line >= 0) & IS_TAXANE[J.ad_prod]
    p_dex = np.zeros(len(PRODUCTS))
    for name, p in (("docetaxel", 0.9), ("paclitaxel", 0.95), ("paclitaxel liposome", 0.4),
                    ("nab-paclitaxel", 0.1)):
        p_dex[C[name]] = p
    dex = tax & (rng.random(len(tax)) < p_dex[J.ad_prod])
    J.support_rows.append((J.ad_pat[dex], np.full(dex.sum(), C["dexamethasone"]), J.ad_date[dex],
                           np.where(rng.random(dex.sum()) < 0.5, 5.0, 10.0)))
    q3w = tax & ~J.st_weekly_arr[J.ad_stream] & ((mix64(J.ad_pat, 11) % np.uint64(10)) < np.uint64(3))
    J.support_rows.append((J.ad_pat[q3w], np.full(q3w.sum(), C["pegfilgrastim"]),
                           J.ad_date[q3w] + rng.integers(1, 3, q3w.sum()), np.full(q3w.sum(), 6.0)))
    # bone-targeted agents every 4 weeks from the advanced date, for up to two years
    b = np.flatnonzero(bone & (adv < NONE_DAY) & (rng.random(n) < 0.7))
    agent = np.where(rng.random(len(b)) < 0.8, C["zoledronic acid"], C["denosumab"])
    first = adv[b] + _uniform_int(rng, 0, 30, len(b))
    count = np.clip((np.minimum(last_treat[b], first + 730) - first) // 28 + 1, 0, 27)
    st = np.repeat(np.arange(len(b)), count)
    k = np.arange(len(st)) - np.repeat(np.cumsum(count) - count, count)
    J.support_rows.append((b[st], agent[st], first[st] + 28 * k, DOSE_LO[agent[st]]))


def _toxicity(rng, n, J):
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
    lvef_day = np.where(decline, first_ab + _uniform_int(rng, 90, 300, n), NONE_DAY)
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
