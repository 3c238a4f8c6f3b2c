"""Covariate balance of a study's two arms: before weighting, after weighting and after
matching, with the standardised mean differences (SMDs) of Table 1 by arm, and the data of
a Love plot.

Every level of every covariate of the score model is a row (an age its mean, and its
"unknown" share when an age is missing). The SMD is baseline's: treated minus comparator,
over the spread of the two arms before any adjustment (the pooled SD of a measure, the
level's p(1 − p) of each arm), which stays fixed after weighting and matching as cobalt
keeps it, so a change in the SMD is a change in the difference alone.
"""
from __future__ import annotations

import typing

import numpy as np
import pandas as pd

from .baseline import measure_smd, proportion_smd
from .propensity import UNKNOWN, covariate_blocks
from .publish import Gate

MEAN = "mean"
SAMPLES = ("before", "weighted", "matched")
COUNTED = ("before", "matched")  # the samples of whole patients: their counts are published
BALANCE_COLUMNS = ["variable", "characteristic", "level",
                   *(f"{arm}_n_{sample}" for sample in COUNTED for arm in ("treated", "comparator")),
                   *(f"{arm}_{sample}" for sample in SAMPLES for arm in ("treated", "comparator")),
                   *(f"smd_{sample}" for sample in SAMPLES), "imbalanced"]


def _balance_gate() -> Gate:
    """The patients of a level per arm, before and after matching, are counts: with 2 of 250
    treated patients in a province, its share (0.8%) is the count. A share, and the SMDs, go
    with their arm's count; the weighted share with the count before weighting (weights do not
    hide who is counted). The levels of a covariate add up to the arm (a partition). The two
    arms' counts before weighting are Table 1 by arm's: `as_table1_by_arm_shows` withholds here
    what that table withholds, so the two tables cannot be played against each other; no
    total of the two arms is written (two "<5" beside a total of 8 are both 4)."""
    dependents = {}
    for sample in COUNTED:
        shares = [f"{{arm}}_{sample}"] + (["{arm}_weighted"] if sample == "before" else [])
        smds = [f"smd_{sample}"] + (["smd_weighted", "imbalanced"] if sample == "before" else [])
        for arm in ("treated", "comparator"):
            dependents[f"{arm}_n_{sample}"] = tuple(c.format(arm=arm) for c in shares) + tuple(smds)
    counts = tuple(c for c in BALANCE_COLUMNS if "_n_" in c)
    return Gate("balance", count_columns=counts, partition_by=("variable",), dependents=dependents)


BALANCE_GATE = _balance_gate()
LOVE_PLOT_COLUMNS = ["variable", "characteristic", "level", "sample", "smd", "abs_smd"]


def _arm_means(values: pd.Series, treated: pd.Series, weights: pd.Series) -> tuple[float, float]:
    """The weighted mean of each arm (treated, comparator) over the patients with a value and
    a weight; empty (NaN) for an arm with no weight."""
    counted = values.notna() & weights.notna()
    means = []
    for arm in (treated, ~treated):
        v, w = values[counted & arm], weights[counted & arm]
        means.append(float((v * w).sum() / w.sum()) if w.sum() > 0 else np.nan)
    return means[0], means[1]


def _rows_of(block) -> list[tuple[str, pd.Series, bool]]:
    """(level, per-patient values, measured) of one covariate's balance rows."""
    if not block.measured:
        return [(level, (block.values == level).astype(float), False) for level in block.levels()]
    missing = block.values.isna()
    return [(MEAN, block.values.astype(float), True)] + ([(UNKNOWN, missing.astype(float), False)]
                                                         if missing.any() else [])


def balance_table(cohort: pd.DataFrame, variables: typing.Sequence, covariates: typing.Sequence[str],
                  patients: pd.DataFrame, weights: pd.Series, threshold: float) -> pd.DataFrame:
    """One row per level of every covariate (in the study's order of covariates, levels in
    Table 1's order): variable (its name), characteristic (its Table 1 words), level, the
    share of the level (an age: the mean) in the treated and comparator arms before
    weighting (every patient of the two arms), weighted (by `weights`, the primary estimand's:
    empty for a patient trimming left out) and matched (the patients propensity.matched_pairs
    paired), their SMDs, and imbalanced: |SMD| after weighting above `threshold`.

    patients: propensity.patient_weights's frame (its index the cohort's)."""
    treated = patients["treated"].astype(bool)
    samples = {"before": pd.Series(1.0, index=patients.index), "weighted": weights,
               "matched": pd.Series(1.0, index=patients.index).where(patients["pair"].notna())}
    rows = []
    for name, block in covariate_blocks(cohort.loc[patients.index], variables, covariates):
        for level, values, measured in _rows_of(block):
            row = {"variable": name, "characteristic": block.words, "level": level}
            for sample in COUNTED:
                # A share's patients: those with the level (a mean's: those with a value).
                has = (values.notna() if measured else values == 1) & samples[sample].notna()
                row[f"treated_n_{sample}"], row[f"comparator_n_{sample}"] = int((has & treated).sum()), \
                    int((has & ~treated).sum())
            means = {sample: _arm_means(values, treated, w) for sample, w in samples.items()}
            for sample, (treated_mean, comparator_mean) in means.items():
                row[f"treated_{sample}"], row[f"comparator_{sample}"] = treated_mean, comparator_mean
                difference = treated_mean - comparator_mean
                row[f"smd_{sample}"] = (measure_smd(values[treated], values[~treated], difference) if measured
                                        else proportion_smd(*means["before"], difference))
            row["imbalanced"] = bool(abs(row["smd_weighted"]) > threshold)
            rows.append(row)
    return pd.DataFrame(rows, columns=BALANCE_COLUMNS)


def love_plot_data(balance: pd.DataFrame) -> pd.DataFrame:
    """The balance table's SMDs, one row per level and sample (before, weighted, matched),
    the levels ordered by their |SMD| before weighting, largest first (a Love plot's rows)."""
    order = balance.reindex(balance["smd_before"].abs().sort_values(ascending=False, kind="stable").index)
    rows = [{"variable": row.variable, "characteristic": row.characteristic, "level": row.level, "sample": sample,
             "smd": getattr(row, f"smd_{sample}"), "abs_smd": abs(getattr(row, f"smd_{sample}"))}
            for row in order.itertuples() for sample in SAMPLES]
    return pd.DataFrame(rows, columns=LOVE_PLOT_COLUMNS)


def as_table1_by_arm_shows(balance: pd.DataFrame, shown_table1_by_arm: pd.DataFrame, treated: str,
                           comparator: str, mean_level: str) -> pd.DataFrame:
    """The balance table with each arm's count before weighting withheld ("<5" or "*", as
    published) wherever Table 1 by arm withholds that arm's count of the level; the gate keeps
    such a cell as it is and withholds its shares and SMDs with it. mean_level: Table 1's level
    for a measured variable (its median (IQR) row, whose n is the patients with a value)."""
    shown = shown_table1_by_arm.set_index(["arm", "characteristic", "level"])["n"]
    out = balance.copy()
    for side, arm in (("treated", treated), ("comparator", comparator)):
        column = f"{side}_n_before"
        out[column] = out[column].astype(object)
        for i, row in out.iterrows():
            level = mean_level if row["level"] == MEAN else row["level"]
            cell = shown.get((arm, row["characteristic"], level))
            if isinstance(cell, str):
                out.at[i, column] = cell
    return out
