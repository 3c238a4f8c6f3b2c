"""The default profile sizes itself: the driver heap from the machine, the shuffle partitions
from the extract and the cores; values written anywhere win; Spark's console bars are off."""
from __future__ import annotations

import pytest

from cohort_engine.errors import ConfigError
from cohort_engine.session import resolve_settings, session_conf
from cohort_engine.spark_sizing import (Machine, driver_heap_bytes, folder_bytes, heap_setting, local_cores,
                                        shuffle_partitions, this_machine)

GIB = 1024 ** 3
THIS_VM = 24_683_652 * 1024  # MemTotal of the 2-core, 24 GB machine the million-patient runs were measured on


@pytest.mark.parametrize("memory, heap", [
    (24 * GIB, "8g"),          # a third: 8 GiB exactly
    (THIS_VM, "7936m"),        # 8,425,353,216 bytes a third: 31 steps of 256 MiB
    (8 * GIB, "2560m"),        # 2.67 GiB: 10 steps of 256 MiB
    (2 * GIB, "1g"),           # 512 MiB a third: Spark's own 1 GiB default is the least
    (256 * GIB, "31g"),        # 85 GiB a third: below 32 GiB, where the JVM's pointers double
])
def test_the_driver_heap_is_a_third_of_the_machine(memory, heap):
    assert heap_setting(driver_heap_bytes(memory)) == heap


@pytest.mark.parametrize("extract_bytes, cores, partitions", [
    (878_000_000, 2, 54),      # the million-patient extract: 52.3 → 53 partitions of 16 MiB, even for 2 cores
    (40_000_000, 2, 4),        # the demo's 40,000 patients: 3 of 16 MiB, but at least 2 per core
    (None, 8, 16),             # nothing to size by: 2 per core
    (1 * GIB, 6, 66),          # 64 of 16 MiB, in 11 waves of 6 tasks
    (878_000_000, 1, 53),
])
def test_shuffle_partitions_follow_the_extract_and_the_cores(extract_bytes, cores, partitions):
    assert shuffle_partitions(extract_bytes, cores) == partitions


@pytest.mark.parametrize("master, cores", [
    ("local", 1), ("local[3]", 3), ("local[4,2]", 4), ("local[*]", 8), ("spark://h:7077", 8), (None, 8)])
def test_the_task_slots_of_a_master(master, cores):
    assert local_cores(master, 8) == cores


MACHINE = Machine(memory_bytes=24 * GIB, cores=2)


def test_the_default_profile_sizes_heap_and_partitions():
    s = resolve_settings("local", environ={}, extract_bytes=878_000_000, machine=MACHINE)
    assert (s["conf"]["spark.driver.memory"], s["conf"]["spark.sql.shuffle.partitions"]) == ("8g", "54")
    # local[1]: one task at a time, no rounding to waves.
    s = resolve_settings("local", master="local[1]", environ={}, extract_bytes=878_000_000, machine=MACHINE)
    assert s["conf"]["spark.sql.shuffle.partitions"] == "53"
    # Without an extract: the fewest partitions the cores want.
    assert resolve_settings("local", environ={}, machine=MACHINE)["conf"]["spark.sql.shuffle.partitions"] == "4"


def test_values_written_anywhere_win_over_the_automatic_ones(tmp_path):
    env = {"COHORT_ENGINE_SPARK_CONF": "spark.sql.shuffle.partitions=12"}
    s = resolve_settings("local", overrides={"spark.driver.memory": "6g"}, environ=env, extract_bytes=878_000_000,
                         machine=MACHINE)
    assert (s["conf"]["spark.driver.memory"], s["conf"]["spark.sql.shuffle.partitions"]) == ("6g", "12")
    # `auto` asked on the command line of a fixed profile sizes it too.
    s = resolve_settings("local-large", overrides={"spark.sql.shuffle.partitions": "auto"}, environ={},
                         extract_bytes=878_000_000, machine=MACHINE)
    assert (s["conf"]["spark.driver.memory"], s["conf"]["spark.sql.shuffle.partitions"]) == ("10g", "54")
    profile = tmp_path / "mine.yaml"
    profile.write_text("master: local[2]\nconf:\n  spark.executor.memory: auto\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^Spark setting spark\.executor\.memory: 'auto' sizes only "
                                          r"spark\.driver\.memory and spark\.sql\.shuffle\.partitions$"):
        resolve_settings(str(profile), environ={}, machine=MACHINE)


@pytest.mark.parametrize("environ", [{"PYSPARK_GATEWAY_PORT": "40000"}, {"DATABRICKS_RUNTIME_VERSION": "15.4"}])
def test_a_jvm_started_by_its_launcher_keeps_its_heap(environ):
    s = resolve_settings("local", environ=environ, extract_bytes=878_000_000, machine=MACHINE)
    assert "spark.driver.memory" not in s["conf"]
    assert s["conf"]["spark.sql.shuffle.partitions"] == "54"  # a runtime setting: still the engine's


@pytest.mark.parametrize("profile", ["local", "local-large", "standalone", "databricks"])
def test_every_shipped_profile_turns_sparks_console_progress_off(profile):
    s = resolve_settings(profile, environ={}, machine=MACHINE)
    assert s["conf"]["spark.ui.showConsoleProgress"] == "false"


def test_a_profile_that_omits_console_progress_gets_it_off():
    built = session_conf({"conf": {"spark.sql.shuffle.partitions": "3"}}, "/usr/bin/python3")
    assert built == {"spark.ui.showConsoleProgress": "false", "spark.pyspark.python": "/usr/bin/python3",
                     "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
                     "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
                     "spark.sql.shuffle.partitions": "3"}
    kept = session_conf({"conf": {"spark.ui.showConsoleProgress": "true"}}, "/usr/bin/python3")
    assert kept["spark.ui.showConsoleProgress"] == "true"


def test_a_profiles_own_java_options_replace_the_engines():
    built = session_conf({"conf": {"spark.driver.extraJavaOptions": "-XX:+UseG1GC"}}, "/usr/bin/python3")
    assert built["spark.driver.extraJavaOptions"] == "-XX:+UseG1GC"
    assert built["spark.executor.extraJavaOptions"] == "-XX:-DontCompileHugeMethods"


def test_this_machine_reads_meminfo_and_a_containers_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24683652 kB\nMemFree:        12664180 kB\n", encoding="utf-8")
    unlimited = tmp_path / "memory.max"
    unlimited.write_text("max\n", encoding="utf-8")
    assert this_machine(meminfo, unlimited).memory_bytes == THIS_VM
    limited = tmp_path / "limited.max"
    limited.write_text("8589934592\n", encoding="utf-8")
    assert this_machine(meminfo, limited).memory_bytes == 8 * GIB
    assert this_machine(meminfo, tmp_path / "absent").memory_bytes == THIS_VM
    assert this_machine(meminfo, unlimited).cores >= 1


def test_folder_bytes_sums_the_files_below(tmp_path):
    (tmp_path / "extract" / "labs").mkdir(parents=True)
    (tmp_path / "extract" / "patients.csv").write_bytes(b"abc")
    (tmp_path / "extract" / "labs" / "part-0.parquet").write_bytes(b"12345")
    assert folder_bytes(tmp_path / "extract") == 8
    assert folder_bytes(tmp_path / "extract" / "patients.csv") == 3
    assert folder_bytes(tmp_path / "nothing") is None
