"""The lake: bronze, quarantine, silver and gold Delta tables under one root.

Two write paths behind one interface, chosen per session:

* native: delta-spark, when its jars are on the classpath (clusters, Databricks,
  `spark-submit --packages io.delta:delta-spark_2.13:<version>`);
* offline: Spark writes Parquet files into a fresh folder inside the table, then
  the `deltalake` package commits exactly those files as one Delta transaction.
  Only file footers are read on the driver, never the rows.

Either way a write is all or nothing: until the commit, readers see the previous
version, and files of a write that failed are never referenced by the log. A
write that fails for want of storage (a full disk, a read-only or unwritable
folder) raises a LakeError naming the table and its folder.

A write has two phases (`staged_writes`): *stage* (Spark writes the rows as
Parquet into a fresh folder `w-…` inside the table) and *commit* (offline:
`deltalake` commits exactly those files; native: delta-spark copies them into the
table, then the folder goes). `lake.write` does both at once (natively, outside a
batch, delta-spark writes the table directly: one pass).
Inside `with lake.batch():` a write only stages, and every staged write is
committed, in the order written, when the block ends without an exception; an
exception (a misread extract, a failed check) removes every staged folder and
commits nothing. Reads inside the batch see its staged writes (ingest reads the
patients it has just validated). The commits of a batch are separate Delta
transactions: should one of them fail (a full disk), the writes staged after it
are discarded, and the ones before it stay committed.

A lake can be opened *pinned* (`pinned_versions`): reads then see every table at
the version a run manifest names (time travel), tables the manifest does not name
do not exist, and writes go to a separate `write_root`, so a replay never moves
the lake's own tables.

`lake_lock.LakeLock` serialises runs on one lake; `remove_unfinished_writes`
clears what a killed offline write left behind.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import shutil
import typing
from pathlib import Path

import pyarrow as pa

from .errors import LakeError
from .session import native_delta_enabled
from .staged_writes import (STAGING_PREFIX, StagedWrite, arrow_schema_of, commit_offline, discard, plain_schema,
                            referenced_folders, remove_if_empty, stage, staged_frame)

log = logging.getLogger(__name__)

LAYERS = ("bronze", "quarantine", "silver", "gold")


# Storage failures, as the OS (errno) or the JVM and delta-rs (message text) report them.
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)
_STORAGE_MESSAGES = ("No space left on device", "Disk quota exceeded", "Read-only file system",
                     "Permission denied", "Not a directory")


def storage_problem(exc: BaseException) -> str | None:
    """The storage failure behind an exception (one short phrase), or None for any other failure."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
            return os.strerror(exc.errno)
        text = str(exc)
        for message in _STORAGE_MESSAGES:
            if message in text:
                return message
        exc = exc.__cause__ or exc.__context__
    return None


@dataclasses.dataclass(frozen=True)
class WriteResult:
    table: str
    version: int | None  # None: staged in a batch, not committed yet
    rows: int | None
    skipped: bool = False  # an idempotent commit that had already been made
    staged: bool = False  # inside a batch: committed when the batch ends


def _describe(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


class Lake:
    """The Delta tables under `root`.

    `pinned_versions` ({"layer/name": version}, from a run manifest) pins reads:
    a read without an explicit version sees a pinned table at its pinned version,
    and a table that is not pinned does not exist. Writes then go to `write_root`
    (a scratch lake), and a table written there is read back from there.
    """

    def __init__(self, root: str | Path, spark, environ: typing.Mapping[str, str] | None = None, *,
                 pinned_versions: typing.Mapping[str, int] | None = None,
                 write_root: str | Path | None = None):
        self.root = Path(root).resolve()
        self.spark = spark
        self.native = native_delta_enabled(spark, environ)
        self.pinned_versions = None if pinned_versions is None else dict(pinned_versions)
        self.write_root = Path(write_root).resolve() if write_root is not None else None
        self.versions_read: dict[str, int] = {}
        self.versions_written: dict[str, int] = {}
        self._written_here: set[str] = set()
        self._batch: list[StagedWrite] | None = None  # writes staged by an open batch

    @property
    def pinned(self) -> bool:
        return self.pinned_versions is not None

    # -- naming -------------------------------------------------------------
    def path(self, layer: str, name: str) -> Path:
        """The folder of a table as this lake reads it (the scratch copy once written there)."""
        key = self.key(layer, name)  # checks the layer
        if self.write_root is not None and key in self._written_here:
            return self.write_root / layer / name
        return self.root / layer / name

    def _target(self, layer: str, name: str) -> Path:
        """The folder a write of this table goes to."""
        base = self.write_root if self.write_root is not None else self.root
        return base / layer / name

    @staticmethod
    def key(layer: str, name: str) -> str:
        if layer not in LAYERS:
            raise LakeError(f"unknown lake layer {layer!r} (layers: {', '.join(LAYERS)})")
        return f"{layer}/{name}"

    def exists(self, layer: str, name: str) -> bool:
        """Whether the table exists (inside a batch: also when the batch has staged a write of it)."""
        key = self.key(layer, name)
        if any(w.key == key for w in self._batch or ()):
            return True
        return self._committed(layer, name)

    def _committed(self, layer: str, name: str) -> bool:
        key = self.key(layer, name)
        if self.pinned and key not in self._written_here and key not in self.pinned_versions:
            return False
        return (self.path(layer, name) / "_delta_log").is_dir()

    def tables(self) -> list[str]:
        """Every table of the lake, studies' own tables (`gold/studies/<study>/…`) included."""
        found = []
        for layer in LAYERS:
            base = self.root / layer
            if base.is_dir():
                found += [self.key(layer, log.parent.relative_to(base).as_posix())
                          for log in sorted(base.rglob("_delta_log")) if log.is_dir()]
        return found

    def _pinned_version(self, key: str, version: int | None) -> int | None:
        if version is not None or not self.pinned or key in self._written_here:
            return version
        if key not in self.pinned_versions:
            raise LakeError(f"lake table {key} is not among the tables the manifest pins "
                            f"(a replay reads only what the original run read or wrote)")
        return self.pinned_versions[key]

    def _delta(self, layer: str, name: str, version: int | None = None):
        key = self.key(layer, name)
        if not self._committed(layer, name):
            self._pinned_version(key, None)  # on a pinned lake, a table it does not pin: the replay's message
            raise LakeError(f"lake table {key} does not exist under {self.root}")
        return self._open(key, self.path(layer, name), version)

    @staticmethod
    def _open(key: str, path: Path, version: int | None = None):
        from deltalake import DeltaTable
        try:
            return DeltaTable(str(path), version=version)
        except Exception as exc:
            raise LakeError(f"lake table {key}: cannot open version {version} ({exc})") from None

    def version(self, layer: str, name: str) -> int:
        """The version a read of this table sees (the pinned one on a pinned lake)."""
        key = self.key(layer, name)
        pinned = self._pinned_version(key, None)
        return pinned if pinned is not None else self._delta(layer, name).version()

    def history(self, layer: str, name: str) -> list[dict]:
        return self._delta(layer, name).history()

    def transaction_version(self, layer: str, name: str, app_id: str) -> int | None:
        """The last transaction number committed by `app_id` to the table (None: none, or no table)."""
        path = self._target(layer, name)
        if not (path / "_delta_log").is_dir():
            return None
        return self._open(self.key(layer, name), path).transaction_version(app_id)

    def has_data_commit(self, layer: str, name: str) -> bool:
        """False for an offline table that was created but never written (its writer stopped)."""
        version = self.version(layer, name)
        if version > 0:
            return True
        return self._delta(layer, name, 0).history(1)[0].get("operation") != "CREATE TABLE"

    # -- reading ------------------------------------------------------------
    def read(self, layer: str, name: str, version: int | None = None):
        """A DataFrame of the table at `version` (default: the latest, or the pinned version).

        Inside a batch, a table the batch has written reads as the batch left it (a
        DataFrame that reads staged files is good until the batch ends).
        """
        key = self.key(layer, name)
        staged = [w for w in self._batch or () if w.key == key]
        if staged and version is None:
            return self._read_staged(layer, name, staged)
        return self._read_committed(layer, name, version)

    def _read_committed(self, layer: str, name: str, version: int | None = None):
        key = self.key(layer, name)
        version = self._pinned_version(key, version)
        table = self._delta(layer, name, version)
        read_version = table.version()
        self._record_read(key, read_version)
        if self.native:
            return (self.spark.read.format("delta").option("versionAsOf", read_version)
                    .load(str(self.path(layer, name))))
        uris = table.file_uris()
        if not uris:
            from pyspark.sql.pandas.types import from_arrow_schema
            schema = from_arrow_schema(pa.schema(table.schema().to_arrow()))
            return self.spark.createDataFrame([], schema)
        return (self.spark.read.option("basePath", str(self.path(layer, name)))
                .parquet(*uris))

    def _read_staged(self, layer: str, name: str, staged: list[StagedWrite]):
        overwrites = [i for i, w in enumerate(staged) if w.mode == "overwrite"]
        frames = []
        if overwrites:
            staged = staged[overwrites[-1]:]
        else:  # appends to the committed table
            frames.append(self._read_committed(layer, name) if (staged[0].table_path / "_delta_log").is_dir()
                          else None)
        frames += [staged_frame(self.spark, w) for w in staged]
        frames = [f for f in frames if f is not None]
        out = frames[0]
        for frame in frames[1:]:
            out = out.unionByName(frame)
        return out

    def read_pandas(self, layer: str, name: str, version: int | None = None):
        """Small tables straight to pandas, without Spark (cohort, endpoints...)."""
        key = self.key(layer, name)
        version = self._pinned_version(key, version)
        table = self._delta(layer, name, version)
        self._record_read(key, table.version())
        return table.to_pandas()

    def _record_read(self, key: str, version: int) -> None:
        # A replay's manifest lists what it read from the lake itself, not its scratch copies.
        if self.write_root is None or key not in self._written_here:
            self.versions_read[key] = version

    # -- writing ------------------------------------------------------------
    def write(self, df, layer: str, name: str, mode: str = "overwrite",
              txn: tuple[str, int] | None = None) -> WriteResult:
        """Commit `df` as a new version of `layer/name` (inside a batch: stage it).

        `mode` is `overwrite` (a new version replacing the content; older versions
        stay readable) or `append` (the schema must equal the table's).
        `txn=(app_id, n)` makes a scheduled commit idempotent: if the table already
        records transaction n (or later) for app_id, nothing is written.
        On a pinned lake the write goes to `write_root`.
        """
        if mode not in ("overwrite", "append"):
            raise LakeError(f"lake write mode must be overwrite or append, got {mode!r}")
        key = self.key(layer, name)
        path = self._target(layer, name)
        existed = (path / "_delta_log").is_dir()
        current = self._open(key, path) if existed else None
        previous = current.version() if current is not None else None
        if txn and current is not None:
            done = current.transaction_version(txn[0])
            if done is not None and done >= txn[1]:
                log.info("%s: transaction %s/%s already committed (version %d)", key, txn[0], txn[1], previous)
                return WriteResult(key, previous, None, skipped=True)
        if mode == "append":
            staged_before = [w for w in self._batch or () if w.key == key]
            if staged_before:
                self._check_append_schema(key, staged_before[-1].schema, arrow_schema_of(df.schema))
            elif current is not None:
                self._check_append_schema(key, current.schema().to_arrow(), arrow_schema_of(df.schema))
        if self.native and self._batch is None:  # delta-spark writes straight into the table
            result = self._guarded(key, path, previous, lambda: self._write_native(df, key, path, mode, txn))
            self._written_here.add(key)
            self.versions_written[key] = result.version
            return result
        staged = self._guarded(key, path, previous, lambda: stage(df, key, path, mode, txn, previous))
        if self._batch is not None:
            self._batch.append(staged)
            return WriteResult(key, None, staged.rows, staged=True)
        return self._commit_guarded(staged)

    def _guarded(self, key: str, path: Path, previous: int | None, action):
        """Run a write step; a storage failure becomes a LakeError naming the table."""
        try:
            return action()
        except Exception as exc:
            problem = storage_problem(exc)
            if problem is None:
                raise
            kept = f"it stays at version {previous}" if previous is not None else "it was not created"
            raise LakeError(f"cannot write lake table {key} at {path}: {problem} ({kept})") from exc

    def _commit_guarded(self, staged: StagedWrite) -> WriteResult:
        result = self._guarded(staged.key, staged.table_path, staged.previous, lambda: self._commit(staged))
        self._written_here.add(staged.key)
        self.versions_written[staged.key] = result.version
        return result

    @contextlib.contextmanager
    def batch(self):
        """Stage every write of the block; commit them all when it ends, or none on an exception.

        Yields a list that receives the WriteResult of each commit.
        """
        if self._batch is not None:
            raise LakeError("lake batches do not nest")
        self._batch = []
        results: list[WriteResult] = []
        try:
            yield results
        except BaseException:
            staged, self._batch = self._batch, None
            discard(staged)
            raise
        staged, self._batch = self._batch, None
        for i, write in enumerate(staged):
            try:
                results.append(self._commit_guarded(write))
            except BaseException:
                discard(staged[i + 1:])  # the failed one cleaned up after itself
                raise

    @property
    def in_batch(self) -> bool:
        return self._batch is not None

    def _commit(self, staged: StagedWrite) -> WriteResult:
        if not self.native:  # the log references the staged files where they are
            return WriteResult(staged.key, commit_offline(staged), staged.rows)
        try:
            return self._commit_native(staged)
        finally:
            shutil.rmtree(staged.staging, ignore_errors=True)  # copied into the table (or the copy failed)

    def _write_native(self, df, key: str, path: Path, mode, txn) -> WriteResult:
        writer = df.write.format("delta").mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        if txn:
            writer = writer.option("txnAppId", txn[0]).option("txnVersion", str(txn[1]))
        path.parent.mkdir(parents=True, exist_ok=True)
        writer.save(str(path))
        return WriteResult(key, self._open(key, path).version(), None)

    def _commit_native(self, staged: StagedWrite) -> WriteResult:
        """Copy a staged write into the table with delta-spark (the staged folder goes afterwards)."""
        existed = (staged.table_path / "_delta_log").is_dir()
        try:
            result = self._write_native(staged_frame(self.spark, staged), staged.key, staged.table_path,
                                        staged.mode, staged.txn)
        except BaseException:
            shutil.rmtree(staged.staging, ignore_errors=True)
            if not existed:
                remove_if_empty(staged.table_path)
            raise
        return dataclasses.replace(result, rows=staged.rows)

    @staticmethod
    def _check_append_schema(key: str, table_schema, new_schema: pa.Schema) -> None:
        have = _describe(plain_schema(pa.schema(table_schema)))
        new = _describe(plain_schema(new_schema))
        for column, kind in new.items():
            if column not in have:
                raise LakeError(f"append to {key}: column {column!r} is not in the table")
            if have[column] != kind:
                raise LakeError(f"append to {key}: column {column!r} is {kind}, the table has {have[column]}")
        missing = [c for c in have if c not in new]
        if missing:
            raise LakeError(f"append to {key}: column {missing[0]!r} is missing")

    # -- after a killed run ---------------------------------------------------
    def remove_unfinished_writes(self) -> list[Path]:
        """Delete the folders of offline writes that never committed; return them.

        A run killed while Spark wrote (or before deltalake committed) leaves a
        staging folder that no version of the log references: invisible to readers,
        but taking space. Call only while holding the lake's lock, so that no write
        of another run is under way.
        """
        removed = []
        for layer in LAYERS:
            base = self.root / layer
            if not base.is_dir():
                continue
            for table in sorted(p for p in base.iterdir() if p.is_dir()):
                staged = [p for p in table.iterdir() if p.is_dir() and p.name.startswith(STAGING_PREFIX)]
                if not staged:
                    continue
                referenced = referenced_folders(table / "_delta_log")
                if referenced is None:  # a log this code cannot read completely: leave it alone
                    log.warning("%s: kept %d unreferenced write folders (unreadable log)", table, len(staged))
                    continue
                for folder in staged:
                    if folder.name not in referenced:
                        shutil.rmtree(folder, ignore_errors=True)
                        removed.append(folder)
                if not (table / "_delta_log").is_dir():
                    remove_if_empty(table)
        return removed
