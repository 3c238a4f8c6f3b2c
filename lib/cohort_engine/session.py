"""Spark session: one builder for a laptop, a standalone cluster and Databricks.

Settings come from a profile (`spark/<profile>.yaml` of the configuration shipped
in the package, or of `COHORT_ENGINE_CONF_DIR`; or a profile file), then from the
environment (`COHORT_ENGINE_SPARK_CONF="k=v;k=v"`, `COHORT_ENGINE_SPARK_MASTER`),
then from explicit options, the later winning. A value `auto` (the `local` profile's
heap and shuffle partitions) is sized for the machine and the extract (`spark_sizing`)
after that layering, so a value written anywhere wins over the automatic one.
"""
from __future__ import annotations

import logging
import os
import sys
import typing
from pathlib import Path

import yaml

from .conf_folder import conf_dir
from .errors import ConfigError
from .spark_sizing import Machine, size_auto_settings, this_machine, wants_sizing

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# HotSpot leaves a method of more than 8,000 bytes of bytecode to its interpreter
# (DontCompileHugeMethods). Spark's whole-stage code for ingest's typing and row checks
# is that large, and ran there: a date column's typing took 6.5 s instead of 1.0 s on
# 3 M rows; ingest of 50,000 patients' extract 190.7 s instead of 170.8 s, with no
# result changed (compilation changes speed only). Spark's configuration guide
# (spark.sql.codegen.hugeMethodLimit) names the JVM limit.
JIT_COMPILE_HUGE_METHODS = "-XX:-DontCompileHugeMethods"
# Under a session the engine starts, whatever a profile omits: Spark's console bars would
# mix into the engine's own progress lines (progress_display.py); the JIT option above, for
# the driver (which runs the tasks in local mode) and for the executors of a cluster. A
# profile that sets its own Java options replaces these and should repeat the option.
SESSION_DEFAULTS = {"spark.ui.showConsoleProgress": "false",
                    "spark.driver.extraJavaOptions": JIT_COMPILE_HUGE_METHODS,
                    "spark.executor.extraJavaOptions": JIT_COMPILE_HUGE_METHODS}


def profile_path(name: str, environ: typing.Mapping[str, str] | None = None) -> Path:
    """The file of a Spark profile: `spark/<name>.yaml` of the configuration folder
    (the one shipped in the package, or `COHORT_ENGINE_CONF_DIR`); a name ending in
    `.yaml`/`.yml` is a user's own profile file, used as given."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    return conf_dir(environ) / "spark" / f"{name}.yaml"


def load_profile(name: str, environ: typing.Mapping[str, str] | None = None) -> dict:
    path = profile_path(name, environ)
    if not path.is_file():
        if name.endswith((".yaml", ".yml")):
            raise ConfigError(f"Spark profile file {path} not found")
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"Spark profile {name!r} not found in {path.parent} (known: {', '.join(known)})")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    conf = {str(k): str(v) for k, v in (data.get("conf") or {}).items()}
    return {"master": data.get("master"), "conf": conf}


def parse_conf_pairs(pairs: typing.Iterable[str], origin: str) -> dict[str, str]:
    conf = {}
    for pair in pairs:
        pair = pair.strip()
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{origin}: expected key=value, got {pair!r}")
        conf[key.strip()] = value.strip()
    return conf


def resolve_settings(profile: str = "local", master: str | None = None,
                     overrides: typing.Mapping[str, str] | None = None,
                     environ: typing.Mapping[str, str] | None = None,
                     extract_bytes: int | None = None, machine: Machine | None = None) -> dict:
    """The master and Spark conf a session would get, without starting one.

    `auto` values are sized from `machine` (default: this one) and `extract_bytes`, the
    size on disk of the input the run reads (None: unknown, the fewest partitions).
    """
    environ = os.environ if environ is None else environ
    settings = load_profile(profile, environ)
    conf = dict(settings["conf"])
    env_conf = environ.get("COHORT_ENGINE_SPARK_CONF", "")
    conf.update(parse_conf_pairs(env_conf.split(";"), "COHORT_ENGINE_SPARK_CONF"))
    conf.update(overrides or {})
    chosen_master = master or environ.get("COHORT_ENGINE_SPARK_MASTER")
    if not chosen_master and not launched_by_spark_submit(environ):
        chosen_master = settings["master"]  # spark-submit's own --master must win over a profile
    if wants_sizing(conf):
        conf = size_auto_settings(conf, chosen_master, machine or this_machine(), extract_bytes,
                                  owns_jvm=not jvm_started_elsewhere(environ))
    if delta_packages_requested(conf, environ):
        conf.setdefault("spark.sql.extensions", DELTA_EXTENSION)
        conf.setdefault("spark.sql.catalog.spark_catalog", DELTA_CATALOG)
    return {"master": chosen_master, "conf": conf}


def launched_by_spark_submit(environ: typing.Mapping[str, str]) -> bool:
    """spark-submit starts the JVM first and hands the Python driver its gateway port."""
    return "PYSPARK_GATEWAY_PORT" in environ


def jvm_started_elsewhere(environ: typing.Mapping[str, str]) -> bool:
    """spark-submit and Databricks start the driver's JVM, with the heap they were given."""
    return launched_by_spark_submit(environ) or "DATABRICKS_RUNTIME_VERSION" in environ


def session_conf(settings: typing.Mapping, python: str) -> dict[str, str]:
    """The conf a new session is built with: the engine's defaults, the Python of its
    workers, then the resolved settings (which win)."""
    return {**SESSION_DEFAULTS, "spark.pyspark.python": python, **settings["conf"]}


def delta_packages_requested(conf: typing.Mapping[str, str], environ: typing.Mapping[str, str]) -> bool:
    """Whether the Delta jars will be on the classpath of a session started with this conf."""
    wanted = " ".join([conf.get("spark.jars.packages", ""), conf.get("spark.jars", ""),
                       environ.get("PYSPARK_SUBMIT_ARGS", "")])
    return "delta-spark" in wanted or "delta-core" in wanted


def build_session(profile: str = "local", master: str | None = None,
                  overrides: typing.Mapping[str, str] | None = None,
                  environ: typing.Mapping[str, str] | None = None,
                  app_name: str = "cohort-engine", extract_bytes: int | None = None):
    """Start (or join) the SparkSession for a run.

    Python workers must run the driver's interpreter, or they miss the engine's
    packages: PYSPARK_PYTHON is set to it unless the caller chose another.
    """
    from pyspark.sql import SparkSession

    environ = os.environ if environ is None else environ
    settings = resolve_settings(profile, master, overrides, environ, extract_bytes)
    python = environ.get("PYSPARK_PYTHON") or sys.executable
    os.environ.setdefault("PYSPARK_PYTHON", python)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    active = SparkSession.getActiveSession()
    if active is not None:
        # Databricks, spark-submit drivers and test runs already own a session:
        # keep it, apply only the settings that may change at runtime.
        for key, value in settings["conf"].items():
            try:
                if active.conf.get(key, None) != value:
                    active.conf.set(key, value)
            except Exception:  # static settings cannot change on a live session
                log.debug("kept the running session's value of %s", key)
        return active

    builder = SparkSession.builder.appName(app_name)
    if settings["master"]:
        builder = builder.master(settings["master"])
    for key, value in session_conf(settings, python).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(environ.get("COHORT_ENGINE_SPARK_LOG_LEVEL", "WARN"))
    return spark


def delta_jars_available(spark) -> bool:
    """True when delta-spark's classes are on the driver's classpath."""
    try:
        jvm = spark.sparkContext._jvm
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(DELTA_EXTENSION, False, loader)
        return True
    except Exception:
        return False


def native_delta_enabled(spark, environ: typing.Mapping[str, str] | None = None) -> bool:
    """Use delta-spark for lake I/O when its jars are present and its extension is on.

    `COHORT_ENGINE_DELTA_WRITER=offline|native` forces a path (for tests and for
    platforms whose detection misleads).
    """
    environ = os.environ if environ is None else environ
    forced = environ.get("COHORT_ENGINE_DELTA_WRITER", "auto")
    if forced not in ("auto", "offline", "native"):
        raise ConfigError(f"COHORT_ENGINE_DELTA_WRITER must be auto, offline or native, got {forced!r}")
    if forced == "offline":
        return False
    available = delta_jars_available(spark)
    if forced == "native" and not available:
        raise ConfigError("COHORT_ENGINE_DELTA_WRITER=native but the Delta jars are not on the classpath "
                          "(submit with --packages io.delta:delta-spark_2.13:<version>)")
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return available and DELTA_EXTENSION in extensions
