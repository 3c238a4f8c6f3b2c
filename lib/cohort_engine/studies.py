"""The study definition language in words: the attrition plan a study file makes.

Pure Python (no Spark): `cohort-engine study check` prints it, the cohort stage
writes its texts into gold/attrition, the report's methods quote it. The language
itself (typed, frozen objects) is in `regimen_rules`, `population_criteria`,
`baseline_variables` and `study_config`; docs/studies.md documents it.
"""
from __future__ import annotations

import typing
from pathlib import Path

from .conf_folder import conf_dir
from .config import load_study
from .errors import ConfigError
from .population_criteria import (Advanced, Age, Biomarker, Diagnosis, EarlierTreatment, IndexInStudyPeriod, IndexLine,
                                  IndexLineNumber, NoDeathBeforeIndex, Sex)
from .publish import Gate
from .regimen_rules import RegimenRule, line_number_words
from .study_config import StudyConfig

# gold/attrition as it leaves the lake (tables/attrition.csv and the report), after
# `disclosure.suppress_attrition` has withheld what a small step would reveal.
ATTRITION_GATE = Gate("attrition", count_columns=("n_remaining", "n_excluded"))


def _and_list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _drug_words(name: str, class_names: typing.Mapping[str, str]) -> str:
    """An ingredient as itself; a class as one drug of it, by its name ("an anti-HER2 antibody")."""
    if name not in class_names:
        return name
    words = class_names[name]
    # The names of drug_classes.csv are written so that their first letter gives the article.
    return f"{'an' if words[:1].lower() in 'aeiou' else 'a'} {words}"


def regimen_words(rule: RegimenRule, class_names: typing.Mapping[str, str]) -> str:
    """A regimen rule in words: 'containing A, B and a C, without D' (class_names: drug_class → its name)."""
    words = [_drug_words(n, class_names) for n in rule.all_of]
    if rule.any_of:
        alternatives = [_drug_words(n, class_names) for n in rule.any_of]
        words.append(alternatives[0] if len(alternatives) == 1
                     else "one of " + ", ".join(alternatives[:-1]) + " or " + alternatives[-1])
    text = "containing " + _and_list(words) if words else ""
    if rule.none_of:
        text += (", " if text else "") + "without " + " or ".join(_drug_words(n, class_names) for n in rule.none_of)
    return text


def _setting_words(setting: str) -> str:
    return "a line" if setting == "any" else f"an {setting}-setting line"


def criterion_text(criterion, study: StudyConfig, class_names: typing.Mapping[str, str]) -> str:
    """The attrition text of one population criterion: its label, or the engine's words for it."""
    c = criterion
    if c.label:
        return c.label
    if isinstance(c, Diagnosis):
        return f"diagnosis with ICD-10 {' or '.join(c.icd10)}"
    if isinstance(c, Advanced):
        return {None: "advanced disease", True: "de novo advanced disease",
                False: "recurrent advanced disease"}[c.de_novo]
    if isinstance(c, Biomarker):
        if c.status == ("positive",) or c.status == ("negative",):
            return f"{c.marker}-{c.status[0]}"
        return f"{c.marker} status {' or '.join(c.status)}"
    if isinstance(c, IndexLine):
        return f"{_setting_words(study.index.setting)} {regimen_words(study.index.regimen, class_names)}"
    if isinstance(c, IndexLineNumber):
        line = study.index.line if c.line is None else c.line
        where = "" if study.index.setting == "any" else f"{study.index.setting} "
        return f"that line is {where}{line_number_words(line)}"
    if isinstance(c, Age):
        if c.max is None:
            return f"age ≥ {c.min or 0} at index"
        return f"age {c.min or 0}–{c.max} at index"
    if isinstance(c, Sex):
        return f"sex {c.equals}"
    if isinstance(c, IndexInStudyPeriod):
        return (f"index date within the study period ({study.study_period.start.isoformat()} to "
                f"{study.study_end.isoformat()})")
    if isinstance(c, EarlierTreatment):
        where = "" if c.setting == "any" else f" in the {c.setting} setting"
        window = f" within {c.window_days} days" if c.window_days is not None else ""
        what = " or ".join(_drug_words(n, class_names) for n in c.drugs)
        return (f"earlier treatment with {what}{where}{window} before the index date"
                + ("" if c.rule == "required" else ": none"))
    if isinstance(c, NoDeathBeforeIndex):
        return "no death recorded before the index date"
    raise TypeError(f"unknown criterion {c!r}")  # pragma: no cover


def criteria(study: StudyConfig, class_names: typing.Mapping[str, str]) -> list[str]:
    """The attrition texts: 'all valid patients', then one per population criterion, in order."""
    return ["all valid patients", *[criterion_text(c, study, class_names) for c in study.population]]


def index_line_words(study: StudyConfig, class_names: typing.Mapping[str, str]) -> str:
    """'the first advanced-setting line containing …, line 1'."""
    index = study.index
    where = "" if index.setting == "any" else f" {index.setting}-setting"
    return (f"the first{where} line {regimen_words(index.regimen, class_names)}, "
            f"{line_number_words(index.line)}").replace("  ", " ")


def attrition_plan(study: StudyConfig, class_names: typing.Mapping[str, str]) -> list[str]:
    """The study's plan in words: title, index line, the attrition steps, the arms."""
    out = [f"{study.name}: {study.report.title}" if study.report.title else study.name,
           f"Index line: {index_line_words(study, class_names)}.",
           f"Study period {study.study_period.start.isoformat()} to {study.study_end.isoformat()}; "
           f"data cut-off {study.data_cutoff.isoformat()}.",
           "Attrition:"]
    out += [f"  {k}. {text}" for k, text in enumerate(criteria(study, class_names), start=1)]
    if study.variables:
        out.append("Variables (gold/cohort columns): " + ", ".join(f"{v.name} ({v.kind})" for v in study.variables))
    if study.arms:
        out.append("Arms (a patient whose index regimen meets two arms is in neither):")
        out += [f"  {arm.label or arm.name}: index regimen {regimen_words(arm.regimen, class_names)}"
                for arm in study.arms]
    return out


def shipped_studies(environ: typing.Mapping[str, str] | None = None) -> list[tuple[Path, StudyConfig | str]]:
    """(file, study or the error loading it) for every study file of the configuration folder."""
    out = []
    for path in sorted((conf_dir(environ) / "studies").glob("*.yaml")):
        try:
            out.append((path, load_study(path, environ)))
        except ConfigError as exc:
            out.append((path, str(exc)))
    return out
