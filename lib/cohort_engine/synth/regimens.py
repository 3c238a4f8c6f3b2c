"""Regimens the simulation gives, and how often, by setting, era and line.

A regimen is a tuple of components (ingredient, role). Roles:
  ind  - induction chemotherapy: a fixed number of cycles (TAXANE_CYCLES), then dropped;
  cont - given every cycle until the line stops (progression, death, stop);
  endo - an endocrine drug of the regimen, dispensed monthly until the line stops.
Each regimen has a survival family (params.FIRST_LINE_SURVIVAL / LATER_LINE_PFS).
"""
from __future__ import annotations

import numpy as np

from .drugs import INGREDIENTS

PL, PAC, NAB, DOC = "paclitaxel liposome", "paclitaxel", "nab-paclitaxel", "docetaxel"
H, P, I = "trastuzumab", "pertuzumab", "inetetumab"
PYRO, LAP, NER = "pyrotinib", "lapatinib", "neratinib"
TDM1, TDXD = "trastuzumab emtansine", "trastuzumab deruxtecan"
CAP, VIN, GEM, ERI = "capecitabine", "vinorelbine", "gemcitabine", "eribulin"
CIS, CB, DOX, EPI, PLD, CTX, FU = ("cisplatin", "carboplatin", "doxorubicin", "epirubicin",
                                   "pegylated liposomal doxorubicin", "cyclophosphamide", "fluorouracil")
LET, ANA, EXE, TAM, FUL, GOS, LEU = ("letrozole", "anastrozole", "exemestane", "tamoxifen", "fulvestrant",
                                     "goserelin", "leuprorelin")
PAL, ABE, DAL = "palbociclib", "abemaciclib", "dalpiciclib"

SUBSTITUTIONS = ((PAC, PL, NAB), (CIS, CB))

# name: (components, survival family)
REGIMENS: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    # HER2+ advanced, paclitaxel liposome based (the study's index regimens)
    "PL+H": (((PL, "ind"), (H, "cont")), "H"),
    "PL+HP": (((PL, "ind"), (H, "cont"), (P, "cont")), "HP"),
    "PL+I": (((PL, "ind"), (I, "cont")), "I"),
    "PL+H+PYRO": (((PL, "ind"), (H, "cont"), (PYRO, "cont")), "H_TKI"),
    "PL+CB+H": (((PL, "ind"), (CB, "ind"), (H, "cont")), "H"),
    # HER2+ advanced, competing regimens
    "DOC+HP": (((DOC, "ind"), (H, "cont"), (P, "cont")), "HP"),
    "DOC+H": (((DOC, "ind"), (H, "cont")), "H"),
    "NAB+H": (((NAB, "ind"), (H, "cont")), "H"),
    "NAB+HP": (((NAB, "ind"), (H, "cont"), (P, "cont")), "HP"),
    "PAC+H": (((PAC, "ind"), (H, "cont")), "H"),
    "DOC+H+PYRO": (((DOC, "ind"), (H, "cont"), (PYRO, "cont")), "H_TKI"),
    "PYRO+CAP": (((PYRO, "cont"), (CAP, "cont")), "PYRO_CAP"),
    "LAP+CAP": (((LAP, "cont"), (CAP, "cont")), "LAP_CAP"),
    "TDM1": (((TDM1, "cont"),), "TDM1"),
    "TDXD": (((TDXD, "cont"),), "TDXD"),
    "VIN+H": (((VIN, "cont"), (H, "cont")), "H"),
    "CAP+H": (((CAP, "cont"), (H, "cont")), "H"),
    "PYRO+VIN": (((PYRO, "cont"), (VIN, "cont")), "PYRO_CAP"),
    "NER+CAP": (((NER, "cont"), (CAP, "cont")), "LAP_CAP"),
    "ERI+H": (((ERI, "cont"), (H, "cont")), "H"),
    "GEM+H": (((GEM, "cont"), (H, "cont")), "H"),
    # chemotherapy without anti-HER2 (any subtype)
    "PL": (((PL, "ind"),), "CHEMO"),
    "DOC": (((DOC, "ind"),), "CHEMO"),
    "NAB": (((NAB, "ind"),), "CHEMO"),
    "DOC+CAP": (((DOC, "ind"), (CAP, "cont")), "CHEMO"),
    "CAP": (((CAP, "cont"),), "CHEMO"),
    "VIN+CAP": (((VIN, "cont"), (CAP, "cont")), "CHEMO"),
    "GEM+CB": (((GEM, "ind"), (CB, "ind")), "CHEMO"),
    "PL+CB": (((PL, "ind"), (CB, "ind")), "CHEMO"),
    "ERI": (((ERI, "cont"),), "CHEMO"),
    "PLD": (((PLD, "cont"),), "CHEMO"),
    "GEM": (((GEM, "ind"),), "CHEMO"),
    # HR+ HER2- endocrine based
    "LET+PAL": (((LET, "endo"), (PAL, "cont")), "ET_CDK"),
    "FUL+PAL": (((FUL, "endo"), (PAL, "cont")), "ET_CDK"),
    "FUL+ABE": (((FUL, "endo"), (ABE, "cont")), "ET_CDK"),
    "ANA+DAL": (((ANA, "endo"), (DAL, "cont")), "ET_CDK"),
    "LET": (((LET, "endo"),), "ET"),
    "FUL": (((FUL, "endo"),), "ET"),
    # other cancers
    "PAC+CB": (((PAC, "ind"), (CB, "ind")), "CHEMO"),
    "PAC+CIS": (((PAC, "ind"), (CIS, "ind")), "CHEMO"),
    "PL+CIS": (((PL, "ind"), (CIS, "ind")), "CHEMO"),
    "DOC+CIS": (((DOC, "ind"), (CIS, "ind")), "CHEMO"),
    "GEM+CIS": (((GEM, "ind"), (CIS, "ind")), "CHEMO"),
    "VIN+CIS": (((VIN, "ind"), (CIS, "ind")), "CHEMO"),
    "NAB+CB": (((NAB, "ind"), (CB, "ind")), "CHEMO"),
    "CAP+CIS": (((CAP, "ind"), (CIS, "ind")), "CHEMO"),
    "DOC+CIS+FU": (((DOC, "ind"), (CIS, "ind"), (FU, "ind")), "CHEMO"),
    "PL+CAP": (((PL, "ind"), (CAP, "ind")), "CHEMO"),
    "FU": (((FU, "ind"),), "CHEMO"),
    "CAPX": (((CAP, "ind"),), "CHEMO"),
    "GEM+NAB": (((GEM, "ind"), (NAB, "ind")), "CHEMO"),
    "CTX+DOX": (((CTX, "ind"), (DOX, "ind")), "CHEMO"),
    "DOC+LEU": (((DOC, "ind"), (LEU, "endo")), "CHEMO"),
    "DOC1": (((DOC, "ind"),), "CHEMO"),
    "VIN1": (((VIN, "ind"),), "CHEMO"),
    "PAC1": (((PAC, "ind"),), "CHEMO"),
    "PL1": (((PL, "ind"),), "CHEMO"),
    "GEM+CB2": (((GEM, "ind"), (CB, "ind")), "CHEMO"),
}
NAMES = tuple(REGIMENS)
INDEX = {name: i for i, name in enumerate(NAMES)}

# First advanced line, HER2+ patients with anti-HER2 access, by era (line start year).
# Eras: A < 2018 (before pertuzumab/pyrotinib), B 2018-2019, C 2020-2022 (+inetetumab, T-DM1), D ≥ 2023 (+T-DXd).
HER2_FIRST = {
    "A": {"PL+H": 34, "DOC+H": 22, "PAC+H": 8, "NAB+H": 8, "VIN+H": 7, "CAP+H": 6, "LAP+CAP": 6, "PL+CB+H": 4},
    "B": {"PL+H": 24, "PL+HP": 14, "DOC+HP": 15, "DOC+H": 9, "NAB+H": 6, "NAB+HP": 4, "PYRO+CAP": 11,
          "PL+H+PYRO": 4, "VIN+H": 3, "CAP+H": 3, "PL+CB+H": 3},
    "C": {"PL+HP": 26, "PL+H": 12, "PL+I": 6, "DOC+HP": 17, "NAB+HP": 7, "NAB+H": 3, "PYRO+CAP": 8,
          "DOC+H+PYRO": 5, "TDM1": 4, "PL+H+PYRO": 4, "PL+CB+H": 2, "VIN+H": 2},
    "D": {"PL+HP": 25, "PL+H": 9, "PL+I": 6, "DOC+HP": 17, "NAB+HP": 8, "PYRO+CAP": 7, "DOC+H+PYRO": 7,
          "TDM1": 3, "TDXD": 6, "PL+H+PYRO": 4, "PL+CB+H": 2, "NAB+H": 2},
}
# The confounded taxane choice (params.CONFOUNDED_TAXANE_LOGIT): each paclitaxel liposome first line
# and the conventional-taxane lines with the same backbone and survival family. First lines with no
# conventional counterpart are not drawn under the switch, so every patient has a regimen in both arms.
TAXANE_COUNTERPARTS = {
    "PL+H": ("DOC+H", "PAC+H", "NAB+H"),
    "PL+HP": ("DOC+HP", "NAB+HP"),
    "PL+H+PYRO": ("DOC+H+PYRO",),
}
WITHOUT_COUNTERPART = ("PL+I", "PL+CB+H")
# First advanced line without anti-HER2 drugs (HER2+ without access, or HER2-), HR+ / HR-.
NO_HER2_FIRST_HR_POS = {
    "A": {"LET": 20, "FUL": 8, "PL": 22, "DOC": 15, "NAB": 5, "DOC+CAP": 12, "CAP": 10, "VIN+CAP": 8},
    "B": {"LET": 10, "LET+PAL": 14, "FUL": 6, "FUL+PAL": 6, "PL": 20, "DOC": 12, "NAB": 8, "DOC+CAP": 10,
          "CAP": 8, "VIN+CAP": 6},
    "C": {"LET+PAL": 20, "FUL+PAL": 8, "FUL+ABE": 6, "ANA+DAL": 6, "LET": 6, "PL": 18, "DOC": 8, "NAB": 10,
          "DOC+CAP": 8, "CAP": 6, "VIN+CAP": 4},
}
NO_HER2_FIRST_HR_NEG = {
    "A": {"PL": 28, "DOC": 18, "NAB": 6, "DOC+CAP": 16, "GEM+CB": 14, "PL+CB": 10, "VIN+CAP": 8},
    "C": {"PL": 26, "DOC": 12, "NAB": 14, "DOC+CAP": 12, "GEM+CB": 14, "PL+CB": 14, "VIN+CAP": 8},
}
# Later advanced lines (2, 3, 4), drawn among regimens that bring a new drug (see valid_next).
HER2_LATER = {
    "A": {"LAP+CAP": 30, "CAP+H": 20, "VIN+H": 18, "GEM+H": 8, "DOC+H": 8, "PL+H": 8, "CAP": 8},
    "B": {"PYRO+CAP": 40, "LAP+CAP": 6, "CAP+H": 12, "VIN+H": 10, "PL+H": 8, "NAB+H": 6, "PYRO+VIN": 8,
          "GEM+H": 5, "ERI+H": 5},
    "C": {"PYRO+CAP": 34, "TDM1": 18, "CAP+H": 8, "VIN+H": 6, "PYRO+VIN": 8, "PL+H": 6, "NAB+H": 5,
          "ERI+H": 6, "NER+CAP": 4, "GEM+H": 5},
    "D": {"TDXD": 30, "PYRO+CAP": 25, "TDM1": 12, "PYRO+VIN": 8, "CAP+H": 6, "ERI+H": 6, "PL+H": 5,
          "NER+CAP": 4, "GEM+H": 4},
}
NO_HER2_LATER = {
    "A": {"CAP": 18, "VIN+CAP": 14, "GEM+CB": 14, "ERI": 8, "PLD": 10, "PL": 12, "DOC": 12, "FUL": 6,
          "NAB": 6},
    "C": {"CAP": 14, "VIN+CAP": 10, "GEM+CB": 12, "ERI": 14, "PLD": 8, "PL": 12, "NAB": 10, "FUL+ABE": 8,
          "DOC": 8, "GEM": 4},
}

# Other cancers: first line and later line options.
OTHER_FIRST = {
    "lung": {"PAC+CB": 30, "PL+CB": 20, "DOC+CIS": 15, "GEM+CIS": 15, "VIN+CIS": 10, "NAB+CB": 10},
    "colorectal": {"CAPX": 60, "FU": 40},
    "gastric": {"DOC+CIS+FU": 25, "CAP+CIS": 35, "PL+CAP": 25, "PAC1": 15},
    "liver": {"CAPX": 100},
    "esophageal": {"PAC+CIS": 50, "PL+CIS": 30, "DOC+CIS": 20},
    "cervical": {"PAC+CIS": 55, "PL+CIS": 25, "PAC+CB": 20},
    "ovarian": {"PAC+CB": 55, "PL+CB": 30, "NAB+CB": 15},
    "nasopharyngeal": {"GEM+CIS": 60, "DOC+CIS+FU": 40},
    "lymphoma": {"CTX+DOX": 100},
    "thyroid": {"DOC1": 100},
    "pancreatic": {"GEM+NAB": 70, "GEM": 30},
    "prostate": {"DOC+LEU": 100},
}
OTHER_LATER = {"DOC1": 25, "GEM": 15, "VIN1": 15, "PAC1": 10, "PL1": 15, "PLD": 10, "CAPX": 10}

# Early (neo)adjuvant breast protocols: list of (protocol, weight) per group, with start year limits.
EARLY_HER2_ACCESS = {"ECTH": 35, "TCBH": 25, "THP_NEO": 18, "THP_TDM1": 5, "PLH": 12, "NONE": 15}
EARLY_HER2_NEG = {"ECT": 35, "TC": 20, "ECPL": 12, "NONE": 18, "ENDO_ONLY": 15}
EARLY_MIN_YEAR = {"THP_NEO": 2019, "THP_TDM1": 2021}


def components(name: str):
    return REGIMENS[name][0]


def ingredients(name: str) -> frozenset[str]:
    return frozenset(ing for ing, _ in components(name))


def family(name: str) -> str:
    return REGIMENS[name][1]


def _substitutes(ingredient: str) -> set[str]:
    for group in SUBSTITUTIONS:
        if ingredient in group:
            return set(group)
    return {ingredient}


def new_drugs(previous: str, following: str) -> set[str]:
    """Ingredients of `following` that start a new line after `previous` (study-rules §3.3)."""
    covered = set()
    for ing in ingredients(previous):
        covered |= _substitutes(ing)
    return {ing for ing in ingredients(following)
            if ing not in covered and INGREDIENTS[ing][0] != "endocrine"}


def valid_next_matrix() -> np.ndarray:
    """valid[a, b]: regimen b may follow regimen a as a new line without a gap."""
    n = len(NAMES)
    valid = np.zeros((n, n), dtype=bool)
    for a in NAMES:
        for b in NAMES:
            valid[INDEX[a], INDEX[b]] = bool(new_drugs(a, b))
    return valid


def weight_vector(weights: dict[str, float]) -> np.ndarray:
    vec = np.zeros(len(NAMES))
    for name, w in weights.items():
        vec[INDEX[name]] = w
    return vec


def era_of_year(year: np.ndarray) -> np.ndarray:
    """0..3 for eras A..D."""
    return np.select([year < 2018, year < 2020, year < 2023], [0, 1, 2], 3)


def era_table(table: dict[str, dict[str, float]]) -> np.ndarray:
    """(4 eras, regimens) weight matrix; an era missing from the table takes the previous one."""
    rows, last = [], None
    for era in "ABCD":
        if era in table:
            last = weight_vector(table[era])
        rows.append(last)
    return np.vstack(rows)
