"""Where the configuration lives: the `conf/` folder shipped inside the package (studies,
vocabulary, Spark profiles), or a user's own under `COHORT_ENGINE_CONF_DIR`, and the study
file a user's `--study` names.
"""
from __future__ import annotations

import atexit
import functools
import importlib.resources
import os
import shutil
import tempfile
import typing
from pathlib import Path

# The repository checkout this module sits in (meaningful in a source tree only).
REPO_ROOT = Path(__file__).resolve().parents[2]
# The study used when none is given: `studies/<this>.yaml` of the configuration.
DEFAULT_STUDY = "her2_paclitaxel_liposome"


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


def in_conf(path: Path) -> bool:
    """Whether a relative path is written `conf/...` (the configuration folder)."""
    return not path.is_absolute() and len(path.parts) > 1 and path.parts[0] == "conf"


def is_within(path: Path, folder: Path) -> bool:
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
    if path.exists() or not in_conf(path):
        return path
    candidate = conf_dir(environ).joinpath(*path.parts[1:])
    return candidate if candidate.exists() else path
