"""Prescription names no vocabulary entry matches: their share, which stops a run when
too high, and the table of the most frequent, each with the vocabulary entries nearest
to it, so that a data manager can write the override row.
"""
from __future__ import annotations

import typing

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .drug_names import normalise_name
from .errors import ExtractMisread
from .lake_tables import GOLD_UNMATCHED_DRUG_NAMES
from .name_matcher import NameMatcher, matcher_of


def _normalise_batches(batches):
    import pyarrow as pa
    for batch in batches:
        keys = [normalise_name(n) for n in batch.column(0).to_pylist()]
        yield pa.RecordBatch.from_arrays([pa.array(keys, type=pa.string()), batch.column(1)],
                                         names=["drug_name_normalised", "n_rows"])


def unmatched_name_counts(unmatched: DataFrame) -> DataFrame:
    """drug_name_normalised string, n_rows long: unmatched names, most frequent first.

    Counted per raw name in Spark, then each distinct raw name normalised once in Python.
    """
    per_name = (unmatched.groupBy(F.col("drug_name").cast("string").alias("drug_name"))
                .agg(F.count(F.lit(1)).cast(T.LongType()).alias("n_rows")))
    return (per_name.mapInArrow(_normalise_batches, "drug_name_normalised string, n_rows long")
            .groupBy("drug_name_normalised")
            .agg(F.sum("n_rows").cast(T.LongType()).alias("n_rows"))
            .orderBy(F.col("n_rows").desc(), F.col("drug_name_normalised").asc_nulls_last()))


def unmatched_share(pair_counts: pd.DataFrame, vocabulary: pd.DataFrame | NameMatcher,
                    top: int = 10) -> tuple[float, pd.DataFrame]:
    """(share of rows matching nothing, the most frequent unmatched names as written).

    `pair_counts` has one row per distinct (drug_name, drug_code) with its `n_rows`;
    the second result has columns drug_name, n_rows (summed over codes), at most
    `top` rows, most frequent first. No rows: share 0.0.
    """
    matcher = matcher_of(vocabulary)
    counts = pd.to_numeric(pair_counts["n_rows"]).fillna(0).astype("int64")
    unmatched_pair = np.array([not matcher.match(n, c).ingredients
                               for n, c in zip(pair_counts["drug_name"], pair_counts["drug_code"])], dtype=bool)
    unmatched = pd.DataFrame({"drug_name": pair_counts["drug_name"].to_numpy(), "n_rows": counts.to_numpy()})
    unmatched = unmatched.loc[unmatched_pair]
    total = int(counts.sum())
    share = float(unmatched["n_rows"].sum()) / total if total else 0.0
    names = (unmatched.groupby("drug_name", dropna=False, sort=False)["n_rows"].sum().reset_index()
             .assign(_name=lambda d: d["drug_name"].astype("string"))
             .sort_values(["n_rows", "_name"], ascending=[False, True], na_position="last", kind="stable")
             .drop(columns="_name").head(top).reset_index(drop=True))
    names["n_rows"] = names["n_rows"].astype("int64")
    return share, names


# -- nearest entries for unmatched names -----------------------------------------------------

def nearest_entries(names: typing.Iterable[str], vocabulary: pd.DataFrame | NameMatcher,
                    per_name: int = 3) -> pd.DataFrame:
    """drug_name, rank, vocabulary_name, ingredient, score: for each name (as given), the
    vocabulary names nearest to it, best first, so a data manager sees where it belongs.

    Both sides are compared in normalised form (`normalise_name`), one row per vocabulary
    key (shown by the first name written under it; a combination's ingredients joined
    with '+'). Ties are broken by the vocabulary name. A name normalising to nothing gets
    no row.
    """
    from rapidfuzz import fuzz, process

    matcher = matcher_of(vocabulary)
    keys = sorted(matcher.terms, key=lambda k: (matcher.first_name[k], k))
    columns = ["drug_name", "rank", "vocabulary_name", "ingredient", "score"]
    queries = [(n, normalise_name(n)) for n in dict.fromkeys(names) if isinstance(n, str)]
    queries = [(n, q) for n, q in queries if q]
    if not queries or not keys:
        return pd.DataFrame(columns=columns)
    # Scorer: the Indel similarity of the two keys (fuzz.ratio, 0-100) after sorting the
    # space-separated words (token_sort_ratio). A Chinese key has no spaces, so it is a
    # character-level comparison in which every ideograph counts and a length difference
    # costs (紫杉醇脂质 is 91 from 紫杉醇脂质体 but 75 from 紫杉醇); English words may come
    # in either order ("liposomal paclitaxel"). Partial-ratio scorers (partial_ratio,
    # WRatio) are avoided: for short strings they score any key contained in the query
    # (紫杉醇 inside 紫杉醇脂质) as a perfect match.
    scores = process.cdist([q for _, q in queries], keys, scorer=fuzz.token_sort_ratio, processor=None,
                           workers=1)
    rows = []
    for (name, _), row in zip(queries, scores):
        order = sorted(range(len(keys)), key=lambda j: -row[j])[:per_name]   # stable: ties by name
        for rank, j in enumerate(order, start=1):
            rows.append((name, rank, matcher.first_name[keys[j]], "+".join(sorted(matcher.terms[keys[j]])),
                         round(float(row[j]), 1)))
    return pd.DataFrame(rows, columns=columns)


# -- what the run reports and checks ------------------------------------------------------

def name_counts(prescriptions: DataFrame) -> pd.DataFrame:
    """drug_name, drug_code, n_rows: the distinct pairs of a prescriptions frame, counted.

    A small result however large the table (names repeat), collected to the driver.
    """
    return (prescriptions.groupBy(F.col("drug_name").cast("string").alias("drug_name"),
                                  F.col("drug_code").cast("string").alias("drug_code"))
            .agg(F.count(F.lit(1)).cast(T.LongType()).alias("n_rows"))
            .toPandas())


def check_prescription_names(pair_counts: pd.DataFrame, vocabulary: pd.DataFrame | NameMatcher,
                             max_share: float) -> float:
    """The share of prescription rows no vocabulary entry matches; ExtractMisread above `max_share`.

    A share that high is not bad rows but a misread extract (an encoding, a column
    holding codes instead of names) or a vocabulary that does not fit the extract:
    the lines built from it would silently lose most patients (study-rules §1,
    source-tables "Bad input").
    """
    share, top = unmatched_share(pair_counts, vocabulary, top=3)
    if share > max_share:
        total = int(pd.to_numeric(pair_counts["n_rows"]).sum())
        names = ", ".join(f"{n!r} ({k:,} rows)" for n, k in zip(top["drug_name"], top["n_rows"]))
        raise ExtractMisread(
            f"prescriptions.drug_name: {share:.1%} of {total:,} rows match no vocabulary entry "
            f"(most frequent: {names}); the extract or the vocabulary does not fit (threshold "
            f"{max_share:.0%}, --max-rejected-share): add the names to a vocabulary override "
            "(--vocabulary-override FILE)")
    return share


UNMATCHED_NAMES_COLUMNS = GOLD_UNMATCHED_DRUG_NAMES.column_names


def unmatched_names_report(unmatched: DataFrame, vocabulary: pd.DataFrame | NameMatcher, top: int = 50,
                           per_name: int = 3) -> pd.DataFrame:
    """The most frequent unmatched names, each with the vocabulary entries nearest to it.

    One row per normalised name: `drug_name` is its most frequent spelling as written,
    `n_rows` the prescription rows of all its spellings, `nearest_entries` the
    `per_name` nearest vocabulary names as "name → ingredient (score)", best first, so
    that a data manager can write the override row. Names are counted in Spark; only
    the distinct unmatched spellings reach the driver.
    """
    per_name_counts = (unmatched.groupBy(F.col("drug_name").cast("string").alias("drug_name"))
                       .agg(F.count(F.lit(1)).cast(T.LongType()).alias("n_rows")).toPandas())
    if per_name_counts.empty:
        return pd.DataFrame(columns=list(UNMATCHED_NAMES_COLUMNS))
    per_name_counts["drug_name_normalised"] = [normalise_name(n) if isinstance(n, str) else None
                                               for n in per_name_counts["drug_name"]]
    per_name_counts["_key"] = per_name_counts["drug_name_normalised"].fillna("")
    per_name_counts["_name"] = per_name_counts["drug_name"].fillna("")
    # Most frequent spelling first, ties by the text, so the example is deterministic.
    ordered = per_name_counts.sort_values(["_key", "n_rows", "_name"], ascending=[True, False, True], kind="stable")
    grouped = (ordered.groupby("_key", sort=False)
               .agg(drug_name=("drug_name", "first"), drug_name_normalised=("drug_name_normalised", "first"),
                    n_rows=("n_rows", "sum"))
               .reset_index(drop=True)
               .assign(_name=lambda d: d["drug_name"].fillna(""))
               .sort_values(["n_rows", "_name"], ascending=[False, True], kind="stable")
               .head(top).reset_index(drop=True))
    nearest = nearest_entries([n for n in grouped["drug_name"] if isinstance(n, str)], vocabulary, per_name)
    text = {name: "; ".join(f"{r.vocabulary_name} → {r.ingredient} ({r.score:g})" for r in rows.itertuples())
            for name, rows in nearest.groupby("drug_name", sort=False)}
    grouped["nearest_entries"] = [text.get(n) if isinstance(n, str) else None for n in grouped["drug_name"]]
    grouped["rank"] = range(1, len(grouped) + 1)
    grouped["n_rows"] = grouped["n_rows"].astype("int64")
    return grouped[list(UNMATCHED_NAMES_COLUMNS)]
