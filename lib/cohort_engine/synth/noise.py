"""Bad input injected into a chunk's clean tables (skipped with --clean).

Every kind of bad row is an extra row added beside the clean rows (a copy of a
clean row with one field spoiled), except three mutations of clean rows: null
id_hash (unlinkable patients), the spelling of drug names and units (done in
prescription_tables.py, all spellings valid: decorated and printed names), and the form in
which a share of valid dates is written (`2019/3/5`, `2019年3月5日`…: dates.py,
same calendar date). So removing the rows a correct ingest
quarantines or drops as exact duplicates gives back the clean extract, and the
truth of the clean simulation stays the truth of the noisy one; only OS of
unlinkable patients cannot see their deaths (truth/patients.linkable).

The number of rows of each kind is Binomial(clean rows, rate) with the rates of
params.NOISE. Ambiguous dates (`05/03/2019`) come from their own stream
(plan.SUB_AMBIGUOUS) and the date forms from the table's stream plan.SUB_DATE_FORMS,
so the other bad rows are the rows they were before these kinds existed.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from . import dates as DT
from . import params as PR
from .columns import DATE_COLUMN, STR, dates, id_hashes, patient_ids, record_ids, rng_for
from .drugs import GARBLED_NAMES
from .plan import STREAM_NOISE, SUB_AMBIGUOUS, SUB_DATE_FORMS, TABLE_NUMBER
from .sim import Sim

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


def content_keys(table: pa.Table, skip: str | None = None) -> np.ndarray:
    """A 64-bit hash of each row's content (all columns but `skip`): rows alike have one key."""
    if not table.num_rows:
        return np.zeros(0, dtype=np.uint64)
    frame = table.select([c for c in table.column_names if c != skip]).to_pandas()
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def bad_date_text(rng, m, keys=None) -> pa.Array:
    """m texts of params.BAD_DATE_TEXT. With `keys` (the content of each copy but its date): copies
    alike never get the same text twice (the next text is taken instead, without a draw: a row
    copied twice, or two visits of one patient to one hospital), so no two spoiled copies are exact
    duplicates of each other and each one is quarantined."""
    idx = rng.integers(0, len(PR.BAD_DATE_TEXT), m)
    if keys is not None and m:
        values, counts = np.unique(keys, return_counts=True)
        seen: dict[int, set] = {}
        for i in np.flatnonzero(np.isin(keys, values[counts > 1])):
            used = seen.setdefault(int(keys[i]), set())
            while int(idx[i]) in used and len(used) < len(PR.BAD_DATE_TEXT):
                idx[i] = (idx[i] + 1) % len(PR.BAD_DATE_TEXT)
            used.add(int(idx[i]))
    return pa.array(np.array(PR.BAD_DATE_TEXT, dtype=object)[idx], type=STR)


def out_of_range_dates(rng, m, cutoff_day) -> pa.Array:
    early = rng.random(m) < 0.5
    before_1900 = -25567 + rng.integers(-18262, 0, m)        # 1850-01-01 .. 1899-12-31
    after_cutoff = cutoff_day + rng.integers(1, 3651, m)
    return dates(np.where(early, before_1900, after_cutoff))


def _ambiguous_rows(rng, iso: pa.Array, n: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """Binomial(n, rate) distinct rows whose date has two different day-first/month-first readings,
    none of `exclude`, and which of them are written day-first. Rows are drawn uniformly among all
    rows in rounds of 4k + 16, keeping new ones that qualify (about a third do) until k are found;
    only the drawn rows are looked at, so the cost does not grow with the table. Distinct rows, and
    none copied with an unparseable date: no two copies are alike, even once a typed (pandas) date
    column has emptied both."""
    k = rng.binomial(n, PR.NOISE["ambiguous_date"]) if n else 0
    taken = np.zeros(0, dtype=np.int64) if exclude is None else np.unique(np.asarray(exclude, dtype=np.int64))
    found: list[np.ndarray] = []
    have = 0
    for _ in range(50):
        if have >= k:
            break
        draw = rng.integers(0, n, 4 * k + 16)
        first = np.sort(np.unique(draw, return_index=True)[1])       # first occurrence, in draw order
        draw = draw[first]
        draw = draw[DT.is_ambiguous_candidate(iso, draw) & ~np.isin(draw, taken)][:k - have]
        found.append(draw)
        taken = np.union1d(taken, draw)
        have += len(draw)
    rows = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
    return rows.astype(np.int64), rng.random(len(rows)) < 0.5


def ambiguous_copies(table: pa.Table, iso: pa.Array, date_col: str, rng, exclude=None) -> tuple[pa.Table, np.ndarray]:
    """Copies of distinct rows with their date written ambiguously; a copy alike an earlier one (two
    rows alike but for a date, 2019-03-05 day-first and 2019-05-03 month-first) is left out."""
    rows, day_first = _ambiguous_rows(rng, iso, table.num_rows, exclude)
    t = table.take(pa.array(rows, type=pa.int64()))
    t = _set(t, date_col, DT.ambiguous_dates(iso.take(pa.array(rows, type=pa.int64())), day_first))
    first = np.sort(np.unique(content_keys(t), return_index=True)[1])
    if len(first) < t.num_rows:
        t, rows = t.take(pa.array(first, type=pa.int64())), rows[first]
    return t, rows


def write_date_forms(name: str, table: pa.Table, sim: Sim) -> pa.Table:
    """A share of the table's valid dates written in another form (params.DATE_FORMS)."""
    col = DATE_COLUMN[name]
    rng = rng_for(sim, name, SUB_DATE_FORMS)
    return _set(table, col, DT.write_forms(table.column(col), rng, PR.DATE_FORMS,
                                           midnight=col in DT.MIDNIGHT_COLUMNS))


def add_noise(name: str, table: pa.Table, sim: Sim) -> pa.Table:
    if sim.plan.clean:
        return write_date_forms(name, table, sim) if sim.plan.forms else table
    plan = sim.plan
    rng = plan.rng(sim.chunk, STREAM_NOISE + 10 * TABLE_NUMBER[name])
    rng_ambiguous = plan.rng(sim.chunk, STREAM_NOISE + 10 * TABLE_NUMBER[name] + SUB_AMBIGUOUS)
    n = table.num_rows
    date_col = DATE_COLUMN[name]
    iso = table.column(date_col).combine_chunks()     # the clean ISO dates, before their written forms
    table = write_date_forms(name, table, sim) if plan.forms else table
    extra: list[pa.Table] = []   # spoiled copies (new record ids for prescriptions)
    dups: list[pa.Table] = []    # exact copies

    if name == "patients":
        # the first draw of this stream: truth.py reads the same mask (unlinkable_mask)
        table = _set(table, "id_hash", pc.if_else(pa.array(rng.random(n) < PR.NOISE["unlinkable"]),
                                                  pa.nulls(n, STR), table.column("id_hash")))
        # registrations of other people with a birth date that cannot be used (new patient ids)
        used = []
        for kind, spoil in (("unparseable_date", lambda m: bad_date_text(rng, m)),
                            ("date_out_of_range", lambda m: out_of_range_dates(rng, m, plan.cutoff_day))):
            rows = np.unique(_rows(rng, n, PR.NOISE[kind]))
            used.append(rows)
            t = table.take(pa.array(rows))
            t = _set(t, "patient_id", patient_ids(plan, plan.patients + sim.gid[rows] + 1))
            extra.append(_set(t, date_col, spoil(len(rows))))
        dups.append(table.take(pa.array(_rows(rng, n, PR.NOISE["duplicate_patient_row"]))))
        # people with an ambiguous birth date: new ids N + 1 … like the other unusable birth dates,
        # never one of theirs (rows already used are excluded, and each row is used once)
        t, rows = ambiguous_copies(table, iso, date_col, rng_ambiguous, exclude=np.concatenate(used))
        extra.append(_set(t, "patient_id", patient_ids(plan, plan.patients + sim.gid[rows] + 1)))
        return pa.concat_tables([table] + extra + dups)

    if name == "deaths":
        rows = _rows(rng, n, PR.NOISE["duplicate_death"])
        t = table.take(pa.array(rows))
        registered = np.array(iso.take(pa.array(rows)).to_pylist(), dtype="datetime64[D]").astype(np.int64)
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
    unparseable = _rows(rng, n, PR.NOISE["unparseable_date"])
    t = table.take(pa.array(unparseable))
    extra.append(_set(t, date_col, bad_date_text(rng, len(unparseable), content_keys(t, skip=date_col))))
    rows = _rows(rng, n, PR.NOISE["date_out_of_range"])
    extra.append(_set(table.take(pa.array(rows)), date_col, out_of_range_dates(rng, len(rows), plan.cutoff_day)))
    # the date written day-first or month-first, both readings valid (quarantined: ambiguous_date);
    # in the list of spoiled copies after the others, so their record numbers stay as they were
    ambiguous = ambiguous_copies(table, iso, date_col, rng_ambiguous, exclude=unparseable)[0]

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
        extra.append(ambiguous)
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
    if name != "prescriptions":
        extra.append(ambiguous)
    return pa.concat_tables([table] + extra + dups)


def unlinkable_mask(sim: Sim) -> np.ndarray:
    """Patients whose id_hash the noisy extract leaves empty (the first draw of the patients noise)."""
    if sim.plan.clean:
        return np.zeros(sim.n, dtype=bool)
    rng = sim.plan.rng(sim.chunk, STREAM_NOISE + 10 * TABLE_NUMBER["patients"])
    return rng.random(sim.n) < PR.NOISE["unlinkable"]
