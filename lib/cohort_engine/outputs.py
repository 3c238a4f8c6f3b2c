"""The one way out of the secure environment: every table under <out> goes through here.

Exact numbers stay in the lake; what is written under <out> passes disclosure
control (study rules §9) with the study's `min_cell`, and the study's own dates
(cut-off, study period) are the only dates allowed in it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .config import StudyConfig
from .disclosure import audit_output_dir, safe_frame, write_csv


def study_dates(study: StudyConfig) -> list:
    return [study.data_cutoff, study.study_period.start, study.study_end]


def write_table(df: pd.DataFrame, path: Path, study: StudyConfig, count_columns=(), **options) -> Path:
    return write_csv(df, path, count_columns, min_cell=study.disclosure.min_cell,
                     allowed_dates=study_dates(study), **options)


def shown(df: pd.DataFrame, study: StudyConfig, count_columns=(), **options) -> pd.DataFrame:
    """A table fit for the report (the same rules as the CSVs)."""
    return safe_frame(df, count_columns, min_cell=study.disclosure.min_cell,
                      allowed_dates=study_dates(study), **options)


def audit(out: Path, study: StudyConfig, run_dates=()) -> list:
    """Findings under <out>; `run_dates` (the run's own timestamps, as in the manifest) are allowed."""
    return audit_output_dir(out, min_cell=study.disclosure.min_cell,
                            allowed_dates=study_dates(study) + list(run_dates))
