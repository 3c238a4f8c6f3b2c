"""Synthetic NATDSS extract with ground truth (docs/generator.md).

`generate_extract(spark, out_dir, patients, seed, fmt, clean, cutoff)` writes every
source table of shared/spec/source-tables.md and `truth/` beside them.
"""
from .generate import SOURCE_ORDER, TRUTH_SCHEMAS, generate_extract
from .params import DEFAULT_CUTOFF, DEFAULT_DEMO_PATIENTS

__all__ = ["generate_extract", "DEFAULT_CUTOFF", "DEFAULT_DEMO_PATIENTS", "SOURCE_ORDER", "TRUTH_SCHEMAS"]
