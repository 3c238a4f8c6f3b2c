"""Spark settings a profile leaves to the engine (`auto`): the driver heap from the machine's
memory, the shuffle partitions from the extract's size and the cores.

The rules are pure functions of (memory, cores, extract bytes); `this_machine` and
`folder_bytes` read the machine and the disk at the edge.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from pathlib import Path

from .errors import ConfigError

AUTO = "auto"
DRIVER_MEMORY = "spark.driver.memory"
SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"

GIB = 1024 ** 3
MIB = 1024 ** 2
# The heap rounds down to this step: a whole number of MiB the JVM takes as written.
HEAP_STEP = 256 * MIB
# Spark's own default heap; below it the engine's choice would be no better than Spark's.
MIN_HEAP = 1 * GIB
# From 32 GiB the JVM loses compressed object pointers: a 33 GiB heap holds fewer objects than 31.
MAX_HEAP = 31 * GIB
# On-disk input per shuffle partition. A Parquet extract holds about 6 bytes a source row
# (1,000,000 patients: 146 M rows in 878 MB), a row in Spark's memory well over 100: 16 MiB
# on disk is some hundreds of MiB shuffled. The measured million-patient run that finished
# had 64 partitions (14 MB each); adaptive execution merges partitions that come out small,
# but never splits one that is too large, so the rule errs on more.
INPUT_PER_PARTITION = 16 * MIB


@dataclasses.dataclass(frozen=True)
class Machine:
    memory_bytes: int  # physical memory this process may use (a container's limit if lower)
    cores: int         # cores this process may run on


def driver_heap_bytes(memory_bytes: int) -> int:
    """A third of the machine for the driver's heap: the rest holds the JVM beyond its heap
    (measured 2.4 GB beside a 10 GB heap), the Python driver and workers, and the page cache
    the Parquet reads go through. 24 GB → 7.75 GiB (the whole tree near 10 GB), 8 GB → 2.5 GiB."""
    heap = memory_bytes // 3 // HEAP_STEP * HEAP_STEP
    return min(max(heap, MIN_HEAP), MAX_HEAP)


def heap_setting(heap_bytes: int) -> str:
    """A heap as `spark.driver.memory` writes it: whole GiB as `8g`, otherwise in MiB."""
    return f"{heap_bytes // GIB}g" if heap_bytes % GIB == 0 else f"{heap_bytes // MIB}m"


def shuffle_partitions(extract_bytes: int | None, cores: int) -> int:
    """One partition per INPUT_PER_PARTITION of the extract, at least two per core (a core
    finishing early finds work), rounded up to a whole number of waves of `cores` tasks (the
    last wave keeps every core busy). An unknown size gets the minimum."""
    cores = max(cores, 1)
    wanted = math.ceil((extract_bytes or 0) / INPUT_PER_PARTITION)
    return math.ceil(max(wanted, 2 * cores) / cores) * cores


def local_cores(master: str | None, machine_cores: int) -> int:
    """The task slots of a local master: `local` one, `local[N]` (or `local[N,F]`) N, `local[*]`
    and any other master the machine's cores."""
    if master == "local":
        return 1
    match = re.fullmatch(r"local\[(\d+)(?:,\d+)?\]", master or "")
    return int(match.group(1)) if match else machine_cores


def size_auto_settings(conf: typing.Mapping[str, str], master: str | None, machine: Machine,
                       extract_bytes: int | None, owns_jvm: bool) -> dict[str, str]:
    """`conf` with every `auto` value sized. `owns_jvm` False (spark-submit, Databricks): the
    JVM already runs with the heap its launcher gave it, so an `auto` heap is left out."""
    sized = dict(conf)
    for key, value in conf.items():
        if value.strip().lower() != AUTO:
            continue
        if key == DRIVER_MEMORY:
            if owns_jvm:
                sized[key] = heap_setting(driver_heap_bytes(machine.memory_bytes))
            else:
                del sized[key]
        elif key == SHUFFLE_PARTITIONS:
            sized[key] = str(shuffle_partitions(extract_bytes, local_cores(master, machine.cores)))
        else:
            raise ConfigError(f"Spark setting {key}: 'auto' sizes only {DRIVER_MEMORY} and {SHUFFLE_PARTITIONS}")
    return sized


def wants_sizing(conf: typing.Mapping[str, str]) -> bool:
    return any(value.strip().lower() == AUTO for value in conf.values())


# --- the edge: this machine, the extract on disk ---

def this_machine(meminfo: Path = Path("/proc/meminfo"),
                 cgroup_limit: Path = Path("/sys/fs/cgroup/memory.max")) -> Machine:
    """The memory and cores this process may use: /proc/meminfo's MemTotal (os.sysconf where
    there is none), lowered to a cgroup v2 memory limit (a container sees the host's memory
    in /proc/meminfo but is killed at its limit); the cores of its CPU affinity."""
    memory = None
    try:
        found = re.search(r"^MemTotal:\s+(\d+)\s+kB", meminfo.read_text(), re.MULTILINE)
        memory = int(found.group(1)) * 1024 if found else None
    except OSError:
        pass
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = cgroup_limit.read_text().strip()
        if limit.isdigit():
            memory = min(memory, int(limit))
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return Machine(memory_bytes=memory, cores=cores)


def folder_bytes(path: Path) -> int | None:
    """The bytes of the files under `path` (a file's own size; None when nothing is there)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # removed while walking: not part of the input any more
                pass
    return total
