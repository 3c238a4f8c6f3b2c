"""Comparative studies (two arms): each endpoint compared between the index arm and the
comparator, naive or weighted (study rules §8).

The input per endpoint is one row per patient: arm (two values), time_days, event and a
weight (1 for the naive comparison and for matched pairs; inverse probability weights
otherwise), with matched_set naming each matched pair. The estimators are `survival`'s
and `cox`'s, held to R (tests/reference/comparison/):

- Kaplan–Meier per arm as R's survfit(Surv(time, event) ~ arm, weights = w): the curve of
  the weighted counts, the variance the infinitesimal jackknife where a weight is not a
  whole number or a cluster is given (Greenwood's otherwise; with weights of 1 the two are
  equal). The numbers at risk stay counts of patients (`survival.risk_table`).
- The hazard ratio of the index arm as R's coxph(Surv(time, event) ~ arm, weights = w,
  robust = TRUE), with cluster = matched_set for matched pairs; beside it the naive hazard
  ratio, a plain Cox model without weights on the same patients.
- The restricted mean survival time per arm at 24 and 36 months (whole days, as
  `survival.months_to_days`: days 730 and 1095) as R's print(survfit, rmean = …), and its
  difference (index − comparator) with a normal interval from the two arms' variances
  added: the arms are separate samples. For matched pairs this ignores the pairing, which
  makes the interval a little wider, not narrower.
- The E-value of the hazard ratio and of its interval's limit nearer 1 (`e_values`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from lifelines.exceptions import ConvergenceError

from . import cox, survival
from .efficacy import endpoint_order
from .publish import Gate
from .safety import SEVERE_GRADE

RMST_MONTHS = (24, 36)
INDEX_FLAG = "index_arm"


def _rmst_columns(months) -> list[str]:
    names = []
    for m in months:
        name = f"rmst_{float(m):g}m"
        names += [f"index_{name}", f"comparator_{name}", f"{name}_difference", f"{name}_difference_ci_low",
                  f"{name}_difference_ci_high"]
    return names


def comparison_columns(rmst_months=RMST_MONTHS) -> list[str]:
    """The comparison.csv columns, in order."""
    return (["endpoint", "method", "index_arm", "comparator_arm", "index_n", "index_events", "comparator_n",
             "comparator_events", "hr", "hr_ci_low", "hr_ci_high", "hr_p_value"] + _rmst_columns(rmst_months)
            + ["naive_hr", "naive_hr_ci_low", "naive_hr_ci_high", "e_value", "e_value_ci", "note"])


def comparison_gate(rmst_months=RMST_MONTHS) -> Gate:
    """Each arm's n and events are counts of patients; the statistics are withheld with an arm's
    count of 1–4, as a median is (`efficacy.km_gate`): with 2 events in an arm, its hazard ratio
    and its restricted mean are those two patients' times. An arm's events are withheld where
    n − events (its censored patients) is 1–4."""
    columns = comparison_columns(rmst_months)
    stats = [c for c in columns[columns.index("hr"):] if c != "note"]
    counts = ("index_n", "index_events", "comparator_n", "comparator_events")
    return Gate("comparison", count_columns=counts, dependents={c: stats for c in counts},
                complements={"index_events": "index_n", "comparator_events": "comparator_n"})


def arm_pair(frame: pd.DataFrame, index_arm: str) -> tuple[str, str]:
    """(index arm, comparator arm): the frame's arm column must hold the index arm and one other."""
    arms = sorted(frame["arm"].dropna().unique().tolist(), key=str)
    others = [a for a in arms if a != index_arm]
    if index_arm not in arms or len(others) != 1:
        raise ValueError(f"a comparison needs the index arm {index_arm!r} and one other arm, found {arms}")
    return index_arm, others[0]


def arm_curves(frame: pd.DataFrame, index_arm: str, *, weight_col: str = "weight", cluster_col: str | None = None,
               ci_method: str = "log-log", alpha: float = 0.05) -> dict[str, survival.KaplanMeier]:
    """The weighted Kaplan–Meier curve of each arm, index arm first."""
    curves = {}
    for arm in arm_pair(frame, index_arm):
        mine = frame[frame["arm"] == arm]
        curves[arm] = survival.kaplan_meier(mine["time_days"], mine["event"], ci_method, alpha,
                                            weight=mine[weight_col],
                                            cluster=None if cluster_col is None else mine[cluster_col])
    return curves


def rmst_difference(curves: dict[str, survival.KaplanMeier], horizon_days: float, alpha: float = 0.05) -> dict:
    """The restricted means of the two curves (index first) up to horizon_days, and their
    difference with its interval, all in days."""
    (index_mean, index_se), (other_mean, other_se) = (c.restricted_mean(horizon_days) for c in curves.values())
    difference = index_mean - other_mean
    half_width = survival.z_quantile(alpha) * np.hypot(index_se, other_se)
    return {"index": index_mean, "comparator": other_mean, "difference": difference,
            "ci_low": difference - half_width, "ci_high": difference + half_width}


def hazard_ratio(frame: pd.DataFrame, index_arm: str, *, weight_col: str | None = "weight",
                 cluster_col: str | None = None, alpha: float = 0.05) -> tuple[pd.Series, str]:
    """(coef, se, hr, ci_low, ci_high, p_value of the index arm against the comparator; a note).

    With weight_col the robust variance of R's coxph(…, weights, robust = TRUE), clustered on
    cluster_col if given; without, a plain Cox model. An arm without events has no hazard
    ratio (NaN, and the note says so)."""
    _, comparator = arm_pair(frame, index_arm)
    events = frame.groupby("arm")["event"].sum()
    empty = pd.Series(np.nan, index=["coef", "se", "hr", "ci_low", "ci_high", "p_value"])
    for arm in (index_arm, comparator):
        if events.get(arm, 0) == 0:
            return empty, f"no events in arm {arm}: hazard ratio not estimable"
    data = frame.assign(**{INDEX_FLAG: (frame["arm"] == index_arm).astype(float)})
    try:
        estimates = cox.fit_cox(data, [INDEX_FLAG], alpha=alpha, weight_col=weight_col, cluster_col=cluster_col,
                                robust=weight_col is not None)
    except (ConvergenceError, np.linalg.LinAlgError) as exc:
        return empty, f"hazard ratio not fitted: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return estimates.loc[INDEX_FLAG], ""


def risk_ratio_from_hazard_ratio(hr: float) -> float:
    """VanderWeele's conversion of a hazard ratio to a risk ratio for a common outcome (over
    15% by the end of follow-up, as deaths and progressions here are):
    RR ≈ (1 − 0.5^√HR) / (1 − 0.5^√(1/HR)). The rare-outcome reading RR ≈ HR would overstate
    the E-value of a common outcome."""
    return (1.0 - 0.5 ** np.sqrt(hr)) / (1.0 - 0.5 ** np.sqrt(1.0 / hr))


def e_value_of_risk_ratio(rr: float) -> float:
    """VanderWeele & Ding (2017): RR + √(RR (RR − 1)), with RR taken above 1 (1 / RR for a
    protective ratio)."""
    rr = rr if rr >= 1 else 1.0 / rr
    return float(rr + np.sqrt(rr * (rr - 1.0)))


def e_values(hr: float, ci_low: float, ci_high: float) -> tuple[float, float]:
    """(E-value of the hazard ratio, E-value of its interval's limit nearer 1): how strongly an
    unmeasured confounder would have to be tied to both the arm and the outcome, as risk
    ratios, to explain the estimate (or to move the interval to 1) away. An interval that
    holds 1 has an E-value of 1. NaN without an estimate."""
    if not all(np.isfinite([hr, ci_low, ci_high])) or hr <= 0:
        return np.nan, np.nan
    point = e_value_of_risk_ratio(risk_ratio_from_hazard_ratio(hr))
    if ci_low <= 1.0 <= ci_high:
        return point, 1.0
    nearer = ci_low if hr > 1 else ci_high
    return point, e_value_of_risk_ratio(risk_ratio_from_hazard_ratio(nearer))


def comparison_row(frame: pd.DataFrame, index_arm: str, *, weight_col: str = "weight", cluster_col: str | None = None,
                   rmst_months=RMST_MONTHS, alpha: float = 0.05) -> dict:
    """One endpoint's comparison (the comparison.csv columns but endpoint and method):
    patients and events per arm (exact counts, for the gate), the weighted hazard ratio,
    the restricted means (months) and their differences, the naive hazard ratio and the
    E-values of the weighted one."""
    index, comparator = arm_pair(frame, index_arm)
    curves = arm_curves(frame, index_arm, weight_col=weight_col, cluster_col=cluster_col, alpha=alpha)
    row = {"index_arm": index, "comparator_arm": comparator}
    for side, arm in (("index", index), ("comparator", comparator)):
        row.update({f"{side}_n": curves[arm].n, f"{side}_events": curves[arm].events})
    weighted, note = hazard_ratio(frame, index_arm, weight_col=weight_col, cluster_col=cluster_col, alpha=alpha)
    naive, naive_note = hazard_ratio(frame, index_arm, weight_col=None, alpha=alpha)
    row.update(hr=weighted["hr"], hr_ci_low=weighted["ci_low"], hr_ci_high=weighted["ci_high"],
               hr_p_value=weighted["p_value"])
    for months, days in zip(rmst_months, survival.months_to_days(rmst_months)):
        means = rmst_difference(curves, days, alpha)
        name = f"rmst_{float(months):g}m"
        row.update({f"index_{name}": means["index"], f"comparator_{name}": means["comparator"],
                    f"{name}_difference": means["difference"], f"{name}_difference_ci_low": means["ci_low"],
                    f"{name}_difference_ci_high": means["ci_high"]})
        for key in _rmst_columns([months]):
            row[key] /= survival.DAYS_PER_MONTH
    e_point, e_limit = e_values(row["hr"], row["hr_ci_low"], row["hr_ci_high"])
    row.update(naive_hr=naive["hr"], naive_hr_ci_low=naive["ci_low"], naive_hr_ci_high=naive["ci_high"],
               e_value=e_point, e_value_ci=e_limit, note="; ".join(dict.fromkeys(n for n in (note, naive_note) if n)))
    return row


def comparison_table(endpoints: pd.DataFrame, index_arm: str, method: str, *, weight_col: str = "weight",
                     cluster_col: str | None = None, rmst_months=RMST_MONTHS, alpha: float = 0.05) -> pd.DataFrame:
    """The comparison.csv rows of one method (its name in `method`: naive, IPTW, matching …),
    one per endpoint in the contract's order. `endpoints`: endpoint, arm, time_days, event and
    the weight (and cluster) columns; a matched analysis passes only its matched patients.
    Counts are exact ints: the gate (`comparison_gate`) withholds them on the way out."""
    rows = []
    for endpoint in endpoint_order(endpoints):
        row = comparison_row(endpoints[endpoints["endpoint"] == endpoint], index_arm, weight_col=weight_col, cluster_col=cluster_col,
                             rmst_months=rmst_months, alpha=alpha)
        rows.append({"endpoint": endpoint, "method": method, **row})
    counts = {c: "int64" for c in ("index_n", "index_events", "comparator_n", "comparator_events")}
    return pd.DataFrame(rows, columns=comparison_columns(rmst_months)).astype(counts)


# -- Safety: the risk of a grade ≥ 3 event per arm ----------------------------------------------

ANY_SEVERE_EVENT = f"any grade ≥ {SEVERE_GRADE} event"
SAFETY_COMPARISON_COLUMNS = ["outcome", "method", "index_arm", "comparator_arm", "index_n", "index_events",
                             "index_risk_percent", "comparator_n", "comparator_events", "comparator_risk_percent",
                             "risk_difference_percent", "risk_difference_ci_low", "risk_difference_ci_high",
                             "risk_ratio", "risk_ratio_ci_low", "risk_ratio_ci_high", "note"]
_SAFETY_STATS = {"index": ["index_risk_percent"], "comparator": ["comparator_risk_percent"],
                 "both": SAFETY_COMPARISON_COLUMNS[SAFETY_COMPARISON_COLUMNS.index("risk_difference_percent"):-1]}
# The weighted risks are shown as percentages, never as weighted counts, and go with their arm's
# patients and events: with weights of 1 (matched pairs) a risk of 2.0% among 100 patients is the
# count of 2. Events are also withheld where the patients without one number 1–4.
SAFETY_COMPARISON_GATE = Gate(
    "safety_comparison", count_columns=("index_n", "index_events", "comparator_n", "comparator_events"),
    dependents={f"{side}_{count}": _SAFETY_STATS[side] + _SAFETY_STATS["both"]
                for side in ("index", "comparator") for count in ("n", "events")},
    complements={"index_events": "index_n", "comparator_events": "comparator_n"})


def severe_event_flags(patients: pd.DataFrame, events: pd.DataFrame, terms) -> pd.DataFrame:
    """One row per patient and outcome (ANY_SEVERE_EVENT, then each of `terms`): the patients'
    columns, outcome, and severe (1 with a grade ≥ 3 event of that outcome in the safety
    window, else 0). `events` is gold/safety_events (the worst grade per patient, term and
    source); a patient without events counts as 0, as in the incidence table."""
    severe = events[events["grade"].fillna(0) >= SEVERE_GRADE]
    parts = []
    for outcome in (ANY_SEVERE_EVENT, *terms):
        hit = severe if outcome == ANY_SEVERE_EVENT else severe[severe["term"] == outcome]
        parts.append(patients.assign(outcome=outcome, severe=patients["patient_id"].isin(hit["patient_id"]).astype(int)))
    return pd.concat(parts, ignore_index=True)


def risk_comparison(frame: pd.DataFrame, index_arm: str, *, outcome_col: str = "severe", weight_col: str = "weight",
                    cluster_col: str | None = None, alpha: float = 0.05) -> dict:
    """The weighted risk of a 0/1 outcome per arm, their difference and their ratio, with
    intervals (the SAFETY_COMPARISON_COLUMNS but outcome and method).

    The variances are R's sandwich::vcovHC(type = "HC0") of glm(y ~ arm, weights = w) with the
    gaussian family (the difference) and poisson(link = "log") (the log of the ratio); for
    matched pairs vcovCL(cluster = matched_set, type = "HC0", cadjust = FALSE), as coxph's
    clustered variance. The model has one parameter per arm, so its sandwich is the sum of
    squared influence terms: a patient's on the arm's risk p is w (y − p) / Σw, on log p the
    same over p. A ratio with no event in an arm does not exist (NaN, with a note)."""
    index, comparator = arm_pair(frame, index_arm)
    y = frame[outcome_col].to_numpy(dtype=float)
    w = frame[weight_col].to_numpy(dtype=float)
    groups = np.arange(len(frame)) if cluster_col is None else frame[cluster_col].to_numpy()
    row = {"index_arm": index, "comparator_arm": comparator}
    risks, on_difference, on_log_ratio, notes = {}, np.zeros(len(frame)), np.zeros(len(frame)), []
    for side, arm, sign in (("index", index, 1.0), ("comparator", comparator, -1.0)):
        mine = (frame["arm"] == arm).to_numpy()
        risk = float(np.sum(w[mine] * y[mine]) / np.sum(w[mine]))
        influence = np.where(mine, w * (y - risk) / np.sum(w[mine]), 0.0)
        on_difference += sign * influence
        on_log_ratio += sign * influence / risk if risk > 0 else np.nan
        if risk == 0:
            notes.append(f"no events in arm {arm}: risk ratio not estimable")
        risks[side] = risk
        row.update({f"{side}_n": int(mine.sum()), f"{side}_events": int(y[mine].sum()),
                    f"{side}_risk_percent": 100.0 * risk})

    def half_width(influence):
        return survival.z_quantile(alpha) * np.sqrt(np.sum(pd.Series(influence).groupby(groups).sum() ** 2))

    difference = risks["index"] - risks["comparator"]
    width = half_width(on_difference)
    row.update(risk_difference_percent=100.0 * difference, risk_difference_ci_low=100.0 * (difference - width),
               risk_difference_ci_high=100.0 * (difference + width))
    if notes:
        row.update(risk_ratio=np.nan, risk_ratio_ci_low=np.nan, risk_ratio_ci_high=np.nan)
    else:
        log_ratio, width = np.log(risks["index"] / risks["comparator"]), half_width(on_log_ratio)
        row.update(risk_ratio=np.exp(log_ratio), risk_ratio_ci_low=np.exp(log_ratio - width),
                   risk_ratio_ci_high=np.exp(log_ratio + width))
    row["note"] = "; ".join(notes)
    return row


def safety_comparison_table(flags: pd.DataFrame, index_arm: str, method: str, *, weight_col: str = "weight",
                            cluster_col: str | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """The safety_comparison.csv rows of one method, one per outcome of `severe_event_flags`
    (in its order). Counts are exact ints: SAFETY_COMPARISON_GATE withholds them on the way out."""
    rows = [{"outcome": outcome, "method": method,
             **risk_comparison(frame, index_arm, weight_col=weight_col, cluster_col=cluster_col, alpha=alpha)}
            for outcome, frame in flags.groupby("outcome", sort=False)]
    counts = {c: "int64" for c in ("index_n", "index_events", "comparator_n", "comparator_events")}
    return pd.DataFrame(rows, columns=SAFETY_COMPARISON_COLUMNS).astype(counts)
