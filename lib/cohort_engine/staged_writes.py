"""A lake write staged as Parquet files inside its table, and committed offline as one Delta transaction.

*Stage*: Spark writes the rows as Parquet into a fresh folder `w-…` inside the
table; nothing is committed, and readers see the table as it was. *Commit*,
offline: the `deltalake` package commits exactly those files where they are, as
one Delta transaction (only file footers are read on the driver, never the rows).
A commit that fails leaves no file of its write behind, nor a table it created
and never filled. (Natively, `lake.Lake` has delta-spark copy the staged rows in.)

A staging folder no version of the log references is what a killed write left
behind (`referenced_folders` tells them apart).
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
import typing
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

STAGING_PREFIX = "w-"  # the folder of one offline write inside its table


@dataclasses.dataclass
class StagedWrite:
    """One write's Parquet files in their staging folder, waiting for the commit."""
    key: str
    table_path: Path
    folder: str  # the staging folder's name inside the table (w-…)
    mode: str
    txn: tuple[str, int] | None
    previous: int | None  # the table's version when the write was staged (None: no table)
    spark_schema: typing.Any
    files: list[Path]
    schema: pa.Schema  # of the staged files (Delta schema)
    rows: int

    @property
    def staging(self) -> Path:
        return self.table_path / self.folder


def arrow_schema_of(spark_schema) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema
    return to_arrow_schema(spark_schema)


def plain_schema(schema: pa.Schema) -> pa.Schema:
    # Spark's Parquet metadata would leak into the Delta schema and make
    # otherwise equal schemas compare unequal.
    return pa.schema([pa.field(f.name, f.type, nullable=True) for f in schema])


def stage(df, key: str, table_path: Path, mode: str, txn, previous: int | None) -> StagedWrite:
    """Spark writes `df` as Parquet into a fresh folder inside the table; nothing is committed."""
    folder = f"{STAGING_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
    staging = table_path / folder
    existed = (table_path / "_delta_log").is_dir()
    try:
        df.write.mode("error").parquet(str(staging))
        for junk in list(staging.iterdir()):
            if not junk.name.endswith(".parquet"):
                junk.unlink()
        files = sorted(staging.glob("*.parquet"))
        schema = plain_schema(pq.read_schema(files[0]) if files else arrow_schema_of(df.schema))
        rows = sum(pq.read_metadata(file).num_rows for file in files)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not existed:
            remove_if_empty(table_path)
        raise
    return StagedWrite(key, table_path, folder, mode, txn, previous, df.schema, files, schema, rows)


def staged_frame(spark, staged: StagedWrite):
    """The rows of a staged write (a DataFrame good until the staging folder goes)."""
    if staged.files:
        return spark.read.parquet(*[str(f) for f in staged.files])
    return spark.createDataFrame([], staged.spark_schema)


def commit_offline(staged: StagedWrite) -> int:
    """Commit a staged write's files where they are, with `deltalake`; the table's new version."""
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction, CommitProperties, Transaction

    table_path = staged.table_path
    existed = (table_path / "_delta_log").is_dir()
    created = False
    try:
        actions = []
        now_ms = int(time.time() * 1000)
        for file in staged.files:
            n = pq.read_metadata(file).num_rows
            actions.append(AddAction(path=f"{staged.folder}/{file.name}", size=file.stat().st_size,
                                     partition_values={}, modification_time=now_ms, data_change=True,
                                     stats=f'{{"numRecords":{n}}}'))
        txn = staged.txn
        props = CommitProperties(app_transactions=[Transaction(txn[0], txn[1])]) if txn else None
        if not existed:
            DeltaTable.create(str(table_path), schema=staged.schema, mode="error")
            created = True
        table = DeltaTable(str(table_path))
        table.create_write_transaction(actions, mode=staged.mode, schema=staged.schema,
                                       commit_properties=props)
    except BaseException:
        # Nothing of this write is referenced by the log: remove its files, and a
        # table this write created and never filled, so that it does not exist.
        shutil.rmtree(staged.staging, ignore_errors=True)
        if created:
            _remove_created_table(table_path)
        elif not existed:
            remove_if_empty(table_path)
        raise
    return DeltaTable(str(table_path)).version()


def discard(staged: typing.Iterable[StagedWrite] | None) -> None:
    """Remove staged writes that will not be committed (and a table folder left empty)."""
    for write in staged or ():
        shutil.rmtree(write.staging, ignore_errors=True)
        if not (write.table_path / "_delta_log").is_dir():
            remove_if_empty(write.table_path)


def _remove_created_table(path: Path) -> None:
    log_dir = path / "_delta_log"
    commits = sorted(log_dir.glob("*.json")) if log_dir.is_dir() else []
    if [c.name for c in commits] == [f"{0:020d}.json"]:
        shutil.rmtree(path, ignore_errors=True)


def remove_if_empty(path: Path) -> None:
    try:
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    except OSError:
        pass


def referenced_folders(log_dir: Path) -> set[str] | None:
    """First path segments of every file any version of the table adds.

    None when the log cannot be read completely, or names files by absolute path
    (a clone of another table): then nothing can be called unreferenced.
    """
    paths: list[str] = []
    if not log_dir.is_dir():
        return set()
    try:
        for commit in log_dir.glob("*.json"):
            with open(commit, encoding="utf-8") as lines:
                for line in lines:
                    if '"add"' in line:
                        paths.append((json.loads(line).get("add") or {}).get("path", ""))
        for checkpoint in log_dir.glob("*.checkpoint*.parquet"):
            adds = pq.read_table(checkpoint, columns=["add"]).column("add").to_pylist()
            paths += [a["path"] for a in adds if a and a.get("path")]
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None
    if any(p.startswith("/") or "://" in p for p in paths):
        return None
    return {p.split("/", 1)[0] for p in paths}
