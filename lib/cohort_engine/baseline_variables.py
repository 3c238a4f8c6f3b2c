"""A study's baseline variables: one gold/cohort column each (named `name`), read at the
index date, which Table 1, the subgroups and the patterns describe.
"""
from __future__ import annotations

import typing

import pydantic

from .lake_tables import GOLD_COHORT
from .regimen_rules import RegimenRule
from .study_values import Count, StrictFlag, Texts, as_pairs, section, tagged


@tagged("age")
class AgeVariable:
    """Age at the index date in whole years (an int)."""
    name: str


@tagged("age_bands")
class AgeBandsVariable:
    """Age bands cut at `cuts` (ascending): cuts [50, 65] give '<50', '50-64', '>=65'."""
    name: str
    cuts: tuple[Count, ...]

    def bands(self) -> list[tuple[int, int | None, str]]:
        """(low, high exclusive or None, text) per band, young to old."""
        edges = [0, *self.cuts]
        out = [(lo, hi, f"{lo}-{hi - 1}") for lo, hi in zip(edges[1:-1], edges[2:])]
        return [(0, self.cuts[0], f"<{self.cuts[0]}"), *out, (self.cuts[-1], None, f">={self.cuts[-1]}")]


@tagged("sex")
class SexVariable:
    name: str


@tagged("biomarker")
class BiomarkerVariable:
    """positive / negative / unknown, read as the biomarker criterion reads it."""
    name: str
    marker: typing.Literal["HER2", "ER", "PR", "HR"]


@tagged("de_novo")
class DeNovoVariable:
    """True for de novo advanced disease, false for recurrent, null when unknown."""
    name: str


@tagged("metastatic_site")
class MetastaticSiteVariable:
    """A diagnosis with one of `icd10` dated up to index + facts.window_days_after_index.
    only: and no other distant metastasis (C78, C79) by then (bone-only: [C79.5], only)."""
    name: str
    icd10: Texts
    only: StrictFlag = False


@tagged("earlier_treatment")
class EarlierTreatmentVariable:
    """An exposure to one of `drugs` before the index date, in `setting`, within `window_days`
    (as the earlier_treatment criterion reads it)."""
    name: str
    drugs: Texts
    setting: typing.Literal["early", "advanced", "any"] = "any"
    window_days: Count | None = None


@tagged("hospital_tier")
class HospitalTierVariable:
    """The tier of the hospital of the index line's first prescription on the index date."""
    name: str


PLACES = ("hospital", "residence")


@tagged("province")
class ProvinceVariable:
    """The province of that hospital (`of: hospital`) or of the patient's residence."""
    name: str
    of: typing.Literal["hospital", "residence"] = "hospital"


@tagged("region")
class RegionVariable:
    """The region whose list holds the province (of the hospital or of the residence):
    `regions` maps a region's name to its provinces; a province in none gives `other`,
    a missing province null."""
    name: str
    regions: typing.Annotated[tuple[tuple[str, Texts], ...], pydantic.BeforeValidator(as_pairs)]
    of: typing.Literal["hospital", "residence"] = "hospital"
    other: str = "other"


@tagged("index_year")
class IndexYearVariable:
    """The calendar year of the index date."""
    name: str


@section
class RegimenLabel:
    label: str
    regimen: RegimenRule


@tagged("regimen_label")
class RegimenLabelVariable:
    """The `label` of the first of `labels` whose rule the index regimen meets; null when none does."""
    name: str
    labels: tuple[RegimenLabel, ...]


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
COHORT_KEY_COLUMNS = GOLD_COHORT.column_names
# Subgroups the analysis derives itself (from the age variable): allowed without a variable.
DERIVED_SUBGROUPS = ("age_group",)
