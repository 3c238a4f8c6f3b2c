"""Drug vocabulary: raw prescription names and codes to ingredient and class (study-rules §1).

The vocabulary is a reviewable CSV (`conf/vocabulary/drugs.csv`): one row per
(name or code, ingredient); a fixed-dose combination has one row per ingredient
under the same name. Names are compared after one normalisation that exists twice,
as a Spark expression for the prescriptions (`normalise_name_expr`) and in Python
for the CSV (`normalise_name`); both apply the same translation table and the same
regular expressions, written in the subset where Java and Python regexes agree
(explicit character classes, no `\\b`, `\\s` or `\\d`).

Normalisation, in order:
1. full-width ASCII (U+FF01–U+FF5E) and the ideographic space folded to ASCII;
2. lower case;
3. strengths and pack sizes removed (`30mg`, `100 mg/5ml`, `0.5g×24片`);
4. English formulation, route and salt words removed when they stand alone
   (`for injection`, `tablets`, `subcutaneous`, `hydrochloride` …);
5. everything but ASCII letters, digits and CJK ideographs removed (spaces,
   punctuation, brackets, ® …);
6. Chinese formulation, route and salt words removed (`注射用`, `注射液`, `片`,
   `冻干`, `皮下注射`, `盐酸`, `甲磺酸` …).
Route and salt words are removed too because no ingredient of the study differs by
route or salt (§1: trastuzumab subcutaneous is trastuzumab), while formulations
that do differ (`脂质体`, `白蛋白结合型`, `liposome`, `albumin-bound`) are kept.

Matching: the normalised name first; the code (ATC or national, upper-cased, only
letters and digits kept) only when the name matches nothing, because one ATC code
covers several formulations (L01CD01 is listed as plain paclitaxel).
"""
from __future__ import annotations

import csv
import re
import typing
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

DRUG_CLASSES = ("taxane", "anti_her2_mab", "anti_her2_tki", "anti_her2_adc", "chemo_other",
                "endocrine", "cdk46_inhibitor", "supportive")
NON_COUNTING_CLASSES = ("supportive",)
KINDS = ("name", "atc", "code")
CODE_KINDS = ("atc", "code")
REQUIRED_COLUMNS = ("name", "kind", "ingredient", "drug_class")
UNMATCHED_REASON = "unmatched_drug_name"

# -- normalisation ---------------------------------------------------------------

_FULLWIDTH = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALFWIDTH = "".join(chr(c) for c in range(0x21, 0x7F)) + " "

_UNIT = r"(?:mg|ml|mcg|ug|µg|μg|g|iu|万iu|万u|万单位|单位|u)"
_PACK = r"(?:支|瓶|袋|盒|粒|片|板|ml)"
# A strength with an optional "/pack" or "/volume"; a multiplier "×24片" or "*10".
_STRENGTH_RE = (rf"(?<![a-z])[0-9]+(?:\.[0-9]+)? *{_UNIT}(?![a-z])(?: */ *(?:[0-9]+(?:\.[0-9]+)? *)?{_PACK})?"
                rf"|(?:×|\*|(?<![a-z])x) *[0-9]+ *{_PACK}?")

_EN_WORDS = (
    "for injectable suspension", "for injection", "for infusion", "for oral use",
    "concentrate for solution", "powder for solution", "solution for infusion",
    "injectable", "injection", "inj", "infusion", "concentrate", "solution", "suspension",
    "lyophilized", "lyophilised", "lyophilisate", "freeze-dried", "powder",
    "film-coated", "film coated", "tablets", "tablet", "tabs", "tab", "capsules", "capsule", "caps",
    "subcutaneous", "intravenous", "oral", "sc", "iv",
    "sodium phosphate", "hydrochloride", "hcl", "mesylate", "mesilate", "ditosylate", "tosylate",
    "maleate", "bitartrate", "tartrate", "citrate", "acetate", "succinate", "isethionate",
    "phosphate", "sulfate", "sulphate",
)
_ZH_WORDS = (
    "注射用浓溶液", "注射用", "注射液", "注射剂", "浓溶液", "浓缩液", "混悬液", "输液",
    "冻干粉针剂", "冻干粉针", "冻干粉", "冻干", "粉针剂", "粉针",
    "薄膜衣片", "分散片", "肠溶片", "缓释片", "控释片", "咀嚼片", "片剂", "片",
    "肠溶胶囊", "软胶囊", "硬胶囊", "胶囊剂", "胶囊", "颗粒剂", "口服溶液", "口服液",
    "缓释植入剂", "植入剂", "微球",
    # A route word glued to a formulation word ("皮下注射用…", "…皮下注射剂") is one word:
    # removed apart, the leftmost match would leave "用" or "剂" behind.
    "皮下注射用", "皮下注射液", "皮下注射剂", "静脉注射用", "静脉注射液", "静脉注射剂",
    "皮下注射", "静脉注射", "静脉滴注", "口服", "皮下", "静脉",
    "对甲苯磺酸", "二甲苯磺酸", "甲苯磺酸", "羟乙磺酸", "甲磺酸", "苯磺酸", "盐酸", "马来酸",
    "重酒石酸", "酒石酸", "枸橼酸", "柠檬酸", "琥珀酸", "醋酸", "磷酸钠", "硫酸",
)


def _alternation(words: typing.Iterable[str]) -> str:
    # Longest first: Java and Python both take the first alternative that matches.
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


_EN_WORDS_RE = rf"(?<![a-z])(?:{_alternation(_EN_WORDS)})(?![a-z])"
_NOT_KEPT_RE = "[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff]"
_ZH_WORDS_RE = _alternation(_ZH_WORDS)
_CODE_NOT_KEPT_RE = "[^0-9A-Z]"

# (pattern, replacement) in order; shared by the Python and the Spark forms.
_NAME_STEPS = ((_STRENGTH_RE, " "), (_EN_WORDS_RE, " "), (_NOT_KEPT_RE, ""), (_ZH_WORDS_RE, ""))
_NAME_STEPS_COMPILED = tuple((re.compile(p), r) for p, r in _NAME_STEPS)
_FOLD_TABLE = str.maketrans(_FULLWIDTH, _HALFWIDTH)
_CODE_NOT_KEPT = re.compile(_CODE_NOT_KEPT_RE)


def normalise_name(name: str | None) -> str | None:
    """The comparison key of a raw drug name (None stays None)."""
    if name is None:
        return None
    text = name.translate(_FOLD_TABLE).lower()
    for pattern, replacement in _NAME_STEPS_COMPILED:
        text = pattern.sub(replacement, text)
    return text


def normalise_name_expr(col: Column | str) -> Column:
    """The same key as `normalise_name`, as a Spark expression (no Python UDF)."""
    expr = F.lower(F.translate(F.col(col) if isinstance(col, str) else col, _FULLWIDTH, _HALFWIDTH))
    for pattern, replacement in _NAME_STEPS:
        expr = F.regexp_replace(expr, pattern, replacement)
    return expr


def normalise_code(code: str | None) -> str | None:
    """The comparison key of an ATC or national drug code: upper case, letters and digits."""
    if code is None:
        return None
    return _CODE_NOT_KEPT.sub("", code.translate(_FOLD_TABLE).upper())


def normalise_code_expr(col: Column | str) -> Column:
    expr = F.upper(F.translate(F.col(col) if isinstance(col, str) else col, _FULLWIDTH, _HALFWIDTH))
    return F.regexp_replace(expr, _CODE_NOT_KEPT_RE, "")


# -- loading and validating the CSV ----------------------------------------------------

class VocabularyError(ValueError):
    """A vocabulary file that cannot be used; the message names the file, line and value."""


def load_vocabulary(path: str | Path) -> pd.DataFrame:
    """The vocabulary as a DataFrame: name, kind, ingredient, drug_class, note, key, line.

    `key` is the normalised name (kind `name`) or code (kinds `atc`, `code`); `line`
    the row's line in the file. Every problem is reported with file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise VocabularyError(f"{path}: cannot read the vocabulary ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise VocabularyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise VocabularyError(f"{path}:1: missing column(s) {', '.join(missing)} "
                              f"(expected {', '.join(REQUIRED_COLUMNS)}, note)")
    reader.fieldnames = header
    rows = []
    for record in reader:
        line = reader.line_num
        if None in record:
            raise VocabularyError(f"{path}:{line}: more fields than the header has")
        values = {k: (record.get(k) or "").strip() for k in (*REQUIRED_COLUMNS, "note")}
        if not any(values.values()):
            continue
        rows.append(_checked_row(path, line, values))
    if not rows:
        raise VocabularyError(f"{path}: the vocabulary has no rows")
    vocab = pd.DataFrame(rows, columns=["name", "kind", "ingredient", "drug_class", "note", "key", "line"])
    _check_consistency(path, vocab)
    return vocab


def _checked_row(path: Path, line: int, values: dict[str, str]) -> dict:
    where = f"{path}:{line}"
    name, kind, ingredient, drug_class = (values[k] for k in REQUIRED_COLUMNS)
    if not name:
        raise VocabularyError(f"{where}: empty name")
    if kind not in KINDS:
        raise VocabularyError(f"{where}: unknown kind {kind!r} (allowed: {', '.join(KINDS)})")
    if not ingredient:
        raise VocabularyError(f"{where}: empty ingredient for {name!r}")
    if ingredient != ingredient.lower() or "+" in ingredient or "  " in ingredient:
        raise VocabularyError(f"{where}: ingredient {ingredient!r} must be lower case, single-spaced, "
                              "without '+' (a combination is one row per ingredient)")
    if drug_class not in DRUG_CLASSES:
        raise VocabularyError(f"{where}: unknown drug_class {drug_class!r} for {name!r} "
                              f"(allowed: {', '.join(DRUG_CLASSES)})")
    key = normalise_name(name) if kind == "name" else normalise_code(name)
    if not key:
        raise VocabularyError(f"{where}: {kind} {name!r} is empty after normalisation")
    return {**values, "key": key, "line": line}


def _check_consistency(path: Path, vocab: pd.DataFrame) -> None:
    first_class: dict[str, tuple[str, int]] = {}
    for row in vocab.itertuples():
        seen = first_class.setdefault(row.ingredient, (row.drug_class, row.line))
        if seen[0] != row.drug_class:
            raise VocabularyError(f"{path}:{row.line}: ingredient {row.ingredient!r} has class "
                                  f"{row.drug_class!r} here but {seen[0]!r} on line {seen[1]}")

    repeated = vocab[vocab.duplicated(["kind", "name", "ingredient"], keep=False)]
    if len(repeated):
        first, second = repeated["line"].iloc[0], repeated["line"].iloc[1]
        raise VocabularyError(f"{path}:{second}: repeats line {first} "
                              f"({repeated['name'].iloc[0]!r} → {repeated['ingredient'].iloc[0]!r})")

    # Rows written under one raw name form one ingredient set (a fixed-dose combination);
    # every raw name that normalises to the same key must give the same set.
    vocab = vocab.assign(space=vocab["kind"].where(vocab["kind"] == "name", "code"))
    sets = (vocab.groupby(["space", "key", "name"], sort=False)
            .agg(ingredients=("ingredient", lambda s: tuple(sorted(s))), line=("line", "min"))
            .reset_index())
    for (space, key), group in sets.groupby(["space", "key"], sort=False):
        if group["ingredients"].nunique() > 1:
            a, b = group.sort_values("line").iloc[0], group.sort_values("line").iloc[1:]
            b = b[b["ingredients"] != a["ingredients"]].iloc[0]
            raise VocabularyError(
                f"{path}:{b['line']}: {b['name']!r} normalises to {key!r} like {a['name']!r} on line "
                f"{a['line']}, but maps to {'+'.join(b['ingredients'])} instead of {'+'.join(a['ingredients'])}")


def ingredient_classes(vocabulary: pd.DataFrame) -> dict[str, str]:
    """ingredient → drug_class (validated to be one class per ingredient)."""
    return dict(zip(vocabulary["ingredient"], vocabulary["drug_class"]))


def _lookup_rows(vocabulary: pd.DataFrame, code: bool) -> list[tuple[str, str, str]]:
    kinds = CODE_KINDS if code else ("name",)
    part = vocabulary[vocabulary["kind"].isin(kinds)]
    return sorted(set(zip(part["key"], part["ingredient"], part["drug_class"])))


# -- prescriptions to exposures --------------------------------------------------------

EXPOSURE_COLUMNS = ("record_id", "patient_id", "hospital_id", "admin_date", "drug_name", "ingredient",
                    "drug_class", "matched_by", "counts_for_lines", "dose", "dose_unit", "route")


def build_drug_exposures(prescriptions: DataFrame, vocabulary: pd.DataFrame) -> tuple[DataFrame, DataFrame]:
    """(silver drug_exposures, unmatched prescription rows with `reason`).

    Every prescription row lands in exactly one of the two, except that a name or
    code mapping to several ingredients (a fixed-dose combination) gives one
    exposure per ingredient. Names are normalised once per distinct (drug_name,
    drug_code) pair, and that small mapping is broadcast to the prescriptions, so
    the regular expressions never run per prescription row. Both results are lazy
    views of one plan: a caller writing both should persist `prescriptions` first.
    """
    spark = prescriptions.sparkSession
    name_vocab = spark.createDataFrame(_lookup_rows(vocabulary, code=False),
                                       "__nk string, __n_ingredient string, __n_class string")
    code_vocab = spark.createDataFrame(_lookup_rows(vocabulary, code=True),
                                       "__ck string, __c_ingredient string, __c_class string")

    pairs = (prescriptions.select(F.col("drug_name").alias("__drug_name"), F.col("drug_code").alias("__drug_code"))
             .distinct()
             .withColumn("__name_key", normalise_name_expr("__drug_name"))
             .withColumn("__code_key", normalise_code_expr("__drug_code")))
    mapping = (pairs.join(F.broadcast(name_vocab), F.col("__name_key") == F.col("__nk"), "left")
               # the code only when the name matched nothing
               .join(F.broadcast(code_vocab),
                     F.col("__n_ingredient").isNull() & (F.col("__code_key") == F.col("__ck")), "left")
               .select("__drug_name", "__drug_code",
                       F.coalesce("__n_ingredient", "__c_ingredient").alias("__ingredient"),
                       F.coalesce("__n_class", "__c_class").alias("__class"),
                       F.when(F.col("__n_ingredient").isNotNull(), F.lit("name"))
                        .when(F.col("__c_ingredient").isNotNull(), F.lit("code")).alias("__matched_by")))

    joined = prescriptions.join(
        F.broadcast(mapping),
        (prescriptions["drug_name"] == F.col("__drug_name")) & prescriptions["drug_code"].eqNullSafe(F.col("__drug_code")),
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


def unmatched_name_counts(unmatched: DataFrame) -> DataFrame:
    """drug_name_normalised string, n_rows long: unmatched names, most frequent first."""
    return (unmatched.groupBy(normalise_name_expr("drug_name").alias("drug_name_normalised"))
            .agg(F.count(F.lit(1)).cast(T.LongType()).alias("n_rows"))
            .orderBy(F.col("n_rows").desc(), F.col("drug_name_normalised").asc_nulls_last()))
