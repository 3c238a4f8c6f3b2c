"""Drug vocabulary: raw prescription names and codes to ingredient and class (study-rules §1).

The vocabulary is a reviewable CSV (`conf/vocabulary/drugs.csv`): one row per
(name or code, ingredient); a fixed-dose combination has one row per ingredient
under the same name. Override files with the same columns extend it, and replace
the shipped rows of every name (after normalisation) or code they list
(`load_vocabulary(path, overrides=[...])`).

Two more files beside it describe what the rows name: `drug_classes.csv` the words a
class reads as in sentences (class, name, note), `dosing.csv` the basis each
ingredient is dosed on (ingredient, dose_basis, note: body surface area, body weight or
flat). A vocabulary folder without its own takes the shipped one: the classes are the
engine's (`DRUG_CLASSES`).

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

from .conf_folder import shipped_conf_dir
from .drug_names import CJK_RANGES, normalise_code, normalise_name
from .errors import VocabularyError

DRUG_CLASSES = ("taxane", "anti_her2_mab", "anti_her2_tki", "anti_her2_adc", "chemo_other",
                "endocrine", "cdk46_inhibitor", "supportive")
NON_COUNTING_CLASSES = ("supportive",)
KINDS = ("name", "atc", "code")
CODE_KINDS = ("atc", "code")
REQUIRED_COLUMNS = ("name", "kind", "ingredient", "drug_class")
VOCABULARY_COLUMNS = ("name", "kind", "ingredient", "drug_class", "note", "key", "line", "source")
CLASS_NAMES_FILE = "drug_classes.csv"
DOSING_FILE = "dosing.csv"
# mg/m² of body surface area, mg/kg of body weight, or mg alone (a fixed dose, or one
# calculated from something else, such as renal function).
DOSE_BASES = ("body_surface_area", "body_weight", "flat")


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
    _check_classes_named(vocab, Path(path))
    return vocab


def beside_vocabulary(vocabulary_path: str | Path, name: str) -> Path:
    """The file `name` of the vocabulary's folder, else the shipped one."""
    own = Path(vocabulary_path).parent / name
    return own if own.is_file() else shipped_conf_dir() / "vocabulary" / name


def class_names(vocabulary_path: str | Path) -> dict[str, str]:
    """drug_class → its name in sentences ("anti-HER2 antibody"), from the vocabulary's drug_classes.csv."""
    return _mapping(beside_vocabulary(vocabulary_path, CLASS_NAMES_FILE), "drug_class", "name",
                    "the drug classes' names", keys=DRUG_CLASSES)


def dose_bases(vocabulary_path: str | Path, ingredients: typing.Iterable[str]) -> dict[str, str]:
    """ingredient → the basis its dose is prescribed on (DOSE_BASES), for each of `ingredients`,
    from the vocabulary's dosing.csv (every row checked; an ingredient it lacks is an error)."""
    path = beside_vocabulary(vocabulary_path, DOSING_FILE)
    bases = _mapping(path, "ingredient", "dose_basis", "the dose bases", values=DOSE_BASES)
    wanted = list(ingredients)
    for ingredient in wanted:
        if ingredient not in bases:
            raise VocabularyError(f"{path}: no dose_basis for {ingredient!r}, whose dose the study describes "
                                  f"(add a row: {ingredient},<{'|'.join(DOSE_BASES)}>,<note>)")
    return {ingredient: bases[ingredient] for ingredient in wanted}


def _mapping(path: Path, key: str, value: str, what: str, keys: tuple[str, ...] | None = None,
             values: tuple[str, ...] | None = None) -> dict[str, str]:
    """key → value of a CSV of the vocabulary's folder, one row per key; `keys`, `values`: the
    allowed ones (None: any but empty)."""
    out: dict[str, str] = {}
    for line, row in _table_rows(path, (key, value), what):
        for column, allowed in ((key, keys), (value, values)):
            if not row[column]:
                raise VocabularyError(f"{path}:{line}: empty {column} for {row[key] or row[value]!r}")
            if allowed is not None and row[column] not in allowed:
                raise VocabularyError(f"{path}:{line}: unknown {column} {row[column]!r}"
                                      f"{f' for {row[key]!r}' if column == value else ''} (allowed: {', '.join(allowed)})")
        if row[key] in out:
            raise VocabularyError(f"{path}:{line}: {key} {row[key]!r} is listed twice")
        out[row[key]] = row[value]
    return out


def _table_rows(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[int, dict[str, str]]]:
    """(line, values) of each non-empty row of a vocabulary CSV: `columns` (required) and
    note, stripped; every problem named with file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise VocabularyError(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise VocabularyError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise VocabularyError(f"{path}:1: missing column(s) {', '.join(missing)} "
                              f"(expected {', '.join(columns)}, note)")
    reader.fieldnames = header
    rows = []
    for record in reader:
        if None in record:
            raise VocabularyError(f"{path}:{reader.line_num}: more fields than the header has")
        values = {c: (record.get(c) or "").strip() for c in (*columns, "note")}
        if any(values.values()):
            rows.append((reader.line_num, values))
    return rows


def _check_classes_named(vocab: pd.DataFrame, vocabulary_path: Path) -> None:
    # A class a sentence cannot name would reach the report as its code.
    named = class_names(vocabulary_path)
    for row in vocab.drop_duplicates("drug_class").itertuples():
        if row.drug_class not in named:
            raise VocabularyError(f"{beside_vocabulary(vocabulary_path, CLASS_NAMES_FILE)}: no name for drug_class "
                                  f"{row.drug_class!r}, which {row.source}:{row.line} uses")


def _space(kind: str) -> str:
    return "name" if kind == "name" else "code"


def _read_rows(path: Path) -> list[dict]:
    return [_checked_row(path, line, values)
            for line, values in _table_rows(path, REQUIRED_COLUMNS, "the vocabulary")]


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
