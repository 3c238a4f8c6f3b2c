"""End to end on a generated clean extract: the engine against the simulation's truth.

The truth comes from the generator's simulation (docs/generator.md), never from the
engine, so agreement here checks lines, cohort and endpoints independently. The five
shipped studies run together, over one build of the lines; each study's cohort is
checked against the one its rules give on the truth (written out here in pandas).
"""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from cohort_engine.cli import main

PATIENTS = 4000
SEED = 11
CUTOFF = dt.date(2025, 6, 30)
ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}
LINE_KEY = ["patient_id", "setting", "line_number", "start_date", "last_admin_date", "regimen", "n_admin_days"]


SEED_STUDY = "her2_paclitaxel_liposome"
STUDIES = [SEED_STUDY, "docetaxel_hp_first_line", "hr_positive_cdk46_first_line",
           "her2_pyrotinib_capecitabine_second_line", "her2_taxane_arms_first_line"]


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.synth import generate_extract
    base = tmp_path_factory.mktemp("e2e")
    generate_extract(spark, base / "extract", patients=PATIENTS, seed=SEED, clean=True, cutoff=CUTOFF)
    studies = [a for name in STUDIES for a in ("--study", str(default_study_path({}).parent / f"{name}.yaml"))]
    code = main(["run", "--source", str(base / "extract"), "--lake", str(base / "lake"), "--out", str(base / "out"),
                 *studies, "--quiet"], ENV)
    assert code == 0
    return base


def gold(base, name, study=SEED_STUDY):
    """A gold table of a study: the seed study's under the contract's name, others' in their folder."""
    from deltalake import DeltaTable
    folder = base / "lake" / "gold" / (name if study == SEED_STUDY else f"studies/{study}/{name}")
    return DeltaTable(str(folder)).to_pandas()


def truth(base, name):
    return pd.read_parquet(base / "extract" / "truth" / name)


def test_lines_equal_the_truth(run):
    engine = gold(run, "therapy_lines")[LINE_KEY]
    expected = truth(run, "lines")[LINE_KEY]
    merged = engine.merge(expected, how="outer", indicator=True)
    agree = (merged["_merge"] == "both").sum()
    share = agree / len(merged)
    assert len(expected) > 3000
    assert share >= 0.995, merged[merged["_merge"] != "both"].head(20).to_string()
    # On a clean extract nothing is left unexplained: every line agrees.
    assert share == 1.0


def test_cohort_membership_equals_the_intended(run):
    patients = truth(run, "patients")
    intended = set(patients.loc[patients["intended_in_cohort"], "patient_id"])
    cohort = gold(run, "cohort")
    assert len(intended) >= 40
    assert set(cohort["patient_id"]) == intended
    t = patients.set_index("patient_id").loc[cohort["patient_id"]]
    assert (pd.to_datetime(cohort["index_date"]).dt.date.values == pd.to_datetime(t["index_date"]).dt.date.values).all()
    assert (cohort["anti_her2"].values == t["anti_her2"].values).all()
    assert (cohort["age_at_index"].values == t["age_at_index"].values).all()


def test_overall_survival_equals_the_truth(run):
    endpoints = gold(run, "endpoints")
    os_rows = endpoints[endpoints["endpoint"] == "OS"].set_index("patient_id")
    t = truth(run, "patients").set_index("patient_id").loc[os_rows.index]
    index = pd.to_datetime(t["index_date"])
    died = t["death_recorded"] & t["linkable"] & (pd.to_datetime(t["death_date"]) <= pd.Timestamp(CUTOFF))
    end = pd.to_datetime(t["death_date"]).where(died, pd.Timestamp(CUTOFF))
    days = (end - index).dt.days
    expected_event = (died & (days <= 1826)).astype(int)
    expected_time = days.clip(upper=1826)
    assert (os_rows["event"] == expected_event).all()
    assert (os_rows["time_days"] == expected_time).all()


def test_time_to_next_treatment_events_equal_the_truth(run):
    endpoints = gold(run, "endpoints")
    ttnt = endpoints[endpoints["endpoint"] == "TTNT"].set_index("patient_id")
    t = truth(run, "patients").set_index("patient_id").loc[ttnt.index]
    index = pd.to_datetime(t["index_date"])
    death = pd.to_datetime(t["death_date"]).where(t["death_recorded"] & t["linkable"])
    first = pd.concat([pd.to_datetime(t["next_line_date"]), death], axis=1).min(axis=1)
    days = (first - index).dt.days
    expected_event = (first.notna() & (days <= 1826)).astype(int)
    assert (ttnt["event"] == expected_event).all()
    events = ttnt["event"] == 1
    assert (ttnt.loc[events, "time_days"] == days[events]).all()


READABLE_RESPONSES = {"CR", "PR", "SD", "PD", "完全缓解", "部分缓解", "疾病稳定", "疾病进展"}


def test_rwpfs_source_follows_the_assessments_in_the_extract(run):
    # The proxy applies when the extract holds no readable assessment after index + 14 days
    # (study rules §5); the generator's `assessed` flag is coarser (a patient scheduled for
    # assessments may die before the first), so the oracle reads the raw assessment rows.
    endpoints = gold(run, "endpoints")
    pfs = endpoints[endpoints["endpoint"] == "rwPFS"].set_index("patient_id")
    t = truth(run, "patients").set_index("patient_id").loc[pfs.index]
    raw = pd.read_parquet(run / "extract" / "tumor_assessments")
    raw = raw[raw["response"].str.strip().str.upper().isin(READABLE_RESPONSES)]
    raw = raw.merge(t["index_date"].rename("index_date").reset_index(), on="patient_id")
    days = (pd.to_datetime(raw["assessment_date"]) - pd.to_datetime(raw["index_date"])).dt.days
    after = raw[(days > 14) & (pd.to_datetime(raw["assessment_date"]) <= pd.Timestamp(CUTOFF))]
    expected_proxy = ~pfs.index.isin(after["patient_id"])
    assert ((pfs["source"] == "ttnt_proxy").to_numpy() == expected_proxy).all()
    assert 0.1 < expected_proxy.mean() < 0.5  # about a quarter without assessments (docs/generator.md)
    progressed = pfs["event_type"] == "progression"
    recorded = pd.to_datetime(t.loc[progressed, "pd_assessment_date"])
    index = pd.to_datetime(t.loc[progressed, "index_date"])
    assert (pfs.loc[progressed, "time_days"] == (recorded - index).dt.days).all()


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_has_its_report_tables_and_manifest(run, study):
    out = run / "out" / study
    for name in ("km_summary", "attrition", "table1", "subgroups", "safety", "patterns", "data_quality"):
        assert (out / "tables" / f"{name}.csv").is_file(), name
    assert (out / "report.html").is_file()
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["study"]["name"] == study
    from cohort_engine.manifest import manifest_versions
    written = manifest_versions(manifest, "written")
    own = "gold/cohort" if study == SEED_STUDY else f"gold/studies/{study}/cohort"
    assert written[own] >= 0 and written["gold/therapy_lines"] >= 0
    attrition = pd.read_csv(out / "tables" / "attrition.csv")
    assert attrition["step"].tolist() == list(range(1, len(attrition) + 1))


def _report_prose(html: str) -> str:
    """The report's own words: its title, headings, paragraphs, notes and captions, without its
    tables and figures (which name the regimens patients received, whatever the study)."""
    import re
    html = re.sub(r"(?s)<(table|svg|style)\b.*?</\1>", " ", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).lower()


def _study_words(study) -> set[str]:
    """What a study's definition names: its index regimen's ingredients and classes, its index
    line in words, its biomarker criteria."""
    from cohort_engine.population_criteria import Biomarker
    from builders import CLASS_NAMES
    from cohort_engine.studies import index_line_words
    rule = study.index.regimen
    words = {*rule.all_of, *rule.any_of, index_line_words(study, CLASS_NAMES)}
    words |= {f"{c.marker}-{status}" for c in study.population if isinstance(c, Biomarker) for status in c.status}
    return {w.lower() for w in words}


def test_each_report_names_no_other_study_s_drug_marker_or_line(run):
    # The report's prose comes from its own study's definition: no index drug, biomarker status
    # or index line another study names (and this one does not) appears in it.
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    studies = {name: load_study(default_study_path({}).parent / f"{name}.yaml") for name in STUDIES}
    for name, study in studies.items():
        prose = _report_prose((run / "out" / name / "report.html").read_text(encoding="utf-8"))
        own = (default_study_path({}).parent / f"{name}.yaml").read_text(encoding="utf-8").lower() + " ".join(
            _study_words(study))
        foreign = {w for other, s in studies.items() if other != name for w in _study_words(s)
                   if w not in own and w.replace("_", " ") not in own}
        found = sorted(w for w in foreign if w in prose)
        assert found == [], (name, found)
        assert all(w in prose for w in _study_words(study) if "-" in w)  # its own biomarker criteria are stated


def test_outputs_and_manifest(run):
    out = run / "out" / SEED_STUDY
    manifest = json.loads((out / "run_manifest.json").read_text())
    assert manifest["stages"] == ["ingest", "lines", "cohort", "endpoints", "analysis"]
    assert set(manifest["timings_seconds"]) == set(manifest["stages"])
    from cohort_engine.manifest import manifest_versions
    written = manifest_versions(manifest, "written")
    for table in ("gold/cohort", "gold/endpoints", "gold/therapy_lines", "silver/drug_exposures"):
        assert written[table] >= 1
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    from cohort_engine.publish import audit
    run_date = dt.date.fromisoformat(manifest["created_utc"][:10])
    assert audit(out, load_study(default_study_path()), run_dates=[run_date]) == []


# -- every shipped study against the truth ----------------------------------------------------

TAXANES = {"paclitaxel liposome", "paclitaxel", "docetaxel", "nab-paclitaxel"}
ANTI_HER2_MAB = {"trastuzumab", "pertuzumab", "inetetumab"}
CDK46 = {"palbociclib", "ribociclib", "abemaciclib", "dalpiciclib"}
ENDOCRINE_PARTNER = {"letrozole", "anastrozole", "exemestane", "fulvestrant"}


def _age(birth: pd.Series, on: pd.Series) -> pd.Series:
    birth, on = pd.to_datetime(birth), pd.to_datetime(on)
    before_birthday = (on.dt.month < birth.dt.month) | ((on.dt.month == birth.dt.month) & (on.dt.day < birth.dt.day))
    return on.dt.year - birth.dt.year - before_birthday.astype(int)


def truth_cohort(base, line: int, regimen_ok, her2: str, hr: str | None = None, earlier=None) -> pd.DataFrame:
    """The cohort a first- or later-line study's rules give on the truth: the first advanced
    line whose regimen is `regimen_ok`, preferring line `line`; recorded HER2 (and HR) status;
    advanced disease; that line numbered `line`; age ≥ 18; index in 2013-01-01..cut-off; no
    death before index; `earlier(patient lines, index row)` when given."""
    lines = truth(base, "lines")
    adv = lines[lines["setting"] == "advanced"].copy()
    adv["ingredients"] = adv["regimen"].str.split("+").map(set)
    match = adv[adv["ingredients"].map(regimen_ok)].copy()
    match["not_wanted"] = match["line_number"] != line
    candidate = match.sort_values(["patient_id", "not_wanted", "start_date"]).drop_duplicates("patient_id")
    p = truth(base, "patients").merge(candidate, on="patient_id")
    start = pd.to_datetime(p["start_date"])
    keep = (p["is_breast"] & (p["her2_recorded"] == her2) & p["advanced_date"].notna() & (p["line_number"] == line)
            & (_age(p["birth_date"], p["start_date"]) >= 18)
            & (start >= pd.Timestamp(2013, 1, 1)) & (start <= pd.Timestamp(CUTOFF))
            & (p["death_date"].isna() | (pd.to_datetime(p["death_date"]) > start)))
    if hr is not None:
        keep &= p["hr_recorded"] == hr
    if earlier is not None:
        by_patient = dict(tuple(adv.groupby("patient_id")))
        keep &= pd.Series([earlier(by_patient[r.patient_id], r) for r in p.itertuples()], index=p.index)
    return p[keep]


def _engine_cohort(run, study):
    cohort = gold(run, "cohort", study)
    return cohort.set_index("patient_id").sort_index()


def test_seed_study_truth_rule_agrees_with_the_generators_own(run):
    # The pandas rules used for the other studies, applied to the seed study, give the
    # generator's intended cohort: the oracle itself is checked.
    expected = truth_cohort(run, 1, lambda s: "paclitaxel liposome" in s and bool(s & ANTI_HER2_MAB), "positive")
    patients = truth(run, "patients")
    assert set(expected["patient_id"]) == set(patients.loc[patients["intended_in_cohort"], "patient_id"])


def test_docetaxel_hp_study_equals_the_truth(run):
    expected = truth_cohort(run, 1, lambda s: {"docetaxel", "trastuzumab", "pertuzumab"} <= s, "positive")
    cohort = _engine_cohort(run, "docetaxel_hp_first_line")
    assert len(expected) >= 10  # 15 of 4000 patients (seed 11)
    assert set(cohort.index) == set(expected["patient_id"])
    assert (cohort["anti_her2"] != "").all() and set(cohort["anti_her2"]) <= {"HP", "HP+TKI", "HPI", "HPI+TKI"}


def test_hr_positive_cdk46_study_equals_the_truth(run):
    expected = truth_cohort(run, 1, lambda s: bool(s & CDK46) and bool(s & ENDOCRINE_PARTNER), "negative",
                            hr="positive")
    cohort = _engine_cohort(run, "hr_positive_cdk46_first_line")
    assert len(expected) >= 30  # 59 of 4000 patients (seed 11)
    assert set(cohort.index) == set(expected["patient_id"])
    e = expected.set_index("patient_id").loc[cohort.index]
    partner = e["ingredients"].map(lambda s: "fulvestrant" if "fulvestrant" in s else "aromatase inhibitor")
    assert (cohort["endocrine_partner"] == partner).all()
    assert (cohort["index_date"].astype(str).values == e["start_date"].astype(str).values).all()
    # The region of residence: the truth's province through the study file's own lists.
    from cohort_engine.baseline_variables import RegionVariable
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    study = load_study(default_study_path({}).parent / "hr_positive_cdk46_first_line.yaml")
    regions = next(v for v in study.variables if isinstance(v, RegionVariable)).regions
    region_of = {province: region for region, provinces in regions for province in provinces}
    residence = truth(run, "patients").set_index("patient_id").loc[cohort.index, "province"]
    assert (cohort["region"] == residence.map(region_of)).all()


def test_second_line_pyrotinib_capecitabine_study_equals_the_truth(run):
    def trastuzumab_before(lines, row) -> bool:
        before = lines[pd.to_datetime(lines["start_date"]) < pd.to_datetime(row.start_date)]
        return bool(before["ingredients"].map(lambda s: "trastuzumab" in s).any())

    expected = truth_cohort(run, 2, lambda s: {"pyrotinib", "capecitabine"} <= s, "positive",
                            earlier=trastuzumab_before)
    cohort = _engine_cohort(run, "her2_pyrotinib_capecitabine_second_line")
    assert len(expected) >= 15  # 21 of 4000 patients (seed 11)
    assert set(cohort.index) == set(expected["patient_id"])
    assert (cohort["index_line_number"] == 2).all() and (cohort["index_setting"] == "advanced").all()
    # Its endpoints start at the second line: TTNT's next line is the third.
    endpoints = gold(run, "endpoints", "her2_pyrotinib_capecitabine_second_line")
    assert set(endpoints["patient_id"]) == set(cohort.index)
    assert sorted(set(endpoints["endpoint"])) == ["OS", "TTNT", "rwPFS"]  # the study's endpoints.include
    km = pd.read_csv(run / "out" / "her2_pyrotinib_capecitabine_second_line" / "tables" / "km_summary.csv")
    assert km["endpoint"].tolist() == ["OS", "rwPFS", "TTNT"]


def test_taxane_arms_study_equals_the_truth(run):
    expected = truth_cohort(run, 1, lambda s: bool(s & ANTI_HER2_MAB) and bool(s & TAXANES), "positive")
    cohort = _engine_cohort(run, "her2_taxane_arms_first_line")
    assert set(cohort.index) == set(expected["patient_id"])
    e = expected.set_index("patient_id").loc[cohort.index]
    arm = e["ingredients"].map(lambda s: "paclitaxel_liposome" if "paclitaxel liposome" in s else "other_taxane")
    assert (cohort["arm"] == arm).all()
    counts = cohort["arm"].value_counts()
    assert counts["paclitaxel_liposome"] >= 30 and counts["other_taxane"] >= 20  # 59 and 38 (seed 11)
    # The seed study's cohort is the paclitaxel liposome arm.
    seed = _engine_cohort(run, SEED_STUDY)
    assert set(cohort.index[cohort["arm"] == "paclitaxel_liposome"]) == set(seed.index)


def test_studies_keep_their_own_tables(run):
    lake = run / "lake" / "gold"
    for study in STUDIES[1:]:
        for table in ("cohort", "attrition", "endpoints", "safety_events", "data_quality"):
            assert (lake / "studies" / study / table / "_delta_log").is_dir(), (study, table)
    assert not (lake / "studies" / SEED_STUDY).exists()
    assert (lake / "lake_data_quality" / "_delta_log").is_dir()


def test_studies_of_a_run_share_their_sensitivity_rebuilds(spark, run):
    # A gap variant of the seed study rebuilt alone, and after the other studies' rebuilds
    # filled the run's shared intermediates: the same cohort and endpoints, from one
    # rebuild of the lines per gap and one of the facts for all five studies.
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    from cohort_engine.lake import Lake
    from cohort_engine.pipeline import RunContext, bronze_tables, rebuild_sources
    from cohort_engine.sensitivity import rebuild_endpoints, sensitivity_studies
    studies = [load_study(default_study_path({}).parent / f"{name}.yaml") for name in STUDIES]
    lake = Lake(run / "lake", spark, ENV)

    def rebuilt(study, shared, label="lines rebuilt with a 60-day gap"):
        ctx = RunContext(spark, lake, None, run / "scratch", study, ENV, run_studies=tuple(studies))
        bronze = bronze_tables(ctx, ("patients", "deaths", "visits", "prescriptions", "labs", "tumor_assessments",
                                     "diagnoses", "adverse_events", "biomarkers", "hospitals"))
        sources = rebuild_sources(ctx, bronze, lake.read("silver", "drug_exposures"))
        cohort, endpoints = rebuild_endpoints(study, sensitivity_studies(study)[label], sources, shared)
        order = ["patient_id"] + (["endpoint"] if "endpoint" in endpoints.columns else [])
        return (cohort.toPandas().sort_values("patient_id").reset_index(drop=True),
                endpoints.toPandas().sort_values(order).reset_index(drop=True))

    alone = rebuilt(studies[0], {})
    shared: dict = {}
    for study in studies[1:]:
        rebuilt(study, shared)
        rebuilt(study, shared, "lines rebuilt with a 180-day gap")
    together = rebuilt(studies[0], shared)
    pd.testing.assert_frame_equal(alone[0], together[0])
    pd.testing.assert_frame_equal(alone[1], together[1])
    assert len(alone[0]) >= 40  # the seed cohort rebuilt with a 60-day gap (59 patients with the usual 120)
    assert sorted(k if isinstance(k, str) else k[0] for k in shared) == ["base", "facts", "lines", "lines"]
