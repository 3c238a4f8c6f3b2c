"""A comparative study: its two arms made comparable, then compared (the study file's
`comparison`).

From the collected cohort, its endpoints and its safety events: the propensity score and
the weights (`propensity`), the covariates' balance (`balance`), and for each method (the
primary weights, the other estimand's, the matched pairs) the efficacy and safety
comparisons (`comparison`); with them the patient-level analysis data that stay in the
lake (gold/comparison_dataset), so that a statistician can refit every model.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from . import comparison
from .balance import balance_table
from .propensity import patient_weights, treated_and_comparator, weight_summary
from .study_config import StudyConfig

DATASET_COLUMNS = ["study", "patient_id", "arm", "propensity_score", "weight", "matched_set", "endpoint",
                   "time_days", "event"]
WEIGHT_COLUMNS = {"ATE": "weight_ate", "ATT": "weight_att"}
MATCHED = "1:1 matching on the logit of the score"


@dataclasses.dataclass(frozen=True)
class Method:
    """One way of making the arms comparable: its name (comparison.csv's method), each
    patient's weight (NaN for a patient it leaves out) and the column naming the clusters
    of its robust variance (the matched pairs), if any."""
    name: str
    weights: pd.Series
    cluster: str | None = None


def primary_method_name(estimand: str) -> str:
    return f"IPTW, {estimand} (primary)"


def methods(patients: pd.DataFrame, estimand: str) -> list[Method]:
    """The primary weighting, the other estimand's (a sensitivity analysis) and the matched
    pairs (weights of 1, clustered on the pair), in that order."""
    other = "ATT" if estimand == "ATE" else "ATE"
    paired = pd.Series(1.0, index=patients.index).where(patients["pair"].notna())
    return [Method(primary_method_name(estimand), patients[WEIGHT_COLUMNS[estimand]]),
            Method(f"IPTW, {other}", patients[WEIGHT_COLUMNS[other]]),
            Method(MATCHED, paired, cluster="matched_set")]


def _analysed(rows: pd.DataFrame, patients: pd.DataFrame, method: Method) -> pd.DataFrame:
    """rows (one or more per patient, by patient_id) of the patients the method keeps, with
    their arm, weight and matched_set."""
    kept = method.weights.notna()
    per_patient = pd.DataFrame({"patient_id": patients.loc[kept, "patient_id"], "arm": patients.loc[kept, "arm"],
                                "weight": method.weights[kept],
                                "matched_set": patients.loc[kept, "pair"].astype("string")})
    return rows.merge(per_patient, on="patient_id")


def comparison_dataset(study: StudyConfig, patients: pd.DataFrame, endpoints: pd.DataFrame) -> pd.DataFrame:
    """gold/comparison_dataset: one row per patient of the two arms and endpoint, with the
    score, the primary weight (null for a patient trimming left out) and the matched pair
    (null for a patient left unmatched)."""
    primary = methods(patients, study.comparison.estimand)[0]
    per_patient = pd.DataFrame({"patient_id": patients["patient_id"], "arm": patients["arm"],
                                "propensity_score": patients["score"].astype(float),
                                "weight": primary.weights.astype(float),
                                "matched_set": patients["pair"].astype("string")})
    rows = endpoints[["patient_id", "endpoint", "time_days", "event"]].merge(per_patient, on="patient_id")
    rows.insert(0, "study", study.name)
    return rows.sort_values(["patient_id", "endpoint"], kind="stable")[DATASET_COLUMNS].reset_index(drop=True)


@dataclasses.dataclass(frozen=True)
class ComparativeAnalysis:
    """Exact results (counts as ints: each table passes its gate on the way out).

    patients: propensity.patient_weights with patient_id; weights: its weight_summary;
    balance: balance.balance_table (under the primary weights; the Love plot is drawn from it
    as published); efficacy: comparison.csv's rows, every method; safety: safety_comparison.csv's rows;
    dataset: gold/comparison_dataset; analysed: per method, the endpoints of its patients with
    arm, weight and matched_set (for the weighted curves)."""
    treated: str
    comparator: str
    patients: pd.DataFrame
    weights: pd.DataFrame
    balance: pd.DataFrame
    efficacy: pd.DataFrame
    safety: pd.DataFrame
    dataset: pd.DataFrame
    analysed: dict[str, pd.DataFrame]


def compare_arms(study: StudyConfig, cohort: pd.DataFrame, endpoints: pd.DataFrame,
                 safety_events: pd.DataFrame) -> ComparativeAnalysis:
    """The whole comparison of a study with a `comparison` section."""
    config = study.comparison
    treated, comparator = treated_and_comparator(study.arms, config)
    patients = patient_weights(cohort, study.variables, study.arms, config)
    patients.insert(0, "patient_id", cohort.loc[patients.index, "patient_id"])
    all_methods = methods(patients, config.estimand)
    balance = balance_table(cohort, study.variables, config.covariates, patients, all_methods[0].weights,
                            config.balance_threshold)
    analysed, efficacy, safety = {}, [], []
    flags = comparison.severe_event_flags(patients[["patient_id"]], safety_events, config.safety_terms)
    for method in all_methods:
        data = _analysed(endpoints[["patient_id", "endpoint", "time_days", "event"]], patients, method)
        analysed[method.name] = data
        efficacy.append(comparison.comparison_table(data, treated, method.name, cluster_col=method.cluster,
                                                    rmst_months=config.rmst_months))
        safety.append(comparison.safety_comparison_table(_analysed(flags, patients, method), treated, method.name,
                                                         cluster_col=method.cluster))
    return ComparativeAnalysis(
        treated=treated, comparator=comparator, patients=patients, weights=weight_summary(patients),
        balance=balance, efficacy=pd.concat(efficacy, ignore_index=True),
        safety=pd.concat(safety, ignore_index=True), dataset=comparison_dataset(study, patients, endpoints),
        analysed=analysed)
