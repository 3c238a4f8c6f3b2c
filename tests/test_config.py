"""Study configuration and Spark settings: typed loading, clear errors."""
from __future__ import annotations

import datetime as dt

import pytest
import yaml

from cohort_engine.config import ConfigError, default_study_path, load_study, study_from_dict
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
    assert s.cohort.index_line.required_ingredients == ("paclitaxel liposome",)
    assert s.cohort.index_line.required_classes_any == ("anti_her2_mab",)
    assert (s.cohort.min_age, s.cohort.de_novo_days, s.cohort.facts_window_days) == (18, 90, 30)
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
    (lambda d: d["cohort"]["index_line"].pop("required_ingredients"),
     r"^cohort\.index_line\.required_ingredients: required key is missing"),
    (lambda d: d["cohort"].update(require_advanced="yes"), r"^cohort\.require_advanced: expected true or false"),
    (lambda d: d["study_period"].update(end="2012-01-01"), r"^study_period\.end: is before study_period\.start"),
])
def test_bad_study_gets_one_error_naming_the_key(mutate, message):
    data = seed_dict()
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        study_from_dict(data)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read the study file"):
        load_study(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_study(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(dict(seed_dict(), lines={"max_gap_days": "x"})), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"wrong\.yaml: lines\.max_gap_days: expected a whole number"):
        load_study(wrong)


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
