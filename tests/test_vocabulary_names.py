"""Printed drug names read as a pharmacist reads them (study-rules §1): the matcher, overrides,
nearest entries, the unmatched share and the Spark mapping. Expected values are worked by hand."""
from __future__ import annotations

import datetime as dt
import pickle
import re
from pathlib import Path

import pandas as pd
import pytest

from cohort_engine.contract import SOURCE_TABLES
from cohort_engine.drug_exposures import build_drug_exposures
from cohort_engine.errors import UserError, VocabularyError
from cohort_engine.name_matcher import NameMatch, NameMatcher
from cohort_engine.unmatched_names import nearest_entries, unmatched_name_counts, unmatched_share
from cohort_engine.vocabulary import load_vocabulary

REPO = Path(__file__).resolve().parents[1]
VOCABULARY = REPO / "conf" / "vocabulary" / "drugs.csv"
HEADER = "name,kind,ingredient,drug_class,note\n"

PL, PAC, NAB, DOC = "paclitaxel liposome", "paclitaxel", "nab-paclitaxel", "docetaxel"
T, P, TDM1, TDXD = "trastuzumab", "pertuzumab", "trastuzumab emtansine", "trastuzumab deruxtecan"


# -- printed names → ingredient set -------------------------------------------------------------

READ = [
    # the printed names of the brief
    ("注射用紫杉醇脂质体（力扑素）", {PL}),                     # generic + brand in full-width brackets
    ("注射用曲妥珠单抗(赫赛汀) 440mg", {T}),                    # brand in brackets, strength after them
    ("Paclitaxel Liposome for Injection (Lipusu) 30mg", {PL}),  # English generic + brand + strength
    ("马来酸吡咯替尼片(艾瑞妮) 80mg", {"pyrotinib"}),            # salt + tablet words, brand
    ("【进口】赫赛汀", {T}),                                     # origin in 【】
    ("曲妥珠单抗 汉曲优", {T}),                                  # generic and biosimilar brand side by side
    ("帕妥珠单抗曲妥珠单抗注射液（皮下注射）", {P, T}),           # fixed-dose combination, route in brackets
    ("注射用紫杉醇（白蛋白结合型）100mg/瓶", {NAB}),              # read across the bracket
    # the longest name wins
    ("恩美曲妥珠单抗", {TDM1}),                                  # never trastuzumab
    ("注射用恩美曲妥珠单抗（赫赛莱）100mg", {TDM1}),
    ("德曲妥珠单抗(优赫得)", {TDXD}),
    ("白蛋白结合型 紫杉醇", {NAB}),                              # never paclitaxel
    ("紫杉醇（脂质体）", {PL}),                                   # the formulation word read across the bracket
    ("紫杉醇(力扑素)", {PL}),                                    # paclitaxel dropped beside paclitaxel liposome
    ("力扑素（紫杉醇）", {PL}),                                   # brand first, generic in brackets
    ("曲妥珠单抗(赫赛莱)", {TDM1}),                               # trastuzumab is a whole-word part of T-DM1
    ("盐酸多柔比星（多美素）", {"pegylated liposomal doxorubicin"}),
    # case, width, spaces
    ("ＬＩＰＵＳＵ（３０ｍｇ）", {PL}),                           # full-width letters, digits and brackets
    ("ｔｒａｓｔｕｚｕｍａｂ", {T}),
    ("赫 赛 汀", {T}),                                          # spaces never matter in Chinese
    ("L i p u s u", {PL}),                                     # spelled-out letters are one word
    ("T-DM1", {TDM1}),
    ("nab-paclitaxel", {NAB}),
    ("Paclitaxel for Injection (Albumin Bound)", {NAB}),
    ("Herceptin™ (Roche) 440 mg", {T}),                         # ™ dropped, maker in brackets ignored
    # makers and origin in brackets, brand only in brackets
    ("赫赛汀（罗氏）", {T}),
    ("注射用紫杉醇脂质体(绿叶制药)", {PL}),
    ("艾瑞妮（江苏恒瑞）", {"pyrotinib"}),
    ("注射用紫杉醇（白蛋白结合型）（石药）", {NAB}),
    ("注射用（力扑素）", {PL}),                                   # only a brand, in brackets
    ("[Kadcyla]", {TDM1}),
    ("〔国产〕多西他赛注射液 20mg:0.5ml", {DOC}),
    ("《原研》来曲唑片 2.5mg×30片", {"letrozole"}),
    # strengths and packages
    ("卡培他滨片 0.5g*12片/盒", {"capecitabine"}),
    ("枸橼酸他莫昔芬片(10mg*60片)", {"tamoxifen"}),
    ("羟乙磺酸达尔西利片（艾瑞康）150mg", {"dalpiciclib"}),
    ("注射用维迪西妥单抗(爱地希) 60mg", {"disitamab vedotin"}),
    ("曲妥珠单抗（皮下注射）600mg/5ml", {T}),
    ("伊尼妥单抗（赛普汀）", {"inetetumab"}),
    # several names side by side: each ingredient
    ("Phesgo 600mg/600mg/10ml", {P, T}),
    ("帕捷特+赫赛汀", {P, T}),
    ("帕妥珠单抗曲妥珠单抗(帕捷特)(赫赛汀)", {P, T}),             # each bracket names one of the two
    ("紫杉醇+曲妥珠单抗", {PAC, T}),
]

NOT_READ = [
    # (printed name, a part of the reason)
    ("泰素帝", "text left over '帝'"),                           # never 泰素 (paclitaxel)
    ("Trastuzu", "no vocabulary name in 'trastuzu'"),           # truncated
    ("赫赛", "no vocabulary name in '赫赛'"),
    ("恩美曲妥", "no vocabulary name"),                          # truncated: never trastuzumab
    ("紫杉?脂质", "no vocabulary name"),                         # garbled
    ("进口药(见医嘱)", "'药'"),
    ("赫赛汀 罗氏", "text left over '罗氏'"),                      # a maker outside brackets is not ignored
    ("紫杉醇聚合物胶束", "text left over '聚合物胶束'"),            # another formulation: never paclitaxel
    ("（江苏恒瑞）", "no vocabulary name in the text"),            # a maker alone
    ("齐鲁制药", "no vocabulary name"),
    ("多西他赛（泰素帝）", "bracketed text '泰素帝' names a drug only in part"),
    ("注射液(泰素帝)", "bracketed text '泰素帝' names a drug only in part"),
    ("多西他赛（白蛋白结合型）", "formulation word '白蛋白结合型' in brackets goes with no drug name"),
    ("曲妥珠单抗(帕捷特)", "ambiguous: the main text names trastuzumab, the brackets name pertuzumab"),
    ("帕妥珠单抗（曲妥珠单抗）", "ambiguous: the main text names pertuzumab, the brackets name trastuzumab"),
    ("多西他赛（紫杉醇）", "ambiguous: the main text names docetaxel, the brackets name paclitaxel"),
    ("德曲妥珠单抗(赫赛莱)", "ambiguous"),
    ("紫杉醇(力扑素)(克艾力)", "ambiguous: paclitaxel could be nab-paclitaxel or paclitaxel liposome"),
    ("???", "nothing left after normalisation"),
    ("注射液 100mg", "nothing left after normalisation"),
    ("", "nothing left after normalisation"),
]


def test_the_tables_are_large_enough():
    assert len(READ) + len(NOT_READ) >= 40


@pytest.mark.parametrize("name, ingredients", READ)
def test_printed_name_is_read(matcher, name, ingredients):
    assert matcher.match(name) == NameMatch(tuple(sorted(ingredients)), "name", None)


@pytest.mark.parametrize("name, why", NOT_READ)
def test_printed_name_stays_unmatched(matcher, name, why):
    match = matcher.match(name)
    assert (match.ingredients, match.matched_by) == ((), None)
    assert why in match.why


@pytest.mark.parametrize("name, code, expected", [
    ("院内制剂紫杉", "L01CD01", NameMatch((PAC,), "code", "no vocabulary name in '院内制剂紫杉'")),
    ("泰素帝", "l01-cd.02", NameMatch((DOC,), "code", "text left over '帝'")),
    (None, "Ｌ０１ＦＤ０３", NameMatch((TDM1,), "code", "no name")),
    ("未收录药品", "L01FY01", NameMatch((P, T), "code", "no vocabulary name in '未收录药品'")),
    # the name wins over the code: one ATC code covers three paclitaxel formulations
    ("注射用紫杉醇脂质体", "L01CD01", NameMatch((PL,), "name", None)),
    # an ambiguous name is not settled by its code
    ("曲妥珠单抗(帕捷特)", "L01FD01",
     NameMatch((), None, "ambiguous: the main text names trastuzumab, the brackets name pertuzumab")),
    ("未收录药品", "X999", NameMatch((), None, "no vocabulary name in '未收录药品'; code 'X999' is not in the vocabulary")),
    (float("nan"), None, NameMatch((), None, "no name")),     # a pandas NaN is no name
])
def test_the_code_only_when_the_name_reads_nothing(matcher, name, code, expected):
    assert matcher.match(name, code) == expected


def test_the_matcher_pickles_without_its_cache(matcher):
    matcher.match("赫赛汀")
    again = pickle.loads(pickle.dumps(matcher))
    assert again._cache == {}
    assert again.match("注射用紫杉醇脂质体（力扑素）").ingredients == (PL,)


# -- override files -------------------------------------------------------------------------------

def write(path: Path, body: str) -> Path:
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_override_extends_and_replaces(tmp_path):
    override = write(tmp_path / "local.csv",
                     "院内紫杉醇脂质体,name,paclitaxel liposome,taxane,hospital formulary name\n"
                     "注射用泰素,name,docetaxel,taxane,local correction (test only)\n"     # key 泰素
                     "L01CD01,atc,nab-paclitaxel,taxane,local reading of the code (test only)\n"
                     "双靶皮下,name,pertuzumab,anti_her2_mab,local name of the combination\n"
                     "双靶皮下,name,trastuzumab,anti_her2_mab,local name of the combination\n")
    shipped = load_vocabulary(VOCABULARY)
    vocab = load_vocabulary(VOCABULARY, overrides=[override])
    m = NameMatcher(vocab)
    assert m.match("院内紫杉醇脂质体 30mg") == NameMatch((PL,), "name", None)
    # the shipped rows of the key 泰素 are gone, the override's row replaces them
    assert m.match("泰素").ingredients == (DOC,)
    assert list(vocab.loc[vocab["key"] == "泰素", "name"]) == ["注射用泰素"]
    assert set(vocab.loc[vocab["key"] == "泰素", "source"]) == {str(override)}
    assert m.match("未收录药品", "L01CD01").ingredients == (NAB,)
    assert m.match("双靶皮下").ingredients == (P, T)
    # everything else is as shipped
    assert m.match("taxol").ingredients == (PAC,)
    assert len(vocab) == len(shipped) - 2 + 5   # 泰素 and L01CD01 replaced (one row each), five added
    # a single path is accepted too, and no override leaves the shipped vocabulary
    assert load_vocabulary(VOCABULARY, overrides=override).equals(vocab)
    assert load_vocabulary(VOCABULARY, overrides=()).equals(shipped)


def test_later_override_wins(tmp_path):
    first = write(tmp_path / "a.csv", "自定义名,name,paclitaxel,taxane,\n")
    second = write(tmp_path / "b.csv", "自定义名,name,docetaxel,taxane,\n")
    vocab = load_vocabulary(VOCABULARY, overrides=[first, second])
    assert NameMatcher(vocab).match("自定义名").ingredients == (DOC,)


@pytest.mark.parametrize("body, message", [
    ("新药,name,paclitaxel,taxane,\n奇怪药,name,foo,taxanes,\n", r"local.csv:3: unknown drug_class 'taxanes'"),
    ("新药,name,paclitaxel,chemo_other,\n",
     r"local.csv:2: ingredient 'paclitaxel' has class 'chemo_other' here but 'taxane' on .*drugs.csv:2"),
    ("新药,name,paclitaxel,taxane,\n新药,name,paclitaxel,taxane,\n", r"local.csv:3: repeats line 2"),
    ("新药,name,paclitaxel,taxane,\n新药注射液,name,docetaxel,taxane,\n",
     r"local.csv:3: '新药注射液' normalises to '新药' like '新药' on line 2"),
    ("30mg,name,paclitaxel,taxane,\n", r"local.csv:2: name '30mg' is empty after normalisation"),
    ("5,name,paclitaxel,taxane,\n", r"local.csv:2: name '5' is only a number after normalisation"),
])
def test_override_errors_name_the_override_file_and_line(tmp_path, body, message):
    override = write(tmp_path / "local.csv", body)
    with pytest.raises(VocabularyError, match=message):
        load_vocabulary(VOCABULARY, overrides=[override])


def test_a_bad_vocabulary_is_a_user_error(tmp_path):
    bad = write(tmp_path / "drugs.csv", "紫杉醇,name,paclitaxel,taxanes,\n")
    with pytest.raises(UserError) as caught:
        load_vocabulary(bad)
    assert isinstance(caught.value, VocabularyError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
    with pytest.raises(UserError, match=re.escape(f"{tmp_path / 'absent.csv'}: cannot read the vocabulary")):
        load_vocabulary(VOCABULARY, overrides=[tmp_path / "absent.csv"])


# -- nearest entries ------------------------------------------------------------------------------

def test_nearest_entries(vocab):
    got = nearest_entries(["Herceptine", "紫杉醇脂质", "赫赛", "liposomal paclitaxel", "Herceptine", "???"],
                          vocab, per_name=2)
    assert list(got.columns) == ["drug_name", "rank", "vocabulary_name", "ingredient", "score"]
    rows = [tuple(r) for r in got.itertuples(index=False)]
    assert rows == [
        # Indel ratio of 'herceptine' and 'herceptin': 2·9/(10+9) = 94.7; then 'herceptin hylecta'
        # (17 characters, sharing the subsequence 'herceptin'+'e'): 2·10/(10+17) = 74.1
        ("Herceptine", 1, "herceptin", T, 94.7),
        ("Herceptine", 2, "herceptin hylecta", T, 74.1),
        # 2·5/(5+6) = 90.9 for 紫杉醇脂质体; 紫杉醇 only 2·3/(5+3) = 75.0
        ("紫杉醇脂质", 1, "紫杉醇脂质体", PL, 90.9),
        ("紫杉醇脂质", 2, "紫杉醇", PAC, 75.0),
        # 2·2/(2+3) = 80 for both brands: the tie goes by name
        ("赫赛", 1, "赫赛汀", T, 80.0),
        ("赫赛", 2, "赫赛莱", TDM1, 80.0),
        # words in either order
        ("liposomal paclitaxel", 1, "liposomal paclitaxel", PL, 100.0),
        ("liposomal paclitaxel", 2, "paclitaxel liposomal", PL, 100.0),
    ]


def test_nearest_entries_of_a_combination_and_of_nothing(matcher):
    got = nearest_entries(["phesgoo"], matcher, per_name=1)
    assert [tuple(r) for r in got.itertuples(index=False)] == [("phesgoo", 1, "phesgo", "pertuzumab+trastuzumab", 92.3)]
    assert nearest_entries([], matcher).empty
    assert list(nearest_entries(["注射液"], matcher).columns) == ["drug_name", "rank", "vocabulary_name",
                                                                 "ingredient", "score"]


# -- the unmatched share ---------------------------------------------------------------------------

def test_unmatched_share(vocab):
    pairs = pd.DataFrame([
        ("注射用紫杉醇脂质体（力扑素）", None, 50),
        ("泰素帝", None, 30),              # unmatched
        ("泰素帝", "L01CD02", 10),         # matched by its code
        ("（江苏恒瑞）", None, 5),          # unmatched
        ("赫赛汀", "X", 4),
        ("曲妥珠单抗(帕捷特)", "L01FD01", 1),   # ambiguous: unmatched
    ], columns=["drug_name", "drug_code", "n_rows"])
    share, top = unmatched_share(pairs, vocab)
    assert share == pytest.approx(36 / 100)
    assert list(top.columns) == ["drug_name", "n_rows"]
    assert [tuple(r) for r in top.itertuples(index=False)] == [
        ("泰素帝", 30), ("（江苏恒瑞）", 5), ("曲妥珠单抗(帕捷特)", 1)]
    share, top = unmatched_share(pairs, NameMatcher(vocab), top=1)
    assert [tuple(r) for r in top.itertuples(index=False)] == [("泰素帝", 30)]
    share, top = unmatched_share(pairs.iloc[:0], vocab)
    assert share == 0.0 and top.empty


# -- the Spark mapping ------------------------------------------------------------------------------

def test_build_drug_exposures_reads_printed_names(spark, vocab):
    rows = [
        ("r1", "p1", "注射用紫杉醇脂质体（力扑素）", None),
        ("r2", "p1", "注射用曲妥珠单抗(赫赛汀) 440mg", "L01FD01"),
        ("r3", "p1", "帕妥珠单抗曲妥珠单抗注射液（皮下注射）", None),   # two exposures
        ("r4", "p1", "紫杉醇(力扑素)", "L01CD01"),                        # the name wins over the code
        ("r5", "p2", "泰素帝", "L01CD02"),                                # name unreadable → code
        ("r6", "p2", "泰素帝", None),                                     # unmatched
        ("r7", "p2", "曲妥珠单抗(帕捷特)", "L01FD01"),                    # ambiguous: unmatched, code not used
        ("r8", "p2", "恩美曲妥珠单抗", None),
        ("r9", "p2", "白蛋白结合型 紫杉醇", None),
        ("r10", "p2", None, "L01FD02"),                                   # no name: the code
        ("r11", "p3", "（江苏恒瑞）", None),                               # a maker alone
        ("r12", "p3", "注射用紫杉醇脂质体（力扑素）", None),                # the same pair again
    ]
    full = [(rid, pid, "H1", dt.date(2021, 3, 1), name, code, 100.0, "mg", "iv") for rid, pid, name, code in rows]
    rx = spark.createDataFrame(full, SOURCE_TABLES["prescriptions"].ddl)
    exposures, unmatched = build_drug_exposures(rx, vocab)
    exposed, left = exposures.collect(), unmatched.collect()   # one action each: the machine is shared
    got = sorted((r["record_id"], r["ingredient"], r["drug_class"], r["matched_by"], r["counts_for_lines"])
                 for r in exposed)
    assert got == sorted([
        ("r1", PL, "taxane", "name", True),
        ("r2", T, "anti_her2_mab", "name", True),
        ("r3", P, "anti_her2_mab", "name", True),
        ("r3", T, "anti_her2_mab", "name", True),
        ("r4", PL, "taxane", "name", True),
        ("r5", DOC, "taxane", "code", True),
        ("r8", TDM1, "anti_her2_adc", "name", True),
        ("r9", NAB, "taxane", "name", True),
        ("r10", P, "anti_her2_mab", "code", True),
        ("r12", PL, "taxane", "name", True),
    ])
    assert sorted((r["record_id"], r["drug_name"], r["reason"]) for r in left) == [
        ("r11", "（江苏恒瑞）", "unmatched_drug_name"),
        ("r6", "泰素帝", "unmatched_drug_name"),
        ("r7", "曲妥珠单抗(帕捷特)", "unmatched_drug_name")]
    # every prescription row is exposed or unmatched, never both
    assert {r["record_id"] for r in exposed} | {r["record_id"] for r in left} == {r[0] for r in rows}
    assert not {r["record_id"] for r in exposed} & {r["record_id"] for r in left}
    assert [tuple(r) for r in unmatched_name_counts(unmatched).collect()] == [
        ("曲妥珠单抗帕捷特", 1), ("江苏恒瑞", 1), ("泰素帝", 1)]
