"""The pipeline: stages in the data's order, each reading and writing the lake.

A stage is a function of a `RunContext`; the context records what every stage
read and wrote (Delta versions), its row counts and its time, for the manifest.

Three ways to run: a full load (ingest overwrites bronze), an incremental load
(ingest merges a new monthly extract into bronze; see `ingest.ingest`), and a
replay: later stages rerun on a lake pinned to the versions an earlier run's
manifest names (`pinned_versions`), writing to a scratch lake.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
import typing
from pathlib import Path

from .conf_folder import DEFAULT_STUDY
from .data_quality import LAKE_STAGES, write_data_quality, write_lake_data_quality
from .errors import ConfigError, StageError
from .lake import Lake
from .lake_tables import (GOLD_COMPARISON_DATASET, GOLD_SAFETY_EVENTS, GOLD_UNMATCHED_DRUG_NAMES, LAKE_TABLES, STUDIES_FOLDER,
                          conform, lake_table)
from .manifest import DEFAULT_REPLAY_STAGES, REPLAY_STAGES, write_manifest
from .progress_lines import DONE, START, ProgressLine
from .spark_events import stage_tagged
from .study_config import StudyConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunContext:
    spark: typing.Any
    lake: Lake
    source: Path | None
    out: Path
    study: StudyConfig
    environ: typing.Mapping[str, str]
    progress: typing.Callable[[str], None] = log.info
    row_counts: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    data_quality: list[tuple] = dataclasses.field(default_factory=list)
    data_quality_written: list[tuple] | None = None
    incremental: bool = False  # ingest merges the extract into bronze instead of replacing it
    replay_of: dict | None = None  # the manifest a replay reproduces (its path and identity)
    extract: typing.Any = None  # extract_files.ExtractSettings: encoding, time zone, stop threshold (None: defaults)
    vocabulary_overrides: tuple[Path, ...] = ()  # CSVs extending the study's drug vocabulary
    # The studies of a run over one lake build (`run`), and what their sensitivity rebuilds
    # share: built for the first study, reused by the others.
    run_studies: tuple[StudyConfig, ...] = ()
    shared: dict = dataclasses.field(default_factory=dict)
    stage: str = ""  # the stage running: its writes are reported under it

    @property
    def cutoff(self) -> dt.date:
        return self.study.data_cutoff

    def extract_settings(self):
        """ingest.ExtractSettings of the run (the defaults unless the command line set them)."""
        from .extract_files import DEFAULT_SETTINGS
        return self.extract or DEFAULT_SETTINGS

    def tables_dir(self) -> Path:
        path = self.out / "tables"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, frame, layer: str, name: str, **options):
        """Write a silver, gold or quarantine table as its declaration has it (`lake_tables.conform`:
        the declared columns in order, of the declared types; an error naming the column otherwise)."""
        written = self.lake.write(conform(frame, lake_table(layer, name)), layer, name, **options)
        rows = "" if written.rows is None else f": {written.rows} rows"
        # Outside a stage (the run's closing data-quality tables) a write is a line of the run's own.
        self.progress(ProgressLine(f"{self.stage} wrote {layer}/{name}{rows}", self.stage, written.rows)
                      if self.stage else f"wrote {layer}/{name}{rows}")
        return written

    def table(self, layer: str, name: str) -> tuple[str, str]:
        """(layer, name) of a table as this run's study has it (`study_table`)."""
        return study_table(self.study.name, layer, name)


# Tables of one study: each study has its own, so that running one never changes another's.
# Every other table (bronze, quarantine, silver/drug_exposures, gold/therapy_lines,
# gold/unmatched_drug_names, gold/lake_data_quality) is the lake's, shared by its studies.
STUDY_TABLES = {(t.layer, t.name) for t in LAKE_TABLES.values() if t.per_study}


def study_table(study: str, layer: str, name: str) -> tuple[str, str]:
    """Where a study's table lives: `<layer>/studies/<study>/<name>`, except the default study
    (DEFAULT_STUDY), whose tables keep the contract's names (`gold/cohort` …) for the notebooks
    and schedules that read them. Lake tables are where they always are."""
    if (layer, name) not in STUDY_TABLES or study == DEFAULT_STUDY:
        return layer, name
    return layer, f"{STUDIES_FOLDER}/{study}/{name}"


def vocabulary(ctx: RunContext):
    """The study's drug vocabulary, extended by the run's override files."""
    from .vocabulary import load_vocabulary
    return load_vocabulary(ctx.study.vocabulary_path(ctx.environ), overrides=ctx.vocabulary_overrides)


def class_names(ctx: RunContext) -> dict[str, str]:
    """drug_class → its name in sentences, from the study's vocabulary folder."""
    from .vocabulary import class_names as names_beside
    return names_beside(ctx.study.vocabulary_path(ctx.environ))


def stage_ingest(ctx: RunContext) -> None:
    from .ingest import ingest
    from .name_matcher import NameMatcher
    from .unmatched_names import check_prescription_names, name_counts
    if ctx.source is None:
        raise StageError("stage ingest needs --source")
    settings = ctx.extract_settings()
    matcher = NameMatcher(vocabulary(ctx))

    def check_names(table, kept):
        # Before anything is committed: prescriptions whose names mostly match nothing are a
        # misread extract (or the wrong vocabulary), not bad rows.
        if table == "prescriptions":
            share = check_prescription_names(name_counts(kept), matcher, settings.max_rejected_share)
            ctx.progress(ProgressLine(f"ingest prescriptions: {share:.1%} of kept rows match no vocabulary entry",
                                      "ingest"))

    results = ingest(ctx.spark, ctx.lake, ctx.source, ctx.cutoff, progress=ctx.progress,
                     incremental=ctx.incremental, settings=settings, check_table=check_names)
    ctx.row_counts["ingest"] = {f"bronze/{r.table}": r.rows_kept for r in results}
    ctx.row_counts["ingest"].update({f"quarantine/{r.table}": r.rows_quarantined for r in results})
    from .ingest import data_quality_rows
    ctx.data_quality = [row for row in ctx.data_quality if row[0] != "ingest"] + data_quality_rows(results)


def bronze_tables(ctx: RunContext, names) -> dict:
    """The bronze tables that exist (optional source tables may be absent)."""
    return {t: ctx.lake.read("bronze", t) for t in names if ctx.lake.exists("bronze", t)}


def require(ctx: RunContext, *tables: str) -> None:
    for wanted in tables:
        layer, name = ctx.table(*wanted.split("/"))
        key = f"{layer}/{name}"
        if not ctx.lake.exists(layer, name):
            if ctx.lake.pinned and key not in ctx.lake.pinned_versions:
                raise StageError(f"lake table {key} is not among the tables the manifest pins: a replay "
                                 "reruns only stages whose inputs the original run read or wrote")
            if ctx.lake.pinned:
                raise StageError(f"lake table {key} (pinned at version {ctx.lake.pinned_versions[key]}) is missing "
                                 f"under {ctx.lake.root}: replay on the lake the manifest was written for")
            raise StageError(f"lake table {key} is missing under {ctx.lake.root}: run the stage that builds it first")
        if not ctx.lake.has_data_commit(layer, name):
            raise StageError(f"lake table {key} under {ctx.lake.root} was created but never written (an earlier "
                             "run stopped): run the stage that builds it first")


def written_rows(ctx: RunContext, written) -> int:
    """The rows of a committed write: counted from its Parquet footers when the lake staged
    it, else read back (delta-spark writing natively reports none)."""
    if written.rows is not None:
        return written.rows
    layer, _, name = written.table.partition("/")
    return ctx.lake.read(layer, name).count()


def _collect_dq(ctx: RunContext, stage: str, frame) -> None:
    """Add a step's data-quality frame (table, check, reason, n) to the run's rows."""
    rows = [(stage, r["table"], r["check"], r["reason"], int(r["n"])) for r in frame.collect()]
    ctx.data_quality = [row for row in ctx.data_quality if row[0] != stage] + rows


EMPTY_NAME = "(nothing left after normalisation)"


def stage_lines(ctx: RunContext) -> None:
    from pyspark.sql import functions as F

    from .drug_exposures import build_drug_exposures, ingredient_mapping
    from .facts import advanced_dates
    from .lines import build_therapy_lines
    from .name_matcher import NameMatcher
    from .unmatched_names import unmatched_name_counts, unmatched_names_report
    require(ctx, "bronze/prescriptions", "bronze/diagnoses")
    drugs = vocabulary(ctx)
    matcher = NameMatcher(drugs)
    prescriptions = ctx.lake.read("bronze", "prescriptions")
    # The names' mapping (a few thousand rows) is computed once and held by the driver, so
    # the two writes each read the prescriptions from the lake: cheaper than caching them
    # (at 1,000,000 patients the cached plan took 124 s for the two writes).
    mapping = ingredient_mapping(prescriptions, matcher)
    mapping = ctx.spark.createDataFrame(mapping.collect(), mapping.schema)
    exposures, unmatched = build_drug_exposures(prescriptions, matcher, mapping)
    ctx.write(exposures, "silver", "drug_exposures")
    ctx.write(unmatched, "quarantine", "drug_exposures")
    n_in = prescriptions.count()
    exposures = ctx.lake.read("silver", "drug_exposures")
    unmatched = ctx.lake.read("quarantine", "drug_exposures")
    # Each prescription row (record_id unique in bronze) is an exposure or unmatched, never
    # both: counting the few unmatched rows spares a distinct count of every exposure.
    n_unmatched = unmatched.count()
    n_matched = n_in - n_unmatched
    names = unmatched_name_counts(unmatched).limit(50).collect()
    rows = [("lines", "prescriptions", "rows_in", None, n_in),
            ("lines", "prescriptions", "rows_matched", None, n_matched),
            ("lines", "prescriptions", "quarantined", "unmatched_drug_name", n_unmatched)]
    rows += [("lines", "prescriptions", "unmatched_name", r["drug_name_normalised"] or EMPTY_NAME, int(r["n_rows"]))
             for r in names]
    ctx.data_quality = [row for row in ctx.data_quality if row[0] != "lines"] + rows
    report = unmatched_names_report(unmatched, matcher)
    ctx.write(ctx.spark.createDataFrame(report, UNMATCHED_NAMES_SCHEMA) if len(report)
                   else ctx.spark.createDataFrame([], UNMATCHED_NAMES_SCHEMA), "gold", "unmatched_drug_names")

    write_last_contacts(ctx)
    advanced = advanced_dates(ctx.lake.read("bronze", "diagnoses"), ctx.study)
    lines = build_therapy_lines(exposures, advanced, ctx.study.lines, drugs)
    ctx.write(lines, "gold", "therapy_lines")
    written = ctx.lake.read("gold", "therapy_lines")
    ctx.row_counts["lines"] = {
        "silver/drug_exposures": exposures.count(), "quarantine/drug_exposures": n_unmatched,
        "gold/therapy_lines": written.count(),
        "patients_with_lines": written.select(F.countDistinct("patient_id")).first()[0]}


CONTACT_TABLES = ("patients", "deaths", "visits", "prescriptions", "labs", "tumor_assessments", "diagnoses",
                  "adverse_events")


def write_last_contacts(ctx: RunContext) -> None:
    """silver/last_contacts (endpoints.lake_last_contacts) at the run's cut-off, for every study."""
    from pyspark import StorageLevel

    from .endpoints import lake_last_contacts, late_patients, latest_records
    from .ingest import BROADCAST_PATIENTS
    if ctx.lake.exists("bronze", "patients") and ctx.lake.exists("bronze", "deaths"):
        bronze = bronze_tables(ctx, CONTACT_TABLES)
        # One row per patient, read twice: cached, unlike the contact records themselves.
        latest = latest_records(bronze, ctx.study).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            few = late_patients(latest).count() <= BROADCAST_PATIENTS
            ctx.write(lake_last_contacts(bronze, ctx.study, latest, broadcast_late=few), "silver", "last_contacts")
        finally:
            latest.unpersist()


def last_contacts_at_cutoff(ctx: RunContext, study: StudyConfig | None = None):
    """silver/last_contacts when it was built at the study's cut-off, else None (the endpoints
    then read the contact tables themselves)."""
    study = study or ctx.study
    if not ctx.lake.exists("silver", "last_contacts"):
        return None
    contacts = ctx.lake.read("silver", "last_contacts")
    built_at = {r[0] for r in contacts.select("data_cutoff").distinct().limit(2).collect()}
    return contacts if built_at <= {study.data_cutoff} else None


UNMATCHED_NAMES_SCHEMA = GOLD_UNMATCHED_DRUG_NAMES.ddl


def stage_cohort(ctx: RunContext) -> None:
    from .cohort import build_cohort
    from .disclosure import suppress_attrition
    from .facts import build_patient_facts
    from .publish import publish
    from .studies import ATTRITION_GATE
    require(ctx, "bronze/patients", "bronze/diagnoses", "bronze/biomarkers", "bronze/deaths",
            "gold/therapy_lines", "silver/drug_exposures")
    bronze = bronze_tables(ctx, ("patients", "diagnoses", "biomarkers", "deaths", "hospitals"))
    facts_written = ctx.write(build_patient_facts(bronze, ctx.study), *ctx.table("silver", "patient_facts"))
    facts = ctx.lake.read(*ctx.table("silver", "patient_facts"))
    cohort, attrition, dq = build_cohort(facts, ctx.lake.read("gold", "therapy_lines"),
                                         ctx.lake.read("silver", "drug_exposures"), bronze, ctx.study,
                                         class_names(ctx))
    cohort_written = ctx.write(cohort, *ctx.table("gold", "cohort"))
    ctx.write(attrition, *ctx.table("gold", "attrition"))
    _collect_dq(ctx, "cohort", dq)
    attrition_pdf = suppress_attrition(ctx.lake.read_pandas(*ctx.table("gold", "attrition")),
                                       min_cell=ctx.study.disclosure.min_cell)
    publish(attrition_pdf, ATTRITION_GATE, ctx.study, ctx.tables_dir())
    ctx.row_counts["cohort"] = {"silver/patient_facts": written_rows(ctx, facts_written),
                                "gold/cohort": written_rows(ctx, cohort_written)}


def stage_endpoints(ctx: RunContext) -> None:
    from .endpoints import build_endpoints
    require(ctx, "gold/cohort", "gold/therapy_lines", "bronze/patients", "bronze/deaths")
    bronze = bronze_tables(ctx, ("patients", "deaths", "visits", "prescriptions", "labs", "tumor_assessments",
                                 "diagnoses", "adverse_events"))
    endpoints, dq = build_endpoints(ctx.lake.read(*ctx.table("gold", "cohort")),
                                    ctx.lake.read("gold", "therapy_lines"),
                                    bronze, ctx.study, last_contacts_at_cutoff(ctx))
    written = ctx.write(endpoints, *ctx.table("gold", "endpoints"))
    _collect_dq(ctx, "endpoints", dq)
    ctx.row_counts["endpoints"] = {"gold/endpoints": written_rows(ctx, written)}


def rebuild_sources(ctx: RunContext, bronze: dict, exposures):
    """What the study's sensitivity rebuilds read (`sensitivity.RebuildSources`) from this run's lake."""
    from .sensitivity import RebuildSources
    return RebuildSources(
        studies=ctx.run_studies or (ctx.study,), bronze=bronze, exposures=exposures,
        built=lambda: (ctx.lake.read("gold", "therapy_lines"), ctx.lake.read(*ctx.table("gold", "cohort"))),
        contacts=lambda variant: last_contacts_at_cutoff(ctx, variant))


def _pandas(df):
    return df.toPandas()


def stage_analysis(ctx: RunContext) -> None:
    from pyspark.sql import functions as F

    from .analysis import AnalysisInputs, run_analysis
    from .sensitivity import rebuild_endpoints, sensitivity_studies
    from .vocabulary import dose_bases
    require(ctx, "gold/cohort", "gold/endpoints", "gold/attrition", "gold/therapy_lines", "silver/drug_exposures")
    write_data_quality(ctx)
    study = ctx.study
    cohort = ctx.lake.read(*ctx.table("gold", "cohort"))
    ids = F.broadcast(cohort.select("patient_id"))
    lines = ctx.lake.read("gold", "therapy_lines").join(ids, "patient_id", "left_semi")
    exposures = ctx.lake.read("silver", "drug_exposures")
    index_lines = cohort.select("patient_id", F.col("index_date").alias("__index"),
                                F.col("index_last_admin_date").alias("__last"))
    bronze = bronze_tables(ctx, ("patients", "deaths", "visits", "prescriptions", "labs", "tumor_assessments",
                                 "diagnoses", "adverse_events", "biomarkers", "hospitals", "vitals"))

    def windowed(table: str, date_col: str, before_days: int, columns: list[str]):
        if table not in bronze:
            return None
        window = F.col(date_col).between(F.date_sub("__index", before_days),
                                         F.date_add("__last", study.safety.window_after_last_admin_days))
        return _pandas(bronze[table].join(F.broadcast(index_lines), "patient_id").where(window).select(*columns))

    pattern_drugs = dose_bases(study.vocabulary_path(ctx.environ),
                               study.pattern_drugs(set(vocabulary(ctx)["ingredient"])))
    # Within `run`, the studies of the run share their rebuilds; a stage run alone keeps its own.
    shared = ctx.shared if len(ctx.run_studies) > 1 else {}
    sensitivity = {}
    sources = rebuild_sources(ctx, bronze, exposures)
    for label, variant in sensitivity_studies(study).items():
        with _timed(ctx, f"analysis: sensitivity, {label}"):
            sensitivity[label] = _pandas(rebuild_endpoints(study, variant, sources, shared)[1])

    with _timed(ctx, "analysis: the cohort's rows read"):
        inputs = AnalysisInputs(
            study=study,
            cohort=_pandas(cohort),
            endpoints=ctx.lake.read_pandas(*ctx.table("gold", "endpoints")),
            attrition=ctx.lake.read_pandas(*ctx.table("gold", "attrition")),
            data_quality=ctx.lake.read_pandas(*ctx.table("gold", "data_quality")),
            lines=_pandas(lines),
            exposures=_pandas(exposures.join(ids, "patient_id", "left_semi").where(F.col("ingredient").isin(*pattern_drugs))
                              .select("patient_id", "admin_date", "ingredient", "dose", "dose_unit", "route")),
            vitals=(_pandas(bronze["vitals"].join(ids, "patient_id", "left_semi")
                            .select("patient_id", "measure_date", "height_cm", "weight_kg"))
                    if "vitals" in bronze else None),
            labs=windowed("labs", "collect_date", study.safety.baseline_days,
                          ["patient_id", "collect_date", "test", "value", "unit", "ref_low", "ref_high"]),
            adverse_events=windowed("adverse_events", "onset_date", 0,
                                    ["patient_id", "onset_date", "term", "grade", "serious"]),
            sensitivity=sensitivity,
            pattern_drugs=pattern_drugs, class_names=class_names(ctx),
            unmatched_names=(ctx.lake.read_pandas("gold", "unmatched_drug_names")
                             if ctx.lake.exists("gold", "unmatched_drug_names") else None),
        )
    with _timed(ctx, "analysis: statistics, figures and report"):
        result = run_analysis(inputs, ctx.out)
    spark_events = ctx.spark.createDataFrame(result.safety_events, SAFETY_EVENTS_SCHEMA) \
        if len(result.safety_events) else ctx.spark.createDataFrame([], SAFETY_EVENTS_SCHEMA)
    ctx.write(spark_events, *ctx.table("gold", "safety_events"))
    ctx.row_counts["analysis"] = {"cohort_patients": len(inputs.cohort),
                                  "gold/safety_events": len(result.safety_events)}
    if result.comparison_dataset is not None:
        dataset = result.comparison_dataset.astype({"matched_set": object})
        dataset["matched_set"] = dataset["matched_set"].where(dataset["matched_set"].notna(), None)
        dataset["weight"] = dataset["weight"].astype(object).where(dataset["weight"].notna(), None)
        frame = (ctx.spark.createDataFrame(dataset, GOLD_COMPARISON_DATASET.ddl) if len(dataset)
                 else ctx.spark.createDataFrame([], GOLD_COMPARISON_DATASET.ddl))
        ctx.write(frame, *ctx.table("gold", "comparison_dataset"))
        ctx.row_counts["analysis"]["gold/comparison_dataset"] = len(dataset)


SAFETY_EVENTS_SCHEMA = GOLD_SAFETY_EVENTS.ddl


STAGES: dict[str, typing.Callable[[RunContext], None]] = {
    "ingest": stage_ingest,
    "lines": stage_lines,
    "cohort": stage_cohort,
    "endpoints": stage_endpoints,
    "analysis": stage_analysis,
}


def parse_stages(text: str | None) -> list[str]:
    if not text:
        return list(STAGES)
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        raise StageError(f"unknown stage {unknown[0]!r} (stages: {', '.join(STAGES)})")
    return [s for s in STAGES if s in wanted]  # always in the data's order


def replay_stages(text: str | None) -> list[str]:
    """The stages a replay reruns (default: the analysis alone)."""
    stages = parse_stages(text) if text else list(DEFAULT_REPLAY_STAGES)
    refused = [s for s in stages if s not in REPLAY_STAGES]
    if refused:
        raise StageError(f"stage {refused[0]} cannot be replayed: a replay reads the lake as the manifest "
                         f"pins it (replayable stages: {', '.join(REPLAY_STAGES)})")
    return stages


def check_studies_share_the_lake(studies: typing.Sequence[StudyConfig]) -> None:
    """Studies run together share one build of the lake (bronze, drug exposures, lines): they
    must agree on what builds it. ConfigError naming the study and the key otherwise."""
    first = studies[0]
    shared = {"data_cutoff": lambda s: s.data_cutoff, "lines": lambda s: s.lines,
              "vocabulary": lambda s: s.vocabulary_path(), "the cancer (its diagnosis criterion's icd10)":
              lambda s: s.diagnosis_icd10}
    for i, study in enumerate(studies[1:], start=1):
        if study.name in [s.name for s in studies[:i]]:
            raise ConfigError(f"--study: {study.name} is given twice")
        for key, value in shared.items():
            if value(study) != value(first):
                raise ConfigError(f"--study {study.name}: its {key} differs from {first.name}'s; studies run "
                                  "together share the lake's lines (run it on its own)")


@contextlib.contextmanager
def _timed(ctx: RunContext, what: str):
    """A progress line with the seconds a step of a stage took: where a run's time goes."""
    started = time.perf_counter()
    yield
    ctx.progress(ProgressLine(f"{what}: {time.perf_counter() - started:.1f}s", ctx.stage))


def _run_stages(ctx: RunContext, stages: list[str]) -> None:
    for name in stages:
        study = f" ({ctx.study.name})" if name not in LAKE_STAGES else ""
        label = name + study
        ctx.progress(ProgressLine(f"stage {name}: start{study}", name, event=START, label=label))
        ctx.stage = name
        started = time.perf_counter()
        try:
            with stage_tagged(ctx.spark, name):
                STAGES[name](ctx)
        finally:
            ctx.stage = ""
        ctx.timings[name] = time.perf_counter() - started
        ctx.progress(ProgressLine(f"stage {name}: done in {ctx.timings[name]:.1f}s", name, event=DONE, label=label))


def run(ctx: RunContext, stages: list[str], studies: typing.Sequence[StudyConfig] | None = None) -> dict:
    """Run `stages` for ctx.study, or for several `studies` over one build of the lake.

    With several studies, the lake's stages (ingest, lines) run once; then each study runs
    its own stages (cohort, endpoints, analysis) into its own tables and `<out>/<study>/`,
    with its own run manifest.
    """
    ctx.out.mkdir(parents=True, exist_ok=True)
    if not studies or len(studies) == 1:
        ctx.study = studies[0] if studies else ctx.study
        _run_stages(ctx, stages)
        if ctx.data_quality and ctx.data_quality != ctx.data_quality_written:
            write_data_quality(ctx)
        write_manifest(ctx, stages)
        return {"stages": stages, "timings": ctx.timings, "row_counts": ctx.row_counts}
    check_studies_share_the_lake(studies)
    ctx.study = studies[0]
    _run_stages(ctx, [s for s in stages if s in LAKE_STAGES])
    write_lake_data_quality(ctx)
    results = {}
    ctx.run_studies, ctx.shared = tuple(studies), {}
    try:
        for study in studies:
            own = dataclasses.replace(ctx, study=study, out=ctx.out / study.name, row_counts=dict(ctx.row_counts),
                                      timings=dict(ctx.timings), data_quality=[], data_quality_written=None)
            own.out.mkdir(parents=True, exist_ok=True)
            _run_stages(own, [s for s in stages if s not in LAKE_STAGES])
            if own.data_quality != own.data_quality_written:
                write_data_quality(own)
            write_manifest(own, stages)
            results[study.name] = {"timings": own.timings, "row_counts": own.row_counts}
    finally:
        ctx.run_studies, ctx.shared = (), {}  # the rebuilds are this run's: none outlives it
    return {"stages": stages, "studies": results}
