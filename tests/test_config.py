"""Study configuration and Spark settings: typed loading, clear errors."""
from __future__ import annotations

import datetime as dt

import pytest
import yaml

from cohort_engine.conf_folder import default_study_path
from cohort_engine.config import load_study, study_from_dict
from cohort_engine.errors import ConfigError
from cohort_engine.population_criteria import Age, Biomarker, Diagnosis
from cohort_engine.regimen_rules import IndexRule, RegimenRule
from cohort_engine.session import delta_packages_requested, resolve_settings


def seed_dict():
    return yaml.safe_load(default_study_path().read_text(encoding="utf-8"))


def test_seed_study_carries_every_default_of_the_rules(seed_study):
    s = seed_study
    assert s.name == "her2_paclitaxel_liposome"
    assert s.data_cutoff == dt.date(2025, 6, 30)
    assert (s.study_period.start, s.study_end) == (dt.date(2013, 1, 1), dt.date(2025, 6, 30))
    assert (s.lines.regimen_window_days, s.lines.max_gap_days, s.lines.advanced_grace_days) == (28, 120, 30)
    assert s.lines.substitutions == (("paclitaxel", "paclitaxel liposome", "nab-paclitaxel"),
                                     ("cisplatin", "carboplatin"))
    assert s.lines.additions_without_new_line == ("endocrine",)
    assert s.index == IndexRule(RegimenRule(all_of=("paclitaxel liposome",), any_of=("anti_her2_mab",)),
                                setting="advanced", line=1)
    assert [c.kind for c in s.population] == ["diagnosis", "biomarker", "advanced", "index_line",
                                              "index_line_number", "age", "index_in_study_period",
                                              "no_death_before_index"]
    assert s.population[0] == Diagnosis(icd10=("C50",), label="breast cancer diagnosis (ICD-10 C50)")
    assert s.population[1] == Biomarker(marker="HER2", status=("positive",))
    assert s.population[5] == Age(min=18)
    assert (s.facts.de_novo_days, s.facts.window_days_after_index) == (90, 30)
    assert s.arms == ()
    e = s.endpoints
    assert (e.horizon_days, e.pd_grace_days, e.death_window_days, e.discontinuation_gap_days,
            e.os_censoring) == (1826, 14, 60, 120, "cutoff")
    assert s.analysis.rate_months == (6, 12, 24, 36, 60)
    assert s.analysis.sensitivity_gap_days == (60, 180)
    assert s.disclosure.min_cell == 5
    assert s.vocabulary_path().name == "drugs.csv"


def test_cutoff_override_and_hash(seed_study):
    later = seed_study.with_cutoff(dt.date(2025, 12, 31))
    assert later.data_cutoff == dt.date(2025, 12, 31) and later.study_end == dt.date(2025, 12, 31)
    assert later.config_hash() != seed_study.config_hash()
    assert seed_study.with_cutoff(None) is seed_study
    assert study_from_dict(seed_dict()).config_hash() == seed_study.config_hash()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(colour="blue"), r"^colour: unknown key"),
    (lambda d: d["lines"].update(max_gap=120), r"^lines\.max_gap: unknown key"),
    (lambda d: d.pop("data_cutoff"), r"^data_cutoff: required key is missing"),
    (lambda d: d.update(data_cutoff="30/06/2025"), r"^data_cutoff: expected a date YYYY-MM-DD, got '30/06/2025'"),
    (lambda d: d["lines"].update(max_gap_days="120"), r"^lines\.max_gap_days: expected a whole number, got '120'"),
    (lambda d: d["lines"].update(max_gap_days=-1), r"^lines\.max_gap_days: must not be negative"),
    (lambda d: d["endpoints"].update(os_censoring="death"), r"^endpoints\.os_censoring: must be one of"),
    (lambda d: d["lines"].update(substitutions="paclitaxel"), r"^lines\.substitutions: expected a list"),
    (lambda d: d["index"].pop("regimen"), r"^index\.regimen: required key is missing"),
    (lambda d: d["population"][2].update(de_novo="yes"), r"^population\[2\]\.de_novo: expected true or false"),
    (lambda d: d["population"][5].update(min="18"), r"^population\[5\]\.min: expected a whole number, got '18'"),
    (lambda d: d["population"][5].update(mn=18), r"^population\[5\]\.mn: unknown key"),
    (lambda d: d["population"][1].update(marker="HER3"),
     r"^population\[1\]\.marker: must be one of 'HER2', 'ER', 'PR' or 'HR', got 'HER3'"),
    (lambda d: d["population"][1].update(status=["positive", "pos"]),
     r"^population\[1\]\.status\[1\]: must be one of 'positive', 'negative' or 'unknown', got 'pos'"),
    (lambda d: d["population"].append({"kind": "stage"}), r"^population\[8\]\.kind: unknown kind 'stage' \(one of: "),
    (lambda d: d["population"].append({"label": "x"}), r"^population\[8\]: has no kind"),
    (lambda d: d["population"].pop(3), r"^population: has no index_line criterion"),
    (lambda d: d["population"].insert(0, {"kind": "age", "min": 18}),
     r"^population\[0\]: age reads the index line, so it comes after index_line"),
    (lambda d: d["population"][5].update(max=17), r"^population\[5\]\.max: is below min"),
    (lambda d: d["index"].update(line="first"),
     r"^index\.line: expected a line number N, any, or \{at_least: N\}, got 'first'"),
    (lambda d: d["index"].update(setting="metastatic"), r"^index\.setting: must be one of 'early', 'advanced' or"),
    (lambda d: d["index"]["regimen"].update(all_of=[], any_of=[]), r"^index\.regimen: names no drug"),
    (lambda d: d.update(arms=[{"name": "A", "regimen": {"all_of": ["docetaxel"]}},
                              {"name": "A", "regimen": {"all_of": ["paclitaxel"]}}]),
     r"^arms\[1\]\.name: 'A' names two arms"),
    (lambda d: d["study_period"].update(end="2012-01-01"), r"^study_period\.end: is before study_period\.start"),
    (lambda d: d.update(title="A title"), r"^title: unknown key"),  # the title is the report's: report.title
    (lambda d: d["endpoints"].update(include=["OS", "PFS"]),
     r"^endpoints\.include\[1\]: must be one of 'OS', 'rwPFS', 'TTP', 'TTF' or 'TTNT', got 'PFS'"),
    (lambda d: d["endpoints"].update(include=["OS", "TTNT", "OS"]), r"^endpoints\.include\[2\]: 'OS' is named twice"),
    (lambda d: d["endpoints"].update(include=[]), r"^endpoints\.include: names no endpoint"),
    (lambda d: d["safety"].update(lab_toxicities=["Neutropenia"]),
     r"^safety\.lab_toxicities\[0\]: 'Neutropenia' is not a lab toxicity the engine grades \(one of: "
     r"Neutrophil count decreased, "),
    (lambda d: d["safety"].update(lab_toxicities=["Platelet count decrease"]),
     r"^safety\.lab_toxicities\[0\]: 'Platelet count decrease' is not a lab toxicity the engine grades "
     r"\(did you mean 'Platelet count decreased'\?\)$"),
    (lambda d: d["safety"].update(recorded_terms=["Nausea", "Diarrhoea"]),
     r"^safety\.recorded_terms\[1\]: 'Diarrhoea' is not a CTCAE term recorded events map to "
     r"\(did you mean 'Diarrhea'\?\)$"),
    (lambda d: d["variables"].append({"kind": "region", "name": "region", "regions": {"North": ["北京", "天津"],
                                                                                      "East": ["上海", "天津"]}}),
     r"^variables\[12\]\.regions\.East: '天津' is also in 'North'$"),
    (lambda d: d["variables"].append({"kind": "region", "name": "region", "regions": {}}),
     r"^variables\[12\]\.regions: names no region$"),
    (lambda d: d["variables"].append({"kind": "region", "name": "region", "of": "birthplace",
                                      "regions": {"North": ["北京"]}}),
     r"^variables\[12\]\.of: must be one of 'hospital' or 'residence', got 'birthplace'$"),
])
def test_bad_study_gets_one_error_naming_the_key(mutate, message):
    data = seed_dict()
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        study_from_dict(data)


def arms_dict():
    path = default_study_path().parent / "her2_taxane_arms_first_line.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_arms_study_writes_every_default_of_its_comparison():
    c = study_from_dict(arms_dict()).comparison
    assert (c.treated, c.estimand, c.trim_percentiles, c.caliper_sd, c.balance_threshold) == (
        "paclitaxel_liposome", "ATE", None, 0.2, 0.1)
    assert c.covariates == ("age_at_index", "hr_status", "de_novo", "visceral", "brain_mets", "bone_only",
                            "prior_anti_her2", "hospital_tier", "province", "index_year")
    minimal = arms_dict()
    minimal["comparison"] = {"treated": "other_taxane", "covariates": ["age_at_index"]}
    c = study_from_dict(minimal).comparison
    assert (c.treated, c.estimand, c.trim_percentiles, c.caliper_sd, c.balance_threshold) == (
        "other_taxane", "ATE", None, 0.2, 0.1)
    assert study_from_dict(seed_dict()).comparison is None


def comparison(**changes):
    return lambda d: d["comparison"].update(changes)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(arms=d["arms"][:1]),
     r"^comparison: compares two arms; the study has 1 \(paclitaxel_liposome\)$"),
    (lambda d: d.update(arms=[]), r"^comparison: compares two arms; the study has 0 \(no arms\)$"),
    (comparison(treated="paclitaxel"),
     r"^comparison\.treated: 'paclitaxel' is not one of the arms \(paclitaxel_liposome, other_taxane\)$"),
    (lambda d: d["comparison"].pop("treated"), r"^comparison\.treated: required key is missing$"),
    (comparison(covariates=[]), r"^comparison\.covariates: names no variable$"),
    (comparison(covariates=["age_at_index", "region"]),
     r"^comparison\.covariates\[1\]: 'region' is not a variable of the study \(variables: anti_her2, "),
    (comparison(covariates=["age_at_index", "age_group"]), r"^comparison\.covariates\[1\]: 'age_group' is not a"),
    (comparison(covariates=["province", "province"]), r"^comparison\.covariates\[1\]: 'province' is named twice$"),
    (comparison(estimand="ATC"), r"^comparison\.estimand: must be one of 'ATE' or 'ATT', got 'ATC'$"),
    (comparison(trim_percentiles=[99, 1]),
     r"^comparison\.trim_percentiles: expected \[low, high\] with 0 ≤ low < high ≤ 100, got \[99\.0, 1\.0\]$"),
    (comparison(trim_percentiles=[1, 101]), r"^comparison\.trim_percentiles: expected \[low, high\]"),
    (comparison(trim_percentiles=[-1, 99]), r"^comparison\.trim_percentiles\[0\]: must not be negative, got -1$"),
    (comparison(caliper_sd="0.2"), r"^comparison\.caliper_sd: expected a number, got '0\.2'$"),
    (comparison(caliper_sd=0), r"^comparison\.caliper_sd: must be above 0$"),
    (comparison(balance_threshold=0), r"^comparison\.balance_threshold: must be above 0$"),
    (comparison(matching="optimal"), r"^comparison\.matching: unknown key$"),
])
def test_a_bad_comparison_gets_one_error_naming_the_key(mutate, message):
    data = arms_dict()
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        study_from_dict(data)


def test_a_comparison_without_two_arms_names_the_study_file(tmp_path):
    data = seed_dict()
    data["comparison"] = {"treated": "a", "covariates": ["age_at_index"]}
    path = tmp_path / "one_arm.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"one_arm\.yaml: comparison: compares two arms; the study has 0"):
        load_study(path, check_names=False)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the study file"):
        load_study(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_study(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(dict(seed_dict(), lines=dict(seed_dict()["lines"], max_gap_days="x"))),
                     encoding="utf-8")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: lines\.max_gap_days: expected a whole number"):
        load_study(wrong)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["index"]["regimen"].update(all_of=["paclitaxel liposomal"]),
     r"index\.regimen\.all_of\[0\]: 'paclitaxel liposomal' is neither an ingredient nor a class of the vocabulary "
     r"\(did you mean 'paclitaxel liposome'\?\)"),
    (lambda d: d["index"]["regimen"].update(any_of=["anti-HER2"]),
     r"index\.regimen\.any_of\[0\]: 'anti-HER2' is neither an ingredient nor a class of the vocabulary$"),
    (lambda d: d["population"].append({"kind": "earlier_treatment", "drugs": ["trastuzumab", "herceptin"],
                                       "rule": "required"}),
     r"population\[8\]\.drugs\[1\]: 'herceptin' is neither"),
    (lambda d: d["lines"].update(additions_without_new_line=["endocrine therapy"]),
     r"lines\.additions_without_new_line\[0\]: 'endocrine therapy' is neither .* \(did you mean 'endocrine'\?\)"),
])
def test_every_drug_name_is_checked_against_the_vocabulary(tmp_path, edit, message):
    data = seed_dict()
    data["vocabulary"] = str(default_study_path({}).parents[1] / "vocabulary" / "drugs.csv")
    edit(data)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_study(path)


def test_spark_settings_layering():
    env = {"COHORT_ENGINE_SPARK_CONF": "spark.sql.shuffle.partitions=200; spark.executor.memory=8g",
           "COHORT_ENGINE_SPARK_MASTER": "spark://env:7077"}
    s = resolve_settings("local", overrides={"spark.sql.shuffle.partitions": "16"}, environ=env)
    assert s["master"] == "spark://env:7077"          # environment beats the profile
    assert s["conf"]["spark.sql.shuffle.partitions"] == "16"  # options beat the environment
    assert s["conf"]["spark.executor.memory"] == "8g"
    assert s["conf"]["spark.sql.parquet.outputTimestampType"] == "TIMESTAMP_MICROS"
    assert resolve_settings("local", master="local[2]", environ=env)["master"] == "local[2]"
    assert "spark.sql.extensions" not in s["conf"]
    # Under spark-submit the profile's master gives way to spark-submit's --master.
    submitted = {"PYSPARK_GATEWAY_PORT": "40000"}
    assert resolve_settings("local", environ=submitted)["master"] is None
    assert resolve_settings("local", master="yarn", environ=submitted)["master"] == "yarn"
    with pytest.raises(ConfigError, match=r"Spark profile 'nope' not found"):
        resolve_settings("nope", environ={})
    with pytest.raises(ConfigError, match=r"COHORT_ENGINE_SPARK_CONF: expected key=value, got 'oops'"):
        resolve_settings("local", environ={"COHORT_ENGINE_SPARK_CONF": "oops"})


def test_delta_extension_is_configured_when_its_package_is_requested():
    conf = {"spark.jars.packages": "io.delta:delta-spark_2.13:4.0.0"}
    assert delta_packages_requested(conf, {})
    s = resolve_settings("standalone", overrides=conf, environ={})
    assert s["conf"]["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert s["conf"]["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert delta_packages_requested({}, {"PYSPARK_SUBMIT_ARGS": "--packages io.delta:delta-spark_2.13:4.0.0"})


def test_large_local_profile_gives_the_heap_a_million_patients_need():
    s = resolve_settings("local-large", environ={})
    assert s["master"] == "local[*]"
    assert (s["conf"]["spark.driver.memory"], s["conf"]["spark.sql.shuffle.partitions"]) == ("10g", "64")
    # Everything else as the laptop profile.
    small = resolve_settings("local", environ={})
    assert {k: v for k, v in s["conf"].items() if k not in ("spark.driver.memory", "spark.sql.shuffle.partitions")} \
        == {k: v for k, v in small["conf"].items() if k not in ("spark.driver.memory", "spark.sql.shuffle.partitions")}


# --- where the configuration comes from: shipped in the package, or the user's ---

SHIPPED_STUDY = "her2_paclitaxel_liposome.yaml"


def shipped():
    from cohort_engine.conf_folder import shipped_conf_dir
    return shipped_conf_dir().resolve()


def user_conf(tmp_path, partitions="3"):
    """A user's whole conf folder: a copy of the shipped one with a changed profile."""
    import shutil
    conf = tmp_path / "myconf"
    shutil.copytree(shipped(), conf, ignore=shutil.ignore_patterns("__pycache__"))
    (conf / "spark" / "local.yaml").write_text(
        f"master: local[1]\nconf:\n  spark.sql.shuffle.partitions: \"{partitions}\"\n", encoding="utf-8")
    return conf


def test_shipped_configuration_is_package_data():
    import importlib.resources
    from pathlib import Path

    from cohort_engine.conf_folder import conf_dir
    package = Path(str(importlib.resources.files("cohort_engine")))
    assert shipped() == (package / "conf").resolve()
    assert conf_dir({}).resolve() == shipped()
    assert default_study_path({}).resolve() == shipped() / "studies" / SHIPPED_STUDY
    study = load_study(default_study_path({}))
    assert study.vocabulary_path({}).resolve() == shipped() / "vocabulary" / "drugs.csv"
    assert resolve_settings("local", environ={})["master"] == "local[*]"


def test_a_users_conf_dir_replaces_the_shipped_configuration(tmp_path):
    conf = user_conf(tmp_path)
    env = {"COHORT_ENGINE_CONF_DIR": str(conf)}
    assert default_study_path(env) == conf / "studies" / SHIPPED_STUDY
    study = load_study(default_study_path(env), env)
    assert study.vocabulary_path(env) == conf / "vocabulary" / "drugs.csv"
    s = resolve_settings("local", environ=env)
    assert (s["master"], s["conf"]) == ("local[1]", {"spark.sql.shuffle.partitions": "3"})
    (conf / "spark" / "standalone.yaml").unlink()  # the whole folder: no fallback per file
    with pytest.raises(ConfigError, match=r"Spark profile 'standalone' not found in .*myconf"):
        resolve_settings("standalone", environ=env)


def test_vocabulary_path_rules(tmp_path, monkeypatch):
    monkeypatch.delenv("COHORT_ENGINE_CONF_DIR", raising=False)
    folder = tmp_path / "studies"
    folder.mkdir()

    def study_file(vocabulary):
        path = folder / "mine.yaml"
        path.write_text(yaml.safe_dump(dict(seed_dict(), vocabulary=vocabulary)), encoding="utf-8")
        return load_study(path, check_names=False)  # these vocabulary files do not exist

    # Relative to the study file; absolute as given.
    assert study_file("vocab/drugs.csv").vocabulary_path({}) == folder / "vocab" / "drugs.csv"
    assert study_file(str(tmp_path / "v.csv")).vocabulary_path({}) == tmp_path / "v.csv"
    # conf/... : the configuration folder (the shipped one, or the user's).
    mine = study_file("conf/vocabulary/drugs.csv")
    assert mine.vocabulary_path({}).resolve() == shipped() / "vocabulary" / "drugs.csv"
    env = {"COHORT_ENGINE_CONF_DIR": str(tmp_path / "myconf")}
    assert mine.vocabulary_path(env) == tmp_path / "myconf" / "vocabulary" / "drugs.csv"
    # The shipped study reads the shipped vocabulary, whatever COHORT_ENGINE_CONF_DIR says.
    ours = load_study(default_study_path({}))
    assert ours.vocabulary_path(env).resolve() == shipped() / "vocabulary" / "drugs.csv"
    # A study without a file (read back from a run manifest): relative to the current folder.
    monkeypatch.chdir(tmp_path)
    loose = study_from_dict(dict(seed_dict(), vocabulary="v.csv"))
    assert loose.vocabulary_path({}) == tmp_path / "v.csv"
    assert study_from_dict(seed_dict()).vocabulary_path({}).resolve() == shipped() / "vocabulary" / "drugs.csv"


def test_study_path_given_by_the_user_wins_and_conf_paths_find_the_shipped_study(tmp_path, monkeypatch):
    from pathlib import Path

    from cohort_engine.conf_folder import resolve_study_path
    monkeypatch.delenv("COHORT_ENGINE_CONF_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # a folder without conf/, as an installed wheel or a Databricks task
    documented = "conf/studies/her2_paclitaxel_liposome.yaml"
    study = load_study(documented)
    assert Path(study.source_path).resolve() == shipped() / "studies" / SHIPPED_STUDY
    assert load_study("conf/studies/docetaxel_hp_first_line.yaml").name == "docetaxel_hp_first_line"
    with pytest.raises(ConfigError, match=r"^conf/studies/nope\.yaml: cannot read the study file"):
        load_study("conf/studies/nope.yaml")
    # Under COHORT_ENGINE_CONF_DIR, conf/... is the user's folder.
    conf = user_conf(tmp_path)
    env = {"COHORT_ENGINE_CONF_DIR": str(conf)}
    assert resolve_study_path(documented, env) == conf / "studies" / SHIPPED_STUDY
    # A file at that path from the current folder is the user's and wins.
    own = tmp_path / "conf" / "studies" / SHIPPED_STUDY
    own.parent.mkdir(parents=True)
    own.write_text(yaml.safe_dump(dict(seed_dict(), name="my_variant")), encoding="utf-8")
    assert load_study(documented).name == "my_variant"
    assert resolve_study_path(documented, env) == Path(documented)


def test_a_spark_profile_file_of_ones_own(tmp_path):
    profile = tmp_path / "cluster.yaml"
    profile.write_text("master: spark://h:7077\nconf:\n  spark.executor.memory: 6g\n", encoding="utf-8")
    s = resolve_settings(str(profile), environ={})
    assert (s["master"], s["conf"]) == ("spark://h:7077", {"spark.executor.memory": "6g"})
    with pytest.raises(ConfigError, match=r"Spark profile file .*nope\.yaml not found"):
        resolve_settings(str(tmp_path / "nope.yaml"), environ={})


def test_standalone_profile_lists_the_lake_s_files_on_the_driver():
    # A table of the offline lake is read as its file list, one file per shuffle partition.
    s = resolve_settings("standalone", environ={})
    assert int(s["conf"]["spark.sql.sources.parallelPartitionDiscovery.threshold"]) \
        >= int(s["conf"]["spark.sql.shuffle.partitions"]) == 64
