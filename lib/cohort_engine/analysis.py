"""The analysis stage: the collected cohort → tables, figures and the report (study rules §6–§9).

The lead's Spark stage narrows the lake to the cohort and calls `run_analysis` with
pandas frames (`AnalysisInputs`). Everything here is pandas, lifelines and matplotlib on
a few thousand rows. Exact numbers stay in memory (and `AnalysisResult.safety_events`
goes back to the lake); every table leaves through `publish.publish` under its `Gate`,
gated once for both its CSV and the report (a frame the report alone shows through
`publish.shown`), every number drawn on a figure comes from a frame that went through
disclosure control, and the finished files are audited (`publish.audit`).

Each table is computed by the module named after it (`efficacy`, `subgroups`,
`sensitivity`, `baseline`, `patterns`, `safety`, and for two arms compared `comparative`)
and put in words by `report_sections` (`comparison_sections`); `run_analysis` only strings
them together.
"""
from __future__ import annotations

import dataclasses
import logging
import typing
from pathlib import Path

import pandas as pd

from . import comparison_figures, comparison_sections, figures, report, report_sections
from .balance import BALANCE_GATE, as_table1_by_arm_shows, love_plot_data
from .baseline import MEDIAN_IQR, TABLE1_BY_ARM_GATE, TABLE1_GATE, table1, table1_by_arm
from .comparative import DATASET_COLUMNS, compare_arms, primary_method_name
from .comparison import SAFETY_COMPARISON_GATE, comparison_gate
from .disclosure import suppress_attrition
from .efficacy import (ENDPOINT_NAMES, endpoint_order, km_by_arm_gate, km_figure, km_gate, km_table, km_table_by_arm,
                       with_arms)
from .errors import DisclosureError
from .pathways import PATHWAY_ENDINGS, PATHWAYS_GATE, flows_table, pathway_nodes, pooled_pathways
from .patterns import PATTERNS_BY_ARM_GATE, PATTERNS_GATE, PatternVariables, patterns_by_arm, patterns_with_sets
from .publish import Gate, audit
from .publish import publish as publish_table
from .publish import shown as gated
from .safety import SAFETY_GATE, analyse_safety
from .sensitivity import MAIN, sensitivity_frames, sensitivity_gate, sensitivity_table
from .studies import ATTRITION_GATE, index_line_words
from .study_config import StudyConfig
from .subgroups import SUBGROUP_GATE, factor_labels, subgroup_levels, subgroup_table

log = logging.getLogger(__name__)


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
    class_names: typing.Mapping[str, str]  # drug_class → its name in sentences (vocabulary.class_names)
    vitals: pd.DataFrame | None = None
    labs: pd.DataFrame | None = None
    adverse_events: pd.DataFrame | None = None
    sensitivity: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    unmatched_names: pd.DataFrame | None = None  # gold/unmatched_drug_names (None: lines not built by this engine)
    # The ingredients whose dose and schedule patterns describe (study.patterns), each with the
    # basis its dose is prescribed on (vocabulary.dose_bases).
    pattern_drugs: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AnalysisResult:
    """safety_events: gold/safety_events and comparison_dataset: gold/comparison_dataset
    (None for a study without a comparison); both exact, for the lake, never written under
    out_dir. files: every file written, by name relative to out_dir ("tables/km_summary.csv", …)."""
    safety_events: pd.DataFrame
    files: dict[str, Path]
    comparison_dataset: pd.DataFrame | None = None


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
    for endpoint in endpoint_order(inputs.endpoints):
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
    for endpoint in endpoint_order(inputs.endpoints):
        rows = report_sections.forest_rows(shown[shown["endpoint"] == endpoint], labels)
        pngs[endpoint] = writer.figure(f"forest_{endpoint}", figures.forest(
            rows, f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}): hazard ratios by subgroup"))
    return shown, pngs


def _sensitivity_section_data(inputs: AnalysisInputs, writer: _Writer) -> tuple[pd.DataFrame, dict[str, bytes]]:
    study = inputs.study
    frames = sensitivity_frames(inputs.endpoints, inputs.sensitivity)
    table = sensitivity_table(frames, study)
    shown = writer.publish(table, sensitivity_gate(table))
    labelled = pd.concat([f.assign(analysis=label) for label, f in frames.items() if len(f)], ignore_index=True)
    pngs = {}
    for endpoint in endpoint_order(inputs.endpoints):
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


def _patterns_data(inputs: AnalysisInputs, writer: _Writer) -> tuple[pd.DataFrame, bytes | None, str | None]:
    """The patterns table, the pathways' sunburst and their Sankey (an inline SVG), all three
    from one pooling of the pathways (none without an OS endpoint, which says where a pathway
    ends)."""
    study = inputs.study
    min_cell = study.disclosure.min_cell
    os_rows = inputs.endpoints[inputs.endpoints["endpoint"] == "OS"]
    pathways = None
    if len(inputs.cohort) >= min_cell and len(os_rows):
        pathways = pooled_pathways(pathway_nodes(inputs.cohort, inputs.lines, os_rows), min_cell)
    table = patterns_with_sets(inputs.cohort, inputs.lines, inputs.exposures, inputs.vitals, min_cell,
                               inputs.pattern_drugs, PatternVariables.of(study),
                               None if pathways is None else pathways.counts)
    shown = writer.publish(table, PATTERNS_GATE)
    if pathways is None:
        return shown, None, None
    title = "Treatment pathways from the index line through the next two lines of its setting"
    png = writer.figure("sequences_sunburst", figures.pathway_sunburst(pathways.counts, title, PATHWAY_ENDINGS))
    flows = writer.publish(flows_table(pathways.shown_nodes), PATHWAYS_GATE)
    writer.figure("line_pathways", figures.line_sankey(flows, title, PATHWAY_ENDINGS))
    svg = figures.line_sankey_svg(flows, title, PATHWAY_ENDINGS)
    writer.text("figures/line_pathways.svg", svg)
    return shown, png, svg


def _arms_section(inputs: AnalysisInputs, writer: _Writer) -> tuple[report.Section, pd.DataFrame]:
    """Table 1, Kaplan–Meier estimates and patterns of use per arm, published and put in words."""
    study = inputs.study
    min_cell = study.disclosure.min_cell
    by_arm = writer.publish(table1_by_arm(inputs.cohort, study.variables, study.arms, min_cell), TABLE1_BY_ARM_GATE)
    data = with_arms(inputs.endpoints, inputs.cohort)
    km = km_table_by_arm(data, study)
    shown_km = writer.publish(km, km_by_arm_gate(km.columns))
    pngs = {}
    for endpoint in endpoint_order(data):
        rows = data[data["endpoint"] == endpoint]
        pngs[endpoint] = writer.figure(f"km_{endpoint}_by_arm", km_figure(
            rows, study, "arm", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}) by arm",
            order=[arm.name for arm in study.arms]))
    patterns = patterns_by_arm(inputs.cohort, inputs.lines, inputs.exposures, inputs.vitals, min_cell,
                               inputs.pattern_drugs, PatternVariables.of(study), study.arms)
    shown_patterns = writer.publish(patterns, PATTERNS_BY_ARM_GATE)
    return report_sections.arms_section(study, by_arm, shown_km, pngs, shown_patterns), by_arm


def _comparison_section(inputs: AnalysisInputs, writer: _Writer, safety_events: pd.DataFrame,
                        shown_by_arm: pd.DataFrame) -> tuple[report.Section, pd.DataFrame]:
    """The two arms compared (comparative.compare_arms), published, drawn and put in words;
    and gold/comparison_dataset."""
    study = inputs.study
    config = study.comparison
    too_small = comparison_sections.arms_too_small(study, inputs.cohort)
    if too_small:
        return comparison_sections.not_compared_section(study, too_small), pd.DataFrame(columns=DATASET_COLUMNS)
    analysis = compare_arms(study, inputs.cohort, inputs.endpoints, safety_events)
    labels = comparison_sections.arm_labels(study)
    shown = {"weights": writer.publish(analysis.weights, comparison_sections.WEIGHTS_GATE),
             "balance": writer.publish(as_table1_by_arm_shows(analysis.balance, shown_by_arm, analysis.treated,
                                                              analysis.comparator, MEDIAN_IQR), BALANCE_GATE),
             "efficacy": writer.publish(analysis.efficacy, comparison_gate(config.rmst_months)),
             "safety": writer.publish(analysis.safety, SAFETY_COMPARISON_GATE)}
    # The Love plot draws the SMDs the balance table shows: a withheld one is not drawn.
    love = love_plot_data(shown["balance"].assign(**{c: pd.to_numeric(shown["balance"][c], errors="coerce")
                                                     for c in ("smd_before", "smd_weighted", "smd_matched")}))
    love["label"] = love["characteristic"] + ": " + love["level"].astype(str)
    pngs = {"love": writer.figure("comparison_love_plot", comparison_figures.love_plot(
                love, config.balance_threshold, "Covariate balance")),
            "overlap": writer.figure("comparison_overlap", comparison_figures.score_overlap(
                analysis.patients, (analysis.treated, analysis.comparator), labels,
                "Propensity score by arm", study.disclosure.min_cell))}
    forest = comparison_sections.forest_rows(shown["efficacy"])
    if len(forest):
        pngs["forest"] = writer.figure("comparison_forest", figures.forest(
            forest, "Hazard ratios, first arm against second"))
    primary = analysis.analysed[primary_method_name(config.estimand)]
    for endpoint in endpoint_order(primary):
        rows = primary[primary["endpoint"] == endpoint]
        pngs[f"km_{endpoint}"] = writer.figure(f"comparison_km_{endpoint}", km_figure(
            rows, study, "arm", f"{ENDPOINT_NAMES.get(endpoint, endpoint)} ({endpoint}) by arm, weighted",
            order=[analysis.treated, analysis.comparator], weight_col="weight"))
    return comparison_sections.comparison_section(study, analysis, shown, pngs), analysis.dataset


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

    baseline = table1(inputs.cohort, study.variables)
    shown_baseline = writer.publish(baseline, TABLE1_GATE)
    shown_patterns, sunburst, pathways = _patterns_data(inputs, writer)
    arms, shown_by_arm = [], None
    if len(study.arms) > 1:
        section, shown_by_arm = _arms_section(inputs, writer)
        arms = [section]
    shown_km, km_pngs = _km_section_data(inputs, writer)
    shown_subgroups, forest_pngs = _subgroup_section_data(inputs, writer)
    shown_sensitivity, sensitivity_pngs = _sensitivity_section_data(inputs, writer)

    safety = analyse_safety(inputs.cohort, inputs.labs, inputs.adverse_events, study)
    shown_safety = writer.publish(safety.incidence, SAFETY_GATE)
    comparison, dataset = [], None
    if study.comparison is not None:
        section, dataset = _comparison_section(inputs, writer, safety.events, shown_by_arm)
        comparison = [section]

    shown_unmatched = None
    if inputs.unmatched_names is not None:
        unmatched = report_sections.unmatched_names_table(inputs.unmatched_names)
        shown_unmatched = writer.publish(unmatched, report_sections.UNMATCHED_GATE)
    index_line = index_line_words(study, inputs.class_names)
    sections = [
        report_sections.data_quality_section(inputs.data_quality, study, shown_unmatched),
        report_sections.attrition_section(shown_attrition, flow),
        report_sections.table1_section(shown_baseline, study),
        *arms,
        report_sections.patterns_section(shown_patterns, sunburst, study, index_line, pathways),
        report_sections.efficacy_section(shown_km, km_pngs, study),
        report_sections.subgroups_section(shown_subgroups, forest_pngs, study),
        report_sections.sensitivity_section(shown_sensitivity, sensitivity_pngs, study),
        report_sections.safety_section(safety, shown_safety, study),
        *comparison,
        report_sections.methods_section(study, index_line, inputs.endpoints, safety),
    ]
    writer.text("report.html", report.render(*report_sections.report_heading(study), sections))
    _audit_written(writer, study)
    log.info("analysis: %d files written", len(writer.files))
    return AnalysisResult(safety_events=safety.events, files=dict(writer.files), comparison_dataset=dataset)
