"""Shared fixtures: one local SparkSession for the whole run (pytest-spark)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Python workers must run this interpreter, or they miss the engine's packages.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def spark(spark_session):
    spark_session.sparkContext.setLogLevel("ERROR")
    return spark_session


@pytest.fixture
def lake(spark, tmp_path):
    from cohort_engine.lake import Lake
    return Lake(tmp_path / "lake", spark, environ={})


@pytest.fixture(scope="session")
def seed_study():
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    return load_study(default_study_path())


@pytest.fixture(scope="module")
def vocab():
    """The shipped drug vocabulary."""
    from cohort_engine.vocabulary import load_vocabulary
    return load_vocabulary(REPO / "conf" / "vocabulary" / "drugs.csv")


@pytest.fixture(scope="module")
def matcher(vocab):
    from cohort_engine.name_matcher import NameMatcher
    return NameMatcher(vocab)
