"""What a stage tells the person running it: a progress line, with its facts beside the text.

Stages report through a `progress` callback taking one string (a log line: counts and
table names only, never patient data). A `ProgressLine` is that string, carrying what a
display needs to draw one line per stage (`progress_display.py`): the stage, the rows the
step did, and whether it starts or ends the stage. Any callback taking a string (log.info,
a list's append) takes it unchanged.
"""
from __future__ import annotations

START, STEP, DONE = "start", "step", "done"


class ProgressLine(str):
    stage: str
    rows: int | None
    event: str
    label: str

    def __new__(cls, text: str, stage: str, rows: int | None = None, event: str = STEP, label: str | None = None):
        """`rows`: the rows this step read or wrote (added to the stage's count); `label`: the
        stage as its line names it (the stage and, for a study's stage, the study)."""
        if event not in (START, STEP, DONE):
            raise ValueError(f"progress event must be {START}, {STEP} or {DONE}, got {event!r}")
        line = super().__new__(cls, text)
        line.stage, line.rows, line.event, line.label = stage, rows, event, label or stage
        return line
