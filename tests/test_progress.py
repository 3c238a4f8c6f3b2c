"""Progress a person can read: the mode a run chooses, the plain lines, the live lines."""
from __future__ import annotations

import io
import logging
import re
from collections import namedtuple

import pytest
from rich.console import Console

from cohort_engine.cli import main
from cohort_engine.errors import ConfigError
from cohort_engine.progress_display import LiveProgress, PlainProgress, progress_mode, spark_tasks
from cohort_engine.progress_lines import DONE, START, ProgressLine
from test_ingest import EXPECTED, write_extract

ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}


@pytest.mark.parametrize("option, quiet, terminal, environ, mode", [
    (None, False, True, {}, "rich"),                       # a person at a terminal
    (None, False, False, {}, "plain"),                     # redirected to a file or a pipe
    (None, True, True, {}, "none"),                        # --quiet
    ("rich", True, True, {}, "none"),                      # --quiet is --progress none, whatever else is asked
    ("plain", False, True, {}, "plain"),
    (None, False, True, {"COHORT_ENGINE_PROGRESS": "none"}, "none"),
    (None, False, False, {"COHORT_ENGINE_PROGRESS": "rich"}, "rich"),
    ("plain", False, True, {"COHORT_ENGINE_PROGRESS": "rich"}, "plain"),   # the option beats the environment
    (None, False, True, {"COHORT_ENGINE_PROGRESS": ""}, "rich"),           # empty: a scheduler's unset parameter
    (None, False, True, {"DATABRICKS_RUNTIME_VERSION": "15.4"}, "plain"),  # a Databricks job
    (None, False, True, {"SPARK_ENV_LOADED": "1"}, "plain"),               # spark-submit's launch script
    (None, False, True, {"PYSPARK_GATEWAY_PORT": "40000"}, "plain"),       # a driver spark-submit started
    (None, False, True, {"TERM": "dumb"}, "plain"),
    ("rich", False, True, {"DATABRICKS_RUNTIME_VERSION": "15.4"}, "rich"),  # asked for explicitly
])
def test_the_progress_mode(option, quiet, terminal, environ, mode):
    assert progress_mode(option, quiet, terminal, environ) == mode


def test_an_unknown_progress_mode_is_refused():
    with pytest.raises(ConfigError, match=r"^COHORT_ENGINE_PROGRESS must be rich, plain, none, got 'loud'$"):
        progress_mode(None, False, True, {"COHORT_ENGINE_PROGRESS": "loud"})


def test_the_command_line_refuses_an_unknown_mode_in_one_line(tmp_path, capsys):
    code = main(["run", "--lake", str(tmp_path / "l"), "--out", str(tmp_path / "o")],
                {**ENV, "COHORT_ENGINE_PROGRESS": "loud"})
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "cohort-engine: COHORT_ENGINE_PROGRESS must be rich, plain, none, got 'loud'"]
    code = main(["run", "--lake", str(tmp_path / "l"), "--out", str(tmp_path / "o"), "--progress", "loud"], ENV)
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "cohort-engine run: argument --progress: invalid choice: 'loud' (choose from 'rich', 'plain', 'none')"]


def a_run(display):
    """A hand-made run: generate, ingest of two tables and an absent one, a study's cohort
    whose second write counted no rows (delta-spark writing natively), a line of the lake lock."""
    display(ProgressLine("stage generate: start", "generate", event=START))
    display(ProgressLine("generate patients: 40000 rows", "generate", rows=40_000))
    display(ProgressLine("generate visits: 1200000 rows", "generate", rows=1_200_000))
    display(ProgressLine("stage generate: done in 30.0s", "generate", event=DONE))
    display("lake lock: taking over from pid 7")
    display(ProgressLine("stage ingest: start", "ingest", event=START))
    display(ProgressLine("ingest patients: 40000 read, 39990 kept, 10 quarantined, 0 duplicates", "ingest",
                         rows=40_000))
    display(ProgressLine("ingest labs: optional table absent", "ingest"))
    display(ProgressLine("ingest visits: 1200000 read, 1199000 kept, 1000 quarantined, 0 duplicates", "ingest",
                         rows=1_200_000))
    display(ProgressLine("stage ingest: done in 62.0s", "ingest", event=DONE))
    display(ProgressLine("stage cohort: start (a_study)", "cohort", event=START, label="cohort (a_study)"))
    display(ProgressLine("cohort wrote silver/patient_facts: 39990 rows", "cohort", rows=39_990))
    display(ProgressLine("cohort wrote gold/cohort", "cohort"))
    display(ProgressLine("stage cohort: done in 4.0s", "cohort", event=DONE, label="cohort (a_study)"))
    display(ProgressLine("stage endpoints: start (a_study)", "endpoints", event=START, label="endpoints (a_study)"))
    display(ProgressLine("stage endpoints: done in 0.5s", "endpoints", event=DONE, label="endpoints (a_study)"))


def test_plain_lines_carry_the_stages_rows_rate_and_time():
    # The clock each line reads (the lake lock's line reads none): generate from 100 s, ingest
    # from 200 s, the cohort from 300 s.
    clock = iter([100.0, 110.0, 130.0, 130.0, 200.0, 210.0, 215.0, 262.0, 262.0,
                  300.0, 302.0, 303.0, 304.0, 310.0, 310.5])
    lines = []
    a_run(PlainProgress(lines.append, clock=lambda: next(clock)))
    assert lines == [
        "stage generate: start",
        "generate patients: 40000 rows | generate: 40,000 rows, 4,000 rows/s, 0:00:10",
        "generate visits: 1200000 rows | generate: 1,240,000 rows, 41,333 rows/s, 0:00:30",
        "stage generate: done in 30.0s | generate: 1,240,000 rows, 41,333 rows/s, 0:00:30",
        "lake lock: taking over from pid 7",
        "stage ingest: start",
        "ingest patients: 40000 read, 39990 kept, 10 quarantined, 0 duplicates | ingest: 40,000 rows, "
        "4,000 rows/s, 0:00:10",
        "ingest labs: optional table absent",
        "ingest visits: 1200000 read, 1199000 kept, 1000 quarantined, 0 duplicates | ingest: 1,240,000 rows, "
        "20,000 rows/s, 0:01:02",
        "stage ingest: done in 62.0s | ingest: 1,240,000 rows, 20,000 rows/s, 0:01:02",
        "stage cohort: start (a_study)",
        "cohort wrote silver/patient_facts: 39990 rows | cohort (a_study): 39,990 rows, 19,995 rows/s, 0:00:02",
        "cohort wrote gold/cohort",
        "stage cohort: done in 4.0s | cohort (a_study): 39,990 rows, 9,998 rows/s, 0:00:04",
        "stage endpoints: start (a_study)",
        "stage endpoints: done in 0.5s",  # no rows counted: nothing to add
    ]


def test_a_stage_without_a_start_line_is_timed_from_its_first_line():
    clock = iter([5.0, 3605.0])
    lines = []
    display = PlainProgress(lines.append, clock=lambda: next(clock))
    display(ProgressLine("ingest patients: 7 read, 3 kept, 4 quarantined, 0 duplicates", "ingest", rows=7))
    display(ProgressLine("ingest deaths: 6 read, 3 kept, 2 quarantined, 1 duplicates", "ingest", rows=6))
    assert lines == ["ingest patients: 7 read, 3 kept, 4 quarantined, 0 duplicates | ingest: 7 rows, - rows/s, 0:00:00",
                     "ingest deaths: 6 read, 3 kept, 2 quarantined, 1 duplicates | ingest: 13 rows, 0 rows/s, 1:00:00"]


def test_a_progress_line_is_the_string_it_prints():
    line = ProgressLine("ingest: 9 tables passed their checks", "ingest")
    assert line == "ingest: 9 tables passed their checks"
    assert (line.stage, line.rows, line.event, line.label) == ("ingest", None, "step", "ingest")
    with pytest.raises(ValueError, match="progress event must be start, step or done, got 'begin'"):
        ProgressLine("stage ingest: start", "ingest", event="begin")


def test_live_lines_count_each_stage_and_print_the_steps_above():
    screen = io.StringIO()
    display = LiveProgress(Console(file=screen, force_terminal=True, width=200, log_path=False))
    a_run(display)
    display.close()
    tasks = display.progress.tasks
    assert [(t.description, t.completed, t.finished) for t in tasks] == [
        ("generate", 1_240_000, True), ("ingest", 1_240_000, True), ("cohort (a_study)", 39_990, True),
        ("endpoints (a_study)", 0, True)]
    assert "lake lock: taking over from pid 7" in screen.getvalue()
    assert "ingest labs: optional table absent" in screen.getvalue()


def test_spark_tasks_of_the_running_stages():
    Info = namedtuple("Info", "numTasks numCompletedTasks")

    class Tracker:
        def getActiveStageIds(self):
            return [3, 4, 5]

        def getStageInfo(self, stage_id):
            return {3: Info(64, 10), 4: Info(8, 8)}.get(stage_id)  # stage 5 ended between the two calls

    assert spark_tasks(Tracker()) == (18, 72)


def test_a_plain_run_reports_rows_read_per_table_and_the_stage(tmp_path, caplog):
    src = write_extract(tmp_path / "src")
    with caplog.at_level(logging.INFO, logger="cohort_engine"):
        code = main(["run", "--source", str(src), "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "out"),
                     "--stages", "ingest", "--progress", "plain", "--max-rejected-share", "1"], ENV)
    assert code == 0
    said = [r.getMessage() for r in caplog.records if r.name == "cohort_engine"]
    steps = [line for line in said if re.match(r"ingest \w+: \d+ read", line)]
    # Each table's line adds its rows read to the stage's count, in the order ingest reads them.
    counted = [int(re.search(r"\| ingest: ([\d,]+) rows, ", line).group(1).replace(",", "")) for line in steps]
    order = ["hospitals", "patients", "deaths", "diagnoses", "biomarkers", "prescriptions", "labs",
             "adverse_events", "visits"]
    assert [line.split(":")[0] for line in steps] == [f"ingest {t}" for t in order]
    running = 0
    expected = []
    for table in order:
        running += EXPECTED[table][0]
        expected.append(running)
    assert counted == expected
    assert said[0] == "stage ingest: start"
    done = [line for line in said if line.startswith("stage ingest: done")]
    assert len(done) == 1
    assert re.fullmatch(r"stage ingest: done in [\d.]+s \| ingest: 54 rows, [\d,]+ rows/s, \d:\d\d:\d\d", done[0])
    # After the stage, the run's data-quality tables: lines of the run's own, counted in no stage.
    assert said[-2:] == ["wrote gold/lake_data_quality: 60 rows", "wrote gold/data_quality: 60 rows"]
