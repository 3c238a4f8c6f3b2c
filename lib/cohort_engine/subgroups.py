"""Subgroups: the study's subgroup factors, their Kaplan–Meier rows, log-rank tests and
univariable and multivariable Cox hazard ratios (study rules §8)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import cox, survival
from .baseline import age_group, is_boolean
from .baseline_variables import DeNovoVariable, EarlierTreatmentVariable, MetastaticSiteVariable, variable_words
from .efficacy import endpoint_order
from .publish import Gate
from .study_config import StudyConfig

SUBGROUP_COLUMNS = ["endpoint", "factor", "level", "reference", "is_reference", "compared", "n", "level_patients",
                    "events",
                    "median_months", "median_ci_low", "median_ci_high", "logrank_p", "hr", "hr_ci_low", "hr_ci_high",
                    "hr_multivariable", "hr_multivariable_ci_low", "hr_multivariable_ci_high", "note",
                    "note_multivariable"]
SUBGROUP_FLOATS = ["median_months", "median_ci_low", "median_ci_high", "logrank_p", "hr", "hr_ci_low", "hr_ci_high",
                   "hr_multivariable", "hr_multivariable_ci_low", "hr_multivariable_ci_high"]
SUBGROUP_MEDIANS = ("median_months", "median_ci_low", "median_ci_high")
# A hazard ratio goes with its level's events: var(log HR) ≈ 1/d + 1/d_reference, so its CI
# gives back an events count withheld as a complement ("*") to within a tenth of a patient, and
# with it the censored patients. The compared levels are spared as complements while another
# level (an unknown or a not-compared one, which have no ratio) can be withheld instead.
SUBGROUP_HAZARD_RATIOS = ("hr", "hr_ci_low", "hr_ci_high", "hr_multivariable", "hr_multivariable_ci_low",
                          "hr_multivariable_ci_high")
# level_patients: the level's patients in the cohort, as Table 1 counts them; an endpoint's n
# of the level beside it names the patients it cannot evaluate (27 with label I, 23 for TTP: 4
# without an assessment), so n is withheld where that difference is 1–4.
SUBGROUP_GATE = Gate("subgroups", count_columns=("n", "level_patients", "events"), partition_by=("endpoint", "factor"),
                     total_column="n", complements={"n": "level_patients"},
                     dependents={"n": SUBGROUP_MEDIANS, "events": SUBGROUP_MEDIANS + SUBGROUP_HAZARD_RATIOS},
                     spare="compared", relative_to=("is_reference", "events", SUBGROUP_HAZARD_RATIOS))
UNKNOWN_LEVEL = "unknown"


def _yes_no(value):
    return None if value is None or pd.isna(value) else ("yes" if bool(value) else "no")


def factor_labels(study: StudyConfig) -> dict[str, str]:
    """Each subgroup factor in words: its variable's label, else its name ("age group")."""
    labels = {v.name: variable_words(v) for v in study.variables}
    return {f: labels.get(f, f.replace("_", " ")) for f in study.analysis.subgroups}


def subgroup_levels(cohort: pd.DataFrame, study: StudyConfig, factors=None) -> pd.DataFrame:
    """patient_id and one text column per subgroup factor (the study's, unless `factors` are
    given; None where unknown).

    age_group comes from age_at_index (baseline.age_group); a de_novo variable reads "de novo" /
    "recurrent"; metastatic sites, earlier treatments and other flags "yes" / "no"; the others
    as recorded.
    """
    variables = {v.name: v for v in study.variables}
    out = pd.DataFrame({"patient_id": cohort["patient_id"].to_numpy()})
    for factor in study.analysis.subgroups if factors is None else factors:
        variable = variables.get(factor)
        if factor == "age_group":
            values = cohort["age_at_index"].map(lambda a: None if pd.isna(a) else age_group(a))
            values = values.where(values != "unknown", None)
        elif factor not in cohort.columns:
            raise ValueError(f"subgroup {factor!r} is not a cohort column")
        elif isinstance(variable, DeNovoVariable):
            values = cohort[factor].map(lambda v: None if v is None or pd.isna(v) else
                                        ("de novo" if bool(v) else "recurrent"))
        elif isinstance(variable, (MetastaticSiteVariable, EarlierTreatmentVariable)) or is_boolean(cohort[factor]):
            values = cohort[factor].map(_yes_no)
        else:
            values = cohort[factor].map(lambda v: None if v is None or pd.isna(v) else str(v))
        out[factor] = values.astype(object).to_numpy()
    return out


def reference_level(values: pd.Series, preferred: str | None = None):
    """The study's reference level (`analysis.references`) where present, else the largest
    level (ties: first sorted)."""
    present = values.dropna()
    if preferred is not None and (present == preferred).any():
        return preferred
    counts = present.value_counts()
    if counts.empty:
        return None
    return sorted(counts.index[counts == counts.max()], key=str)[0]


def subgroup_table(endpoints: pd.DataFrame, levels: pd.DataFrame, study: StudyConfig) -> pd.DataFrame:
    """Per endpoint × factor × level: KM n, events, median with CI, log-rank p, univariable Cox
    HR with CI (cox.subgroup_table) and the HR of a multivariable Cox model on all factors
    (cox.cox_multivariable, complete cases)."""
    factors = list(study.analysis.subgroups)
    parts = []
    for endpoint in endpoint_order(endpoints):
        data = endpoints[endpoints["endpoint"] == endpoint].merge(levels, on="patient_id")
        references = {f: reference_level(data[f], dict(study.analysis.references).get(f)) for f in factors}
        multivariable = cox.cox_multivariable(data, factors, references=references)
        multivariable = multivariable[["factor", "level", "hr", "ci_low", "ci_high", "note"]].rename(columns={
            "hr": "hr_multivariable", "ci_low": "hr_multivariable_ci_low", "ci_high": "hr_multivariable_ci_high",
            "note": "note_multivariable"})
        for factor in factors:
            compared = _levels_compared(data[factor], factor, study)
            table = cox.subgroup_table(data.assign(**{factor: data[factor].where(compared)}), factor,
                                            reference=references[factor], ci_method=study.analysis.ci_method)
            table = pd.concat([table.assign(compared=True), _levels_not_compared(data, factor, compared, study)],
                              ignore_index=True)
            table = table.merge(multivariable, on=["factor", "level"], how="left")
            # A level outside the comparison has no hazard ratio to show, from either model.
            outside = ~table["compared"].astype(bool)
            table.loc[outside, ["hr_multivariable", "hr_multivariable_ci_low", "hr_multivariable_ci_high"]] = np.nan
            table.loc[outside, "note_multivariable"] = ""
            table = without_few_event_ratios(table, references[factor], study.disclosure.min_cell)
            table.insert(0, "endpoint", endpoint)
            table.insert(3, "reference", references[factor])
            table.insert(4, "is_reference", table["level"] == references[factor])
            table.insert(7, "level_patients", _level_patients(levels[factor], table["level"]))
            if len(table):
                parts.append(table.astype({c: float for c in SUBGROUP_FLOATS}))
    if not parts:
        return pd.DataFrame(columns=SUBGROUP_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SUBGROUP_COLUMNS]


HAZARD_RATIO_COLUMNS = {"note": ["hr", "hr_ci_low", "hr_ci_high"],
                        "note_multivariable": ["hr_multivariable", "hr_multivariable_ci_low",
                                               "hr_multivariable_ci_high"]}


def few_events_note(min_cell: int) -> str:
    return f"fewer than {min_cell} events in the level or its reference: no hazard ratio"


def without_few_event_ratios(table: pd.DataFrame, reference, min_cell: int) -> pd.DataFrame:
    """One factor's rows with the hazard ratios (both models) of a level left empty where that
    level, or the reference, has 1 to min_cell − 1 events, and a note saying so.

    The Cox variance is about 1/d + 1/d_reference, so a CI gives back an events count the gate
    shows as "<5" (0.54–3.98 against 150 reference events is d = 4), and a ratio of so few
    events says nothing. A level whose events are withheld only as a complement ("*", at least
    min_cell) keeps its ratio: its CI gives an approximate count, which pins none of the small ones."""
    events = pd.to_numeric(table["events"], errors="coerce")
    few = (events >= 1) & (events < min_cell)
    is_reference = table["level"] == reference
    withheld = ~is_reference & (few | bool((few & is_reference).any())) & table["compared"].astype(bool)
    out = table.copy()
    for note, columns in HAZARD_RATIO_COLUMNS.items():
        out.loc[withheld, columns] = np.nan
        out.loc[withheld, note] = few_events_note(min_cell)
    return out


def _level_patients(values: pd.Series, levels: pd.Series) -> list[int]:
    """Per level (UNKNOWN_LEVEL: a missing value), the cohort's patients at it."""
    counts = values.astype(object).where(values.notna(), UNKNOWN_LEVEL).astype(str).value_counts()
    return [int(counts.get(str(level), 0)) for level in levels]


def _levels_compared(values: pd.Series, factor: str, study: StudyConfig) -> pd.Series:
    """Which patients' levels enter the log-rank test and the Cox model of a factor."""
    compared = dict(study.analysis.levels_compared).get(factor, ())
    return values.notna() & (values.isin(compared) if compared else True)


def _levels_not_compared(data: pd.DataFrame, factor: str, compared: pd.Series, study: StudyConfig) -> pd.DataFrame:
    """Kaplan–Meier rows (n, events, median) for the levels outside the comparison, the unknown
    level last: without them the levels would not add up to the endpoint's n, and n minus the
    shown levels would give the missing ones away."""
    rest = data[~compared]
    levels = rest[factor].fillna(UNKNOWN_LEVEL)
    order = sorted(levels.unique(), key=lambda lv: (lv == UNKNOWN_LEVEL, -(levels == lv).sum(), str(lv)))
    named = sorted(map(str, data.loc[compared, factor].unique()))
    rows = []
    for level in order:
        group = rest[levels == level]
        median, low, high = (v / survival.DAYS_PER_MONTH for v in survival.kaplan_meier(
            group["time_days"], group["event"], study.analysis.ci_method).median())
        note = ("value unknown: not in the comparison" if level == UNKNOWN_LEVEL
                else f"not in the comparison ({' vs '.join(map(str, named))})")
        rows.append(dict(factor=factor, level=level, compared=False, n=len(group), events=int(group["event"].sum()),
                         median_months=median, median_ci_low=low, median_ci_high=high, note=note))
    return pd.DataFrame(rows)
