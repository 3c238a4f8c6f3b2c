"""How each product and regimen is given, as arrays indexed by product and regimen code.

Per product: its class flags, cycle, d1/d8 pattern, dose kind, doses and loading dose; per
regimen: its components and roles, survival family, which regimens may follow it and which drugs
open the next line, and the regimen weights by patient group and era."""
from __future__ import annotations

import numpy as np

from . import params as PR
from . import regimens as RG
from .drugs import CODE as C
from .drugs import FIXED_DOSE_HP, INGREDIENTS, PRODUCTS


PROD_CLASS = np.array([INGREDIENTS[p][0] if p in INGREDIENTS else "anti_her2_mab" for p in PRODUCTS])
COUNTS = PROD_CLASS != "supportive"
IS_TAXANE = PROD_CLASS == "taxane"
IS_MAB = np.isin(PRODUCTS, ["trastuzumab", "pertuzumab", "inetetumab", FIXED_DOSE_HP])
IS_ANTI_HER2 = IS_MAB | np.isin(PROD_CLASS, ["anti_her2_tki", "anti_her2_adc"])
IS_CHEMO_DAY = np.isin(PROD_CLASS, ["taxane", "chemo_other", "anti_her2_adc"])

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


def draw_dose(rng, prod, weekly=None):
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
