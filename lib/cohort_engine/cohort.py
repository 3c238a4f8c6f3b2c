"""The study cohort: the index line, the population's attrition, the baseline variables.

The study file says what (docs/studies.md); this module is the same for every study.
Definitions the spec leaves open, fixed here:

* Candidate line: among the patient's lines in the index setting (`any`: all of
  them) whose regimen meets the index rule (all_of / any_of / none_of over
  ingredients and classes; classes come from silver/drug_exposures), the first
  whose number meets `index.line`, else the first. The `index_line` criterion asks
  for a candidate, `index_line_number` for its number; the index line and date are
  then the candidate's, and gold/cohort records its setting and number.
* Biomarkers and metastatic sites read the evidence dated ≤ reference date +
  `facts.window_days_after_index`. The reference date is the candidate line's start
  (the index date for every included patient); a patient without a candidate line
  (excluded by `index_line` anyway) is read with all evidence up to the data cut-off.
* age = floor(months_between(index_date, birth_date) / 12): whole years, the
  birthday itself counting (born 2000-03-15: 18 on 2018-03-15, 17 the day before);
  a 29 February birthday is reached on 28 February in common years.
* hospital_tier / province: of the hospital of the index line's first prescription
  on the index date; prescriptions carry no time of day, so "first" is the one with
  a known hospital and the smallest record_id.
* Earlier treatment (criterion or variable): an exposure before the index date; its
  setting by the rule of §3.1 (early: admin_date < advanced_date −
  lines.advanced_grace_days, or no advanced disease).
* Each criterion is one attrition step, in the order written, each alone and
  cumulative over the steps before it.
"""
from __future__ import annotations

import re
import typing

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .baseline_variables import (AgeBandsVariable, AgeVariable, BiomarkerVariable, DeNovoVariable,
                                 EarlierTreatmentVariable, HospitalTierVariable, IndexYearVariable,
                                 MetastaticSiteVariable, ProvinceVariable, RegimenLabelVariable, RegionVariable,
                                 SexVariable)
from .facts import UNREADABLE, biomarker_readings, her2_conflict_expr, marker_status_expr, normalised_icd10
from .lake_tables import GOLD_COHORT
from .population_criteria import (Advanced, Age, Biomarker, Diagnosis, EarlierTreatment, IndexInStudyPeriod, IndexLine,
                                  IndexLineNumber, NoDeathBeforeIndex, Sex)
from .regimen_rules import AtLeast, LineSpec, RegimenRule
from .studies import criteria
from .study_config import StudyConfig


def ingredient_classes(drug_exposures: DataFrame) -> DataFrame:
    """ingredient → drug_class, as the vocabulary assigned them."""
    return drug_exposures.select("ingredient", "drug_class").distinct()


def line_contents(therapy_lines: DataFrame, classes: DataFrame) -> DataFrame:
    """Lines (contract columns) with `ingredients` and `drug_classes` (sorted arrays) of their regimen."""
    keys = ["patient_id", "setting", "line_number", "start_date", "last_admin_date", "regimen"]
    exploded = therapy_lines.select(*keys, F.explode(F.split("regimen", r"\+")).alias("ingredient"))
    return (exploded.join(classes, "ingredient", "left").groupBy(*keys)
            .agg(F.array_sort(F.collect_set("ingredient")).alias("ingredients"),
                 F.array_sort(F.collect_set("drug_class")).alias("drug_classes")))


def _has(name: str, ingredients: Column, drug_classes: Column) -> Column:
    # A name is an ingredient or a class (the loader checks that it is exactly one of them).
    return F.coalesce(F.array_contains(ingredients, name) | F.array_contains(drug_classes, name), F.lit(False))


def regimen_meets(rule: RegimenRule, ingredients: Column | None = None,
                  drug_classes: Column | None = None) -> Column:
    """Whether a regimen (its ingredient and class arrays, by default the columns
    `ingredients` and `drug_classes`) meets all_of, any_of and none_of."""
    ingredients = F.col("ingredients") if ingredients is None else ingredients
    drug_classes = F.col("drug_classes") if drug_classes is None else drug_classes
    ok = F.lit(True)
    for name in rule.all_of:
        ok = ok & _has(name, ingredients, drug_classes)
    if rule.any_of:
        any_ = F.lit(False)
        for name in rule.any_of:
            any_ = any_ | _has(name, ingredients, drug_classes)
        ok = ok & any_
    for name in rule.none_of:
        ok = ok & ~_has(name, ingredients, drug_classes)
    return ok


def line_number_meets(line: LineSpec, number: Column) -> Column:
    if line == "any":
        return number.isNotNull()
    if isinstance(line, AtLeast):
        return F.coalesce(number >= line.at_least, F.lit(False))
    return F.coalesce(number == line, F.lit(False))


def candidate_lines(therapy_lines: DataFrame, classes: DataFrame, study: StudyConfig) -> DataFrame:
    """One row per patient with a line meeting the index rule: patient_id, setting,
    line_number, start_date, last_admin_date, regimen, ingredients, drug_classes.

    Among the patient's lines in the index setting whose regimen meets the rule, the
    first whose number meets `index.line`, else the first (the number criterion then
    excludes the patient, so that the attrition says why)."""
    index = study.index
    lines = therapy_lines if index.setting == "any" else therapy_lines.where(F.col("setting") == index.setting)
    lines = line_contents(lines, classes).where(regimen_meets(index.regimen))
    best = F.min(F.struct((~line_number_meets(index.line, F.col("line_number"))).alias("not_wanted"),
                          "start_date", "line_number", "setting", "last_admin_date", "regimen", "ingredients",
                          "drug_classes"))
    return lines.groupBy("patient_id").agg(best.alias("c")).select(
        "patient_id", "c.setting", "c.line_number", "c.start_date", "c.last_admin_date", "c.regimen",
        "c.ingredients", "c.drug_classes")


def _is_early(admin_date: Column, advanced_date: Column, study: StudyConfig) -> Column:
    """An exposure of the early setting: before advanced_date − advanced_grace_days (§3.1), or
    any exposure of a patient without advanced disease."""
    return F.coalesce(admin_date < F.date_sub(advanced_date, study.lines.advanced_grace_days), advanced_date.isNull())


def _treated_before(drugs: typing.Sequence[str], setting: str, window_days: int | None, start: Column,
                    advanced_date: Column, study: StudyConfig) -> Column:
    """Over exposure rows: one of `drugs` (ingredients or classes) before `start`, in `setting` and window."""
    hit = (F.col("ingredient").isin(*drugs) | F.col("drug_class").isin(*drugs)) & (F.col("admin_date") < start)
    if setting == "early":
        hit = hit & _is_early(F.col("admin_date"), advanced_date, study)
    elif setting == "advanced":
        hit = hit & ~_is_early(F.col("admin_date"), advanced_date, study)
    if window_days is not None:
        hit = hit & (F.col("admin_date") >= F.date_sub(start, window_days))
    return F.coalesce(hit, F.lit(False))


def _exposure_variables(drug_exposures: DataFrame, included: DataFrame, hospitals: DataFrame,
                        study: StudyConfig) -> DataFrame:
    """patient_id, hospital_tier, province (the hospital of the index line's first prescription
    on the index date) and each earlier_treatment variable: one pass over the exposures of the
    included patients (patient_id, index_date, advanced_date)."""
    earlier = [v for v in study.variables if isinstance(v, EarlierTreatmentVariable)]
    on_index = F.col("counts_for_lines") & (F.col("admin_date") == F.col("index_date"))
    first = F.min(F.when(on_index, F.struct(F.col("hospital_id").isNull().alias("unknown"), "record_id",
                                            "hospital_id")))
    per_patient = (drug_exposures.select("patient_id", "admin_date", "ingredient", "drug_class", "counts_for_lines",
                                         "record_id", "hospital_id")
                   .join(included.select("patient_id", "index_date", "advanced_date"), "patient_id")
                   .groupBy("patient_id")
                   .agg(first.hospital_id.alias("hospital_id"),
                        *[F.max(_treated_before(v.drugs, v.setting, v.window_days, F.col("index_date"),
                                                F.col("advanced_date"), study)).alias(v.name) for v in earlier]))
    return (per_patient.join(hospitals.select("hospital_id", F.col("tier").alias("__tier"),
                                              F.col("province").alias("__province")), "hospital_id", "left")
            .select("patient_id", "__tier", "__province", *[v.name for v in earlier]))


def _site_variables(diagnoses: DataFrame, included: DataFrame, study: StudyConfig) -> DataFrame | None:
    """patient_id and each metastatic_site variable, from the diagnoses dated ≤ index + window."""
    sites = [v for v in study.variables if isinstance(v, MetastaticSiteVariable)]
    if not sites:
        return None
    icd = normalised_icd10("icd10")
    limit = F.date_add("index_date", study.facts.window_days_after_index)
    in_time = F.col("diagnosis_date") <= limit
    distant = icd.startswith("C78") | icd.startswith("C79")

    def listed(v) -> Column:
        ok = F.lit(False)
        for code in v.icd10:
            ok = ok | icd.startswith(code.upper().replace(".", "").strip())
        return ok

    aggregates = []
    for v in sites:
        found = F.max(F.coalesce(in_time & listed(v), F.lit(False)))
        if v.only:
            other = F.max(F.coalesce(in_time & distant & ~listed(v), F.lit(False)))
            found = found & ~other
        aggregates.append(found.alias(v.name))
    return (diagnoses.select("patient_id", "diagnosis_date", "icd10")
            .join(included.select("patient_id", "index_date"), "patient_id")
            .groupBy("patient_id").agg(*aggregates))


def _age_band(v: AgeBandsVariable, age: Column) -> Column:
    band = F.lit(None).cast("string")
    for low, high, text in reversed(v.bands()):
        band = F.when((age >= low) & ((age < high) if high is not None else F.lit(True)), F.lit(text)).otherwise(band)
    return band


def regimen_label(v: RegimenLabelVariable) -> Column:
    """The label of the first rule the index regimen meets (null when none does)."""
    label = F.lit(None).cast("string")
    for rule in reversed(v.labels):
        label = F.when(regimen_meets(rule.regimen), F.lit(rule.label)).otherwise(label)
    return label


# How a province's name may end in an export (广东省, 北京市, 广西壮族自治区 …): compared without it.
_ADMINISTRATIVE_SUFFIX = "(壮族自治区|回族自治区|维吾尔自治区|特别行政区|自治区|省|市)$"


def province_key(province: Column) -> Column:
    """A province's name compared as written by any hospital: trimmed, lower case, no suffix."""
    return F.regexp_replace(F.lower(F.trim(province)), _ADMINISTRATIVE_SUFFIX, "")


def region_of(v: RegionVariable, province: Column) -> Column:
    """The region listing the province; `other` for a province no region lists; null without one."""
    key = province_key(province)
    out = F.when(province.isNull() | (F.trim(province) == ""), F.lit(None).cast("string")).otherwise(F.lit(v.other))
    for region, provinces in reversed(v.regions):
        keys = [re.sub(_ADMINISTRATIVE_SUFFIX, "", p.strip().lower()) for p in provinces]
        out = F.when(key.isin(*keys), F.lit(region)).otherwise(out)
    return out


def variable_column(v, limit: Column) -> Column:
    """A variable read over an included patient's row (steps, exposure and site variables joined)."""
    if isinstance(v, AgeVariable):
        return F.col("age_at_index")
    if isinstance(v, AgeBandsVariable):
        return _age_band(v, F.col("age_at_index"))
    if isinstance(v, SexVariable):
        return F.col("sex")
    if isinstance(v, BiomarkerVariable):
        return marker_status_expr(v.marker, limit)
    if isinstance(v, DeNovoVariable):
        return F.col("de_novo")
    if isinstance(v, (MetastaticSiteVariable, EarlierTreatmentVariable)):
        return F.coalesce(F.col(v.name), F.lit(False))
    if isinstance(v, HospitalTierVariable):
        return F.col("__tier")
    if isinstance(v, ProvinceVariable):
        return F.col("__province" if v.of == "hospital" else "__residence")
    if isinstance(v, RegionVariable):
        return region_of(v, F.col("__province" if v.of == "hospital" else "__residence"))
    if isinstance(v, IndexYearVariable):
        return F.year("index_date")
    if isinstance(v, RegimenLabelVariable):
        return regimen_label(v)
    raise TypeError(f"unknown variable {v!r}")  # pragma: no cover


def cohort_columns(study: StudyConfig) -> list[str]:
    """gold/cohort (lake_tables.GOLD_COHORT): patient_id, index_date, regimen, the study's variables
    in order, then arm and the index line (index_setting, index_line_number, index_last_admin_date),
    which the later stages read from here rather than find it again in gold/therapy_lines."""
    return list(GOLD_COHORT.column_names_with([v.name for v in study.variables]))


def _earlier_treatment_flags(drug_exposures: DataFrame, candidates: DataFrame, facts: DataFrame,
                             study: StudyConfig) -> DataFrame | None:
    """patient_id and one boolean `et{i}` per earlier_treatment criterion i: an exposure to
    one of its drugs before the candidate line's start, in its setting and window."""
    wanted = [(i, c) for i, c in enumerate(study.population) if isinstance(c, EarlierTreatment)]
    if not wanted:
        return None
    names = sorted({n for _, c in wanted for n in c.drugs})
    flags = [F.max(_treated_before(c.drugs, c.setting, c.window_days, F.col("__start"), F.col("advanced_date"),
                                   study)).alias(f"et{i}") for i, c in wanted]
    return (drug_exposures.where(F.col("ingredient").isin(*names) | F.col("drug_class").isin(*names))
            .select("patient_id", "admin_date", "ingredient", "drug_class")
            .join(candidates.select("patient_id", F.col("start_date").alias("__start")), "patient_id")
            .join(facts.select("patient_id", "advanced_date"), "patient_id", "left")
            .groupBy("patient_id").agg(*flags))


def _criterion_flag(i: int, c, study: StudyConfig, age: Column, limit: Column) -> Column:
    """Whether a patient meets population criterion i (alone, not cumulative)."""
    start = F.col("start_date")
    if isinstance(c, Diagnosis):
        return F.col("bc_date").isNotNull()
    if isinstance(c, Advanced):
        ok = F.col("advanced_date").isNotNull()
        if c.de_novo is not None:
            ok = ok & F.coalesce(F.col("de_novo") == F.lit(c.de_novo), F.lit(False))
        return ok
    if isinstance(c, Biomarker):
        return marker_status_expr(c.marker, limit).isin(*c.status)
    if isinstance(c, IndexLine):
        return F.col("line_number").isNotNull()
    if isinstance(c, IndexLineNumber):
        return line_number_meets(study.index.line if c.line is None else c.line, F.col("line_number"))
    if isinstance(c, Age):
        ok = age.isNotNull()
        if c.min is not None:
            ok = ok & (age >= c.min)
        if c.max is not None:
            ok = ok & (age <= c.max)
        return F.coalesce(ok, F.lit(False))
    if isinstance(c, Sex):
        return F.coalesce(F.upper(F.col("sex")) == c.equals, F.lit(False))
    if isinstance(c, IndexInStudyPeriod):
        return F.coalesce(start.between(F.lit(study.study_period.start).cast("date"),
                                        F.lit(study.study_end).cast("date")), F.lit(False))
    if isinstance(c, EarlierTreatment):
        found = F.coalesce(F.col(f"et{i}"), F.lit(False))
        return found if c.rule == "required" else (start.isNotNull() & ~found)
    if isinstance(c, NoDeathBeforeIndex):
        return ~F.coalesce(F.col("death_date") < start, F.lit(False))
    raise TypeError(f"unknown criterion {c!r}")  # pragma: no cover


def n_steps(study: StudyConfig) -> int:
    """Attrition steps: 'all valid patients', then one per population criterion."""
    return 1 + len(study.population)


def patient_steps(facts: DataFrame, therapy_lines: DataFrame, drug_exposures: DataFrame,
                  study: StudyConfig) -> DataFrame:
    """Every valid patient with the candidate line and step flags `s1`…`sN` (each alone,
    not cumulative; s1 is every valid patient, s2… the population criteria in order),
    plus `her2_conflict`."""
    candidates = candidate_lines(therapy_lines, ingredient_classes(drug_exposures), study)
    p = facts.join(candidates, "patient_id", "left")
    earlier = _earlier_treatment_flags(drug_exposures, candidates, facts, study)
    if earlier is not None:
        p = p.join(earlier, "patient_id", "left")
    reference = F.coalesce(F.col("start_date"), F.lit(study.data_cutoff).cast("date"))
    limit = F.date_add(reference, study.facts.window_days_after_index)
    age = F.floor(F.months_between(F.col("start_date"), F.col("birth_date")) / 12).cast("int")
    return p.select(
        "*",
        F.lit(True).alias("s1"),
        *[_criterion_flag(i, c, study, age, limit).alias(f"s{i + 2}") for i, c in enumerate(study.population)],
        age.alias("age_at_index"),
        her2_conflict_expr(limit).alias("her2_conflict"),
    )


def _passed(k: int) -> Column:
    ok = F.lit(True)
    for i in range(1, k + 1):
        ok = ok & F.col(f"s{i}")
    return ok


def _index_line_columns() -> list[Column]:
    """gold/cohort's columns of the index line, from a candidate line's own."""
    return [F.col("setting").alias("index_setting"), F.col("line_number").alias("index_line_number"),
            F.col("last_admin_date").alias("index_last_admin_date")]


def cohort_index_lines(facts: DataFrame, therapy_lines: DataFrame, drug_exposures: DataFrame,
                       study: StudyConfig) -> DataFrame:
    """patient_id, index_date, index_setting, index_line_number, index_last_admin_date of the
    patients who meet every criterion: the cohort without its variables, all that the endpoints
    read of a cohort (so a sensitivity rebuild computes no more)."""
    steps = patient_steps(facts, therapy_lines, drug_exposures, study)
    return steps.where(_passed(n_steps(study))).select("patient_id", F.col("start_date").alias("index_date"),
                                                       *_index_line_columns())


def _attrition_counts(study: StudyConfig) -> list[Column]:
    """n1…nN over the steps: the patients who pass steps 1…k."""
    return [F.sum(F.when(_passed(k), 1).otherwise(0)).cast("long").alias(f"n{k}") for k in range(1, n_steps(study) + 1)]


def attrition_table(counts: DataFrame, study: StudyConfig, class_names: typing.Mapping[str, str]) -> DataFrame:
    """gold/attrition (step int, criterion string, n_remaining long, n_excluded long) from the
    one-row `counts` of the steps (`_attrition_counts`)."""
    texts = criteria(study, class_names)
    n = n_steps(study)
    rows = [F.struct(F.lit(k).cast("int").alias("step"), F.lit(texts[k - 1]).alias("criterion"),
                     F.col(f"n{k}").alias("n_remaining"),
                     (F.lit(0).cast("long") if k == 1 else F.col(f"n{k - 1}") - F.col(f"n{k}")).alias("n_excluded"))
            for k in range(1, n + 1)]
    return counts.select(F.explode(F.array(*rows)).alias("r")).select("r.*")


def arm_of(study: StudyConfig) -> Column:
    """The arm whose regimen rule the index regimen meets; null when none does, or when
    two do (a patient is in at most one arm)."""
    if not study.arms:
        return F.lit(None).cast("string")
    meets = [(arm.name, regimen_meets(arm.regimen)) for arm in study.arms]
    n_met = sum((F.when(m, 1).otherwise(0) for _, m in meets), F.lit(0))
    arm = F.lit(None).cast("string")
    for name, m in reversed(meets):
        arm = F.when(m, F.lit(name)).otherwise(arm)
    return F.when(n_met == 1, arm)


def build_cohort(facts: DataFrame, therapy_lines: DataFrame, drug_exposures: DataFrame,
                 bronze: dict[str, DataFrame], study: StudyConfig,
                 class_names: typing.Mapping[str, str]) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(gold/cohort, gold/attrition, data quality) of §4.

    class_names: drug_class → its name (vocabulary.class_names), which words the attrition
    ("an anti-HER2 antibody").

    facts: silver/patient_facts (facts.build_patient_facts) — one row per bronze patient,
    so "all valid patients" are bronze patients. bronze: needs `hospitals` and `biomarkers`.
    The data-quality frame (table, check, reason, n long) counts: HER2 results reading both
    positive and negative among the patients the HER2 criterion reads; deaths registered
    with different dates; deaths before the index date (patients excluded at step 9);
    unreadable HER2/ER/PR results.
    """
    steps = patient_steps(facts, therapy_lines, drug_exposures, study)
    included = steps.where(_passed(n_steps(study))).withColumnRenamed("start_date", "index_date")
    rows = included.join(_exposure_variables(drug_exposures, included, bronze["hospitals"], study), "patient_id",
                         "left")
    if any(isinstance(v, (ProvinceVariable, RegionVariable)) and v.of == "residence" for v in study.variables):
        rows = rows.join(bronze["patients"].select("patient_id", F.col("province").alias("__residence")),
                         "patient_id", "left")
    sites = _site_variables(bronze["diagnoses"], included, study)
    if sites is not None:
        rows = rows.join(sites, "patient_id", "left")
    limit = F.date_add("index_date", study.facts.window_days_after_index)
    cohort = rows.select("patient_id", "index_date", "regimen",
                         *[variable_column(v, limit).alias(v.name) for v in study.variables],
                         arm_of(study).alias("arm"), *_index_line_columns()).select(*cohort_columns(study))
    # One pass over the steps counts both the attrition and the data errors; the one-row
    # result is cached, so that writing one and collecting the other do not pass twice.
    counts = steps.agg(*_attrition_counts(study), *_data_quality_counts(study)).cache()
    return cohort, attrition_table(counts, study, class_names), cohort_data_quality(counts, bronze, study)


def _step_of(study: StudyConfig, match) -> int | None:
    """The attrition step (2…N) of the first population criterion `match` accepts."""
    return next((i + 2 for i, c in enumerate(study.population) if match(c)), None)


def _data_quality_counts(study: StudyConfig) -> list[Column]:
    """her2, deaths, before_index over the steps (see `cohort_data_quality`)."""
    # Counted among the patients the HER2 criterion reads (those who passed the steps before
    # it), whatever it keeps; without one, in the cohort.
    her2_step = _step_of(study, lambda c: isinstance(c, Biomarker) and c.marker == "HER2")
    her2_read = _passed(her2_step - 1) if her2_step else _passed(n_steps(study))
    death_step = _step_of(study, lambda c: isinstance(c, NoDeathBeforeIndex))
    before_index = (_passed(death_step - 1) & ~F.col(f"s{death_step}")) if death_step else F.lit(False)
    return [F.sum(F.when(her2_read & F.col("her2_conflict"), 1).otherwise(0)).cast("long").alias("her2"),
            F.sum(F.when(F.col("death_dates_recorded") > 1, 1).otherwise(0)).cast("long").alias("deaths"),
            F.sum(F.when(before_index, 1).otherwise(0)).cast("long").alias("before_index")]


def cohort_data_quality(counts: DataFrame, bronze: dict[str, DataFrame], study: StudyConfig) -> DataFrame:
    """table, check, reason, n (long): the data errors found while building the cohort, from
    the one-row `counts` of the steps (`_data_quality_counts`).

    HER2 conflicts are counted among the patients the study's HER2 criterion reads (the
    whole cohort when it has none); deaths before the index date
    among those the no-death criterion excludes (none without that criterion)."""
    death_step = _step_of(study, lambda c: isinstance(c, NoDeathBeforeIndex))
    her2_reason = "HER2 results read both positive and negative up to index + window; classed HER2-positive" + \
        her2_consequence(study)
    death_reason = (f"a death recorded before the index date; excluded at step {death_step}" if death_step
                    else "a death recorded before the index date (not a criterion of this study)")
    unreadable = (biomarker_readings(bronze["biomarkers"])
                  .agg(F.sum(F.when(F.col("reading") == UNREADABLE, 1).otherwise(0)).cast("long").alias("n")))
    rows = counts.crossJoin(unreadable).select(F.explode(F.array(
        data_quality_row("biomarkers", "her2_conflicting_results", her2_reason, "her2"),
        data_quality_row("deaths", "death_dates_disagree",
                         "a person registered with different death dates; earliest used", "deaths"),
        data_quality_row("cohort", "death_before_index",
                         death_reason, "before_index"),
        data_quality_row("biomarkers", "unreadable_result",
                         "a HER2, ER or PR result that cannot be read; treated as no result", "n"),
    )).alias("r")).select("r.*")
    return rows


def her2_consequence(study: StudyConfig) -> str:
    """What classing a conflicting HER2 result positive does in this study's attrition."""
    step = _step_of(study, lambda c: isinstance(c, Biomarker) and c.marker == "HER2")
    if step is None:
        return " (HER2 is not a criterion of this study)"
    wanted = study.population[step - 2].status
    # Kept by a HER2-positive criterion, which needs no more words (the seed study's text).
    return "" if "positive" in wanted else f"; so excluded at step {step} (HER2 {' or '.join(wanted)})"


def data_quality_row(table: str, check: str, reason: str, count: str) -> Column:
    """One row of a step's data-quality frame (table, check, reason, n) from a count column."""
    return F.struct(F.lit(table).alias("table"), F.lit(check).alias("check"), F.lit(reason).alias("reason"),
                    F.coalesce(F.col(count), F.lit(0)).cast("long").alias("n"))
