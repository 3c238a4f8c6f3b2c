"""The study definition language: every example of docs/studies.md, loaded and run.

Each example replaces (or is added to) a part of the seed study; the cohort and
attrition expected on the hand-built world of test_cohort.py are worked out by hand
in docs/studies.md ("On the test world") and repeated here.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F
from test_cohort import world_parts

from builders import CLASS_NAMES, bronze, drug_exposures, therapy_lines
from cohort_engine import cohort as cohort_mod
from cohort_engine.conf_folder import REPO_ROOT, default_study_path
from cohort_engine.config import load_study, study_from_dict
from cohort_engine.errors import ConfigError
from cohort_engine.facts import build_patient_facts
from cohort_engine.report_sections import report_heading
from cohort_engine.safety import analyse_safety
from cohort_engine.studies import attrition_plan, shipped_studies
from cohort_engine.subgroups import subgroup_table

DOCS = REPO_ROOT / "docs" / "studies.md"
SEED_ATTRITION = [13, 12, 10, 9, 7, 6, 5, 4, 3]


def doc_examples() -> dict[str, object]:
    """name → parsed YAML of every `<!-- example: name -->` block of docs/studies.md."""
    text = DOCS.read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: (\w+) -->\s*```yaml\n(.*?)```", text, flags=re.S)
    return {name: yaml.safe_load(body) for name, body in found}


def seed_dict() -> dict:
    return yaml.safe_load(default_study_path().read_text(encoding="utf-8"))


def replace_criterion(i):
    def apply(study, example):
        study["population"][i] = example[0]
    return apply


def append_criterion(study, example):
    study["population"].append(example[0])


def merge(study, example):
    study.update(example)


# name → (how the example enters the seed study, cohort ids, attrition n_remaining or None)
CASES = {
    "index_first_line": (merge, ["i1", "i2", "i3"], SEED_ATTRITION),
    "index_second_line": (merge, ["x5"], [13, 12, 9, 1, 1]),
    "index_any_line": (merge, ["i1", "i2", "i3", "x2", "x2b", "x3", "x5", "x6", "x7", "x8"], [13, 12, 10]),
    "population_seed": (merge, ["i1", "i2", "i3"], SEED_ATTRITION),
    "criterion_diagnosis": (replace_criterion(0), ["i1", "i2", "i3"], SEED_ATTRITION),
    "criterion_advanced_de_novo": (replace_criterion(2), ["i1"], [13, 12, 10, 1, 1, 1, 1, 1, 1]),
    "criterion_biomarker": (append_criterion, ["i2"], SEED_ATTRITION + [1]),
    "criterion_biomarker_statuses": (append_criterion, ["i1", "i3"], SEED_ATTRITION + [2]),
    "criterion_index_line_number": (replace_criterion(4), ["i1", "i2", "i3", "x5"], [13, 12, 10, 9, 7, 7, 6, 5, 4]),
    "criterion_age": (replace_criterion(5), ["i1", "i3"], [13, 12, 10, 9, 7, 6, 2, 2, 2]),
    "criterion_sex": (append_criterion, [], SEED_ATTRITION + [0]),
    "criterion_earlier_treatment_excluded": (append_criterion, ["i1", "i3"], SEED_ATTRITION + [2]),
    "criterion_earlier_treatment_window": (append_criterion, ["i2"], SEED_ATTRITION + [1]),
    "arms": (merge, ["i1", "i2", "i3"], SEED_ATTRITION),
}


@pytest.fixture(scope="module")
def world(spark):
    parts = world_parts()
    b = bronze(spark, patients=parts["patients"], diagnoses=parts["diagnoses"], biomarkers=parts["biomarkers"],
               deaths=parts["deaths"],
               hospitals=[{"hospital_id": "H1", "tier": "3A", "province": "北京市", "hospital_type": "oncology"},
                          {"hospital_id": "H2", "tier": "2B", "province": "Sichuan", "hospital_type": "general"}])
    return b, therapy_lines(spark, parts["lines"]).cache(), drug_exposures(spark, parts["exposures"]).cache()


_FACTS: dict = {}


def run(world, study):
    b, lines, exposures = world
    # The facts depend on the study's cancer, de novo days and cut-off only: built once per such key.
    key = (study.diagnosis_icd10, study.facts.de_novo_days, study.data_cutoff)
    if key not in _FACTS:
        _FACTS[key] = build_patient_facts(b, study).cache()
    cohort, attrition, _ = cohort_mod.build_cohort(_FACTS[key], lines, exposures, b, study, CLASS_NAMES)
    rows = {r["patient_id"]: r.asDict() for r in cohort.collect()}
    return rows, [tuple(r) for r in attrition.orderBy("step").collect()]


def study_with(name: str) -> tuple:
    apply, ids, counts = CASES[name]
    data = seed_dict()
    apply(data, copy.deepcopy(doc_examples()[name]))
    return study_from_dict(data), ids, counts


# name → {patient: value} of the variable the example adds to the seed study
VARIABLE_CASES = {
    "variable_age_bands": ("age_band", {"i1": "50-64", "i2": "50-64", "i3": "<50"}),
    "variable_biomarker": ("er_status", {"i1": "positive", "i2": "negative", "i3": "unknown"}),
    "variable_metastatic_site": ("bone_mets", {"i1": False, "i2": True, "i3": False}),
    "variable_earlier_treatment": ("prior_trastuzumab", {"i1": False, "i2": True, "i3": False}),
    "variable_regimen_label": ("blockade", {"i1": "dual", "i2": "single", "i3": "single"}),
    "variable_region": ("region", {"i1": "North China", "i2": "other", "i3": "North China"}),
}


def test_every_example_of_the_docs_is_tested():
    assert set(doc_examples()) == set(CASES) | set(VARIABLE_CASES) | {
        "header", "facts", "patterns", "endpoints", "safety", "report", "analysis", "comparison"}


def test_comparison_example_is_the_arms_studys():
    path = default_study_path({}).parent / "her2_taxane_arms_first_line.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    shipped = study_from_dict(data).comparison
    data.update(doc_examples()["comparison"])
    assert study_from_dict(data).comparison == shipped
    assert (shipped.treated, shipped.estimand, shipped.caliper_sd) == ("paclitaxel_liposome", "ATE", 0.2)


def test_patterns_example_and_its_default():
    seed = study_from_dict(seed_dict())
    ingredients = {"paclitaxel liposome", "trastuzumab", "pertuzumab"}
    assert seed.pattern_drugs(ingredients) == ("paclitaxel liposome",)  # all_of; the class of any_of is not
    data = seed_dict()
    data.update(doc_examples()["patterns"])
    assert study_from_dict(data).pattern_drugs(ingredients) == ("paclitaxel liposome", "trastuzumab")


@pytest.fixture(scope="module")
def with_variables(world):
    """The seed study with every variable example added (one run for all of them)."""
    data = seed_dict()
    examples = doc_examples()
    for name in VARIABLE_CASES:
        data["variables"].append(examples[name][0])
    rows, _ = run(world, study_from_dict(data))
    return rows


@pytest.mark.parametrize("name", sorted(VARIABLE_CASES))
def test_variable_example(with_variables, name):
    column, expected = VARIABLE_CASES[name]
    assert {p: r[column] for p, r in with_variables.items()} == expected


def test_seed_variables_are_the_contract_columns(with_variables):
    seed = study_from_dict(seed_dict())
    assert cohort_mod.cohort_columns(seed) == [
        "patient_id", "index_date", "regimen", "anti_her2", "age_at_index", "sex", "hr_status", "de_novo",
        "visceral", "brain_mets", "bone_only", "prior_anti_her2", "hospital_tier", "province", "index_year",
        "arm", "index_setting", "index_line_number", "index_last_admin_date"]


def test_analysis_example_sets_subgroups_and_sensitivity_analyses():
    from cohort_engine.sensitivity import sensitivity_studies
    data = seed_dict()
    data.update(doc_examples()["analysis"])
    s = study_from_dict(data)
    assert (s.analysis.subgroups, s.analysis.rate_months, s.analysis.risk_table_every_months) == (
        ("hr_status", "age_group"), (6, 12, 24), 3)
    variants = sensitivity_studies(s)
    assert list(variants) == ["OS censored at last contact", "lines rebuilt with a 90-day gap"]
    assert variants["lines rebuilt with a 90-day gap"].lines.max_gap_days == 90
    assert (s.analysis.references, s.analysis.levels_compared) == (
        (("hr_status", "negative"), ("age_group", "<50")), (("hr_status", ("positive", "negative")),))

    # Applied, on 12 patients worked by hand: 5 HR-positive, 5 negative, 2 unknown. The
    # unknown level is outside the comparison; the hazard ratios read against "negative".
    ids = [f"Q{i}" for i in range(12)]
    events = [1, 0] * 6
    endpoints = pd.DataFrame({"patient_id": ids, "endpoint": "OS", "time_days": [30 * (i + 1) for i in range(12)],
                              "event": events, "event_type": ["death" if e else "censored" for e in events],
                              "source": None})
    levels = pd.DataFrame({"patient_id": ids, "hr_status": ["positive"] * 5 + ["negative"] * 5 + ["unknown"] * 2})
    hr_only = dataclasses.replace(s, analysis=dataclasses.replace(s.analysis, subgroups=("hr_status",)))
    table = subgroup_table(endpoints, levels, hr_only).set_index("level")
    assert table.loc[["positive", "negative", "unknown"], ["reference", "compared", "n"]].values.tolist() == [
        ["negative", True, 5], ["negative", True, 5], ["negative", False, 2]]
    assert table.loc["unknown", "note"] == "value unknown: not in the comparison"
    every_level = dataclasses.replace(hr_only, analysis=dataclasses.replace(hr_only.analysis, levels_compared=()))
    assert subgroup_table(endpoints, levels, every_level).set_index("level").loc["unknown", "compared"]

    data["analysis"]["references"] = {"bone_only": "no"}
    with pytest.raises(ConfigError, match=r"^analysis\.references: 'bone_only' is not one of analysis\.subgroups "
                                          r"\(hr_status, age_group\)$"):
        study_from_dict(data)
    data["analysis"]["references"] = yaml.safe_load("{age_group: no}")  # a bare no: YAML's false
    with pytest.raises(ConfigError, match=r'^analysis\.references\[0\]\[1\]: expected text, got False \(YAML'):
        study_from_dict(data)
    del data["analysis"]["references"]
    data["analysis"]["subgroups"] = ["hr_status", "menopausal_status"]
    with pytest.raises(ConfigError, match=r"^analysis\.subgroups\[1\]: 'menopausal_status' is not a variable "):
        study_from_dict(data)


def test_report_example_heads_the_report_and_the_plan():
    data = seed_dict()
    data.update(doc_examples()["report"])
    s = study_from_dict(data)
    assert report_heading(s) == (
        "First-line paclitaxel liposome, HER2-positive advanced breast cancer",
        "Study her2_paclitaxel_liposome. Data cut-off 2025-06-30. "
        "One paragraph for the report: who is in the study and why.")
    assert attrition_plan(s, CLASS_NAMES)[0] == (
        "her2_paclitaxel_liposome: First-line paclitaxel liposome, HER2-positive advanced breast cancer")
    del data["report"]
    assert report_heading(study_from_dict(data)) == (
        "her2_paclitaxel_liposome", "Study her2_paclitaxel_liposome. Data cut-off 2025-06-30.")


def test_endpoints_example_builds_only_its_endpoints(spark):
    import test_endpoints as te
    data = seed_dict()
    data.update(doc_examples()["endpoints"])
    study = dataclasses.replace(study_from_dict(data), data_cutoff=te.CUTOFF)
    endpoints, dq = te.build(spark, study)
    # Each patient's OS and TTNT rows are those of the hand-worked table of all five endpoints.
    expected = {pid: {e: row for e, row in rows.items() if e in ("OS", "TTNT")} for pid, rows in te.EXPECTED.items()}
    assert te.as_dict(endpoints) == {pid: rows for pid, rows in expected.items() if rows}
    counted = {r["reason"] for r in dq.collect() if r["check"] in ("negative_time", "no_time")}
    assert counted == {"OS", "TTNT"}


def test_safety_example_reads_only_its_toxicities_and_terms():
    import test_safety as ts
    data = seed_dict()
    data.update(doc_examples()["safety"])
    result = analyse_safety(ts.COHORT, ts.LABS, ts.AES, study_from_dict(data))
    t = result.incidence
    rows = [(r.term, r.source, r.any_grade_n, r.grade3plus_n, r.tested_n) for r in t.itertuples(index=False)]
    assert [r[:2] for r in rows] == [
        ("Neutrophil count decreased", "lab"), ("Platelet count decreased", "lab"),
        ("Peripheral sensory neuropathy", "record"), ("unmapped term", "record")]
    assert rows[0][2:] == (1, 1, 1) and rows[1][2:] == (1, 1, 1)  # C grade 3 (ANC), D grade 3 (PLT)
    assert rows[2][2:4] == (1, 1) and rows[3][2:4] == (1, 0)      # A grade 3; B's unmapped grade 2
    # C's ANC (05-31) and D's four platelet counts; A's neuropathy (2 rows) and B's unmapped term.
    assert result.counts == {"patients_without_window": 0, "lab_rows_in_window": 5, "lab_rows_ungradable": 0,
                             "ae_rows_other_terms": 2, "ae_rows_in_window": 3, "ae_rows_unmapped": 1,
                             "ae_rows_without_grade": 0}
    assert set(result.events["term"]) == {"Neutrophil count decreased", "Platelet count decreased",
                                          "Peripheral sensory neuropathy", "unmapped term"}


@pytest.mark.parametrize("written, region", [
    ("北京", "North"), ("北京市", "North"), (" 北京市 ", "North"), ("BEIJING", "North"),
    ("广西壮族自治区", "South"), ("新疆维吾尔自治区", "West"), ("内蒙古自治区", "North"), ("香港特别行政区", "other"),
    ("Guangxi", "other"), ("", None), (None, None),
])
def test_region_reads_the_province_as_hospitals_write_it(spark, written, region):
    from cohort_engine.baseline_variables import RegionVariable
    v = RegionVariable(name="region", regions=(("North", ("北京", "内蒙古", "Beijing")), ("South", ("广西",)),
                                               ("West", ("新疆维吾尔自治区",))))
    frame = spark.createDataFrame([(written,)], "province string")
    assert frame.select(cohort_mod.region_of(v, frame["province"])).first()[0] == region


def test_region_of_residence(world):
    b, lines, exposures = world
    data = seed_dict()
    data["variables"].append({"kind": "region", "name": "home", "of": "residence",
                              "regions": {"North China": ["北京"], "Southwest China": ["四川"]}})
    data["variables"].append({"kind": "province", "name": "home_province", "of": "residence"})
    patients = b["patients"].withColumn(
        "province", F.when(F.col("patient_id") == "i1", F.lit("四川省")).when(F.col("patient_id") == "i2", "北京"))
    rows, _ = run((dict(b, patients=patients), lines, exposures), study_from_dict(data))
    assert {p: (r["home"], r["home_province"], r["province"]) for p, r in rows.items()} == {
        "i1": ("Southwest China", "四川省", "北京市"), "i2": ("North China", "北京", "Sichuan"),
        "i3": (None, None, "北京市")}


def test_header_and_facts_examples_load():
    examples = doc_examples()
    data = seed_dict()
    data.update(examples["header"])
    data.update(examples["facts"])
    s = study_from_dict(data)
    assert (s.name, s.data_cutoff, s.study_period.start, s.study_end) == (
        "my_study", dt.date(2025, 6, 30), dt.date(2013, 1, 1), dt.date(2025, 6, 30))
    assert (s.facts.de_novo_days, s.facts.window_days_after_index) == (90, 30)


@pytest.mark.parametrize("name", sorted(CASES))
def test_doc_example(world, name):
    study, ids, counts = study_with(name)
    rows, attrition = run(world, study)
    assert sorted(rows) == ids
    assert [a[2] for a in attrition] == counts
    assert [a[0] for a in attrition] == list(range(1, len(counts) + 1))
    assert all(a[3] == (0 if k == 0 else attrition[k - 1][2] - a[2]) for k, a in enumerate(attrition))


def test_index_line_of_any_setting_is_recorded_in_the_cohort(world):
    study, *_ = study_with("index_any_line")
    rows, attrition = run(world, study)
    assert (rows["x3"]["index_setting"], rows["x3"]["index_line_number"]) == ("early", 1)
    assert (rows["x5"]["index_setting"], rows["x5"]["index_line_number"]) == ("advanced", 2)
    assert rows["x5"]["index_date"] == dt.date(2020, 7, 28)
    # Its line 2 is one day of administration: the index line ends where it starts.
    assert rows["x5"]["index_last_admin_date"] == dt.date(2020, 7, 28)
    assert [a[1] for a in attrition] == [
        "all valid patients", "diagnosis with ICD-10 C50",
        "a line containing paclitaxel liposome and an anti-HER2 antibody"]


def test_second_line_attrition_texts(world):
    study, *_ = study_with("index_second_line")
    _, attrition = run(world, study)
    assert [a[1] for a in attrition] == [
        "all valid patients", "diagnosis with ICD-10 C50",
        "an advanced-setting line containing paclitaxel liposome", "that line is advanced line 2",
        "earlier treatment with capecitabine in the advanced setting before the index date"]


def test_arms_split_the_cohort(world):
    study, *_ = study_with("arms")
    rows, _ = run(world, study)
    assert {p: r["arm"] for p, r in rows.items()} == {"i1": "pl_hp", "i2": "pl_h", "i3": None}
    # Two arms that both hold i1 and i2: they are in neither; i3 meets only the first.
    data = seed_dict()
    data["arms"] = [{"name": "a", "regimen": {"all_of": ["paclitaxel liposome"]}},
                    {"name": "b", "regimen": {"all_of": ["trastuzumab"]}}]
    rows, _ = run(world, study_from_dict(data))
    assert {p: r["arm"] for p, r in rows.items()} == {"i1": None, "i2": None, "i3": "a"}


SHIPPED = ["docetaxel_hp_first_line", "her2_paclitaxel_liposome", "her2_pyrotinib_capecitabine_second_line",
           "her2_taxane_arms_first_line", "hr_positive_cdk46_first_line"]


def test_shipped_studies_load_and_are_listed():
    found = shipped_studies({})
    assert [p.stem for p, _ in found] == SHIPPED
    assert all(not isinstance(s, str) and s.name == p.stem for p, s in found)


def test_study_check_prints_the_plan_without_spark(tmp_path):
    path = default_study_path({}).parent / "her2_pyrotinib_capecitabine_second_line.yaml"
    done = subprocess.run([sys.executable, "-m", "cohort_engine", "study", "check", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "Index line: the first advanced-setting line containing pyrotinib and capecitabine, line 2.",
        "Study period 2013-01-01 to 2025-06-30; data cut-off 2025-06-30.",
        "Attrition:",
        "  1. all valid patients",
        "  2. breast cancer diagnosis (ICD-10 C50)",
        "  3. HER2-positive",
        "  4. advanced disease",
        "  5. an advanced-setting line containing pyrotinib and capecitabine",
        "  6. that line is advanced line 2",
        "  7. trastuzumab in the advanced setting before the index line",
        "  8. age ≥ 18 at index",
        "  9. index date within the study period (2013-01-01 to 2025-06-30)",
        "  10. no death recorded before the index date",
        "Variables (gold/cohort columns): anti_her2 (regimen_label), age_at_index (age), sex (sex), "
        "hr_status (biomarker), de_novo (de_novo), visceral (metastatic_site), brain_mets (metastatic_site), "
        "bone_only (metastatic_site), prior_anti_her2 (earlier_treatment), hospital_tier (hospital_tier), "
        "province (province), index_year (index_year)",
    ]
    bad = tmp_path / "bad.yaml"
    data = seed_dict()
    data["population"][5]["min"] = "18"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "cohort_engine", "study", "check", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"cohort-engine: {bad}: population[5].min: expected a whole number, got '18'")


def test_an_index_rule_naming_a_class_reads_in_the_class_s_name():
    from cohort_engine.studies import index_line_words
    cdk46 = load_study(default_study_path({}).parent / "hr_positive_cdk46_first_line.yaml")
    assert index_line_words(cdk46, CLASS_NAMES) == (
        "the first advanced-setting line containing a CDK4/6 inhibitor and one of letrozole, anastrozole, "
        "exemestane or fulvestrant, line 1")
    data = seed_dict()
    data["index"]["regimen"] = {"all_of": ["paclitaxel liposome"], "any_of": ["anti_her2_mab"],
                                "none_of": ["anti_her2_tki"]}
    assert index_line_words(study_from_dict(data), CLASS_NAMES) == (
        "the first advanced-setting line containing paclitaxel liposome and an anti-HER2 antibody, without an "
        "anti-HER2 tyrosine kinase inhibitor, line 1")


def test_arms_are_named_in_the_plan():
    study = load_study(default_study_path({}).parent / "her2_taxane_arms_first_line.yaml")
    plan = attrition_plan(study, CLASS_NAMES)
    assert plan[-3:] == [
        "Arms (a patient whose index regimen meets two arms is in neither):",
        "  paclitaxel liposome + anti-HER2 antibody: index regimen containing paclitaxel liposome and an "
        "anti-HER2 antibody",
        "  paclitaxel, docetaxel or nab-paclitaxel + anti-HER2 antibody: index regimen containing an anti-HER2 "
        "antibody and one of paclitaxel, docetaxel or nab-paclitaxel, without paclitaxel liposome",
    ]
