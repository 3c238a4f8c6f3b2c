"""A study as one typed, frozen object: its sections (period, lines, index, population,
arms, variables, facts, patterns, endpoints, safety, analysis, comparison, disclosure,
report) with
every default of the study rules, since a study is a file, never new code.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import typing
from pathlib import Path
from typing import Any

import pydantic

from .baseline_variables import Variable
from .conf_folder import conf_dir, in_conf, is_within, shipped_conf_dir
from .population_criteria import Criterion, Diagnosis
from .regimen_rules import Arm, IndexRule
from .study_values import Count, Texts, as_pairs, section


@section
class StudyPeriod:
    start: dt.date
    end: dt.date | None = None  # None = the data cut-off


@section
class LinesConfig:
    """Study rules §3. The substitution groups and the classes added without a new line
    name drugs, so they live in the study file (the seed study writes the rules' defaults)."""
    substitutions: tuple[tuple[str, ...], ...]
    additions_without_new_line: tuple[str, ...]
    regimen_window_days: Count = 28
    max_gap_days: Count = 120
    advanced_grace_days: Count = 30


@section
class PatternsConfig:
    """Study rules §7. drugs: the ingredients whose dose and schedule on the index line are
    described; empty: the ingredients the index rule's all_of names."""
    drugs: Texts = ()


@section
class FactsConfig:
    de_novo_days: Count = 90        # advanced disease within this many days of the diagnosis: de novo
    window_days_after_index: Count = 30  # biomarkers and metastatic sites read up to index + this


ENDPOINT_NAMES = ("OS", "rwPFS", "TTP", "TTF", "TTNT")  # study rules §5, in the order reported
EndpointName = typing.Literal["OS", "rwPFS", "TTP", "TTF", "TTNT"]


@section
class EndpointsConfig:
    """Study rules §5. include: the endpoints gold/endpoints holds and the analyses report."""
    include: tuple[EndpointName, ...] = ENDPOINT_NAMES
    horizon_days: Count = 1826
    pd_grace_days: Count = 14
    death_window_days: Count = 60
    discontinuation_gap_days: Count = 120
    os_censoring: typing.Literal["cutoff", "last_contact"] = "cutoff"


@section
class SafetyConfig:
    """Study rules §6. lab_toxicities: the CTCAE terms graded from labs (empty: all nine);
    recorded_terms: the CTCAE terms of recorded adverse events reported (empty: every one
    found). Recorded terms that map to no CTCAE term are always reported."""
    window_after_last_admin_days: Count = 30
    baseline_days: Count = 30
    ctcae_version: typing.Literal["5.0"] = "5.0"
    lab_toxicities: Texts = ()
    recorded_terms: Texts = ()


@section
class ReportConfig:
    """The report's title and its one-paragraph description of the study."""
    title: str = ""
    description: str = ""


@section
class AnalysisConfig:
    ci_method: typing.Literal["log-log"] = "log-log"
    rate_months: tuple[Count, ...] = (6, 12, 24, 36, 60)
    risk_table_every_months: Count = 6
    # The study's variables (or age_group) whose levels the subgroup analyses compare.
    subgroups: tuple[str, ...] = ()
    sensitivity_gap_days: tuple[Count, ...] = (60, 180)
    # The reference level of a subgroup factor in the Cox models (HR = level vs reference); a
    # factor not named here, or whose reference no patient has, takes its largest level.
    references: typing.Annotated[tuple[tuple[str, str], ...], pydantic.BeforeValidator(as_pairs)] = ()
    # The levels of a factor that enter its log-rank test and Cox model; its other levels are
    # shown, not compared. A factor not named here compares every level.
    levels_compared: typing.Annotated[tuple[tuple[str, Texts], ...], pydantic.BeforeValidator(as_pairs)] = ()


# A number ≥ 0 (a whole number or a decimal; not `true`, not "0.2").
Number = typing.Annotated[float, pydantic.Strict(), pydantic.Field(ge=0)]


@section
class ComparisonConfig:
    """The weighted comparison of a study's two arms (only a study with two arms has one).

    treated: the arm whose name is the "treated" group of the propensity score (its
    probability), of the average effect on the treated and of the matching; the other arm
    is the comparator. covariates: the study's variables in the score model.
    estimand: the primary weights (ATE: stabilised inverse probability of treatment
    weights; ATT: the treated 1, the comparator e / (1 − e)); the other estimand and the
    matching are sensitivity analyses. trim_percentiles: [low, high] percentiles of the
    score outside which patients are left out before weighting; null keeps everyone.
    caliper_sd: the matching caliper in SDs of the score's logit. balance_threshold: an
    |SMD| above it after weighting is flagged. rmst_months: the horizons of the restricted
    mean survival times compared. safety_terms: the CTCAE terms whose grade ≥ 3 risk is
    compared (besides any grade ≥ 3 event), as gold/safety_events names them."""
    treated: str
    covariates: tuple[str, ...]
    estimand: typing.Literal["ATE", "ATT"] = "ATE"
    trim_percentiles: tuple[Number, Number] | None = None
    caliper_sd: Number = 0.2
    balance_threshold: Number = 0.1
    rmst_months: tuple[Count, ...] = (24, 36)
    safety_terms: Texts = ()


@section
class DisclosureConfig:
    min_cell: Count = 5


@section
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
    comparison: ComparisonConfig | None = None
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
        if in_conf(path):
            shipped = shipped_conf_dir()
            own = self.source_path is not None and is_within(Path(self.source_path), shipped)
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
