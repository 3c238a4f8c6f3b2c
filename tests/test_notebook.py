"""notebooks/explore_cohort.ipynb runs top to bottom against a tiny lake built here.

The lake holds 20 patients (gold/cohort, gold/endpoints written with the `deltalake`
package); the kernel is this interpreter, registered in a temporary Jupyter path so the
test does not depend on a kernel spec installed on the machine.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path

import deltalake
import nbclient
import nbformat
import numpy as np
import pandas as pd
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_cohort.ipynb"
KERNEL = "cohort-engine-test"
IDS = [f"P{i:07d}" for i in range(1, 21)]


def _lake(root: Path) -> None:
    # hr_status: P…01–P…10 positive, P…11–P…20 negative.
    # OS: positive k = 1..10 at 100·k days, events for k ≤ 3 (3 events); negative at 50·k days,
    # all events (10). rwPFS: everyone at 30·i days (i = 1..20), all events.
    cohort = pd.DataFrame({
        "patient_id": IDS, "index_date": [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(20)],
        "regimen": "paclitaxel liposome+trastuzumab", "anti_her2": "H",
        "age_at_index": np.arange(40, 60, dtype="int32"), "sex": "F",
        "hr_status": ["positive"] * 10 + ["negative"] * 10, "de_novo": [True, False] * 10,
        "visceral": [False] * 20, "brain_mets": [False] * 20, "bone_only": [False] * 20,
        "prior_anti_her2": [False] * 20, "hospital_tier": "3A", "province": "北京",
        "index_year": np.full(20, 2020, dtype="int32")})
    k = np.arange(1, 11)
    os_rows = pd.DataFrame({"patient_id": IDS, "endpoint": "OS",
                            "time_days": np.concatenate([100 * k, 50 * k]).astype("int32"),
                            "event": np.concatenate([(k <= 3).astype(int), np.ones(10, int)]).astype("int32")})
    rw_rows = pd.DataFrame({"patient_id": IDS, "endpoint": "rwPFS",
                            "time_days": (30 * np.arange(1, 21)).astype("int32"), "event": np.ones(20, "int32")})
    endpoints = pd.concat([os_rows, rw_rows], ignore_index=True)
    endpoints["event_type"] = np.where(endpoints["event"] == 1, "death", "censored")
    endpoints["source"] = None
    endpoints.loc[endpoints["endpoint"] == "rwPFS", "source"] = "assessment"
    deltalake.write_deltalake(str(root / "gold" / "cohort"), cohort)
    deltalake.write_deltalake(str(root / "gold" / "endpoints"), endpoints)


def _kernel_spec(path: Path) -> None:
    spec = path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "cohort-engine test", "language": "python"}))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebook")
    _lake(tmp / "lake")
    _kernel_spec(tmp / "jupyter")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COHORT_LAKE", str(tmp / "lake"))
        mp.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
        mp.setenv("IPYTHONDIR", str(tmp / "ipython"))
        mp.setenv("MPLBACKEND", "Agg")
        nb = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(nb, kernel_name=KERNEL, timeout=300,
                                         resources={"metadata": {"path": str(NOTEBOOK.parent)}})
        client.execute()
    return nb


def _stream(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _rows(text: str, first: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.split()[:1] == [first]]


def test_notebook_runs_and_prints_the_aggregates(executed):
    text = _stream(executed)
    assert ["gold/cohort", "20"] in _rows(text, "gold/cohort")
    # km_summary: OS 20 patients, 3 + 10 = 13 deaths; rwPFS 20 and 20. rwPFS: 20 drops of 0.05,
    # S = 0.5 exactly after the 10th (300 days) → R's midpoint (300 + 330) / 2 = 315 days.
    os_row, rw_row = _rows(text, "OS")[0], _rows(text, "rwPFS")[0]
    assert os_row[1:3] == ["20", "13"] and rw_row[1:3] == ["20", "20"]
    assert float(rw_row[3]) == pytest.approx(315 / 30.4375, abs=1e-6)


def test_subgroup_cell_gives_km_by_level_and_the_logrank_test(executed):
    text = _stream(executed)
    by_level = {(r[0], r[1]): r[2:] for r in _rows(text, "OS") + _rows(text, "rwPFS")
                if r[1] in ("positive", "negative")}
    # OS by HR status: 10 and 10 patients; 3 events → "<5", and the other level's 10 is withheld
    # ("*") because the total of 13 events is known; the medians go with them ("*").
    assert by_level[("OS", "positive")][:3] == ["10", "<5", "*"]
    assert by_level[("OS", "negative")][:3] == ["10", "*", "*"]
    # rwPFS: 10 events each. Positive at 30, 60, … 300 days: S = 0.5 after 150 → R's midpoint
    # (150 + 180) / 2 = 165 days; negative at 330 … 600: (450 + 480) / 2 = 465 days.
    assert by_level[("rwPFS", "positive")][:2] == ["10", "10"]
    assert float(by_level[("rwPFS", "positive")][2]) == pytest.approx(165 / 30.4375, abs=1e-6)
    assert float(by_level[("rwPFS", "negative")][2]) == pytest.approx(465 / 30.4375, abs=1e-6)
    # The log-rank p of OS, checked against lifelines' two-group test on the same numbers.
    from lifelines.statistics import logrank_test
    k = np.arange(1, 11)
    expected = logrank_test(100 * k, 50 * k, (k <= 3).astype(int), np.ones(10)).p_value
    tests = [r for r in _rows(text, "OS") if len(r) == 4]
    assert len(tests) == 1 and float(tests[0][3]) == pytest.approx(round(expected, 4), abs=1e-12)


def test_figures_and_no_patient_level_output(executed):
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2  # all endpoints; OS by subgroup
    shown = json.dumps([{k: v for k, v in o.get("data", {}).items() if k != "image/png"} | {"text": o.get("text", "")}
                        for o in outputs], ensure_ascii=False)
    assert not re.search(r"P\d{7}", shown)
    assert "2020-01" not in shown  # no index date either
