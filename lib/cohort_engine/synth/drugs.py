"""Drug names as the synthetic extract writes them (data, and the composition of printed names).

Each ingredient has its class, an ATC code where one is certain, the canonical
name written by a `--clean` extract, and the raw forms a hospital system writes:
Chinese generic names, formulation words (注射用…, …注射液, …片), brands (Chinese and
English), English generic names. The generator further decorates a share of rows
(letter case, full-width characters, extra spaces): see `_decorations` in prescription_tables.py.

A noisy extract also writes names as pharmacy systems print them, composed from
these forms: `printed_forms(product)` lists every printed name of a product and
`printed_name(product, rng)` draws one (docs/generator.md, "Printed names").

This module is the single place the vocabulary (conf/vocabulary/drugs.csv, written
independently) can be checked against: every form in `NAME_FORMS` must map to its
ingredient once case, full-width characters, spaces and formulation words are
normalised, and no form in `GARBLED_NAMES` may map to anything.
"""
from __future__ import annotations

import functools
import itertools

import numpy as np

# ingredient -> (class, ATC code or None, canonical name)
INGREDIENTS: dict[str, tuple[str, str | None, str]] = {
    # taxanes (one ATC code for the three paclitaxel formulations)
    "paclitaxel liposome": ("taxane", "L01CD01", "紫杉醇脂质体"),
    "paclitaxel": ("taxane", "L01CD01", "紫杉醇"),
    "nab-paclitaxel": ("taxane", "L01CD01", "白蛋白结合型紫杉醇"),
    "docetaxel": ("taxane", "L01CD02", "多西他赛"),
    # anti-HER2 monoclonal antibodies
    "trastuzumab": ("anti_her2_mab", "L01FD01", "曲妥珠单抗"),
    "pertuzumab": ("anti_her2_mab", "L01FD02", "帕妥珠单抗"),
    "inetetumab": ("anti_her2_mab", None, "伊尼妥单抗"),
    # anti-HER2 tyrosine kinase inhibitors
    "pyrotinib": ("anti_her2_tki", None, "吡咯替尼"),
    "lapatinib": ("anti_her2_tki", "L01EH01", "拉帕替尼"),
    "neratinib": ("anti_her2_tki", "L01EH02", "奈拉替尼"),
    # antibody-drug conjugates
    "trastuzumab emtansine": ("anti_her2_adc", "L01FD03", "恩美曲妥珠单抗"),
    "trastuzumab deruxtecan": ("anti_her2_adc", "L01FD04", "德曲妥珠单抗"),
    # other chemotherapy
    "capecitabine": ("chemo_other", "L01BC06", "卡培他滨"),
    "vinorelbine": ("chemo_other", "L01CA04", "长春瑞滨"),
    "gemcitabine": ("chemo_other", "L01BC05", "吉西他滨"),
    "eribulin": ("chemo_other", "L01XX41", "艾立布林"),
    "cisplatin": ("chemo_other", "L01XA01", "顺铂"),
    "carboplatin": ("chemo_other", "L01XA02", "卡铂"),
    "doxorubicin": ("chemo_other", "L01DB01", "多柔比星"),
    "epirubicin": ("chemo_other", "L01DB03", "表柔比星"),
    "pegylated liposomal doxorubicin": ("chemo_other", "L01DB01", "多柔比星脂质体"),
    "cyclophosphamide": ("chemo_other", "L01AA01", "环磷酰胺"),
    "fluorouracil": ("chemo_other", "L01BC02", "氟尿嘧啶"),
    # endocrine therapy
    "tamoxifen": ("endocrine", "L02BA01", "他莫昔芬"),
    "toremifene": ("endocrine", "L02BA02", "托瑞米芬"),
    "letrozole": ("endocrine", "L02BG04", "来曲唑"),
    "anastrozole": ("endocrine", "L02BG03", "阿那曲唑"),
    "exemestane": ("endocrine", "L02BG06", "依西美坦"),
    "fulvestrant": ("endocrine", "L02BA03", "氟维司群"),
    "goserelin": ("endocrine", "L02AE03", "戈舍瑞林"),
    "leuprorelin": ("endocrine", "L02AE02", "亮丙瑞林"),
    # CDK4/6 inhibitors
    "palbociclib": ("cdk46_inhibitor", "L01EF01", "哌柏西利"),
    "abemaciclib": ("cdk46_inhibitor", "L01EF03", "阿贝西利"),
    "dalpiciclib": ("cdk46_inhibitor", None, "达尔西利"),
    # supportive care: never counts for lines of therapy
    "ondansetron": ("supportive", "A04AA01", "昂丹司琼"),
    "granisetron": ("supportive", "A04AA02", "格拉司琼"),
    "palonosetron": ("supportive", "A04AA05", "帕洛诺司琼"),
    "aprepitant": ("supportive", "A04AD12", "阿瑞匹坦"),
    "dexamethasone": ("supportive", "H02AB02", "地塞米松"),
    "filgrastim": ("supportive", "L03AA02", "重组人粒细胞刺激因子"),
    "pegfilgrastim": ("supportive", "L03AA13", "聚乙二醇化重组人粒细胞刺激因子"),
    "zoledronic acid": ("supportive", "M05BA08", "唑来膦酸"),
    "denosumab": ("supportive", "M05BX04", "地舒单抗"),
}

# The fixed-dose pertuzumab + trastuzumab product: one prescription row, two ingredients.
FIXED_DOSE_HP = "pertuzumab+trastuzumab"
FIXED_DOSE_HP_INGREDIENTS = ("pertuzumab", "trastuzumab")
FIXED_DOSE_HP_ATC = "L01FY01"
FIXED_DOSE_HP_CANONICAL = "帕妥珠单抗曲妥珠单抗注射液"

# Raw forms per ingredient, as hospital systems write them (before decoration).
NAME_FORMS: dict[str, tuple[str, ...]] = {
    "paclitaxel liposome": ("紫杉醇脂质体", "注射用紫杉醇脂质体", "力扑素", "Lipusu", "paclitaxel liposome",
                            "Paclitaxel Liposome for Injection"),
    "paclitaxel": ("紫杉醇", "紫杉醇注射液", "泰素", "Taxol", "paclitaxel", "Paclitaxel Injection"),
    "nab-paclitaxel": ("白蛋白结合型紫杉醇", "注射用紫杉醇(白蛋白结合型)", "紫杉醇(白蛋白结合型)", "克艾力",
                       "Abraxane", "nab-paclitaxel", "paclitaxel albumin-bound"),
    "docetaxel": ("多西他赛", "多西他赛注射液", "泰索帝", "艾素", "Taxotere", "docetaxel"),
    "trastuzumab": ("曲妥珠单抗", "注射用曲妥珠单抗", "曲妥珠单抗注射液", "赫赛汀", "Herceptin", "汉曲优",
                    "Zercepac", "trastuzumab", "Trastuzumab for Injection"),
    "pertuzumab": ("帕妥珠单抗", "帕妥珠单抗注射液", "帕捷特", "Perjeta", "pertuzumab"),
    "inetetumab": ("伊尼妥单抗", "注射用伊尼妥单抗", "赛普汀", "Cipterbin", "inetetumab"),
    "pyrotinib": ("吡咯替尼", "马来酸吡咯替尼片", "艾瑞妮", "Irene", "pyrotinib", "pyrotinib maleate tablets"),
    "lapatinib": ("拉帕替尼", "甲苯磺酸拉帕替尼片", "泰立沙", "Tykerb", "lapatinib"),
    "neratinib": ("奈拉替尼", "马来酸奈拉替尼片", "贺俪安", "Nerlynx", "neratinib"),
    "trastuzumab emtansine": ("恩美曲妥珠单抗", "注射用恩美曲妥珠单抗", "赫赛莱", "Kadcyla", "T-DM1",
                              "trastuzumab emtansine"),
    "trastuzumab deruxtecan": ("德曲妥珠单抗", "注射用德曲妥珠单抗", "优赫得", "Enhertu", "T-DXd",
                               "trastuzumab deruxtecan"),
    "capecitabine": ("卡培他滨", "卡培他滨片", "希罗达", "Xeloda", "capecitabine", "Capecitabine Tablets"),
    "vinorelbine": ("长春瑞滨", "酒石酸长春瑞滨注射液", "诺维本", "Navelbine", "vinorelbine"),
    "gemcitabine": ("吉西他滨", "注射用盐酸吉西他滨", "健择", "Gemzar", "gemcitabine"),
    "eribulin": ("艾立布林", "甲磺酸艾立布林注射液", "海乐卫", "Halaven", "eribulin"),
    "cisplatin": ("顺铂", "顺铂注射液", "注射用顺铂", "cisplatin"),
    "carboplatin": ("卡铂", "卡铂注射液", "伯尔定", "Paraplatin", "carboplatin"),
    "doxorubicin": ("多柔比星", "盐酸多柔比星注射液", "阿霉素", "Adriamycin", "doxorubicin"),
    "epirubicin": ("表柔比星", "注射用盐酸表柔比星", "表阿霉素", "法玛新", "Pharmorubicin", "epirubicin"),
    "pegylated liposomal doxorubicin": ("多柔比星脂质体", "盐酸多柔比星脂质体注射液", "里葆多",
                                        "pegylated liposomal doxorubicin"),
    "cyclophosphamide": ("环磷酰胺", "注射用环磷酰胺", "安道生", "Endoxan", "cyclophosphamide"),
    "fluorouracil": ("氟尿嘧啶", "氟尿嘧啶注射液", "5-FU", "fluorouracil"),
    "tamoxifen": ("他莫昔芬", "枸橼酸他莫昔芬片", "诺瓦得士", "Nolvadex", "tamoxifen"),
    "toremifene": ("托瑞米芬", "枸橼酸托瑞米芬片", "法乐通", "Fareston", "toremifene"),
    "letrozole": ("来曲唑", "来曲唑片", "弗隆", "Femara", "letrozole"),
    "anastrozole": ("阿那曲唑", "阿那曲唑片", "瑞宁得", "Arimidex", "anastrozole"),
    "exemestane": ("依西美坦", "依西美坦片", "阿诺新", "Aromasin", "exemestane"),
    "fulvestrant": ("氟维司群", "氟维司群注射液", "芙仕得", "Faslodex", "fulvestrant"),
    "goserelin": ("戈舍瑞林", "醋酸戈舍瑞林缓释植入剂", "诺雷得", "Zoladex", "goserelin"),
    "leuprorelin": ("亮丙瑞林", "注射用醋酸亮丙瑞林微球", "抑那通", "Enantone", "leuprorelin"),
    "palbociclib": ("哌柏西利", "哌柏西利胶囊", "爱博新", "Ibrance", "palbociclib"),
    "abemaciclib": ("阿贝西利", "阿贝西利片", "唯择", "Verzenio", "abemaciclib"),
    "dalpiciclib": ("达尔西利", "羟乙磺酸达尔西利片", "艾瑞康", "dalpiciclib"),
    "ondansetron": ("昂丹司琼", "盐酸昂丹司琼注射液", "枢复宁", "Zofran", "ondansetron"),
    "granisetron": ("格拉司琼", "盐酸格拉司琼注射液", "康泉", "Kytril", "granisetron"),
    "palonosetron": ("帕洛诺司琼", "盐酸帕洛诺司琼注射液", "Aloxi", "palonosetron"),
    "aprepitant": ("阿瑞匹坦", "阿瑞匹坦胶囊", "意美", "Emend", "aprepitant"),
    "dexamethasone": ("地塞米松", "地塞米松磷酸钠注射液", "dexamethasone"),
    "filgrastim": ("重组人粒细胞刺激因子", "重组人粒细胞刺激因子注射液", "rhG-CSF", "瑞白", "filgrastim"),
    "pegfilgrastim": ("聚乙二醇化重组人粒细胞刺激因子", "聚乙二醇化重组人粒细胞刺激因子注射液", "津优力",
                      "PEG-rhG-CSF", "pegfilgrastim"),
    "zoledronic acid": ("唑来膦酸", "唑来膦酸注射液", "择泰", "Zometa", "zoledronic acid"),
    "denosumab": ("地舒单抗", "地舒单抗注射液", "安加维", "Xgeva", "denosumab"),
    FIXED_DOSE_HP: ("帕妥珠单抗曲妥珠单抗注射液", "帕妥珠单抗曲妥珠单抗注射液(皮下注射)", "Phesgo",
                    "pertuzumab and trastuzumab"),
}

# Names no vocabulary entry may match (free text, truncations, trial drugs).
GARBLED_NAMES: tuple[str, ...] = (
    "???", "自备药", "化疗药物", "试验用药品", "紫杉?脂质", "Trastuzu", "赫赛", "进口药(见医嘱)",
    "XYZ-2021", "药品名称缺失", "0", "同上",
)

# How a row's drug name is chosen in a noisy extract: weight of each kind of form.
# Forms are listed per ingredient above; the kind of each form is found by its script.
FORM_WEIGHTS = {"chinese": 0.70, "latin": 0.30}

# Share of rows that carry an ATC code in drug_code (else null).
DRUG_CODE_SHARE = 0.35

ROUTES = {
    "paclitaxel liposome": "iv", "paclitaxel": "iv", "nab-paclitaxel": "iv", "docetaxel": "iv",
    "trastuzumab": "iv", "pertuzumab": "iv", "inetetumab": "iv", "pyrotinib": "po", "lapatinib": "po",
    "neratinib": "po", "trastuzumab emtansine": "iv", "trastuzumab deruxtecan": "iv", "capecitabine": "po",
    "vinorelbine": "iv", "gemcitabine": "iv", "eribulin": "iv", "cisplatin": "iv", "carboplatin": "iv",
    "doxorubicin": "iv", "epirubicin": "iv", "pegylated liposomal doxorubicin": "iv",
    "cyclophosphamide": "iv", "fluorouracil": "iv", "tamoxifen": "po", "toremifene": "po",
    "letrozole": "po", "anastrozole": "po", "exemestane": "po", "fulvestrant": None, "goserelin": "sc",
    "leuprorelin": "sc", "palbociclib": "po", "abemaciclib": "po", "dalpiciclib": "po",
    "ondansetron": "iv", "granisetron": "iv", "palonosetron": "iv", "aprepitant": "po",
    "dexamethasone": "iv", "filgrastim": "sc", "pegfilgrastim": "sc", "zoledronic acid": "iv",
    "denosumab": "sc", FIXED_DOSE_HP: "sc",
}


def drug_class(ingredient: str) -> str:
    return INGREDIENTS[ingredient][0]


def counts_for_lines(ingredient: str) -> bool:
    return drug_class(ingredient) != "supportive"


# A stable integer code per product (ingredients, then the fixed-dose product).
PRODUCTS: tuple[str, ...] = tuple(INGREDIENTS) + (FIXED_DOSE_HP,)
CODE = {name: i for i, name in enumerate(PRODUCTS)}


# -- printed names ----------------------------------------------------------------------------------
# How a pharmacy system prints a drug: the generic name with its formulation words, the brand in
# brackets before or after it, the maker or the origin in brackets, strength and package text, or
# brand and generic side by side. Every piece comes from the data below; every brand is one of the
# product's own NAME_FORMS, so a bracketed brand never names another drug.

# Brands per product (each one of the product's NAME_FORMS), Chinese and English.
BRANDS: dict[str, tuple[str, ...]] = {
    "paclitaxel liposome": ("力扑素", "Lipusu"),
    "paclitaxel": ("泰素", "Taxol"),
    "nab-paclitaxel": ("克艾力", "Abraxane"),
    "docetaxel": ("泰索帝", "艾素", "Taxotere"),
    "trastuzumab": ("赫赛汀", "汉曲优", "Herceptin", "Zercepac"),
    "pertuzumab": ("帕捷特", "Perjeta"),
    "inetetumab": ("赛普汀", "Cipterbin"),
    "pyrotinib": ("艾瑞妮", "Irene"),
    "lapatinib": ("泰立沙", "Tykerb"),
    "neratinib": ("贺俪安", "Nerlynx"),
    "trastuzumab emtansine": ("赫赛莱", "Kadcyla"),
    "trastuzumab deruxtecan": ("优赫得", "Enhertu"),
    "capecitabine": ("希罗达", "Xeloda"),
    "vinorelbine": ("诺维本", "Navelbine"),
    "gemcitabine": ("健择", "Gemzar"),
    "eribulin": ("海乐卫", "Halaven"),
    "cisplatin": (),
    "carboplatin": ("伯尔定", "Paraplatin"),
    "doxorubicin": ("Adriamycin",),
    "epirubicin": ("法玛新", "Pharmorubicin"),
    "pegylated liposomal doxorubicin": ("里葆多",),
    "cyclophosphamide": ("安道生", "Endoxan"),
    "fluorouracil": (),
    "tamoxifen": ("诺瓦得士", "Nolvadex"),
    "toremifene": ("法乐通", "Fareston"),
    "letrozole": ("弗隆", "Femara"),
    "anastrozole": ("瑞宁得", "Arimidex"),
    "exemestane": ("阿诺新", "Aromasin"),
    "fulvestrant": ("芙仕得", "Faslodex"),
    "goserelin": ("诺雷得", "Zoladex"),
    "leuprorelin": ("抑那通", "Enantone"),
    "palbociclib": ("爱博新", "Ibrance"),
    "abemaciclib": ("唯择", "Verzenio"),
    "dalpiciclib": ("艾瑞康",),
    "ondansetron": ("枢复宁", "Zofran"),
    "granisetron": ("康泉", "Kytril"),
    "palonosetron": ("Aloxi",),
    "aprepitant": ("意美", "Emend"),
    "dexamethasone": (),
    "filgrastim": ("瑞白",),
    "pegfilgrastim": ("津优力",),
    "zoledronic acid": ("择泰", "Zometa"),
    "denosumab": ("安加维", "Xgeva"),
    FIXED_DOSE_HP: ("Phesgo",),
}

# Maker (marketing company in China) and origin of a brand, where known; None where not.
BRAND_MAKER: dict[str, tuple[str | None, str | None]] = {
    "力扑素": ("绿叶制药", "国产"), "Lipusu": ("绿叶制药", "国产"),
    "泰素": ("百时美施贵宝", "进口"), "Taxol": ("百时美施贵宝", "进口"),
    "克艾力": ("石药集团", "国产"), "Abraxane": (None, "进口"),
    "泰索帝": ("赛诺菲", "进口"), "Taxotere": ("赛诺菲", "进口"), "艾素": ("江苏恒瑞", "国产"),
    "赫赛汀": ("上海罗氏", "进口"), "Herceptin": ("上海罗氏", "进口"),
    "汉曲优": ("复宏汉霖", "国产"), "Zercepac": ("复宏汉霖", "国产"),
    "帕捷特": ("上海罗氏", "进口"), "Perjeta": ("上海罗氏", "进口"),
    "赛普汀": ("三生国健", "国产"), "Cipterbin": ("三生国健", "国产"),
    "艾瑞妮": ("江苏恒瑞", "国产"), "Irene": ("江苏恒瑞", "国产"),
    "泰立沙": ("诺华", "进口"), "Tykerb": ("诺华", "进口"),
    "贺俪安": (None, "进口"), "Nerlynx": (None, "进口"),
    "赫赛莱": ("上海罗氏", "进口"), "Kadcyla": ("上海罗氏", "进口"),
    "优赫得": ("阿斯利康", "进口"), "Enhertu": ("阿斯利康", "进口"),
    "希罗达": ("上海罗氏", None), "Xeloda": ("上海罗氏", None),
    "诺维本": (None, "进口"), "Navelbine": (None, "进口"),
    "健择": ("礼来", "进口"), "Gemzar": ("礼来", "进口"),
    "海乐卫": ("卫材", "进口"), "Halaven": ("卫材", "进口"),
    "伯尔定": ("百时美施贵宝", "进口"), "Paraplatin": ("百时美施贵宝", "进口"),
    "Adriamycin": ("辉瑞", "进口"),
    "法玛新": ("辉瑞", "进口"), "Pharmorubicin": ("辉瑞", "进口"),
    "里葆多": (None, "国产"),
    "安道生": (None, "进口"), "Endoxan": (None, "进口"),
    "诺瓦得士": ("阿斯利康", "进口"), "Nolvadex": ("阿斯利康", "进口"),
    "法乐通": (None, "进口"), "Fareston": (None, "进口"),
    "弗隆": ("诺华", "进口"), "Femara": ("诺华", "进口"),
    "瑞宁得": ("阿斯利康", "进口"), "Arimidex": ("阿斯利康", "进口"),
    "阿诺新": ("辉瑞", "进口"), "Aromasin": ("辉瑞", "进口"),
    "芙仕得": ("阿斯利康", "进口"), "Faslodex": ("阿斯利康", "进口"),
    "诺雷得": ("阿斯利康", "进口"), "Zoladex": ("阿斯利康", "进口"),
    "抑那通": (None, "进口"), "Enantone": (None, "进口"),
    "爱博新": ("辉瑞", "进口"), "Ibrance": ("辉瑞", "进口"),
    "唯择": ("礼来", "进口"), "Verzenio": ("礼来", "进口"),
    "艾瑞康": ("江苏恒瑞", "国产"),
    "枢复宁": ("诺华", "进口"), "Zofran": ("诺华", "进口"),
    "康泉": (None, None), "Kytril": (None, "进口"),
    "Aloxi": (None, "进口"),
    "意美": ("默沙东", "进口"), "Emend": ("默沙东", "进口"),
    "瑞白": ("齐鲁制药", "国产"),
    "津优力": ("石药集团", "国产"),
    "择泰": ("诺华", "进口"), "Zometa": ("诺华", "进口"),
    "安加维": ("安进", "进口"), "Xgeva": ("安进", "进口"),
    "Phesgo": ("上海罗氏", "进口"),
}

# Domestic makers of generic (unbranded) versions, printed in brackets after the generic name.
GENERIC_MAKERS: dict[str, tuple[str, ...]] = {
    "paclitaxel": ("正大天晴",), "docetaxel": ("齐鲁制药", "正大天晴"), "capecitabine": ("江苏恒瑞", "齐鲁制药"),
    "gemcitabine": ("齐鲁制药",), "cisplatin": ("齐鲁制药",), "carboplatin": ("齐鲁制药",),
    "letrozole": ("江苏恒瑞",), "anastrozole": ("正大天晴",), "fulvestrant": ("正大天晴", "齐鲁制药"),
    "ondansetron": ("齐鲁制药",), "pegfilgrastim": ("齐鲁制药",), "zoledronic acid": ("正大天晴",),
    "epirubicin": ("石药集团",), "fluorouracil": ("石药集团",),
}
ORIGINS = ("进口", "国产")
MAKERS = tuple(dict.fromkeys([m for m, _ in BRAND_MAKER.values() if m]
                             + [m for ms in GENERIC_MAKERS.values() for m in ms]))

# Strength and package text, as printed after the name (two per product).
STRENGTHS: dict[str, tuple[str, str]] = {
    "paclitaxel liposome": ("30mg", "30mg/支"), "paclitaxel": ("30mg/5ml", "100mg/16.7ml"),
    "nab-paclitaxel": ("100mg", "100mg/瓶"), "docetaxel": ("20mg/1ml", "80mg/4ml"),
    "trastuzumab": ("440mg", "150mg/支"), "pertuzumab": ("420mg/14ml", "420mg"),
    "inetetumab": ("50mg", "50mg/瓶"), "pyrotinib": ("80mg", "80mg*14片"),
    "lapatinib": ("250mg", "250mg*70片"), "neratinib": ("40mg", "40mg*180片"),
    "trastuzumab emtansine": ("100mg", "160mg/瓶"), "trastuzumab deruxtecan": ("100mg", "100mg/瓶"),
    "capecitabine": ("500mg", "0.5g*12片"), "vinorelbine": ("10mg/1ml", "50mg/5ml"),
    "gemcitabine": ("0.2g", "1.0g/支"), "eribulin": ("1mg", "1mg/2ml"),
    "cisplatin": ("20mg", "10mg/2ml"), "carboplatin": ("150mg", "100mg/10ml"),
    "doxorubicin": ("10mg", "10mg/支"), "epirubicin": ("10mg", "50mg/支"),
    "pegylated liposomal doxorubicin": ("20mg", "20mg/10ml"), "cyclophosphamide": ("0.2g", "1.0g/支"),
    "fluorouracil": ("250mg", "0.25g/10ml"), "tamoxifen": ("10mg", "10mg*60片"),
    "toremifene": ("60mg", "60mg*30片"), "letrozole": ("2.5mg", "2.5mg*30片"),
    "anastrozole": ("1mg", "1mg*28片"), "exemestane": ("25mg", "25mg*30片"),
    "fulvestrant": ("250mg", "250mg/5ml"), "goserelin": ("3.6mg", "10.8mg"),
    "leuprorelin": ("3.75mg", "3.75mg/支"), "palbociclib": ("125mg", "125mg*21粒"),
    "abemaciclib": ("150mg", "150mg*14片"), "dalpiciclib": ("125mg", "150mg*14片"),
    "ondansetron": ("4mg/2ml", "8mg/4ml"), "granisetron": ("3mg", "3mg/3ml"),
    "palonosetron": ("0.25mg", "0.25mg/5ml"), "aprepitant": ("125mg", "80mg"),
    "dexamethasone": ("5mg", "5mg/1ml"), "filgrastim": ("100μg", "150μg/支"),
    "pegfilgrastim": ("3mg", "6mg/支"), "zoledronic acid": ("4mg", "4mg/5ml"),
    "denosumab": ("120mg", "120mg/1.7ml"), FIXED_DOSE_HP: ("1200mg/600mg/15ml", "600mg/600mg/10ml"),
}

# Brackets of any width, and how often each is used.
BRACKETS = (("(", ")"), ("（", "）"), ("【", "】"), ("[", "]"))
BRACKET_WEIGHTS = (0.40, 0.35, 0.15, 0.10)
# The shapes of a printed name and their weights, per script of the generic name (G generic with
# formulation words, B brand, M maker or origin, S strength; [..] brackets; S is optional after
# "G[B]" (half of them) and required in "G S"). Latin names carry no maker.
PRINTED_SCRIPT = {"chinese": 0.80, "latin": 0.20}
PRINTED_TEMPLATES = {
    "chinese": {"G[B]": 0.30, "[B]G": 0.10, "G[M]": 0.15, "G[B][M]": 0.15, "B G": 0.10, "G B": 0.05, "G S": 0.15},
    "latin": {"G[B]": 0.45, "[B]G": 0.10, "B G": 0.15, "G B": 0.10, "G S": 0.20},
}
P_PRINTED_STRENGTH = 0.5
FORMULATION_WORDS = ("注射用", "注射液", "片", "胶囊", "植入剂", "微球", "for Injection", "Injection", "Tablets",
                     "tablets")


def _is_latin(text: str) -> bool:
    return all(ord(ch) < 128 for ch in text)


def printed_generic(product: str, script: str) -> str:
    """The generic name a printed name starts from: the product's first non-brand form of that script
    with formulation words, else its plain generic name (canonical Chinese / the English key)."""
    forms = [f for f in NAME_FORMS[product] if f not in BRANDS[product] and _is_latin(f) == (script == "latin")]
    with_words = [f for f in forms if any(w in f for w in FORMULATION_WORDS)]
    if with_words:
        return with_words[0]
    if script == "chinese":
        return FIXED_DOSE_HP_CANONICAL if product == FIXED_DOSE_HP else INGREDIENTS[product][2]
    return product if product in forms else forms[0]


def _compose(product: str, script: str, template: str, brand: str | None, maker: str | None,
             bracket: tuple[str, str], strength: str | None) -> str:
    """One printed name from its pieces (the single place the shapes of PRINTED_TEMPLATES are spelled)."""
    g = printed_generic(product, script)
    o, c = bracket
    sep = " " if script == "latin" else ""      # 'Trastuzumab for Injection (Herceptin)'
    text = {"G[B]": f"{g}{sep}{o}{brand}{c}", "[B]G": f"{o}{brand}{c}{sep}{g}", "G[M]": f"{g}{o}{maker}{c}",
            "G[B][M]": f"{g}{o}{brand}{c}{o}{maker}{c}", "B G": f"{brand} {g}", "G B": f"{g} {brand}",
            "G S": f"{g} {strength}"}[template]
    if template == "G[B]" and strength:
        text += f" {strength}"
    return text


def _product_makers(product: str) -> list[str]:
    """Makers and origins printable after the generic name ('G[M]')."""
    brands = BRANDS[product]
    makers = [BRAND_MAKER[b][0] for b in brands if BRAND_MAKER[b][0]] + list(GENERIC_MAKERS.get(product, ()))
    origins = {BRAND_MAKER[b][1] for b in brands if BRAND_MAKER[b][1]}
    if GENERIC_MAKERS.get(product) or not origins:
        origins.add("国产")
    return list(dict.fromkeys(makers)) + [o for o in ORIGINS if o in origins]


def _choices(product: str):
    """Every (probability, pieces) a printed name of `product` is drawn from."""
    brands = BRANDS[product]
    for script, p_script in PRINTED_SCRIPT.items():
        own = [b for b in brands if _is_latin(b) == (script == "latin")]
        usable = own or list(brands)                       # e.g. 'Aloxi' after a Chinese generic
        for template, p_template in PRINTED_TEMPLATES[script].items():
            # a product without brands prints its maker (Chinese) or strength (Latin) instead
            if "B" in template and not usable:
                template = "G[M]" if script == "chinese" else "G S"
            b_opts = usable if "B" in template else [None]
            for brand in b_opts:
                p_brand = p_script * p_template / len(b_opts)
                if template == "G[M]":
                    m_opts = _product_makers(product)
                elif template == "G[B][M]":
                    m_opts = [x for x in BRAND_MAKER[brand] if x]
                else:
                    m_opts = [None]
                shape = template if m_opts else "G[B]"     # a brand with no known maker or origin
                m_opts = m_opts or [None]
                s_opts = ([(None, 1 - P_PRINTED_STRENGTH)] + [(s, P_PRINTED_STRENGTH / 2) for s in STRENGTHS[product]]
                          if shape == "G[B]" else [(s, 0.5) for s in STRENGTHS[product]] if shape == "G S"
                          else [(None, 1.0)])
                brackets = (list(zip(BRACKETS, BRACKET_WEIGHTS)) if "[" in shape else [(BRACKETS[0], 1.0)])
                for maker, (bracket, p_bracket), (strength, p_strength) in itertools.product(m_opts, brackets,
                                                                                              s_opts):
                    yield (p_brand / len(m_opts) * p_bracket * p_strength,
                           (product, script, shape, brand, maker, bracket, strength))


@functools.lru_cache(maxsize=None)
def _printed_table(product: str) -> tuple[tuple[str, ...], np.ndarray]:
    weights: dict[str, float] = {}
    for p, pieces in _choices(product):
        name = _compose(*pieces)
        weights[name] = weights.get(name, 0.0) + p
    forms = tuple(weights)
    w = np.array([weights[f] for f in forms])
    return forms, w / w.sum()


def printed_forms(product: str) -> tuple[str, ...]:
    """Every printed name `printed_name` can give for an ingredient (or FIXED_DOSE_HP), in a fixed order."""
    return _printed_table(product)[0]


def printed_indices(product: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """`size` draws of printed names, as indices into printed_forms(product) (one rng.choice call)."""
    forms, w = _printed_table(product)
    return rng.choice(len(forms), size=size, p=w)


def printed_name(product: str, rng: np.random.Generator) -> str:
    """A name as a pharmacy system prints it: the product's generic name with formulation words (Chinese
    80 %, Latin 20 %), shaped by PRINTED_TEMPLATES: its brand in brackets after (`注射用曲妥珠单抗(赫赛汀)`,
    with strength text half the time: `注射用曲妥珠单抗(赫赛汀) 440mg`) or before it (`【力扑素】注射用紫杉醇脂质体`),
    its maker or origin in brackets (`注射用曲妥珠单抗（复宏汉霖）`, `注射用曲妥珠单抗[进口]`), brand then maker
    (`注射用曲妥珠单抗(汉曲优)(复宏汉霖)`), brand and generic side by side (`赫赛汀 注射用曲妥珠单抗`), or the
    generic with strength and package text (`马来酸吡咯替尼片 80mg*14片`). Brackets are (), （）, 【】 or [].
    The brand is always one of the product's own brands; makers and origins only appear in brackets.
    Deterministic: the same rng state gives the same name."""
    return printed_forms(product)[int(printed_indices(product, rng, 1)[0])]
