"""Drug vocabulary: raw prescription names and codes to ingredient and class (study-rules §1).

The vocabulary is a reviewable CSV (`conf/vocabulary/drugs.csv`): one row per
(name or code, ingredient); a fixed-dose combination has one row per ingredient
under the same name. Override files with the same columns extend it, and replace
the shipped rows of every name (after normalisation) or code they list
(`load_vocabulary(path, overrides=[...])`).

A printed name is read as a pharmacist reads it (`NameMatcher`), in Python only,
once per distinct (drug_name, drug_code) pair:

1. *Fold*: Unicode NFKC (full-width letters, digits, brackets and the ideographic
   space become ASCII; `㎎` becomes `mg`), lower case, combining marks dropped.
2. *Split* into the main text (outside brackets) and bracketed segments; brackets of
   any width and kind: `()（）[]【】〔〕{}<>《》〈〉「」『』〖〗`, nested or unclosed.
3. *Strength and package text* removed from every segment: `30mg`, `150mg/支`,
   `420mg/14ml`, `0.5g×24片`, `1支`, `x 12`, `0.9%`.
4. *Tokenise*: a run of ASCII letters and digits is one word token, every CJK
   ideograph its own token, so spaces never matter in Chinese while English
   matches whole words only (`nab-paclitaxel` → `nab`, `paclitaxel`). Single
   characters separated by spaces (`L i p u s u`, `赫 赛 汀`) are one spelled-out word.
5. *Removable words* dropped from every segment, leftmost-longest: English and
   Chinese formulation, route and salt words (`for injection`, `tablets`, `sc`,
   `hydrochloride`, `注射用`, `注射液`, `片`, `冻干`, `皮下注射`, `盐酸`, `马来酸` …)
   and origin or purchasing words (`进口`, `国产`, `原研`, `合资`, `集采` …). No
   ingredient of the study differs by route or salt (§1: trastuzumab subcutaneous
   is trastuzumab); the formulations that do differ (`脂质体`, `白蛋白结合型`,
   `liposome`, `albumin-bound`) are never removed.
6. *Scan* the whole name (main text and brackets, in text order) for vocabulary
   names, leftmost-longest and non-overlapping: `恩美曲妥珠单抗` is one name, never
   `曲妥珠单抗`; `紫杉醇（白蛋白结合型）` reads the name `紫杉醇白蛋白结合型` across
   the bracket. A name read across a bracket is kept only when one of its parts is
   not a vocabulary name by itself (so `帕妥珠单抗（曲妥珠单抗）` is two names, not
   the combination).
7. *Never guess*:
   - main-text tokens that are neither read as a name nor removable make the name
     unmatched (`泰素帝` is not `泰素`; `Trastuzu`, `赫赛` read nothing); bare
     numbers are ignored;
   - bracketed text that reads no name is ignored (a maker such as `江苏恒瑞`,
     `Luye Pharma`), except a formulation word (`白蛋白结合型`, `liposome` …) that
     goes with no name read, which makes the name unmatched;
   - a bracketed word read only in part (`（泰素帝）`) makes the name unmatched;
   - a name that is only a brand in brackets (`注射用（力扑素）`) is read.
8. *Ingredients*: the union of the names' ingredients (a fixed-dose combination
   gives several; `帕捷特+赫赛汀` gives both). Then the longest ingredient name
   wins: an ingredient whose words are a whole-word part of another's is dropped
   (`paclitaxel` beside `paclitaxel liposome`: `紫杉醇(力扑素)` is paclitaxel
   liposome). The name is *ambiguous*, hence unmatched, when the brackets name an
   ingredient the main text does not (after that refinement: `曲妥珠单抗(帕捷特)`),
   or when one ingredient would refine into two (`紫杉醇(力扑素)(克艾力)`).
9. *Code*: the ATC or national code (upper case, letters and digits) only when the
   name reads nothing (not when it is ambiguous), because one ATC code covers
   several formulations (L01CD01 is listed as plain paclitaxel).

`normalise_name` is the one key function: the kept tokens of all segments in order
(ASCII words separated by a space, ideographs joined), used for vocabulary keys and
for reporting unmatched names. In Spark the matcher runs once per distinct
(drug_name, drug_code) pair in `mapInArrow`, and the small mapping is broadcast to
the prescriptions.
"""
from __future__ import annotations

import csv
import dataclasses
import re
import typing
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from .errors import ExtractMisread, UserError

DRUG_CLASSES = ("taxane", "anti_her2_mab", "anti_her2_tki", "anti_her2_adc", "chemo_other",
                "endocrine", "cdk46_inhibitor", "supportive")
NON_COUNTING_CLASSES = ("supportive",)
KINDS = ("name", "atc", "code")
CODE_KINDS = ("atc", "code")
REQUIRED_COLUMNS = ("name", "kind", "ingredient", "drug_class")
VOCABULARY_COLUMNS = ("name", "kind", "ingredient", "drug_class", "note", "key", "line", "source")
UNMATCHED_REASON = "unmatched_drug_name"

# -- reading a printed name ------------------------------------------------------------

_OPEN = "([{<【〔《〈「『〖〘"
_CLOSE = ")]}>】〕》〉」』〗〙"

_NUM = r"[0-9]+(?:\.[0-9]+)?"
_UNITS = ("mg", "ml", "mcg", "ug", "μg", "g", "kg", "iu", "miu", "u", "units", "unit", "mmol",
          "万iu", "万u", "万单位", "国际单位", "单位", "毫克", "毫升", "微克", "克")
_PACKS = ("支", "瓶", "袋", "盒", "粒", "片", "板", "枚", "只", "贴", "包", "丸", "揿", "喷", "人份", "ml")


def _alternation(words: typing.Iterable[str]) -> str:
    # Longest first: the first alternative that matches is taken.
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)))


_UNIT_RE = rf"(?:{_alternation(_UNITS)})(?![a-z])"
_PACK_RE = rf"(?:{_alternation(_PACKS)})(?![a-z])"
_STRENGTH = re.compile(
    rf"{_NUM}\s*{_UNIT_RE}(?:\s*[/:]\s*(?:{_NUM}\s*)?(?:{_UNIT_RE}|{_PACK_RE}))*"   # 30mg, 420mg/14ml, 150mg/支
    rf"|(?:[×*]|(?<![a-z])x)\s*{_NUM}\s*(?:{_PACK_RE})?"                             # ×24片, *10, x 12
    rf"|{_NUM}\s*{_PACK_RE}"                                                         # 1支, 24片
    rf"|{_NUM}\s*%"                                                                  # 0.9%
    rf"|/\s*{_PACK_RE}")                                                             # /支

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD = re.compile(rf"[a-z0-9]+|[{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")
_DIGITS = re.compile(r"[0-9]+")

_EN_REMOVABLE = (
    "for injectable suspension", "for injection", "for infusion", "for oral use",
    "concentrate for solution", "powder for solution", "solution for infusion", "solution for injection",
    "injectable", "injection", "inj", "infusion", "concentrate", "solution", "suspension",
    "lyophilized", "lyophilised", "lyophilisate", "freeze-dried", "powder",
    "film-coated", "film coated", "tablets", "tablet", "tabs", "tab", "capsules", "capsule", "caps",
    "subcutaneous", "intravenous", "oral", "sc", "iv",
    "sodium phosphate", "hydrochloride", "hcl", "mesylate", "mesilate", "ditosylate", "tosylate",
    "maleate", "bitartrate", "tartrate", "citrate", "acetate", "succinate", "isethionate",
    "phosphate", "sulfate", "sulphate",
)
_ZH_REMOVABLE = (
    # formulation
    "注射用浓溶液", "注射用", "注射液", "注射剂", "注射", "浓溶液", "浓缩液", "混悬液", "输液",
    "冻干粉针剂", "冻干粉针", "冻干粉", "冻干", "粉针剂", "粉针",
    "薄膜衣片", "分散片", "肠溶片", "缓释片", "控释片", "咀嚼片", "片剂", "片",
    "肠溶胶囊", "软胶囊", "硬胶囊", "胶囊剂", "胶囊", "颗粒剂", "口服溶液", "口服液",
    "缓释植入剂", "植入剂", "微球",
    # route (a route word glued to a formulation word is one word: apart, "用" or "剂" would remain)
    "皮下注射用", "皮下注射液", "皮下注射剂", "静脉注射用", "静脉注射液", "静脉注射剂",
    "皮下注射", "静脉注射", "静脉滴注", "肌内注射", "肌肉注射", "静滴", "口服", "皮下", "静脉",
    # salt
    "对甲苯磺酸", "二甲苯磺酸", "甲苯磺酸", "羟乙磺酸", "甲磺酸", "苯磺酸", "盐酸", "马来酸",
    "重酒石酸", "酒石酸", "枸橼酸", "柠檬酸", "琥珀酸", "醋酸", "磷酸钠", "硫酸",
    # origin, purchasing
    "进口分装", "进口", "国产", "原研", "合资", "国家集采", "集采", "带量采购", "仿制药", "仿制",
    "自费", "医保",
)
# Words that change the ingredient (§1 keeps formulations apart): bracketed text holding
# one that goes with no vocabulary name is not ignored as a maker would be.
_QUALIFIERS = ("脂质体", "白蛋白结合型", "白蛋白结合", "白蛋白", "胶束", "纳米", "聚乙二醇化",
               "liposome", "liposomes", "liposomal", "albumin", "nab", "pegylated")


def _fold(text: str) -> str:
    # ™ and ℠ would become the letters "tm"/"sm" glued to the brand; ® and © are no letters anyway
    text = unicodedata.normalize("NFKC", text.replace("™", " ").replace("℠", " ")).lower()
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def _segments(text: str) -> list[tuple[str, bool]]:
    """(text, in_brackets) pieces in order; any opening bracket closes with any closing one."""
    out: list[tuple[str, bool]] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch in _OPEN or ch in _CLOSE:
            out.append((text[start:i], depth > 0))
            depth = depth + 1 if ch in _OPEN else max(0, depth - 1)
            start = i + 1
    out.append((text[start:], depth > 0))
    return [(t, b) for t, b in out if t.strip()]


def _words(text: str) -> list[list[str]]:
    """Chunks of tokens of one segment: words glued without a gap form one chunk."""
    found = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
    merged: list[list] = []   # [text, start, end, spelled_single]
    for word, start, end in found:
        if merged:
            prev = merged[-1]
            gap = text[prev[2]:start]
            same_script = (word[0] < "\x80") == (prev[0][-1] < "\x80")
            if (len(word) == 1 and prev[3] and same_script and gap and not gap.strip()):
                prev[0] += word
                prev[2] = end
                continue
        merged.append([word, start, end, len(word) == 1])
    chunks: list[list[str]] = []
    last_end = None
    for word, start, end, _ in merged:
        tokens = [word] if word[0] < "\x80" else list(word)
        if last_end is not None and start == last_end:
            chunks[-1].extend(tokens)
        else:
            chunks.append(tokens)
        last_end = end
    return chunks


def _tokens(text: str) -> list[str]:
    return [t for chunk in _words(_fold(text)) for t in chunk]


class _Trie:
    """Token sequences → value; all matches starting at a position, longest last."""

    def __init__(self, entries: typing.Iterable[tuple[tuple[str, ...], typing.Any]]):
        self.root: dict = {}
        for tokens, value in entries:
            node = self.root
            for token in tokens:
                node = node.setdefault(token, {})
            node[None] = value

    def matches(self, tokens: typing.Sequence[str], start: int) -> list[tuple[int, typing.Any]]:
        out, node = [], self.root
        for i in range(start, len(tokens)):
            node = node.get(tokens[i])
            if node is None:
                break
            if None in node:
                out.append((i + 1, node[None]))
        return out


_REMOVABLE = _Trie((tuple(_tokens(w)), True) for w in (*_EN_REMOVABLE, *_ZH_REMOVABLE))
_QUALIFIER = _Trie((tuple(_tokens(w)), w) for w in _QUALIFIERS)


@dataclasses.dataclass
class _Reading:
    """The kept tokens of a name, each with its segment, bracket flag and chunk."""
    tokens: list[str]
    segment: list[int]
    bracket: list[bool]
    chunk: list[int]


def _read(name: str) -> _Reading:
    reading = _Reading([], [], [], [])
    chunk_id = 0
    for seg, (text, in_brackets) in enumerate(_segments(_fold(name))):
        text = _STRENGTH.sub(" ", text)
        tokens, chunks = [], []
        for chunk in _words(text):
            tokens += chunk
            chunks += [chunk_id] * len(chunk)
            chunk_id += 1
        i = 0
        while i < len(tokens):
            found = _REMOVABLE.matches(tokens, i)
            if found:
                i = found[-1][0]
                continue
            reading.tokens.append(tokens[i])
            reading.segment.append(seg)
            reading.bracket.append(in_brackets)
            reading.chunk.append(chunks[i])
            i += 1
    return reading


def _key(tokens: typing.Sequence[str]) -> str:
    """Tokens as one string: a space only between two ASCII words (so the key is unambiguous)."""
    out = []
    for i, token in enumerate(tokens):
        if i and token[0] < "\x80" and tokens[i - 1][0] < "\x80":
            out.append(" ")
        out.append(token)
    return "".join(out)


def normalise_name(name: str | None) -> str | None:
    """The comparison key of a raw drug name (None stays None): see the module docstring."""
    if name is None:
        return None
    return _key(_read(name).tokens)


def normalise_code(code: str | None) -> str | None:
    """The comparison key of an ATC or national drug code: upper case, letters and digits."""
    if code is None:
        return None
    return re.sub("[^0-9A-Z]", "", _fold(code).upper())


# -- the matcher ---------------------------------------------------------------------------

class NameMatch(typing.NamedTuple):
    """What a printed name (and code) maps to: `ingredients` sorted, empty when unmatched;
    `matched_by` 'name', 'code' or None; `why` the reason the name was not read (None when it was)."""
    ingredients: tuple[str, ...]
    matched_by: str | None
    why: str | None


def _words_of(ingredient: str) -> tuple[str, ...]:
    return tuple(re.findall("[a-z0-9]+", ingredient))


def _is_part(part: str, whole: str) -> bool:
    """`part`'s words are a contiguous whole-word run of `whole`'s (and the two differ)."""
    p, w = _words_of(part), _words_of(whole)
    return part != whole and any(w[i:i + len(p)] == p for i in range(len(w) - len(p) + 1))


class NameMatcher:
    """Printed drug names (and codes) to ingredients, built once from a vocabulary frame."""

    _CACHE_SIZE = 100_000

    def __init__(self, vocabulary: pd.DataFrame):
        names = vocabulary[vocabulary["kind"] == "name"]
        codes = vocabulary[vocabulary["kind"].isin(CODE_KINDS)]
        by_key: dict[str, set[str]] = {}
        for key, ingredient in zip(names["key"], names["ingredient"]):
            by_key.setdefault(key, set()).add(ingredient)
        self.terms: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in by_key.items()}
        self._trie = _Trie((tuple(_WORD_OR_CJK.findall(k)), k) for k in self.terms)
        code_sets: dict[str, set[str]] = {}
        for key, ingredient in zip(codes["key"], codes["ingredient"]):
            code_sets.setdefault(key, set()).add(ingredient)
        self.codes: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in code_sets.items()}
        self.classes: dict[str, str] = dict(zip(vocabulary["ingredient"], vocabulary["drug_class"]))
        # the first name written for each key, for showing nearest entries
        self.first_name: dict[str, str] = {}
        for key, name in zip(names["key"], names["name"]):
            self.first_name.setdefault(key, name)
        ingredients = sorted(self.classes)
        self._parts = {i: frozenset(j for j in ingredients if _is_part(i, j)) for i in ingredients}
        self._cache: dict[str, tuple[frozenset[str] | None, str | None, bool]] = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    # -- one name -------------------------------------------------------------------------

    def match(self, name: str | None, code: str | None = None) -> NameMatch:
        """The ingredients of a printed name; the code only when the name reads nothing."""
        name = name if isinstance(name, str) else None
        code = code if isinstance(code, str) else None
        ingredients, why, ambiguous = self._read_name(name)
        if ingredients:
            return NameMatch(tuple(sorted(ingredients)), "name", None)
        if code is not None and not ambiguous:
            hit = self.codes.get(normalise_code(code))
            if hit:
                return NameMatch(tuple(sorted(hit)), "code", why)
            why = f"{why}; code {code.strip()!r} is not in the vocabulary"
        return NameMatch((), None, why)

    def _read_name(self, name: str | None) -> tuple[frozenset[str] | None, str | None, bool]:
        if name is None:
            return None, "no name", False
        hit = self._cache.get(name)
        if hit is None:
            hit = self._analyse(name)
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.clear()
            self._cache[name] = hit
        return hit

    def _scan(self, r: _Reading) -> list[tuple[int, int, str]]:
        """(start, end, key) of the vocabulary names read, leftmost-longest, non-overlapping."""
        found, i, n = [], 0, len(r.tokens)
        while i < n:
            for end, key in reversed(self._trie.matches(r.tokens, i)):
                if self._crossing_allowed(r, i, end):
                    found.append((i, end, key))
                    i = end
                    break
            else:
                i += 1
        return found

    def _crossing_allowed(self, r: _Reading, start: int, end: int) -> bool:
        # A name read across segments must need the crossing: one of its parts alone is no name.
        pieces, begin = [], start
        for k in range(start + 1, end):
            if r.segment[k] != r.segment[k - 1]:
                pieces.append((begin, k))
                begin = k
        if not pieces:
            return True
        pieces.append((begin, end))
        return not all(_key(r.tokens[a:b]) in self.terms for a, b in pieces)

    def _analyse(self, name: str) -> tuple[frozenset[str] | None, str | None, bool]:
        r = _read(name)
        if not r.tokens:
            return None, "nothing left after normalisation", False
        found = self._scan(r)
        covered = [False] * len(r.tokens)
        for start, end, _ in found:
            covered[start:end] = [True] * (end - start)

        def shown(indices):
            return _key([r.tokens[k] for k in indices])

        left = [k for k, tok in enumerate(r.tokens)
                if not covered[k] and not r.bracket[k] and not _DIGITS.fullmatch(tok)]
        if left:
            what = "text left over" if found else "no vocabulary name in"
            return None, f"{what} {shown(left)!r}", False
        chunks: dict[int, list[int]] = {}
        for k in range(len(r.tokens)):
            if r.bracket[k]:
                chunks.setdefault(r.chunk[k], []).append(k)
        for members in chunks.values():
            rest = [k for k in members if not covered[k] and not _DIGITS.fullmatch(r.tokens[k])]
            if not rest:
                continue
            if any(covered[k] for k in members):
                return None, f"bracketed text {shown(members)!r} names a drug only in part", False
            tokens = [r.tokens[k] for k in rest]
            qualifiers = [q for i in range(len(tokens)) for _, q in _QUALIFIER.matches(tokens, i)[-1:]]
            if qualifiers:
                return None, f"formulation word {qualifiers[0]!r} in brackets goes with no drug name", False
        if not found:
            return None, "no vocabulary name in the text", False

        main: set[str] = set()
        everything: set[str] = set()
        for start, end, key in found:
            everything |= self.terms[key]
            if not all(r.bracket[start:end]):
                main |= self.terms[key]
        kept = {i for i in everything if not (self._parts.get(i, frozenset()) & everything)}
        for i in sorted(everything - kept):
            into = sorted(self._parts[i] & kept)
            if len(into) > 1:
                return None, f"ambiguous: {i} could be {' or '.join(into)}", True
        if main:
            for k in sorted(kept):
                family = {k} | {i for i in everything if k in self._parts.get(i, ())}
                if not family & main:
                    return None, (f"ambiguous: the main text names {'+'.join(sorted(main))}, "
                                  f"the brackets name {k}"), True
        return frozenset(kept), None, False

    # -- many names -----------------------------------------------------------------------

    def arrow_mapper(self) -> typing.Callable:
        """A `mapInArrow` function: (drug_name, drug_code) batches in, one row per ingredient out."""
        matcher = self

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


_WORD_OR_CJK = re.compile(rf"[a-z0-9]+|[{_CJK}]")


def _matcher(vocabulary: pd.DataFrame | NameMatcher) -> NameMatcher:
    return vocabulary if isinstance(vocabulary, NameMatcher) else NameMatcher(vocabulary)


# -- loading and validating the CSV ----------------------------------------------------

class VocabularyError(UserError, ValueError):
    """A vocabulary file that cannot be used; the message names the file, line and value."""


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
    if kind == "name" and not re.search(rf"[a-z{_CJK}]", key):
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


# -- prescriptions to exposures --------------------------------------------------------

EXPOSURE_COLUMNS = ("record_id", "patient_id", "hospital_id", "admin_date", "drug_name", "ingredient",
                    "drug_class", "matched_by", "counts_for_lines", "dose", "dose_unit", "route")
_MAPPING_COLUMNS = ("__drug_name", "__drug_code", "__ingredient", "__class", "__matched_by")
_MAPPING_SCHEMA = ", ".join(f"{c} string" for c in _MAPPING_COLUMNS)


def build_drug_exposures(prescriptions: DataFrame, vocabulary: pd.DataFrame | NameMatcher
                         ) -> tuple[DataFrame, DataFrame]:
    """(silver drug_exposures, unmatched prescription rows with `reason`).

    Every prescription row lands in exactly one of the two, except that a name or
    code mapping to several ingredients (a fixed-dose combination) gives one
    exposure per ingredient. The matcher runs once per distinct (drug_name,
    drug_code) pair in `mapInArrow`, and that small mapping is broadcast to the
    prescriptions: no Python runs per prescription row. Both results are lazy views
    of one plan: a caller writing both should persist `prescriptions` first.
    """
    matcher = _matcher(vocabulary)
    name, code = F.col("drug_name").cast("string"), F.col("drug_code").cast("string")
    mapping = (prescriptions.select(name.alias("__drug_name"), code.alias("__drug_code"))
               .distinct()
               .mapInArrow(matcher.arrow_mapper(), _MAPPING_SCHEMA))
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
    matcher = _matcher(vocabulary)
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

    matcher = _matcher(vocabulary)
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


UNMATCHED_NAMES_COLUMNS = ("rank", "drug_name", "drug_name_normalised", "n_rows", "nearest_entries")


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
