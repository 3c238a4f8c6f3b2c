"""The shape of one generation run: sizes, chunks, seeds, day numbers.

A run is cut into chunks of patients whose size depends only on the number of
patients, and every random draw of a chunk comes from a generator seeded by
(seed, chunk, stream). So the same seed and size give the same content however
Spark schedules the chunks, and every table can re-simulate a chunk on its own.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

EPOCH = dt.date(1970, 1, 1)
NONE_DAY = np.iinfo(np.int32).max // 2   # "no such date" (compares after every real day)

# RNG streams of a chunk (stable numbers: changing one changes that part of the output only).
STREAM_CORE = 1
STREAM_CONFOUNDING = 3  # the confounded taxane choice (only drawn under its switch)
STREAM_TABLE = 1000    # + 10 × table number + sub-stream: table-specific draws of clean rows
STREAM_NOISE = 2000    # + 10 × table number: injected bad rows
# Sub-streams added for the written forms of a noisy extract (new streams, so every earlier draw,
# and so every earlier row, stays what it was):
SUB_DATE_FORMS = 7     # STREAM_TABLE + 10 × table + 7: which valid dates are written in another form
SUB_PRINTED_NAMES = 8  # STREAM_TABLE + 10 × table + 8: which prescription names are printed names
SUB_AMBIGUOUS = 1      # STREAM_NOISE + 10 × table + 1: copies with an ambiguous date
TABLE_NUMBER = {"patients": 1, "diagnoses": 2, "biomarkers": 3, "prescriptions": 4, "deaths": 5,
                "tumor_assessments": 6, "labs": 7, "adverse_events": 8, "visits": 9, "vitals": 10,
                "truth_patients": 11, "truth_lines": 12, "hospitals": 13}


def day(d: dt.date) -> int:
    return (d - EPOCH).days


def chunk_size_for(patients: int) -> int:
    """Patients per chunk: at least 2 chunks from 2,000 patients, at most 10,000 patients each."""
    return int(min(10_000, max(1_000, -(-patients // 8))))


@dataclasses.dataclass(frozen=True)
class Plan:
    patients: int
    seed: int
    cutoff: dt.date
    clean: bool = False
    # Valid values written as hospital systems export them (printed drug names, date forms):
    # None = with the noise (noisy extracts have them, clean ones not); True/False forces it,
    # so a clean extract can be written as hospitals export it and compared with the plain one.
    hospital_forms: bool | None = None
    # The taxane of HER2+ antibody + taxane first lines depends on covariates, with planted effects
    # and their potential outcomes (confounding.py); off, nothing of it is drawn.
    confounded_taxane: bool = False

    @property
    def forms(self) -> bool:
        return (not self.clean) if self.hospital_forms is None else bool(self.hospital_forms)

    def __post_init__(self):
        if self.patients < 1:
            raise ValueError(f"patients must be at least 1, got {self.patients}")
        if self.seed < 0:
            raise ValueError(f"seed must not be negative, got {self.seed}")

    @property
    def chunk_size(self) -> int:
        return chunk_size_for(self.patients)

    @property
    def n_chunks(self) -> int:
        return -(-self.patients // self.chunk_size)

    def bounds(self, chunk: int) -> tuple[int, int]:
        lo = chunk * self.chunk_size
        return lo, min(self.patients, lo + self.chunk_size)

    @property
    def id_width(self) -> int:
        # Noise uses numbers up to 3N for patients absent from the clean extract.
        return max(7, len(str(3 * self.patients + 1)))

    @property
    def cutoff_day(self) -> int:
        return day(self.cutoff)

    def rng(self, chunk: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, chunk, stream])
