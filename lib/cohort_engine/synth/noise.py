"""Bad input injected into a chunk's clean tables (skipped with --clean).

Every kind of bad row is an extra row added beside the clean rows (a copy of a
clean row with one field spoiled), except two mutations of clean rows: null
id_hash (unlinkable patients) and the spelling of drug names and units (done in
tables.py, all spellings valid). So removing the rows a correct ingest
quarantines or drops as exact duplicates gives back the clean extract, and the
truth of the clean simulation stays the truth of the noisy one; only OS of
unlinkable patients cannot see their deaths (truth/patients.linkable).

The number of rows of each kind is Binomial(clean rows, rate) with the rates of
params.NOISE.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import params as PR
from .drugs import GARBLED_NAMES
from .plan import STREAM_NOISE, TABLE_NUMBER
from .sim import Sim
from .tables import DATE_COLUMN, STR, dates, id_hashes, patient_ids, record_ids

PATIENT_TABLES = ("diagnoses", "biomarkers", "prescriptions", "tumor_assessments", "labs", "adverse_events",
                  "visits", "vitals")


def _rows(rng, n, rate):
    k = rng.binomial(n, rate) if n else 0
    return rng.integers(0, n, k) if k else np.zeros(0, dtype=np.int64)


def _set(table: pa.Table, column: str, values) -> pa.Table:
    i = table.schema.get_field_index(column)
    field = table.schema.field(i)
    arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=field.type,
                                                                                   from_pandas=True)
    return table.set_column(i, field, arr.cast(field.type))


def bad_date_text(rng, m) -> pa.Array:
    return pa.array(np.array(PR.BAD_DATE_TEXT, dtype=object)[rng.integers(0, len(PR.BAD_DATE_TEXT), m)], type=STR)


def out_of_range_dates(rng, m, cutoff_day) -> pa.Array:
    early = rng.random(m) < 0.5
    before_1900 = -25567 + rng.integers(-18262, 0, m)        # 1850-01-01 .. 1899-12-31
    after_cutoff = cutoff_day + rng.integers(1, 3651, m)
    return dates(np.where(early, before_1900, after_cutoff))


def add_noise(name: str, table: pa.Table, sim: Sim) -> pa.Table:
    if sim.plan.clean:
        return table
    plan = sim.plan
    rng = plan.rng(sim.chunk, STREAM_NOISE + 10 * TABLE_NUMBER[name])
    n = table.num_rows
    date_col = DATE_COLUMN[name]
    extra: list[pa.Table] = []   # spoiled copies (new record ids for prescriptions)
    dups: list[pa.Table] = []    # exact copies

    if name == "patients":
        # the first draw of this stream: truth.py reads the same mask (unlinkable_mask)
        table = _set(table, "id_hash", pc.if_else(pa.array(rng.random(n) < PR.NOISE["unlinkable"]),
                                                  pa.nulls(n, STR), table.column("id_hash")))
        # registrations of other people with a birth date that cannot be used (new patient ids)
        for kind, spoil in (("unparseable_date", lambda m: bad_date_text(rng, m)),
                            ("date_out_of_range", lambda m: out_of_range_dates(rng, m, plan.cutoff_day))):
            rows = np.unique(_rows(rng, n, PR.NOISE[kind]))
            t = table.take(pa.array(rows))
            t = _set(t, "patient_id", patient_ids(plan, plan.patients + sim.gid[rows] + 1))
            extra.append(_set(t, date_col, spoil(len(rows))))
        dups.append(table.take(pa.array(_rows(rng, n, PR.NOISE["duplicate_patient_row"]))))
        return pa.concat_tables([table] + extra + dups)

    if name == "deaths":
        rows = _rows(rng, n, PR.NOISE["duplicate_death"])
        t = table.take(pa.array(rows))
        registered = np.array(t.column("death_date").to_pylist(), dtype="datetime64[D]").astype(np.int64)
        later = dates(registered + rng.integers(1, 91, len(rows)))
        extra.append(_set(t, "death_date", later))
        # registrations dated before the person's birth
        m = rng.binomial(sim.n, PR.NOISE["death_before_birth"])
        who = rng.integers(0, sim.n, m)
        before = sim.birth[who] - rng.integers(1, 3651, m)
        extra.append(pa.table({"id_hash": id_hashes(sim).take(pa.array(who)), "death_date": dates(before),
                               "cause_icd10": pa.array(["R99"] * m, type=STR)}, schema=table.schema))
    else:
        if name in PATIENT_TABLES:
            rows = _rows(rng, n, PR.NOISE["orphan_patient_id"])
            t = table.take(pa.array(rows))
            orphan = 2 * plan.patients + sim.gid[0] + np.arange(len(rows)) + 1
            extra.append(_set(t, "patient_id", patient_ids(plan, orphan)))
            rate = PR.NOISE["exact_duplicate"] if name == "prescriptions" else PR.NOISE["exact_duplicate_other"]
            dups.append(table.take(pa.array(_rows(rng, n, rate))))
    rows = _rows(rng, n, PR.NOISE["unparseable_date"])
    extra.append(_set(table.take(pa.array(rows)), date_col, bad_date_text(rng, len(rows))))
    rows = _rows(rng, n, PR.NOISE["date_out_of_range"])
    extra.append(_set(table.take(pa.array(rows)), date_col, out_of_range_dates(rng, len(rows), plan.cutoff_day)))

    if name == "prescriptions":
        rows = _rows(rng, n, PR.NOISE["non_positive_dose"])
        dose = np.where(rng.random(len(rows)) < 0.5, 0.0, -np.round(rng.uniform(1, 500, len(rows))))
        extra.append(_set(table.take(pa.array(rows)), "dose", dose))
        rows = _rows(rng, n, PR.NOISE["unknown_unit"])
        extra.append(_set(table.take(pa.array(rows)), "dose_unit",
                          np.array(PR.UNKNOWN_UNITS, dtype=object)[rng.integers(0, len(PR.UNKNOWN_UNITS), len(rows))]))
        rows = _rows(rng, n, PR.NOISE["unmatched_drug_name"])
        t = _set(table.take(pa.array(rows)), "drug_name",
                 np.array(GARBLED_NAMES, dtype=object)[rng.integers(0, len(GARBLED_NAMES), len(rows))])
        extra.append(_set(t, "drug_code", pa.nulls(len(rows), STR)))
        spoiled = pa.concat_tables(extra)
        numbers = sim.chunk * 10 ** 9 + n + np.arange(spoiled.num_rows, dtype=np.int64)
        extra = [_set(spoiled, "record_id", record_ids(numbers))]
        # the same record_id again with another dose (a corrected record sent twice): same day, same
        # drug, so whichever copy an ingest keeps, the lines do not change
        rows = _rows(rng, n, PR.NOISE["conflicting_record_id"])
        t = table.take(pa.array(rows))
        old_dose = np.asarray(t.column("dose").to_numpy(zero_copy_only=False), dtype=float)
        extra.append(_set(t, "dose", np.where(np.isnan(old_dose), 100.0, old_dose + 10.0)))

    if name == "biomarkers":
        her2 = np.flatnonzero(~np.isin(np.asarray(table.column("marker").to_numpy(zero_copy_only=False),
                                                  dtype=object), ["ER", "PR"]))
        rows = her2[_rows(rng, len(her2), PR.NOISE["unreadable_her2"])]
        extra.append(_set(table.take(pa.array(rows)), "result",
                          np.array(PR.UNREADABLE_HER2, dtype=object)[rng.integers(0, len(PR.UNREADABLE_HER2),
                                                                                   len(rows))]))
    return pa.concat_tables([table] + extra + dups)


def unlinkable_mask(sim: Sim) -> np.ndarray:
    """Patients whose id_hash the noisy extract leaves empty (the first draw of the patients noise)."""
    if sim.plan.clean:
        return np.zeros(sim.n, dtype=bool)
    rng = sim.plan.rng(sim.chunk, STREAM_NOISE + 10 * TABLE_NUMBER["patients"])
    return rng.random(sim.n) < PR.NOISE["unlinkable"]
