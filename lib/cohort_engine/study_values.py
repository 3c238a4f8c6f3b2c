"""How a study file's sections are declared: the forms a value may take and the frozen,
strict dataclasses pydantic validates them into.

Every section refuses a key it does not know, at every level, so a misspelt key is an
error naming its path instead of a default silently kept.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pydantic

# A whole number ≥ 0 (not `true`, not "120"); a strict true/false.
Count = typing.Annotated[int, pydantic.Strict(), pydantic.Field(ge=0)]
StrictFlag = typing.Annotated[bool, pydantic.Strict()]


def listed(value: Any) -> Any:
    """A text written alone, read as a list of one."""
    return [value] if isinstance(value, str) else value


def as_pairs(value: Any) -> Any:
    """A mapping written in YAML, kept as (key, value) pairs so the study stays hashable."""
    return list(value.items()) if isinstance(value, dict) else value


# A list that may be written as one value: `status: positive` or `status: [positive, unknown]`.
Texts = typing.Annotated[tuple[str, ...], pydantic.BeforeValidator(listed)]


def section(cls: type) -> type:
    """A section of the study file: a frozen dataclass whose unknown keys are errors."""
    # pydantic reads a dataclass's own config.
    cls.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")
    return dataclasses.dataclass(frozen=True)(cls)


def tagged(kind: str) -> typing.Callable[[type], type]:
    """A population criterion or a baseline variable: a section written with `kind: <kind>`
    (the tag pydantic picks the class by) and an optional `label`, its text in the attrition
    table or the report (None: the engine words it). Both come after the class's own keys."""
    def declare(cls: type) -> type:
        cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}),
                               "kind": typing.Literal[kind], "label": typing.Optional[str]}
        cls.kind, cls.label = kind, None
        return section(cls)
    return declare
