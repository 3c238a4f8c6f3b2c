"""The source tables' schemas and how their columns are written: ids, hashes, hospital ids and
dates as text, and a chunk's random stream per table.

Each table builder reads the chunk's simulation and draws its table-specific details (spellings,
units, lab values…) from its own random stream (`rng_for`), so building one table never shifts
another. Date columns are built as `YYYY-MM-DD` strings (in CSV and Parquet alike), because noisy
extracts put unparseable text in them; noise.py writes a share of them in the other forms of
dates.py, and the pandas writer turns them into timestamps.
"""
from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pyarrow as pa

from . import params as PR
from .draws import mix64
from .hospitals import hospitals
from .plan import STREAM_TABLE, TABLE_NUMBER, day
from .sim import Sim


STR = pa.string()
F64 = pa.float64()
SCHEMAS = {
    "hospitals": pa.schema([("hospital_id", STR), ("tier", STR), ("province", STR), ("hospital_type", STR)]),
    "patients": pa.schema([("patient_id", STR), ("sex", STR), ("birth_date", STR), ("id_hash", STR),
                           ("province", STR)]),
    "diagnoses": pa.schema([("patient_id", STR), ("hospital_id", STR), ("diagnosis_date", STR), ("icd10", STR),
                            ("stage", STR), ("diagnosis_text", STR)]),
    "biomarkers": pa.schema([("patient_id", STR), ("test_date", STR), ("marker", STR), ("method", STR),
                             ("result", STR)]),
    "prescriptions": pa.schema([("record_id", STR), ("patient_id", STR), ("hospital_id", STR),
                                ("admin_date", STR), ("drug_name", STR), ("drug_code", STR), ("dose", F64),
                                ("dose_unit", STR), ("route", STR)]),
    "deaths": pa.schema([("id_hash", STR), ("death_date", STR), ("cause_icd10", STR)]),
    "tumor_assessments": pa.schema([("patient_id", STR), ("assessment_date", STR), ("response", STR),
                                    ("method", STR), ("source", STR)]),
    "labs": pa.schema([("patient_id", STR), ("collect_date", STR), ("test", STR), ("value", F64), ("unit", STR),
                       ("ref_low", F64), ("ref_high", F64)]),
    "adverse_events": pa.schema([("patient_id", STR), ("onset_date", STR), ("term", STR), ("grade", pa.int32()),
                                 ("serious", pa.bool_())]),
    "visits": pa.schema([("patient_id", STR), ("visit_date", STR), ("hospital_id", STR), ("visit_type", STR)]),
    "vitals": pa.schema([("patient_id", STR), ("measure_date", STR), ("height_cm", F64), ("weight_kg", F64)]),
}
DATE_COLUMN = {"patients": "birth_date", "diagnoses": "diagnosis_date", "biomarkers": "test_date",
               "prescriptions": "admin_date", "deaths": "death_date", "tumor_assessments": "assessment_date",
               "labs": "collect_date", "adverse_events": "onset_date", "visits": "visit_date",
               "vitals": "measure_date"}

_DATE_BASE = day(dt.date(1850, 1, 1))


@functools.lru_cache(maxsize=1)
def _date_strings() -> pa.Array:
    days = np.arange(_DATE_BASE, _DATE_BASE + 300 * 366, dtype="int64")
    return pa.array(days.astype("datetime64[D]").astype(str))


def dates(days) -> pa.Array:
    return _date_strings().take(pa.array(np.asarray(days, dtype=np.int64) - _DATE_BASE))


def pick(values, idx) -> pa.Array:
    return pa.array(list(values), type=STR).take(pa.array(np.asarray(idx, dtype=np.int64)))


def rng_for(sim: Sim, table: str, sub: int = 0) -> np.random.Generator:
    return sim.plan.rng(sim.chunk, STREAM_TABLE + 10 * TABLE_NUMBER[table] + sub)


def patient_ids(plan, numbers) -> np.ndarray:
    """'P' + zero-padded 1-based number."""
    if len(numbers) == 0:
        return np.zeros(0, dtype=str)
    return np.char.add("P", np.char.zfill(np.asarray(numbers, dtype=np.int64).astype(str), plan.id_width))


def chunk_patient_ids(sim: Sim) -> pa.Array:
    return pa.array(patient_ids(sim.plan, sim.gid + 1))


def hex_hash(a: np.ndarray, b: np.ndarray) -> pa.Array:
    """32 hex characters from two 64-bit hashes."""
    raw = np.stack([a, b], axis=1).astype(">u8").view(np.uint8).reshape(len(a), 16)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((len(a), 32), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    return pa.array(out.view("S32").ravel()).cast(STR)


def id_hashes(sim: Sim) -> pa.Array:
    return hex_hash(mix64(sim.plan.seed, sim.gid, 1), mix64(sim.plan.seed, sim.gid, 2))


@functools.lru_cache(maxsize=4)
def hospital_frame(seed: int):
    h = hospitals(seed)
    ids = np.char.add("H", np.char.zfill(np.arange(1, PR.N_HOSPITALS + 1).astype(str), 4))
    return h, pa.array(ids)


def hospital_ids(seed: int, idx) -> pa.Array:
    return hospital_frame(seed)[1].take(pa.array(np.asarray(idx, dtype=np.int64)))


def arrow_table(name: str, columns: dict) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = []
    for field in schema:
        col = columns[field.name]
        if not isinstance(col, (pa.Array, pa.ChunkedArray)):
            col = pa.array(col, type=field.type, from_pandas=True)
        arrays.append(col.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def record_ids(numbers: np.ndarray) -> pa.Array:
    if len(numbers) == 0:
        return pa.array([], type=STR)
    return pa.array(np.char.add("RX", np.char.zfill(np.asarray(numbers, dtype=np.int64).astype(str), 14)))
