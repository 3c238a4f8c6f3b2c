"""The generation job: every source table and the truth, written by Spark.

Each table is a `spark.range(chunks)` whose partitions each hold one chunk number;
`mapInArrow` re-simulates the chunk (numpy, vectorised) and yields that table's
rows, which Spark writes. No row ever reaches the driver; counts are read back
from what was written.

Output options: CSV in UTF-8 or GB18030 (Spark writes UTF-8, which is re-encoded
file to file with Python's codec: Spark 4 writes no GB18030 without a legacy setting); Parquet written by Spark (dates as text) or, as a
hospital's Python export would, by pandas (`DataFrame.to_parquet`, pyarrow defaults,
dates as datetime64[ns]), one part per chunk written by the Spark task that
simulated it.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..progress_lines import ProgressLine
from . import dates as DT
from . import params as PR
from . import truth as TR
from .confounding import CONVENTIONAL_ARM, LIPOSOME_ARM
from .columns import DATE_COLUMN, SCHEMAS, STR, chunk_patient_ids, hospital_ids, pick
from .hospitals import hospitals
from .noise import add_noise, unlinkable_mask
from .patient_tables import build_hospitals
from .plan import NONE_DAY, Plan
from .prescription_tables import build_prescriptions
from .sim import simulate
from .tables import BUILDERS

log = logging.getLogger(__name__)

SOURCE_ORDER = ("hospitals", "patients", "deaths", "diagnoses", "biomarkers", "prescriptions",
                "tumor_assessments", "labs", "adverse_events", "visits", "vitals")
D32 = pa.date32()
TRUTH_SCHEMAS = {
    "patients": pa.schema([
        ("patient_id", STR), ("sex", STR), ("birth_date", D32), ("cancer", STR), ("is_breast", pa.bool_()),
        ("her2_true", STR), ("her2_recorded", STR), ("hr_true", STR), ("hr_recorded", STR), ("bc_date", D32),
        ("advanced_date", D32), ("advanced_date_true", D32), ("de_novo", pa.bool_()), ("visceral", pa.bool_()), ("brain_mets", pa.bool_()),
        ("bone_only", pa.bool_()), ("prior_anti_her2", pa.bool_()), ("index_date", D32), ("index_regimen", STR),
        ("anti_her2", STR), ("age_at_index", pa.int32()), ("intended_in_cohort", pa.bool_()),
        ("death_date", D32), ("death_recorded", pa.bool_()), ("linkable", pa.bool_()),
        ("progression_date", D32), ("pd_assessment_date", D32), ("next_line_date", D32),
        ("assessed", pa.bool_()), ("last_record_date", D32), ("hospital_id", STR), ("hospital_tier", STR),
        ("province", STR), ("anc_g3_index_line", pa.bool_()), ("lvef_decline_grade", pa.int32())]),
    "lines": pa.schema([
        ("patient_id", STR), ("setting", STR), ("line_number", pa.int32()), ("start_date", D32),
        ("last_admin_date", D32), ("regimen", STR), ("n_admin_days", pa.int32())]),
    # only with the confounded taxane choice (docs/generator.md)
    "potential_outcomes": pa.schema(
        [("patient_id", STR), ("index_date", D32), ("arm", STR), ("p_liposome", pa.float64()),
         ("age_at_index", pa.int32()), ("visceral", pa.bool_()), ("brain_mets", pa.bool_()), ("de_novo", pa.bool_()),
         ("index_year", pa.int32()),
         ("death_date", D32), ("os_days", pa.int32()), ("os_event", pa.bool_())]
        + [(f"{column}_{arm}", kind) for arm in ("liposome", "conventional")
           for column, kind in (("progression", D32), ("pd_documented", D32), ("ttp_days", pa.int32()),
                                ("ttp_event", pa.bool_()), ("pfs_days", pa.int32()), ("pfs_event", pa.bool_()),
                                ("hypersensitivity_g3", pa.bool_()))]),
}
CONFOUNDED_TRUTH = ("truth/potential_outcomes",)


def _spark_type(t: pa.DataType) -> str:
    if t == pa.string():
        return "string"
    if t == pa.float64():
        return "double"
    if t == pa.int32():
        return "int"
    if t == pa.bool_():
        return "boolean"
    if t == pa.date32():
        return "date"
    raise TypeError(t)  # pragma: no cover


def spark_ddl(schema: pa.Schema) -> str:
    return ", ".join(f"`{f.name}` {_spark_type(f.type)}" for f in schema)


def _days(values, present=None) -> pa.Array:
    values = np.asarray(values, dtype=np.int64)
    mask = values >= NONE_DAY if present is None else ~present
    return pa.array(np.where(mask, 0, values).astype("datetime64[D]"), type=D32, mask=mask)


def truth_lines_table(sim) -> pa.Table:
    tl = TR.lines(sim)
    return pa.Table.from_arrays([
        chunk_patient_ids(sim).take(pa.array(tl["pat"])),
        pick(("early", "advanced"), tl["setting"]),
        pa.array(tl["line_number"], type=pa.int32()),
        _days(tl["start"]), _days(tl["last"]),
        pa.array(list(tl["regimen"]), type=STR),
        pa.array(tl["n_admin_days"], type=pa.int32())], schema=TRUTH_SCHEMAS["lines"])


def truth_patients_table(sim) -> pa.Table:
    tl = TR.lines(sim)
    tp = TR.patients(sim, tl)
    n = sim.n
    # the advanced date as the clean extract records it (none when records ended before it)
    has_adv = (sim.adv < NONE_DAY) & (sim.adv <= sim.record_end)
    status = np.array(["negative", "positive", "unknown"], dtype=object)
    her2_true = np.where(sim.breast, np.where(sim.her2, "positive", "negative"), None)
    hr_true = np.where(sim.breast, np.where(sim.hr, "positive", "negative"), None)
    h = hospitals(sim.plan.seed)
    tiers = np.array(PR.TIERS, dtype=object)[h.tier[sim.hospital]]
    cutoff = sim.plan.cutoff_day
    cols = {
        "patient_id": chunk_patient_ids(sim), "sex": pick(("F", "M", "U"), sim.sex), "birth_date": _days(sim.birth),
        "cancer": pick(PR.CANCER_NAMES, sim.cancer), "is_breast": pa.array(sim.breast),
        "her2_true": pa.array(list(her2_true), type=STR),
        "her2_recorded": pa.array(list(status[sim.her2_recorded]), type=STR),
        "hr_true": pa.array(list(hr_true), type=STR),
        "hr_recorded": pa.array(list(status[sim.hr_recorded]), type=STR),
        "bc_date": _days(sim.dx, sim.breast), "advanced_date": _days(sim.adv, has_adv),
        "advanced_date_true": _days(sim.adv), "de_novo": pa.array(sim.de_novo & has_adv), "visceral": pa.array(tp["visceral"] & has_adv),
        "brain_mets": pa.array(tp["brain"] & has_adv), "bone_only": pa.array(tp["bone_only"] & has_adv),
        "prior_anti_her2": pa.array(sim.prior_anti_her2 & has_adv),
        "index_date": _days(tp["index_date"]),
        "index_regimen": pa.array(list(tp["index_regimen"]), type=STR),
        "anti_her2": pa.array(list(tp["anti_her2"]), type=STR),
        "age_at_index": pa.array(tp["age_at_index"], type=pa.int32(), mask=tp["age_at_index"] < 0),
        "intended_in_cohort": pa.array(tp["intended"]),
        "death_date": _days(sim.death), "death_recorded": pa.array(sim.death <= cutoff),
        "linkable": pa.array(~unlinkable_mask(sim)),
        "progression_date": _days(sim.progression), "pd_assessment_date": _days(sim.pd_detect),
        "next_line_date": _days(tp["next_line"]), "assessed": pa.array(sim.assessed & sim.breast & has_adv),
        "last_record_date": _days(sim.record_end),
        "hospital_id": hospital_ids(sim.plan.seed, sim.hospital), "hospital_tier": pa.array(list(tiers), type=STR),
        "province": pick([p for p, _ in PR.PROVINCES], sim.province),
        "anc_g3_index_line": pa.array(tp["anc_g3_index_line"]),
        "lvef_decline_grade": pa.array(sim.lvef_decline.astype(np.int32)),
    }
    assert len(cols["patient_id"]) == n
    return pa.Table.from_arrays([cols[f.name] for f in TRUTH_SCHEMAS["patients"]],
                                schema=TRUTH_SCHEMAS["patients"])


def truth_potential_outcomes_table(sim) -> pa.Table:
    po = TR.potential_outcomes(sim, TR.patients(sim))
    schema = TRUTH_SCHEMAS["potential_outcomes"]
    choice = sim.taxane_choice
    pat = po["pat"]
    cols = {"patient_id": chunk_patient_ids(sim).take(pa.array(pat)),
            "arm": pa.array(np.where(choice.liposome[pat], LIPOSOME_ARM, CONVENTIONAL_ARM).tolist(), type=STR),
            "p_liposome": pa.array(choice.p_liposome[pat]),
            "visceral": pa.array(choice.visceral[pat]), "brain_mets": pa.array(choice.brain[pat]),
            "de_novo": pa.array(choice.de_novo[pat]),
            "index_year": pa.array(choice.index_year[pat], type=pa.int32()),
            "age_at_index": pa.array(choice.age_at_index[pat], type=pa.int32()),
            "death_date": _days(po["death"])}
    for field in schema:
        if field.name in cols:
            continue
        values = po[field.name]
        cols[field.name] = _days(values) if field.type == D32 else pa.array(values, type=field.type)
    return pa.Table.from_arrays([cols[f.name] for f in schema], schema=schema)


def chunk_table(plan: Plan, name: str, chunk: int) -> pa.Table:
    """One table's rows for one chunk (source tables with noise unless plan.clean; truth tables)."""
    if name == "hospitals":
        return build_hospitals(plan.seed) if chunk == 0 else build_hospitals(plan.seed).slice(0, 0)
    sim = simulate(plan, chunk)
    if name == "truth/patients":
        return truth_patients_table(sim)
    if name == "truth/lines":
        return truth_lines_table(sim)
    if name == "truth/potential_outcomes":
        return truth_potential_outcomes_table(sim)
    table = build_prescriptions(sim, plan.clean) if name == "prescriptions" else BUILDERS[name](sim)
    return add_noise(name, table, sim)


def schema_of(name: str) -> pa.Schema:
    if name.startswith("truth/"):
        return TRUTH_SCHEMAS[name.split("/", 1)[1]]
    return SCHEMAS[name]


def _frame(spark, plan: Plan, name: str):
    chunks = 1 if name == "hospitals" else plan.n_chunks
    schema = schema_of(name)

    def produce(batches):
        for batch in batches:
            for chunk in batch.column(0).to_pylist():
                table = chunk_table(plan, name, int(chunk))
                yield from table.to_batches(max_chunksize=100_000)

    return spark.range(0, chunks, 1, chunks).mapInArrow(produce, spark_ddl(schema))


ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "gb18030": "gb18030"}
PARQUET_WRITERS = ("spark", "pandas")
# The injected kinds a written date column is counted for (truth/manifest.json "injected").
DATE_KINDS = ("ambiguous_date", "unparseable_date", "date_out_of_range", "missing_required")


def _write(df, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        df.write.mode("overwrite").parquet(str(path))
        return
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (df.coalesce(1).write.mode("overwrite").option("header", True).option("encoding", "UTF-8")
     .option("emptyValue", "").csv(str(tmp)))
    parts = sorted(tmp.glob("part-*.csv"))
    if len(parts) != 1:  # pragma: no cover - coalesce(1) writes one part
        raise RuntimeError(f"expected one CSV part for {path.name}, found {len(parts)}")
    if path.exists():
        path.unlink()
    shutil.move(str(parts[0]), str(path))
    shutil.rmtree(tmp, ignore_errors=True)


def transcode(path: Path, encoding: str) -> None:
    """Re-encode a UTF-8 text file in place, streaming (Python's codec, strict: GB18030 encodes every
    character, so nothing is replaced)."""
    tmp = path.with_name(path.name + ".transcode")
    with open(path, encoding="utf-8", newline="") as src, open(tmp, "w", encoding=encoding, newline="") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, path)


def _read(spark, path: Path, fmt: str):
    if fmt == "parquet":
        return spark.read.parquet(str(path))
    return spark.read.option("header", True).option("multiLine", False).csv(str(path))


def _count(spark, path: Path, fmt: str) -> int:
    return _read(spark, path, fmt).count()


def _tally_exprs(name: str, cutoff: dt.date) -> list:
    """What the written date column shows of the injected rows, as aggregates over the written rows:
    rows, the ambiguous copies (`05/03/2019`), out of range (ISO dates before 1900 or after the
    cut-off), empty, and each text of params.BAD_DATE_TEXT."""
    from pyspark.sql import functions as F
    c = F.col(DATE_COLUMN[name])
    one = F.lit(1)
    # cheap tests first (And short-circuits): the regular expressions only see the few candidates
    iso = c.rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$") & ~c.isin(*PR.BAD_DATE_TEXT)
    outside = (c < F.lit("1900-01-01")) | (c > F.lit(cutoff.isoformat()))
    ambiguous = (F.substring(c, 3, 1) == F.lit("/")) & c.rlike(DT.AMBIGUOUS_PATTERN)
    aggs = [F.count(one).alias("rows"), F.count(F.when(ambiguous, one)).alias("ambiguous"),
            F.count(F.when(outside & iso, one)).alias("out_of_range"),
            F.count(F.when(c.isNull(), one)).alias("missing")]
    return aggs + [F.count(F.when(c == F.lit(text), one)).alias(f"bad_{i}") for i, text in enumerate(PR.BAD_DATE_TEXT)]


def injected_counts(metrics: dict, typed_dates: bool = False) -> dict:
    """The manifest's `injected` entry of a table from the counts of its written date column.

    Reasons follow the source contract: a year-last day-first/month-first text with a reading that is
    a date is `ambiguous_date` (the injected copies, and `31-12-2019` among the bad texts); the other
    bad texts are `unparseable_date`. With typed date columns (pandas) both are empty dates instead:
    `missing_required`, and `emptied` says how many of each; an emptied row alike another emptied row
    (two copies of one clean row with two bad texts) is an exact duplicate (`emptied_duplicates`).
    """
    by_text = {text: int(metrics[f"bad_{i}"]) for i, text in enumerate(PR.BAD_DATE_TEXT) if metrics[f"bad_{i}"]}
    ambiguous = int(metrics["ambiguous"]) + sum(n for t, n in by_text.items() if DT.is_ambiguous_text(t))
    unparseable = sum(n for t, n in by_text.items() if not DT.is_ambiguous_text(t))
    out = {"ambiguous_date": ambiguous, "unparseable_date": unparseable,
           "date_out_of_range": int(metrics["out_of_range"]), "missing_required": int(metrics["missing"]),
           "ambiguous_copies": int(metrics["ambiguous"]), "bad_date_text": by_text}
    if typed_dates:
        # rows an engine removes as exact duplicates (counted apart from missing_required)
        out["emptied_duplicates"] = int(metrics.get("nat_duplicates", 0))
        out["missing_required"] -= out["emptied_duplicates"]
        out["emptied"] = {"ambiguous_date": ambiguous, "unparseable_date": unparseable}
        out["ambiguous_date"] = out["unparseable_date"] = 0
    return out


def _write_observed(spark, df, path: Path, fmt: str, name: str, cutoff: dt.date) -> tuple[int, dict]:
    """Write a source table with Spark; rows counted from the written files, the injected date rows
    counted while the rows are written (a Spark Observation on the write: no second pass)."""
    if name not in DATE_COLUMN:
        _write(df, path, fmt)
        return _count(spark, path, fmt), {}
    import uuid
    from pyspark.sql import Observation
    observation = Observation(f"synth_{name}_{uuid.uuid4().hex[:8]}")
    _write(df.observe(observation, *_tally_exprs(name, cutoff)), path, fmt)
    metrics = observation.get
    rows = _count(spark, path, fmt)
    if int(metrics["rows"]) != rows:  # pragma: no cover - the observation saw other rows than were written
        raise RuntimeError(f"{name}: {metrics['rows']} rows observed while writing, {rows} read back")
    return rows, injected_counts(metrics)


# -- pandas-style Parquet ---------------------------------------------------------------------------

def pandas_schema(name: str) -> pa.Schema:
    """The Arrow schema of a pandas-written table: the date column as timestamp[ns] (tz-aware
    Asia/Shanghai for params.PANDAS_TZ_TABLES), the other columns as in SCHEMAS."""
    schema = SCHEMAS[name]
    if name not in DATE_COLUMN:
        return schema
    col = DATE_COLUMN[name]
    tz = DT.TIME_ZONE if name in PR.PANDAS_TZ_TABLES else None
    i = schema.get_field_index(col)
    return schema.set(i, pa.field(col, pa.timestamp("ns", tz=tz)))


def pandas_frame(table: pa.Table, name: str, cutoff_day: int):
    """A chunk's table as the pandas DataFrame a hospital's Python export holds, and its date tally.

    The date text is read with dates.read_dates: each valid form gives its calendar date (at its
    clock time for date-times, else midnight); text that is no date (unparseable, ambiguous) has no
    place in a datetime64 column and becomes NaT. Tz-aware tables localise the local clock to
    Asia/Shanghai (a clock that does not exist in a DST change moves forward within the day).
    """
    import pandas as pd
    frame = table.to_pandas()
    if name not in DATE_COLUMN:
        return frame, {}
    col = DATE_COLUMN[name]
    text = table.column(col).combine_chunks()
    days, seconds = DT.read_dates(text)
    stamps = days.astype("datetime64[ns]") + seconds.astype("timedelta64[s]").astype("timedelta64[ns]")
    series = pd.Series(stamps, name=col)
    if name in PR.PANDAS_TZ_TABLES:
        series = series.dt.tz_localize(DT.TIME_ZONE, nonexistent="shift_forward",
                                       ambiguous=np.zeros(len(series), dtype=bool))
    frame[col] = series
    day = days.astype(np.int64)
    nat = np.isnat(days)
    early = DT.read_dates(["1900-01-01"])[0].astype(np.int64)[0]

    def count(mask) -> int:
        return int(np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False)).sum())
    tally = {"missing": int(nat.sum()), "out_of_range": int((~nat & ((day < early) | (day > cutoff_day))).sum()),
             "ambiguous": count(pc.match_substring_regex(text, DT.AMBIGUOUS_PATTERN)),
             # two copies of one row with different bad texts are alike once both dates are empty
             "nat_duplicates": int(frame.loc[nat].astype(str).duplicated().sum()) if nat.any() else 0}
    tally.update({f"bad_{i}": count(pc.equal(text, t)) for i, t in enumerate(PR.BAD_DATE_TEXT)})
    return frame, tally


_TALLY_KEYS = (("rows", "missing", "out_of_range", "ambiguous", "nat_duplicates")
               + tuple(f"bad_{i}" for i in range(len(PR.BAD_DATE_TEXT))))


def _write_pandas(spark, plan: Plan, name: str, folder: Path) -> list:
    """One Parquet file per chunk, `<table>/part-NNNNN.parquet`, written with pandas by the Spark task that
    simulates the chunk (the folder must be reachable from the executors: local mode or a shared file
    system). Each file is written under a hidden name and renamed, so a retried task leaves one file.
    Returns one row of date counts per chunk."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    target = str(folder.resolve())
    chunks = 1 if name == "hospitals" else plan.n_chunks
    schema = pandas_schema(name)
    cutoff_day = plan.cutoff_day
    out_schema = pa.schema([(k, pa.int64()) for k in ("chunk",) + _TALLY_KEYS])

    def produce(batches):
        for batch in batches:
            for chunk in batch.column(0).to_pylist():
                frame, tally = pandas_frame(chunk_table(plan, name, int(chunk)), name, cutoff_day)
                final = os.path.join(target, f"part-{int(chunk):05d}.parquet")
                tmp = os.path.join(target, f".part-{int(chunk):05d}.parquet.tmp")
                frame.to_parquet(tmp, engine="pyarrow", schema=schema)
                os.replace(tmp, final)
                row = {"chunk": int(chunk), "rows": len(frame), **{k: tally.get(k, 0) for k in _TALLY_KEYS[1:]}}
                yield pa.RecordBatch.from_pydict({k: [row[k]] for k in out_schema.names}, schema=out_schema)

    ddl = ", ".join(f"{k} long" for k in out_schema.names)
    return spark.range(0, chunks, 1, chunks).mapInArrow(produce, ddl).collect()


def _pandas_rows(folder: Path) -> int:
    """Rows of a pandas-written table, from the Parquet footers."""
    import pyarrow.parquet as pq
    return sum(pq.read_metadata(str(p)).num_rows for p in sorted(folder.glob("part-*.parquet")))


def _pandas_injected(name: str, tallies: list) -> dict:
    if name not in DATE_COLUMN:
        return {}
    return injected_counts({k: sum(int(r[k]) for r in tallies) for k in _TALLY_KEYS}, typed_dates=True)


def _date_columns(fmt: str, parquet_writer: str) -> str:
    if fmt == "parquet" and parquet_writer == "pandas":
        aware = ", ".join(PR.PANDAS_TZ_TABLES)
        return (f"timestamp[ns] (pandas datetime64[ns]): tz-aware {DT.TIME_ZONE} in {aware}; naive local "
                "date-times in the other tables; text that is no date is NaT")
    return "text: YYYY-MM-DD, or in a noisy extract the other forms of docs/generator.md"


def generate_extract(spark, out_dir, patients: int, seed: int, fmt: str = "parquet", clean: bool = False,
                     cutoff: dt.date = PR.DEFAULT_CUTOFF, progress=log.info, *, encoding: str = "utf-8",
                     parquet_writer: str = "spark", hospital_forms: bool | None = None,
                     confounded_taxane: bool = False) -> dict:
    """Write every source table of source-tables.md and the truth to `out_dir`.

    `encoding` (CSV only): `utf-8` (default) or `gb18030`. `parquet_writer` (Parquet only): `spark`
    (default: date columns as text) or `pandas` (pandas `to_parquet`, dates as datetime64[ns]).
    `hospital_forms`: printed drug names and the other date forms (docs/generator.md); default:
    in noisy extracts only. True writes a clean extract as hospitals export it.
    `confounded_taxane`: the taxane of HER2+ antibody + taxane first lines depends on covariates,
    with planted effects, and `truth/potential_outcomes` and `truth/effects` are written too.
    The truth is always Parquet written by Spark, and the same for every option.
    Returns rows written per table (source tables by name, truth tables as
    'truth/patients' and 'truth/lines'), counted from the written files.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, got {fmt!r}")
    if str(encoding).lower() not in ENCODINGS:
        raise ValueError(f"encoding must be utf-8 or gb18030, got {encoding!r}")
    encoding = ENCODINGS[str(encoding).lower()]
    if parquet_writer not in PARQUET_WRITERS:
        raise ValueError(f"parquet_writer must be spark or pandas, got {parquet_writer!r}")
    if encoding != "utf-8" and fmt != "csv":
        raise ValueError(f"encoding {encoding} applies to CSV only (format is {fmt})")
    if parquet_writer != "spark" and fmt != "parquet":
        raise ValueError(f"parquet_writer {parquet_writer} applies to Parquet only (format is {fmt})")
    plan = Plan(patients=int(patients), seed=int(seed), cutoff=cutoff, clean=bool(clean),
                hospital_forms=hospital_forms, confounded_taxane=bool(confounded_taxane))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    counts, injected = {}, {}
    if not plan.confounded_taxane:   # no truth of an earlier confounded run beside this one's
        for stale in ("potential_outcomes", "effects"):
            shutil.rmtree(out / "truth" / stale, ignore_errors=True)
    for name in SOURCE_ORDER + ("truth/patients", "truth/lines") + (CONFOUNDED_TRUTH if plan.confounded_taxane else ()):
        truth = name.startswith("truth/")
        table_fmt = "parquet" if truth else fmt
        path = out / (name if truth or fmt == "parquet" else f"{name}.csv")
        for stale in (out / name, out / f"{name}.csv", out / f"{name}.parquet"):
            if stale != path and not truth:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        if truth:
            _write(_frame(spark, plan, name), path, "parquet")
            counts[name] = _count(spark, path, "parquet")
        elif fmt == "parquet" and parquet_writer == "pandas":
            tallies = _write_pandas(spark, plan, name, path)
            counts[name] = _pandas_rows(path)
            injected[name] = _pandas_injected(name, tallies)
        else:
            counts[name], injected[name] = _write_observed(spark, _frame(spark, plan, name), path, table_fmt,
                                                           name, cutoff)
            # re-encoded losslessly after the count (Spark 4 reads no GB18030)
            if encoding != "utf-8":
                transcode(path, encoding)
        progress(ProgressLine(f"generate {name}: {counts[name]} rows", "generate", rows=counts[name]))
    manifest = {"patients": plan.patients, "seed": plan.seed, "format": fmt, "clean": plan.clean,
                "cutoff": cutoff.isoformat(), "chunks": plan.n_chunks, "chunk_size": plan.chunk_size,
                "encoding": encoding if fmt == "csv" else None,
                "parquet_writer": parquet_writer if fmt == "parquet" else None,
                "rows": counts, "date_columns": _date_columns(fmt, parquet_writer),
                "hospital_forms": plan.forms,
                # shares of the written forms and spellings present in this extract (null: none)
                "shares": None if plan.clean and not plan.forms else {
                    "printed_name": PR.NOISE["printed_name"] if plan.forms else 0.0,
                    "date_forms": dict(PR.DATE_FORMS) if plan.forms else {},
                    "name_decoration": 0.0 if plan.clean else PR.NOISE["name_decoration"],
                    "ambiguous_date": 0.0 if plan.clean else PR.NOISE["ambiguous_date"]},
                # injected rows as the written date columns show them, per table (docs/generator.md)
                "injected": {k: v for k, v in injected.items() if v}}
    if plan.confounded_taxane:
        # Imported here: lifelines is the truth's alone, and Spark's workers import this module.
        from .marginal_effects import confounding_parameters, write_effects
        counts["truth/effects"] = write_effects(out / "truth")
        progress(ProgressLine(f"generate truth/effects: {counts['truth/effects']} rows", "generate",
                              rows=counts["truth/effects"]))
        manifest["confounded_taxane"] = confounding_parameters()
    (out / "truth" / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                                 encoding="utf-8")
    return counts
