"""A study's population criteria: one attrition step each, in the order written.

`label` is the step's text in the attrition table; when absent, the engine words the
criterion (studies.attrition_plan).
"""
from __future__ import annotations

import typing

import pydantic

from .regimen_rules import LineSpec
from .study_values import Count, StrictFlag, Texts, listed, tagged

MARKERS = ("HER2", "ER", "PR", "HR")
MARKER_STATUSES = ("positive", "negative", "unknown")


@tagged("diagnosis")
class Diagnosis:
    icd10: Texts


@tagged("advanced")
class Advanced:
    de_novo: StrictFlag | None = None  # true: de novo only; false: recurrent only


@tagged("biomarker")
class Biomarker:
    marker: typing.Literal["HER2", "ER", "PR", "HR"]
    status: typing.Annotated[tuple[typing.Literal["positive", "negative", "unknown"], ...],
                             pydantic.BeforeValidator(listed)]


@tagged("index_line")
class IndexLine:
    """The patient has an index line (the study's index rule)."""


@tagged("index_line_number")
class IndexLineNumber:
    line: LineSpec | None = None  # None: the index rule's `line`


@tagged("age")
class Age:
    min: Count | None = None
    max: Count | None = None


@tagged("sex")
class Sex:
    equals: typing.Literal["F", "M"]


@tagged("index_in_study_period")
class IndexInStudyPeriod:
    """The index date falls in the study period."""


@tagged("earlier_treatment")
class EarlierTreatment:
    """An exposure to one of `drugs` (ingredients or classes) before the index date,
    in `setting` (early: before advanced disease, as §3.1 splits the settings) and,
    when `window_days` is set, within that many days before the index date."""
    drugs: Texts
    rule: typing.Literal["required", "excluded"]
    setting: typing.Literal["early", "advanced", "any"] = "any"
    window_days: Count | None = None


@tagged("no_death_before_index")
class NoDeathBeforeIndex:
    """No death recorded before the index date."""


Criterion = typing.Annotated[
    typing.Union[Diagnosis, Advanced, Biomarker, IndexLine, IndexLineNumber, Age, Sex, IndexInStudyPeriod,
                 EarlierTreatment, NoDeathBeforeIndex],
    pydantic.Field(discriminator="kind")]
CRITERION_KINDS = ("diagnosis", "advanced", "biomarker", "index_line", "index_line_number", "age", "sex",
                   "index_in_study_period", "earlier_treatment", "no_death_before_index")
