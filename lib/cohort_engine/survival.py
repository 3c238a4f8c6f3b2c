"""Survival analysis of the collected cohort (study rules §8): pandas, numpy and lifelines.

The conventions are R's `survival` package, the biostatistician's reference, and the
tests hold the engine to R's printed output (shared/reference/survival/):

- Kaplan–Meier with Greenwood's variance of log S(t). Pointwise 95% intervals by the
  log-log transform by default (`ci_method` "log-log", "log" or "plain", as R's
  `conf.type`). Where S(t) = 0, and for log-log also where S(t) = 1, R gives no interval
  and neither do we (NaN); lifelines would give 0–0 and 1–1.
- The median and its interval follow R's print.survfit: the first time the curve (for
  the interval: the lower or the upper pointwise limit) is below one half; where the
  curve sits exactly at one half (within sqrt(machine epsilon)) it is the midpoint
  between that time and the next time the curve drops. lifelines reports the first
  time of such a flat (events at 1, 2, 3, 4: R 2.5, lifelines 2.0). A curve that never
  falls below one half has no median (NaN).
- Case weights (inverse probability weights) as survfit's `weights`: the curve of the
  weighted counts at risk and of events; the variance R's default, the infinitesimal
  jackknife where a weight is not whole or a cluster is given, else Greenwood's. The
  restricted mean survival time and its standard error as print.survfit's `rmean`.
- Time points given in months are whole days: floor(months × 30.4375). Event times are
  whole days, so S at the whole day equals S at the exact month, and the 60-month rate
  (day 1826) stays inside the 5-year horizon. A rate after the last follow-up is NaN,
  unless the curve has reached zero.

Cox models are `cox`'s.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from lifelines.statistics import multivariate_logrank_test
from scipy import stats

DAYS_PER_MONTH = 30.4375
CI_METHODS = ("log-log", "log", "plain")
RATE_MONTHS = (6, 12, 24, 36, 60)
ENDPOINT_ORDER = ("OS", "rwPFS", "TTP", "TTF", "TTNT")
# R's tolerance for "exactly one half" (all.equal's).
HALF_TOLERANCE = float(np.sqrt(np.finfo(float).eps))

KM_TABLE_COLUMNS = ["time", "n_at_risk", "n_events", "n_censored", "survival", "std_err", "ci_low", "ci_high",
                    "weighted_at_risk", "weighted_events"]


def months_to_days(months) -> np.ndarray:
    """Whole days for time points in months (floor of months × 30.4375)."""
    return np.floor(np.asarray(months, dtype=float) * DAYS_PER_MONTH)


def z_quantile(alpha: float) -> float:
    """The normal quantile of a two-sided (1 − alpha) interval (1.96 for alpha 0.05)."""
    return float(stats.norm.ppf(1.0 - alpha / 2.0))


# -- Kaplan–Meier ----------------------------------------------------------------------

def greenwood(n_at_risk, n_events) -> np.ndarray:
    """Greenwood's variance of log S(t): the running sum of d / (n (n − d)).

    Infinite from the time everyone at risk has the event (S = 0), as in R.
    """
    n = np.asarray(n_at_risk, dtype=float)
    d = np.asarray(n_events, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(d > 0, d / (n * (n - d)), 0.0)
    return np.cumsum(terms)


def confidence_band(survival, var_log_survival, method: str = "log-log", alpha: float = 0.05
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise (low, high) limits of S(t), as R's survfit `conf.type`."""
    if method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {method!r}")
    s = np.asarray(survival, dtype=float)
    se = np.sqrt(np.asarray(var_log_survival, dtype=float))
    z = z_quantile(alpha)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if method == "log-log":
            inside = np.where((s > 0) & (s < 1), s, np.nan)
            # Limits of log(-log S) ± z·se/|log S|, mapped back: S^exp(±z·se/|log S|).
            power = np.exp(z * se / np.abs(np.log(inside)))
            return inside ** power, inside ** (1.0 / power)
        if method == "log":
            positive = np.where(s > 0, s, np.nan)
            return positive * np.exp(-z * se), np.minimum(positive * np.exp(z * se), 1.0)
        half_width = z * se * s
        return np.maximum(s - half_width, 0.0), np.minimum(s + half_width, 1.0)


def r_median_time(times, curve, tolerance: float = HALF_TOLERANCE) -> float:
    """The time a step curve falls below one half, by R's print.survfit rule (see module doc)."""
    times = np.asarray(times, dtype=float)
    curve = np.asarray(curve, dtype=float)
    candidates = ~np.isnan(curve) & (curve < 0.5 + tolerance)
    if not candidates.any():
        return float("nan")
    t, y = times[candidates], curve[candidates]
    if abs(y[0] - 0.5) < tolerance:
        drops = np.flatnonzero(y < y[0])
        if drops.size:
            return float((t[0] + t[drops[0]]) / 2.0)
    return float(t[0])


@dataclasses.dataclass(frozen=True)
class KaplanMeier:
    """A fitted curve: one row of `table` per distinct observed time (events and censorings).

    table columns: time, n_at_risk, n_events, n_censored (int, patients), survival, std_err
    (the standard error of S, as R's summary prints it), ci_low, ci_high, weighted_at_risk,
    weighted_events (float; the counts themselves without case weights).
    """
    table: pd.DataFrame
    ci_method: str = "log-log"
    alpha: float = 0.05

    @property
    def n(self) -> int:
        return int(self.table["n_at_risk"].iloc[0]) if len(self.table) else 0

    @property
    def events(self) -> int:
        return int(self.table["n_events"].sum())

    def median(self) -> tuple[float, float, float]:
        """(median, ci_low, ci_high) in the time unit of the data; NaN where not reached."""
        t = self.table["time"]
        return (r_median_time(t, self.table["survival"]), r_median_time(t, self.table["ci_low"]),
                r_median_time(t, self.table["ci_high"]))

    def restricted_mean(self, horizon: float) -> tuple[float, float]:
        """(restricted mean survival time up to `horizon`, its standard error), in the time unit
        of the data, as R's print(survfit, rmean = horizon): the area under the curve from 0,
        the curve held flat past its last time, and the variance
        Σ (area after t)² · d / (n (n − d)) over the times t up to the horizon, of the weighted
        counts. R gives this variance with weights too, not the infinitesimal jackknife of
        the curve's own interval."""
        table = self.table[self.table["time"] <= horizon]
        n = table["weighted_at_risk"].to_numpy(dtype=float)
        d = table["weighted_events"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.append(np.where(n - d == 0, 0.0, d / (n * (n - d))), 0.0)
        times = np.append(table["time"].to_numpy(dtype=float), horizon)
        survival = table["survival"].to_numpy(dtype=float)
        # The rectangles under the step curve: each width at the level before its right end.
        areas = np.diff(np.append(0.0, times)) * np.append(1.0, survival)
        after = np.cumsum(areas[1:][::-1])
        return float(areas.sum()), float(np.sqrt(np.sum(after ** 2 * terms[::-1][1:])))

    def at(self, times) -> pd.DataFrame:
        """S(t) with its interval at the given times, as R's summary(fit, times=…).

        Columns: time, n_at_risk (int), survival, std_err, ci_low, ci_high. The values are
        those of the last observed time ≤ t; after the last follow-up they are NaN unless
        the curve has reached zero.
        """
        t = np.asarray(times, dtype=float)
        table = self.table
        observed = table["time"].to_numpy(dtype=float)
        leaving = (table["n_events"] + table["n_censored"]).to_numpy()
        out = pd.DataFrame({"time": t, "n_at_risk": [int(leaving[observed >= x].sum()) for x in t]})
        columns = ["survival", "std_err", "ci_low", "ci_high"]
        # Row 0 is the start of the curve (S = 1, no variance), for times before the first one.
        low, high = confidence_band([1.0], [0.0], self.ci_method, self.alpha)
        curve = np.vstack([[1.0, 0.0, low[0], high[0]], table[columns].to_numpy(dtype=float)])
        values = curve[np.searchsorted(observed, t, side="right")]
        if not len(observed):
            values[:] = np.nan
        elif table["survival"].iloc[-1] > 0:
            values[t > observed[-1]] = np.nan
        out[columns] = values
        return out


def _checked_weights(weight, size: int) -> np.ndarray:
    weights = np.ones(size) if weight is None else np.asarray(weight, dtype=float)
    if weights.shape != (size,) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("case weights must be one finite, non-negative number per patient")
    return weights


def _infinitesimal_jackknife_se(position, observed, weights, groups, weighted_at_risk, hazard) -> np.ndarray:
    """The standard error of S(t) at each distinct time by the infinitesimal jackknife, as R's
    survfitkm.c: the influence of each group (a patient, or a cluster of patients) on S, its
    squares summed. The influence is carried forward one event time at a time,
    U(t) = U(t−)·(1 − h) + S(t−)·(weight at risk·h − weighted events)/n, where a group's
    weight at risk falls to zero when its last member leaves (R does the same, against
    rounding)."""
    codes, labels = pd.factorize(pd.Series(groups), sort=False)
    n_groups = len(labels)
    order = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[order], np.arange(len(hazard) + 1))
    group_weight = np.bincount(codes, weights=weights, minlength=n_groups).astype(float)
    members = np.bincount(codes, minlength=n_groups)
    influence = np.zeros(n_groups)
    before, variance = 1.0, 0.0
    out = np.empty(len(hazard))
    for j, h in enumerate(hazard):
        rows = order[bounds[j]:bounds[j + 1]]
        if h > 0:
            events = np.bincount(codes[rows], weights=(weights * observed)[rows], minlength=n_groups)
            influence = influence * (1.0 - h) + (group_weight * h - events) * before / weighted_at_risk[j]
            before *= 1.0 - h
            variance = float(influence @ influence)
        out[j] = np.sqrt(variance)
        np.subtract.at(group_weight, codes[rows], weights[rows])
        np.subtract.at(members, codes[rows], 1)
        group_weight[members == 0] = 0.0
    return out


def kaplan_meier(time, event, ci_method: str = "log-log", alpha: float = 0.05, *, weight=None, cluster=None
                 ) -> KaplanMeier:
    """Kaplan–Meier estimate with R's pointwise intervals, as R's survfit(…, weights = weight).

    The curve uses the weighted numbers at risk and of events; the table's counts stay those
    of patients (weighted_at_risk and weighted_events beside them). The variance is R's
    default: Greenwood's (of the weighted counts), unless a weight is not a whole number or
    a `cluster` (one label per patient, matched sets say) is given; then the infinitesimal
    jackknife, clustered where asked.
    """
    if ci_method not in CI_METHODS:
        raise ValueError(f"ci_method must be one of {CI_METHODS}, got {ci_method!r}")
    durations = np.asarray(time, dtype=float)
    observed = np.asarray(event, dtype=float)
    if np.isnan(durations).any() or (durations < 0).any():
        raise ValueError("survival times must be present and not negative")
    if not np.isin(observed, (0, 1)).all():
        raise ValueError("the event flag must be 0 (censored) or 1 (event)")
    weights = _checked_weights(weight, durations.size)
    if durations.size == 0:
        return KaplanMeier(pd.DataFrame({c: pd.Series(dtype=float) for c in KM_TABLE_COLUMNS}), ci_method, alpha)
    times, position = np.unique(durations, return_inverse=True)

    def at_each_time(values, from_here_on=False):
        per_time = np.bincount(position, weights=values, minlength=len(times))
        return per_time[::-1].cumsum()[::-1] if from_here_on else per_time

    leaving = at_each_time(np.ones_like(durations))
    n, d = at_each_time(np.ones_like(durations), True), at_each_time(observed)
    weighted_n, weighted_d = at_each_time(weights, True), at_each_time(weights * observed)
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where((d > 0) & (weighted_d > 0), weighted_d / weighted_n, 0.0)
    survival = np.cumprod(1.0 - hazard)
    if cluster is not None or (weights != np.floor(weights)).any():
        groups = np.arange(durations.size) if cluster is None else np.asarray(cluster)
        std_err = _infinitesimal_jackknife_se(position, observed, weights, groups, weighted_n, hazard)
        with np.errstate(divide="ignore", invalid="ignore"):
            var_log = (std_err / survival) ** 2
    else:
        var_log = greenwood(weighted_n, weighted_d)
        with np.errstate(invalid="ignore"):
            std_err = survival * np.sqrt(var_log)
    low, high = confidence_band(survival, var_log, ci_method, alpha)
    table = pd.DataFrame({
        "time": times, "n_at_risk": n.astype(int), "n_events": d.astype(int),
        "n_censored": (leaving - d).astype(int), "survival": survival,
        "std_err": np.where(survival > 0, std_err, np.nan), "ci_low": low, "ci_high": high,
        "weighted_at_risk": weighted_n, "weighted_events": weighted_d,
    })
    return KaplanMeier(table, ci_method, alpha)


# -- Tables per endpoint ----------------------------------------------------------------

def _rate_name(months: float) -> str:
    return f"rate_{float(months):g}m"


def km_summary_columns(rate_months=RATE_MONTHS) -> list[str]:
    """The km_summary.csv columns (interfaces.md), in order."""
    cols = ["endpoint", "n", "events", "median_months", "median_ci_low", "median_ci_high", "ci_method"]
    for m in rate_months:
        name = _rate_name(m)
        cols += [name, f"{name}_ci_low", f"{name}_ci_high"]
    return cols


def _groups(df: pd.DataFrame, keys: list[str], endpoint_col: str):
    """(key values, rows) per group, endpoints in the study's order, then groups sorted."""
    rank = {e: i for i, e in enumerate(ENDPOINT_ORDER)}
    found = df[keys].dropna().drop_duplicates()  # a missing subgroup value is in no group
    order = sorted(found.itertuples(index=False, name=None),
                   key=lambda k: tuple((rank.get(v, len(rank)), str(v)) if c == endpoint_col else (0, str(v))
                                       for c, v in zip(keys, k)))
    for key in order:
        mask = np.logical_and.reduce([(df[c] == v).to_numpy() for c, v in zip(keys, key)])
        yield key, df[mask]


def _keys(by, endpoint_col: str) -> list[str]:
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    return [*by, endpoint_col]


def km_summary(endpoints: pd.DataFrame, *, by=None, rate_months=RATE_MONTHS, ci_method: str = "log-log",
               alpha: float = 0.05, endpoint_col: str = "endpoint", time_col: str = "time_days",
               event_col: str = "event") -> pd.DataFrame:
    """One row per endpoint (and per level of `by`): the km_summary.csv columns.

    `endpoints` is the gold/endpoints layout (patient_id, endpoint, time_days, event, …),
    possibly joined with cohort covariates for `by`. n and events are int; the median,
    its CI and the rates (proportions 0–1) with their CIs are float, NaN when not reached
    or not estimable; ci_method is the transform's name.
    """
    keys = _keys(by, endpoint_col)
    rows = []
    for key, group in _groups(endpoints, keys, endpoint_col):
        fit = kaplan_meier(group[time_col], group[event_col], ci_method, alpha)
        median, low, high = (v / DAYS_PER_MONTH for v in fit.median())
        row = dict(zip(keys, key), n=fit.n, events=fit.events, median_months=median,
                   median_ci_low=low, median_ci_high=high, ci_method=ci_method)
        rates = fit.at(months_to_days(rate_months))
        for m, r in zip(rate_months, rates.itertuples(index=False)):
            name = _rate_name(m)
            row.update({name: r.survival, f"{name}_ci_low": r.ci_low, f"{name}_ci_high": r.ci_high})
        rows.append(row)
    columns = keys[:-1] + km_summary_columns(rate_months)
    return pd.DataFrame(rows, columns=columns).astype({"n": "int64", "events": "int64"})


def km_curves(endpoints: pd.DataFrame, *, by=None, ci_method: str = "log-log", alpha: float = 0.05,
              endpoint_col: str = "endpoint", time_col: str = "time_days", event_col: str = "event",
              weight_col: str | None = None, cluster_col: str | None = None) -> pd.DataFrame:
    """The step curves for plotting: [by…], endpoint, time_days, time_months, survival, ci_low, ci_high.

    Each curve starts at time 0 with survival 1, then one row per observed time. With
    weight_col (and cluster_col), the weighted curves of `kaplan_meier`.
    """
    keys = _keys(by, endpoint_col)
    parts = []
    for key, group in _groups(endpoints, keys, endpoint_col):
        table = kaplan_meier(group[time_col], group[event_col], ci_method, alpha,
                             weight=None if weight_col is None else group[weight_col],
                             cluster=None if cluster_col is None else group[cluster_col]).table
        curve = table[["time", "survival", "ci_low", "ci_high"]]
        if curve.empty or curve["time"].iloc[0] > 0:
            low, high = confidence_band([1.0], [0.0], ci_method, alpha)
            origin = pd.DataFrame({"time": [0.0], "survival": [1.0], "ci_low": low, "ci_high": high})
            curve = pd.concat([origin, curve], ignore_index=True)
        curve = curve.rename(columns={"time": "time_days"})
        curve.insert(1, "time_months", curve["time_days"] / DAYS_PER_MONTH)
        for col, value in reversed(list(zip(keys, key))):
            curve.insert(0, col, value)
        parts.append(curve)
    cols = keys + ["time_days", "time_months", "survival", "ci_low", "ci_high"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def risk_table(endpoints: pd.DataFrame, *, by=None, every_months: int = 6, horizon_months: int = 60,
               endpoint_col: str = "endpoint", time_col: str = "time_days") -> pd.DataFrame:
    """Numbers at risk under a curve: [by…], endpoint, month, time_days, at_risk (int).

    at_risk = patients whose time is ≥ the whole day of the month (still followed then).
    These are exact counts: they go through disclosure control before being shown.
    """
    keys = _keys(by, endpoint_col)
    months = np.arange(0, horizon_months + 1e-9, every_months)
    days = months_to_days(months)
    rows = []
    for key, group in _groups(endpoints, keys, endpoint_col):
        times = group[time_col].to_numpy(dtype=float)
        for m, d in zip(months, days):
            rows.append(dict(zip(keys, key), month=int(m) if float(m).is_integer() else m, time_days=int(d),
                             at_risk=int((times >= d).sum())))
    return pd.DataFrame(rows, columns=keys + ["month", "time_days", "at_risk"])


# -- Comparisons --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class LogRank:
    chi2: float
    df: int
    p_value: float
    note: str = ""


def logrank(df: pd.DataFrame, group_col: str, *, time_col: str = "time_days", event_col: str = "event"
            ) -> LogRank:
    """Log-rank test across the levels of `group_col` (R's survdiff, rho = 0)."""
    data = df.dropna(subset=[group_col])
    levels = data[group_col].unique()
    if len(levels) < 2:
        return LogRank(np.nan, 0, np.nan, "fewer than two levels")
    if data[event_col].sum() == 0:
        return LogRank(np.nan, len(levels) - 1, np.nan, "no events")
    result = multivariate_logrank_test(data[time_col], data[group_col].astype(str), data[event_col])
    return LogRank(float(result.test_statistic), int(result.degrees_of_freedom), float(result.p_value))
