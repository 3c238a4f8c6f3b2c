"""The comparison section of a comparative study's report, in words: the design, the
weights, the balance, efficacy and safety compared, the E-value and the limits.

Every number comes from a frame that passed its gate (`publish`); the exact results
(`comparative.ComparativeAnalysis`) are read only for what is not a count: which
covariates stay unbalanced, and the hazard ratios drawn on the forest plot.
"""
from __future__ import annotations

import pandas as pd

from . import report
from .baseline_variables import variable_words
from .comparative import ComparativeAnalysis, primary_method_name
from .disclosure import MASKED, footnote
from .efficacy import ENDPOINT_NAMES
from .publish import Gate
from .report_text import (figure_block, note_block, number, percent_text, signed_with_ci, smd_text, table_block,
                          with_ci)
from .study_config import StudyConfig

WEIGHTS_GATE = Gate("comparison_weights", count_columns=("patients",),
                    dependents={"patients": ("effective_sample_size", "largest_weight")})


def arm_labels(study: StudyConfig) -> dict[str, str]:
    return {arm.name: arm.label or arm.name for arm in study.arms}


def arms_too_small(study: StudyConfig, cohort: pd.DataFrame) -> list[str]:
    """The arms (their labels) with fewer than min_cell patients: a propensity model, a hazard
    ratio or a risk on so few says nothing, and nothing of it could be shown."""
    sizes = cohort["arm"].value_counts() if "arm" in cohort else pd.Series(dtype=int)
    labels = arm_labels(study)
    return [labels[arm.name] for arm in study.arms if sizes.get(arm.name, 0) < study.disclosure.min_cell]


def not_compared_section(study: StudyConfig, too_small: list[str]) -> report.Section:
    return report.Section("comparison", "Comparison of the arms", [report.Block(
        "p", f"The arms are not compared: {' and '.join(too_small)} "
             f"{'has' if len(too_small) == 1 else 'have'} fewer than {study.disclosure.min_cell} patients. "
             "gold/comparison_dataset is written empty.")])


def design_words(study: StudyConfig, analysis: ComparativeAnalysis) -> str:
    config = study.comparison
    labels = arm_labels(study)
    words = {v.name: variable_words(v) for v in study.variables}
    covariates = ", ".join(words.get(c, c) for c in config.covariates)
    other = "ATT" if config.estimand == "ATE" else "ATE"
    estimand = {"ATE": "the average treatment effect (ATE: as if every patient of both arms had had each treatment)",
                "ATT": "the average effect on the treated (ATT: as if the first arm's patients had had the other)"}
    trimming = ("" if config.trim_percentiles is None else
                f" Patients whose score lies outside its {number(config.trim_percentiles[0], 1)}th to "
                f"{number(config.trim_percentiles[1], 1)}th percentiles are left out first.")
    return (f"Target population: the study's cohort in either arm. Arms: {labels[analysis.treated]} (the first arm) "
            f"against {labels[analysis.comparator]}. A propensity score, the probability of the first arm, is "
            f"fitted by logistic regression on {covariates} (a missing value as its own level). The primary "
            f"analysis weights patients by the stabilised inverse probability of their own arm, estimating "
            f"{estimand[config.estimand]}. Sensitivity analyses: {other} weights, and 1:1 nearest-neighbour "
            f"matching on the logit of the score without replacement within {number(config.caliper_sd, 2)} standard "
            f"deviations of it.{trimming} Hazard ratios come from Cox models with robust (sandwich) variance, "
            "clustered on the matched pair for matching; the naive hazard ratio is the unweighted one.")


def balance_display(shown: pd.DataFrame, analysis: ComparativeAnalysis, labels: dict[str, str]) -> pd.DataFrame:
    """One row per covariate level: each arm's share (an age: its mean) before and after
    weighting, and the SMDs before, weighted and matched."""
    def value(row, column):
        v = getattr(row, column)
        if isinstance(v, str):
            return v
        return number(v, 1) if row.level == "mean" else percent_text(100.0 * v if pd.notna(v) else v)

    first, second = labels[analysis.treated], labels[analysis.comparator]
    rows = []
    for row in shown.itertuples(index=False):
        rows.append({"characteristic": row.characteristic, "level": row.level,
                     f"{first}, before": value(row, "treated_before"), f"{second}, before": value(row, "comparator_before"),
                     f"{first}, weighted": value(row, "treated_weighted"),
                     f"{second}, weighted": value(row, "comparator_weighted"),
                     "SMD before": smd_text(row.smd_before), "SMD weighted": smd_text(row.smd_weighted),
                     "SMD matched": smd_text(row.smd_matched),
                     "imbalanced": "yes" if row.imbalanced is True else (MASKED if row.imbalanced == MASKED else "")})
    return pd.DataFrame(rows)


def weights_display(shown: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"weights": shown["weights"], "arm": shown["arm"].map(labels),
                         "patients": shown["patients"],
                         "effective sample size": [number(v, 1) for v in shown["effective_sample_size"]],
                         "largest weight": [number(v, 2) for v in shown["largest_weight"]]})


def efficacy_display(shown: pd.DataFrame, rmst_months) -> pd.DataFrame:
    out = pd.DataFrame({"endpoint": shown["endpoint"], "method": shown["method"],
                        "first arm n / events": [f"{a} / {b}" for a, b in zip(shown["index_n"], shown["index_events"])],
                        "second arm n / events": [f"{a} / {b}" for a, b in zip(shown["comparator_n"],
                                                                                 shown["comparator_events"])],
                        "HR (95% CI)": [with_ci(r.hr, r.hr_ci_low, r.hr_ci_high, 2, missing="not estimable")
                                        for r in shown.itertuples(index=False)]})
    for months in rmst_months:
        name = f"rmst_{float(months):g}m_difference"
        out[f"RMST difference at {months} months, months (95% CI)"] = [
            signed_with_ci(v, lo, hi) for v, lo, hi in zip(shown[name], shown[f"{name}_ci_low"],
                                                           shown[f"{name}_ci_high"])]
    out["naive HR (95% CI)"] = [with_ci(r.naive_hr, r.naive_hr_ci_low, r.naive_hr_ci_high, 2, missing="not estimable")
                                for r in shown.itertuples(index=False)]
    return out


def safety_display(shown: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "outcome": shown["outcome"], "method": shown["method"],
        "first arm: n, risk": [f"{n}, {percent_text(r)}" for n, r in zip(shown["index_n"], shown["index_risk_percent"])],
        "second arm: n, risk": [f"{n}, {percent_text(r)}" for n, r in zip(shown["comparator_n"],
                                                                            shown["comparator_risk_percent"])],
        "risk difference, points (95% CI)": [signed_with_ci(r.risk_difference_percent, r.risk_difference_ci_low,
                                                            r.risk_difference_ci_high)
                                             for r in shown.itertuples(index=False)],
        "risk ratio (95% CI)": [with_ci(r.risk_ratio, r.risk_ratio_ci_low, r.risk_ratio_ci_high, 2,
                                         missing="not estimable") for r in shown.itertuples(index=False)]})


def forest_rows(shown: pd.DataFrame) -> pd.DataFrame:
    """label, hr, ci_low, ci_high, text for figures.forest: every endpoint and method whose
    hazard ratio passed the gate, the naive one beside it in words."""
    rows = []
    for r in shown.itertuples(index=False):
        if isinstance(r.hr, str) or pd.isna(r.hr):
            continue
        rows.append({"label": f"{r.endpoint}: {r.method}", "hr": r.hr, "ci_low": r.hr_ci_low, "ci_high": r.hr_ci_high,
                     "text": f"{with_ci(r.hr, r.hr_ci_low, r.hr_ci_high, 2)}; naive "
                             f"{with_ci(r.naive_hr, r.naive_hr_ci_low, r.naive_hr_ci_high, 2, missing='NE')}"})
    return pd.DataFrame(rows, columns=["label", "hr", "ci_low", "ci_high", "text"])


def imbalance_words(analysis: ComparativeAnalysis, shown_balance: pd.DataFrame, threshold: float) -> str:
    flagged = shown_balance[shown_balance["imbalanced"].astype(str) == "True"]
    withheld = int((shown_balance["imbalanced"].astype(str) == MASKED).sum())
    names = list(dict.fromkeys(f"{r.characteristic} ({r.level})" for r in flagged.itertuples(index=False)))
    unjudged = (f" {withheld} level(s) of few patients are withheld and not judged here." if withheld else "")
    if not names:
        return (f"After weighting no covariate level shown has an absolute SMD above {number(threshold, 2)}."
                + unjudged)
    return (f"After weighting, {len(names)} covariate level(s) keep an absolute SMD above {number(threshold, 2)}: "
            f"{'; '.join(names)}. Their imbalance is not removed by the weights: read the comparison with it in "
            "mind." + unjudged)


def e_value_words(shown: pd.DataFrame, study: StudyConfig) -> str:
    primary = shown[shown["method"] == primary_method_name(study.comparison.estimand)]
    if primary.empty:
        return ""
    row = primary.iloc[0]
    if isinstance(row["e_value"], str) or pd.isna(row["e_value"]):
        return f"E-value of the primary hazard ratio ({row['endpoint']}): not shown."
    return (f"E-value of the primary hazard ratio ({ENDPOINT_NAMES.get(row['endpoint'], row['endpoint'])}, "
            f"{with_ci(row['hr'], row['hr_ci_low'], row['hr_ci_high'], 2)}): {number(row['e_value'], 2)}, and "
            f"{number(row['e_value_ci'], 2)} for the limit of its CI nearer 1. An unmeasured confounder would need "
            "an association of that risk ratio with both the treatment and the outcome, beyond the covariates, "
            "to explain the hazard ratio away (to move the CI to 1). The hazard ratio is taken as a risk ratio "
            "of a common outcome: RR = (1 − 0.5^√HR) / (1 − 0.5^√(1/HR)).")


LIMITATIONS = (
    "Limits in plain words. Weighting balances only the covariates in the model, as the records hold them: "
    "performance status, tumour burden, other illnesses and a patient's wishes are not recorded and can differ "
    "between the arms. Progression is read from real-world assessments or, where none exists, from the start of "
    "the next line, which depends on practice as well as on the disease. Patients come from hospitals that chose "
    "one arm's treatment or the other, so hospital habits and outcomes can travel together. A hazard ratio averages over "
    "follow-up; where the curves cross, the restricted mean difference says more. The E-value says how strong "
    "unmeasured confounding would need to be, not that there is none.")


def comparison_section(study: StudyConfig, analysis: ComparativeAnalysis, shown: dict[str, pd.DataFrame],
                       pngs: dict[str, bytes]) -> report.Section:
    """shown: the gated tables (weights, balance, efficacy, safety); pngs: love, overlap,
    forest, and km_<endpoint> (weighted curves per arm, the primary weights)."""
    labels = arm_labels(study)
    config = study.comparison
    min_cell = study.disclosure.min_cell
    blocks = [report.Block("p", design_words(study, analysis)),
              report.Block("h3", "Weights"),
              table_block(weights_display(shown["weights"], labels)),
              note_block("Effective sample size: Kish's (Σw)² / Σw² per arm; matched patients weigh 1. "
                    + footnote(min_cell)),
              report.Block("h3", "Balance"),
              report.Block("p", imbalance_words(analysis, shown["balance"], config.balance_threshold)),
              table_block(balance_display(shown["balance"], analysis, labels)),
              note_block("Shares of each arm's patients (an age: its mean years), before and after the primary weights. "
                    "SMD: the difference (first arm minus second) over the arms' pooled standard deviation before "
                    "weighting, the same denominator after weighting and matching; Table 1 by arm reads the other "
                    "way round (each arm against the first), so its signs are the opposite. Withheld (*) where a "
                    "count it derives from is withheld; the statement above covers the levels shown. "
                    + footnote(min_cell))]
    for key, caption in (("love", "Love plot: absolute SMDs before weighting, weighted and matched"),
                         ("overlap", "Overlap: the propensity score in each arm (first arm above, second below)")):
        if key in pngs:
            blocks.append(figure_block(pngs[key], caption))
    blocks.append(note_block(f"Bins of the score with fewer than {min_cell} patients of an arm are not drawn."))
    blocks += [report.Block("h3", "Efficacy compared"),
               table_block(efficacy_display(shown["efficacy"], config.rmst_months)),
               note_block("HR: the first arm against the second (below 1: a lower hazard with the first). RMST: "
                     "restricted mean survival time, first arm minus second. " + footnote(min_cell))]
    if "forest" in pngs:
        blocks.append(figure_block(pngs["forest"], "Hazard ratios across endpoints and methods"))
    for key, png in pngs.items():
        if key.startswith("km_"):
            endpoint = key[3:]
            blocks.append(figure_block(png, f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}) by arm, weighted "
                                       "(primary weights), with the unweighted numbers at risk"))
    blocks.append(note_block("Weighted curves (the primary weights) with their 95% CIs; the numbers at risk under "
                             "them are patients, unweighted, as the disclosure rules count them."))
    blocks.append(report.Block("p", e_value_words(shown["efficacy"], study)))
    blocks += [report.Block("h3", "Safety compared"),
               table_block(safety_display(shown["safety"])),
               note_block("Risk of a grade ≥ 3 event in the safety window (the index line to 30 days after its last "
                     "administration), weighted; a patient without a recorded event counts as without one. "
                     "Differences in percentage points, first arm minus second. " + footnote(min_cell)),
               report.Block("p", LIMITATIONS)]
    return report.Section("comparison", "Comparison of the arms", blocks)
