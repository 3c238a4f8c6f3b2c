"""The regimen rule language of a study file: which drugs a line's regimen holds, and
which line numbers count. The index rule, the arms and the regimen labels are written in
it (docs/studies.md).
"""
from __future__ import annotations

import typing

from .study_values import Count, section

SETTINGS = ("early", "advanced", "any")


@section
class AtLeast:
    """A line number N or later: `line: {at_least: 2}`."""
    at_least: Count


# A line number: N, `any`, or {at_least: N}.
LineSpec = typing.Union[Count, typing.Literal["any"], AtLeast]


def line_number_words(line: LineSpec) -> str:
    if line == "any":
        return "any line"
    if isinstance(line, AtLeast):
        return f"line {line.at_least} or later"
    return f"line {line}"


@section
class RegimenRule:
    """Rules over a line's regimen. Each name is an ingredient or a drug class of the
    vocabulary. all_of: every one is in the regimen (a class: one of its ingredients);
    any_of: at least one is (when not empty); none_of: none is."""
    all_of: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return self.all_of + self.any_of + self.none_of


@section
class IndexRule:
    """The index line: the first line in `setting` whose regimen meets `regimen`,
    preferring one whose number meets `line` (see cohort.candidate_lines)."""
    regimen: RegimenRule
    setting: typing.Literal["early", "advanced", "any"] = "advanced"
    line: LineSpec = 1


@section
class Arm:
    """A named regimen rule over the index line: a patient whose index regimen meets it is in the arm."""
    name: str
    regimen: RegimenRule
    label: str | None = None

