"""Patterns of use (study rules §7), on the collected cohort.

Spark narrows the big tables to the cohort's patients (`collect_inputs`); the
rest is pandas on a few thousand rows. The result is one long table: a section,
an item, and either a count with its percent or a distribution (median, IQR).
"""
from __future__ import annotations

import dataclasses
import math
import typing

import numpy as np
import pandas as pd

from .baseline_variables import (HospitalTierVariable, IndexYearVariable, ProvinceVariable, RegimenLabelVariable,
                                 RegionVariable, variable_words)
from .disclosure import pool_cross_table_rows
from .pathways import NO_LINE, lines_from_the_index_line
from .publish import Gate
from .study_config import StudyConfig

PATTERN_COLUMNS = ["section", "item", "n", "percent", "median", "q1", "q3"]
PATHWAY_SECTION = "pathway from the index line"
# Where and when, in this order: each is counted, and crossed with each regimen label.
PLACE_AND_TIME = (IndexYearVariable, HospitalTierVariable, ProvinceVariable, RegionVariable)


@dataclasses.dataclass(frozen=True)
class PatternVariables:
    """The study's variables the patterns describe. labels: (column, section) of its regimen
    labels, each counted; places: (column, section) of its index year, hospital tier, province
    and region variables, each counted and crossed with each label ("province by <label>")."""
    labels: tuple[tuple[str, str], ...] = ()
    places: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, study: StudyConfig) -> "PatternVariables":
        labels = tuple((v.name, variable_words(v)) for v in study.variables if isinstance(v, RegimenLabelVariable))
        # Places and times are headed by their names ("index year", "province"), as the
        # patterns table has always headed them, whatever label Table 1 gives them.
        places = tuple((v.name, v.name.replace("_", " ")) for kind in PLACE_AND_TIME for v in study.variables
                       if isinstance(v, kind))
        return cls(labels, places)

    def cross_sections(self) -> list[str]:
        """The sections of the cross-tables (place or time by label): their small cells are pooled."""
        return [f"{place} by {label}" for _, place in self.places for _, label in self.labels]


def schedule_of(median_interval_days: float | None) -> str:
    """Schedule from the median interval between administrations (§7)."""
    if median_interval_days is None or (isinstance(median_interval_days, float) and math.isnan(median_interval_days)):
        return "single administration"
    if median_interval_days <= 10:
        return "weekly"
    if median_interval_days <= 16:
        return "every 2 weeks"
    if median_interval_days <= 25:
        return "every 3 weeks"
    return "longer than every 3 weeks"


def dispensing_schedule_of(median_interval_days: float | None) -> str:
    """Schedule of a drug taken by mouth, from the median interval between its dispensings.

    A prescription row of an oral drug is a dispensing, not a dose: a daily tablet collected
    every 3 weeks would read as an infusion given every 3 weeks. A clinician reading the
    patterns table wants to see that the drug is oral and how much is supplied at a time, so
    the interval is named in days, never as weekly or every 3 weeks; 26–35 days is the
    4-week cycle most oral anticancer drugs are dispensed by.
    """
    if median_interval_days is None or (isinstance(median_interval_days, float) and math.isnan(median_interval_days)):
        return "oral, dispensed once"
    for most, band in ((10, "≤ 10"), (16, "11–16"), (25, "17–25"), (35, "26–35")):
        if median_interval_days <= most:
            return f"oral, dispensed every {band} days"
    return "oral, dispensed less often than every 35 days"


def mosteller_bsa(height_cm: float, weight_kg: float) -> float:
    """Body surface area in m²: sqrt(height cm × weight kg / 3600)."""
    return math.sqrt(height_cm * weight_kg / 3600.0)


def dose_in_mg(dose: float, unit: str | None, bsa: float | None, weight_kg: float | None) -> float | None:
    """A recorded dose in mg; None where the unit needs a body size that is unknown."""
    if dose is None or (isinstance(dose, float) and math.isnan(dose)) or unit is None:
        return None
    factor = {"mg": 1.0, "g": 1000.0, "ug": 0.001}.get(unit)
    if factor is not None:
        return dose * factor
    if unit == "mg/m2":
        return dose * bsa if bsa else None
    if unit == "mg/kg":
        return dose * weight_kg if weight_kg else None
    return None


def _nearest(vitals: pd.DataFrame, index_dates: pd.DataFrame, column: str) -> pd.DataFrame:
    """patient_id and `column` from the measurement of it nearest the index date (ties: the earlier)."""
    v = vitals.loc[vitals[column].notna() & (vitals[column] > 0), ["patient_id", "measure_date", column]]
    v = v.merge(index_dates, on="patient_id")
    v = v.assign(distance=(pd.to_datetime(v["measure_date"]) - pd.to_datetime(v["index_date"])).dt.days.abs(),
                 when=pd.to_datetime(v["measure_date"]))
    return v.sort_values(["patient_id", "distance", "when"]).drop_duplicates("patient_id")[["patient_id", column]]


def nearest_body_size(vitals: pd.DataFrame, index_dates: pd.DataFrame) -> pd.DataFrame:
    """Height and weight, each from its measurement nearest the index date (ties: the earlier),
    and the Mosteller BSA where both exist. Each is taken on its own: records weigh a patient
    every cycle but measure the height once, often on another day."""
    cols = ["patient_id", "height_cm", "weight_kg", "bsa_m2"]
    if vitals.empty:
        return pd.DataFrame(columns=cols)
    v = _nearest(vitals, index_dates, "height_cm").merge(_nearest(vitals, index_dates, "weight_kg"),
                                                          on="patient_id", how="outer")
    if v.empty:
        return pd.DataFrame(columns=cols)
    v["bsa_m2"] = [mosteller_bsa(h, w) if pd.notna(h) and pd.notna(w) else np.nan
                   for h, w in zip(v["height_cm"], v["weight_kg"])]
    return v[cols].reset_index(drop=True)


def _counts(section: str, values: pd.Series, denominator: int) -> list[dict]:
    rows = []
    for item, n in values.value_counts().sort_index().sort_values(ascending=False, kind="stable").items():
        rows.append({"section": section, "item": str(item), "n": int(n),
                     "percent": 100.0 * n / denominator if denominator else np.nan})
    return rows


def _distribution(section: str, item: str, values: pd.Series) -> dict:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return {"section": section, "item": item, "n": 0}
    return {"section": section, "item": item, "n": int(v.size), "median": float(v.median()),
            "q1": float(v.quantile(0.25)), "q3": float(v.quantile(0.75))}


def index_line_administrations(cohort: pd.DataFrame, exposures: pd.DataFrame, drug: str) -> pd.DataFrame:
    """Exposures to `drug` (an ingredient) within each cohort patient's index line (from its
    start, the index date, to its last administration, as gold/cohort holds them)."""
    x = exposures[exposures["ingredient"] == drug].merge(
        cohort[["patient_id", "index_date", "index_last_admin_date"]], on="patient_id")
    return x[(x["admin_date"] >= x["index_date"]) & (x["admin_date"] <= x["index_last_admin_date"])]


def next_line_regimens(cohort: pd.DataFrame, lines: pd.DataFrame) -> tuple[str, pd.Series]:
    """(section, regimens): the regimen of the line after each patient's index line in its
    setting (NO_LINE where none). Where every index line is line 1 that is the second line."""
    own = lines_from_the_index_line(cohort, lines)
    following = own.loc[own["column"] == 2].set_index("patient_id")["regimen"]
    regimens = cohort["patient_id"].map(following).fillna(NO_LINE)
    first = (pd.to_numeric(cohort["index_line_number"]) == 1).all()
    return ("second-line regimen" if first else "next-line regimen (the line after the index line)"), regimens


# The unit a dose reads in by the basis it is prescribed on (vocabulary.DOSE_BASES), and the
# body size (nearest_body_size's column) that turns mg into it; a record in that unit is taken
# as written. A flat dose reads in mg alone: per m² or kg it would vary with the patient only.
PER_BODY_SIZE = {"body_surface_area": ("mg/m2", "bsa_m2"), "body_weight": ("mg/kg", "weight_kg"), "flat": ("mg", None)}
BY_SCHEDULE = "dose by schedule"  # the section "<drug> dose by schedule"


def dose_and_schedule(cohort: pd.DataFrame, exposures: pd.DataFrame, vitals: pd.DataFrame,
                      drug: str, basis: str) -> list[dict]:
    """§7's dose, schedule and administrations of one ingredient of the index line.

    The dose reads in mg per administration, and per its basis (`basis`, vocabulary.DOSE_BASES)
    in mg/m² or mg/kg, from the body size nearest the index date. The schedule is the median
    interval between administrations, or between dispensings for a patient who takes the drug
    by mouth (route po on most of the rows recording one: dispensing_schedule_of).
    """
    n = len(cohort)
    rows: list[dict] = []
    admin = index_line_administrations(cohort, exposures, drug)
    body = nearest_body_size(vitals, cohort[["patient_id", "index_date"]])
    admin = admin.merge(body, on="patient_id", how="left")
    per_day = admin.groupby(["patient_id", "admin_date"], as_index=False).agg(
        dose=("dose", "sum"), dose_unit=("dose_unit", "first"), bsa_m2=("bsa_m2", "first"),
        weight_kg=("weight_kg", "first"))
    mg = [dose_in_mg(d, u, b, w) for d, u, b, w in
          zip(per_day["dose"], per_day["dose_unit"], per_day["bsa_m2"], per_day["weight_kg"])]
    per_day["dose_mg"] = pd.Series(mg, index=per_day.index, dtype=float)
    rows.append(_distribution(f"{drug} dose", "mg per administration", per_day["dose_mg"]))
    unit, size = PER_BODY_SIZE[basis]
    if size is None:
        per_day["dose_per_basis"] = per_day["dose_mg"]
    else:
        per_day["dose_per_basis"] = np.where(per_day["dose_unit"] == unit, per_day["dose"],
                                             per_day["dose_mg"] / per_day[size])
        rows.append(_distribution(f"{drug} dose", f"{unit} per administration", per_day["dose_per_basis"]))

    days = admin[["patient_id", "admin_date"]].drop_duplicates().sort_values(["patient_id", "admin_date"])
    days["interval"] = pd.to_datetime(days["admin_date"]).groupby(days["patient_id"]).diff().dt.days
    per_patient = days.groupby("patient_id").agg(n_admin=("admin_date", "size"),
                                                 median_interval=("interval", "median"))
    # A patient whose rows record no route keeps the reading of administrations.
    route = admin["route"].astype("string").str.strip().str.lower()
    by_patient = pd.DataFrame({"po": route.eq("po").fillna(False), "known": route.notna()}).groupby(admin["patient_id"])
    oral = by_patient["po"].sum() > by_patient["known"].sum() / 2
    per_patient["schedule"] = [dispensing_schedule_of(v) if by_mouth else schedule_of(v)
                               for v, by_mouth in zip(per_patient["median_interval"], oral[per_patient.index])]
    rows += _counts(f"{drug} schedule", per_patient["schedule"], n)
    # A median over all administrations is dominated by weekly patients (three times as
    # many administrations at a third of the dose): the dose reads per schedule too.
    by_schedule = per_day.merge(per_patient["schedule"].reset_index(), on="patient_id")
    for schedule, doses in by_schedule.groupby("schedule", sort=True):
        rows.append(_distribution(f"{drug} {BY_SCHEDULE}", f"{schedule}: {unit} per administration",
                                  doses["dose_per_basis"]))
    rows.append(_distribution(f"{drug} administrations", "number per patient", per_patient["n_admin"]))
    return rows


def patterns_table(cohort: pd.DataFrame, lines: pd.DataFrame, exposures: pd.DataFrame,
                   vitals: pd.DataFrame, drugs: typing.Mapping[str, str],
                   variables: PatternVariables = PatternVariables(), pathways: pd.DataFrame | None = None
                   ) -> pd.DataFrame:
    """The §7 table for the cohort; `drugs`: the ingredients whose dose and schedule are
    described, each with its dose basis (vocabulary.dose_bases); `exposures`: their rows
    (patient_id, admin_date, ingredient, dose, dose_unit, route); `variables`: the regimen
    labels, places and times counted (`PatternVariables.of`); `pathways`: the pooled pathways
    from the index line (pathways.pooled_pathways' counts: pathway, n), the sequences of §7,
    or None for none."""
    n = len(cohort)
    rows: list[dict] = []
    rows += _counts("index regimen", cohort["regimen"], n)
    for column, section in variables.labels:
        rows += _counts(section, cohort[column], n)
    for drug, basis in drugs.items():
        rows += dose_and_schedule(cohort, exposures, vitals, drug, basis)

    duration = (pd.to_datetime(cohort["index_last_admin_date"]) - pd.to_datetime(cohort["index_date"])).dt.days
    rows.append(_distribution("index line", "duration in days (start to last administration)", duration))

    rows += _counts(*next_line_regimens(cohort, lines), n)
    if pathways is not None:
        rows += [{"section": PATHWAY_SECTION, "item": p, "n": int(k), "percent": 100.0 * k / n if n else np.nan}
                 for p, k in zip(pathways["pathway"], pathways["n"])]
    for column, section in variables.places:
        place = cohort[column].fillna("unknown").astype(str)
        rows += _counts(section, place, n)
        for label_column, label in variables.labels:
            rows += _counts(f"{section} by {label}", place + " | " + cohort[label_column], n)
    return pd.DataFrame(rows, columns=PATTERN_COLUMNS)


PATTERNS_GATE = Gate("patterns", count_columns=("n",), partition_by=("count_set",),
                     partitions=(("row_set",), ("column_set",)), dependents={"n": ("percent", "median", "q1", "q3")},
                     withheld_last=("item",))
# By arm, the arms' counts of an item also add up to the whole cohort's count of it, shown in
# tables/patterns.csv: 3 patients of one arm would be that count minus the other arms'.
PATTERNS_BY_ARM_GATE = Gate("patterns_by_arm", count_columns=("n",), partition_by=("count_set",),
                            partitions=(("row_set",), ("column_set",), ("across_arms",)),
                            dependents={"n": ("percent", "median", "q1", "q3")}, withheld_last=("item",))


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
                       variables: PatternVariables = PatternVariables(), pathways: pd.DataFrame | None = None
                       ) -> pd.DataFrame:
    """patterns.patterns_table, cross-tables pooled (pooled_cross_tables), plus count_set: the
    rows whose counts add up to one total.

    Counts of a section share the cohort as their total; a distribution row (median, IQR,
    no percent) stands alone, but for the rows of a drug's dose by schedule: their numbers of
    administrations add up to the dose row's, shown, so they are one set.
    """
    vitals = vitals if vitals is not None else pd.DataFrame(columns=["patient_id", "measure_date", "height_cm",
                                                                     "weight_kg"])
    sections = variables.cross_sections()
    table = pooled_cross_tables(patterns_table(cohort, lines, exposures, vitals, drugs, variables, pathways),
                                min_cell, sections)
    distribution = table["percent"].isna()
    alone = distribution & ~table["section"].str.endswith(f" {BY_SCHEDULE}")
    table["count_set"] = np.where(alone, table["section"] + " | " + table["item"], table["section"])
    # A cross-table's cells also add up along its rows and columns to margins shown in other
    # sections ("2020 | H" + "2020 | HP" = index year 2020): row_set and column_set name those
    # sets. The pathways need none: they come pooled against their margins (pathways.pooled_pathways).
    table["row_set"], table["column_set"] = None, None
    crossed = table["section"].isin(sections)
    parts = table.loc[crossed, "item"].str.split(" | ", n=1, regex=False)
    table.loc[crossed, "row_set"] = table.loc[crossed, "section"] + " | " + parts.str[0]
    table.loc[crossed, "column_set"] = table.loc[crossed, "section"] + " | " + parts.str[1]
    return table


def patterns_by_arm(cohort, lines, exposures, vitals, min_cell: int, drugs, variables: PatternVariables,
                    arms) -> pd.DataFrame:
    """patterns_with_sets of each arm's patients (arms: the study's, in order), the arm's name
    first. Each set of counts stays within its arm; across_arms names a count's item, whose
    counts in the arms add up to the cohort's (None for a distribution row). The pathways are
    the whole cohort's only: pooled per arm they could be told apart from the cohort's."""
    parts = []
    for arm in arms:
        mine = cohort[cohort["arm"] == arm.name]
        if mine.empty:
            continue
        table = patterns_with_sets(mine, lines, exposures, vitals, min_cell, drugs, variables)
        for column in ("count_set", "row_set", "column_set"):
            table[column] = (arm.name + " | " + table[column]).where(table[column].notna(), None)
        table["across_arms"] = (table["section"] + " | " + table["item"]).where(table["percent"].notna(), None)
        table.insert(0, "arm", arm.name)
        parts.append(table)
    if not parts:
        return pd.DataFrame(columns=["arm", *PATTERN_COLUMNS, "count_set", "row_set", "column_set", "across_arms"])
    return pd.concat(parts, ignore_index=True)


REPORT_ROWS_PER_SECTION = 15


def report_rows(shown: pd.DataFrame, keep: int = REPORT_ROWS_PER_SECTION) -> tuple[pd.DataFrame, dict[str, int]]:
    """The rows of a published patterns table (by arm or not) the report prints, and per section
    the number of its items left to the CSV.

    A section's rows come largest count first (in each arm), so an item's place is its best
    rank in any arm, ties in the arms' order: the first `keep` items of a section are printed,
    with every arm's row of them, item by item. The rows are chosen from the gated table and
    none is added up: the report prints a part of what the CSV shows, and a total the CSV
    withholds cannot be worked out from it."""
    ranked_within = [c for c in ("arm", "section") if c in shown.columns]
    rows = shown.assign(rank=shown.groupby(ranked_within, sort=False).cumcount().to_numpy(), row=np.arange(len(shown)),
                        section_at=shown["section"].map({s: k for k, s in enumerate(dict.fromkeys(shown["section"]))}))
    rows["best"] = rows.groupby(["section", "item"])["rank"].transform("min")
    items = rows.sort_values(["best", "row"]).drop_duplicates(["section", "item"])
    place = items.assign(place=items.groupby("section", sort=False).cumcount())[["section", "item", "place"]]
    rows = rows.merge(place, on=["section", "item"]).sort_values(["section_at", "place", "row"])
    counts = place.groupby("section", sort=False).size()
    left = {section: int(n) - keep for section, n in counts.items() if n > keep}
    return shown.iloc[rows.loc[rows["place"] < keep, "row"]].reset_index(drop=True), left
