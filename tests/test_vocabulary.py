"""Drug vocabulary (study-rules §1): normalisation, the shipped CSV, matching, validation."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from cohort_engine.contract import SOURCE_TABLES
from cohort_engine.drug_exposures import build_drug_exposures
from cohort_engine.drug_names import normalise_code, normalise_name
from cohort_engine.errors import VocabularyError
from cohort_engine.name_matcher import NameMatcher
from cohort_engine.unmatched_names import unmatched_name_counts
from cohort_engine.vocabulary import DOSE_BASES, DRUG_CLASSES, class_names, dose_bases, load_vocabulary

REPO = Path(__file__).resolve().parents[1]
VOCABULARY = REPO / "conf" / "vocabulary" / "drugs.csv"
HEADER = "name,kind,ingredient,drug_class,note\n"


def lookup(matcher, raw_name: str | None, code: str | None = None) -> tuple[frozenset, str | None]:
    """(ingredients, matched_by) of a printed name: the name first, the code only if the name reads nothing."""
    match = matcher.match(raw_name, code)
    return frozenset(match.ingredients), match.matched_by


# -- normalisation -------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("注射用紫杉醇脂质体", "紫杉醇脂质体"),                 # formulation word in front
    ("紫杉醇脂质体（冻干）", "紫杉醇脂质体"),               # full-width brackets, 冻干
    ("ＬＩＰＵＳＵ", "lipusu"),                             # full-width letters, upper case
    ("  Lipusu ", "lipusu"),                                # spaces, case
    ("紫\u3000杉　醇", "紫杉醇"),                           # ideographic spaces
    ("曲妥珠单抗注射液", "曲妥珠单抗"),
    ("注射用紫杉醇（白蛋白结合型）", "紫杉醇白蛋白结合型"),  # the formulation that matters is kept
    ("Paclitaxel Liposome for Injection", "paclitaxel liposome"),  # English words stay whole words
    ("紫杉醇注射液 30mg/5ml", "紫杉醇"),                    # strength and volume
    ("卡培他滨片 0.5g×12片", "卡培他滨"),                   # strength and pack size
    ("马来酸吡咯替尼片", "吡咯替尼"),                       # salt and tablet
    ("Lapatinib Ditosylate Tablets", "lapatinib"),
    ("曲妥珠单抗（皮下注射）", "曲妥珠单抗"),               # route word
    ("皮下注射用曲妥珠单抗", "曲妥珠单抗"),                 # route word glued to a formulation word
    ("曲妥珠单抗皮下注射剂", "曲妥珠单抗"),
    ("赫赛汀（皮下）", "赫赛汀"),                           # the route alone
    ("静脉注射用紫杉醇脂质体", "紫杉醇脂质体"),
    ("Herceptin® SC", "herceptin"),
    ("Ｔ－ＤＭ１", "t dm1"),                                # digits inside a word stay; words stay apart
    ("5-FU", "5 fu"),
    ("Eribulin Mesylate Injection", "eribulin"),
    ("Taxol", "taxol"),
    ("注射用曲妥珠单抗(赫赛汀) 440mg", "曲妥珠单抗赫赛汀"),       # brackets kept in order, strength removed
    ("【进口】赫赛汀", "赫赛汀"),                             # origin word
    ("注射用紫杉醇（白蛋白结合型）100mg/瓶", "紫杉醇白蛋白结合型"),
    ("Paclitaxel Liposome for Injection (Lipusu) 30mg", "paclitaxel liposome lipusu"),
    ("L i p u s u", "lipusu"),                              # spelled-out letters are one word
    ("nab-paclitaxel", "nab paclitaxel"),
    ("Herceptin™ 440 ㎎", "herceptin"),                       # ™ dropped, ㎎ folded
    ("多西他赛注射液 20mg:0.5ml", "多西他赛"),
    ("Phesgo 600mg/600mg/10ml", "phesgo"),
    ("卡培他滨片 0.5g*12片/盒", "卡培他滨"),
    ("xeloda 500mg x 12 tabs", "xeloda"),
    ("???", ""),
])
def test_normalise_name_examples(raw, expected):
    assert normalise_name(raw) == expected


def test_normalise_name_keeps_none():
    assert normalise_name(None) is None
    assert normalise_code(None) is None


def test_normalise_code():
    assert normalise_code(" l01-cd.01 ") == "L01CD01"
    assert normalise_code("Ｌ０１ＦＤ０１") == "L01FD01"


# -- the shipped vocabulary ----------------------------------------------------------------

def test_shipped_vocabulary_loads_with_every_class(vocab):
    assert set(vocab["drug_class"]) == set(DRUG_CLASSES)
    assert set(vocab["kind"]) <= {"name", "atc", "code"}
    # one class per ingredient, and every ingredient reachable by name
    assert vocab.groupby("ingredient")["drug_class"].nunique().max() == 1
    assert set(vocab["ingredient"]) == set(vocab.loc[vocab["kind"] == "name", "ingredient"])


def test_shipped_vocabulary_has_every_ingredient_of_the_interface(vocab):
    # The ingredient list of notes/internal-interfaces.md, with the class §1 gives them.
    expected = {
        "paclitaxel": "taxane", "paclitaxel liposome": "taxane", "nab-paclitaxel": "taxane", "docetaxel": "taxane",
        "trastuzumab": "anti_her2_mab", "pertuzumab": "anti_her2_mab", "inetetumab": "anti_her2_mab",
        "pyrotinib": "anti_her2_tki", "lapatinib": "anti_her2_tki", "neratinib": "anti_her2_tki",
        "tucatinib": "anti_her2_tki", "trastuzumab emtansine": "anti_her2_adc",
        "trastuzumab deruxtecan": "anti_her2_adc",
        **{i: "chemo_other" for i in ("capecitabine", "vinorelbine", "gemcitabine", "eribulin", "cisplatin",
                                       "carboplatin", "doxorubicin", "epirubicin", "pegylated liposomal doxorubicin",
                                       "cyclophosphamide", "fluorouracil")},
        **{i: "endocrine" for i in ("tamoxifen", "toremifene", "letrozole", "anastrozole", "exemestane",
                                     "fulvestrant", "goserelin", "leuprorelin")},
        **{i: "cdk46_inhibitor" for i in ("palbociclib", "ribociclib", "abemaciclib", "dalpiciclib")},
        **{i: "supportive" for i in ("ondansetron", "granisetron", "palonosetron", "aprepitant", "dexamethasone",
                                      "filgrastim", "pegfilgrastim", "zoledronic acid", "denosumab")},
    }
    classes = dict(zip(vocab["ingredient"], vocab["drug_class"]))
    assert {i: classes.get(i) for i in expected} == expected


NAME_FORMS = {
    "paclitaxel liposome": ["紫杉醇脂质体", "注射用紫杉醇脂质体", "力扑素", "Lipusu", "LIPUSU", "Paclitaxel Liposome",
                            "注射用紫杉醇脂质体（冻干）", "paclitaxel liposome for injection", "Paclitaxel Liposomal"],
    "paclitaxel": ["紫杉醇", "紫杉醇注射液", "泰素", "Taxol", "PACLITAXEL", "Paclitaxel Injection"],
    "nab-paclitaxel": ["白蛋白结合型紫杉醇", "注射用紫杉醇（白蛋白结合型）", "注射用紫杉醇(白蛋白结合型)", "Abraxane",
                       "克艾力", "艾越", "nab-Paclitaxel", "Paclitaxel for Injection (Albumin Bound)"],
    "docetaxel": ["多西他赛", "多西他赛注射液", "泰索帝", "Taxotere", "docetaxel"],
    "trastuzumab": ["曲妥珠单抗", "注射用曲妥珠单抗", "曲妥珠单抗注射液", "赫赛汀", "Herceptin", "汉曲优", "Herzuma",
                    "Ontruzant", "皮下注射曲妥珠单抗", "曲妥珠单抗注射液（皮下注射）", "TRASTUZUMAB", "Herceptin SC",
                    "皮下注射用曲妥珠单抗", "曲妥珠单抗皮下注射剂", "赫赛汀（皮下）",
                    "Trastuzumab and Hyaluronidase-oysk"],
    "pertuzumab": ["帕妥珠单抗", "帕妥珠单抗注射液", "帕捷特", "Perjeta"],
    "inetetumab": ["伊尼妥单抗", "注射用伊尼妥单抗", "赛普汀"],
    "pyrotinib": ["吡咯替尼", "马来酸吡咯替尼片", "艾瑞妮"],
    "lapatinib": ["拉帕替尼", "甲苯磺酸拉帕替尼片", "泰立沙", "Tykerb"],
    "neratinib": ["奈拉替尼", "马来酸奈拉替尼片", "贺俪安", "Nerlynx"],
    "tucatinib": ["图卡替尼", "Tukysa"],
    "trastuzumab emtansine": ["恩美曲妥珠单抗", "注射用恩美曲妥珠单抗", "赫赛莱", "Kadcyla", "T-DM1"],
    "trastuzumab deruxtecan": ["德曲妥珠单抗", "注射用德曲妥珠单抗", "优赫得", "Enhertu", "T-DXd"],
    "capecitabine": ["卡培他滨", "卡培他滨片", "希罗达", "Xeloda"],
    "vinorelbine": ["长春瑞滨", "酒石酸长春瑞滨注射液", "诺维本"],
    "gemcitabine": ["吉西他滨", "注射用盐酸吉西他滨", "健择"],
    "eribulin": ["艾立布林", "甲磺酸艾立布林注射液", "海乐卫"],
    "cisplatin": ["顺铂", "顺铂注射液"],
    "carboplatin": ["卡铂", "卡铂注射液"],
    "doxorubicin": ["多柔比星", "注射用盐酸多柔比星", "阿霉素"],
    "epirubicin": ["表柔比星", "注射用盐酸表柔比星", "表阿霉素"],
    "pegylated liposomal doxorubicin": ["多柔比星脂质体", "盐酸多柔比星脂质体注射液"],
    "cyclophosphamide": ["环磷酰胺", "注射用环磷酰胺"],
    "fluorouracil": ["氟尿嘧啶", "氟尿嘧啶注射液", "5-FU"],
    "tamoxifen": ["他莫昔芬", "枸橼酸他莫昔芬片"],
    "toremifene": ["托瑞米芬", "枸橼酸托瑞米芬片"],
    "letrozole": ["来曲唑", "来曲唑片", "弗隆"],
    "anastrozole": ["阿那曲唑", "瑞宁得"],
    "exemestane": ["依西美坦", "阿诺新"],
    "fulvestrant": ["氟维司群", "氟维司群注射液", "芙仕得"],
    "goserelin": ["戈舍瑞林", "醋酸戈舍瑞林缓释植入剂", "诺雷得"],
    "leuprorelin": ["亮丙瑞林", "注射用醋酸亮丙瑞林微球"],
    "palbociclib": ["哌柏西利", "哌柏西利胶囊", "爱博新"],
    "ribociclib": ["瑞波西利", "琥珀酸瑞波西利片"],
    "abemaciclib": ["阿贝西利", "唯择", "Verzenio"],
    "dalpiciclib": ["达尔西利", "羟乙磺酸达尔西利片", "艾瑞康"],
    "ondansetron": ["昂丹司琼", "盐酸昂丹司琼注射液"],
    "granisetron": ["格拉司琼"],
    "palonosetron": ["帕洛诺司琼", "盐酸帕洛诺司琼注射液"],
    "aprepitant": ["阿瑞匹坦", "阿瑞匹坦胶囊"],
    "dexamethasone": ["地塞米松", "地塞米松磷酸钠注射液"],
    "filgrastim": ["重组人粒细胞刺激因子", "重组人粒细胞刺激因子注射液", "非格司亭"],
    "pegfilgrastim": ["聚乙二醇化重组人粒细胞刺激因子", "聚乙二醇化重组人粒细胞刺激因子注射液", "培非格司亭"],
    "zoledronic acid": ["唑来膦酸", "唑来膦酸注射液"],
    "denosumab": ["地舒单抗", "地舒单抗注射液"],
}


@pytest.mark.parametrize("ingredient, forms", sorted(NAME_FORMS.items()))
def test_every_name_form_maps_to_its_ingredient(matcher, ingredient, forms):
    for form in forms:
        assert lookup(matcher, form) == (frozenset({ingredient}), "name"), form


@pytest.mark.parametrize("form", ["帕妥珠曲妥珠单抗", "帕妥珠曲妥珠单抗注射液（皮下注射）", "Phesgo", "PHESGO"])
def test_fixed_dose_combination_maps_to_both_antibodies(matcher, form):
    assert lookup(matcher, form) == (frozenset({"pertuzumab", "trastuzumab"}), "name")


@pytest.mark.parametrize("code, ingredient", [
    ("L01CD01", "paclitaxel"),   # one code for three formulations: read as plain paclitaxel (documented in the CSV)
    ("L01CD02", "docetaxel"), ("L01FD01", "trastuzumab"), ("L01FD02", "pertuzumab"),
    ("L01FD03", "trastuzumab emtansine"), ("L01FD04", "trastuzumab deruxtecan"), ("L01EH01", "lapatinib"),
    ("L01EH02", "neratinib"), ("L01EH03", "tucatinib"), ("L01BC06", "capecitabine"), ("L01XC03", "trastuzumab"),
])
def test_atc_codes(matcher, code, ingredient):
    assert lookup(matcher, "未收录药品", code) == (frozenset({ingredient}), "code")


def test_code_of_the_fixed_dose_combination(matcher):
    assert lookup(matcher, "未收录药品", "L01FY01") == (frozenset({"pertuzumab", "trastuzumab"}), "code")


# -- matching in Spark ---------------------------------------------------------------------

def prescriptions(spark, rows):
    """rows: (record_id, patient_id, drug_name, drug_code); the other contract columns are fixed."""
    full = [(rid, pid, "H1", dt.date(2021, 3, 1), name, code, 100.0, "mg", "iv") for rid, pid, name, code in rows]
    return spark.createDataFrame(full, SOURCE_TABLES["prescriptions"].ddl)


def test_build_drug_exposures(spark, vocab):
    rx = prescriptions(spark, [
        ("r1", "p1", "注射用紫杉醇脂质体", "L01CD01"),     # name wins over the code → paclitaxel liposome
        ("r2", "p1", "ＨＥＲＣＥＰＴＩＮ　", None),         # full-width, trailing ideographic space
        ("r3", "p1", "院内制剂紫杉", "L01CD01"),           # name unknown → code → paclitaxel
        ("r4", "p1", "帕妥珠曲妥珠单抗注射液（皮下注射）", None),  # fixed-dose → two exposures
        ("r5", "p2", "盐酸昂丹司琼注射液", None),           # supportive: matched, does not count
        ("r6", "p2", "未知药物甲", "X999"),                # unknown name and code
        ("r7", "p2", "未知药物甲", None),
        ("r8", "p2", "未知药物 乙", None),
        ("r9", "p2", "院内制剂", " l01-fy.01"),            # the fixed-dose code → two exposures, by code
    ])
    exposures, unmatched = build_drug_exposures(rx, vocab)
    assert exposures.columns == ["record_id", "patient_id", "hospital_id", "admin_date", "drug_name", "ingredient",
                                 "drug_class", "matched_by", "counts_for_lines", "dose", "dose_unit", "route"]
    assert [f.dataType.simpleString() for f in exposures.schema.fields] == [
        "string", "string", "string", "date", "string", "string", "string", "string", "boolean", "double",
        "string", "string"]
    got = sorted((r["record_id"], r["ingredient"], r["drug_class"], r["matched_by"], r["counts_for_lines"])
                 for r in exposures.collect())
    assert got == [
        ("r1", "paclitaxel liposome", "taxane", "name", True),
        ("r2", "trastuzumab", "anti_her2_mab", "name", True),
        ("r3", "paclitaxel", "taxane", "code", True),
        ("r4", "pertuzumab", "anti_her2_mab", "name", True),
        ("r4", "trastuzumab", "anti_her2_mab", "name", True),
        ("r5", "ondansetron", "supportive", "name", False),
        ("r9", "pertuzumab", "anti_her2_mab", "code", True),
        ("r9", "trastuzumab", "anti_her2_mab", "code", True),
    ]
    # raw name and the other columns pass through unchanged
    r2 = exposures.where("record_id = 'r2'").first()
    assert (r2["drug_name"], r2["patient_id"], r2["hospital_id"], r2["dose"], r2["dose_unit"], r2["route"]) == \
        ("ＨＥＲＣＥＰＴＩＮ　", "p1", "H1", 100.0, "mg", "iv")

    assert unmatched.columns == rx.columns + ["reason"]
    assert sorted((r["record_id"], r["reason"]) for r in unmatched.collect()) == [
        ("r6", "unmatched_drug_name"), ("r7", "unmatched_drug_name"), ("r8", "unmatched_drug_name")]
    # every prescription row is either exposed or unmatched
    assert exposures.select("record_id").distinct().count() + unmatched.count() == rx.count()

    counts = unmatched_name_counts(unmatched)
    assert [(f.name, f.dataType.simpleString()) for f in counts.schema.fields] == [
        ("drug_name_normalised", "string"), ("n_rows", "bigint")]
    assert [tuple(r) for r in counts.collect()] == [("未知药物甲", 2), ("未知药物乙", 1)]


# -- validation of a vocabulary file ------------------------------------------------------------

def write(tmp_path, body: str) -> Path:
    path = tmp_path / "drugs.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    return path


@pytest.mark.parametrize("body, message", [
    ("紫杉醇,name,paclitaxel,taxane,\n泰素,name,paclitaxel,taxanes,\n",
     r"drugs.csv:3: unknown drug_class 'taxanes'"),
    ("紫杉醇,name,,taxane,\n", r"drugs.csv:2: empty ingredient for '紫杉醇'"),
    ("紫杉醇,label,paclitaxel,taxane,\n", r"drugs.csv:2: unknown kind 'label'"),
    (",name,paclitaxel,taxane,\n", r"drugs.csv:2: empty name"),
    ("注射液,name,paclitaxel,taxane,\n", r"drugs.csv:2: name '注射液' is empty after normalisation"),
    ("紫杉醇,name,Paclitaxel,taxane,\n", r"drugs.csv:2: ingredient 'Paclitaxel' must be lower case"),
    ("紫杉醇,name,paclitaxel,taxane,\n紫杉醇注射液,name,docetaxel,taxane,\n",
     r"drugs.csv:3: '紫杉醇注射液' normalises to '紫杉醇' like '紫杉醇' on line 2, but maps to docetaxel instead of paclitaxel"),
    ("phesgo,name,pertuzumab,anti_her2_mab,\nphesgo,name,trastuzumab,anti_her2_mab,\nPHESGO,name,pertuzumab,anti_her2_mab,\n",
     r"drugs.csv:4: 'PHESGO' normalises to 'phesgo' like 'phesgo' on line 2, but maps to pertuzumab instead of pertuzumab\+trastuzumab"),
    ("L01CD01,atc,paclitaxel,taxane,\nl01cd01,code,docetaxel,taxane,\n",
     r"drugs.csv:3: 'l01cd01' normalises to 'L01CD01'"),
    ("紫杉醇,name,paclitaxel,taxane,\ntaxol,name,paclitaxel,chemo_other,\n",
     r"drugs.csv:3: ingredient 'paclitaxel' has class 'chemo_other' here but 'taxane' on line 2"),
    ("紫杉醇,name,paclitaxel,taxane,\n紫杉醇,name,paclitaxel,taxane,\n", r"drugs.csv:3: repeats line 2"),
])
def test_vocabulary_errors_name_file_line_and_value(tmp_path, body, message):
    with pytest.raises(VocabularyError, match=message):
        load_vocabulary(write(tmp_path, body))


def test_vocabulary_missing_column_and_file(tmp_path):
    path = tmp_path / "drugs.csv"
    path.write_text("name,kind,ingredient\n紫杉醇,name,paclitaxel\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=re.escape(f"{path}:1: missing column(s) drug_class")):
        load_vocabulary(path)
    with pytest.raises(VocabularyError, match="cannot read the vocabulary"):
        load_vocabulary(tmp_path / "absent.csv")


def test_same_key_same_set_is_accepted(tmp_path):
    # Two spellings of one name are fine when they agree; the fixed-dose rows form one set.
    vocab = load_vocabulary(write(tmp_path, "紫杉醇,name,paclitaxel,taxane,\n注射用紫杉醇,name,paclitaxel,taxane,\n"
                                            "phesgo,name,pertuzumab,anti_her2_mab,\nphesgo,name,trastuzumab,anti_her2_mab,\n"))
    assert list(vocab["key"]) == ["紫杉醇", "紫杉醇", "phesgo", "phesgo"]
    assert list(vocab["line"]) == [2, 3, 4, 5]


# -- the classes' names and the ingredients' dose bases beside the vocabulary --------------------

def test_every_shipped_class_has_a_name_and_every_ingredient_a_dose_basis(vocab):
    names = class_names(VOCABULARY)
    assert sorted(names) == sorted(DRUG_CLASSES)
    assert (names["anti_her2_mab"], names["cdk46_inhibitor"], names["anti_her2_tki"]) == (
        "anti-HER2 antibody", "CDK4/6 inhibitor", "anti-HER2 tyrosine kinase inhibitor")
    ingredients = sorted(set(vocab["ingredient"]))
    bases = dose_bases(VOCABULARY, ingredients)
    assert set(bases.values()) == set(DOSE_BASES)
    assert dose_bases(VOCABULARY, ["paclitaxel liposome", "trastuzumab", "pertuzumab", "pyrotinib"]) == {
        "paclitaxel liposome": "body_surface_area", "trastuzumab": "body_weight", "pertuzumab": "flat",
        "pyrotinib": "flat"}


def test_a_vocabulary_folder_without_its_own_files_takes_the_shipped_ones(tmp_path):
    path = write(tmp_path, "紫杉醇,name,paclitaxel,taxane,\n")
    assert class_names(path) == class_names(VOCABULARY)
    assert dose_bases(path, ["paclitaxel"]) == {"paclitaxel": "body_surface_area"}


def test_a_class_without_a_name_is_an_error_naming_the_file_and_class(tmp_path):
    path = write(tmp_path, "紫杉醇,name,paclitaxel,taxane,\n曲妥珠单抗,name,trastuzumab,anti_her2_mab,\n")
    (tmp_path / "drug_classes.csv").write_text("drug_class,name,note\ntaxane,taxane,\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match=re.escape(
            f"{tmp_path / 'drug_classes.csv'}: no name for drug_class 'anti_her2_mab', which {path}:3 uses")):
        load_vocabulary(path)


@pytest.mark.parametrize("file, body, message", [
    ("drug_classes.csv", "drug_class,name,note\ntaxanes,taxane,\n", r"drug_classes.csv:2: unknown drug_class 'taxanes'"),
    ("drug_classes.csv", "drug_class,name,note\ntaxane,,\n", r"drug_classes.csv:2: empty name for 'taxane'"),
    ("drug_classes.csv", "drug_class,note\ntaxane,\n", r"drug_classes.csv:1: missing column\(s\) name"),
    ("dosing.csv", "ingredient,dose_basis,note\npaclitaxel,bsa,\n",
     r"dosing.csv:2: unknown dose_basis 'bsa' for 'paclitaxel' \(allowed: body_surface_area, body_weight, flat\)"),
    ("dosing.csv", "ingredient,dose_basis,note\ndocetaxel,body_surface_area,\n",
     r"dosing.csv: no dose_basis for 'paclitaxel', whose dose the study describes"),
    ("dosing.csv", "ingredient,dose_basis,note\npaclitaxel,flat,\npaclitaxel,flat,\n",
     r"dosing.csv:3: ingredient 'paclitaxel' is listed twice"),
])
def test_the_files_beside_the_vocabulary_are_checked(tmp_path, file, body, message):
    path = write(tmp_path, "紫杉醇,name,paclitaxel,taxane,\n")
    (tmp_path / file).write_text(body, encoding="utf-8")
    with pytest.raises(VocabularyError, match=message):
        class_names(path) if file == "drug_classes.csv" else dose_bases(path, ["paclitaxel"])


# -- the forms the synthetic extract writes (an independent list, kept by the generator) ---------------

def decorated(form: str) -> list[str]:
    """The noise a hospital system adds: case, full-width characters, spaces around and inside a word.

    (Spaces between the letters of a phrase are left out: "f o r  I n j e c t i o n" can no longer be
    told apart from a name, and the extract does not write it.)
    """
    full = "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else ("\u3000" if c == " " else c)
                   for c in form.upper())
    spaced = [" ".join(form)] if " " not in form else []
    return [form, form.upper(), form.lower(), form.title(), full, f"  {form} ", *spaced]


def test_every_form_of_the_generator_maps_and_no_garbled_name_does(vocab, matcher):
    drugs = pytest.importorskip("cohort_engine.synth.drugs")
    prescription_tables = pytest.importorskip("cohort_engine.synth.prescription_tables")
    for product, forms in drugs.NAME_FORMS.items():
        want = (frozenset(drugs.FIXED_DOSE_HP_INGREDIENTS) if product == drugs.FIXED_DOSE_HP
                else frozenset({product}))
        for form in forms:
            # the noise of this test and the noise the generator itself writes (`L i p u s u`)
            for raw in decorated(form) + prescription_tables._decorations(form):
                assert lookup(matcher, raw) == (want, "name"), raw
    # the names as pharmacy systems print them (brand, maker, origin in brackets, strength), where the
    # generator composes them
    for product in drugs.PRODUCTS if hasattr(drugs, "printed_forms") else ():
        want = (frozenset(drugs.FIXED_DOSE_HP_INGREDIENTS) if product == drugs.FIXED_DOSE_HP
                else frozenset({product}))
        for raw in drugs.printed_forms(product):
            assert lookup(matcher, raw) == (want, "name"), raw
    for garbled in drugs.GARBLED_NAMES:
        for raw in decorated(garbled) + prescription_tables._decorations(garbled):
            assert lookup(matcher, raw) == (frozenset(), None), raw
    classes = dict(zip(vocab["ingredient"], vocab["drug_class"]))
    assert {i: classes.get(i) for i in drugs.INGREDIENTS} == {i: v[0] for i, v in drugs.INGREDIENTS.items()}
