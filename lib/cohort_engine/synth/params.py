"""Every distribution, rate and parameter of the synthetic extract, in one place.

docs/generator.md explains each of them; tests read them from here, so a change
of a rate changes what the tests expect.
"""
from __future__ import annotations

import datetime as dt
import math

DEFAULT_CUTOFF = dt.date(2025, 6, 30)
# Default size of `cohort-engine demo`: measured cohort of the seed study ≈ 650 (seed 42).
DEFAULT_DEMO_PATIENTS = 40_000

N_HOSPITALS = 1400
DX_START = dt.date(2010, 1, 1)       # earliest first diagnosis in the extract
DX_GROWTH = 2.0                      # density of first diagnoses rises linearly: 1 at start, 1+2 at cutoff
MONTH = 30.4375

# -- geography and hospitals ------------------------------------------------------
PROVINCES = (  # name, weight (≈ population share, in per cent)
    ("广东", 8.0), ("山东", 7.2), ("河南", 7.0), ("四川", 5.9), ("江苏", 6.0), ("河北", 5.3), ("湖南", 4.7),
    ("安徽", 4.3), ("湖北", 4.1), ("浙江", 4.6), ("广西", 3.5), ("云南", 3.3), ("江西", 3.2), ("辽宁", 3.0),
    ("福建", 2.9), ("陕西", 2.8), ("黑龙江", 2.2), ("山西", 2.5), ("贵州", 2.7), ("重庆", 2.3), ("吉林", 1.7),
    ("甘肃", 1.8), ("内蒙古", 1.7), ("上海", 1.8), ("新疆", 1.8), ("北京", 1.6), ("天津", 1.0), ("海南", 0.7),
    ("宁夏", 0.5), ("青海", 0.4), ("西藏", 0.3),
)
TIERS = ("3A", "3B", "3C", "2A", "2B", "other")
TIER_SHARE = (0.35, 0.15, 0.05, 0.25, 0.10, 0.10)
ONCOLOGY_SHARE = {"3A": 0.15, "3B": 0.10}   # share of specialist cancer hospitals per tier, else 0.03
TIER_PULL = (6.0, 3.0, 2.0, 1.5, 1.0, 0.7)  # relative chance a patient is treated at a hospital of each tier
ONCOLOGY_PULL = 3.0
P_OTHER_PROVINCE = 0.10                     # patient treated outside the province of residence
P_LINE_OTHER_HOSPITAL = 0.08                # a line given at another hospital of the same province

# -- cancers ------------------------------------------------------------------------
# code, name, share, female share, age mean, age sd, ICD-10 forms, P(metastatic at diagnosis),
# P(systemic therapy), median OS months if metastatic, cure share if not metastatic
CANCERS = (
    ("breast", 0.40, 0.99, 51.0, 11.0, ("C50.9", "C50.911", "c509", "C50.4", "C50.401", "C50.8"), None, None,
     None, None),
    ("lung", 0.17, 0.40, 62.0, 10.0, ("C34.9", "C34.1", "C34.101", "c349"), 0.50, 0.70, 14.0, 0.55),
    ("colorectal", 0.08, 0.42, 60.0, 11.0, ("C18.7", "C20", "C20.x00", "C18.9"), 0.30, 0.70, 24.0, 0.65),
    ("gastric", 0.07, 0.30, 61.0, 10.0, ("C16.9", "C16.0", "c169"), 0.40, 0.70, 11.0, 0.55),
    ("liver", 0.05, 0.20, 56.0, 10.0, ("C22.0", "C22.9"), 0.30, 0.20, 8.0, 0.40),
    ("esophageal", 0.04, 0.25, 63.0, 9.0, ("C15.9", "C15.4"), 0.30, 0.60, 10.0, 0.45),
    ("cervical", 0.04, 1.00, 52.0, 10.0, ("C53.9",), 0.15, 0.60, 16.0, 0.70),
    ("ovarian", 0.04, 1.00, 55.0, 10.0, ("C56", "C56.x00"), 0.20, 0.80, 30.0, 0.50),
    ("nasopharyngeal", 0.03, 0.30, 50.0, 11.0, ("C11.9",), 0.10, 0.70, 24.0, 0.75),
    ("lymphoma", 0.03, 0.45, 55.0, 14.0, ("C83.3", "C85.9"), 0.0, 0.80, 24.0, 0.60),
    ("thyroid", 0.02, 0.75, 45.0, 12.0, ("C73", "C73.x00"), 0.05, 0.02, 60.0, 0.95),
    ("pancreatic", 0.02, 0.40, 63.0, 9.0, ("C25.9",), 0.50, 0.60, 8.0, 0.20),
    ("prostate", 0.01, 0.00, 70.0, 8.0, ("C61",), 0.30, 0.50, 36.0, 0.80),
)
CANCER_NAMES = tuple(c[0] for c in CANCERS)
BREAST = 0
CANCER_TEXT = {
    "breast": ("乳腺恶性肿瘤", "乳腺癌", "左乳浸润性导管癌", "右乳浸润性导管癌", "breast cancer"),
    "lung": ("肺恶性肿瘤", "肺腺癌", "lung cancer"), "colorectal": ("结肠恶性肿瘤", "直肠癌"),
    "gastric": ("胃恶性肿瘤", "胃腺癌"), "liver": ("肝细胞癌", "肝恶性肿瘤"), "esophageal": ("食管鳞癌",),
    "cervical": ("宫颈鳞癌",), "ovarian": ("卵巢恶性肿瘤",), "nasopharyngeal": ("鼻咽癌",),
    "lymphoma": ("弥漫大B细胞淋巴瘤",), "thyroid": ("甲状腺乳头状癌",), "pancreatic": ("胰腺癌",),
    "prostate": ("前列腺癌",),
}

AGE_MIN, AGE_MAX = 14.0, 92.0

# -- breast cancer biology and course ------------------------------------------------
P_HER2_POSITIVE = 0.30          # biological HER2+ among breast cancers (enriched; ~20-25% in China)
P_HR_POS_HER2POS = 0.55
P_HR_POS_HER2NEG = 0.72
P_DE_NOVO = 0.14                # stage IV at diagnosis
EARLY_STAGES = (("I", 0.25), ("II", 0.45), ("III", 0.30))
STAGE_TEXT = {  # as written; none of them reads IV or carries M1
    "I": ("I", "IA", "Ⅰ", "T1N0M0", None),
    "II": ("IIA", "IIB", "ⅡA", "ⅡB", "T2N1M0", "T2N0M0", None),
    "III": ("IIIA", "IIIB", "IIIC", "ⅢA", "T3N2M0", None),
    "IV": ("IV", "Ⅳ", "ⅣA", "IV期", "T2N1M1", "T4N2M1"),
}
P_DE_NOVO_STAGE_RECORDED = 0.80  # else the stage is null and a C78/C79 record (≤ 40 days) gives the date
# Distant recurrence of early disease: exponential hazard per year by stage, after a 9-month minimum.
RECURRENCE_HAZARD = {"I": 0.025, "II": 0.07, "III": 0.16}   # enriched ×2 over Chinese series
RECURRENCE_HR_HER2_NO_ANTIHER2 = 1.6
RECURRENCE_MIN_DAYS = 270
# Metastatic sites at advanced diagnosis (independent draws; at least one site).
P_SITE = {"bone": 0.55, "lung": 0.35, "liver": 0.30, "brain": 0.10, "distant_nodes": 0.20}
SITE_CODES = {"bone": ("C79.5", "C79.51", "c795"), "lung": ("C78.0", "C78.000"), "liver": ("C78.7", "c787"),
              "brain": ("C79.3", "C79.31"), "distant_nodes": ("C77.3",), "pleura": ("C78.2",)}
P_NEW_BRAIN_AT_PROGRESSION = 0.12   # recorded with the progression (after index + 30: not a baseline site)

# HER2 recording plans (per biological status): shares sum to 1.
HER2_PLANS_POS = (("ihc3", 0.62), ("ihc2_ish_pos", 0.30), ("ihc2_only", 0.04), ("none", 0.04))
HER2_PLANS_NEG = (("ihc0", 0.30), ("ihc1", 0.35), ("ihc2_ish_neg", 0.20), ("ihc2_only", 0.07),
                  ("none", 0.08))
HER2_TEXT = {
    "ihc3": ("3+", "(+++)", "+++", "3+"),
    "ihc2": ("2+", "(++)", "2+"),
    "ihc1": ("1+", "(+)", "1+"),
    "ihc0": ("0", "(-)", "0", "阴性"),
    "ish_pos": ("amplified", "扩增", "positive", "阳性", "Amplified"),
    "ish_neg": ("not amplified", "无扩增", "negative", "阴性", "Not Amplified"),
}
HER2_MARKER_TEXT = ("HER2", "HER2", "HER2", "HER-2", "Her2", "c-erbB-2")
ISH_METHODS = ("ISH", "FISH", "DISH", "SISH")
P_ER_PR_MISSING = 0.05
P_REBIOPSY_AT_RECURRENCE = 0.30

# -- anti-HER2 access (reimbursement 2017 onward) ----------------------------------
def p_anti_her2_access(year):
    """Share of HER2+ patients whose treatment includes anti-HER2 drugs, by year."""
    import numpy as np
    year = np.asarray(year, dtype=float)
    return np.clip(0.45 + 0.05 * (year - 2013), 0.45, 0.93)


# -- survival ---------------------------------------------------------------------------
# Weibull time-to-event per first-line family: (median PFS months, shape, median OS months, shape).
# Medians are those of the reference profile; covariates scale time (AFT), see SURVIVAL_AFT.
FIRST_LINE_SURVIVAL = {
    "HP": (20.3, 1.25, 60.5, 1.35),       # population ≈ 17.5 / 53.5 (CLEOPATRA 18.7 / 57.1; PUFFIN 14.5)
    "H": (12.6, 1.30, 42.0, 1.35),        # population ≈ 11 / 38 (CLEOPATRA control 12.4 / 40.8; M77001 11.7)
    "I": (11.5, 1.30, 39.0, 1.35),
    "H_TKI": (22.0, 1.25, 60.5, 1.35),    # PHILA 24.3
    "PYRO_CAP": (13.8, 1.25, 45.0, 1.35),  # PHOEBE 12.5
    "LAP_CAP": (8.8, 1.30, 32.5, 1.35),
    "TDM1": (15.5, 1.20, 54.0, 1.35),     # MARIANNE 14.1 / 53.7
    "TDXD": (30.0, 1.20, 65.0, 1.35),
    "CHEMO_HER2": (7.2, 1.30, 28.0, 1.35),
    "ET_CDK": (26.0, 1.20, 59.0, 1.35),
    "ET": (14.3, 1.20, 48.5, 1.35),
    "CHEMO": (7.7, 1.30, 23.8, 1.35),
}
# Later lines: median PFS months per family (shape 1.2).
LATER_LINE_PFS = {"HP": 9.0, "H": 6.0, "I": 6.0, "H_TKI": 10.0, "PYRO_CAP": 11.0, "LAP_CAP": 6.0,
                  "TDM1": 7.0, "TDXD": 20.0, "CHEMO_HER2": 4.5, "ET_CDK": 10.0, "ET": 6.0, "CHEMO": 4.5}
LATER_LINE_SHAPE = 1.2
PFS_OS_CORRELATION = 0.6       # Gaussian copula between first-line PFS and OS
SURVIVAL_AFT = {"brain": 0.70, "visceral": 0.85, "hr_positive": 1.10, "de_novo": 1.10, "age65": 0.90}
UNTREATED_ADVANCED_OS = (12.0, 1.2)
NON_BREAST_PFS = (6.0, 1.2)
NON_CURED_OS = (48.0, 1.2)
# Background (other-cause) mortality: exponential, rate per year = 0.005 × 2^((age − 50) / 8).
BACKGROUND_RATE_50 = 0.005
BACKGROUND_DOUBLING_YEARS = 8.0

P_NEXT_LINE = (0.80, 0.70, 0.55)   # after progression on advanced line 1, 2, 3
MAX_ADVANCED_LINES = 4
NEXT_LINE_DELAY_DAYS = (5, 35)
P_STOP_WITHOUT_PROGRESSION = 0.10  # first line stopped early (cost, patient choice) before progression
P_ENDOCRINE_MAINTENANCE = 0.35     # HR+ patients add an endocrine drug after the taxane stops
P_LOST_TO_FOLLOW_UP = 0.08
MIN_LINE_DAYS = 42                  # a next line never starts earlier than this after the line start

# -- tumor assessments ----------------------------------------------------------------
P_ASSESSED = 0.75                   # the rest have no assessment at all (the rwPFS proxy case)
ASSESSMENT_INTERVALS = (42, 56, 63, 84)
ASSESSMENT_JITTER = 7
P_BASELINE_ASSESSMENT = 0.50
ORR = {"HP": 0.80, "H": 0.65, "I": 0.60, "H_TKI": 0.80, "PYRO_CAP": 0.70, "LAP_CAP": 0.45, "TDM1": 0.60,
       "TDXD": 0.75, "CHEMO_HER2": 0.40, "ET_CDK": 0.45, "ET": 0.30, "CHEMO": 0.35}
P_CHINESE_RESPONSE = 0.30
P_NE_READING = 0.03

# -- treatment details ------------------------------------------------------------------
TAXANE_CYCLES = (4, 5, 6, 6, 6, 7, 8, 8)   # q3w cycles of the taxane phase (weekly: 3 doses per cycle)
P_WEEKLY = {"paclitaxel liposome": 0.20, "paclitaxel": 0.55, "nab-paclitaxel": 0.30, "docetaxel": 0.0}
ADMIN_DELAY = ((0, 0.55), (1, 0.20), (2, 0.10), (3, 0.07), (7, 0.08))  # days a dose is late (non-cumulative)
P_FIXED_DOSE_HP = 0.25             # 2023+: HP maintenance as the fixed-dose subcutaneous product
P_DOSE_MISSING = 0.02

# -- toxicity -------------------------------------------------------------------------------
P_NEUTROPENIA_G3 = {"paclitaxel liposome": 0.20, "paclitaxel": 0.22, "nab-paclitaxel": 0.26,
                    "docetaxel": 0.38}
P_NADIR_LAB = 0.35                 # taxane doses followed by a nadir blood count (day 7-12)
P_LAB_MAINTENANCE = 0.5            # antibody/TKI-only days with a blood count
P_CHEMISTRY = 0.35                 # blood-count days that also have ALT, AST, TBIL, CREA
P_LVEF_DECLINE = 0.03              # per patient on an anti-HER2 antibody or ADC
P_LVEF_GRADE3 = 0.30               # of those declines
P_PLT_G3_TDM1 = 0.08
P_ALT_RISE = {"pyrotinib": 0.10, "trastuzumab emtansine": 0.15, "capecitabine": 0.05, "lapatinib": 0.10}
P_ALT_G3 = 0.15
P_HGB_G_DL = 0.10                  # hospitals reporting hemoglobin in g/dL
P_UMOL_MG_DL = 0.05                # bilirubin/creatinine in mg/dL
P_NO_VITALS = 0.10
P_VITALS_PER_CYCLE = 0.60

# -- confounded taxane choice (generate --confounded-taxane; off by default) ---------------------
# HER2+ patients whose first advanced line is an anti-HER2 antibody + a taxane: the taxane is paclitaxel
# liposome with probability logistic(intercept + Σ coefficient × covariate), covariates the engine's
# study variables read (age and year centred, age per 10 years); the backbone (H, HP, H + pyrotinib)
# is drawn as without the switch. The liposome goes to the frailer patients (better tolerated, no
# steroid-heavy premedication): older ones, those with visceral or brain metastases, and more often
# after a recurrence than de novo, and less often in later years as nab-paclitaxel spreads; all of
# these have a worse prognosis, so a naive comparison makes the liposome look worse than it is.
CONFOUNDED_TAXANE_LOGIT = {"intercept": 0.3, "age_per_10_years": 0.6, "visceral": 1.2, "brain": 1.0,
                           "de_novo": -1.0, "index_year": -0.15}
CONFOUNDED_AGE_CENTRE = 55.0
CONFOUNDED_YEAR_CENTRE = 2019
# Planted effects of paclitaxel liposome against a conventional taxane (the same backbone):
CONFOUNDED_PROGRESSION_HR = 0.80     # conditional hazard ratio of the first-line progression time
# Grade >= 3 hypersensitivity at the first taxane dose of the first line: risk with a conventional
# taxane at the centre age, odds ratio per 10 years of age, conditional odds ratio of the liposome.
CONFOUNDED_HYPERSENSITIVITY_RISK = 0.06
CONFOUNDED_HYPERSENSITIVITY_OR_PER_10_YEARS = 2.0
CONFOUNDED_HYPERSENSITIVITY_OR_LIPOSOME = 0.35

# -- noise (unless --clean): share of each table's clean rows added as bad rows -------------
NOISE = {
    "unparseable_date": 0.002,
    "date_out_of_range": 0.001,
    "exact_duplicate": 0.005,          # prescriptions; 0.002 in the other patient tables
    "exact_duplicate_other": 0.002,
    "orphan_patient_id": 0.001,
    "non_positive_dose": 0.001,
    "conflicting_record_id": 0.0005,   # prescriptions: same record_id, another dose
    "unknown_unit": 0.001,
    "unmatched_drug_name": 0.005,
    "unreadable_her2": 0.02,           # of HER2 rows
    "unlinkable": 0.08,                # of patients: id_hash null
    "duplicate_death": 0.02,           # of death registrations: a later second registration
    "death_before_birth": 0.0005,      # of patients: a registration dated before birth
    "duplicate_patient_row": 0.001,
    "name_decoration": 0.35,           # rows whose drug name is decorated (case, full-width, spaces)
    "unit_variant": 0.05,              # valid unit spellings: 'MG', 'mg ', 'Mg', 'mg/m²', 'μg'
    "printed_name": 0.35,              # prescription rows whose name is printed as a pharmacy prints it
                                       # (drugs.printed_name: brand/maker/origin in brackets, strength)
    "ambiguous_date": 0.002,           # of every dated table: copy with the date as 05/03/2019 (day-first
                                       # or month-first, both readings valid and different)
}
# Valid dates written in another form (noisy extracts), share of the rows of every dated table; each
# means the same calendar date in Asia/Shanghai (dates.FORM_EXAMPLES). 20 % in all; the rest ISO.
DATE_FORMS = {
    "datetime": 0.06,        # 2019-03-05 08:30:00 (a daytime clock; 00:00:00 for birth and death dates)
    "iso_offset": 0.02,      # 2019-03-05T08:30:00+08:00
    "slash": 0.04,           # 2019/03/05
    "slash_unpadded": 0.02,  # 2019/3/5
    "dot": 0.02,             # 2019.03.05
    "compact": 0.02,         # 20190305
    "chinese": 0.02,         # 2019年3月5日
}
# pandas-style Parquet (--parquet-writer pandas): date columns are datetime64[ns]; these tables'
# are tz-aware Asia/Shanghai (stored as UTC instants), the others naive local date-times.
PANDAS_TZ_TABLES = ("prescriptions", "labs", "visits", "tumor_assessments", "vitals")
BAD_DATE_TEXT = ("2021-13-45", "20210105x", "2019/02/30", "2020-02-30", "31-12-2019", "2018-00-12",
                 "N/A", "2022-1-5x", "未知", "20-20-2020")
UNKNOWN_UNITS = ("ml", "IU", "支", "片", "mmol", "mg/ml")
UNREADABLE_HER2 = ("见报告", "?", "equivocal?", "待定", "详见病理报告", "不明确")
REGISTRY_EXTRA_DEATHS = 0.05       # registry rows of people outside the extract, per patient


def weibull_scale(median: float, shape: float) -> float:
    return median / math.log(2.0) ** (1.0 / shape)
