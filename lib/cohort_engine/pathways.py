"""Treatment pathways from the index line on, as the flows of a Sankey diagram (study rules §7).

A patient's pathway is a row of nodes, one per column: the index line (column 1), the lines
of the same setting that follow it (columns 2 … depth), then where the pathway ends. A line
node reads "line <its line number>: <regimen as in gold/therapy_lines>". After the last line
a patient reaches within `depth` columns comes one terminal node:
  - "died" when the patient's OS row has event 1 (a death up to the cut-off), and
  - "no further line" when it is censored (event 0),
in both cases because the patient has no further line of the index setting (lines of another
setting do not count: an early-setting pathway ends where the early lines end).
A patient with a line beyond column `depth` gets no terminal node: the flow ends at the line
in column `depth`, since "died" or "no further line" would be false of them.

Flow of step k: from a patient's node in column k to their node in column k + 1, so each
patient is counted once at each step they take. Hence, for every line node, the patients
entering it equal those leaving it, except in column `depth`, whose leavers fall short of
its entrants by exactly the patients with lines beyond `depth`.

Disclosure (study rules §9): `pooled_line_pathways` pools the regimens of small flows into
"other regimens" patient by patient, so the flows still balance; `PATHWAYS_GATE` suppresses
what stays small when `publish.publish` writes tables/line_pathways.csv.
"""
from __future__ import annotations

import dataclasses

import pandas as pd

from .errors import StageError
from .publish import Gate

DIED = "died"
NO_FURTHER_LINE = "no further line"
OTHER_REGIMENS = "other regimens"
OTHER_PATHWAYS = "(other pathways)"
NO_LINE = "(no further line)"   # the patterns' next-line regimen of a patient without one, whatever the ending
PATHWAY_STEP = " > "
PATHWAY_ENDINGS = (DIED, NO_FURTHER_LINE)
FLOW_COLUMNS = ["step", "source", "target", "n"]

# The flows out of one node, and those into one node, add up to the node's patients, which the
# figure prints: each set is a partition with a known total.
PATHWAYS_GATE = Gate("line_pathways", count_columns=("n",), partition_by=("step", "source"),
                     partitions=(("step", "target"),))


def lines_from_the_index_line(cohort: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Each cohort patient's lines of the index line's setting from the index line on, with
    column: 1 for the index line, 2 for the next, … (cohort: patient_id, index_setting,
    index_line_number; lines: gold/therapy_lines)."""
    index = cohort[["patient_id", "index_setting", "index_line_number"]]
    own = lines.merge(index, left_on=["patient_id", "setting"], right_on=["patient_id", "index_setting"])
    own = own[own["line_number"] >= own["index_line_number"]]
    return own.assign(column=(own["line_number"] - own["index_line_number"] + 1).astype(int))


def pathway_nodes(cohort: pd.DataFrame, lines: pd.DataFrame, os_endpoints: pd.DataFrame, depth: int = 3
                  ) -> pd.DataFrame:
    """patient_id, column, line_number (<NA> for a terminal), regimen (or the terminal's word):
    every cohort patient's pathway as the module docstring defines it (exact, patient level)."""
    if depth < 2:
        raise ValueError(f"depth {depth}: a pathway needs the index line and at least one step after it")
    index = cohort[["patient_id", "index_setting", "index_line_number"]]
    own = lines_from_the_index_line(cohort, lines)
    without_index_line = set(index["patient_id"]) - set(own.loc[own["column"] == 1, "patient_id"])
    if without_index_line:
        raise StageError(f"{len(without_index_line)} cohort patient(s) have no index line in therapy_lines: "
                         "gold/cohort and gold/therapy_lines are out of step")
    os_rows = os_endpoints.loc[os_endpoints["endpoint"] == "OS"] if "endpoint" in os_endpoints else os_endpoints
    event = os_rows.drop_duplicates("patient_id").set_index("patient_id")["event"]
    without_os = set(index["patient_id"]) - set(event.index)
    if without_os:
        raise StageError(f"{len(without_os)} cohort patient(s) have no OS row: a pathway's end is unknown")

    reached = own[own["column"] <= depth][["patient_id", "column", "line_number", "regimen"]]
    last = reached.groupby("patient_id", as_index=False)["column"].max()
    beyond = set(own.loc[own["column"] > depth, "patient_id"])
    ending = last[~last["patient_id"].isin(beyond)]
    terminals = pd.DataFrame({
        "patient_id": ending["patient_id"].to_numpy(),
        "column": (ending["column"] + 1).to_numpy(),
        "line_number": pd.NA,
        "regimen": [DIED if event[p] == 1 else NO_FURTHER_LINE for p in ending["patient_id"]]})
    nodes = pd.concat([reached, terminals], ignore_index=True)
    nodes["line_number"] = nodes["line_number"].astype("Int64")
    return nodes.sort_values(["patient_id", "column"]).reset_index(drop=True)


def node_label(line_number, regimen: str) -> str:
    return regimen if pd.isna(line_number) else f"line {line_number}: {regimen}"


def patient_flows(nodes: pd.DataFrame) -> pd.DataFrame:
    """patient_id, step, source, target: each patient's step from column k to column k + 1."""
    labelled = nodes.assign(label=[node_label(n, r) for n, r in zip(nodes["line_number"], nodes["regimen"])])
    labelled = labelled.sort_values(["patient_id", "column"])
    following = labelled.groupby("patient_id")["label"].shift(-1)
    steps = labelled.assign(step=labelled["column"], source=labelled["label"], target=following)
    return steps.dropna(subset=["target"])[["patient_id", "step", "source", "target"]].reset_index(drop=True)


def flows_table(nodes: pd.DataFrame) -> pd.DataFrame:
    """step, source, target, n: patients per flow, by step, largest first."""
    flows = patient_flows(nodes).groupby(["step", "source", "target"], as_index=False).size()
    flows = flows.rename(columns={"size": "n"}).astype({"step": int, "n": int})
    flows = flows.sort_values(["step", "n", "source", "target"], ascending=[True, False, True, True])
    return flows[FLOW_COLUMNS].reset_index(drop=True)


def line_pathways(cohort: pd.DataFrame, lines: pd.DataFrame, os_endpoints: pd.DataFrame, depth: int = 3
                  ) -> pd.DataFrame:
    """The exact flows (step, source, target, n) of the cohort's pathways (module docstring).

    cohort: patient_id, index_setting, index_line_number; lines: gold/therapy_lines;
    os_endpoints: patient_id, event (gold/endpoints, its OS rows are taken when it has an
    endpoint column)."""
    return flows_table(pathway_nodes(cohort, lines, os_endpoints, depth))


def pool_small_flows(nodes: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    """The pathways with the regimens of small flows renamed OTHER_REGIMENS.

    While a flow of 1 to min_cell − 1 patients has a regimen not yet pooled, its patients' next
    regimen (the flow's target) is pooled; where the target is a terminal or already pooled, their
    regimen at the flow's source is. The target goes first so that a line reached by few keeps the
    line before it: A → (many rare second lines) becomes A → "other regimens". Each patient's
    node changes in every flow it belongs to, so the flows still balance. The index line (column
    1) is never renamed; flows whose regimens cannot be pooled stay small: `pooled_pathways`
    pools whole pathways after this.
    """
    nodes = nodes.copy()
    while True:
        flows = patient_flows(nodes)
        size = flows.groupby(["step", "source", "target"])["patient_id"].transform("size")
        small = flows[size < min_cell]
        # The index regimen stays itself: its count per regimen is published in the patterns.
        poolable = nodes["line_number"].notna() & (nodes["regimen"] != OTHER_REGIMENS) & (nodes["column"] > 1)
        key = pd.MultiIndex.from_frame(nodes[["patient_id", "column"]])
        open_nodes = set(key[poolable.to_numpy()])
        targets = [(p, s + 1) for p, s in zip(small["patient_id"], small["step"])]
        sources = [(p, s) for p, s in zip(small["patient_id"], small["step"])]
        chosen = {t if t in open_nodes else s for t, s in zip(targets, sources) if t in open_nodes or s in open_nodes}
        if not chosen:
            return nodes
        nodes.loc[key.isin(list(chosen)), "regimen"] = OTHER_REGIMENS


def pathway_names(nodes: pd.DataFrame) -> pd.Series:
    """Each patient's pathway in words, its nodes' regimens (or ending) joined by PATHWAY_STEP."""
    ordered = nodes.sort_values(["patient_id", "column"])
    return ordered.groupby("patient_id", sort=True)["regimen"].agg(PATHWAY_STEP.join)


def _margin_keys(nodes: pd.DataFrame) -> pd.DataFrame:
    """Per patient, the published counts it stands in: its index regimen ("index regimen" of the
    patterns) and its next line's regimen, or NO_LINE without one ("second-line" or
    "next-line regimen")."""
    wide = nodes.pivot(index="patient_id", columns="column", values="regimen")
    terminal = nodes[nodes["line_number"].isna()].set_index("patient_id")["column"]
    second = wide[2].where(~(terminal.reindex(wide.index) == 2), NO_LINE)
    return pd.DataFrame({"index regimen": wide[1], "next line": second.fillna(NO_LINE)})


@dataclasses.dataclass(frozen=True)
class PooledPathways:
    """counts: pathway, n (every n at least min_cell; the pooled pathways last, as
    OTHER_PATHWAYS); shown_nodes: the nodes of the patients whose pathway is shown (the
    Sankey's flows are theirs, so each flow is a sum of shown pathways)."""
    counts: pd.DataFrame
    shown_nodes: pd.DataFrame

    @property
    def pooled(self) -> int:
        return int(self.counts.loc[self.counts["pathway"] == OTHER_PATHWAYS, "n"].sum())


def pooled_pathways(nodes: pd.DataFrame, min_cell: int) -> PooledPathways:
    """The cohort's pathways, small ones pooled whole, so that nothing from 1 to min_cell − 1
    can be read from them, nor from them and the patterns' published counts.

    First the regimens of small flows are pooled (`pool_small_flows`, columns 2 on). Then every
    pathway followed by fewer than min_cell patients joins OTHER_PATHWAYS, and so does, while
    one of the published counts a pathway adds up to (the patients of one index regimen, of one
    next-line regimen, of the cohort: `_margin_keys`) would leave 1 to min_cell − 1 of its
    patients outside the shown pathways, the smallest shown pathway holding some of them. A
    patient whose next-line regimen was renamed "other regimens" counts as outside its margin.
    The Sankey's flows, drawn from the shown pathways only, are then sums of shown counts.
    """
    renamed = pool_small_flows(nodes, min_cell)
    names = pathway_names(renamed)
    true_keys, shown_keys = _margin_keys(nodes), _margin_keys(renamed)
    sizes = names.value_counts()
    pooled = set(sizes.index[sizes < min_cell])
    margins = [(column, true_keys[column], true_keys[column] == shown_keys[column]) for column in true_keys]
    margins.append(("cohort", pd.Series("all", index=true_keys.index), pd.Series(True, index=true_keys.index)))
    while True:
        shown = ~names.isin(pooled)
        widen = None
        for _, key, same in margins:
            outside = (~(shown & same)).groupby(key).sum()
            for group in outside.index[(outside >= 1) & (outside < min_cell)]:
                candidates = names[shown & same & (key == group)].unique()
                if len(candidates):
                    widen = min(candidates, key=lambda name: (sizes[name], name))
                    break
            if widen is not None:
                break
        if widen is None:
            break
        pooled.add(widen)
    counts = sizes[~sizes.index.isin(pooled)].rename_axis("pathway").reset_index(name="n")
    counts = counts.sort_values(["n", "pathway"], ascending=[False, True], kind="stable")
    left = int(sizes[sizes.index.isin(pooled)].sum())
    if left:
        counts = pd.concat([counts, pd.DataFrame({"pathway": [OTHER_PATHWAYS], "n": [left]})], ignore_index=True)
    shown_patients = names.index[~names.isin(pooled)]
    return PooledPathways(counts.astype({"n": int}).reset_index(drop=True),
                          renamed[renamed["patient_id"].isin(shown_patients)].reset_index(drop=True))
