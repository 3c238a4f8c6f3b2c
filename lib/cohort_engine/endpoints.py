"""Endpoints (study rules §5): OS, rwPFS, TTP, TTF, TTNT per cohort patient, those
of the study's `endpoints.include`.

Dates per patient (all ≤ the cut-off; deaths after it are ignored):

* index line: the cohort patient's index line as gold/cohort holds it (its start is the
  index date, its last administration index_last_admin_date); next line: the patient's
  earliest line, of any setting, starting after the index date.
* last_contact: the latest date ≤ cut-off and ≤ the death date among visits,
  prescriptions, labs, tumor assessments, diagnoses and adverse events (tables absent
  from bronze are skipped). Records dated after the death are ignored and counted.
* Tumor assessments: the response read in English or Chinese (CR/PR/SD/PD/NE, 完全缓解,
  部分缓解, 疾病稳定, 疾病进展, complete/partial response, stable/progressive disease …).
  Every readable response is a tumor assessment, NE (not evaluable) included, as §5 reads:
  the patient was assessed on that date. Unreadable responses do not count (they are
  counted for data quality).
  PD = a PD reading with days(index, date) > pd_grace_days. last_assessment = latest
  assessment after the index date (days > 0).
* "No tumor assessment after index + pd_grace_days" switches rwPFS to the TTNT proxy.
  TTP is not evaluable (no TTP row) only with no assessment after the index date at all;
  a patient assessed only within the grace days is censored there (§5: "censored at
  last_assessment; no assessment: not evaluable").

Ties (two events on the same day) are resolved in this order: progression, next_line,
death, discontinuation. So PD and death the same day → progression; next line and
death the same day → next_line; PD, death and the index line's last administration the
same day in TTF → progression, then death before discontinuation.

After the event/censoring time is found, a time longer than `horizon_days` becomes
horizon_days, censored (event 0, event_type 'censored'); a negative time drops the row
(not fitted) and is counted in the data-quality frame per endpoint.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .cohort import data_quality_row
from .facts import death_dates, normalised_text
from .lake_tables import GOLD_ENDPOINTS, SILVER_LAST_CONTACTS
from .study_config import StudyConfig

EVIDENCE = ("progression", "next_line", "death", "discontinuation")  # tie-break order

CONTACT_DATES = (("visits", "visit_date"), ("prescriptions", "admin_date"), ("labs", "collect_date"),
                 ("tumor_assessments", "assessment_date"), ("diagnoses", "diagnosis_date"),
                 ("adverse_events", "onset_date"))
# The bronze tables `build_endpoints` reads by patient_id (deaths it reads through patients' id_hash).
ENDPOINT_TABLES = ("patients", *(table for table, _ in CONTACT_DATES))

_RESPONSES = (
    ("CR", r"^(cr|完全缓解|完全应答|completeresponse|completeremission)$"),
    ("PR", r"^(pr|部分缓解|部分应答|partialresponse|partialremission)$"),
    ("SD", r"^(sd|疾病稳定|稳定|stabledisease|stable)$"),
    ("PD", r"^(pd|疾病进展|进展|progressivedisease|progression|diseaseprogression)$"),
    ("NE", r"^(ne|不可评价|无法评价|无法评估|不可评估|notevaluable|nonevaluable|unevaluable)$"),
)


def response_expr(response_col: Column | str) -> Column:
    """CR / PR / SD / PD / NE from the response as written, null when unreadable."""
    c = F.col(response_col) if isinstance(response_col, str) else response_col
    s = F.regexp_replace(normalised_text(c), r"[-_()（）.]", "")
    out = None
    for code, pattern in _RESPONSES:
        out = (F.when(s.rlike(pattern), F.lit(code)) if out is None
               else out.when(s.rlike(pattern), F.lit(code)))
    return out


def _cutoff(study: StudyConfig) -> Column:
    return F.lit(study.data_cutoff).cast("date")


def contact_events(bronze: dict[str, DataFrame], study: StudyConfig) -> DataFrame:
    """patient_id, event_date, kind ('contact' | 'assessment'), code (response for assessments):
    every dated record of the contact tables up to the cut-off. Tumor assessments are
    contacts too."""
    parts = []
    for table, column in CONTACT_DATES:
        frame = bronze.get(table)
        if frame is None:
            continue
        is_assessment = table == "tumor_assessments"
        parts.append(frame.select(
            "patient_id", F.col(column).alias("event_date"),
            F.lit("assessment" if is_assessment else "contact").alias("kind"),
            (response_expr("response") if is_assessment else F.lit(None).cast("string")).alias("code")))
    events = parts[0]
    for part in parts[1:]:
        events = events.unionByName(part)
    return events.where(F.col("event_date") <= _cutoff(study))


def _contact_aggregates() -> list[Column]:
    after_death = F.coalesce(F.col("event_date") > F.col("death_date"), F.lit(False))
    return [F.max(F.when(~after_death, F.col("event_date"))).alias("last_contact"),
            F.sum(F.when(after_death, 1).otherwise(0)).cast("long").alias("records_after_death")]


def last_contacts(bronze: dict[str, DataFrame], patients: DataFrame, study: StudyConfig) -> DataFrame:
    """patient_id, last_contact date, records_after_death long, for the given patients
    (patient_id, death_date): the latest contact ≤ cut-off and ≤ death date."""
    joined = contact_events(bronze, study).join(patients.select("patient_id", "death_date"), "patient_id")
    return joined.groupBy("patient_id").agg(*_contact_aggregates())


def latest_records(bronze: dict[str, DataFrame], study: StudyConfig) -> DataFrame:
    """patient_id, latest_record date, death_date: for every patient of the patient table
    with a contact record up to the cut-off, the latest of those records whatever the
    death date, and the death date (null: alive at the cut-off).

    The maximum folds where the records are read, so its one shuffle carries a few rows
    per patient and task, not every record. For a patient whose latest record is not
    after the death (nearly every patient), it is the last contact (`lake_last_contacts`).
    """
    deaths = death_dates(bronze["patients"], bronze["deaths"], study.data_cutoff).select("patient_id", "death_date")
    latest = contact_events(bronze, study).groupBy("patient_id").agg(F.max("event_date").alias("latest_record"))
    return (latest.join(bronze["patients"].select("patient_id"), "patient_id")
            .join(deaths, "patient_id", "left"))


def _late() -> Column:
    """A row of `latest_records` whose latest record is after the death (false without one)."""
    return F.coalesce(F.col("latest_record") > F.col("death_date"), F.lit(False))


def late_patients(latest: DataFrame) -> DataFrame:
    """The rows of `latest_records` whose latest record is after the death."""
    return latest.where(_late())


def lake_last_contacts(bronze: dict[str, DataFrame], study: StudyConfig, latest: DataFrame | None = None,
                       broadcast_late: bool = False) -> DataFrame:
    """silver/last_contacts: every patient's last contact and records after death at the
    study's cut-off (lake_tables.SILVER_LAST_CONTACTS). They depend on the patient and the cut-off only,
    not on a study's index line, so the lake holds them once for all its studies, and the
    large contact tables (visits, labs, prescriptions …) are read here, not once per study
    and sensitivity analysis.

    A patient whose latest record is not after the death has that record as last contact
    and no record after death. Only the late patients' records are folded one by one
    against the death date. With `broadcast_late`, neither the contact records (136 M at
    1,000,000 patients) nor the death dates of the whole lake go through a shuffle or to
    every task, whatever the number of patients. The contact tables are read twice: once
    folded to each patient's latest record (`latest_records`), once for the late patients'
    records.

    `latest`: `latest_records(bronze, study)`, cached by a caller that reads it twice
    (computed here, twice, when not given).
    `broadcast_late`: the late patients are few enough to send to every task (a caller
    that counted them); then their records are picked where they are read. Without it,
    every contact record is shuffled to meet them.
    """
    latest = latest if latest is not None else latest_records(bronze, study)
    on_time = latest.where(~_late()).select("patient_id", F.col("latest_record").alias("last_contact"),
                                            F.lit(0).cast("long").alias("records_after_death"))
    late_deaths = late_patients(latest).select("patient_id", "death_date")
    if broadcast_late:
        late_deaths = F.broadcast(late_deaths)
    folded = (contact_events(bronze, study).join(late_deaths, "patient_id")
              .groupBy("patient_id").agg(*_contact_aggregates()))
    return (on_time.unionByName(folded).withColumn("data_cutoff", _cutoff(study))
            .select(*SILVER_LAST_CONTACTS.column_names))


def _assessment_aggregates(study: StudyConfig) -> list[Column]:
    grace = study.endpoints.pd_grace_days
    is_assessment = F.col("kind") == "assessment"
    days = F.datediff("event_date", "index_date")
    readable = is_assessment & F.col("code").isNotNull()
    return [
        F.min(F.when(is_assessment & (F.col("code") == "PD") & (days > grace), F.col("event_date"))).alias("first_pd"),
        F.max(F.when(readable & (days > 0), F.col("event_date"))).alias("last_assessment"),
        F.sum(F.when(readable & (days > grace), 1).otherwise(0)).cast("long").alias("n_post_grace"),
        F.sum(F.when(is_assessment & F.col("code").isNull(), 1).otherwise(0)).cast("long").alias("n_unreadable"),
    ]


def _first_event(candidates: list[tuple[Column, str]]) -> tuple[Column, Column]:
    """The earliest candidate date and its type; ties go to the earlier candidate in the list."""
    when = F.least(*[d for d, _ in candidates]) if len(candidates) > 1 else candidates[0][0]
    kind = F.coalesce(*[F.when(d == when, F.lit(t)) for d, t in candidates])
    return when, kind


def _endpoint(name: str, event_date: Column, event_type: Column, censor_date: Column,
              study: StudyConfig, source: Column | None = None, evaluable: Column | None = None) -> Column:
    horizon = study.endpoints.horizon_days
    has_event = event_date.isNotNull()
    time = F.when(has_event, F.datediff(event_date, F.col("index_date"))).otherwise(
        F.datediff(censor_date, F.col("index_date")))
    beyond = time > horizon
    struct = F.struct(
        F.lit(name).alias("endpoint"),
        F.when(beyond, F.lit(horizon)).otherwise(time).cast("int").alias("time_days"),
        F.when(has_event & ~beyond, 1).otherwise(0).cast("int").alias("event"),
        F.when(has_event & ~beyond, event_type).otherwise(F.lit("censored")).alias("event_type"),
        (source if source is not None else F.lit(None)).cast("string").alias("source"),
    )
    return struct if evaluable is None else F.when(evaluable, struct)


def patient_dates(cohort: DataFrame, therapy_lines: DataFrame, bronze: dict[str, DataFrame],
                  study: StudyConfig, contacts: DataFrame | None = None) -> DataFrame:
    """One row per cohort patient: index_date, last_admin_date (of the index line, as gold/cohort
    holds it), index_line_found (whether gold/therapy_lines still holds that line: the two
    tables in step), death_date, next_line_start, last_contact, records_after_death, first_pd,
    last_assessment, n_post_grace, n_unreadable.

    contacts: silver/last_contacts at the study's cut-off (`lake_last_contacts`); then only
    the tumor assessments are read here. Without it the contact tables are read in one
    pass (one join to the cohort, one aggregation)."""
    index_line = therapy_lines.select("patient_id", F.col("setting").alias("index_setting"),
                                      F.col("line_number").alias("index_line_number"),
                                      F.col("start_date").alias("index_date"), F.lit(True).alias("index_line_found"))
    deaths = death_dates(bronze["patients"], bronze["deaths"], study.data_cutoff).select("patient_id", "death_date")
    keys = ["patient_id", "index_setting", "index_line_number", "index_date"]
    base = (cohort.select(*keys, F.col("index_last_admin_date").alias("last_admin_date"))
            .join(index_line, keys, "left").drop("index_setting", "index_line_number")
            .join(deaths, "patient_id", "left"))
    next_line = (therapy_lines.select("patient_id", "start_date").join(base.select("patient_id", "index_date"), "patient_id")
                 .where(F.col("start_date") > F.col("index_date"))
                 .groupBy("patient_id").agg(F.min("start_date").alias("next_line_start")))
    people = base.select("patient_id", "index_date", "death_date")
    if contacts is None:
        per_patient = (contact_events(bronze, study).join(people, "patient_id")
                       .groupBy("patient_id").agg(*_contact_aggregates(), *_assessment_aggregates(study)))
    else:
        assessed = {"tumor_assessments": bronze["tumor_assessments"]} if "tumor_assessments" in bronze else {}
        per_patient = people.select("patient_id").join(
            contacts.select("patient_id", "last_contact", "records_after_death"), "patient_id", "left")
        if assessed:
            per_patient = per_patient.join(
                contact_events(assessed, study).join(people, "patient_id").groupBy("patient_id")
                .agg(*_assessment_aggregates(study)), "patient_id", "left")
        else:
            per_patient = per_patient.select("*", *[F.lit(None).cast(t).alias(c) for c, t in (
                ("first_pd", "date"), ("last_assessment", "date"), ("n_post_grace", "long"),
                ("n_unreadable", "long"))])
    return (base.join(next_line, "patient_id", "left").join(per_patient, "patient_id", "left")
            .withColumn("n_post_grace", F.coalesce("n_post_grace", F.lit(0)))
            .withColumn("n_unreadable", F.coalesce("n_unreadable", F.lit(0)))
            .withColumn("records_after_death", F.coalesce("records_after_death", F.lit(0))))


def endpoint_structs(study: StudyConfig) -> list[Column]:
    """The structs of the endpoints the study includes (§5), over the columns of `patient_dates`."""
    e = study.endpoints
    pd_, death, nxt = F.col("first_pd"), F.col("death_date"), F.col("next_line_start")
    last_assessment, last_contact = F.col("last_assessment"), F.col("last_contact")
    assessed = F.col("n_post_grace") > 0

    os_censor = last_contact if e.os_censoring == "last_contact" else _cutoff(study)
    os_ = _endpoint("OS", death, F.lit("death"), os_censor, study)

    death_in_window = F.when(F.datediff(death, last_assessment) <= e.death_window_days, death)
    pfs_date, pfs_type = _first_event([(pd_, "progression"), (death_in_window, "death")])
    ttnt_date, ttnt_type = _first_event([(nxt, "next_line"), (death, "death")])
    rwpfs = F.when(assessed, _endpoint("rwPFS", pfs_date, pfs_type, last_assessment, study, F.lit("assessment"))
                   ).otherwise(_endpoint("rwPFS", ttnt_date, ttnt_type, last_contact, study, F.lit("ttnt_proxy")))

    ttp = _endpoint("TTP", pd_, F.lit("progression"), last_assessment, study, evaluable=last_assessment.isNotNull())

    discontinued = (nxt.isNotNull() | death.isNotNull()
                    | (F.datediff(_cutoff(study), F.col("last_admin_date")) > e.discontinuation_gap_days))
    stop = F.when(discontinued, F.col("last_admin_date"))
    ttf_date, ttf_type = _first_event([(pd_, "progression"), (death, "death"), (stop, "discontinuation")])
    ttf = _endpoint("TTF", ttf_date, ttf_type, last_contact, study)

    ttnt = _endpoint("TTNT", ttnt_date, ttnt_type, last_contact, study)
    built = {"OS": os_, "rwPFS": rwpfs, "TTP": ttp, "TTF": ttf, "TTNT": ttnt}
    return [built[name] for name in e.include]


def build_endpoints(cohort: DataFrame, therapy_lines: DataFrame, bronze: dict[str, DataFrame],
                    study: StudyConfig, contacts: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """(gold/endpoints, data quality).

    gold/endpoints: patient_id string, endpoint string, time_days int, event int,
    event_type string, source string (rwPFS only). Rows with a negative time are left
    out, and so are rows whose dates give no time at all. bronze: patients, deaths and
    the contact tables (optional ones may be absent).
    Data quality (table, check, reason, n long): negative_time and no_time per endpoint
    (reason = the endpoint), unreadable tumor responses of cohort patients, patients with
    records dated after their death, cohort patients whose index line is missing from
    therapy_lines.
    """
    dates = patient_dates(cohort, therapy_lines, bronze, study, contacts)
    with_rows = dates.select("*", F.array(*endpoint_structs(study)).alias("rows"))
    rows = with_rows.select("patient_id", F.explode("rows").alias("r")).where(F.col("r").isNotNull())
    endpoints = rows.select("patient_id", "r.*").where(F.col("time_days") >= 0).select(*GOLD_ENDPOINTS.column_names)

    def count(name: str, bad) -> Column:
        hits = F.filter("rows", lambda r: r.isNotNull() & (r["endpoint"] == name) & bad(r["time_days"]))
        return F.sum(F.size(hits)).cast("long")

    included = study.endpoints.include
    counts = with_rows.agg(
        *[count(name, lambda t: t < 0).alias(name) for name in included],
        *[count(name, lambda t: t.isNull()).alias(f"{name}_none") for name in included],
        F.sum("n_unreadable").cast("long").alias("unreadable"),
        F.sum(F.when(F.col("records_after_death") > 0, 1).otherwise(0)).cast("long").alias("after_death"),
        F.sum(F.when(F.col("index_line_found").isNull(), 1).otherwise(0)).cast("long").alias("no_line"))
    dq = counts.select(F.explode(F.array(
        *[data_quality_row("endpoints", "negative_time", name, name) for name in included],
        *[data_quality_row("endpoints", "no_time", name, f"{name}_none") for name in included],
        data_quality_row("tumor_assessments", "unreadable_response",
                         "a response that reads as none of CR/PR/SD/PD/NE", "unreadable"),
        data_quality_row("endpoints", "records_after_death",
                         "patients with records dated after their death (ignored)", "after_death"),
        data_quality_row("endpoints", "index_line_missing",
                         "cohort patients without their index line in therapy_lines", "no_line"),
    )).alias("r")).select("r.*")
    return endpoints, dq
