"""The analysis stage: the collected cohort → tables, figures and the report (study rules §6–§9).

The lead's Spark stage narrows the lake to the cohort and calls `run_analysis` with
pandas frames (`AnalysisInputs`). Everything here is pandas, lifelines and matplotlib on
a few thousand rows. Exact numbers stay in memory (and `AnalysisResult.safety_events`
goes back to the lake); every table leaves through `publish.publish` under its `Gate`,
gated once for both its CSV and the report (a frame the report alone shows through
`publish.shown`), every number drawn on a figure comes from a frame that went through
disclosure control, and the finished files are audited (`publish.audit`).

One function per table or figure; `run_analysis` only strings them together.
"""
from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures, report, survival
from .baseline import age_group, is_boolean, table1
from .baseline_variables import DeNovoVariable, EarlierTreatmentVariable, MetastaticSiteVariable, variable_words
from .study_config import StudyConfig
from .data_quality import DATA_QUALITY_GATE, with_count_sets
from .disclosure import (MASKED, DisclosureError, find_dates, find_identifiers, footnote, pool_cross_table_rows,
                         risk_table_display, small_text, suppress_attrition)
from .patterns import NO_LINE, PatternVariables, patterns_table, sequences
from .publish import Gate, audit
from .publish import publish as publish_table
from .publish import shown as gated
from .safety import SAFETY_GATE, SafetyResult, analyse_safety
from .studies import ATTRITION_GATE, index_line_words

log = logging.getLogger(__name__)

MAIN = "main analysis"
ASSESSMENTS_ONLY = "rwPFS from assessments only"
OTHER_SEQUENCES = "(other sequences)"
SENSITIVITY_RATE_MONTHS = (12, 24)

ENDPOINT_NAMES = {
    "OS": "Overall survival",
    "rwPFS": "Real-world progression-free survival",
    "TTP": "Time to progression",
    "TTF": "Time to treatment failure",
    "TTNT": "Time to next treatment or death",
}


@dataclasses.dataclass
class AnalysisInputs:
    """The study's rows collected to pandas (`pipeline.stage_analysis` selects each frame's columns)."""
    study: StudyConfig
    cohort: pd.DataFrame
    endpoints: pd.DataFrame
    attrition: pd.DataFrame
    data_quality: pd.DataFrame
    lines: pd.DataFrame
    exposures: pd.DataFrame
    vitals: pd.DataFrame | None = None
    labs: pd.DataFrame | None = None
    adverse_events: pd.DataFrame | None = None
    sensitivity: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    unmatched_names: pd.DataFrame | None = None  # gold/unmatched_drug_names (None: lines not built by this engine)
    pattern_drugs: tuple[str, ...] = ()  # ingredients whose dose and schedule patterns describe (study.patterns)


@dataclasses.dataclass
class AnalysisResult:
    """safety_events: gold/safety_events (exact; for the lake, never written under out_dir).
    files: every file written, by name relative to out_dir ("tables/km_summary.csv", …)."""
    safety_events: pd.DataFrame
    files: dict[str, Path]


# -- Writing -----------------------------------------------------------------------------------

class _Writer:
    """Publishes tables (`publish.publish`) and writes figures under out_dir; remembers the files."""

    def __init__(self, out_dir: Path, study: StudyConfig):
        self.out_dir, self.study = Path(out_dir), study
        self.files: dict[str, Path] = {}

    def _path(self, relative: str) -> Path:
        path = self.out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        self.files[relative] = path
        return path

    def publish(self, frame: pd.DataFrame, gate: Gate) -> pd.DataFrame:
        """The table gated once: written as tables/<gate.name>.csv; the same frame returned for the report."""
        safe, path = publish_table(frame, gate, self.study, self.out_dir / "tables")
        self.files[f"tables/{gate.name}.csv"] = path
        return safe

    def figure(self, name: str, png: bytes) -> bytes:
        self._path(f"figures/{name}.png").write_bytes(png)
        return png

    def text(self, relative: str, content: str) -> Path:
        path = self._path(relative)
        path.write_text(content, encoding="utf-8")
        return path


# -- Cohort covariates ---------------------------------------------------------------------------

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


# -- Kaplan–Meier summary ------------------------------------------------------------------------

def km_table(endpoints: pd.DataFrame, study: StudyConfig, rate_months=None) -> pd.DataFrame:
    """survival.km_summary with the study's CI method and rate months (interfaces.md columns)."""
    months = study.analysis.rate_months if rate_months is None else rate_months
    return survival.km_summary(endpoints, rate_months=months, ci_method=study.analysis.ci_method)


def km_gate(columns) -> Gate:
    """n and events are counts; the median and the rates are withheld with an n or an events
    count of 1–4: with 1 event among 135 patients the 6-month rate reads 99.3%, which is the count.
    n is the events' total: 147 events among 150 would name the 3 censored patients."""
    stats = [c for c in columns if c.startswith(("median", "rate_"))]
    return Gate("km_summary", count_columns=("n", "events"), dependents={"n": stats, "events": stats},
                total_column="n")


# -- Subgroups ----------------------------------------------------------------------------------

SUBGROUP_COLUMNS = ["endpoint", "factor", "level", "reference", "compared", "n", "events", "median_months",
                    "median_ci_low", "median_ci_high", "logrank_p", "hr", "hr_ci_low", "hr_ci_high", "hr_multivariable",
                    "hr_multivariable_ci_low", "hr_multivariable_ci_high", "note", "note_multivariable"]
SUBGROUP_FLOATS = ["median_months", "median_ci_low", "median_ci_high", "logrank_p", "hr", "hr_ci_low", "hr_ci_high",
                   "hr_multivariable", "hr_multivariable_ci_low", "hr_multivariable_ci_high"]
SUBGROUP_MEDIANS = ["median_months", "median_ci_low", "median_ci_high"]
SUBGROUP_GATE = Gate("subgroups", count_columns=("n", "events"), partition_by=("endpoint", "factor"), total_column="n",
                     dependents={"n": SUBGROUP_MEDIANS, "events": SUBGROUP_MEDIANS})
UNKNOWN_LEVEL = "unknown"


def _endpoint_order(endpoints: pd.DataFrame) -> list[str]:
    found = list(dict.fromkeys(endpoints["endpoint"]))
    return [e for e in survival.ENDPOINT_ORDER if e in found] + sorted(e for e in found
                                                                        if e not in survival.ENDPOINT_ORDER)


def subgroup_table(endpoints: pd.DataFrame, levels: pd.DataFrame, study: StudyConfig) -> pd.DataFrame:
    """Per endpoint × factor × level: KM n, events, median with CI, log-rank p, univariable Cox
    HR with CI (survival.subgroup_table) and the HR of a multivariable Cox model on all factors
    (survival.cox_multivariable, complete cases)."""
    factors = list(study.analysis.subgroups)
    parts = []
    for endpoint in _endpoint_order(endpoints):
        data = endpoints[endpoints["endpoint"] == endpoint].merge(levels, on="patient_id")
        references = {f: reference_level(data[f], dict(study.analysis.references).get(f)) for f in factors}
        multivariable = survival.cox_multivariable(data, factors, references=references)
        multivariable = multivariable[["factor", "level", "hr", "ci_low", "ci_high", "note"]].rename(columns={
            "hr": "hr_multivariable", "ci_low": "hr_multivariable_ci_low", "ci_high": "hr_multivariable_ci_high",
            "note": "note_multivariable"})
        for factor in factors:
            compared = _levels_compared(data[factor], factor, study)
            table = survival.subgroup_table(data.assign(**{factor: data[factor].where(compared)}), factor,
                                            reference=references[factor], ci_method=study.analysis.ci_method)
            table = pd.concat([table.assign(compared=True), _levels_not_compared(data, factor, compared, study)],
                              ignore_index=True)
            table = table.merge(multivariable, on=["factor", "level"], how="left")
            table.insert(0, "endpoint", endpoint)
            table.insert(3, "reference", references[factor])
            if len(table):
                parts.append(table.astype({c: float for c in SUBGROUP_FLOATS}))
    if not parts:
        return pd.DataFrame(columns=SUBGROUP_COLUMNS)
    return pd.concat(parts, ignore_index=True)[SUBGROUP_COLUMNS]


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


# -- Sensitivity analyses ------------------------------------------------------------------------

def sensitivity_frames(inputs: AnalysisInputs) -> dict[str, pd.DataFrame]:
    """The main endpoints and every sensitivity analysis, by label (rwPFS from assessments only added)."""
    main = inputs.endpoints
    frames = {MAIN: main, ASSESSMENTS_ONLY: main[(main["endpoint"] == "rwPFS") & (main["source"] == "assessment")]}
    frames.update(inputs.sensitivity)
    return frames


def sensitivity_table(frames: dict[str, pd.DataFrame], study: StudyConfig) -> pd.DataFrame:
    """endpoint, analysis, n, events, n_main, events_main, median with CI, 12- and 24-month rates with CI.

    One row for the main analysis of each endpoint, then one per sensitivity analysis that
    has that endpoint. n_main (sensitivity rows only) is the main analysis's n: a difference
    of 1–4 patients between the two would name those few, so such an n is withheld. The rows of
    "rwPFS from assessments only" are a subset of the main rwPFS, so their events_main is the
    main events count: 3 events fewer would name 3 proxy events.
    """
    summaries = {label: km_table(frame, study, SENSITIVITY_RATE_MONTHS) for label, frame in frames.items()
                 if len(frame)}
    main = summaries.get(MAIN, pd.DataFrame(columns=["endpoint", "n", "events"])).set_index("endpoint")
    rows = []
    for endpoint in _endpoint_order(pd.concat([f[["endpoint"]] for f in frames.values()])):
        for label, summary in summaries.items():
            found = summary[summary["endpoint"] == endpoint]
            if found.empty:
                continue
            row = found.iloc[0].to_dict()
            known = label != MAIN and endpoint in main.index
            row.update(analysis=label, n_main=float(main.loc[endpoint, "n"]) if known else np.nan,
                       events_main=float(main.loc[endpoint, "events"]) if known and label == ASSESSMENTS_ONLY
                       else np.nan)
            rows.append(row)
    stats = [c for c in survival.km_summary_columns(SENSITIVITY_RATE_MONTHS) if c.startswith(("median", "rate_"))]
    columns = ["endpoint", "analysis", "n", "events", "n_main", "events_main", *stats, "ci_method"]
    return pd.DataFrame(rows, columns=columns)


def sensitivity_gate(table: pd.DataFrame) -> Gate:
    """The statistics are withheld with an events count of 1–4 (the steps of the curve would give
    it away; n < 5 implies it), not with an n withheld only because it differs from the main n by
    1–4: a cohort rebuilt with another gap usually differs by a few patients, and its median and
    rates are the point of the analysis."""
    stats = [c for c in table.columns if c.startswith(("median", "rate_"))]
    return Gate("sensitivity", count_columns=("n", "events", "n_main", "events_main"),
                complements={"n": "n_main", "events": ("events_main", "n")}, dependents={"n": (), "events": stats})


# -- Table 1, patterns, attrition ------------------------------------------------------------------

TABLE1_GATE = Gate("table1", count_columns=("n",), partition_by=("characteristic",),
                   dependents={"n": ("percent", "median", "q1", "q3")})
PATTERNS_GATE = Gate("patterns", count_columns=("n",), partition_by=("count_set",),
                     partitions=(("row_set",), ("column_set",)), dependents={"n": ("percent", "median", "q1", "q3")})


def pooled_cross_tables(table: pd.DataFrame, min_cell: int, sections: typing.Collection[str]) -> pd.DataFrame:
    """The patterns table with the rows of each cross-table (`sections`: "province by <label>" …)
    that hold a small count pooled (disclosure.pool_cross_table_rows), in the table's own order."""
    crossed = table["section"].isin(list(sections))
    parts = [table[~crossed]]
    for section, rows in table[crossed].groupby("section", sort=False):
        split = rows["item"].str.split(" | ", n=1, regex=False)
        cells = pd.DataFrame({"row": split.str[0], "column": split.str[1], "n": rows["n"].to_numpy()})
        pooled = pool_cross_table_rows(cells, min_cell=min_cell).sort_values("n", ascending=False, kind="stable")
        n_cohort = rows["n"].sum()  # every patient stands in one cell
        parts.append(pd.DataFrame({"section": section, "item": pooled["row"] + " | " + pooled["column"],
                                   "n": pooled["n"].to_numpy(), "percent": 100.0 * pooled["n"].to_numpy() / n_cohort}))
    ordered = pd.concat(parts, ignore_index=True)
    order = {s: i for i, s in enumerate(dict.fromkeys(table["section"]))}
    return ordered.sort_values("section", key=lambda c: c.map(order), kind="stable").reset_index(drop=True)


def patterns_with_sets(cohort, lines, exposures, vitals, min_cell: int, drugs,
                       variables: PatternVariables = PatternVariables()) -> pd.DataFrame:
    """patterns.patterns_table, cross-tables pooled (pooled_cross_tables), plus count_set: the
    rows whose counts add up to one total.

    Counts of a section share the cohort as their total; a distribution row (median, IQR,
    no percent) stands alone.
    """
    vitals = vitals if vitals is not None else pd.DataFrame(columns=["patient_id", "measure_date", "height_cm",
                                                                     "weight_kg"])
    sections = variables.cross_sections()
    table = pooled_cross_tables(patterns_table(cohort, lines, exposures, vitals, drugs, variables), min_cell,
                                sections)
    distribution = table["percent"].isna()
    table["count_set"] = np.where(distribution, table["section"] + " | " + table["item"], table["section"])
    # A cross-table's cells also add up along its rows and columns to margins shown in other
    # sections ("2020 | H" + "2020 | HP" = index year 2020; sequences by line 1 = the index
    # regimen, by line 2 = the second-line regimen): row_set and column_set name those sets.
    table["row_set"], table["column_set"] = None, None
    crossed = table["section"].isin(sections)
    parts = table.loc[crossed, "item"].str.split(" | ", n=1, regex=False)
    table.loc[crossed, "row_set"] = table.loc[crossed, "section"] + " | " + parts.str[0]
    table.loc[crossed, "column_set"] = table.loc[crossed, "section"] + " | " + parts.str[1]
    sequence = table["section"].str.startswith("sequence ")
    steps = table.loc[sequence, "item"].str.split(" > ", regex=False)
    table.loc[sequence, "row_set"] = table.loc[sequence, "section"] + " | line 1 " + steps.str[0]
    table.loc[sequence, "column_set"] = table.loc[sequence, "section"] + " | line 2 " + steps.str[1]
    return table


def sequence_counts(cohort: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """line1, line2, line3, n: patients per sequence of lines 1 → 2 → 3 of the index line's setting (exact)."""
    seq = sequences(cohort, lines)
    return seq.groupby(["line1", "line2", "line3"], as_index=False).size().rename(columns={"size": "n"})


def merge_small_sequences(counts: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """Sequences of fewer than min_cell patients pooled into OTHER_SEQUENCES.

    The pooled group must not be small either (the total is printed), so while it holds 1 to
    min_cell − 1 patients the next smallest sequence joins it.
    """
    counts = counts.sort_values(["n", "line1", "line2", "line3"]).reset_index(drop=True)
    pooled = counts["n"] < min_cell
    while 0 < counts.loc[pooled, "n"].sum() < min_cell and not pooled.all():
        pooled[(~pooled).idxmax()] = True  # the smallest sequence not yet pooled
    kept = counts[~pooled]
    if pooled.any():
        other = pd.DataFrame({"line1": [OTHER_SEQUENCES], "line2": [OTHER_SEQUENCES], "line3": [OTHER_SEQUENCES],
                              "n": [int(counts.loc[pooled, "n"].sum())]})
        kept = pd.concat([kept, other], ignore_index=True)
    return kept.sort_values("n", ascending=False, kind="stable").reset_index(drop=True)


# -- Figures ------------------------------------------------------------------------------------

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
              risk_groups=None) -> bytes:
    """figures.km_with_risk_table for one endpoint, one curve per value of group_col.

    risk_groups: the groups whose numbers at risk are printed (default all)."""
    min_cell = study.disclosure.min_cell
    by = None if group_col == "endpoint" else group_col
    curves = survival.km_curves(endpoints, by=by, ci_method=study.analysis.ci_method)
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


def _hr_text(hr, low, high) -> str:
    if pd.isna(hr):
        return "not estimable"
    return f"HR {hr:.2f} ({_num(low, 2)}–{_num(high, 2)})"


def forest_rows(shown_subgroups: pd.DataFrame, exact: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """label, hr, ci_low, ci_high, text for figures.forest: the univariable HRs of one endpoint.

    The reference level has no marker (its HR is 1 by definition); the n printed beside a
    level is the disclosure-controlled one.
    """
    rows = []
    for shown_row, row in zip(shown_subgroups.itertuples(index=False), exact.itertuples(index=False)):
        if not row.compared:
            continue  # no hazard ratio to draw
        reference = row.level == row.reference
        text = f"n {shown_row.n}  " + ("reference" if reference else _hr_text(row.hr, row.hr_ci_low,
                                                                               row.hr_ci_high))
        rows.append({"label": f"{labels.get(row.factor, row.factor)}: {row.level}",
                     "hr": np.nan if reference else row.hr, "ci_low": row.hr_ci_low, "ci_high": row.hr_ci_high,
                     "text": text})
    return pd.DataFrame(rows, columns=["label", "hr", "ci_low", "ci_high", "text"])


# -- Report formatting ------------------------------------------------------------------------------

def _num(value, digits: int = 1) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return ""
    return f"{float(value):.{digits}f}"


def _with_ci(value, low, high, digits: int = 1, scale: float = 1.0, missing: str = "not reached") -> str:
    """"12.3 (9.8–15.1)"; a withheld value stays "*"; no estimate: `missing`; no limit: NE."""
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return missing
    limits = ["NE" if (v is None or isinstance(v, str) or pd.isna(v)) else f"{v * scale:.{digits}f}"
              for v in (low, high)]
    return f"{value * scale:.{digits}f} ({limits[0]}–{limits[1]})"


def _p_value(p) -> str:
    if isinstance(p, str) or p is None or pd.isna(p):
        return "" if not isinstance(p, str) else p
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _percent_text(value, digits: int = 1) -> str:
    return value if isinstance(value, str) else ("" if value is None or pd.isna(value) else f"{value:.{digits}f}%")


def efficacy_display(shown_km: pd.DataFrame, rate_months) -> pd.DataFrame:
    """Medians in months and rates in %, each with its 95% CI."""
    out = pd.DataFrame({"endpoint": shown_km["endpoint"], "n": shown_km["n"], "events": shown_km["events"]})
    out["median, months (95% CI)"] = [_with_ci(r.median_months, r.median_ci_low, r.median_ci_high)
                                      for r in shown_km.itertuples(index=False)]
    for m in rate_months:
        name = f"rate_{float(m):g}m"
        out[f"{m}-month rate, % (95% CI)"] = [
            _with_ci(v, lo, hi, scale=100.0, missing="NE")
            for v, lo, hi in zip(shown_km[name], shown_km[f"{name}_ci_low"], shown_km[f"{name}_ci_high"])]
    return out


def subgroup_display(shown: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({
        "factor": [labels.get(f, f) for f in shown["factor"]], "level": shown["level"].astype(str),
        "n": shown["n"], "events": shown["events"],
        "median, months (95% CI)": [_with_ci(r.median_months, r.median_ci_low, r.median_ci_high)
                                    for r in shown.itertuples(index=False)],
        "HR (95% CI)": ["reference" if r.level == r.reference else "not compared" if not r.compared
                        else _with_ci(r.hr, r.hr_ci_low, r.hr_ci_high, 2, missing="NE")
                        for r in shown.itertuples(index=False)],
        "multivariable HR (95% CI)": [
            "reference" if r.level == r.reference else _with_ci(r.hr_multivariable, r.hr_multivariable_ci_low,
                                                                r.hr_multivariable_ci_high, 2, missing="NE")
            for r in shown.itertuples(index=False)],
        "log-rank p": [_p_value(p) for p in shown["logrank_p"]],
    })


def sensitivity_display(shown: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"endpoint": shown["endpoint"], "analysis": shown["analysis"], "n": shown["n"],
                        "events": shown["events"]})
    out["median, months (95% CI)"] = [_with_ci(r.median_months, r.median_ci_low, r.median_ci_high)
                                      for r in shown.itertuples(index=False)]
    for m in SENSITIVITY_RATE_MONTHS:
        name = f"rate_{m}m"
        out[f"{m}-month rate, % (95% CI)"] = [
            _with_ci(v, lo, hi, scale=100.0, missing="NE")
            for v, lo, hi in zip(shown[name], shown[f"{name}_ci_low"], shown[f"{name}_ci_high"])]
    return out


def table1_display(shown: pd.DataFrame) -> pd.DataFrame:
    summary = []
    for r in shown.itertuples(index=False):
        if not isinstance(r.median, str) and pd.notna(r.median):
            summary.append(f"median {_num(r.median)} (IQR {_num(r.q1)}–{_num(r.q3)})")
        elif isinstance(r.median, str):
            summary.append(r.median)
        else:
            summary.append(_percent_text(r.percent))
    return pd.DataFrame({"characteristic": shown["characteristic"], "level": shown["level"], "n": shown["n"],
                         "% or median (IQR)": summary})


def patterns_display(shown: pd.DataFrame) -> pd.DataFrame:
    summary = []
    for r in shown.itertuples(index=False):
        if isinstance(r.median, str):
            summary.append(r.median)
        elif pd.notna(r.median):
            summary.append(f"median {_num(r.median)} (IQR {_num(r.q1)}–{_num(r.q3)})")
        else:
            summary.append(_percent_text(r.percent))
    return pd.DataFrame({"section": shown["section"], "item": shown["item"], "n": shown["n"],
                         "% or median (IQR)": summary})


def safety_display(shown: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"term": shown["term"], "source": shown["source"],
                         "any grade, n": shown["any_grade_n"],
                         "any grade, %": [_percent_text(v) for v in shown["any_grade_percent"]],
                         "grade ≥3, n": shown["grade3plus_n"],
                         "grade ≥3, %": [_percent_text(v) for v in shown["grade3plus_percent"]],
                         "patients tested, n": shown["tested_n"], "note": shown["note"].fillna("")})


# -- Report sections ---------------------------------------------------------------------------------

def _table(frame: pd.DataFrame, caption: str = "") -> report.Block:
    return report.Block("table", frame, caption)


def _note(text: str) -> report.Block:
    return report.Block("note", text)


def _figure(png: bytes, caption: str) -> report.Block:
    return report.Block("figure", png, caption)


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
        return report.Section("data-quality", "Data quality", [_note("Data-quality counts: not available.")])
    frame = with_count_sets(data_quality)
    frame["reason"] = frame["reason"].map(_safe_text)
    # Shown as tables/data_quality.csv shows it (`pipeline.write_data_quality` publishes that).
    shown = gated(frame, DATA_QUALITY_GATE, study)

    ingest = shown[(shown["stage"] == "ingest") & shown["check"].isin(list(INGEST_CHECKS))]
    if len(ingest):
        wide = ingest.pivot(index="table", columns="check", values="n")
        wide = wide.reindex(columns=[c for c in INGEST_CHECKS if c in wide.columns]).rename(columns=INGEST_CHECKS)
        blocks.append(_table(wide.reset_index(), "Rows per source table"))
    reasons = shown[(shown["stage"] == "ingest") & (shown["check"] == "quarantined")]
    if len(reasons):
        blocks.append(_table(reasons[["table", "reason", "n"]].reset_index(drop=True), "Quarantine reasons"))
    matched = shown[(shown["stage"] == "lines") & shown["check"].isin(["rows_in", "rows_matched", "quarantined"])]
    if len(matched):
        blocks.append(_table(matched[["table", "check", "n"]].reset_index(drop=True),
                             "Prescriptions matched to the drug vocabulary"))
    names = shown[(shown["stage"] == "lines") & (shown["check"] == "unmatched_name")]
    if shown_unmatched is not None and len(shown_unmatched):
        blocks.append(_table(shown_unmatched.head(10)[list(UNMATCHED_SHOWN)].rename(columns=UNMATCHED_SHOWN),
                             "Most frequent unmatched drug names, with the vocabulary entries nearest to "
                             "each (tables/unmatched_drug_names.csv lists 50; add a name to a vocabulary "
                             "override file to map it)"))
    elif len(names):
        exact = frame.loc[names.index, "n"]
        top = names.loc[exact.sort_values(ascending=False, kind="stable").index[:10]]
        blocks.append(_table(top[["reason", "n"]].rename(columns={"reason": "drug name (normalised)"})
                             .reset_index(drop=True), "Most frequent unmatched drug names"))
    errors = shown[shown["stage"].isin(["cohort", "endpoints"])]
    if len(errors):
        blocks.append(_table(errors[["stage", "table", "check", "reason", "n"]].reset_index(drop=True),
                             "Data errors found"))
    blocks.append(_note(footnote(study.disclosure.min_cell)))
    return report.Section("data-quality", "Data quality", blocks)


def attrition_section(shown_attrition: pd.DataFrame, flow_png: bytes) -> report.Section:
    return report.Section("attrition", "Attrition", [
        _figure(flow_png, "Attrition flow"),
        _table(shown_attrition[["step", "criterion", "n_remaining", "n_excluded"]].reset_index(drop=True),
               "Attrition table"),
    ])


def table1_section(shown_table1: pd.DataFrame, study: StudyConfig) -> report.Section:
    return report.Section("table1", "Table 1: characteristics at the index date", [
        _table(table1_display(shown_table1)),
        _note("Percentages of all cohort patients. " + footnote(study.disclosure.min_cell)),
    ])


def patterns_section(shown_patterns: pd.DataFrame, sunburst_png: bytes | None, study: StudyConfig
                     ) -> report.Section:
    blocks = [_table(patterns_display(shown_patterns), "Index regimens, dose, schedule, later lines and trends")]
    if sunburst_png is not None:
        blocks.append(_figure(sunburst_png, f"Sequences: {sequences_title(study)}"))
        blocks.append(_note(f"Sequences followed by fewer than {study.disclosure.min_cell} patients are pooled "
                            f"as '{OTHER_SEQUENCES}' before drawing. '{NO_LINE}': no further line recorded."))
    return report.Section("patterns", "Patterns of use", blocks)


def efficacy_section(shown_km: pd.DataFrame, km_pngs: dict[str, bytes], study: StudyConfig) -> report.Section:
    blocks = [
        _table(efficacy_display(shown_km, study.analysis.rate_months), "Medians and rates"),
        _note(f"Kaplan–Meier estimates. 95% confidence intervals by the {study.analysis.ci_method} transform "
              f"(ci_method = {study.analysis.ci_method}); median CI as in R's survfit. 'not reached': the curve "
              "does not fall below 50%; NE: not estimable (no follow-up that long, or the limit not reached)."),
    ]
    for endpoint, png in km_pngs.items():
        blocks.append(report.Block("h3", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
        blocks.append(_figure(png, f"Kaplan–Meier curve of {endpoint} with the numbers at risk"))
    blocks.append(_note(f"Curves stop where fewer than {study.disclosure.min_cell} patients remain at risk. "
                        + footnote(study.disclosure.min_cell)))
    return report.Section("efficacy", "Efficacy", blocks)


def subgroups_section(shown: pd.DataFrame, forest_pngs: dict[str, bytes], study: StudyConfig) -> report.Section:
    refs = shown.drop_duplicates("factor")[["factor", "reference"]]
    labels = factor_labels(study)
    ref_text = "; ".join(f"{labels.get(f, f)}: {r}" for f, r in zip(refs["factor"], refs["reference"]))
    blocks = [_note("Hazard ratios from Cox models (Efron ties) of each level against the reference level: "
                    "univariable, and multivariable with all the factors together (complete cases). Log-rank "
                    f"test across the levels of each factor. Reference levels: {ref_text}.")]
    for endpoint, png in forest_pngs.items():
        blocks.append(report.Block("h3", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
        blocks.append(_figure(png, f"Forest plot of {endpoint}"))
        blocks.append(_table(subgroup_display(shown[shown["endpoint"] == endpoint], labels)))
    blocks.append(_note(footnote(study.disclosure.min_cell)))
    return report.Section("subgroups", "Subgroups", blocks)


def sensitivity_section(shown: pd.DataFrame, pngs: dict[str, bytes], study: StudyConfig) -> report.Section:
    blocks = [_table(sensitivity_display(shown), "Main and sensitivity analyses"),
              _note("rwPFS from assessments only: the patients whose rwPFS comes from tumor assessments (no TTNT "
                    "proxy). OS censored at last contact instead of the data cut-off. Lines rebuilt with another "
                    "maximum gap: the whole cohort and its endpoints built again, so its patients can differ "
                    "slightly. A sensitivity n that differs from the main n by 1 to "
                    f"{study.disclosure.min_cell - 1} patients is withheld (*). Numbers at risk under the "
                    "figures: main analysis. " + footnote(study.disclosure.min_cell))]
    for endpoint, png in pngs.items():
        blocks.append(report.Block("h3", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
        blocks.append(_figure(png, f"{endpoint}: main and sensitivity analyses"))
    return report.Section("sensitivity", "Sensitivity analyses", blocks)


def safety_section(result: SafetyResult, shown: pd.DataFrame, study: StudyConfig) -> report.Section:
    blocks = []
    if not result.labs_available:
        blocks.append(_note("Laboratory toxicities: not available (the extract has no labs table)."))
    if not result.adverse_events_available:
        blocks.append(_note("Recorded adverse events: not available (the extract has no adverse_events table)."))
    available = shown[~shown["note"].fillna("").str.startswith("not available")]
    if len(available):
        patients = gated(pd.DataFrame({"patients": [result.denominator]}), COHORT_SIZE_GATE, study)["patients"].iloc[0]
        blocks.append(_table(safety_display(available), "Incidence by term: patients with the term"))
        blocks.append(_note(
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


def methods_section(inputs: AnalysisInputs, safety: SafetyResult) -> report.Section:
    study = inputs.study
    e = study.endpoints
    share = gated(proxy_share(inputs.endpoints), PROXY_SHARE_GATE, study)
    share["percent"] = [_percent_text(v) for v in share["percent"]]
    blocks = [
        report.Block("h3", "Endpoints"),
        report.Block("p", f"Time zero is the index date (the start of the index line: {index_line_words(study)}). Horizon {e.horizon_days} days (5 years): longer times are "
                          "censored there. Months = days / 30.4375."),
        *[report.Block("p", text) for name, text in endpoint_definitions(e).items() if name in e.include],
        *([_table(share, "rwPFS by source: tumor assessments or the TTNT proxy")] if "rwPFS" in e.include else []),
        report.Block("h3", "Statistics"),
        report.Block("p", f"Kaplan–Meier with Greenwood variance; 95% CIs by the {study.analysis.ci_method} "
                          "transform; medians and their CIs by R's rule. Cox proportional hazards with Efron ties. "
                          "Numbers at risk every "
                          f"{study.analysis.risk_table_every_months} months."),
        report.Block("h3", "Disclosure control"),
        report.Block("p", f"No count from 1 to {study.disclosure.min_cell - 1} is shown: it reads "
                          f"{small_text(study.disclosure.min_cell)}, and a count, percentage or statistic that "
                          f"would reveal it reads {MASKED}. Numbers at risk are suppressed the same way and curves "
                          "stop where fewer patients remain at risk. No patient identifier, birth date or exact "
                          "event date is shown."),
    ]
    if safety.counts.get("patients_without_window"):
        blocks.append(_note("Some cohort patients have no index line in therapy_lines and so no safety window."))
    return report.Section("methods", "Methods notes", blocks)


# -- The stage ------------------------------------------------------------------------------------

def _audit_written(writer: _Writer, study: StudyConfig) -> None:
    written = {p.resolve() for p in writer.files.values()}
    problems = [p for p in audit(writer.out_dir, study) if Path(p.path).resolve() in written]
    if problems:
        raise DisclosureError(f"the disclosure audit found {len(problems)} problem(s), first: {problems[0]}")


def _km_section_data(inputs: AnalysisInputs, writer: _Writer) -> tuple[pd.DataFrame, dict[str, bytes]]:
    study = inputs.study
    km = km_table(inputs.endpoints, study)
    shown = writer.publish(km, km_gate(km.columns))
    pngs = {}
    for endpoint in _endpoint_order(inputs.endpoints):
        rows = inputs.endpoints[inputs.endpoints["endpoint"] == endpoint]
        pngs[endpoint] = writer.figure(f"km_{endpoint}", km_figure(
            rows, study, "endpoint", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint})"))
    return shown, pngs


def _subgroup_section_data(inputs: AnalysisInputs, writer: _Writer) -> tuple[pd.DataFrame, dict[str, bytes]]:
    study = inputs.study
    levels = subgroup_levels(inputs.cohort, study)
    exact = subgroup_table(inputs.endpoints, levels, study)
    shown = writer.publish(exact, SUBGROUP_GATE)
    labels = factor_labels(study)
    pngs = {}
    for endpoint in _endpoint_order(inputs.endpoints):
        mask = (exact["endpoint"] == endpoint).to_numpy()
        rows = forest_rows(shown[mask], exact[mask], labels)
        pngs[endpoint] = writer.figure(f"forest_{endpoint}", figures.forest(
            rows, f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}): hazard ratios by subgroup"))
    return shown, pngs


def _sensitivity_section_data(inputs: AnalysisInputs, writer: _Writer) -> tuple[pd.DataFrame, dict[str, bytes]]:
    study = inputs.study
    frames = sensitivity_frames(inputs)
    table = sensitivity_table(frames, study)
    shown = writer.publish(table, sensitivity_gate(table))
    labelled = pd.concat([f.assign(analysis=label) for label, f in frames.items() if len(f)], ignore_index=True)
    pngs = {}
    for endpoint in _endpoint_order(inputs.endpoints):
        rows = labelled[labelled["endpoint"] == endpoint]
        order = [label for label in frames if (rows["analysis"] == label).any()]
        events = rows.groupby("analysis")["event"].sum()
        drawable = [label for label in order if not 0 < events[label] < study.disclosure.min_cell]
        if len(order) > 1 and drawable:  # a figure of withheld curves only says nothing
            # Numbers at risk of the main analysis only: a sensitivity cohort's row would show, at
            # month 0, a difference of a few patients from the main one that the table withholds.
            pngs[endpoint] = writer.figure(f"km_sensitivity_{endpoint}", km_figure(
                rows, study, "analysis", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}): main and "
                                         "sensitivity analyses", order=order, risk_groups=[MAIN]))
    return shown, pngs


def _patterns_data(inputs: AnalysisInputs, writer: _Writer) -> tuple[pd.DataFrame, bytes | None]:
    study = inputs.study
    table = patterns_with_sets(inputs.cohort, inputs.lines, inputs.exposures, inputs.vitals, study.disclosure.min_cell,
                               inputs.pattern_drugs, PatternVariables.of(study))
    shown = writer.publish(table, PATTERNS_GATE)
    counts = merge_small_sequences(sequence_counts(inputs.cohort, inputs.lines), study.disclosure.min_cell)
    png = None
    if counts["n"].sum() >= study.disclosure.min_cell:
        png = writer.figure("sequences_sunburst", figures.sequence_sunburst(counts, sequences_title(study)))
    return shown, png


def sequences_title(study: StudyConfig) -> str:
    """The lines the sequences follow: those of the index line's setting."""
    setting = study.index.setting
    return "Lines 1 → 2 → 3 of the index line's setting" if setting == "any" else f"{setting.capitalize()} lines 1 → 2 → 3"


def run_analysis(inputs: AnalysisInputs, out_dir: Path) -> AnalysisResult:
    """Write tables/*.csv, figures/*.png and report.html under out_dir; audit them; return the
    exact safety events for the lake and the files written (a DisclosureError if the audit
    finds anything in them)."""
    study = inputs.study
    writer = _Writer(Path(out_dir), study)

    # tables/attrition.csv is the cohort stage's (`pipeline.stage_cohort` publishes it): shown
    # here as it shows it.
    shown_attrition = gated(suppress_attrition(inputs.attrition, min_cell=study.disclosure.min_cell),
                            ATTRITION_GATE, study)
    flow = writer.figure("attrition_flow", figures.attrition_flow(shown_attrition))

    baseline = table1(inputs.cohort, [(v.name, variable_words(v)) for v in study.variables])
    shown_baseline = writer.publish(baseline, TABLE1_GATE)
    shown_patterns, sunburst = _patterns_data(inputs, writer)
    shown_km, km_pngs = _km_section_data(inputs, writer)
    shown_subgroups, forest_pngs = _subgroup_section_data(inputs, writer)
    shown_sensitivity, sensitivity_pngs = _sensitivity_section_data(inputs, writer)

    safety = analyse_safety(inputs.cohort, inputs.labs, inputs.adverse_events, study)
    shown_safety = writer.publish(safety.incidence, SAFETY_GATE)

    shown_unmatched = None
    if inputs.unmatched_names is not None:
        unmatched = unmatched_names_table(inputs.unmatched_names)
        shown_unmatched = writer.publish(unmatched, UNMATCHED_GATE)
    sections = [
        data_quality_section(inputs.data_quality, study, shown_unmatched),
        attrition_section(shown_attrition, flow),
        table1_section(shown_baseline, study),
        patterns_section(shown_patterns, sunburst, study),
        efficacy_section(shown_km, km_pngs, study),
        subgroups_section(shown_subgroups, forest_pngs, study),
        sensitivity_section(shown_sensitivity, sensitivity_pngs, study),
        safety_section(safety, shown_safety, study),
        methods_section(inputs, safety),
    ]
    writer.text("report.html", report.render(*report_heading(study), sections))
    _audit_written(writer, study)
    log.info("analysis: %d files written", len(writer.files))
    return AnalysisResult(safety_events=safety.events, files=dict(writer.files))
