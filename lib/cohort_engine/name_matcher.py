"""Printed drug names (and codes) to ingredients: the words `drug_names` reads from a
name (steps 1-5 there) read against the vocabulary.

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
"""
from __future__ import annotations

import re
import typing

import pandas as pd

from .drug_names import CJK_RANGES, DIGITS, QUALIFIER_WORDS, Reading, TokenTrie, normalise_code, read_name, tokens_key
from .vocabulary import CODE_KINDS


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
        self._trie = TokenTrie((tuple(_WORD_OR_CJK.findall(k)), k) for k in self.terms)
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

    def _scan(self, r: Reading) -> list[tuple[int, int, str]]:
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

    def _crossing_allowed(self, r: Reading, start: int, end: int) -> bool:
        # A name read across segments must need the crossing: one of its parts alone is no name.
        pieces, begin = [], start
        for k in range(start + 1, end):
            if r.segment[k] != r.segment[k - 1]:
                pieces.append((begin, k))
                begin = k
        if not pieces:
            return True
        pieces.append((begin, end))
        return not all(tokens_key(r.tokens[a:b]) in self.terms for a, b in pieces)

    def _analyse(self, name: str) -> tuple[frozenset[str] | None, str | None, bool]:
        r = read_name(name)
        if not r.tokens:
            return None, "nothing left after normalisation", False
        found = self._scan(r)
        covered = [False] * len(r.tokens)
        for start, end, _ in found:
            covered[start:end] = [True] * (end - start)

        def shown(indices):
            return tokens_key([r.tokens[k] for k in indices])

        left = [k for k, tok in enumerate(r.tokens)
                if not covered[k] and not r.bracket[k] and not DIGITS.fullmatch(tok)]
        if left:
            what = "text left over" if found else "no vocabulary name in"
            return None, f"{what} {shown(left)!r}", False
        chunks: dict[int, list[int]] = {}
        for k in range(len(r.tokens)):
            if r.bracket[k]:
                chunks.setdefault(r.chunk[k], []).append(k)
        for members in chunks.values():
            rest = [k for k in members if not covered[k] and not DIGITS.fullmatch(r.tokens[k])]
            if not rest:
                continue
            if any(covered[k] for k in members):
                return None, f"bracketed text {shown(members)!r} names a drug only in part", False
            tokens = [r.tokens[k] for k in rest]
            qualifiers = [q for i in range(len(tokens)) for _, q in QUALIFIER_WORDS.matches(tokens, i)[-1:]]
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


_WORD_OR_CJK = re.compile(rf"[a-z0-9]+|[{CJK_RANGES}]")


def matcher_of(vocabulary: pd.DataFrame | NameMatcher) -> NameMatcher:
    return vocabulary if isinstance(vocabulary, NameMatcher) else NameMatcher(vocabulary)
