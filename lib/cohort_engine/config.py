"""Study configuration: a YAML file validated into typed, frozen objects.

Every default of the study rules lives in the YAML, so a study (or a sensitivity
analysis) is a new file, never new code. Loading is strict: an unknown key, a
missing key or a value of the wrong type is one `ConfigError` naming the key path.
"""
from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
import typing
from pathlib import Path
from typing import Any

import pydantic
import yaml

from .errors import UserError

# The repository checkout this module sits in (meaningful in a source tree only).
REPO_ROOT = Path(__file__).resolve().parents[2]
# The study used when none is given: `studies/<this>.yaml` of the configuration.
DEFAULT_STUDY = "her2_paclitaxel_liposome"


class ConfigError(UserError, ValueError):
    """A configuration file that cannot be used; the message names the key."""


# A whole number ≥ 0 (not `true`, not "120"); a strict true/false.
Count = typing.Annotated[int, pydantic.Strict(), pydantic.Field(ge=0)]
StrictFlag = typing.Annotated[bool, pydantic.Strict()]


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _pairs(value: Any) -> Any:
    # A mapping written in YAML, kept as (key, value) pairs so the study stays hashable.
    return list(value.items()) if isinstance(value, dict) else value


# A list that may be written as one value: `status: positive` or `status: [positive, unknown]`.
Texts = typing.Annotated[tuple[str, ...], pydantic.BeforeValidator(_listed)]


@functools.lru_cache(maxsize=None)
def shipped_conf_dir() -> Path:
    """The configuration shipped inside the package (`cohort_engine/conf/`): studies,
    vocabulary, Spark profiles, read with `importlib.resources`.

    Installed from a wheel or in editable mode it is a folder on disk, returned as is.
    Imported from a zip (`spark-submit --py-files`) it is copied once to a temporary
    folder, removed at exit, so that every caller gets a real path.
    """
    root = importlib.resources.files(__package__ or "cohort_engine").joinpath("conf")
    if isinstance(root, Path):
        return root
    copy = Path(tempfile.mkdtemp(prefix="cohort-engine-conf-"))
    atexit.register(shutil.rmtree, copy, True)
    if root.is_dir():  # a zip of the modules alone has none: lookups then name the missing file
        _copy_resources(root, copy)
    return copy


def _copy_resources(source, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_dir():
            _copy_resources(item, dest / item.name)
        elif item.is_file():
            (dest / item.name).write_bytes(item.read_bytes())


def conf_dir(environ: typing.Mapping[str, str] | None = None) -> Path:
    """The configuration folder: `COHORT_ENGINE_CONF_DIR` (a user's whole `conf/`
    folder: studies/, vocabulary/, spark/), else the one shipped in the package."""
    environ = os.environ if environ is None else environ
    override = environ.get("COHORT_ENGINE_CONF_DIR")
    return Path(override) if override else shipped_conf_dir()


def default_study_path(environ: typing.Mapping[str, str] | None = None) -> Path:
    return conf_dir(environ) / "studies" / f"{DEFAULT_STUDY}.yaml"


def _in_conf(path: Path) -> bool:
    """Whether a relative path is written `conf/...` (the configuration folder)."""
    return not path.is_absolute() and len(path.parts) > 1 and path.parts[0] == "conf"


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (OSError, ValueError):
        return False


def resolve_study_path(path: str | Path, environ: typing.Mapping[str, str] | None = None) -> Path:
    """The study file a user's `--study` names.

    The path as given wins when it exists. A relative `conf/...` path that does not
    exist from the current folder (an installed wheel, a Databricks task) means the
    same file of the configuration folder: `conf/studies/her2_paclitaxel_liposome.yaml`
    is the shipped study, or the one under `COHORT_ENGINE_CONF_DIR` when that is set.
    """
    path = Path(path)
    if path.exists() or not _in_conf(path):
        return path
    candidate = conf_dir(environ).joinpath(*path.parts[1:])
    return candidate if candidate.exists() else path


@dataclasses.dataclass(frozen=True)
class StudyPeriod:
    start: dt.date
    end: dt.date | None = None  # None = the data cut-off


@dataclasses.dataclass(frozen=True)
class LinesConfig:
    """Study rules §3. The substitution groups and the classes added without a new line
    name drugs, so they live in the study file (the seed study writes the rules' defaults)."""
    substitutions: tuple[tuple[str, ...], ...]
    additions_without_new_line: tuple[str, ...]
    regimen_window_days: Count = 28
    max_gap_days: Count = 120
    advanced_grace_days: Count = 30


# -- the study definition language: index, population, arms (docs/studies.md) ------

SETTINGS = ("early", "advanced", "any")
MARKERS = ("HER2", "ER", "PR", "HR")
MARKER_STATUSES = ("positive", "negative", "unknown")


@dataclasses.dataclass(frozen=True)
class AtLeast:
    """A line number N or later: `line: {at_least: 2}`."""
    at_least: Count


# A line number: N, `any`, or {at_least: N}.
LineSpec = typing.Union[Count, typing.Literal["any"], AtLeast]


def line_number_words(line: LineSpec) -> str:
    if line == "any":
        return "any line"
    if isinstance(line, AtLeast):
        return f"line {line.at_least} or later"
    return f"line {line}"


@dataclasses.dataclass(frozen=True)
class RegimenRule:
    """Rules over a line's regimen. Each name is an ingredient or a drug class of the
    vocabulary. all_of: every one is in the regimen (a class: one of its ingredients);
    any_of: at least one is (when not empty); none_of: none is."""
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return self.all_of + self.any_of + self.none_of


@dataclasses.dataclass(frozen=True)
class IndexRule:
    """The index line: the first line in `setting` whose regimen meets `regimen`,
    preferring one whose number meets `line` (see cohort.candidate_lines)."""
    regimen: RegimenRule
    setting: typing.Literal["early", "advanced", "any"] = "advanced"
    line: LineSpec = 1


# Population criteria: one attrition step each, in the order written. `label` is the
# step's text in the attrition table; when absent, the engine words the criterion.

@dataclasses.dataclass(frozen=True)
class Diagnosis:
    icd10: Texts
    kind: typing.Literal["diagnosis"] = "diagnosis"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class Advanced:
    de_novo: StrictFlag | None = None  # true: de novo only; false: recurrent only
    kind: typing.Literal["advanced"] = "advanced"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class Biomarker:
    marker: typing.Literal["HER2", "ER", "PR", "HR"]
    status: typing.Annotated[tuple[typing.Literal["positive", "negative", "unknown"], ...],
                             pydantic.BeforeValidator(_listed)]
    kind: typing.Literal["biomarker"] = "biomarker"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class IndexLine:
    kind: typing.Literal["index_line"] = "index_line"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class IndexLineNumber:
    line: LineSpec | None = None  # None: the index rule's `line`
    kind: typing.Literal["index_line_number"] = "index_line_number"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class Age:
    min: Count | None = None
    max: Count | None = None
    kind: typing.Literal["age"] = "age"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class Sex:
    equals: typing.Literal["F", "M"]
    kind: typing.Literal["sex"] = "sex"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class IndexInStudyPeriod:
    kind: typing.Literal["index_in_study_period"] = "index_in_study_period"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class EarlierTreatment:
    """An exposure to one of `drugs` (ingredients or classes) before the index date,
    in `setting` (early: before advanced disease, as §3.1 splits the settings) and,
    when `window_days` is set, within that many days before the index date."""
    drugs: Texts
    rule: typing.Literal["required", "excluded"]
    setting: typing.Literal["early", "advanced", "any"] = "any"
    window_days: Count | None = None
    kind: typing.Literal["earlier_treatment"] = "earlier_treatment"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class NoDeathBeforeIndex:
    kind: typing.Literal["no_death_before_index"] = "no_death_before_index"
    label: str | None = None


Criterion = typing.Annotated[
    typing.Union[Diagnosis, Advanced, Biomarker, IndexLine, IndexLineNumber, Age, Sex, IndexInStudyPeriod,
                 EarlierTreatment, NoDeathBeforeIndex],
    pydantic.Field(discriminator="kind")]
CRITERION_KINDS = ("diagnosis", "advanced", "biomarker", "index_line", "index_line_number", "age", "sex",
                   "index_in_study_period", "earlier_treatment", "no_death_before_index")


@dataclasses.dataclass(frozen=True)
class Arm:
    """A named regimen rule over the index line: a patient whose index regimen meets it is in the arm."""
    name: str
    regimen: RegimenRule
    label: str | None = None


# Baseline variables: one gold/cohort column each (named `name`), read at the index date.

@dataclasses.dataclass(frozen=True)
class AgeVariable:
    """Age at the index date in whole years (an int)."""
    name: str
    kind: typing.Literal["age"] = "age"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class AgeBandsVariable:
    """Age bands cut at `cuts` (ascending): cuts [50, 65] give '<50', '50-64', '>=65'."""
    name: str
    cuts: tuple[Count, ...]
    kind: typing.Literal["age_bands"] = "age_bands"
    label: str | None = None

    def bands(self) -> list[tuple[int, int | None, str]]:
        """(low, high exclusive or None, text) per band, young to old."""
        edges = [0, *self.cuts]
        out = [(lo, hi, f"{lo}-{hi - 1}") for lo, hi in zip(edges[1:-1], edges[2:])]
        return [(0, self.cuts[0], f"<{self.cuts[0]}"), *out, (self.cuts[-1], None, f">={self.cuts[-1]}")]


@dataclasses.dataclass(frozen=True)
class SexVariable:
    name: str
    kind: typing.Literal["sex"] = "sex"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class BiomarkerVariable:
    """positive / negative / unknown, read as the biomarker criterion reads it."""
    name: str
    marker: typing.Literal["HER2", "ER", "PR", "HR"]
    kind: typing.Literal["biomarker"] = "biomarker"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class DeNovoVariable:
    """True for de novo advanced disease, false for recurrent, null when unknown."""
    name: str
    kind: typing.Literal["de_novo"] = "de_novo"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class MetastaticSiteVariable:
    """A diagnosis with one of `icd10` dated up to index + facts.window_days_after_index.
    only: and no other distant metastasis (C78, C79) by then (bone-only: [C79.5], only)."""
    name: str
    icd10: Texts
    only: StrictFlag = False
    kind: typing.Literal["metastatic_site"] = "metastatic_site"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class EarlierTreatmentVariable:
    """An exposure to one of `drugs` before the index date, in `setting`, within `window_days`
    (as the earlier_treatment criterion reads it)."""
    name: str
    drugs: Texts
    setting: typing.Literal["early", "advanced", "any"] = "any"
    window_days: Count | None = None
    kind: typing.Literal["earlier_treatment"] = "earlier_treatment"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class HospitalTierVariable:
    """The tier of the hospital of the index line's first prescription on the index date."""
    name: str
    kind: typing.Literal["hospital_tier"] = "hospital_tier"
    label: str | None = None


PLACES = ("hospital", "residence")


@dataclasses.dataclass(frozen=True)
class ProvinceVariable:
    """The province of that hospital (`of: hospital`) or of the patient's residence."""
    name: str
    of: typing.Literal["hospital", "residence"] = "hospital"
    kind: typing.Literal["province"] = "province"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class RegionVariable:
    """The region whose list holds the province (of the hospital or of the residence):
    `regions` maps a region's name to its provinces; a province in none gives `other`,
    a missing province null."""
    name: str
    regions: typing.Annotated[tuple[tuple[str, Texts], ...], pydantic.BeforeValidator(_pairs)]
    of: typing.Literal["hospital", "residence"] = "hospital"
    other: str = "other"
    kind: typing.Literal["region"] = "region"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class IndexYearVariable:
    name: str
    kind: typing.Literal["index_year"] = "index_year"
    label: str | None = None


@dataclasses.dataclass(frozen=True)
class RegimenLabel:
    label: str
    regimen: RegimenRule


@dataclasses.dataclass(frozen=True)
class RegimenLabelVariable:
    """The `label` of the first of `labels` whose rule the index regimen meets; null when none does."""
    name: str
    labels: tuple[RegimenLabel, ...]
    kind: typing.Literal["regimen_label"] = "regimen_label"
    label: str | None = None


Variable = typing.Annotated[
    typing.Union[AgeVariable, AgeBandsVariable, SexVariable, BiomarkerVariable, DeNovoVariable,
                 MetastaticSiteVariable, EarlierTreatmentVariable, HospitalTierVariable, ProvinceVariable,
                 RegionVariable, IndexYearVariable, RegimenLabelVariable],
    pydantic.Field(discriminator="kind")]
def variable_words(v) -> str:
    """A variable in the report's words: its label, else its name with spaces ("hospital tier")."""
    return v.label or v.name.replace("_", " ")


VARIABLE_KINDS = ("age", "age_bands", "sex", "biomarker", "de_novo", "metastatic_site", "earlier_treatment",
                  "hospital_tier", "province", "region", "index_year", "regimen_label")
# gold/cohort's own columns: a variable may not take their names.
COHORT_KEY_COLUMNS = ("patient_id", "index_date", "regimen", "arm", "index_setting", "index_line_number")
# Subgroups the analysis derives itself (from the age variable): allowed without a variable.
DERIVED_SUBGROUPS = ("age_group",)


@dataclasses.dataclass(frozen=True)
class PatternsConfig:
    """Study rules §7. drugs: the ingredients whose dose and schedule on the index line are
    described; empty: the ingredients the index rule's all_of names."""
    drugs: Texts = ()


@dataclasses.dataclass(frozen=True)
class FactsConfig:
    de_novo_days: Count = 90        # advanced disease within this many days of the diagnosis: de novo
    window_days_after_index: Count = 30  # biomarkers and metastatic sites read up to index + this


ENDPOINT_NAMES = ("OS", "rwPFS", "TTP", "TTF", "TTNT")  # study rules §5, in the order reported
EndpointName = typing.Literal["OS", "rwPFS", "TTP", "TTF", "TTNT"]


@dataclasses.dataclass(frozen=True)
class EndpointsConfig:
    """Study rules §5. include: the endpoints gold/endpoints holds and the analyses report."""
    include: tuple[EndpointName, ...] = ENDPOINT_NAMES
    horizon_days: Count = 1826
    pd_grace_days: Count = 14
    death_window_days: Count = 60
    discontinuation_gap_days: Count = 120
    os_censoring: typing.Literal["cutoff", "last_contact"] = "cutoff"


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Study rules §6. lab_toxicities: the CTCAE terms graded from labs (empty: all nine);
    recorded_terms: the CTCAE terms of recorded adverse events reported (empty: every one
    found). Recorded terms that map to no CTCAE term are always reported."""
    window_after_last_admin_days: Count = 30
    baseline_days: Count = 30
    ctcae_version: typing.Literal["5.0"] = "5.0"
    lab_toxicities: Texts = ()
    recorded_terms: Texts = ()


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """The report's title and its one-paragraph description of the study."""
    title: str = ""
    description: str = ""


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    ci_method: typing.Literal["log-log"] = "log-log"
    rate_months: tuple[Count, ...] = (6, 12, 24, 36, 60)
    risk_table_every_months: Count = 6
    # The study's variables (or age_group) whose levels the subgroup analyses compare.
    subgroups: tuple[str, ...] = ()
    sensitivity_gap_days: tuple[Count, ...] = (60, 180)
    # The reference level of a subgroup factor in the Cox models (HR = level vs reference); a
    # factor not named here, or whose reference no patient has, takes its largest level.
    references: typing.Annotated[tuple[tuple[str, str], ...], pydantic.BeforeValidator(_pairs)] = ()
    # The levels of a factor that enter its log-rank test and Cox model; its other levels are
    # shown, not compared. A factor not named here compares every level.
    levels_compared: typing.Annotated[tuple[tuple[str, Texts], ...], pydantic.BeforeValidator(_pairs)] = ()


@dataclasses.dataclass(frozen=True)
class DisclosureConfig:
    min_cell: Count = 5


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    name: str
    data_cutoff: dt.date
    study_period: StudyPeriod
    lines: LinesConfig
    index: IndexRule
    population: tuple[Criterion, ...]
    report: ReportConfig = ReportConfig()
    arms: tuple[Arm, ...] = ()
    variables: tuple[Variable, ...] = ()
    facts: FactsConfig = FactsConfig()
    patterns: PatternsConfig = PatternsConfig()
    vocabulary: str = "conf/vocabulary/drugs.csv"
    endpoints: EndpointsConfig = EndpointsConfig()
    safety: SafetyConfig = SafetyConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    disclosure: DisclosureConfig = DisclosureConfig()
    source_path: str | None = dataclasses.field(default=None, compare=False)

    @property
    def study_end(self) -> dt.date:
        return self.study_period.end or self.data_cutoff

    def pattern_drugs(self, ingredients: typing.Collection[str]) -> tuple[str, ...]:
        """The ingredients patterns describe: `patterns.drugs`, else the index rule's all_of
        names that are ingredients (of `ingredients`, the vocabulary's)."""
        return self.patterns.drugs or tuple(n for n in self.index.regimen.all_of if n in ingredients)

    @property
    def diagnosis_icd10(self) -> tuple[str, ...]:
        """The ICD-10 prefixes of the study's cancer: its diagnosis criterion's, else C50."""
        found = [c.icd10 for c in self.population if isinstance(c, Diagnosis)]
        return found[0] if found else ("C50",)

    def criteria(self, kind: type) -> list:
        return [c for c in self.population if isinstance(c, kind)]

    def with_cutoff(self, cutoff: dt.date | None) -> "StudyConfig":
        return self if cutoff is None else dataclasses.replace(self, data_cutoff=cutoff)

    def vocabulary_path(self, environ: typing.Mapping[str, str] | None = None) -> Path:
        """The drug vocabulary file the study names.

        An absolute path is used as is; `conf/...` is the configuration folder's file:
        the shipped one for a study shipped in the package, else `conf_dir()` (the
        shipped configuration, or `COHORT_ENGINE_CONF_DIR`); any other relative path
        is relative to the study file (to the current folder for a study that has no
        file, such as one read back from a run manifest).
        """
        path = Path(self.vocabulary)
        if path.is_absolute():
            return path
        if _in_conf(path):
            shipped = shipped_conf_dir()
            own = self.source_path is not None and _is_within(Path(self.source_path), shipped)
            return (shipped if own else conf_dir(environ)).joinpath(*path.parts[1:])
        base = Path(self.source_path).parent if self.source_path else Path.cwd()
        return base / path

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name))
                        for f in dataclasses.fields(value) if f.name != "source_path"}
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dt.date):
                return value.isoformat()
            return value
        return plain(self)

    def config_hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _forbid_unknown_keys(*classes: type) -> None:
    # pydantic reads a dataclass's own config: unknown keys are errors, at every level.
    for cls in classes:
        cls.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")


_forbid_unknown_keys(StudyPeriod, LinesConfig, PatternsConfig, AtLeast, RegimenRule, IndexRule, Diagnosis, Advanced, Biomarker,
                     IndexLine, IndexLineNumber, Age, Sex, IndexInStudyPeriod, EarlierTreatment,
                     NoDeathBeforeIndex, Arm, AgeVariable, AgeBandsVariable, SexVariable, BiomarkerVariable,
                     DeNovoVariable, MetastaticSiteVariable, EarlierTreatmentVariable, HospitalTierVariable,
                     ProvinceVariable, RegionVariable, IndexYearVariable, RegimenLabel, RegimenLabelVariable,
                     FactsConfig, EndpointsConfig, SafetyConfig, ReportConfig, AnalysisConfig, DisclosureConfig,
                     StudyConfig)
_STUDY = None


def _study_adapter() -> pydantic.TypeAdapter:
    global _STUDY
    if _STUDY is None:
        _STUDY = pydantic.TypeAdapter(StudyConfig)
    return _STUDY


def _key_path(loc: typing.Sequence, data: Any) -> str:
    """`population[2].min` from pydantic's location, walking the data to drop union tags."""
    out, here = "", data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            here = here[part] if isinstance(here, (list, tuple)) and part < len(here) else None
            continue
        if isinstance(here, dict) and part not in here and here.get("kind") == part:
            continue  # the tag of a discriminated union (a criterion's kind)
        if part.startswith(("function-", "tagged-union", "union[", "literal[", "int", "lax-", "strict-")) \
                or part in ("is-instance[AtLeast]",):
            continue
        out += f".{part}" if out else part
        here = here.get(part) if isinstance(here, dict) else None
    return out or "the study file"


_LINE_BRANCHES = ("constrained-int", "literal['any']", "AtLeast")


def _message(error: dict, data: Any) -> str:
    loc = list(error["loc"])
    branch = next((i for i, part in enumerate(loc) if part in _LINE_BRANCHES), None)
    if branch is not None:  # a line number that is none of its three forms
        return (f"{_key_path(loc[:branch], data)}: expected a line number N, any, or {{at_least: N}}, "
                f"got {error['input']!r}")
    key = _key_path(loc, data)
    kind = error["type"]
    if kind == "missing":
        return f"{key}: required key is missing"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"{key}: unknown key"
    kinds = ", ".join(VARIABLE_KINDS if key.startswith("variables") else CRITERION_KINDS)
    if kind == "union_tag_invalid":
        return f"{key}.kind: unknown kind {error['ctx']['tag']!r} (one of: {kinds})"
    if kind == "union_tag_not_found":
        return f"{key}: has no kind (one of: {kinds})"
    words = _WORDS.get(kind)
    if words is None and kind == "literal_error":
        words = f"must be one of {error['ctx']['expected']}"
    if words is None:
        words = error["msg"][0].lower() + error["msg"][1:]
    if kind == "string_type" and isinstance(error["input"], bool):
        # YAML reads a bare no/yes/off/on as false/true: a level "no" must be quoted.
        return f"{key}: expected text, got {error['input']!r} (YAML reads a bare no or yes as false or true: write \"no\")"
    return f"{key}: {words}, got {error['input']!r}"


_WORDS = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float"), "expected a whole number"),
    "greater_than_equal": "must not be negative",
    **dict.fromkeys(("date_type", "date_parsing", "date_from_datetime_parsing", "date_from_datetime_inexact"),
                    "expected a date YYYY-MM-DD"),
    **dict.fromkeys(("bool_type", "bool_parsing"), "expected true or false"),
    **dict.fromkeys(("tuple_type", "list_type"), "expected a list"),
    "string_type": "expected text",
    **dict.fromkeys(("dataclass_type", "dataclass_args_type", "dict_type"), "expected a mapping of keys"),
}


def study_from_dict(data: Any, source_path: str | None = None) -> StudyConfig:
    """A study from its parsed YAML; ConfigError naming the key path of the first problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"the study file: expected a mapping of keys, got {data!r}")
    try:
        study = _study_adapter().validate_python(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_message(exc.errors()[0], data)) from None
    _check_rules(study)
    return dataclasses.replace(study, source_path=source_path)


def _check_rules(study: StudyConfig) -> None:
    if study.study_period.end and study.study_period.end < study.study_period.start:
        raise ConfigError("study_period.end: is before study_period.start")
    if study.disclosure.min_cell < 1:
        raise ConfigError("disclosure.min_cell: must be at least 1")
    if not study.index.regimen.all_of and not study.index.regimen.any_of:
        raise ConfigError("index.regimen: names no drug the index line must contain (all_of or any_of)")
    kinds = [c.kind for c in study.population]
    if "index_line" not in kinds:
        raise ConfigError("population: has no index_line criterion (every study needs its index line)")
    for i, c in enumerate(study.population):
        if c.kind in kinds[:i] and c.kind in ("diagnosis", "index_line", "index_line_number"):
            raise ConfigError(f"population[{i}]: a second {c.kind} criterion")
        if isinstance(c, Age) and c.min is not None and c.max is not None and c.max < c.min:
            raise ConfigError(f"population[{i}].max: is below min")
        if isinstance(c, Biomarker) and not c.status:
            raise ConfigError(f"population[{i}].status: names no status")
        if isinstance(c, EarlierTreatment) and not c.drugs:
            raise ConfigError(f"population[{i}].drugs: names no drug")
        if isinstance(c, Diagnosis) and not c.icd10:
            raise ConfigError(f"population[{i}].icd10: names no code")
    first_index = kinds.index("index_line")
    for i, kind in enumerate(kinds[:first_index]):
        if kind in ("index_line_number", "age", "index_in_study_period", "earlier_treatment",
                    "no_death_before_index"):
            raise ConfigError(f"population[{i}]: {kind} reads the index line, so it comes after index_line")
    variables = [v.name for v in study.variables]
    for i, v in enumerate(study.variables):
        if not v.name.strip():
            raise ConfigError(f"variables[{i}].name: is empty")
        if v.name in variables[:i]:
            raise ConfigError(f"variables[{i}].name: {v.name!r} names two variables")
        if v.name in COHORT_KEY_COLUMNS:
            raise ConfigError(f"variables[{i}].name: {v.name!r} is a column gold/cohort always has")
        if isinstance(v, AgeBandsVariable) and (not v.cuts or list(v.cuts) != sorted(set(v.cuts))):
            raise ConfigError(f"variables[{i}].cuts: must be ascending whole numbers, got {list(v.cuts)}")
        if isinstance(v, RegimenLabelVariable) and not v.labels:
            raise ConfigError(f"variables[{i}].labels: names no label")
        if isinstance(v, (MetastaticSiteVariable, EarlierTreatmentVariable)) and not (
                v.icd10 if isinstance(v, MetastaticSiteVariable) else v.drugs):
            raise ConfigError(f"variables[{i}]: names no {'code' if isinstance(v, MetastaticSiteVariable) else 'drug'}")
        if isinstance(v, RegionVariable):
            _check_regions(v, f"variables[{i}]")
    _check_endpoints_and_safety(study)
    for i, factor in enumerate(study.analysis.subgroups):
        if factor not in variables and factor not in DERIVED_SUBGROUPS:
            raise ConfigError(f"analysis.subgroups[{i}]: {factor!r} is not a variable of the study "
                              f"(variables: {', '.join(variables) or 'none'})")
    for key in ("references", "levels_compared"):
        named = [factor for factor, _ in getattr(study.analysis, key)]
        for factor in named:
            if factor not in study.analysis.subgroups:
                raise ConfigError(f"analysis.{key}: {factor!r} is not one of analysis.subgroups "
                                  f"({', '.join(study.analysis.subgroups) or 'none'})")
            if named.count(factor) > 1:
                raise ConfigError(f"analysis.{key}: {factor!r} is named twice")
    names = [a.name for a in study.arms]
    for i, name in enumerate(names):
        if not name.strip():
            raise ConfigError(f"arms[{i}].name: is empty")
        if name in names[:i]:
            raise ConfigError(f"arms[{i}].name: {name!r} names two arms")


def _check_regions(v: RegionVariable, key: str) -> None:
    if not v.regions:
        raise ConfigError(f"{key}.regions: names no region")
    seen: dict[str, str] = {}
    for region, provinces in v.regions:
        if not provinces:
            raise ConfigError(f"{key}.regions.{region}: names no province")
        for province in provinces:
            if province in seen:
                raise ConfigError(f"{key}.regions.{region}: {province!r} is also in {seen[province]!r}")
            seen[province] = region


def _check_endpoints_and_safety(study: StudyConfig) -> None:
    from .ctcae import AE_TERMS, TERMS  # the CTCAE v5 terms: general knowledge, not a study's
    include = study.endpoints.include
    if not include:
        raise ConfigError("endpoints.include: names no endpoint")
    for j, name in enumerate(include):
        if name in include[:j]:
            raise ConfigError(f"endpoints.include[{j}]: {name!r} is named twice")
    for key, names, known, what in (
            ("lab_toxicities", study.safety.lab_toxicities, list(TERMS.values()), "a lab toxicity the engine grades"),
            ("recorded_terms", study.safety.recorded_terms, list(AE_TERMS), "a CTCAE term recorded events map to")):
        for j, name in enumerate(names):
            if name in names[:j]:
                raise ConfigError(f"safety.{key}[{j}]: {name!r} is named twice")
            if name not in known:
                near = difflib_near(name, known)
                hint = f" (did you mean {near!r}?)" if near else f" (one of: {', '.join(known)})"
                raise ConfigError(f"safety.{key}[{j}]: {name!r} is not {what}{hint}")


def drug_names(study: StudyConfig) -> list[tuple[str, str]]:
    """(key path, name) of every ingredient or class the study names."""
    out = [(f"index.regimen.{rule}[{j}]", name) for rule in ("all_of", "any_of", "none_of")
           for j, name in enumerate(getattr(study.index.regimen, rule))]
    for i, c in enumerate(study.population):
        if isinstance(c, EarlierTreatment):
            out += [(f"population[{i}].drugs[{j}]", name) for j, name in enumerate(c.drugs)]
    for i, arm in enumerate(study.arms):
        out += [(f"arms[{i}].regimen.{rule}[{j}]", name) for rule in ("all_of", "any_of", "none_of")
                for j, name in enumerate(getattr(arm.regimen, rule))]
    for i, v in enumerate(study.variables):
        if isinstance(v, EarlierTreatmentVariable):
            out += [(f"variables[{i}].drugs[{j}]", name) for j, name in enumerate(v.drugs)]
        if isinstance(v, RegimenLabelVariable):
            out += [(f"variables[{i}].labels[{k}].regimen.{rule}[{j}]", name)
                    for k, lab in enumerate(v.labels) for rule in ("all_of", "any_of", "none_of")
                    for j, name in enumerate(getattr(lab.regimen, rule))]
    out += [(f"patterns.drugs[{j}]", name) for j, name in enumerate(study.patterns.drugs)]
    for i, group in enumerate(study.lines.substitutions):
        out += [(f"lines.substitutions[{i}][{j}]", name) for j, name in enumerate(group)]
    out += [(f"lines.additions_without_new_line[{j}]", name)
            for j, name in enumerate(study.lines.additions_without_new_line)]
    return out


def check_drug_names(study: StudyConfig, ingredients: typing.Iterable[str], classes: typing.Iterable[str]) -> None:
    """ConfigError naming the key path of the first drug name that is neither an ingredient
    nor a class of the vocabulary (or is both)."""
    ingredients, classes = set(ingredients), set(classes)
    for j, name in enumerate(study.patterns.drugs):
        if name in classes and name not in ingredients:
            raise ConfigError(f"patterns.drugs[{j}]: {name!r} is a class; dose and schedule are described per "
                              "ingredient (name its ingredients)")
    for key, name in drug_names(study):
        if name in ingredients and name in classes:
            raise ConfigError(f"{key}: {name!r} is both an ingredient and a class of the vocabulary")
        if name not in ingredients and name not in classes:
            near = difflib_near(name, sorted(ingredients | classes))
            hint = f" (did you mean {near!r}?)" if near else ""
            raise ConfigError(f"{key}: {name!r} is neither an ingredient nor a class of the vocabulary{hint}")


def difflib_near(name: str, choices: list[str]) -> str | None:
    from rapidfuzz import process
    found = process.extractOne(name, choices, score_cutoff=80)
    return found[0] if found else None


def load_study(path: str | Path, environ: typing.Mapping[str, str] | None = None,
               check_names: bool = True) -> StudyConfig:
    """A study file; a relative `conf/...` path missing here is the configuration's
    file (`resolve_study_path`)."""
    path = resolve_study_path(path, environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        study = study_from_dict(data, source_path=str(path))
        if check_names:
            from .vocabulary import load_vocabulary
            vocab = load_vocabulary(study.vocabulary_path(environ))
            check_drug_names(study, vocab["ingredient"], vocab["drug_class"])
        return study
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
