"""Cox proportional-hazards models of the collected cohort (study rules §8), as R's coxph.

lifelines' CoxPHFitter with Efron ties like R's coxph, converged tightly (lifelines' default
tolerance of 1e-7 on the Newton step leaves a coefficient 1.6e-6 away from R on the lung
data; we iterate to 1e-12). A factor's levels are compared with its reference level; a
level whose hazard ratio does not exist (no events, separation) gets NaN and a note saying
why. The tests hold the numbers to R's printed output (shared/reference/survival/).
Case weights and R's robust (sandwich) variance, clustered or not, are `fit_cox`'s
(tests/reference/comparison/).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.exceptions import ConvergenceError, StatisticalWarning
from scipy import stats

from .survival import DAYS_PER_MONTH, kaplan_meier, logrank, z_quantile

COX_PRECISION = 1e-12  # Newton step and decrement
COX_R_PRECISION = 1e-14  # relative change of the log-likelihood
# lifelines' warnings that the likelihood has no finite maximum (separation, collinearity):
# the estimates are then meaningless (say HR 3e12, CI 0 to inf), so the level gets NaN.
NO_MAXIMUM_SIGNS = ("norm(delta) is still high", "failed to converge")
NO_MAXIMUM = "no finite maximum likelihood (separation or collinearity)"
COX_COLUMNS = ["factor", "level", "reference", "n", "events", "coef", "se", "hr", "ci_low", "ci_high",
               "p_value", "note"]


def efron_score_residuals(time, event, covariates, weight, coef) -> np.ndarray:
    """Each patient's score residuals (one column per covariate) under Efron's ties, as R's
    residuals(coxph, "score") (survival's coxscore2.c): at a time with k tied events the
    k steps of Efron's approximation each remove 1/k of the events' risk from the risk set,
    and the events' mean weight stands in for each event's own."""
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    x = np.asarray(covariates, dtype=float).reshape(len(time), -1)
    weight = np.asarray(weight, dtype=float)
    score = np.exp(x @ np.asarray(coef, dtype=float))
    risk = weight * score
    residuals = np.zeros_like(x)
    for t in np.unique(time[event == 1]):
        at_risk = time >= t
        events = at_risk & (time == t) & (event == 1)
        k = int(events.sum())
        step = np.arange(k) / k  # the share of the events' risk already removed
        denominator = risk[at_risk].sum() - step * risk[events].sum()
        hazard = weight[events].mean() / denominator
        mean = ((risk[at_risk] @ x[at_risk]) - np.outer(step, risk[events] @ x[events])) / denominator[:, None]
        alive = at_risk & ~events
        residuals[alive] -= score[alive, None] * (x[alive] * hazard.sum() - hazard @ mean)
        kept = hazard * (1.0 - step)
        residuals[events] += (x[events] - mean.mean(axis=0)) - score[events, None] * (x[events] * kept.sum() - kept @ mean)
    return residuals


def fit_cox(df: pd.DataFrame, covariates: list[str], *, time_col: str = "time_days", event_col: str = "event",
            alpha: float = 0.05, weight_col: str | None = None, cluster_col: str | None = None,
            robust: bool = False) -> pd.DataFrame:
    """A Cox model (Efron ties) on numeric covariates: index covariate; coef, se, hr, ci_low, ci_high, p_value.

    weight_col: case weights (inverse probability weights, say), as coxph's `weights`.
    robust (or a cluster_col): the standard errors are R's coxph(…, robust = TRUE) sandwich,
    D'D with D the weighted dfbeta residuals (score residuals × the model's variance),
    summed per cluster first when cluster_col is given (matched sets, say). lifelines' own
    robust variance treats tied times as if they were not tied, so it is not used.
    Raises lifelines' ConvergenceError (or numpy's LinAlgError) when the model cannot be fitted.
    """
    model = CoxPHFitter(alpha=alpha)
    columns = [time_col, event_col, *covariates] + ([weight_col] if weight_col else [])
    with warnings.catch_warnings():
        # lifelines warns that non-integer weights need a robust variance: we compute it below.
        warnings.filterwarnings("ignore", message=".*weights are not integers.*", category=StatisticalWarning)
        model.fit(df[columns], time_col, event_col, weights_col=weight_col,
                  fit_options={"precision": COX_PRECISION, "r_precision": COX_R_PRECISION})
    coef = model.params_.reindex(covariates)
    se = model.standard_errors_.reindex(covariates)
    p_value = model.summary["p"].reindex(covariates)
    if robust or cluster_col:
        weight = df[weight_col].to_numpy(dtype=float) if weight_col else np.ones(len(df))
        residuals = efron_score_residuals(df[time_col], df[event_col], df[covariates], weight, coef.to_numpy())
        dfbeta = pd.DataFrame(weight[:, None] * residuals @ model.variance_matrix_.loc[covariates, covariates].to_numpy())
        if cluster_col:
            dfbeta = dfbeta.groupby(df[cluster_col].to_numpy(), sort=False).sum()
        se = pd.Series(np.sqrt(np.diag(dfbeta.T @ dfbeta)), index=covariates)
        p_value = pd.Series(2.0 * stats.norm.sf(np.abs(coef / se)), index=covariates)
    z = z_quantile(alpha)
    return pd.DataFrame({"coef": coef, "se": se, "hr": np.exp(coef), "ci_low": np.exp(coef - z * se),
                         "ci_high": np.exp(coef + z * se), "p_value": p_value})


def _levels(values: pd.Series, reference) -> list:
    """The reference level first (default: the first in sorted order, as R), then the others sorted."""
    found = sorted(values.dropna().unique().tolist(), key=str)
    if reference is None:
        return found
    if reference not in found:  # a reference nobody has: shown first, with a note
        return [reference] + found if found else []
    return [reference] + [v for v in found if v != reference]


def _dummy(factor: str, level) -> str:
    return f"{factor}={level}"


def _fit_levels(data: pd.DataFrame, factors: dict[str, list], numeric: list[str], time_col: str,
                event_col: str, alpha: float):
    """Fit a Cox model with one indicator per non-reference level; (estimates, warning text)."""
    design = data[[time_col, event_col, *numeric]].copy()
    for factor, levels in factors.items():
        for level in levels[1:]:
            design[_dummy(factor, level)] = (data[factor] == level).astype(float)
    covariates = [c for c in design.columns if c not in (time_col, event_col)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimates = fit_cox(design, covariates, time_col=time_col, event_col=event_col, alpha=alpha)
    messages = [" ".join(str(w.message).split()) for w in caught if "Convergence" in w.category.__name__]
    if any(sign in m for m in messages for sign in NO_MAXIMUM_SIGNS):
        raise ConvergenceError(NO_MAXIMUM)
    return estimates, "; ".join(dict.fromkeys(messages))


def _usable_levels(data: pd.DataFrame, factor: str, levels: list, event_col: str) -> tuple[list, dict]:
    """Levels a Cox model can estimate, and a note for each level it cannot."""
    events = data.groupby(factor)[event_col].sum()
    present = data[factor].value_counts()
    notes = {}
    if len(levels) < 2 or len([lv for lv in levels if present.get(lv, 0) > 0]) < 2:
        return [], {lv: "only one level" for lv in levels}
    if present.get(levels[0], 0) == 0:
        return [], {lv: "no patients in the reference level" for lv in levels}
    if events.get(levels[0], 0) == 0:
        return [], {lv: "no events in the reference level" for lv in levels}
    usable = [levels[0]]
    for level in levels[1:]:
        if present.get(level, 0) == 0:
            notes[level] = "no patients in this level"
        elif events.get(level, 0) == 0:
            notes[level] = "no events in this level: hazard ratio not estimable"
        else:
            usable.append(level)
    if len(usable) < 2:
        return [], {**notes, levels[0]: "no other level to compare with"}
    return usable, notes


def _cox_rows(counts: pd.DataFrame, factors: dict[str, list], estimates: pd.DataFrame | None, notes: dict,
              event_col: str) -> pd.DataFrame:
    rows = []
    for factor, levels in factors.items():
        n = counts[factor].value_counts()
        events = counts.groupby(factor)[event_col].sum()
        for i, level in enumerate(levels):
            row = dict(factor=factor, level=level, reference=levels[0], n=int(n.get(level, 0)),
                       events=int(events.get(level, 0)), coef=np.nan, se=np.nan, hr=np.nan, ci_low=np.nan,
                       ci_high=np.nan, p_value=np.nan, note=notes.get((factor, level), ""))
            name = _dummy(factor, level)
            if i == 0 and not row["note"]:
                row.update(hr=1.0, note="reference")
            elif estimates is not None and name in estimates.index:
                row.update(estimates.loc[name, ["coef", "se", "hr", "ci_low", "ci_high", "p_value"]].to_dict())
            rows.append(row)
    return pd.DataFrame(rows, columns=COX_COLUMNS)


def cox_by_level(df: pd.DataFrame, factor: str, *, reference=None, time_col: str = "time_days",
                 event_col: str = "event", alpha: float = 0.05) -> pd.DataFrame:
    """Univariable Cox hazard ratio of each level of `factor` against the reference level.

    Columns COX_COLUMNS: factor, level, reference (as in the data), n, events (int), coef, se,
    hr, ci_low, ci_high, p_value (float; the reference row has hr 1), note (why a value is
    NaN: one level only, no events in a level or in the reference, no convergence).
    A level without events is left out of the fit and reported with NaN.
    """
    return cox_multivariable(df, [factor], references={factor: reference}, time_col=time_col,
                             event_col=event_col, alpha=alpha)


def _model_sample(data: pd.DataFrame, levels: dict[str, list], event_col: str
                  ) -> tuple[pd.DataFrame, dict[str, list], dict]:
    """The rows and levels a Cox model can use, and a note per (factor, level) it cannot.

    Leaving out the patients of a level without events can empty a level of another
    factor, so this repeats until nothing changes.
    """
    notes: dict = {}
    while True:
        usable_levels, changed = {}, False
        for factor, factor_levels in levels.items():
            usable, why = _usable_levels(data, factor, factor_levels, event_col)
            for level, text in why.items():
                notes.setdefault((factor, level), text)
            if usable:
                usable_levels[factor] = usable
                if not data[factor].isin(usable).all():
                    data, changed = data[data[factor].isin(usable)], True
        if not changed:
            return data, usable_levels, notes


def cox_multivariable(df: pd.DataFrame, factors: list[str], *, references: dict | None = None,
                      numeric: list[str] = (), time_col: str = "time_days", event_col: str = "event",
                      alpha: float = 0.05) -> pd.DataFrame:
    """A Cox model on several categorical factors (and optional numeric covariates).

    Patients with a missing value are left out; so are the patients of a level without
    events (its hazard ratio does not exist), noted on that level's row. A factor left
    with one level is not in the model (NaN, with the reason). Same columns as
    `cox_by_level`: one row per factor level (n and events of the complete cases), then
    one row per numeric covariate (level and reference empty; n and events of the model).
    """
    references = references or {}
    complete = df.dropna(subset=[*factors, *numeric])
    levels = {f: _levels(complete[f], references.get(f)) for f in factors}
    data, model_levels, notes = _model_sample(complete, levels, event_col)
    estimates = None
    if model_levels or numeric:
        if data[event_col].sum() == 0:
            notes.update({(f, lv): "no events" for f in factors for lv in levels[f]})
        else:
            try:
                estimates, warned = _fit_levels(data, model_levels, list(numeric), time_col, event_col, alpha)
                if warned:
                    for f, usable in model_levels.items():
                        for level in usable[1:]:
                            notes.setdefault((f, level), f"fitted with a warning: {warned}")
            except (ConvergenceError, np.linalg.LinAlgError, ValueError) as exc:
                text = f"model not fitted: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                notes.update({(f, lv): text for f in model_levels for lv in model_levels[f]})
    out = _cox_rows(complete, levels, estimates, notes, event_col)
    for covariate in numeric:
        row = dict(factor=covariate, level=None, reference=None, n=len(data), events=int(data[event_col].sum()),
                   note="" if estimates is not None else "model not fitted")
        if estimates is not None:
            row.update(estimates.loc[covariate].to_dict())
        out = pd.concat([out, pd.DataFrame([row], columns=COX_COLUMNS)], ignore_index=True)
    return out


def subgroup_table(df: pd.DataFrame, factor: str, *, reference=None, ci_method: str = "log-log",
                   time_col: str = "time_days", event_col: str = "event") -> pd.DataFrame:
    """Per level of `factor`: KM n, events, median (months) with CI, Cox HR with CI, and the log-rank p.

    Columns: factor, level, n, events (int), median_months, median_ci_low, median_ci_high, hr,
    hr_ci_low, hr_ci_high, logrank_p (float; the same on every row of the factor), note.
    """
    data = df.dropna(subset=[factor])
    cox = cox_by_level(data, factor, reference=reference, time_col=time_col, event_col=event_col)
    test = logrank(data, factor, time_col=time_col, event_col=event_col)
    rows = []
    for c in cox.itertuples(index=False):
        group = data[data[factor] == c.level]
        median, low, high = (v / DAYS_PER_MONTH for v in
                             kaplan_meier(group[time_col], group[event_col], ci_method).median())
        note = "; ".join(x for x in (c.note, test.note) if x)
        rows.append(dict(factor=factor, level=c.level, n=len(group), events=int(group[event_col].sum()),
                         median_months=median, median_ci_low=low, median_ci_high=high, hr=c.hr,
                         hr_ci_low=c.ci_low, hr_ci_high=c.ci_high, logrank_p=test.p_value, note=note))
    return pd.DataFrame(rows, columns=["factor", "level", "n", "events", "median_months", "median_ci_low",
                                       "median_ci_high", "hr", "hr_ci_low", "hr_ci_high", "logrank_p", "note"])
