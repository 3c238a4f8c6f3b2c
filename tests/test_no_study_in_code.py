"""A study is data: no ingredient of the vocabulary is named in the engine's code.

The modules that read printed drug names (drug_names, name_matcher, unmatched_names)
and the facts module (the readers of HER2/ER/PR results: general knowledge) may name
what they read. The generator (`cohort_engine.synth`) plays the hospitals that print
drug names, so it is not the engine and is left out.
"""
from __future__ import annotations

import csv
import re

from cohort_engine.conf_folder import REPO_ROOT, shipped_conf_dir

ENGINE = REPO_ROOT / "lib" / "cohort_engine"
ALLOWED = {"drug_names.py", "name_matcher.py", "unmatched_names.py", "facts.py"}


def ingredients() -> set[str]:
    with open(shipped_conf_dir() / "vocabulary" / "drugs.csv", encoding="utf-8") as f:
        return {row["ingredient"].lower() for row in csv.DictReader(f)}


def named_ingredients(text: str, names: set[str]) -> set[str]:
    # An ingredient as a word of its own: `her2_paclitaxel_liposome` (a study's file name) is not one.
    low = text.lower()
    return {n for n in names if re.search(r"(?<![\w-])" + re.escape(n) + r"(?![\w-])", low)}


def test_no_ingredient_named_in_the_engine():
    names = ingredients()
    found = {}
    for path in sorted(ENGINE.glob("*.py")):
        if path.name not in ALLOWED:
            hits = named_ingredients(path.read_text(encoding="utf-8"), names)
            if hits:
                found[path.name] = sorted(hits)
    assert found == {}


def test_the_check_finds_an_ingredient():
    names = ingredients()
    assert named_ingredients('INDEX_DRUG = "paclitaxel liposome"', names) == {"paclitaxel", "paclitaxel liposome"}
    assert named_ingredients("# trastuzumab alone (H)", names) == {"trastuzumab"}
    assert named_ingredients('DEFAULT_STUDY = "her2_paclitaxel_liposome"', names) == set()
    assert named_ingredients("nab-paclitaxel", names) == {"nab-paclitaxel"}
