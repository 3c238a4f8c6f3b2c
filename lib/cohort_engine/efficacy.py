"""Efficacy: Kaplan–Meier tables and figures of the study's endpoints (study rules §8).

The estimators are `survival`'s; this module applies the study's choices (CI method,
rate months, horizon, numbers at risk) and the disclosure rules a curve must obey.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import figures, survival
from .disclosure import risk_table_display
from .publish import Gate
from .study_config import StudyConfig

ENDPOINT_NAMES = {
    "OS": "Overall survival",
    "rwPFS": "Real-world progression-free survival",
    "TTP": "Time to progression",
    "TTF": "Time to treatment failure",
    "TTNT": "Time to next treatment or death",
}


def endpoint_order(endpoints: pd.DataFrame) -> list[str]:
    """The endpoints present, in the contract's order (OS, rwPFS, TTP, TTF, TTNT), then any other."""
    found = list(dict.fromkeys(endpoints["endpoint"]))
    return [e for e in survival.ENDPOINT_ORDER if e in found] + sorted(e for e in found
                                                                        if e not in survival.ENDPOINT_ORDER)


def km_table(endpoints: pd.DataFrame, study: StudyConfig, rate_months=None, by: str | None = None) -> pd.DataFrame:
    """survival.km_summary (per level of `by`, if given) with the study's CI method and rate
    months (interfaces.md columns), rates past the curve's last shown point withheld
    (`without_thin_rates`)."""
    months = study.analysis.rate_months if rate_months is None else rate_months
    summary = survival.km_summary(endpoints, by=by, rate_months=months, ci_method=study.analysis.ci_method)
    keys = ("endpoint",) if by is None else (by, "endpoint")
    return without_thin_rates(summary, endpoints, months, study.disclosure.min_cell, keys=keys)


def without_thin_rates(summary: pd.DataFrame, endpoints: pd.DataFrame, rate_months, min_cell: int,
                       keys: tuple[str, ...] = ("endpoint",)) -> pd.DataFrame:
    """The summary with each rate, and its CI, left empty where fewer than min_cell patients
    of its row are still at risk at that time (time ≥ the rate's day): there the curve's
    steps are single patients' events (a 60-month rate of 3.8% after one of 7.7% is one event
    among two), and the figures stop the curve at the same point (`curves_fit_to_show`)."""
    out = summary.copy()
    for i, row in out.iterrows():
        mine = endpoints[np.logical_and.reduce([(endpoints[k] == row[k]).to_numpy() for k in keys])]
        times = mine["time_days"].to_numpy(dtype=float)
        for months in rate_months:
            if (times >= survival.months_to_days(months)).sum() < min_cell:
                name = f"rate_{float(months):g}m"
                out.loc[i, [name, f"{name}_ci_low", f"{name}_ci_high"]] = np.nan
    return out


def km_gate(columns, name: str = "km_summary", across: tuple[str, ...] | None = None) -> Gate:
    """n and events are counts; the median and the rates are withheld with an n or an events
    count of 1–4: with 1 event among 135 patients the 6-month rate reads 99.3%, which is the count.
    n is the events' total: 147 events among 150 would name the 3 censored patients.

    across: the columns whose rows are the parts of one shown total (the arms of an endpoint
    add up to its km_summary row: 3 patients in one arm would be the total minus the others)."""
    stats = [c for c in columns if c.startswith(("median", "rate_"))]
    return Gate(name, count_columns=("n", "events"), dependents={"n": stats, "events": stats},
                total_column="n", partition_by=across)


def with_arms(endpoints: pd.DataFrame, cohort: pd.DataFrame) -> pd.DataFrame:
    """The endpoints of the patients in an arm, with their arm's name (`arm`)."""
    arms = cohort[["patient_id", "arm"]].dropna(subset=["arm"])
    return endpoints.merge(arms, on="patient_id")


def km_table_by_arm(data: pd.DataFrame, study: StudyConfig) -> pd.DataFrame:
    """km_table per arm of the endpoints `with_arms`: the arm's name, then the km_summary
    columns; endpoints in the contract's order, the arms in the study's."""
    table = km_table(data, study, by="arm")
    endpoint_rank = {e: i for i, e in enumerate(endpoint_order(data))}
    arm_rank = {arm.name: i for i, arm in enumerate(study.arms)}
    order = sorted(table.index, key=lambda i: (endpoint_rank[table.at[i, "endpoint"]], arm_rank[table.at[i, "arm"]]))
    return table.loc[order].reset_index(drop=True)


def km_by_arm_gate(columns) -> Gate:
    return km_gate(columns, "km_summary_by_arm", across=("endpoint",))


def _horizon_months(study: StudyConfig) -> int:
    return int(round(study.endpoints.horizon_days / survival.DAYS_PER_MONTH))


def _risk_table(endpoints: pd.DataFrame, study: StudyConfig, by=None) -> pd.DataFrame:
    return survival.risk_table(endpoints, by=by, every_months=study.analysis.risk_table_every_months,
                               horizon_months=_horizon_months(study))


def curves_fit_to_show(curves: pd.DataFrame, endpoints: pd.DataFrame, group_col: str, min_cell: int
                       ) -> tuple[pd.DataFrame, list]:
    """The curves a figure may draw, and the groups left out.

    A group with 1 to min_cell − 1 events is left out: its steps would count them. The others
    are cut where fewer than min_cell patients remain at risk, since the last steps of a curve
    are single patients' events (at risk at t = patients of the group whose time is ≥ t).
    """
    keep = np.zeros(len(curves), dtype=bool)
    withheld = []
    for group, rows in curves.groupby(group_col, sort=False).groups.items():
        mine = endpoints[endpoints[group_col] == group]
        if 0 < mine["event"].sum() < min_cell:
            withheld.append(group)
            continue
        times = np.sort(mine["time_days"].to_numpy(dtype=float))
        t = curves.loc[rows, "time_days"].to_numpy(dtype=float)
        at_risk = len(times) - np.searchsorted(times, t, side="left")
        keep[curves.index.get_indexer(rows)] = at_risk >= min_cell
    return curves[keep], withheld


def km_figure(endpoints: pd.DataFrame, study: StudyConfig, group_col: str, title: str, order=None,
              risk_groups=None, weight_col: str | None = None) -> bytes:
    """figures.km_with_risk_table for one endpoint, one curve per value of group_col.

    risk_groups: the groups whose numbers at risk are printed (default all); weight_col: the
    curves weighted by it (the numbers at risk stay counts of patients)."""
    min_cell = study.disclosure.min_cell
    by = None if group_col == "endpoint" else group_col
    curves = survival.km_curves(endpoints, by=by, ci_method=study.analysis.ci_method, weight_col=weight_col)
    curves, withheld = curves_fit_to_show(curves, endpoints, group_col, min_cell)
    if withheld:
        if set(withheld) == set(endpoints[group_col]):
            title += f" ({'curve' if len(withheld) == 1 else 'curves'} not drawn: fewer than {min_cell} events)"
        else:
            title += f" (not drawn, fewer than {min_cell} events: {', '.join(map(str, withheld))})"
    risk = _risk_table(endpoints, study, by=by)
    if risk_groups is not None:
        risk = risk[risk[group_col].isin(risk_groups)]
    risk = risk_table_display(risk, min_cell=min_cell)
    curves, risk = curves.rename(columns={group_col: "group"}), risk.rename(columns={group_col: "group"})
    if order is not None:
        rank = {g: i for i, g in enumerate(order)}
        curves = curves.sort_values("group", key=lambda s: s.map(rank), kind="stable")
    return figures.km_with_risk_table(curves, risk, title, horizon_months=_horizon_months(study))
