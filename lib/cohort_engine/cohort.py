"""The study cohort (study rules §4): index line, attrition, baseline characteristics.

Definitions the spec leaves open, fixed here:

* Candidate line: among the patient's lines in `study.cohort.index_line.setting`
  whose regimen contains every `required_ingredients` and (when
  `required_classes_any` is not empty) an ingredient of one of those classes, the
  one numbered `index_line.line_number` if there is one, else the earliest. Step 5
  asks for a candidate, step 6 for its number to be `line_number`; the index line
  and index date are then the candidate's. Ingredient classes come from
  silver/drug_exposures (ingredient → drug_class).
* HER2 (step 3), HR and metastatic sites read the evidence dated ≤ reference date +
  `facts_window_days`. The reference date is the candidate line's start (the index
  date for every included patient); a patient without a candidate line (excluded at
  step 5 anyway) is read with all evidence up to the data cut-off.
* age_at_index = floor(months_between(index_date, birth_date) / 12): whole years,
  the birthday itself counting (born 2000-03-15: 18 on 2018-03-15, 17 the day
  before); a 29 February birthday is reached on 28 February in common years.
* hospital_tier / province: of the hospital of the index line's first prescription
  on the index date; prescriptions carry no time of day, so "first" is the one with
  a known hospital and the smallest record_id.
* prior_anti_her2: an exposure of class anti_her2_mab/tki/adc in the early setting
  (admin_date < advanced_date − lines.advanced_grace_days, the rule of §3.1) and
  before the index date.
* anti_her2 label: letters in the order H (trastuzumab), P (pertuzumab), I
  (inetetumab) — `H`, `HP`, `HI`, `HPI` … — then `+TKI` when an anti_her2_tki
  ingredient is in the regimen (`TKI` alone without antibody); null with neither.
* A study that does not require HER2 positivity or advanced disease keeps steps 3/4
  in the attrition table with no exclusion, so the table always has the 9 steps.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .config import StudyConfig
from .facts import (UNREADABLE, biomarker_readings, her2_conflict_expr, her2_status_expr, hr_status_expr,
                    site_exprs)

ANTI_HER2_CLASSES = ("anti_her2_mab", "anti_her2_tki", "anti_her2_adc")
LABEL_LETTERS = (("trastuzumab", "H"), ("pertuzumab", "P"), ("inetetumab", "I"))
TKI_CLASS = "anti_her2_tki"
CLASS_WORDS = {"anti_her2_mab": "anti-HER2 antibody", "anti_her2_tki": "anti-HER2 TKI",
               "anti_her2_adc": "anti-HER2 antibody-drug conjugate"}

COHORT_COLUMNS = ("patient_id", "index_date", "regimen", "anti_her2", "age_at_index", "sex", "hr_status",
                  "de_novo", "visceral", "brain_mets", "bone_only", "prior_anti_her2", "hospital_tier",
                  "province", "index_year")
DATA_QUALITY_COLUMNS = ("table", "check", "reason", "n")


def _and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def criteria(study: StudyConfig) -> list[str]:
    """The nine criterion texts of §4, worded from the configuration."""
    c, il = study.cohort, study.cohort.index_line
    wanted = list(il.required_ingredients)
    if il.required_classes_any:
        wanted.append("an " + " or ".join(CLASS_WORDS.get(k, f"{k} drug") for k in il.required_classes_any))
    her2 = "HER2-positive" + ("" if c.require_her2_positive else " (not required by this study)")
    advanced = "advanced disease" + ("" if c.require_advanced else " (not required by this study)")
    return [
        "all valid patients",
        f"breast cancer diagnosis (ICD-10 {c.diagnosis_icd10_prefix})",
        her2,
        advanced,
        f"an {il.setting}-setting line containing {_and_list(wanted)}",
        f"that line is {il.setting} line {il.line_number}",
        f"age ≥ {c.min_age} at index",
        f"index date within the study period ({study.study_period.start.isoformat()} to "
        f"{study.study_end.isoformat()})",
        "no death recorded before the index date",
    ]


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


def _matches(study: StudyConfig) -> Column:
    il = study.cohort.index_line
    ok = F.lit(True)
    if il.required_ingredients:
        required = F.array(*[F.lit(i) for i in il.required_ingredients])
        ok = ok & (F.size(F.array_except(required, F.col("ingredients"))) == 0)
    if il.required_classes_any:
        ok = ok & F.arrays_overlap(F.col("drug_classes"), F.array(*[F.lit(k) for k in il.required_classes_any]))
    return ok


def candidate_lines(therapy_lines: DataFrame, classes: DataFrame, study: StudyConfig) -> DataFrame:
    """One row per patient with a matching line: patient_id, line_number, start_date,
    last_admin_date, regimen, ingredients, drug_classes of the candidate line."""
    il = study.cohort.index_line
    lines = line_contents(therapy_lines.where(F.col("setting") == il.setting), classes).where(_matches(study))
    best = F.min(F.struct((F.col("line_number") != il.line_number).alias("not_wanted"), "line_number",
                          "start_date", "last_admin_date", "regimen", "ingredients", "drug_classes"))
    return lines.groupBy("patient_id").agg(best.alias("c")).select(
        "patient_id", "c.line_number", "c.start_date", "c.last_admin_date", "c.regimen",
        "c.ingredients", "c.drug_classes")


def anti_her2_label(ingredients: Column, drug_classes: Column) -> Column:
    letters = F.concat(*[F.when(F.array_contains(ingredients, name), F.lit(letter)).otherwise(F.lit(""))
                         for name, letter in LABEL_LETTERS])
    tki = F.coalesce(F.array_contains(drug_classes, TKI_CLASS), F.lit(False))
    return (F.when((letters != "") & tki, F.concat(letters, F.lit("+TKI")))
            .when(letters != "", letters)
            .when(tki, F.lit("TKI")))


def _exposure_facts(drug_exposures: DataFrame, patients: DataFrame, hospitals: DataFrame,
                    study: StudyConfig) -> DataFrame:
    """patient_id, prior_anti_her2, hospital_tier, province — one pass over the exposures of
    the included patients (patient_id, index_date, advanced_date)."""
    early_end = F.date_sub("advanced_date", study.lines.advanced_grace_days)
    limit = F.least(F.coalesce(early_end, F.col("index_date")), F.col("index_date"))
    prior = F.col("drug_class").isin(*ANTI_HER2_CLASSES) & (F.col("admin_date") < limit)
    on_index = F.col("counts_for_lines") & (F.col("admin_date") == F.col("index_date"))
    first = F.min(F.when(on_index, F.struct(F.col("hospital_id").isNull().alias("unknown"), "record_id",
                                            "hospital_id")))
    per_patient = (drug_exposures.select("patient_id", "admin_date", "drug_class", "counts_for_lines",
                                         "record_id", "hospital_id")
                   .join(patients.select("patient_id", "index_date", "advanced_date"), "patient_id")
                   .groupBy("patient_id")
                   .agg(F.max(F.coalesce(prior, F.lit(False))).alias("prior_anti_her2"),
                        first.hospital_id.alias("hospital_id")))
    return (per_patient.join(hospitals.select("hospital_id", F.col("tier").alias("hospital_tier"), "province"),
                             "hospital_id", "left")
            .select("patient_id", "prior_anti_her2", "hospital_tier", "province"))


def patient_steps(facts: DataFrame, therapy_lines: DataFrame, drug_exposures: DataFrame,
                  study: StudyConfig) -> DataFrame:
    """Every valid patient with the candidate line and step flags `s2`…`s9` (each alone,
    not cumulative), plus `her2_conflict` and `death_before_index`."""
    c = study.cohort
    candidates = candidate_lines(therapy_lines, ingredient_classes(drug_exposures), study)
    p = facts.join(candidates, "patient_id", "left")
    reference = F.coalesce(F.col("start_date"), F.lit(study.data_cutoff).cast("date"))
    limit = F.date_add(reference, c.facts_window_days)
    age = F.floor(F.months_between(F.col("start_date"), F.col("birth_date")) / 12).cast("int")
    death_before = F.coalesce(F.col("death_date") < F.col("start_date"), F.lit(False))
    her2 = her2_status_expr(limit)
    return p.select(
        "*",
        F.lit(True).alias("s1"),
        F.col("bc_date").isNotNull().alias("s2"),
        ((her2 == "positive") if c.require_her2_positive else F.lit(True)).alias("s3"),
        (F.col("advanced_date").isNotNull() if c.require_advanced else F.lit(True)).alias("s4"),
        F.col("line_number").isNotNull().alias("s5"),
        F.coalesce(F.col("line_number") == c.index_line.line_number, F.lit(False)).alias("s6"),
        F.coalesce(age >= c.min_age, F.lit(False)).alias("s7"),
        F.coalesce(F.col("start_date").between(F.lit(study.study_period.start).cast("date"),
                                               F.lit(study.study_end).cast("date")), F.lit(False)).alias("s8"),
        (~death_before).alias("s9"),
        age.alias("age_at_index"),
        her2.alias("her2_status"),
        her2_conflict_expr(limit).alias("her2_conflict"),
        hr_status_expr(limit).alias("hr_status"),
        *[e.alias(n) for n, e in site_exprs(limit).items()],
    )


def _passed(k: int) -> Column:
    ok = F.lit(True)
    for i in range(1, k + 1):
        ok = ok & F.col(f"s{i}")
    return ok


def attrition_table(steps: DataFrame, study: StudyConfig) -> DataFrame:
    """gold/attrition: step int, criterion string, n_remaining long, n_excluded long."""
    texts = criteria(study)
    counts = steps.agg(*[F.sum(F.when(_passed(k), 1).otherwise(0)).cast("long").alias(f"n{k}")
                         for k in range(1, 10)])
    rows = [F.struct(F.lit(k).cast("int").alias("step"), F.lit(texts[k - 1]).alias("criterion"),
                     F.col(f"n{k}").alias("n_remaining"),
                     (F.lit(0).cast("long") if k == 1 else F.col(f"n{k - 1}") - F.col(f"n{k}")).alias("n_excluded"))
            for k in range(1, 10)]
    return counts.select(F.explode(F.array(*rows)).alias("r")).select("r.*")


def build_cohort(facts: DataFrame, therapy_lines: DataFrame, drug_exposures: DataFrame,
                 bronze: dict[str, DataFrame], study: StudyConfig) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(gold/cohort, gold/attrition, data quality) of §4.

    facts: silver/patient_facts (facts.build_patient_facts) — one row per bronze patient,
    so "all valid patients" are bronze patients. bronze: needs `hospitals` and `biomarkers`.
    The data-quality frame (table, check, reason, n long) counts: HER2 results reading both
    positive and negative among patients classed HER2-positive at step 3; deaths registered
    with different dates; deaths before the index date (patients excluded at step 9);
    unreadable HER2/ER/PR results.
    """
    steps = patient_steps(facts, therapy_lines, drug_exposures, study)
    included = steps.where(_passed(9)).withColumnRenamed("start_date", "index_date")
    exposure_facts = _exposure_facts(drug_exposures, included, bronze["hospitals"], study)
    cohort = (included.join(exposure_facts, "patient_id", "left")
              .withColumn("prior_anti_her2", F.coalesce("prior_anti_her2", F.lit(False)))
              .withColumn("anti_her2", anti_her2_label(F.col("ingredients"), F.col("drug_classes")))
              .withColumn("index_year", F.year("index_date"))
              .select(*COHORT_COLUMNS))
    return cohort, attrition_table(steps, study), cohort_data_quality(steps, bronze)


def cohort_data_quality(steps: DataFrame, bronze: dict[str, DataFrame]) -> DataFrame:
    """table, check, reason, n (long): the data errors found while building the cohort."""
    window = F.col("s1") & F.col("s2") & F.col("s3")
    counts = steps.agg(
        F.sum(F.when(window & F.col("her2_conflict"), 1).otherwise(0)).cast("long").alias("her2"),
        F.sum(F.when(F.col("death_dates_recorded") > 1, 1).otherwise(0)).cast("long").alias("deaths"),
        F.sum(F.when(_passed(8) & ~F.col("s9"), 1).otherwise(0)).cast("long").alias("before_index"))
    unreadable = (biomarker_readings(bronze["biomarkers"])
                  .agg(F.sum(F.when(F.col("reading") == UNREADABLE, 1).otherwise(0)).cast("long").alias("n")))
    rows = counts.crossJoin(unreadable).select(F.explode(F.array(
        data_quality_row("biomarkers", "her2_conflicting_results",
            "HER2 results read both positive and negative up to index + window; classed HER2-positive", "her2"),
        data_quality_row("deaths", "death_dates_disagree",
                         "a person registered with different death dates; earliest used", "deaths"),
        data_quality_row("cohort", "death_before_index",
                         "a death recorded before the index date; excluded at step 9", "before_index"),
        data_quality_row("biomarkers", "unreadable_result",
                         "a HER2, ER or PR result that cannot be read; treated as no result", "n"),
    )).alias("r")).select("r.*")
    return rows


def data_quality_row(table: str, check: str, reason: str, count: str) -> Column:
    """One row of a step's data-quality frame (table, check, reason, n) from a count column."""
    return F.struct(F.lit(table).alias("table"), F.lit(check).alias("check"), F.lit(reason).alias("reason"),
                    F.coalesce(F.col(count), F.lit(0)).cast("long").alias("n"))
