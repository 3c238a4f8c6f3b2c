"""Drug names as the synthetic extract writes them (data only).

Each ingredient has its class, an ATC code where one is certain, the canonical
name written by a `--clean` extract, and the raw forms a hospital system writes:
Chinese generic names, formulation words (注射用…, …注射液, …片), brands (Chinese and
English), English generic names. The generator further decorates a share of rows
(letter case, full-width characters, extra spaces): see `decorate` in noise.py.

This module is the single place the vocabulary (conf/vocabulary/drugs.csv, written
independently) can be checked against: every form in `NAME_FORMS` must map to its
ingredient once case, full-width characters, spaces and formulation words are
normalised, and no form in `GARBLED_NAMES` may map to anything.
"""
from __future__ import annotations

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
