"""The generation job: every source table and the truth, written by Spark.

Each table is a `spark.range(chunks)` whose partitions each hold one chunk number;
`mapInArrow` re-simulates the chunk (numpy, vectorised) and yields that table's
rows, which Spark writes. No row ever reaches the driver; counts are read back
from what was written.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa

from . import params as PR
from . import truth as TR
from .noise import add_noise, unlinkable_mask
from .plan import NONE_DAY, Plan
from .sim import simulate
from .tables import (BUILDERS, SCHEMAS, STR, build_hospitals, build_prescriptions, chunk_patient_ids,
                     hospital_ids, pick)

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
}


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
    from .sim import hospitals as _hosp
    h = _hosp(sim.plan.seed)
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


def chunk_table(plan: Plan, name: str, chunk: int) -> pa.Table:
    """One table's rows for one chunk (source tables with noise unless plan.clean; truth tables)."""
    if name == "hospitals":
        return build_hospitals(plan.seed) if chunk == 0 else build_hospitals(plan.seed).slice(0, 0)
    sim = simulate(plan, chunk)
    if name == "truth/patients":
        return truth_patients_table(sim)
    if name == "truth/lines":
        return truth_lines_table(sim)
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


def _count(spark, path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return spark.read.parquet(str(path)).count()
    return spark.read.option("header", True).option("multiLine", False).csv(str(path)).count()


def generate_extract(spark, out_dir, patients: int, seed: int, fmt: str = "parquet", clean: bool = False,
                     cutoff: dt.date = PR.DEFAULT_CUTOFF, progress=log.info) -> dict:
    """Write every source table of source-tables.md and the truth to `out_dir`.

    Returns rows written per table (source tables by name, truth tables as
    'truth/patients' and 'truth/lines'), counted from the written files.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, got {fmt!r}")
    plan = Plan(patients=int(patients), seed=int(seed), cutoff=cutoff, clean=bool(clean))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "truth").mkdir(exist_ok=True)
    counts = {}
    for name in SOURCE_ORDER + ("truth/patients", "truth/lines"):
        truth = name.startswith("truth/")
        table_fmt = "parquet" if truth else fmt
        path = out / (name if truth or fmt == "parquet" else f"{name}.csv")
        for stale in (out / name, out / f"{name}.csv", out / f"{name}.parquet"):
            if stale != path and not truth:
                shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        _write(_frame(spark, plan, name), path, table_fmt)
        counts[name] = _count(spark, path, table_fmt)
        progress(f"generate {name}: {counts[name]} rows")
    manifest = {"patients": plan.patients, "seed": plan.seed, "format": fmt, "clean": plan.clean,
                "cutoff": cutoff.isoformat(), "chunks": plan.n_chunks, "chunk_size": plan.chunk_size,
                "rows": counts, "date_columns": "ISO text (YYYY-MM-DD) in every format"}
    (out / "truth" / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                                 encoding="utf-8")
    return counts
