"""Small parts of the generator: chunking, ages, ids, drug-name data, regimen rules (no Spark)."""
from __future__ import annotations

import datetime as dt
import unicodedata

import numpy as np
import pytest

from cohort_engine.synth import drugs, regimens
from cohort_engine.synth.columns import hex_hash, patient_ids
from cohort_engine.synth.plan import Plan, chunk_size_for, day
from cohort_engine.synth.prescription_tables import _decorations, _fullwidth
from cohort_engine.synth.draws import age_years
from cohort_engine.synth.truth import anti_her2_label

# Ingredients named by notes/internal-interfaces.md (tucatinib, ribociclib are not used by the generator).
SHARED_INGREDIENTS = (
    "paclitaxel", "paclitaxel liposome", "nab-paclitaxel", "docetaxel", "trastuzumab", "pertuzumab", "inetetumab",
    "pyrotinib", "lapatinib", "neratinib", "trastuzumab emtansine", "trastuzumab deruxtecan", "capecitabine",
    "vinorelbine", "gemcitabine", "eribulin", "cisplatin", "carboplatin", "doxorubicin", "epirubicin",
    "pegylated liposomal doxorubicin", "cyclophosphamide", "fluorouracil", "tamoxifen", "toremifene", "letrozole",
    "anastrozole", "exemestane", "fulvestrant", "goserelin", "leuprorelin", "palbociclib", "abemaciclib",
    "dalpiciclib", "ondansetron", "granisetron", "palonosetron", "aprepitant", "dexamethasone", "filgrastim",
    "pegfilgrastim", "zoledronic acid", "denosumab")


def test_chunk_sizes_depend_on_the_number_of_patients_only():
    # clamp(ceil(N / 8), 1000, 10000): 300 → 1000 (1 chunk); 1500 → 1000 (2); 40000 → 5000 (8);
    # 1,000,000 → 10000 (100)
    assert [chunk_size_for(n) for n in (300, 1500, 40_000, 1_000_000)] == [1000, 1000, 5000, 10_000]
    plan = Plan(1500, 1, dt.date(2025, 6, 30))
    assert (plan.n_chunks, plan.bounds(0), plan.bounds(1)) == (2, (0, 1000), (1000, 1500))
    assert Plan(1_000_000, 1, dt.date(2025, 6, 30)).n_chunks == 100
    with pytest.raises(ValueError):
        Plan(0, 1, dt.date(2025, 6, 30))


def test_patient_ids_and_hashes():
    plan = Plan(1000, 1, dt.date(2025, 6, 30))     # width max(7, len("3001")) = 7
    assert list(patient_ids(plan, [1, 42, 1000])) == ["P0000001", "P0000042", "P0001000"]
    assert len(patient_ids(Plan(4_000_000, 1, dt.date(2025, 6, 30)), [1])[0]) == 1 + 8
    # 0x0123456789abcdef and 0xfedcba9876543210 written big-endian, two hex digits per byte
    h = hex_hash(np.array([0x0123456789ABCDEF], dtype=np.uint64), np.array([0xFEDCBA9876543210], dtype=np.uint64))
    assert h.to_pylist() == ["0123456789abcdeffedcba9876543210"]


def test_age_in_completed_years():
    birth = np.array([day(dt.date(1990, 3, 15))] * 3 + [day(dt.date(2000, 2, 29))])
    on = np.array([day(dt.date(2008, 3, 14)), day(dt.date(2008, 3, 15)), day(dt.date(2024, 12, 31)),
                   day(dt.date(2018, 2, 28))])
    # 17 the day before the 18th birthday, 18 on it; 34 at the end of 2024; a leap-day child is
    # not yet 18 on 2018-02-28
    assert list(age_years(birth, on)) == [17, 18, 34, 17]


def test_anti_her2_labels():
    assert anti_her2_label("paclitaxel liposome+trastuzumab") == "H"
    assert anti_her2_label("paclitaxel liposome+pertuzumab+trastuzumab") == "HP"
    assert anti_her2_label("inetetumab+paclitaxel liposome") == "I"
    assert anti_her2_label("paclitaxel liposome+pyrotinib+trastuzumab") == "H+TKI"
    assert anti_her2_label("paclitaxel liposome") == ""


def test_drug_name_data_covers_the_shared_ingredients():
    assert set(SHARED_INGREDIENTS) <= set(drugs.INGREDIENTS)
    classes = {"taxane", "anti_her2_mab", "anti_her2_tki", "anti_her2_adc", "chemo_other", "endocrine",
               "cdk46_inhibitor", "supportive"}
    assert {v[0] for v in drugs.INGREDIENTS.values()} == classes
    canonical = [v[2] for v in drugs.INGREDIENTS.values()] + [drugs.FIXED_DOSE_HP_CANONICAL]
    assert len(set(canonical)) == len(canonical)
    all_forms = {}
    for product in drugs.PRODUCTS:
        forms = drugs.NAME_FORMS[product]
        assert any(all(ord(c) < 128 for c in f) for f in forms), product
        assert any(any(ord(c) > 0x4E00 for c in f) for f in forms), product
        for f in forms:
            assert all_forms.setdefault(f, product) == product, f   # a form names one product
    assert "注射用紫杉醇脂质体" in drugs.NAME_FORMS["paclitaxel liposome"]
    assert {"汉曲优", "赫赛汀", "Herceptin"} <= set(drugs.NAME_FORMS["trastuzumab"])
    assert drugs.INGREDIENTS["paclitaxel liposome"][1] == drugs.INGREDIENTS["nab-paclitaxel"][1] == "L01CD01"
    assert not set(drugs.GARBLED_NAMES) & set(all_forms)


def test_decorated_names_normalise_back_to_their_form():
    assert _fullwidth("TRASTUZUMAB") == "ＴＲＡＳＴＵＺＵＭＡＢ"

    def normal(s):
        return "".join(unicodedata.normalize("NFKC", s).lower().split())
    for form in ("Herceptin", "力扑素", "trastuzumab emtansine", "注射用紫杉醇脂质体"):
        decorated = _decorations(form)
        assert decorated and form not in decorated
        assert {normal(d) for d in decorated} == {normal(form)}


def test_next_lines_need_a_new_non_substitute_non_endocrine_drug():
    assert regimens.new_drugs("PL+H", "NAB+H") == set()                   # substitute taxane
    assert regimens.new_drugs("PL+H", "PYRO+CAP") == {"pyrotinib", "capecitabine"}
    assert regimens.new_drugs("LET+PAL", "FUL+ABE") == {"abemaciclib"}     # fulvestrant is endocrine
    assert regimens.new_drugs("LET", "FUL") == set()
    assert regimens.new_drugs("PAC+CB", "DOC+CIS") == {"docetaxel"}         # cisplatin substitutes
    valid = regimens.valid_next_matrix()
    assert not valid[regimens.INDEX["PL+H"], regimens.INDEX["PL+H"]]
    assert valid[regimens.INDEX["DOC+HP"], regimens.INDEX["TDM1"]]
