"""Drug vocabulary: raw prescription names and codes to ingredient and class (study-rules §1).

The vocabulary is a reviewable CSV (`conf/vocabulary/drugs.csv`): one row per
(name or code, ingredient); a fixed-dose combination has one row per ingredient
under the same name. Override files with the same columns extend it, and replace
the shipped rows of every name (after normalisation) or code they list
(`load_vocabulary(path, overrides=[...])`).

A printed name is read in `drug_names` and matched against the vocabulary in
`name_matcher`; `drug_exposures` maps prescriptions, `unmatched_names` reports what
maps to nothing.
"""
from __future__ import annotations

import csv
import re
import typing
from pathlib import Path

import pandas as pd

from .drug_names import CJK_RANGES, normalise_code, normalise_name
from .errors import VocabularyError

DRUG_CLASSES = ("taxane", "anti_her2_mab", "anti_her2_tki", "anti_her2_adc", "chemo_other",
                "endocrine", "cdk46_inhibitor", "supportive")
NON_COUNTING_CLASSES = ("supportive",)
KINDS = ("name", "atc", "code")
CODE_KINDS = ("atc", "code")
REQUIRED_COLUMNS = ("name", "kind", "ingredient", "drug_class")
VOCABULARY_COLUMNS = ("name", "kind", "ingredient", "drug_class", "note", "key", "line", "source")


def load_vocabulary(path: str | Path, overrides: typing.Iterable[str | Path] | str | Path = ()) -> pd.DataFrame:
    """The vocabulary as a DataFrame: name, kind, ingredient, drug_class, note, key, line, source.

    `key` is the normalised name (kind `name`) or code (kinds `atc`, `code`); `line`
    the row's line in its file, `source` the file. Each override file (same columns)
    extends the vocabulary, and its rows replace every earlier row of a key it
    lists (a name after normalisation, or a code). Every problem is reported with
    file and line.
    """
    if isinstance(overrides, (str, Path)):
        overrides = (overrides,)
    rows = _read_rows(Path(path))
    if not rows:
        raise VocabularyError(f"{path}: the vocabulary has no rows")
    for override in overrides:
        extra = _read_rows(Path(override))
        replaced = {(_space(r["kind"]), r["key"]) for r in extra}
        rows = [r for r in rows if (_space(r["kind"]), r["key"]) not in replaced] + extra
    vocab = pd.DataFrame(rows, columns=list(VOCABULARY_COLUMNS))
    _check_consistency(vocab)
    return vocab


def _space(kind: str) -> str:
    return "name" if kind == "name" else "code"


def _read_rows(path: Path) -> list[dict]:
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
    return rows


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
    if kind == "name" and not re.search(rf"[a-z{CJK_RANGES}]", key):
        raise VocabularyError(f"{where}: name {name!r} is only a number after normalisation ({key!r})")
    return {**values, "key": key, "line": line, "source": str(path)}


def _check_consistency(vocab: pd.DataFrame) -> None:
    def at(row, other_source: str | None = None) -> str:
        return f"line {row.line}" if other_source == row.source else f"{row.source}:{row.line}"

    first_class: dict[str, typing.Any] = {}
    for row in vocab.itertuples():
        seen = first_class.setdefault(row.ingredient, row)
        if seen.drug_class != row.drug_class:
            raise VocabularyError(f"{row.source}:{row.line}: ingredient {row.ingredient!r} has class "
                                  f"{row.drug_class!r} here but {seen.drug_class!r} on {at(seen, row.source)}")

    same = ["kind", "name", "ingredient"]
    repeats = vocab[vocab.duplicated(same, keep="first")]
    if len(repeats):
        second = repeats.iloc[0]
        first = vocab[(vocab[same] == second[same]).all(axis=1)].iloc[0]
        raise VocabularyError(f"{second['source']}:{second['line']}: repeats line {first['line']} "
                              f"({first['name']!r} → {first['ingredient']!r})")

    # Rows written under one raw name form one ingredient set (a fixed-dose combination);
    # every raw name that normalises to the same key must give the same set.
    vocab = vocab.assign(space=vocab["kind"].map(_space), order=range(len(vocab)))
    sets = (vocab.groupby(["space", "key", "name"], sort=False)
            .agg(ingredients=("ingredient", lambda s: tuple(sorted(s))), line=("line", "min"),
                 source=("source", "first"), order=("order", "min"))
            .reset_index())
    for (_, key), group in sets.groupby(["space", "key"], sort=False):
        if group["ingredients"].nunique() > 1:
            group = group.sort_values("order")
            a = group.iloc[0]
            b = group[group["ingredients"] != a["ingredients"]].iloc[0]
            raise VocabularyError(
                f"{b['source']}:{b['line']}: {b['name']!r} normalises to {key!r} like {a['name']!r} on line "
                f"{a['line']}, but maps to {'+'.join(b['ingredients'])} instead of {'+'.join(a['ingredients'])}")


def ingredient_classes(vocabulary: pd.DataFrame) -> dict[str, str]:
    """ingredient → drug_class (validated to be one class per ingredient)."""
    return dict(zip(vocabulary["ingredient"], vocabulary["drug_class"]))
