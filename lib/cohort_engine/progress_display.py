"""Progress a person can read: one line per stage with its rows, rate and elapsed time.

Three modes (`--progress`, else `COHORT_ENGINE_PROGRESS`, else chosen here):
- `rich`: on a terminal, a live line per stage (rich) below the log lines, moving while a
  long Spark job inside a step completes its tasks;
- `plain`: one log line per step, the stage's rows so far, rate and elapsed time appended;
  when stderr is no terminal, or a scheduler runs the engine (Databricks, spark-submit);
- `none`: no progress lines (`--quiet`).

The stages report `progress_lines.ProgressLine`s through their callback; any other string
is printed as it is. Lines hold counts and table names only, never patient data.
"""
from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
import typing

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from .errors import ConfigError
from .progress_lines import DONE, START, ProgressLine

MODES = ("rich", "plain", "none")
PROGRESS_ENV = "COHORT_ENGINE_PROGRESS"
# Set where a scheduler, not a person, reads the output: a Databricks job, spark-submit
# (its launch script, or the gateway it hands the Python driver).
SCHEDULER_ENV = ("DATABRICKS_RUNTIME_VERSION", "SPARK_ENV_LOADED", "PYSPARK_GATEWAY_PORT")
LOG_FORMAT = "%(asctime)s %(message)s"
SPARK_POLL_SECONDS = 1.0

log = logging.getLogger("cohort_engine")


def progress_mode(option: str | None, quiet: bool, stderr_is_terminal: bool,
                  environ: typing.Mapping[str, str]) -> str:
    """The progress mode of a run: `--quiet` none; `--progress`; `COHORT_ENGINE_PROGRESS`;
    plain under a scheduler or off a terminal (and on a terminal that draws nothing,
    TERM=dumb); rich on a terminal."""
    if quiet:
        return "none"
    chosen = option or environ.get(PROGRESS_ENV, "").strip()
    if chosen:
        if chosen not in MODES:
            raise ConfigError(f"{PROGRESS_ENV} must be {', '.join(MODES)}, got {chosen!r}")
        return chosen
    if any(key in environ for key in SCHEDULER_ENV) or environ.get("TERM") == "dumb":
        return "plain"
    return "rich" if stderr_is_terminal else "plain"


def elapsed_text(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def rate_text(rows: int, seconds: float) -> str:
    return f"{rows / seconds:,.0f} rows/s" if seconds > 0 else "- rows/s"


@dataclasses.dataclass
class StageTally:
    label: str
    started: float
    rows: int = 0


class PlainProgress:
    """One line per step: the step's own text, then (when the stage has counted rows) the
    stage's rows so far, its rate and its elapsed time. A stage's clock starts at its start
    line, or at its first line when it has none."""

    def __init__(self, emit: typing.Callable[[str], None], clock: typing.Callable[[], float] = time.monotonic):
        self.emit, self.clock = emit, clock
        self.stages: dict[str, StageTally] = {}

    def __call__(self, line: str) -> None:
        if not isinstance(line, ProgressLine):
            self.emit(line)
            return
        now = self.clock()
        if line.event == START or line.stage not in self.stages:
            self.stages[line.stage] = StageTally(line.label, now)
        tally = self.stages[line.stage]
        tally.rows += line.rows or 0
        if line.event == DONE:
            del self.stages[line.stage]
        if line.event == START or not tally.rows or (line.rows is None and line.event != DONE):
            self.emit(line)
            return
        seconds = now - tally.started
        self.emit(f"{line} | {tally.label}: {tally.rows:,} rows, {rate_text(tally.rows, seconds)}, "
                  f"{elapsed_text(seconds)}")

    def log_handler(self) -> logging.Handler:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        return handler

    def close(self) -> None:
        pass


def spark_tasks(tracker) -> tuple[int, int]:
    """(completed, total) tasks of the Spark stages running now, from a StatusTracker."""
    done = total = 0
    for stage_id in tracker.getActiveStageIds():
        info = tracker.getStageInfo(stage_id)
        if info is not None:
            done, total = done + info.numCompletedTasks, total + info.numTasks
    return done, total


class RateColumn(ProgressColumn):
    """The stage's rows per second since it started (not rich's recent-window speed: a
    stage's rows arrive a table at a time)."""

    def render(self, task) -> Text:
        return Text(rate_text(int(task.completed), task.elapsed or 0.0) if task.completed else "")


class LiveProgress:
    """A live line per stage (rich): its rows, rate, elapsed time and, while a Spark job
    runs, its completed tasks; the step lines print above."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, log_path=False)
        self.progress = Progress(SpinnerColumn(finished_text="done"), TextColumn("{task.description}"),
                                 TextColumn("{task.completed:>12,.0f} rows"), RateColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[spark]}"),
                                 console=self.console)
        self.tasks: dict[str, typing.Any] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.progress.start()
        self.poller = threading.Thread(target=self._poll_spark, name="cohort-engine-progress", daemon=True)
        self.poller.start()

    def __call__(self, line: str) -> None:
        self.console.log(Text(str(line)))
        if not isinstance(line, ProgressLine):
            return
        with self.lock:
            task = self.tasks.get(line.stage)
            if line.event == START or task is None:
                task = self.tasks[line.stage] = self.progress.add_task(line.label, total=None, spark="")
            self.progress.advance(task, line.rows or 0)
            if line.event == DONE:
                done = self.progress.tasks[task].completed  # a total reached marks the line finished
                self.progress.update(task, total=done, spark="")
                self.progress.stop_task(task)
                del self.tasks[line.stage]

    def _poll_spark(self) -> None:
        # Moves the running stage's line while one step's Spark job runs for minutes.
        while not self.stopped.wait(SPARK_POLL_SECONDS):
            context = _active_spark_context()
            if context is None:
                continue
            try:
                done, total = spark_tasks(context.statusTracker())
            except Exception:  # noqa: BLE001 - a session stopping under the poll: nothing to show
                continue
            with self.lock:
                if self.tasks:
                    running = list(self.tasks.values())[-1]
                    self.progress.update(running, spark=f"Spark tasks {done}/{total}" if total else "")

    def log_handler(self) -> logging.Handler:
        return RichHandler(console=self.console, show_path=False, log_time_format="[%X]")

    def close(self) -> None:
        self.stopped.set()
        self.poller.join(timeout=2 * SPARK_POLL_SECONDS)
        with self.lock:
            for task in self.tasks.values():  # a stage that stopped on an error keeps its last count
                self.progress.stop_task(task)
            self.progress.stop()


def _active_spark_context():
    pyspark = sys.modules.get("pyspark")  # not imported for this: no pyspark yet, no session to poll
    return pyspark.SparkContext._active_spark_context if pyspark is not None else None


def open_display(mode: str, emit: typing.Callable[[str], None] = log.info):
    """The progress callback of a mode; `close()` it when the command ends."""
    if mode == "rich":
        return LiveProgress()
    if mode == "plain":
        return PlainProgress(emit)
    return PlainProgress(lambda _line: None)
