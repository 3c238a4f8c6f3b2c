"""The run manifest: what a run read and wrote (Delta versions), its study, counts and
timings; and reading one back for a replay, checked against its own hash."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from importlib import metadata
from pathlib import Path

from .config import study_from_dict
from .disclosure import small_text
from .errors import ConfigError
from .study_config import StudyConfig


def engine_version() -> str:
    try:
        return metadata.version("cohort-engine")
    except metadata.PackageNotFoundError:  # running from a source tree (spark-submit --py-files)
        return "0+source"


def shown_count(n: int, min_cell: int):
    return small_text(min_cell) if 0 < n < min_cell else n


def manifest_versions(manifest: dict, kind: str = "read") -> dict[str, int]:
    """{table: Delta version} of what a run read (or wrote), from its manifest."""
    return {item["table"]: item["version"] for item in manifest["delta_versions"][kind]}


# Stages a replay may rerun: each reads only lake tables. Ingest reads the raw
# extract, which the lake does not version, so it cannot be replayed.
REPLAY_STAGES = ("lines", "cohort", "endpoints", "analysis")
DEFAULT_REPLAY_STAGES = ["analysis"]


def load_manifest(path: str | Path) -> dict:
    """A run manifest, checked for what a replay needs (ConfigError naming the file otherwise)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the run manifest ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not a run manifest (invalid JSON: {exc})") from None
    needed = ("study", "study_hash", "data_cutoff", "delta_versions")
    missing = [k for k in needed if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise ConfigError(f"{path}: not a run manifest (no {missing[0]!r})")
    try:
        manifest_versions(manifest, "read"), manifest_versions(manifest, "written")
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: delta_versions is not a list of {{table, version}} ({exc})") from None
    return manifest


def pinned_versions(manifest: dict) -> dict[str, int]:
    """{table: version} a replay reads: what the original run left each table it touched at.

    A table the run wrote is pinned at the version it wrote (its state when the run
    ended, which every later stage of that run read); a table it only read, at the
    version it read.
    """
    return {**manifest_versions(manifest, "read"), **manifest_versions(manifest, "written")}


def study_of_manifest(manifest: dict, source: str = "run manifest") -> StudyConfig:
    """The study configuration (cut-off included) a manifest recorded, checked against its hash."""
    try:
        study = study_from_dict(manifest["study"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: its study cannot be read ({exc})") from None
    if study.config_hash() != manifest["study_hash"]:
        raise ConfigError(f"{source}: the study it records does not match its study_hash (edited or damaged)")
    if study.data_cutoff.isoformat() != manifest["data_cutoff"]:
        raise ConfigError(f"{source}: data_cutoff {manifest['data_cutoff']} differs from its study's "
                          f"{study.data_cutoff.isoformat()}")
    return study


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def write_manifest(ctx, stages: list[str]) -> Path:
    """<out>/run_manifest.json of a run (`pipeline.RunContext`): what it read and wrote at which Delta
    versions, its study and hash, its row counts (gated) and timings, its extract settings."""
    manifest = {
        "engine_version": engine_version(),
        "created_utc": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "study": ctx.study.to_dict(),
        "study_hash": ctx.study.config_hash(),
        "data_cutoff": ctx.cutoff.isoformat(),
        "stages": stages,
        # A list of records: table names must not read as count labels to the disclosure audit.
        "delta_versions": {"read": [{"table": t, "version": v} for t, v in sorted(ctx.lake.versions_read.items())],
                           "written": [{"table": t, "version": v}
                                       for t, v in sorted(ctx.lake.versions_written.items())]},
        # Exact counts live in gold/data_quality; under <out> a count 1-4 is shown as <5.
        "row_counts": {stage: {table: shown_count(n, ctx.study.disclosure.min_cell) for table, n in counts.items()}
                       for stage, counts in ctx.row_counts.items()},
        "timings_seconds": {k: round(v, 3) for k, v in ctx.timings.items()},
        "delta_writer": "delta-spark" if ctx.lake.native else "deltalake (offline)",
        "lake": str(ctx.lake.root),
        "mode": "replay" if ctx.replay_of else ("incremental" if ctx.incremental and "ingest" in stages else "full"),
        # The vocabulary file is configuration the study hash does not cover.
        "vocabulary_sha256": file_sha256(ctx.study.vocabulary_path(ctx.environ)),
        "vocabulary_overrides": [{"path": str(Path(p).resolve()), "sha256": file_sha256(Path(p))}
                                 for p in ctx.vocabulary_overrides],
        "extract_settings": dataclasses.asdict(ctx.extract_settings()),
    }
    if ctx.replay_of:
        # Written tables of a replay live in its scratch lake, removed after the run.
        manifest["replay_of"] = ctx.replay_of
    path = ctx.out / "run_manifest.json"
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
