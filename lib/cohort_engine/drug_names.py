"""A printed drug name read as a pharmacist reads it, up to the words it holds
(study-rules §1); `name_matcher` then reads those words against the vocabulary.

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

`normalise_name` is the one key function: the kept tokens of all segments in order
(ASCII words separated by a space, ideographs joined), used for vocabulary keys and
for reporting unmatched names.
"""
from __future__ import annotations

import dataclasses
import re
import typing
import unicodedata

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

CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD = re.compile(rf"[a-z0-9]+|[{CJK_RANGES}]+")
_CJK_CHAR = re.compile(rf"[{CJK_RANGES}]")
DIGITS = re.compile(r"[0-9]+")

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


class TokenTrie:
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


_REMOVABLE = TokenTrie((tuple(_tokens(w)), True) for w in (*_EN_REMOVABLE, *_ZH_REMOVABLE))
QUALIFIER_WORDS = TokenTrie((tuple(_tokens(w)), w) for w in _QUALIFIERS)


@dataclasses.dataclass
class Reading:
    """The kept tokens of a name, each with its segment, bracket flag and chunk."""
    tokens: list[str]
    segment: list[int]
    bracket: list[bool]
    chunk: list[int]


def read_name(name: str) -> Reading:
    reading = Reading([], [], [], [])
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


def tokens_key(tokens: typing.Sequence[str]) -> str:
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
    return tokens_key(read_name(name).tokens)


def normalise_code(code: str | None) -> str | None:
    """The comparison key of an ATC or national drug code: upper case, letters and digits."""
    if code is None:
        return None
    return re.sub("[^0-9A-Z]", "", _fold(code).upper())

