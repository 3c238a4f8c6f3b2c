"""The propensity score of a study's two arms, its weights and its 1:1 matched pairs.

The score is the probability of the treated arm (comparison.treated) given the study's
baseline covariates (comparison.covariates), from a logistic regression without penalty
(statsmodels' GLM, R's glm(family = binomial)). Each covariate enters as Table 1 reads it
(baseline.variable_reading): an age as a linear term, every other variable as indicators
of its levels, "unknown" (a missing value) a level of its own, the reference level left
out. The primary weights are the study's estimand's (ATE: stabilised inverse probability
of treatment weights; ATT); the other estimand's weights and nearest-neighbour matching on
the score's logit are sensitivity analyses. Pandas only: the pipeline hands it the cohort.
"""
from __future__ import annotations

import bisect
import typing
import warnings

import numpy as np
import pandas as pd

from .baseline import Characteristic, variable_reading
from .regimen_rules import Arm
from .study_config import ComparisonConfig

INTERCEPT = "intercept"
UNKNOWN = "unknown"
PATIENT_COLUMNS = ["arm", "treated", "score", "logit", "kept", "weight_ate", "weight_att", "pair"]
WEIGHT_SUMMARY_COLUMNS = ["weights", "arm", "patients", "effective_sample_size", "largest_weight"]


def treated_and_comparator(arms: typing.Sequence[Arm], comparison: ComparisonConfig) -> tuple[str, str]:
    """The names of the treated arm (comparison.treated) and of the other, the comparator."""
    names = [arm.name for arm in arms]
    return comparison.treated, next(name for name in names if name != comparison.treated)


def covariate_blocks(cohort: pd.DataFrame, variables: typing.Sequence,
                     covariates: typing.Sequence[str]) -> list[tuple[str, Characteristic]]:
    """(variable name, its Table 1 reading) of each covariate, in the order the study names them."""
    by_name = {v.name: v for v in variables}
    return [(name, variable_reading(cohort[name], by_name[name])) for name in covariates]


def reference_level(block: Characteristic) -> str:
    """The level left out of the model: the one most patients have (ties: Table 1's order).
    The fitted scores do not depend on it; the largest level keeps the fit well conditioned."""
    counts = block.values.value_counts()
    return max(block.levels(), key=lambda level: counts[level])


def design_matrix(blocks: typing.Sequence[tuple[str, Characteristic]]) -> pd.DataFrame:
    """The score model's columns: an intercept, then per covariate its measure or the
    indicators of its levels but the reference ("name: level"). A measure with missing
    values gets an indicator "name: unknown" and its missing values the mean of the known,
    so the known values' slope is not bent by a made-up value."""
    index = blocks[0][1].values.index if blocks else pd.RangeIndex(0)
    columns: dict[str, pd.Series] = {INTERCEPT: pd.Series(1.0, index=index)}
    for name, block in blocks:
        if block.measured:
            missing = block.values.isna()
            columns[name] = block.values.astype(float).fillna(block.values.mean())
            if missing.any():
                columns[f"{name}: {UNKNOWN}"] = missing.astype(float)
            continue
        reference = reference_level(block)
        for level in block.levels():
            if level != reference:
                columns[f"{name}: {level}"] = (block.values == level).astype(float)
    return pd.DataFrame(columns, index=index)


def fit_scores(treated: pd.Series, design: pd.DataFrame) -> pd.DataFrame:
    """score (the fitted probability of the treated arm) and logit (its linear predictor), per
    patient. Fitted by IRLS to a deviance change below 1e-12, past R's glm default (1e-8),
    so the scores agree with R's to 1e-8 (tests/reference/comparison)."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    model = sm.GLM(treated.astype(float).to_numpy(), design.to_numpy(), family=sm.families.Binomial())
    with warnings.catch_warnings():
        # A level held by one arm only pushes its patients' scores to 0 or 1; the balance
        # table shows it (that level stays unbalanced after weighting), so it is no failure.
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        fit = model.fit(tol=1e-12, maxiter=100)
    logit = design.to_numpy() @ fit.params
    return pd.DataFrame({"score": fit.fittedvalues, "logit": logit}, index=design.index)


def kept_by_trimming(score: pd.Series, percentiles: tuple[float, float] | None) -> pd.Series:
    """True for the patients whose score lies within the [low, high] percentiles of every
    patient's score (numpy's linear interpolation, R's quantile type 7); everyone when
    percentiles is None. The score is not fitted again on the patients kept."""
    if percentiles is None:
        return pd.Series(True, index=score.index)
    low, high = np.percentile(score.to_numpy(), percentiles)
    return (score >= low) & (score <= high)


def ate_weights(treated: pd.Series, score: pd.Series) -> pd.Series:
    """Stabilised inverse probability of treatment weights for the average treatment effect:
    P(treated) / e for the treated, (1 − P(treated)) / (1 − e) for the comparator, P(treated)
    the treated arm's share of the patients weighted."""
    share = treated.mean()
    return pd.Series(np.where(treated, share / score, (1 - share) / (1 - score)), index=score.index)


def att_weights(treated: pd.Series, score: pd.Series) -> pd.Series:
    """Weights for the average effect on the treated: 1 for the treated, e / (1 − e) for the comparator."""
    return pd.Series(np.where(treated, 1.0, score / (1 - score)), index=score.index)


def effective_sample_size(weights: pd.Series) -> float:
    """Kish's effective sample size: (Σw)² / Σw²."""
    return float(weights.sum() ** 2 / (weights ** 2).sum()) if len(weights) else 0.0


def matched_pairs(logit: pd.Series, treated: pd.Series, caliper_sd: float) -> pd.Series:
    """1:1 nearest-neighbour matching on the logit without replacement, within caliper_sd SDs
    of the logit, as MatchIt 4.5.1's matchit(method = "nearest", distance = logit,
    caliper = caliper_sd, std.caliper = TRUE) matches. Per patient, the number of its pair
    (1, 2, … in the treated patients' order in the frame), or <NA> when unmatched.

    MatchIt's rules, followed exactly: the caliper is caliper_sd times the sample SD (n − 1)
    of the logit over all patients, treated and comparator; the treated are matched from
    the largest logit down (m.order "largest", the default for a distance; R's stable
    order, so equal logits keep the frame's order); each takes the nearest unmatched
    comparator on either side of it in the patients sorted by logit (a stable ascending
    sort, so a comparator with a treated patient's logit is on its left when it comes
    first in the frame), within the caliper (|difference| ≤ caliper), the left one when
    both sides are as near; a treated patient with none within the caliper stays unmatched.
    Differences are compared as real numbers, as MatchIt intends: Debian's build of 4.5.1
    compares them in whole units (C's int abs(), fixed in MatchIt 4.5.3), so the reference
    pairs were made on the logit times 1e8 (tests/reference/comparison/README.md).
    """
    caliper = caliper_sd * float(logit.std(ddof=1))
    values, is_treated = logit.to_numpy(dtype=float), treated.to_numpy(dtype=bool)
    by_logit = np.argsort(values, kind="stable")
    position = np.empty(len(values), dtype=int)
    position[by_logit] = np.arange(len(values))
    # the comparator patients not yet matched, by their place in the sorted order
    free = [p for p in range(len(values)) if not is_treated[by_logit[p]]]
    treated_rows = np.flatnonzero(is_treated)
    matched_to: dict[int, int] = {}
    for row in treated_rows[np.argsort(-values[treated_rows], kind="stable")]:
        if not free:
            break
        here = position[row]
        j = bisect.bisect_left(free, here)
        sides = [free[k] for k in (j - 1, j) if 0 <= k < len(free)]
        near = [p for p in sides if abs(values[by_logit[p]] - values[row]) <= caliper]
        if not near:
            continue
        chosen = min(near, key=lambda p: (abs(values[by_logit[p]] - values[row]), p > here))
        matched_to[row] = int(by_logit[chosen])
        del free[j - 1 if chosen < here else j]
    pair = pd.Series(pd.NA, index=logit.index, dtype="Int64")
    for number, row in enumerate(sorted(matched_to), start=1):
        pair.iloc[[row, matched_to[row]]] = number
    return pair


def patient_weights(cohort: pd.DataFrame, variables: typing.Sequence, arms: typing.Sequence[Arm],
                    comparison: ComparisonConfig) -> pd.DataFrame:
    """Per patient of the two arms (the cohort's index kept; a patient in no arm is left out):
    arm, treated, score, logit, kept (by trimming), weight_ate and weight_att (of the kept
    patients, empty for the others) and pair (the matched pair, of the kept patients)."""
    treated_arm, comparator_arm = treated_and_comparator(arms, comparison)
    patients = cohort[cohort["arm"].isin([treated_arm, comparator_arm])]
    treated = patients["arm"] == treated_arm
    scores = fit_scores(treated, design_matrix(covariate_blocks(patients, variables, comparison.covariates)))
    kept = kept_by_trimming(scores["score"], comparison.trim_percentiles)
    out = pd.DataFrame({"arm": patients["arm"], "treated": treated, **scores, "kept": kept})
    score, is_treated = scores["score"][kept], treated[kept]
    out["weight_ate"] = ate_weights(is_treated, score)
    out["weight_att"] = att_weights(is_treated, score)
    out["pair"] = matched_pairs(scores["logit"][kept], is_treated, comparison.caliper_sd).reindex(out.index)
    return out[PATIENT_COLUMNS]


def weight_summary(patients: pd.DataFrame) -> pd.DataFrame:
    """Per weighting (ATE, ATT, matched) and arm, the treated arm first: the patients
    weighted, Kish's effective sample size and the largest weight (1 for a matched patient)."""
    rows = []
    matched = pd.Series(1.0, index=patients.index).where(patients["pair"].notna())
    for name, weights in (("ATE", patients["weight_ate"]), ("ATT", patients["weight_att"]), ("matched", matched)):
        for arm in patients.sort_values("treated", ascending=False, kind="stable")["arm"].unique():
            w = weights[patients["arm"] == arm].dropna()
            rows.append({"weights": name, "arm": arm, "patients": int(w.size),
                         "effective_sample_size": effective_sample_size(w),
                         "largest_weight": float(w.max()) if w.size else np.nan})
    return pd.DataFrame(rows, columns=WEIGHT_SUMMARY_COLUMNS)
