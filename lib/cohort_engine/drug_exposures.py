"""Prescriptions to drug exposures (study-rules §1): each prescription row becomes one
exposure per ingredient its printed name (or code) maps to, or an unmatched row.
"""
from __future__ import annotations

import typing

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .name_matcher import NameMatcher, matcher_of
from .vocabulary import NON_COUNTING_CLASSES

UNMATCHED_REASON = "unmatched_drug_name"
_MAPPING_COLUMNS = ("__drug_name", "__drug_code", "__ingredient", "__class", "__matched_by")
_MAPPING_SCHEMA = ", ".join(f"{c} string" for c in _MAPPING_COLUMNS)


def _ingredient_rows(matcher: NameMatcher) -> typing.Callable:
    """A `mapInArrow` function: (drug_name, drug_code) batches in, one row per ingredient out."""
    def run(batches):
        import pyarrow as pa
        for batch in batches:
            cols: tuple[list, ...] = ([], [], [], [], [])
            names, codes = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            for name, code in zip(names, codes):
                m = matcher.match(name, code)
                for ingredient in m.ingredients:
                    for col, value in zip(cols, (name, code, ingredient, matcher.classes[ingredient],
                                                 m.matched_by)):
                        col.append(value)
            yield pa.RecordBatch.from_arrays([pa.array(c, type=pa.string()) for c in cols],
                                             names=list(_MAPPING_COLUMNS))
    return run


def ingredient_mapping(prescriptions: DataFrame, vocabulary: pd.DataFrame | NameMatcher) -> DataFrame:
    """One row per (drug_name, drug_code) pair of `prescriptions` and ingredient it maps to
    (`__drug_name`, `__drug_code`, `__ingredient`, `__class`, `__matched_by`); a pair that maps
    to nothing has no row. The matcher runs once per distinct pair, in `mapInArrow`."""
    matcher = matcher_of(vocabulary)
    name, code = F.col("drug_name").cast("string"), F.col("drug_code").cast("string")
    return (prescriptions.select(name.alias("__drug_name"), code.alias("__drug_code"))
            .distinct()
            .mapInArrow(_ingredient_rows(matcher), _MAPPING_SCHEMA))


def build_drug_exposures(prescriptions: DataFrame, vocabulary: pd.DataFrame | NameMatcher,
                         mapping: DataFrame | None = None) -> tuple[DataFrame, DataFrame]:
    """(silver drug_exposures, unmatched prescription rows with `reason`).

    Every prescription row lands in exactly one of the two, except that a name or
    code mapping to several ingredients (a fixed-dose combination) gives one
    exposure per ingredient. The small mapping of names to ingredients
    (`ingredient_mapping`) is broadcast to the prescriptions: no Python runs per
    prescription row. `mapping`: that mapping computed once by the caller (the
    pipeline collects it: a few thousand rows); without it, both results are lazy
    views that each compute it again.
    """
    if mapping is None:
        mapping = ingredient_mapping(prescriptions, vocabulary)
    joined = prescriptions.join(
        F.broadcast(mapping),
        prescriptions["drug_name"].cast("string").eqNullSafe(F.col("__drug_name"))
        & prescriptions["drug_code"].cast("string").eqNullSafe(F.col("__drug_code")),
        "left")
    exposures = (joined.where(F.col("__ingredient").isNotNull())
                 .select("record_id", "patient_id", "hospital_id", "admin_date", "drug_name",
                         F.col("__ingredient").alias("ingredient"), F.col("__class").alias("drug_class"),
                         F.col("__matched_by").alias("matched_by"),
                         (~F.col("__class").isin(*NON_COUNTING_CLASSES)).alias("counts_for_lines"),
                         F.col("dose").cast("double").alias("dose"), "dose_unit", "route"))
    unmatched = (joined.where(F.col("__ingredient").isNull())
                 .select(*[prescriptions[c] for c in prescriptions.columns],
                         F.lit(UNMATCHED_REASON).alias("reason")))
    return exposures, unmatched
