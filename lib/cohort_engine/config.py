"""Study configuration: a YAML file validated into typed, frozen objects.

Every default of the study rules lives in the YAML, so a study (or a sensitivity
analysis) is a new file, never new code. Loading is strict: an unknown key, a
missing key or a value of the wrong type is one `ConfigError` naming the key path.
"""
from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.resources
import json
import os
import shutil
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import yaml

# The repository checkout this module sits in (meaningful in a source tree only).
REPO_ROOT = Path(__file__).resolve().parents[2]
# The study used when none is given: `studies/<this>.yaml` of the configuration.
DEFAULT_STUDY = "her2_paclitaxel_liposome"


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key."""


@functools.lru_cache(maxsize=None)
def shipped_conf_dir() -> Path:
    """The configuration shipped inside the package (`cohort_engine/conf/`): studies,
    vocabulary, Spark profiles, read with `importlib.resources`.

    Installed from a wheel or in editable mode it is a folder on disk, returned as is.
    Imported from a zip (`spark-submit --py-files`) it is copied once to a temporary
    folder, removed at exit, so that every caller gets a real path.
    """
    root = importlib.resources.files(__package__ or "cohort_engine").joinpath("conf")
    if isinstance(root, Path):
        return root
    copy = Path(tempfile.mkdtemp(prefix="cohort-engine-conf-"))
    atexit.register(shutil.rmtree, copy, True)
    if root.is_dir():  # a zip of the modules alone has none: lookups then name the missing file
        _copy_resources(root, copy)
    return copy


def _copy_resources(source, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_dir():
            _copy_resources(item, dest / item.name)
        elif item.is_file():
            (dest / item.name).write_bytes(item.read_bytes())


def conf_dir(environ: typing.Mapping[str, str] | None = None) -> Path:
    """The configuration folder: `COHORT_ENGINE_CONF_DIR` (a user's whole `conf/`
    folder: studies/, vocabulary/, spark/), else the one shipped in the package."""
    environ = os.environ if environ is None else environ
    override = environ.get("COHORT_ENGINE_CONF_DIR")
    return Path(override) if override else shipped_conf_dir()


def default_study_path(environ: typing.Mapping[str, str] | None = None) -> Path:
    return conf_dir(environ) / "studies" / f"{DEFAULT_STUDY}.yaml"


def _in_conf(path: Path) -> bool:
    """Whether a relative path is written `conf/...` (the configuration folder)."""
    return not path.is_absolute() and len(path.parts) > 1 and path.parts[0] == "conf"


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except (OSError, ValueError):
        return False


def resolve_study_path(path: str | Path, environ: typing.Mapping[str, str] | None = None) -> Path:
    """The study file a user's `--study` names.

    The path as given wins when it exists. A relative `conf/...` path that does not
    exist from the current folder (an installed wheel, a Databricks task) means the
    same file of the configuration folder: `conf/studies/her2_paclitaxel_liposome.yaml`
    is the shipped study, or the one under `COHORT_ENGINE_CONF_DIR` when that is set.
    """
    path = Path(path)
    if path.exists() or not _in_conf(path):
        return path
    candidate = conf_dir(environ).joinpath(*path.parts[1:])
    return candidate if candidate.exists() else path


@dataclasses.dataclass(frozen=True)
class StudyPeriod:
    start: dt.date
    end: dt.date | None = None  # None = the data cut-off


@dataclasses.dataclass(frozen=True)
class LinesConfig:
    regimen_window_days: int = 28
    max_gap_days: int = 120
    advanced_grace_days: int = 30
    substitutions: tuple[tuple[str, ...], ...] = (
        ("paclitaxel", "paclitaxel liposome", "nab-paclitaxel"),
        ("cisplatin", "carboplatin"),
    )
    additions_without_new_line: tuple[str, ...] = ("endocrine",)


@dataclasses.dataclass(frozen=True)
class IndexLineConfig:
    required_ingredients: tuple[str, ...]
    required_classes_any: tuple[str, ...]
    setting: str = "advanced"
    line_number: int = 1


@dataclasses.dataclass(frozen=True)
class CohortConfig:
    index_line: IndexLineConfig
    diagnosis_icd10_prefix: str = "C50"
    require_her2_positive: bool = True
    require_advanced: bool = True
    min_age: int = 18
    de_novo_days: int = 90
    facts_window_days: int = 30


@dataclasses.dataclass(frozen=True)
class EndpointsConfig:
    horizon_days: int = 1826
    pd_grace_days: int = 14
    death_window_days: int = 60
    discontinuation_gap_days: int = 120
    os_censoring: str = "cutoff"


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    window_after_last_admin_days: int = 30
    baseline_days: int = 30
    ctcae_version: str = "5.0"


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    ci_method: str = "log-log"
    rate_months: tuple[int, ...] = (6, 12, 24, 36, 60)
    risk_table_every_months: int = 6
    subgroups: tuple[str, ...] = (
        "anti_her2", "hr_status", "de_novo", "visceral", "brain_mets",
        "prior_anti_her2", "age_group", "hospital_tier",
    )
    sensitivity_gap_days: tuple[int, ...] = (60, 180)
    # §8 compares the anti-HER2 labels H vs HP; other labels (I, +TKI …) are shown, not compared.
    # An empty list compares every label.
    anti_her2_levels_compared: tuple[str, ...] = ("H", "HP")


@dataclasses.dataclass(frozen=True)
class DisclosureConfig:
    min_cell: int = 5


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    name: str
    data_cutoff: dt.date
    study_period: StudyPeriod
    cohort: CohortConfig
    title: str = ""
    vocabulary: str = "conf/vocabulary/drugs.csv"
    lines: LinesConfig = LinesConfig()
    endpoints: EndpointsConfig = EndpointsConfig()
    safety: SafetyConfig = SafetyConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    disclosure: DisclosureConfig = DisclosureConfig()
    source_path: str | None = dataclasses.field(default=None, compare=False)

    @property
    def study_end(self) -> dt.date:
        return self.study_period.end or self.data_cutoff

    def with_cutoff(self, cutoff: dt.date | None) -> "StudyConfig":
        return self if cutoff is None else dataclasses.replace(self, data_cutoff=cutoff)

    def vocabulary_path(self, environ: typing.Mapping[str, str] | None = None) -> Path:
        """The drug vocabulary file the study names.

        An absolute path is used as is; `conf/...` is the configuration folder's file:
        the shipped one for a study shipped in the package, else `conf_dir()` (the
        shipped configuration, or `COHORT_ENGINE_CONF_DIR`); any other relative path
        is relative to the study file (to the current folder for a study that has no
        file, such as one read back from a run manifest).
        """
        path = Path(self.vocabulary)
        if path.is_absolute():
            return path
        if _in_conf(path):
            shipped = shipped_conf_dir()
            own = self.source_path is not None and _is_within(Path(self.source_path), shipped)
            return (shipped if own else conf_dir(environ)).joinpath(*path.parts[1:])
        base = Path(self.source_path).parent if self.source_path else Path.cwd()
        return base / path

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if dataclasses.is_dataclass(value):
                return {f.name: plain(getattr(value, f.name))
                        for f in dataclasses.fields(value) if f.name != "source_path"}
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, dt.date):
                return value.isoformat()
            return value
        return plain(self)

    def config_hash(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


ALLOWED_VALUES = {
    "endpoints.os_censoring": {"cutoff", "last_contact"},
    "analysis.ci_method": {"log-log"},
    "cohort.index_line.setting": {"advanced", "early"},
    "safety.ctcae_version": {"5.0"},
}


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        item_hint = args[0]
        return tuple(_convert(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a date YYYY-MM-DD, got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        if value < 0:
            raise ConfigError(f"{key}: must not be negative, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected text, got {value!r}")
        allowed = ALLOWED_VALUES.get(key)
        if allowed and value not in allowed:
            raise ConfigError(f"{key}: must be one of {sorted(allowed)}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint!r}")  # pragma: no cover


def _build(cls: type, data: Any, prefix: str) -> Any:
    where = prefix or "the study file"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source_path"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{name}: unknown key (allowed: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            has_default = (field.default is not dataclasses.MISSING
                           or field.default_factory is not dataclasses.MISSING)
            if not has_default:
                raise ConfigError(f"{key}: required key is missing")
            continue
        kwargs[name] = _convert(data[name], hints[name], key)
    return cls(**kwargs)


def study_from_dict(data: Any, source_path: str | None = None) -> StudyConfig:
    study = _build(StudyConfig, data, "")
    if study.study_period.end and study.study_period.end < study.study_period.start:
        raise ConfigError("study_period.end: is before study_period.start")
    if study.disclosure.min_cell < 1:
        raise ConfigError("disclosure.min_cell: must be at least 1")
    if not study.cohort.index_line.required_ingredients and not study.cohort.index_line.required_classes_any:
        raise ConfigError("cohort.index_line: names no required ingredient or class")
    return dataclasses.replace(study, source_path=source_path)


def load_study(path: str | Path, environ: typing.Mapping[str, str] | None = None) -> StudyConfig:
    """A study file; a relative `conf/...` path missing here is the configuration's
    file (`resolve_study_path`)."""
    path = resolve_study_path(path, environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the study file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    try:
        return study_from_dict(data, source_path=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
