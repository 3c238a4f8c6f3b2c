"""The lake: bronze, quarantine, silver and gold Delta tables under one root.

Two write paths behind one interface, chosen per session:

* native: delta-spark, when its jars are on the classpath (clusters, Databricks,
  `spark-submit --packages io.delta:delta-spark_2.13:<version>`);
* offline: Spark writes Parquet files into a fresh folder inside the table, then
  the `deltalake` package commits exactly those files as one Delta transaction.
  Only file footers are read on the driver, never the rows.

Either way a write is all or nothing: until the commit, readers see the previous
version, and files of a write that failed are never referenced by the log.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import typing
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .session import native_delta_enabled

log = logging.getLogger(__name__)

LAYERS = ("bronze", "quarantine", "silver", "gold")


class LakeError(RuntimeError):
    """A lake operation that cannot go ahead; the message names the table."""


@dataclasses.dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    rows: int | None
    skipped: bool = False  # an idempotent commit that had already been made


def _arrow_schema_of(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema
    return to_arrow_schema(spark_schema)


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    # Spark's Parquet metadata would leak into the Delta schema and make
    # otherwise equal schemas compare unequal.
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


def _describe(schema: pa.Schema) -> dict[str, str]:
    return {f.name: str(f.type) for f in schema}


class Lake:
    def __init__(self, root: str | Path, spark, environ: typing.Mapping[str, str] | None = None):
        self.root = Path(root).resolve()
        self.spark = spark
        self.native = native_delta_enabled(spark, environ)
        self.versions_read: dict[str, int] = {}
        self.versions_written: dict[str, int] = {}

    # -- naming -------------------------------------------------------------
    def path(self, layer: str, name: str) -> Path:
        if layer not in LAYERS:
            raise LakeError(f"unknown lake layer {layer!r} (layers: {', '.join(LAYERS)})")
        return self.root / layer / name

    @staticmethod
    def key(layer: str, name: str) -> str:
        return f"{layer}/{name}"

    def exists(self, layer: str, name: str) -> bool:
        return (self.path(layer, name) / "_delta_log").is_dir()

    def tables(self) -> list[str]:
        found = []
        for layer in LAYERS:
            base = self.root / layer
            if base.is_dir():
                found += [self.key(layer, p.name) for p in sorted(base.iterdir()) if (p / "_delta_log").is_dir()]
        return found

    def _delta(self, layer: str, name: str, version: int | None = None):
        from deltalake import DeltaTable
        path = self.path(layer, name)
        if not self.exists(layer, name):
            raise LakeError(f"lake table {self.key(layer, name)} does not exist under {self.root}")
        try:
            return DeltaTable(str(path), version=version)
        except Exception as exc:
            raise LakeError(f"lake table {self.key(layer, name)}: cannot open version {version} ({exc})") from None

    def version(self, layer: str, name: str) -> int:
        return self._delta(layer, name).version()

    def history(self, layer: str, name: str) -> list[dict]:
        return self._delta(layer, name).history()

    # -- reading ------------------------------------------------------------
    def read(self, layer: str, name: str, version: int | None = None):
        """A DataFrame of the table at `version` (default: the latest)."""
        key = self.key(layer, name)
        table = self._delta(layer, name, version)
        read_version = table.version()
        self.versions_read[key] = read_version
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

    def read_pandas(self, layer: str, name: str, version: int | None = None):
        """Small tables straight to pandas, without Spark (cohort, endpoints...)."""
        table = self._delta(layer, name, version)
        self.versions_read[self.key(layer, name)] = table.version()
        return table.to_pandas()

    # -- writing ------------------------------------------------------------
    def write(self, df, layer: str, name: str, mode: str = "overwrite",
              txn: tuple[str, int] | None = None) -> WriteResult:
        """Commit `df` as a new version of `layer/name`.

        `mode` is `overwrite` (a new version replacing the content; older versions
        stay readable) or `append` (the schema must equal the table's).
        `txn=(app_id, n)` makes a scheduled commit idempotent: if the table already
        records transaction n (or later) for app_id, nothing is written.
        """
        if mode not in ("overwrite", "append"):
            raise LakeError(f"lake write mode must be overwrite or append, got {mode!r}")
        key = self.key(layer, name)
        if txn and self.exists(layer, name):
            done = self._delta(layer, name).transaction_version(txn[0])
            if done is not None and done >= txn[1]:
                version = self.version(layer, name)
                log.info("%s: transaction %s/%s already committed (version %d)", key, txn[0], txn[1], version)
                return WriteResult(key, version, None, skipped=True)
        if mode == "append" and self.exists(layer, name):
            self._check_append_schema(key, self._delta(layer, name).schema().to_arrow(),
                                      _arrow_schema_of(df.schema))
        if self.native:
            result = self._write_native(df, layer, name, mode, txn)
        else:
            result = self._write_offline(df, layer, name, mode, txn)
        self.versions_written[key] = result.version
        return result

    @staticmethod
    def _check_append_schema(key: str, table_schema, new_schema: pa.Schema) -> None:
        have = _describe(_plain_schema(pa.schema(table_schema)))
        new = _describe(_plain_schema(new_schema))
        for column, kind in new.items():
            if column not in have:
                raise LakeError(f"append to {key}: column {column!r} is not in the table")
            if have[column] != kind:
                raise LakeError(f"append to {key}: column {column!r} is {kind}, the table has {have[column]}")
        missing = [c for c in have if c not in new]
        if missing:
            raise LakeError(f"append to {key}: column {missing[0]!r} is missing")

    def _write_native(self, df, layer, name, mode, txn) -> WriteResult:
        writer = df.write.format("delta").mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
        if txn:
            writer = writer.option("txnAppId", txn[0]).option("txnVersion", str(txn[1]))
        path = self.path(layer, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer.save(str(path))
        return WriteResult(self.key(layer, name), self.version(layer, name), None)

    def _write_offline(self, df, layer, name, mode, txn) -> WriteResult:
        from deltalake import DeltaTable
        from deltalake.transaction import AddAction, CommitProperties, Transaction

        key = self.key(layer, name)
        table_path = self.path(layer, name)
        existed = self.exists(layer, name)
        folder = f"w-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        staging = table_path / folder
        try:
            df.write.mode("error").parquet(str(staging))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if not existed:
                self._remove_if_empty(table_path)
            raise
        for junk in list(staging.iterdir()):
            if not junk.name.endswith(".parquet"):
                junk.unlink()
        files = sorted(staging.glob("*.parquet"))
        schema = _plain_schema(pq.read_schema(files[0]) if files else _arrow_schema_of(df.schema))
        actions, rows = [], 0
        now_ms = int(time.time() * 1000)
        for file in files:
            n = pq.read_metadata(file).num_rows
            rows += n
            actions.append(AddAction(path=f"{folder}/{file.name}", size=file.stat().st_size,
                                     partition_values={}, modification_time=now_ms, data_change=True,
                                     stats=f'{{"numRecords":{n}}}'))
        props = CommitProperties(app_transactions=[Transaction(txn[0], txn[1])]) if txn else None
        try:
            if not existed:
                DeltaTable.create(str(table_path), schema=schema, mode="error")
            table = DeltaTable(str(table_path))
            table.create_write_transaction(actions, mode=mode, schema=schema, commit_properties=props)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return WriteResult(key, DeltaTable(str(table_path)).version(), rows)

    @staticmethod
    def _remove_if_empty(path: Path) -> None:
        try:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError:
            pass
