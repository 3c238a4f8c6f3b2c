"""Line pathways: flows from the index line on, pooled and gated, drawn as a Sankey (PNG and SVG)."""
from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ElementTree

import pandas as pd
import pytest

from cohort_engine import figures, report
from cohort_engine.errors import StageError
from cohort_engine.pathways import (OTHER_PATHWAYS, PATHWAYS_GATE, flows_table, line_pathways, pathway_nodes,
                                    pool_small_flows, pooled_pathways)
from cohort_engine.publish import publish, shown

SVG = "{http://www.w3.org/2000/svg}"

# Eight patients, advanced index line 1, depth 3 (regimens are letters: any text will do).
#   P1, P2  A → B, died            P5  A, died
#   P3      A → B → C, censored    P6  A, censored
#   P4      A → B → C → D          P7  A → G, censored
#           (and an early line E)  P8  H → B, died
LINES = [("P1", 1, "A"), ("P1", 2, "B"), ("P2", 1, "A"), ("P2", 2, "B"),
         ("P3", 1, "A"), ("P3", 2, "B"), ("P3", 3, "C"),
         ("P4", 1, "A"), ("P4", 2, "B"), ("P4", 3, "C"), ("P4", 4, "D"),
         ("P5", 1, "A"), ("P6", 1, "A"), ("P7", 1, "A"), ("P7", 2, "G"), ("P8", 1, "H"), ("P8", 2, "B")]
OS_EVENTS = {"P1": 1, "P2": 1, "P3": 0, "P4": 1, "P5": 1, "P6": 0, "P7": 0, "P8": 1}


def therapy_lines(rows, setting="advanced") -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [p for p, _, _ in rows], "setting": setting,
                         "line_number": [k for _, k, _ in rows],
                         "start_date": [dt.date(2020, 1, 1) + dt.timedelta(days=90 * k) for _, k, _ in rows],
                         "regimen": [r for _, _, r in rows]})


def inputs(index_line_number=1):
    patients = sorted(OS_EVENTS)
    cohort = pd.DataFrame({"patient_id": patients, "index_date": dt.date(2020, 4, 1),
                           "index_setting": "advanced", "index_line_number": index_line_number})
    lines = pd.concat([therapy_lines(LINES), therapy_lines([("P4", 1, "E")], setting="early")], ignore_index=True)
    endpoints = pd.DataFrame({"patient_id": patients * 2, "endpoint": ["OS"] * 8 + ["TTNT"] * 8,
                              "time_days": [400] * 16, "event": [OS_EVENTS[p] for p in patients] + [1] * 8})
    return cohort, lines, endpoints


def rows(flows: pd.DataFrame) -> list[tuple]:
    return list(flows[["step", "source", "target", "n"]].itertuples(index=False, name=None))


def balance(flows: pd.DataFrame) -> dict[tuple[int, str], tuple[int, int]]:
    """(column, line node) → (patients entering, patients leaving), for columns after the first."""
    entering = flows.assign(column=flows["step"] + 1).groupby(["column", "target"])["n"].sum()
    leaving = flows.groupby(["step", "source"])["n"].sum()
    return {(c, node): (int(n), int(leaving.get((c, node), 0)))
            for (c, node), n in entering.items() if node.startswith("line ")}


def test_the_flows_of_eight_worked_pathways():
    # Step 1: A → B is P1–P4; P5, P6 end after A (died, censored); P7 goes to G; P8 H → B.
    # Step 2: B → died is P1, P2, P8; B → C is P3, P4; G → no further line is P7.
    # Step 3: C → no further line is P3; P4's flow ends at C (a fourth line, beyond depth 3).
    flows = line_pathways(*inputs())
    assert rows(flows) == [
        (1, "line 1: A", "line 2: B", 4), (1, "line 1: A", "died", 1), (1, "line 1: A", "line 2: G", 1),
        (1, "line 1: A", "no further line", 1), (1, "line 1: H", "line 2: B", 1),
        (2, "line 2: B", "died", 3), (2, "line 2: B", "line 3: C", 2), (2, "line 2: G", "no further line", 1),
        (3, "line 3: C", "no further line", 1)]
    assert flows.loc[flows["step"] == 1, "n"].sum() == 8  # every patient once at the index line
    # Entering = leaving at each line node, but in the last column (P4 goes on beyond it).
    assert balance(flows) == {(2, "line 2: B"): (5, 5), (2, "line 2: G"): (1, 1), (3, "line 3: C"): (2, 1)}


def test_the_index_line_need_not_be_line_1():
    cohort, lines, endpoints = inputs()
    lines = pd.concat([lines, therapy_lines([("P8", 0, "Z")])], ignore_index=True)  # renumber P8: Z, H, B
    lines.loc[lines["patient_id"] == "P8", "line_number"] += 1
    cohort.loc[cohort["patient_id"] == "P8", "index_line_number"] = 2
    flows = line_pathways(cohort, lines, endpoints, depth=2)
    # Depth 2: P3, P4 go on beyond line 2, so B leaves only P1, P2 (died); P8's labels are its own lines.
    assert rows(flows) == [
        (1, "line 1: A", "line 2: B", 4), (1, "line 1: A", "died", 1), (1, "line 1: A", "line 2: G", 1),
        (1, "line 1: A", "no further line", 1), (1, "line 2: H", "line 3: B", 1),
        (2, "line 2: B", "died", 2), (2, "line 2: G", "no further line", 1), (2, "line 3: B", "died", 1)]


def test_a_cohort_patient_without_an_index_line_or_an_os_row_is_refused():
    cohort, lines, endpoints = inputs()
    with pytest.raises(StageError, match="1 cohort patient.* no index line"):
        line_pathways(cohort, lines[lines["patient_id"] != "P5"], endpoints)
    with pytest.raises(StageError, match="1 cohort patient.* no OS row"):
        line_pathways(cohort, lines, endpoints[~((endpoints["patient_id"] == "P5") & (endpoints["endpoint"] == "OS"))])


def pooled_flows(cohort, lines, endpoints, min_cell):
    return flows_table(pool_small_flows(pathway_nodes(cohort, lines, endpoints), min_cell))


def test_small_flows_are_pooled_patient_by_patient_and_still_balance():
    # min_cell 2; the index line (column 1) is never renamed. Round 1: A → died (P5), A → no
    # further line (P6) and H → B (P8's line 1) cannot pool their source; A → G (P7) and H → B
    # (P8) pool their target; C → no further line pools P3's C. Round 2: B → C (P4) pools P4's C;
    # B → other (P3) pools P3's B. Round 3: B → other (P4) pools P4's B. Then every flow of 1
    # has only the index line, pooled regimens or a terminal to pool.
    cohort, lines, endpoints = inputs()
    flows = pooled_flows(cohort, lines, endpoints, min_cell=2)
    assert rows(flows) == [
        (1, "line 1: A", "line 2: other regimens", 3), (1, "line 1: A", "line 2: B", 2),
        (1, "line 1: A", "died", 1), (1, "line 1: A", "no further line", 1),
        (1, "line 1: H", "line 2: other regimens", 1),
        (2, "line 2: B", "died", 2), (2, "line 2: other regimens", "line 3: other regimens", 2),
        (2, "line 2: other regimens", "died", 1), (2, "line 2: other regimens", "no further line", 1),
        (3, "line 3: other regimens", "no further line", 1)]
    assert flows.loc[flows["step"] == 1, "n"].sum() == 8
    assert balance(flows) == {(2, "line 2: B"): (2, 2), (2, "line 2: other regimens"): (4, 4),
                              (3, "line 3: other regimens"): (2, 1)}
    # Pooling moves patients between nodes, never in or out of a step: 8 at step 1, the 6 with a
    # second line at step 2, P3 at step 3.
    assert flows.groupby("step")["n"].sum().tolist() == [8, 6, 1]
    # With min_cell 1 nothing is small: the pooled flows are the exact ones.
    assert rows(pooled_flows(cohort, lines, endpoints, min_cell=1)) == rows(line_pathways(*inputs()))


def worked_pathways(spec):
    """cohort, lines, endpoints of one patient per (index regimen, next regimen or None, died)."""
    patients = [f"W{i:02d}" for i in range(len(spec))]
    rows_ = [(p, 1, first) for p, (first, _, _) in zip(patients, spec)]
    rows_ += [(p, 2, second) for p, (_, second, _) in zip(patients, spec) if second]
    cohort = pd.DataFrame({"patient_id": patients, "index_setting": "advanced", "index_line_number": 1})
    endpoints = pd.DataFrame({"patient_id": patients, "endpoint": "OS", "time_days": 400,
                              "event": [int(died) for _, _, died in spec]})
    return cohort, therapy_lines(rows_), endpoints


def test_pathways_are_pooled_until_no_published_count_leaves_a_few_outside_them():
    # min_cell 3. A > B > died ×3, A > B > no further line ×1, H > B > no further line ×2,
    # H > B > died ×1, D > B > died ×3: every flow holds 3 or more, so no regimen is renamed.
    # Pathways of fewer than 3 (A>B>nfl 1, H>B>nfl 2, H>B>died 1) are pooled. Index regimen A
    # (4 patients, published in the patterns) would then leave 4 − 3 = 1 outside the shown
    # pathways: A > B > died goes too. H (3 outside) and D (0) are safe; so is the cohort (7).
    spec = ([("A", "B", True)] * 3 + [("A", "B", False)] + [("H", "B", False)] * 2 + [("H", "B", True)]
            + [("D", "B", True)] * 3)
    pooled = pooled_pathways(pathway_nodes(*worked_pathways(spec)), min_cell=3)
    assert pooled.counts.values.tolist() == [["D > B > died", 3], [OTHER_PATHWAYS, 7]]
    assert pooled.pooled == 7
    assert rows(flows_table(pooled.shown_nodes)) == [(1, "line 1: D", "line 2: B", 3), (2, "line 2: B", "died", 3)]


def test_a_renamed_next_line_counts_outside_its_published_count():
    # min_cell 3. A > B > died ×3, A > C > died ×3, D > C > died ×1. D → C (1) renames D's C to
    # "other regimens". The patterns publish next-line regimen C = 4; shown, A > C > died (3)
    # would leave 4 − 3 = 1 (D's) outside: it is pooled. D's own count (1) reads "<3" there.
    spec = [("A", "B", True)] * 3 + [("A", "C", True)] * 3 + [("D", "C", True)]
    pooled = pooled_pathways(pathway_nodes(*worked_pathways(spec)), min_cell=3)
    assert pooled.counts.values.tolist() == [["A > B > died", 3], [OTHER_PATHWAYS, 4]]
    # Nothing small anywhere: the flows drawn are sums of the shown pathways.
    assert flows_table(pooled.shown_nodes)["n"].tolist() == [3, 3]


def test_pooling_changes_regimens_only():
    nodes = pathway_nodes(*inputs())
    pooled = pool_small_flows(nodes, min_cell=3)
    assert pooled[["patient_id", "column", "line_number"]].equals(nodes[["patient_id", "column", "line_number"]])
    # The index regimens (A, H) stay: their counts are published in the patterns.
    assert set(pooled["regimen"]) == {"A", "H", "other regimens", "died", "no further line"}


def test_the_gate_finds_nothing_small_in_the_flows_of_shown_pathways(seed_study, tmp_path):
    # The first worked case above, published: the Sankey's flows are the shown pathways' (3 and 3),
    # so the gate leaves them as they are.
    study = dataclasses.replace(seed_study, disclosure=dataclasses.replace(seed_study.disclosure, min_cell=3))
    spec = ([("A", "B", True)] * 3 + [("A", "B", False)] + [("H", "B", False)] * 2 + [("H", "B", True)]
            + [("D", "B", True)] * 3)
    flows = flows_table(pooled_pathways(pathway_nodes(*worked_pathways(spec)), min_cell=3).shown_nodes)
    safe, path = publish(flows, PATHWAYS_GATE, study, tmp_path)
    assert path == tmp_path / "line_pathways.csv"
    assert safe["n"].tolist() == [3, 3]
    assert pd.read_csv(path, dtype=str)["n"].tolist() == ["3", "3"]

def flows_of(*rows_) -> pd.DataFrame:
    return pd.DataFrame(list(rows_), columns=["step", "source", "target", "n"])


def test_the_layout_makes_bands_as_wide_as_their_counts():
    # a (8) splits into b (6) and c (2). The tallest column holds 8 and a gap of 0.04 × 8 = 0.32,
    # so a count of 1 is 1 / 8.32 of the height.
    layout = figures.sankey_layout(flows_of((1, "a", "b", 6), (1, "a", "c", 2)))
    nodes = {n.label: (n.column, n.count, n.top, n.bottom) for n in layout.nodes}
    unit = 1 / 8.32
    assert nodes == {"a": (1, "8", 0.0, pytest.approx(8 * unit)), "b": (2, "6", 0.0, pytest.approx(6 * unit)),
                     "c": (2, "2", pytest.approx(6.32 * unit), pytest.approx(1.0))}
    to_b, to_c = layout.bands
    assert to_b.outline[0] == ("M", ((figures.SANKEY_NODE_WIDTH, 0.0),))
    assert to_b.outline[2] == ("L", ((1.0, pytest.approx(6 * unit)),))  # its lower edge at b
    assert to_c.outline[0] == ("M", ((figures.SANKEY_NODE_WIDTH, pytest.approx(6 * unit)),))
    assert to_c.outline[2] == ("L", ((1.0, pytest.approx(1.0)),))


def test_the_drawing_is_tall_enough_for_its_labels_and_endings_are_grey():
    # Same flows: b spans 0 to 6/8.32 and c 6.32/8.32 to 1, so their centres are
    # (6.32 + 8.32 − 6) / 2 / 8.32 = 0.5192 apart. b's label is "b" and "n = 6", c's "c" and
    # "n = 2": (2 + 2 + 1) × 13 / 2 = 32.5 px of room, so 32.5 / 0.5192 = 62.6 px would do and the
    # 100 px minimum wins; with 60 px lines, (5 × 60 / 2) / 0.5192 = 288.9 px.
    layout = figures.sankey_layout(flows_of((1, "a", "b", 6), (1, "a", "c", 2)), endings=("c",))
    assert figures._height_for_labels(layout, 28, line_height=13.0, minimum=100.0) == 100.0
    assert figures._height_for_labels(layout, 28, line_height=60.0, minimum=100.0) == pytest.approx(150 / (4.32 / 8.32))
    colours = {n.label: n.colour for n in layout.nodes}
    assert colours == {"c": figures.ENDING_COLOURS[0], "a": figures.PALETTE[0], "b": figures.PALETTE[1]}


def test_a_withheld_flow_is_drawn_at_a_nominal_width_and_hides_its_nodes_count():
    # The "<5" is drawn as wide as the narrowest shown band (7), greyed; b's entrants include it,
    # so b's count is not printed; a's leavers are 12 and "<5": a's count is not printed either.
    layout = figures.sankey_layout(flows_of((1, "a", "b", 12), (1, "a", "c", "<5"), (2, "b", "d", 7)))
    counts = {n.label: n.count for n in layout.nodes}
    assert counts == {"a": "", "b": "12", "c": "", "d": "7"}
    withheld = [b for b in layout.bands if b.withheld]
    assert [(b.source, b.target, b.count, b.colour) for b in withheld] == [("a", "c", "<5", figures.WITHHELD_BAND)]
    c = next(n for n in layout.nodes if n.label == "c")
    d = next(n for n in layout.nodes if n.label == "d")
    assert c.bottom - c.top == pytest.approx(d.bottom - d.top)


def test_the_png_is_a_png():
    png = figures.line_sankey(line_pathways(*inputs()), "Advanced lines from the index line")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_the_svg_has_a_tooltip_per_band_and_node_and_escapes_its_labels():
    cohort, lines, endpoints = inputs()
    lines.loc[lines["regimen"] == "H", "regimen"] = "H<1 & K"
    flows = line_pathways(cohort, lines, endpoints)
    svg = figures.line_sankey_svg(flows, "Lines <after> the index line & beyond")
    root = ElementTree.fromstring(svg)
    layout = figures.sankey_layout(flows)
    assert (len(layout.bands), len(layout.nodes)) == (9, 10)
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert len(titles) == 9 + 10
    assert len(list(root.iter(f"{SVG}path"))) == 9 and len(list(root.iter(f"{SVG}rect"))) == 10
    assert "line 1: A → line 2: B: 4" in titles and "line 1: A (7)" in titles
    assert "line 1: H<1 & K → line 2: B: 1" in titles and "line 2: B (5)" in titles
    assert "line 1: H&lt;1 &amp; K" in svg and "H<1" not in svg
    assert root.get("aria-label") == "Lines <after> the index line & beyond"
    assert not list(root.iter(f"{SVG}script"))


# -- The report ------------------------------------------------------------------------------------

def test_the_report_renders_an_svg_block_inline():
    svg = figures.line_sankey_svg(line_pathways(*inputs()), "Pathways")
    page = report.render("Study", "Data cut-off 2025-06-30", [report.Section("pathways", "Pathways", [
        report.Block("svg", svg, caption="Hover a band for its patients <n>")])], generated=dt.date(2025, 7, 1))
    assert f'<figure class="svg">{svg}<figcaption>Hover a band for its patients &lt;n&gt;</figcaption></figure>' in page
    assert "<script" not in page


@pytest.mark.parametrize("svg, refused", [
    ('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "<script>"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><rect onmouseover="alert(1)"/></svg>', "'onmouseover'"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><style>@import "http://x/y.css";</style></svg>', "fetch"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><rect fill="url(http://x/y#p)"/></svg>', "fetch"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><text>a < b</text></svg>', "well-formed"),
    ('<div>not a figure</div>', "one <svg> element"),
    ('<!DOCTYPE svg [<!ENTITY s "<script>x</script>">]><svg xmlns="http://www.w3.org/2000/svg">&s;</svg>',
     "DOCTYPE"),
])
def test_the_report_refuses_an_svg_that_could_run_or_fetch(svg, refused):
    with pytest.raises(ValueError, match=refused.replace("(", r"\(")):
        report.render_block(report.Block("svg", svg))


def test_sunburst_wedges_that_touch_differ_in_colour():
    # Ten index regimens A…J of 100, 90 … 10 patients, none with a further line. A to I,
    # larger first, take the nine hues in turn; J, the tenth, must reuse one: it sits between I
    # (the ninth hue) and, round the circle, A (the first), so it takes the second hue with the
    # second hatch, and its colour and hatch still name it alone in the legend. The ending is grey.
    from cohort_engine.pathways import NO_FURTHER_LINE, PATHWAY_ENDINGS
    labels = list("ABCDEFGHIJ")
    counts = pd.DataFrame({"pathway": [f"{x} > {NO_FURTHER_LINE}" for x in labels],
                           "n": [100 - 10 * k for k in range(10)]})
    styles = figures.sunburst_styles(figures.pathway_rings(counts), PATHWAY_ENDINGS)
    assert list(styles) == [*labels, NO_FURTHER_LINE]
    assert [styles[x] for x in "ABCDEFGHI"] == [(c, "") for c in figures.SEQUENCE_COLOURS]
    assert styles["J"] == (figures.SEQUENCE_COLOURS[1], figures.SEQUENCE_HATCHES[1])
    assert styles[NO_FURTHER_LINE] == (figures.ENDING_GREYS[0], "")


def test_a_pooled_row_stands_in_every_ring_and_a_short_pathway_leaves_its_outer_rings_blank():
    counts = pd.DataFrame({"pathway": ["A > B > died", "A > died", "(other pathways)"], "n": [7, 5, 6]})
    rings = figures.pathway_rings(counts)
    assert [r.values.tolist() for r in rings] == [
        [["(other pathways)", 6], ["A", 12]],
        [["(other pathways)", "(other pathways)", 6], ["A", "B", 7], ["A", "died", 5]],
        [["(other pathways)", "(other pathways)", "(other pathways)", 6], ["A", "B", "died", 7],
         ["A", "died", "", 5]]]
    styles = figures.sunburst_styles(rings, ("died", "no further line"))
    assert styles[""] == ("none", "") and styles["(other pathways)"][0] in figures.ENDING_GREYS  # blank: not drawn
