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
import hashlib
import json
import logging
import time
import typing
from importlib import metadata
from pathlib import Path

from .config import DEFAULT_STUDY, ConfigError, StudyConfig, study_from_dict
from .lake import Lake

log = logging.getLogger(__name__)


class StageError(RuntimeError):
    """A stage that cannot run (for example, its input tables were never built)."""


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

    @property
    def cutoff(self) -> dt.date:
        return self.study.data_cutoff

    def tables_dir(self) -> Path:
        path = self.out / "tables"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def table(self, layer: str, name: str) -> tuple[str, str]:
        """(layer, name) of a table as this run's study has it (`study_table`)."""
        return study_table(self.study.name, layer, name)


# Tables of one study: each study has its own, so that running one never changes another's.
# Every other table (bronze, quarantine, silver/drug_exposures, gold/therapy_lines,
# gold/unmatched_drug_names, gold/lake_data_quality) is the lake's, shared by its studies.
STUDY_TABLES = {("silver", "patient_facts"), ("gold", "cohort"), ("gold", "attrition"), ("gold", "endpoints"),
                ("gold", "safety_events"), ("gold", "data_quality")}
STUDIES_FOLDER = "studies"


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


def extract_settings(ctx: RunContext):
    from .extract_files import DEFAULT_SETTINGS
    return ctx.extract or DEFAULT_SETTINGS


def stage_ingest(ctx: RunContext) -> None:
    from .ingest import ingest
    from .vocabulary import NameMatcher, check_prescription_names, name_counts
    if ctx.source is None:
        raise StageError("stage ingest needs --source")
    settings = extract_settings(ctx)
    matcher = NameMatcher(vocabulary(ctx))

    def check_names(table, kept):
        # Before anything is committed: prescriptions whose names mostly match nothing are a
        # misread extract (or the wrong vocabulary), not bad rows.
        if table == "prescriptions":
            share = check_prescription_names(name_counts(kept), matcher, settings.max_rejected_share)
            ctx.progress(f"ingest prescriptions: {share:.1%} of kept rows match no vocabulary entry")

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
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from .facts import advanced_dates
    from .lines import build_therapy_lines
    from .vocabulary import NameMatcher, build_drug_exposures, unmatched_name_counts, unmatched_names_report
    require(ctx, "bronze/prescriptions", "bronze/diagnoses")
    drugs = vocabulary(ctx)
    matcher = NameMatcher(drugs)
    prescriptions = ctx.lake.read("bronze", "prescriptions").persist(StorageLevel.MEMORY_AND_DISK)
    try:
        exposures, unmatched = build_drug_exposures(prescriptions, matcher)
        ctx.lake.write(exposures, "silver", "drug_exposures")
        ctx.lake.write(unmatched, "quarantine", "drug_exposures")
        n_in = prescriptions.count()
    finally:
        prescriptions.unpersist()
    exposures = ctx.lake.read("silver", "drug_exposures")
    unmatched = ctx.lake.read("quarantine", "drug_exposures")
    n_matched = exposures.select("record_id").distinct().count()
    names = unmatched_name_counts(unmatched).limit(50).collect()
    rows = [("lines", "prescriptions", "rows_in", None, n_in),
            ("lines", "prescriptions", "rows_matched", None, n_matched),
            ("lines", "prescriptions", "quarantined", "unmatched_drug_name", n_in - n_matched)]
    rows += [("lines", "prescriptions", "unmatched_name", r["drug_name_normalised"] or EMPTY_NAME, int(r["n_rows"]))
             for r in names]
    ctx.data_quality = [row for row in ctx.data_quality if row[0] != "lines"] + rows
    report = unmatched_names_report(unmatched, matcher)
    ctx.lake.write(ctx.spark.createDataFrame(report, UNMATCHED_NAMES_SCHEMA) if len(report)
                   else ctx.spark.createDataFrame([], UNMATCHED_NAMES_SCHEMA), "gold", "unmatched_drug_names")

    write_last_contacts(ctx)
    advanced = advanced_dates(ctx.lake.read("bronze", "diagnoses"), ctx.study)
    lines = build_therapy_lines(exposures, advanced, ctx.study.lines, drugs)
    ctx.lake.write(lines, "gold", "therapy_lines")
    written = ctx.lake.read("gold", "therapy_lines")
    ctx.row_counts["lines"] = {
        "silver/drug_exposures": exposures.count(), "quarantine/drug_exposures": n_in - n_matched,
        "gold/therapy_lines": written.count(),
        "patients_with_lines": written.select(F.countDistinct("patient_id")).first()[0]}


CONTACT_TABLES = ("patients", "deaths", "visits", "prescriptions", "labs", "tumor_assessments", "diagnoses",
                  "adverse_events")


def write_last_contacts(ctx: RunContext) -> None:
    """silver/last_contacts (endpoints.lake_last_contacts) at the run's cut-off, for every study."""
    from .endpoints import lake_last_contacts
    if ctx.lake.exists("bronze", "patients") and ctx.lake.exists("bronze", "deaths"):
        ctx.lake.write(lake_last_contacts(bronze_tables(ctx, CONTACT_TABLES), ctx.study), "silver", "last_contacts")


def last_contacts_at_cutoff(ctx: RunContext, study: StudyConfig | None = None):
    """silver/last_contacts when it was built at the study's cut-off, else None (the endpoints
    then read the contact tables themselves)."""
    study = study or ctx.study
    if not ctx.lake.exists("silver", "last_contacts"):
        return None
    contacts = ctx.lake.read("silver", "last_contacts")
    built_at = {r[0] for r in contacts.select("data_cutoff").distinct().limit(2).collect()}
    return contacts if built_at <= {study.data_cutoff} else None


UNMATCHED_NAMES_SCHEMA = ("rank int, drug_name string, drug_name_normalised string, n_rows long, "
                          "nearest_entries string")


def stage_cohort(ctx: RunContext) -> None:
    from .cohort import build_cohort
    from .disclosure import suppress_attrition
    from .facts import build_patient_facts
    from .publish import publish
    from .studies import ATTRITION_GATE
    require(ctx, "bronze/patients", "bronze/diagnoses", "bronze/biomarkers", "bronze/deaths",
            "gold/therapy_lines", "silver/drug_exposures")
    bronze = bronze_tables(ctx, ("patients", "diagnoses", "biomarkers", "deaths", "hospitals"))
    facts_written = ctx.lake.write(build_patient_facts(bronze, ctx.study), *ctx.table("silver", "patient_facts"))
    facts = ctx.lake.read(*ctx.table("silver", "patient_facts"))
    cohort, attrition, dq = build_cohort(facts, ctx.lake.read("gold", "therapy_lines"),
                                         ctx.lake.read("silver", "drug_exposures"), bronze, ctx.study)
    cohort_written = ctx.lake.write(cohort, *ctx.table("gold", "cohort"))
    ctx.lake.write(attrition, *ctx.table("gold", "attrition"))
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
    written = ctx.lake.write(endpoints, *ctx.table("gold", "endpoints"))
    _collect_dq(ctx, "endpoints", dq)
    ctx.row_counts["endpoints"] = {"gold/endpoints": written_rows(ctx, written)}


def patients_who_can_matter(exposures, study: StudyConfig):
    """Patients with an exposure the index line requires: the only ones a rebuild can move.

    Sensitivity analyses rebuild lines, cohort and endpoints for these patients only,
    so their cost follows the study's drug, not the size of the prescription table.
    """
    from pyspark.sql import functions as F
    rule = study.index.regimen
    # all_of: one of its drugs is enough to narrow; else any_of: every one of them.
    names = rule.all_of[:1] or rule.any_of
    wanted = F.col("ingredient").isin(*names) | F.col("drug_class").isin(*names)
    return exposures.where(wanted).select("patient_id").distinct()


def _once(shared: dict, key, build):
    if key not in shared:
        shared[key] = build()
    return shared[key]


def sensitivity_base(ctx: RunContext, shared: dict, bronze: dict, exposures) -> dict:
    """The patients who can matter to any study of the run, with their bronze rows, their
    last contacts and exposures, materialised once (local checkpoints: few patients): every
    rebuild of every study reads them. A patient who can matter to another study only is in
    no rebuilt cohort of this one (it lacks the drug this index line requires), so one set
    serves all."""
    def build() -> dict:
        studies = ctx.run_studies or (ctx.study,)
        ids = patients_who_can_matter(exposures, studies[0])
        for other in studies[1:]:
            ids = ids.union(patients_who_can_matter(exposures, other))
        ids = ids.distinct().localCheckpoint()
        few = {name: bronze[name].join(ids, "patient_id", "left_semi").localCheckpoint()
               for name in ("patients", "diagnoses", "biomarkers", "tumor_assessments") if name in bronze}
        few.update(deaths=bronze["deaths"], hospitals=bronze["hospitals"])  # keyed by id_hash, hospital_id
        contacts = last_contacts_at_cutoff(ctx)
        if contacts is not None:
            contacts = contacts.join(ids, "patient_id", "left_semi").localCheckpoint()
        return {"bronze": few, "contacts": contacts,
                "exposures": exposures.join(ids, "patient_id", "left_semi").localCheckpoint()}
    return _once(shared, "base", build)


def sensitivity_studies(study: StudyConfig) -> dict[str, StudyConfig]:
    """§8 sensitivity analyses that need a Spark rebuild, by display label."""
    studies = {}
    if "OS" in study.endpoints.include:
        studies["OS censored at last contact"] = dataclasses.replace(
            study, endpoints=dataclasses.replace(study.endpoints, os_censoring="last_contact", include=("OS",)))
    for gap in study.analysis.sensitivity_gap_days:
        if gap != study.lines.max_gap_days:
            studies[f"lines rebuilt with a {gap}-day gap"] = dataclasses.replace(
                study, lines=dataclasses.replace(study.lines, max_gap_days=gap))
    return studies


def rebuild_for_sensitivity(ctx: RunContext, variant: StudyConfig, bronze: dict, exposures, shared: dict):
    """(cohort, endpoints) of a variant study: for a variant of the lines, on the patients
    who can matter and with the cohort's index lines only (the endpoints read no more).

    shared: the rebuilt intermediates by what they depend on (the lines by the variant's
    `lines`, the facts by the cancer, `facts` and cut-off), so that the studies of a run and
    the two gap variants of one study build each once.
    """
    from .cohort import cohort_index_lines
    from .endpoints import build_endpoints
    from .facts import advanced_dates, build_patient_facts
    from .lines import build_therapy_lines
    if variant.lines == ctx.study.lines:
        lines = ctx.lake.read("gold", "therapy_lines")
        cohort = ctx.lake.read(*ctx.table("gold", "cohort"))
        contacts = last_contacts_at_cutoff(ctx, variant)
    else:
        base = sensitivity_base(ctx, shared, bronze, exposures)
        few, mine = base["bronze"], base["exposures"]
        # The lines and facts are read by several later steps: materialised once (local
        # checkpoints) rather than recomputed by every plan that reads them.
        lines = _once(shared, ("lines", variant.diagnosis_icd10, variant.lines), lambda: build_therapy_lines(
            mine, advanced_dates(few["diagnoses"], variant), variant.lines).localCheckpoint())
        facts = _once(shared, ("facts", variant.diagnosis_icd10, variant.facts, variant.data_cutoff),
                      lambda: build_patient_facts(few, variant).localCheckpoint())
        cohort = cohort_index_lines(facts, lines, mine, variant)
        bronze = {**bronze, **few}
        contacts = base["contacts"]  # a variant keeps the cut-off, which the studies of a run share
    endpoints, _ = build_endpoints(cohort, lines, bronze, variant, contacts)
    return cohort, endpoints


def _pandas(df):
    return df.toPandas()


def stage_analysis(ctx: RunContext) -> None:
    from pyspark.sql import functions as F

    from .analysis import AnalysisInputs, run_analysis
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

    pattern_drugs = study.pattern_drugs(set(vocabulary(ctx)["ingredient"]))
    # Within `run`, the studies of the run share their rebuilds; a stage run alone keeps its own.
    shared = ctx.shared if len(ctx.run_studies) > 1 else {}
    sensitivity = {}
    for label, variant in sensitivity_studies(study).items():
        with _timed(ctx, f"analysis: sensitivity, {label}"):
            sensitivity[label] = _pandas(rebuild_for_sensitivity(ctx, variant, bronze, exposures, shared)[1])

    with _timed(ctx, "analysis: the cohort's rows read"):
        inputs = AnalysisInputs(
            study=study,
            cohort=_pandas(cohort),
            endpoints=ctx.lake.read_pandas(*ctx.table("gold", "endpoints")),
            attrition=ctx.lake.read_pandas(*ctx.table("gold", "attrition")),
            data_quality=ctx.lake.read_pandas(*ctx.table("gold", "data_quality")),
            lines=_pandas(lines),
            exposures=_pandas(exposures.join(ids, "patient_id", "left_semi").where(F.col("ingredient").isin(*pattern_drugs))
                              .select("patient_id", "admin_date", "ingredient", "dose", "dose_unit")),
            vitals=(_pandas(bronze["vitals"].join(ids, "patient_id", "left_semi")
                            .select("patient_id", "measure_date", "height_cm", "weight_kg"))
                    if "vitals" in bronze else None),
            labs=windowed("labs", "collect_date", study.safety.baseline_days,
                          ["patient_id", "collect_date", "test", "value", "unit", "ref_low", "ref_high"]),
            adverse_events=windowed("adverse_events", "onset_date", 0,
                                    ["patient_id", "onset_date", "term", "grade", "serious"]),
            sensitivity=sensitivity,
            pattern_drugs=pattern_drugs,
            unmatched_names=(ctx.lake.read_pandas("gold", "unmatched_drug_names")
                             if ctx.lake.exists("gold", "unmatched_drug_names") else None),
        )
    with _timed(ctx, "analysis: statistics, figures and report"):
        result = run_analysis(inputs, ctx.out)
    spark_events = ctx.spark.createDataFrame(result.safety_events, SAFETY_EVENTS_SCHEMA) \
        if len(result.safety_events) else ctx.spark.createDataFrame([], SAFETY_EVENTS_SCHEMA)
    ctx.lake.write(spark_events, *ctx.table("gold", "safety_events"))
    ctx.row_counts["analysis"] = {"cohort_patients": len(inputs.cohort),
                                  "gold/safety_events": len(result.safety_events)}


SAFETY_EVENTS_SCHEMA = "patient_id string, term string, grade int, source string, onset_date date"


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


LAKE_STAGES = ("ingest", "lines")  # stages that build the lake's shared tables


def write_lake_data_quality(ctx: RunContext) -> None:
    """gold/lake_data_quality: the data-quality rows of the lake's own stages (ingest, lines),
    this run's for the stages it ran, the table's previous rows for the others."""
    from .ingest import DATA_QUALITY_SCHEMA
    ran = {row[0] for row in ctx.data_quality if row[0] in LAKE_STAGES}
    if not ran:
        return
    previous = [r for r in _lake_rows(ctx) if r[0] not in ran]
    rows = previous + [row for row in ctx.data_quality if row[0] in LAKE_STAGES]
    ctx.lake.write(ctx.spark.createDataFrame(_sorted_rows(rows), DATA_QUALITY_SCHEMA), "gold", "lake_data_quality")


def _lake_rows(ctx: RunContext) -> list[tuple]:
    """The lake stages' data-quality rows as the lake holds them (before gold/lake_data_quality
    existed, the study's own data quality held them)."""
    for layer, name in (("gold", "lake_data_quality"), ctx.table("gold", "data_quality")):
        if ctx.lake.exists(layer, name):
            return [tuple(r) for r in ctx.lake.read(layer, name).collect() if r["stage"] in LAKE_STAGES]
    return []


def _sorted_rows(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))


def write_data_quality(ctx: RunContext) -> None:
    """The study's gold/data_quality (exact, inside the lake) and tables/data_quality.csv
    (disclosure-controlled): the lake stages' rows as the lake holds them now, then the
    study's stages, this run's rows for the stages it ran and the study's previous rows for
    the others."""
    from .data_quality import DATA_QUALITY_GATE, with_count_sets
    from .ingest import DATA_QUALITY_SCHEMA
    from .publish import publish
    write_lake_data_quality(ctx)
    mine = [row for row in ctx.data_quality if row[0] not in LAKE_STAGES]
    ran = {row[0] for row in mine}
    previous = []
    if ctx.lake.exists(*ctx.table("gold", "data_quality")):
        previous = [tuple(r) for r in ctx.lake.read(*ctx.table("gold", "data_quality")).collect()
                    if r["stage"] not in ran and r["stage"] not in LAKE_STAGES]
    rows = _sorted_rows(_lake_rows(ctx) + previous + mine)
    frame = ctx.spark.createDataFrame(rows, DATA_QUALITY_SCHEMA)
    ctx.lake.write(frame, *ctx.table("gold", "data_quality"))
    ctx.data_quality_written = list(ctx.data_quality)
    publish(with_count_sets(frame.toPandas()), DATA_QUALITY_GATE, ctx.study, ctx.tables_dir())


def engine_version() -> str:
    try:
        return metadata.version("cohort-engine")
    except metadata.PackageNotFoundError:  # running from a source tree (spark-submit --py-files)
        return "0+source"


def shown_count(n: int, min_cell: int):
    from .disclosure import small_text
    return small_text(min_cell) if 0 < n < min_cell else n


def manifest_versions(manifest: dict, kind: str = "read") -> dict[str, int]:
    """{table: Delta version} of what a run read (or wrote), from its manifest."""
    return {item["table"]: item["version"] for item in manifest["delta_versions"][kind]}


# -- replay -------------------------------------------------------------------------

# Stages a replay may rerun: each reads only lake tables. Ingest reads the raw
# extract, which the lake does not version, so it cannot be replayed.
REPLAY_STAGES = ("lines", "cohort", "endpoints", "analysis")
DEFAULT_REPLAY_STAGES = ["analysis"]


def load_manifest(path: str | Path) -> dict:
    """A run manifest, checked for what a replay needs (ConfigError naming the file otherwise)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the run manifest ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not a run manifest (invalid JSON: {exc})") from None
    needed = ("study", "study_hash", "data_cutoff", "delta_versions")
    missing = [k for k in needed if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise ConfigError(f"{path}: not a run manifest (no {missing[0]!r})")
    try:
        manifest_versions(manifest, "read"), manifest_versions(manifest, "written")
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: delta_versions is not a list of {{table, version}} ({exc})") from None
    return manifest


def pinned_versions(manifest: dict) -> dict[str, int]:
    """{table: version} a replay reads: what the original run left each table it touched at.

    A table the run wrote is pinned at the version it wrote (its state when the run
    ended, which every later stage of that run read); a table it only read, at the
    version it read.
    """
    return {**manifest_versions(manifest, "read"), **manifest_versions(manifest, "written")}


def study_of_manifest(manifest: dict, source: str = "run manifest") -> StudyConfig:
    """The study configuration (cut-off included) a manifest recorded, checked against its hash."""
    try:
        study = study_from_dict(manifest["study"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: its study cannot be read ({exc})") from None
    if study.config_hash() != manifest["study_hash"]:
        raise ConfigError(f"{source}: the study it records does not match its study_hash (edited or damaged)")
    if study.data_cutoff.isoformat() != manifest["data_cutoff"]:
        raise ConfigError(f"{source}: data_cutoff {manifest['data_cutoff']} differs from its study's "
                          f"{study.data_cutoff.isoformat()}")
    return study


def replay_stages(text: str | None) -> list[str]:
    """The stages a replay reruns (default: the analysis alone)."""
    stages = parse_stages(text) if text else list(DEFAULT_REPLAY_STAGES)
    refused = [s for s in stages if s not in REPLAY_STAGES]
    if refused:
        raise StageError(f"stage {refused[0]} cannot be replayed: a replay reads the lake as the manifest "
                         f"pins it (replayable stages: {', '.join(REPLAY_STAGES)})")
    return stages


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def write_manifest(ctx: RunContext, stages: list[str]) -> Path:
    manifest = {
        "engine_version": engine_version(),
        "created_utc": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "study": ctx.study.to_dict(),
        "study_hash": ctx.study.config_hash(),
        "data_cutoff": ctx.cutoff.isoformat(),
        "stages": stages,
        # A list of records: table names must not read as count labels to the disclosure audit.
        "delta_versions": {"read": [{"table": t, "version": v} for t, v in sorted(ctx.lake.versions_read.items())],
                           "written": [{"table": t, "version": v}
                                       for t, v in sorted(ctx.lake.versions_written.items())]},
        # Exact counts live in gold/data_quality; under <out> a count 1-4 is shown as <5.
        "row_counts": {stage: {table: shown_count(n, ctx.study.disclosure.min_cell) for table, n in counts.items()}
                       for stage, counts in ctx.row_counts.items()},
        "timings_seconds": {k: round(v, 3) for k, v in ctx.timings.items()},
        "delta_writer": "delta-spark" if ctx.lake.native else "deltalake (offline)",
        "lake": str(ctx.lake.root),
        "mode": "replay" if ctx.replay_of else ("incremental" if ctx.incremental and "ingest" in stages else "full"),
        # The vocabulary file is configuration the study hash does not cover.
        "vocabulary_sha256": file_sha256(ctx.study.vocabulary_path(ctx.environ)),
        "vocabulary_overrides": [{"path": str(Path(p).resolve()), "sha256": file_sha256(Path(p))}
                                 for p in ctx.vocabulary_overrides],
        "extract_settings": dataclasses.asdict(extract_settings(ctx)),
    }
    if ctx.replay_of:
        # Written tables of a replay live in its scratch lake, removed after the run.
        manifest["replay_of"] = ctx.replay_of
    path = ctx.out / "run_manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


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
    ctx.progress(f"{what}: {time.perf_counter() - started:.1f}s")


def _run_stages(ctx: RunContext, stages: list[str]) -> None:
    for name in stages:
        ctx.progress(f"stage {name}: start" + (f" ({ctx.study.name})" if name not in LAKE_STAGES else ""))
        started = time.perf_counter()
        STAGES[name](ctx)
        ctx.timings[name] = time.perf_counter() - started
        ctx.progress(f"stage {name}: done in {ctx.timings[name]:.1f}s")


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
