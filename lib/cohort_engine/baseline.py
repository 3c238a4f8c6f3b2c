"""Table 1: the cohort's characteristics at the index date (study rules §8), overall and by arm.

Every row comes from one of the study's variables: its words are the variable's label (else
its name), its levels are read by the variable's kind. The variables are shown in the order
§8 lists their kinds (age, sex, receptor status, de novo or recurrent, metastatic sites,
earlier treatment, regimen label, hospital tier, region, index year), in the study's order
within a kind: the study's own order is gold/cohort's column order, which the contract fixes
differently.
"""
from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pandas as pd

from .baseline_variables import (AgeBandsVariable, AgeVariable, DeNovoVariable, EarlierTreatmentVariable,
                                 IndexYearVariable, MetastaticSiteVariable, variable_words)
from .disclosure import suppress_counts
from .publish import Gate
from .regimen_rules import Arm

TABLE1_COLUMNS = ["characteristic", "level", "n", "percent", "median", "q1", "q3"]
TABLE1_GATE = Gate("table1", count_columns=("n",), partition_by=("characteristic",),
                   dependents={"n": ("percent", "median", "q1", "q3")})
AGE_GROUPS = ((0, 50, "<50"), (50, 65, "50-64"), (65, 200, ">=65"))
# §8's order of the characteristics, by the kind of variable that holds them.
KIND_ORDER = ("age", "age_bands", "sex", "biomarker", "de_novo", "metastatic_site", "earlier_treatment",
              "regimen_label", "hospital_tier", "province", "region", "index_year")
PATIENTS = "patients"
MEDIAN_IQR = "median (IQR)"


def age_group(age: float) -> str:
    """<50, 50–64, ≥65 (the subgroup bands of §8)."""
    for low, high, label in AGE_GROUPS:
        if low <= age < high:
            return label
    return "unknown"


def _yes_no(value) -> str:
    if value is None or pd.isna(value):
        return "unknown"
    return "yes" if bool(value) else "no"


def _de_novo_or_recurrent(value) -> str:
    if value is None or pd.isna(value):
        return "unknown"
    return "de novo" if bool(value) else "recurrent"


def is_boolean(values: pd.Series) -> bool:
    """A yes/no column: boolean dtype, or (collected from Spark with nulls) only bools and nulls."""
    present = values.dropna()
    return pd.api.types.is_bool_dtype(values) or (len(present) > 0 and
                                                  present.map(lambda v: isinstance(v, (bool, np.bool_))).all())


def _levels_of(values: pd.Series) -> pd.Series:
    if is_boolean(values):
        return values.map(_yes_no)
    return values.map(lambda v: "unknown" if v is None or pd.isna(v) else str(v))


@dataclasses.dataclass(frozen=True)
class Characteristic:
    """One block of Table 1: per patient, a measure (summarised as median and IQR) or a level."""
    words: str
    values: pd.Series
    measured: bool = False
    level_rank: typing.Callable[[str], typing.Any] = str

    def levels(self) -> list[str]:
        """The levels the patients have, in the order Table 1 shows them."""
        return sorted(self.values.value_counts().index, key=self.level_rank)


def _ranked_by(texts: typing.Sequence[str]) -> typing.Callable[[str], typing.Any]:
    # bands young to old ("50-64" sorts before "<50" as text); a level outside them last
    rank = {text: i for i, text in enumerate(texts)}
    return lambda level: (rank.get(level, len(rank)), str(level))


def variable_reading(column: pd.Series, v) -> Characteristic:
    """A variable's own block, read by its kind: an age is a measure, every other kind levels
    (a missing value the level "unknown")."""
    words = variable_words(v)
    if isinstance(v, AgeVariable):
        return Characteristic(f"{words}, years", pd.to_numeric(column, errors="coerce"), measured=True)
    if isinstance(v, AgeBandsVariable):
        return Characteristic(words, _levels_of(column), level_rank=_ranked_by([text for _, _, text in v.bands()]))
    if isinstance(v, DeNovoVariable):
        return Characteristic(words, column.map(_de_novo_or_recurrent))
    if isinstance(v, (MetastaticSiteVariable, EarlierTreatmentVariable)):
        return Characteristic(words, column.map(_yes_no))
    if isinstance(v, IndexYearVariable):
        # a year collected with nulls arrives as a float: 2020, not "2020.0"
        return Characteristic(words, column.astype("Int64").astype(str).replace("<NA>", "unknown"))
    return Characteristic(words, _levels_of(column))


def _characteristics(cohort: pd.DataFrame, variables: typing.Sequence) -> list[Characteristic]:
    """The study's variables held by the cohort as Table 1's blocks, in §8's order."""
    out = []
    for v in sorted((v for v in variables if v.name in cohort), key=lambda v: KIND_ORDER.index(v.kind)):
        block = variable_reading(cohort[v.name], v)
        out.append(block)
        if isinstance(v, AgeVariable):
            # an age variable is in whole years; its §8 bands are the analysis's age_group subgroup
            out.append(Characteristic("age group", block.values.map(age_group),
                                      level_rank=_ranked_by([text for _, _, text in AGE_GROUPS])))
    return out


def _rows(blocks: list[Characteristic], members: pd.Series, levels: typing.Mapping[str, list[str]] | None = None
          ) -> list[dict]:
    """Table 1's rows of the patients `members` marks; `levels`: each block's levels to show
    (a level no member has as 0), by default those the members have."""
    n = int(members.sum())
    rows: list[dict] = [{"characteristic": PATIENTS, "level": "all", "n": n, "percent": 100.0 if n else None}]
    for block in blocks:
        values = block.values[members.to_numpy()]
        if block.measured:
            known = values.dropna()
            rows.append({"characteristic": block.words, "level": MEDIAN_IQR, "n": int(known.size),
                         "median": float(known.median()) if known.size else None,
                         "q1": float(known.quantile(0.25)) if known.size else None,
                         "q3": float(known.quantile(0.75)) if known.size else None})
            continue
        counts = values.value_counts()
        for level in block.levels() if levels is None else levels[block.words]:
            count = int(counts.get(level, 0))
            rows.append({"characteristic": block.words, "level": str(level), "n": count,
                         "percent": 100.0 * count / n if n else None})
    return rows


def table1(cohort: pd.DataFrame, variables: typing.Sequence) -> pd.DataFrame:
    """Table 1 of the cohort: its patients, then each of the study's `variables` (config
    variables) the cohort holds. An age gives its median (IQR) and the §8 age groups; a de novo
    variable reads de novo / recurrent; metastatic sites, earlier treatments and other flags
    yes / no; the others their values. A missing value is the level "unknown"."""
    blocks = _characteristics(cohort, variables)
    return pd.DataFrame(_rows(blocks, pd.Series(True, index=cohort.index)), columns=TABLE1_COLUMNS)


# -- Table 1 by arm ------------------------------------------------------------------------------

EVERYONE = "all"
TABLE1_BY_ARM_COLUMNS = ["arm", *TABLE1_COLUMNS, "smd", "across_arms"]
# Each arm's levels of a characteristic add up to its patients; the arms' counts of a level
# (across_arms) add up to the count of all patients, shown too: 2 men in one arm would be the
# 7 of all patients minus the other arm's 5. The SMD is withheld with the row's n;
# table1_by_arm blanks it where the reference arm's count would give it away.
TABLE1_BY_ARM_GATE = Gate("table1_by_arm", count_columns=("n",), partition_by=("arm", "characteristic"),
                          partitions=(("across_arms",),), dependents={"n": ("percent", "median", "q1", "q3", "smd")})


def _smd(difference: float, variance_sum: float) -> float:
    """difference / sqrt(variance_sum / 2); 0/0 (no difference, no spread) is 0, a difference
    with no spread (every patient of one arm has the level, none of the other) ±inf."""
    if difference == 0:
        return 0.0
    if variance_sum == 0:
        return float(np.copysign(np.inf, difference))
    return float(difference / np.sqrt(variance_sum / 2))


def proportion_smd(p1: float, p0: float, difference: float | None = None) -> float:
    """The standardised mean difference of a level's indicator, arm (p1) vs reference (p0).
    difference: an adjusted (weighted, matched) difference of the shares, standardised by the
    spread of the unadjusted arms' p1 and p0 (kept fixed, as cobalt does); default p1 − p0."""
    return _smd(p1 - p0 if difference is None else difference, p1 * (1 - p1) + p0 * (1 - p0))


def measure_smd(arm: pd.Series, reference: pd.Series, difference: float | None = None) -> float:
    """The standardised mean difference of a measure: means over the pooled sample SDs.
    difference: an adjusted difference of the means over the unadjusted arms' SDs."""
    arm, reference = arm.dropna().astype(float), reference.dropna().astype(float)
    if arm.size < 2 or reference.size < 2:
        return np.nan  # a sample SD needs two values
    return _smd(arm.mean() - reference.mean() if difference is None else difference,
                arm.var(ddof=1) + reference.var(ddof=1))


def table1_by_arm(cohort: pd.DataFrame, variables: typing.Sequence, arms: typing.Sequence[Arm],
                  min_cell: int) -> pd.DataFrame:
    """Table 1 for every patient (arm "all": table1's rows) and then per arm, in the study's
    order (arm: the arm's name, as gold/cohort.arm holds it, so the rows join the lake's
    tables; a patient in no arm counts in "all" only). Each arm shows every level "all" shows,
    0 where it has none, so the arms read side by side.

    smd, on the rows of each arm after the first (the reference): the standardised mean
    difference against the reference arm, arm minus reference: of a level's indicator,
    (p1 − p0) / sqrt((p1(1 − p1) + p0(1 − p0)) / 2) with p the level's share of the arm's
    patients; of the age, (m1 − m0) / sqrt((s1² + s0²) / 2) with sample SDs. 0/0 is 0.
    It is left empty (besides the gate withholding it with the row's n) where either arm's
    count of the level, or the arm's patients minus it, is 1 to min_cell − 1, or where the
    gate withholds the reference arm's count or either arm's patients: the SMD and the shown
    count would give the withheld one back. A zero names no one, so it does not blank it.
    """
    names = [arm.name for arm in arms]
    if EVERYONE in names:
        raise ValueError(f"an arm named {EVERYONE!r} would read as every patient in Table 1 by arm")
    blocks = _characteristics(cohort, variables)
    overall = _rows(blocks, pd.Series(True, index=cohort.index))
    levels = {block.words: block.levels() for block in blocks if not block.measured}
    arm_of = cohort["arm"] if "arm" in cohort else pd.Series(None, index=cohort.index, dtype=object)
    parts = [pd.DataFrame(overall, columns=TABLE1_COLUMNS).assign(arm=EVERYONE)]
    for name in names:
        parts.append(pd.DataFrame(_rows(blocks, arm_of == name, levels), columns=TABLE1_COLUMNS).assign(arm=name))
    table = pd.concat(parts, ignore_index=True)[TABLE1_BY_ARM_COLUMNS[:-2]]
    table["smd"] = np.nan
    counted = (table["arm"] != EVERYONE) & (table["level"] != MEDIAN_IQR)
    table["across_arms"] = (table["characteristic"] + " | " + table["level"]).where(counted, None)
    if len(names) < 2:
        return table
    withheld = _withheld(table, min_cell)
    measures = {block.words: block.values for block in blocks if block.measured}
    key = ["characteristic", "level"]
    reference = table[table["arm"] == names[0]].set_index(key)
    reference_withheld = withheld[(table["arm"] == names[0]).to_numpy()]
    reference_withheld.index = reference.index
    for name in names[1:]:
        rows = table.index[table["arm"] == name]
        arm_rows = table.loc[rows].set_index(key)
        totals = (int(arm_rows.loc[(PATIENTS, "all"), "n"]), int(reference.loc[(PATIENTS, "all"), "n"]))
        totals_withheld = withheld[rows[0]] or reference_withheld.loc[(PATIENTS, "all")]
        smd = []
        for (characteristic, level), n1 in arm_rows["n"].items():
            n0 = int(reference.loc[(characteristic, level), "n"])
            counts = (n1, n0, totals[0] - n1, totals[1] - n0)
            if characteristic == PATIENTS or totals_withheld or reference_withheld.loc[(characteristic, level)] \
                    or any(0 < c < min_cell for c in counts):
                smd.append(np.nan)
            elif level == MEDIAN_IQR:
                values = measures[characteristic]
                smd.append(measure_smd(values[(arm_of == name).to_numpy()], values[(arm_of == names[0]).to_numpy()]))
            else:
                smd.append(proportion_smd(n1 / totals[0], n0 / totals[1]))
        table.loc[rows, "smd"] = smd
    return table


def _withheld(table: pd.DataFrame, min_cell: int) -> pd.Series:
    """Which rows' n the by-arm gate withholds (shown as "<min_cell" or "*")."""
    gate = TABLE1_BY_ARM_GATE
    shown = suppress_counts(table, gate.count_columns, min_cell=min_cell, **gate.options())
    return pd.Series([not isinstance(v, (int, np.integer)) for v in shown["n"]], index=table.index)
