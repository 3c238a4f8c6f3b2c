"""The report's sections in words: each table as a reader sees it (medians with their CIs,
percentages, p-values), the notes beside it, and the methods, all from the study's
definition. Layout is `report`'s; the numbers come already gated (`publish`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import report
from .baseline import EVERYONE, MEDIAN_IQR, PATIENTS
from .data_quality import DATA_QUALITY_GATE, with_count_sets
from .disclosure import MASKED, find_dates, find_identifiers, footnote, small_text
from .efficacy import ENDPOINT_NAMES
from .pathways import DIED, NO_FURTHER_LINE, OTHER_PATHWAYS, OTHER_REGIMENS
from .patterns import PATHWAY_SECTION, PATTERNS_BY_ARM_GATE, PATTERNS_GATE, REPORT_ROWS_PER_SECTION, report_rows
from .publish import Gate
from .publish import shown as gated
from .report_text import (figure_block, note_block, number, p_value_text, percent_text, smd_text, table_block,
                          with_ci)
from .safety import SafetyResult
from .sensitivity import SENSITIVITY_RATE_MONTHS
from .study_config import StudyConfig
from .subgroups import factor_labels


def _km_display(shown: pd.DataFrame, keys: list[str], rate_months) -> pd.DataFrame:
    """The key columns, n, events, then the median in months and the rates in %, each with its 95% CI."""
    out = shown[[*keys, "n", "events"]].copy()
    out["median, months (95% CI)"] = [with_ci(r.median_months, r.median_ci_low, r.median_ci_high)
                                      for r in shown.itertuples(index=False)]
    for m in rate_months:
        name = f"rate_{float(m):g}m"
        out[f"{m}-month rate, % (95% CI)"] = [
            with_ci(v, lo, hi, scale=100.0, missing="NE")
            for v, lo, hi in zip(shown[name], shown[f"{name}_ci_low"], shown[f"{name}_ci_high"])]
    return out.reset_index(drop=True)


def efficacy_display(shown_km: pd.DataFrame, rate_months) -> pd.DataFrame:
    return _km_display(shown_km, ["endpoint"], rate_months)


def subgroup_display(shown: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({
        "factor": [labels.get(f, f) for f in shown["factor"]], "level": shown["level"].astype(str),
        "n": shown["n"], "events": shown["events"],
        "median, months (95% CI)": [with_ci(r.median_months, r.median_ci_low, r.median_ci_high)
                                    for r in shown.itertuples(index=False)],
        "HR (95% CI)": ["reference" if r.level == r.reference else "not compared" if not r.compared
                        else with_ci(r.hr, r.hr_ci_low, r.hr_ci_high, 2, missing="NE")
                        for r in shown.itertuples(index=False)],
        "multivariable HR (95% CI)": [
            "reference" if r.level == r.reference else "not compared" if not r.compared
            else with_ci(r.hr_multivariable, r.hr_multivariable_ci_low, r.hr_multivariable_ci_high, 2, missing="NE")
            for r in shown.itertuples(index=False)],
        "log-rank p": [p_value_text(p) for p in shown["logrank_p"]],
    })


def sensitivity_display(shown: pd.DataFrame) -> pd.DataFrame:
    return _km_display(shown, ["endpoint", "analysis"], SENSITIVITY_RATE_MONTHS)


def _summary(row) -> str:
    """A Table 1 or patterns row's "% or median (IQR)": a withheld value stays as shown."""
    if isinstance(row.median, str):
        return row.median
    if pd.notna(row.median):
        return f"median {number(row.median)} (IQR {number(row.q1)}–{number(row.q3)})"
    return percent_text(row.percent)


def table1_display(shown: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"characteristic": shown["characteristic"], "level": shown["level"], "n": shown["n"],
                         "% or median (IQR)": [_summary(r) for r in shown.itertuples(index=False)]})


def _by_arm_cell(row) -> str:
    if row.characteristic == PATIENTS:
        return str(row.n)
    return _summary(row) if row.level == MEDIAN_IQR else f"{row.n} ({_summary(row)})"


def table1_by_arm_display(shown: pd.DataFrame, arms) -> pd.DataFrame:
    """Table 1 by arm side by side, each arm under its name: "n (%)" or the median (IQR), then
    each later arm's SMD against the first (two decimals; empty where withheld or not computed)."""
    everyone = shown[shown["arm"] == EVERYONE].reset_index(drop=True)
    out = everyone[["characteristic", "level"]].copy()
    for arm in [EVERYONE, *(a.name for a in arms)]:
        rows = shown[shown["arm"] == arm].reset_index(drop=True)
        out["all patients" if arm == EVERYONE else arm] = [_by_arm_cell(r) for r in rows.itertuples(index=False)]
    for arm in arms[1:]:
        rows = shown[shown["arm"] == arm.name].reset_index(drop=True)
        out[f"SMD, {arm.name} vs {arms[0].name}"] = [smd_text(v) for v in rows["smd"]]
    return out


def _once(sections: pd.Series) -> list[str]:
    """Each section's name on its first row only: in print a section reads as one block."""
    return [s if k == 0 or s != sections.iloc[k - 1] else "" for k, s in enumerate(sections)]


def patterns_display(shown: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"section": _once(shown["section"]), "item": shown["item"], "n": shown["n"],
                         "% or median (IQR)": [_summary(r) for r in shown.itertuples(index=False)]})


def _pattern_cell(row) -> str:
    """"12 (34.5%)"; a distribution (no item across the arms): "n 45, median 3.0 (IQR 2.0–4.0)"."""
    text = _summary(row)
    if not isinstance(row.across_arms, str):
        return f"n {row.n}, {text}" if text else f"n {row.n}"
    return f"{row.n} ({text})" if text else str(row.n)


def patterns_by_arm_display(shown: pd.DataFrame, arms) -> pd.DataFrame:
    """Patterns of use by arm side by side: a row per item (in the order of `shown`), each arm's
    cell under its name, empty where the arm has no row of that item."""
    items = shown.drop_duplicates(["section", "item"])
    out = pd.DataFrame({"section": _once(items["section"]), "item": items["item"].to_numpy()})
    for arm in arms:
        cells = {(r.section, r.item): _pattern_cell(r) for r in shown[shown["arm"] == arm.name].itertuples(index=False)}
        out[arm.name] = [cells.get(key, "") for key in zip(items["section"], items["item"])]
    return out


def rows_left_out(left_out: dict[str, int], csv: str) -> str:
    """The sentence under a shortened patterns table: which sections have more rows, and where."""
    sections = "; ".join(f"{section}: {n} more" for section, n in left_out.items())
    return (f"Each section shows its {REPORT_ROWS_PER_SECTION} largest items; {csv} holds them all "
            f"({sections}).") if left_out else ""


def safety_display(shown: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"term": shown["term"], "source": shown["source"],
                         "any grade, n": shown["any_grade_n"],
                         "any grade, %": [percent_text(v) for v in shown["any_grade_percent"]],
                         "grade ≥3, n": shown["grade3plus_n"],
                         "grade ≥3, %": [percent_text(v) for v in shown["grade3plus_percent"]],
                         "patients tested, n": shown["tested_n"], "note": shown["note"].fillna("")})


def _hr_text(hr, low, high) -> str:
    if pd.isna(hr):
        return "not estimable"
    return f"HR {hr:.2f} ({number(low, 2)}–{number(high, 2)})"


def forest_rows(shown_subgroups: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """label, hr, ci_low, ci_high, text for figures.forest: the univariable HRs of one endpoint,
    as the gate shows them (a ratio it withholds is drawn nowhere and reads "HR withheld").

    The reference level has no marker (its HR is 1 by definition); the n printed beside a
    level is the disclosure-controlled one.
    """
    rows = []
    for row in shown_subgroups.itertuples(index=False):
        if not row.compared:
            continue  # no hazard ratio to draw
        reference = row.level == row.reference
        withheld = isinstance(row.hr, str)
        hr, low, high = (np.nan, np.nan, np.nan) if withheld else (row.hr, row.hr_ci_low, row.hr_ci_high)
        text = f"n {row.n}  " + ("reference" if reference else f"HR withheld ({row.hr})" if withheld
                                 else _hr_text(hr, low, high))
        rows.append({"label": f"{labels.get(row.factor, row.factor)}: {row.level}",
                     "hr": np.nan if reference else hr, "ci_low": low, "ci_high": high, "text": text})
    return pd.DataFrame(rows, columns=["label", "hr", "ci_low", "ci_high", "text"])


def _safe_text(value) -> str | None:
    """Free text (a drug name as written) that looks like a date or an identifier is not shown."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value)
    return "(withheld: looks like a date or an identifier)" if find_dates(text) or find_identifiers(text) else text


INGEST_CHECKS = {"rows_read": "read", "rows_kept": "kept", "rows_quarantined": "quarantined",
                 "duplicates_removed": "duplicates removed"}
UNMATCHED_GATE = Gate("unmatched_drug_names", count_columns=("n_rows",))
# Shown in the report only: the cohort's size beside the safety table; rwPFS by source.
COHORT_SIZE_GATE = Gate("cohort_size", count_columns=("patients",))
PROXY_SHARE_GATE = Gate("rwpfs_sources", count_columns=("n",), partition_by=())
UNMATCHED_SHOWN = {"drug_name": "drug name as written (most frequent spelling)", "n_rows": "prescription rows",
                   "nearest_entries": "nearest vocabulary entries (name → ingredient, similarity 0-100)"}


def unmatched_names_table(unmatched: pd.DataFrame) -> pd.DataFrame:
    """gold/unmatched_drug_names for the data manager, names that look like data withheld."""
    table = unmatched[["rank", "drug_name", "drug_name_normalised", "n_rows", "nearest_entries"]].copy()
    for column in ("drug_name", "drug_name_normalised"):
        table[column] = table[column].map(_safe_text)
    return table.reset_index(drop=True)


def data_quality_section(data_quality: pd.DataFrame | None, study: StudyConfig,
                         shown_unmatched: pd.DataFrame | None = None) -> report.Section:
    """Rows read, kept and quarantined per source table; quarantine reasons; the most frequent
    unmatched drug names; the data errors the cohort and endpoint stages found."""
    blocks = []
    if data_quality is None or data_quality.empty:
        return report.Section("data-quality", "Data quality", [note_block("Data-quality counts: not available.")])
    frame = with_count_sets(data_quality)
    frame["reason"] = frame["reason"].map(_safe_text)
    # Shown as tables/data_quality.csv shows it (`pipeline.write_data_quality` publishes that).
    shown = gated(frame, DATA_QUALITY_GATE, study)

    ingest = shown[(shown["stage"] == "ingest") & shown["check"].isin(list(INGEST_CHECKS))]
    if len(ingest):
        wide = ingest.pivot(index="table", columns="check", values="n")
        wide = wide.reindex(columns=[c for c in INGEST_CHECKS if c in wide.columns]).rename(columns=INGEST_CHECKS)
        blocks.append(table_block(wide.reset_index(), "Rows per source table"))
    reasons = shown[(shown["stage"] == "ingest") & (shown["check"] == "quarantined")]
    if len(reasons):
        blocks.append(table_block(reasons[["table", "reason", "n"]].reset_index(drop=True), "Quarantine reasons"))
    matched = shown[(shown["stage"] == "lines") & shown["check"].isin(["rows_in", "rows_matched", "quarantined"])]
    if len(matched):
        blocks.append(table_block(matched[["table", "check", "n"]].reset_index(drop=True),
                             "Prescriptions matched to the drug vocabulary"))
    names = shown[(shown["stage"] == "lines") & (shown["check"] == "unmatched_name")]
    if shown_unmatched is not None and len(shown_unmatched):
        blocks.append(table_block(shown_unmatched.head(10)[list(UNMATCHED_SHOWN)].rename(columns=UNMATCHED_SHOWN),
                             "Most frequent unmatched drug names, with the vocabulary entries nearest to "
                             "each (tables/unmatched_drug_names.csv lists 50; add a name to a vocabulary "
                             "override file to map it)"))
    elif len(names):
        exact = frame.loc[names.index, "n"]
        top = names.loc[exact.sort_values(ascending=False, kind="stable").index[:10]]
        blocks.append(table_block(top[["reason", "n"]].rename(columns={"reason": "drug name (normalised)"})
                             .reset_index(drop=True), "Most frequent unmatched drug names"))
    errors = shown[shown["stage"].isin(["cohort", "endpoints"])]
    if len(errors):
        blocks.append(table_block(errors[["stage", "table", "check", "reason", "n"]].reset_index(drop=True),
                             "Data errors found"))
    blocks.append(note_block(footnote(study.disclosure.min_cell)))
    return report.Section("data-quality", "Data quality", blocks)


def attrition_section(shown_attrition: pd.DataFrame, flow_png: bytes) -> report.Section:
    return report.Section("attrition", "Attrition", [
        figure_block(flow_png, "Attrition flow"),
        table_block(shown_attrition[["step", "criterion", "n_remaining", "n_excluded"]].reset_index(drop=True),
               "Attrition table"),
    ])


def table1_section(shown_table1: pd.DataFrame, study: StudyConfig) -> report.Section:
    return report.Section("table1", "Table 1: characteristics at the index date", [
        table_block(table1_display(shown_table1)),
        note_block("Percentages of all cohort patients. " + footnote(study.disclosure.min_cell)),
    ])


def arms_section(study: StudyConfig, shown_table1: pd.DataFrame, shown_km: pd.DataFrame,
                 km_pngs: dict[str, bytes], shown_patterns: pd.DataFrame) -> report.Section:
    """The arms described side by side, unadjusted: Table 1 with standardised mean differences,
    Kaplan–Meier estimates and curves per arm, patterns of use per arm."""
    arms = study.arms
    labels = {arm.name: arm.label or arm.name for arm in arms}
    min_cell = study.disclosure.min_cell
    blocks = [
        report.Block("p", "Arms: " + "; ".join(f"{arm.name}: {labels[arm.name]}" for arm in arms)
                     + f". The reference arm is {arms[0].name}. Unadjusted descriptions, not comparisons: a difference "
                       "between the arms' outcomes can come from a difference in their patients (see the SMDs) as "
                       "much as from their treatment."),
        report.Block("h3", "Table 1 by arm"),
        table_block(table1_by_arm_display(shown_table1, arms)),
        note_block(f"SMD: standardised mean difference against {arms[0].name}, before any weighting: for a level, the "
              "difference of its shares over their pooled standard deviation; for the age, the difference of the "
              "means over the pooled standard deviation. An absolute SMD above 0.1 is the usual sign of imbalance. "
              "Withheld (*) or left empty where a count it derives from is withheld or would be revealed. "
              "Percentages of each arm's patients. " + footnote(min_cell)),
        report.Block("h3", "Kaplan–Meier estimates by arm"),
        table_block(_km_display(shown_km, ["endpoint", "arm"], study.analysis.rate_months), "Medians and rates by arm"),
    ]
    for endpoint, png in km_pngs.items():
        blocks.append(figure_block(png, f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}) by arm, with the numbers "
                                   "at risk"))
    blocks.append(note_block(f"Unadjusted. Curves stop where fewer than {min_cell} patients of the arm remain at risk; "
                        f"an arm with 1 to {min_cell - 1} events is not drawn."))
    rows, left_out = report_rows(shown_patterns)
    if len(rows):
        blocks += [report.Block("h3", "Patterns of use by arm"), table_block(patterns_by_arm_display(rows, arms))]
    blocks.append(note_block("n (%) of the arm's patients, or the n and median (IQR) of a distribution; empty: the arm "
                        "has no row of that item (no patient, or pooled into another row). Items by their best rank "
                        "in any arm. "
                        f"{rows_left_out(left_out, f'tables/{PATTERNS_BY_ARM_GATE.name}.csv')} {footnote(min_cell)}"))
    return report.Section("arms", "Arms", blocks)


def patterns_section(shown_patterns: pd.DataFrame, sunburst_png: bytes | None, study: StudyConfig, index_line: str,
                     pathways_svg: str | None = None) -> report.Section:
    """index_line: the index line in words (studies.index_line_words)."""
    rows, left_out = report_rows(shown_patterns)
    blocks = [table_block(patterns_display(rows), "Index regimens, dose, schedule, later lines and trends")]
    if left_out:
        blocks.append(note_block(rows_left_out(left_out, f"tables/{PATTERNS_GATE.name}.csv")))
    pooled = shown_patterns.loc[(shown_patterns["section"] == PATHWAY_SECTION)
                                & (shown_patterns["item"] == OTHER_PATHWAYS), "n"]
    pooled_words = (f"The pathways of {pooled.iloc[0]} patients are pooled as '{OTHER_PATHWAYS}' and not drawn: "
                    f"each was followed by fewer than {study.disclosure.min_cell} patients, or was pooled with them "
                    f"so that no count from 1 to {study.disclosure.min_cell - 1} can be worked out from the pathways "
                    "and the regimen counts above. " if len(pooled) else "")
    if pathways_svg is not None:
        blocks.append(report.Block("svg", pathways_svg, "Treatment pathways from the index line "
                                   f"({index_line})"))
        blocks.append(note_block(f"Each line node is labelled with its line number in its setting. A pathway ends at "
                            f"'{DIED}' (an OS event with no further line) or '{NO_FURTHER_LINE}' (censored for OS, "
                            "no further line), or goes on beyond the second line after the index line. Regimens of "
                            f"flows of fewer than {study.disclosure.min_cell} patients after the index line are "
                            f"pooled as '{OTHER_REGIMENS}'. {pooled_words}In a browser, pointing at a band or a "
                            "node shows its count."))
    if sunburst_png is not None:
        blocks.append(figure_block(sunburst_png, "The same pathways as rings, the index line innermost"))
        blocks.append(note_block(f"Drawn from the pathways of the table above ('{PATHWAY_SECTION}'), "
                            f"'{OTHER_PATHWAYS}' included as one grey segment."))
    return report.Section("patterns", "Patterns of use", blocks)


def efficacy_section(shown_km: pd.DataFrame, km_pngs: dict[str, bytes], study: StudyConfig) -> report.Section:
    blocks = [
        table_block(efficacy_display(shown_km, study.analysis.rate_months), "Medians and rates"),
        note_block(f"Kaplan–Meier estimates. 95% confidence intervals by the {study.analysis.ci_method} transform "
              f"(ci_method = {study.analysis.ci_method}); median CI as in R's survfit. 'not reached': the curve "
              "does not fall below 50%; NE: not estimable (no follow-up that long, or the limit not reached) or "
              f"withheld (fewer than {study.disclosure.min_cell} patients still at risk at that time)."),
    ]
    for endpoint, png in km_pngs.items():
        blocks.append(report.Block("h3", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
        blocks.append(figure_block(png, f"Kaplan–Meier curve of {endpoint} with the numbers at risk"))
    blocks.append(note_block(f"Curves stop where fewer than {study.disclosure.min_cell} patients remain at risk. "
                        + footnote(study.disclosure.min_cell)))
    return report.Section("efficacy", "Efficacy", blocks)


def subgroups_section(shown: pd.DataFrame, forest_pngs: dict[str, bytes], study: StudyConfig) -> report.Section:
    refs = shown.drop_duplicates("factor")[["factor", "reference"]]
    labels = factor_labels(study)
    ref_text = "; ".join(f"{labels.get(f, f)}: {r}" for f, r in zip(refs["factor"], refs["reference"]))
    blocks = [note_block("Hazard ratios from Cox models (Efron ties) of each level against the reference level: "
                    "univariable, and multivariable with all the factors together (complete cases). Log-rank "
                    f"test across the levels of each factor. Reference levels: {ref_text}.")]
    for endpoint, png in forest_pngs.items():
        blocks.append(report.Block("h3", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
        blocks.append(figure_block(png, f"Forest plot of {endpoint}"))
        blocks.append(table_block(subgroup_display(shown[shown["endpoint"] == endpoint], labels)))
    blocks.append(note_block(footnote(study.disclosure.min_cell)))
    return report.Section("subgroups", "Subgroups", blocks)


def sensitivity_section(shown: pd.DataFrame, pngs: dict[str, bytes], study: StudyConfig) -> report.Section:
    blocks = [table_block(sensitivity_display(shown), "Main and sensitivity analyses"),
              note_block("rwPFS from assessments only: the patients whose rwPFS comes from tumor assessments (no TTNT "
                    "proxy). OS censored at last contact instead of the data cut-off. Lines rebuilt with another "
                    "maximum gap: the whole cohort and its endpoints built again, so its patients can differ "
                    "slightly. A sensitivity n that differs from the main n by 1 to "
                    f"{study.disclosure.min_cell - 1} patients is withheld (*). Numbers at risk under the "
                    "figures: main analysis. " + footnote(study.disclosure.min_cell))]
    for endpoint, png in pngs.items():
        blocks.append(report.Block("h3", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
        blocks.append(figure_block(png, f"{endpoint}: main and sensitivity analyses"))
    return report.Section("sensitivity", "Sensitivity analyses", blocks)


def safety_section(result: SafetyResult, shown: pd.DataFrame, study: StudyConfig) -> report.Section:
    blocks = []
    if not result.labs_available:
        blocks.append(note_block("Laboratory toxicities: not available (the extract has no labs table)."))
    if not result.adverse_events_available:
        blocks.append(note_block("Recorded adverse events: not available (the extract has no adverse_events table)."))
    available = shown[~shown["note"].fillna("").str.startswith("not available")]
    if len(available):
        patients = gated(pd.DataFrame({"patients": [result.denominator]}), COHORT_SIZE_GATE, study)["patients"].iloc[0]
        blocks.append(table_block(safety_display(available), "Incidence by term: patients with the term"))
        blocks.append(note_block(
            f"Percentages of all {patients} cohort patients. Window: index date to the index line's last "
            f"administration + {study.safety.window_after_last_admin_days} days. Labs graded with CTCAE "
            f"v{study.safety.ctcae_version} against the baseline (latest value in the {study.safety.baseline_days} "
            "days up to the index date; abnormal-baseline rule for ALT and AST); 'patients tested': patients "
            "with at least one gradable value of that test in the window. Recorded events mapped to CTCAE terms "
            "(English and Chinese); 'unmapped term' counts patients with a recorded term that matches none. "
            "A recorded event without a grade counts in 'any grade' only. " + chosen_terms_text(study)
            + footnote(study.disclosure.min_cell)))
    return report.Section("safety", "Safety", blocks)


def report_heading(study: StudyConfig) -> tuple[str, str]:
    """(title, subtitle) of the report: the study's `report` section, else its name."""
    subtitle = f"Study {study.name}. Data cut-off {study.data_cutoff.isoformat()}." + (
        f" {study.report.description}" if study.report.description else "")
    return study.report.title or study.name, subtitle


def chosen_terms_text(study: StudyConfig) -> str:
    """The study's choice of toxicities and recorded terms, in words ('' when it reads them all)."""
    out = ""
    if study.safety.lab_toxicities:
        out += f"Lab toxicities of this study: {', '.join(study.safety.lab_toxicities)}. "
    if study.safety.recorded_terms:
        out += (f"Recorded terms of this study: {', '.join(study.safety.recorded_terms)} (records of other "
                "CTCAE terms are not counted). ")
    return out


def proxy_share(endpoints: pd.DataFrame) -> pd.DataFrame:
    """rwPFS rows by source (assessment / ttnt_proxy): n and percent (exact)."""
    rw = endpoints[endpoints["endpoint"] == "rwPFS"]
    counts = rw["source"].fillna("unknown").value_counts()
    total = int(counts.sum())
    return pd.DataFrame({"source": counts.index.astype(str), "n": counts.to_numpy().astype(int),
                         "percent": 100.0 * counts.to_numpy() / total if total else np.nan})


def endpoint_definitions(e) -> dict[str, str]:
    """Each endpoint's definition in words (study rules §5), with the study's parameters."""
    return {
        "OS": f"OS: death up to the data cut-off; censored at the "
              f"{'cut-off' if e.os_censoring == 'cutoff' else 'last contact'}.",
        "rwPFS": f"rwPFS: the earlier of the first progression (PD more than {e.pd_grace_days} days after index) and "
                 f"a death within {e.death_window_days} days of the last assessment; censored at the last "
                 f"assessment. Patients with no tumor assessment after index + {e.pd_grace_days} days get the "
                 "proxy: the earlier of the next line and death, censored at last contact.",
        "TTP": "TTP: first progression, deaths are not events; censored at the last assessment; patients without "
               "assessments are not evaluable.",
        "TTF": "TTF: the earliest of progression, death and discontinuation of the index line (next line, death, or "
               f"more than {e.discontinuation_gap_days} days from the last administration to the cut-off); "
               "censored at last contact.",
        "TTNT": "TTNT: the earlier of the next line's start and death; censored at last contact.",
    }


def methods_section(study: StudyConfig, index_line: str, endpoints: pd.DataFrame, safety: SafetyResult
                    ) -> report.Section:
    """index_line: the index line in words (studies.index_line_words)."""
    e = study.endpoints
    share = gated(proxy_share(endpoints), PROXY_SHARE_GATE, study)
    share["percent"] = [percent_text(v) for v in share["percent"]]
    blocks = [
        report.Block("h3", "Endpoints"),
        report.Block("p", f"Time zero is the index date (the start of the index line: {index_line}). "
                          f"Horizon {e.horizon_days} days ({e.horizon_days / 365.25:.1f} years): longer times are "
                          "censored there. Months = days / 30.4375."),
        *[report.Block("p", text) for name, text in endpoint_definitions(e).items() if name in e.include],
        *([table_block(share, "rwPFS by source: tumor assessments or the TTNT proxy")] if "rwPFS" in e.include else []),
        report.Block("h3", "Statistics"),
        report.Block("p", f"Kaplan–Meier with Greenwood variance; 95% CIs by the {study.analysis.ci_method} "
                          "transform; medians and their CIs by R's rule. Cox proportional hazards with Efron ties. "
                          "Numbers at risk every "
                          f"{study.analysis.risk_table_every_months} months."),
        report.Block("h3", "Disclosure control"),
        report.Block("p", f"No count from 1 to {study.disclosure.min_cell - 1} is shown: it reads "
                          f"{small_text(study.disclosure.min_cell)}, and a count, percentage or statistic that "
                          f"would reveal it from its table's totals reads {MASKED}. Numbers at risk are suppressed "
                          "the same way and curves and rates stop where fewer patients remain at risk; a hazard "
                          f"ratio is not shown for a level (or reference) with fewer than {study.disclosure.min_cell}"
                          " events; rare treatment pathways are pooled until none can be worked out from the "
                          "regimen counts. No patient identifier, birth date or exact event date is shown. Each "
                          "table is checked against its own totals and the ones named here, not against every "
                          "combination of tables, nor against other studies' outputs from the same data: outputs "
                          "of several studies are released after a check of them together."),
    ]
    if safety.counts.get("patients_without_window"):
        blocks.append(note_block("Some cohort patients have no index line in therapy_lines and so no safety window."))
    return report.Section("methods", "Methods notes", blocks)
