"""Loading a study: a YAML file validated into a `StudyConfig` (study_config).

Every default of the study rules lives in the YAML, so a study (or a sensitivity
analysis) is a new file, never new code. Loading is strict: an unknown key, a
missing key or a value of the wrong type is one `ConfigError` naming the key path;
so are the rules pydantic cannot check (a study without an index line, two variables
of one name, a drug name the vocabulary does not know).
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pydantic
import yaml

from .baseline_variables import (COHORT_KEY_COLUMNS, DERIVED_SUBGROUPS, VARIABLE_KINDS, AgeBandsVariable,
                                 EarlierTreatmentVariable, MetastaticSiteVariable, RegimenLabelVariable, RegionVariable)
from .conf_folder import resolve_study_path
from .errors import ConfigError
from .population_criteria import CRITERION_KINDS, Age, Biomarker, Diagnosis, EarlierTreatment
from .study_config import StudyConfig

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
    **dict.fromkeys(("float_type", "float_parsing"), "expected a number"),
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
    if study.comparison is not None:
        _check_comparison(study)


def _check_comparison(study: StudyConfig) -> None:
    c, names = study.comparison, [a.name for a in study.arms]
    if len(names) != 2:
        raise ConfigError(f"comparison: compares two arms; the study has {len(names)} "
                          f"({', '.join(names) or 'no arms'})")
    if c.treated not in names:
        raise ConfigError(f"comparison.treated: {c.treated!r} is not one of the arms ({', '.join(names)})")
    if not c.covariates:
        raise ConfigError("comparison.covariates: names no variable")
    variables = [v.name for v in study.variables]
    for i, name in enumerate(c.covariates):
        if name not in variables:
            raise ConfigError(f"comparison.covariates[{i}]: {name!r} is not a variable of the study "
                              f"(variables: {', '.join(variables) or 'none'})")
        if name in c.covariates[:i]:
            raise ConfigError(f"comparison.covariates[{i}]: {name!r} is named twice")
    if c.trim_percentiles is not None and not c.trim_percentiles[0] < c.trim_percentiles[1] <= 100:
        raise ConfigError(f"comparison.trim_percentiles: expected [low, high] with 0 ≤ low < high ≤ 100, "
                          f"got {list(c.trim_percentiles)}")
    if c.caliper_sd == 0 or c.balance_threshold == 0:
        raise ConfigError(f"comparison.{'caliper_sd' if c.caliper_sd == 0 else 'balance_threshold'}: must be "
                          "above 0")


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
    every_term = list(dict.fromkeys([*TERMS.values(), *AE_TERMS]))
    compared = study.comparison.safety_terms if study.comparison is not None else ()
    for key, names, known, what in (
            ("safety.lab_toxicities", study.safety.lab_toxicities, list(TERMS.values()),
             "a lab toxicity the engine grades"),
            ("safety.recorded_terms", study.safety.recorded_terms, list(AE_TERMS), "a CTCAE term recorded events map to"),
            ("comparison.safety_terms", compared, every_term, "a CTCAE term the engine grades or maps")):
        for j, name in enumerate(names):
            if name in names[:j]:
                raise ConfigError(f"{key}[{j}]: {name!r} is named twice")
            if name not in known:
                near = difflib_near(name, known)
                hint = f" (did you mean {near!r}?)" if near else f" (one of: {', '.join(known)})"
                raise ConfigError(f"{key}[{j}]: {name!r} is not {what}{hint}")


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
