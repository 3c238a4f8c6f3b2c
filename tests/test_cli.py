"""The command line: exit codes, one-line errors, the data-quality outputs, the manifest."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from cohort_engine.cli import main
from cohort_engine.manifest import manifest_versions
from test_ingest import EXPECTED, EXTRACT, write_extract

ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}


def run(argv, capsys):
    code = main(argv, ENV)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    src = write_extract(base / "src")
    code = main(["run", "--source", str(src), "--lake", str(base / "lake"), "--out", str(base / "out"),
                 "--stages", "ingest", "--quiet",
                 # a hand-made extract of a few rows, one bad row in five: far above the share at
                 # which a run stops as a misread extract (tests/test_extract_forms.py tests that)
                 "--max-rejected-share", "1"], ENV)
    return code, base


def test_ingest_stage_exit_zero_and_outputs(ingested):
    code, base = ingested
    assert code == 0
    assert (base / "lake" / "bronze" / "prescriptions" / "_delta_log").is_dir()
    assert (base / "out" / "tables" / "data_quality.csv").is_file()


def test_data_quality_in_the_lake_balances_exactly(ingested, spark):
    from cohort_engine.lake import Lake
    _, base = ingested
    dq = Lake(base / "lake", spark, ENV).read_pandas("gold", "data_quality")
    ingest = dq[dq["stage"] == "ingest"]
    for table, (read, kept, duplicates, reasons) in EXPECTED.items():
        t = ingest[ingest["table"] == table].set_index("check")
        assert t.loc["rows_read", "n"] == read
        assert t.loc["rows_kept", "n"] == kept
        assert t.loc["duplicates_removed", "n"] == duplicates
        assert t.loc["rows_quarantined", "n"] == sum(reasons.values())
        assert read == kept + duplicates + sum(reasons.values())


def test_exported_data_quality_hides_small_counts(ingested):
    _, base = ingested
    csv = pd.read_csv(base / "out" / "tables" / "data_quality.csv", dtype=str, keep_default_na=False)
    shown = csv["n"].tolist()
    # Every count of the hand-built extract is below 5 except rows read of prescriptions
    # (15), patients (7), deaths (6), hospitals, diagnoses, biomarkers and labs (5 each),
    # and prescriptions kept (5), which complementary suppression withholds (below).
    numeric = sorted(int(v) for v in shown if v.isdigit() and int(v) > 0)
    assert numeric == [5, 5, 5, 5, 6, 7, 15]
    assert all(v in ("<5", "*", "0") or int(v) >= 5 for v in shown)
    # Prescriptions: kept 5 shown, quarantined 9 and duplicates 1 form one set with it.
    # Prescriptions: 15 read = 5 kept + 9 quarantined + 1 duplicate. With the duplicate
    # shown as <5, kept (the next smallest) is withheld; then 15 - 9 = 6 = kept + duplicate
    # with kept >= 5 would still pin both, so quarantined is withheld too.
    rx = csv[(csv["table"] == "prescriptions") & (csv["stage"] == "ingest")].set_index("check")
    assert rx.loc["rows_read", "n"] == "15" and rx.loc["duplicates_removed", "n"] == "<5"
    assert (rx.loc["rows_kept", "n"], rx.loc["rows_quarantined", "n"]) == ("*", "*")


def test_manifest(ingested):
    _, base = ingested
    manifest = json.loads((base / "out" / "run_manifest.json").read_text())
    assert manifest["stages"] == ["ingest"]
    assert manifest["data_cutoff"] == "2025-06-30"
    assert len(manifest["study_hash"]) == 64
    written = manifest_versions(manifest, "written")
    assert written["bronze/prescriptions"] == 1 and written["gold/data_quality"] == 1
    assert manifest["row_counts"]["ingest"]["bronze/prescriptions"] == 5
    assert manifest["row_counts"]["ingest"]["bronze/hospitals"] == "<5"  # 3 kept
    assert manifest["timings_seconds"]["ingest"] > 0
    assert manifest["delta_writer"] == "deltalake (offline)"


@pytest.mark.parametrize("argv, message", [
    (["run", "--lake", "L", "--out", "O", "--stages", "ingest"], "cohort-engine: stage ingest needs --source"),
    (["run", "--lake", "L", "--out", "O", "--stages", "lines,foo"], "cohort-engine: unknown stage 'foo' (stages: ingest, lines, cohort, endpoints"),
    (["run", "--lake", "L", "--out", "O", "--study", "missing.yaml"],
     "cohort-engine: missing.yaml: cannot read the study file (No such file or directory)"),
    (["run", "--lake", "L", "--out", "O", "--max-rejected-share", "10%"],
     "cohort-engine run: argument --max-rejected-share: expected a share from 0 to 1 (0.10 = 10 %), got '10%'"),
    (["run", "--lake", "L", "--out", "O", "--vocabulary-override", "nowhere.csv"],
     "cohort-engine: --vocabulary-override nowhere.csv: no such file"),
    (["run", "--lake", "L", "--out", "O", "--source-timezone", "Mars/Olympus"],
     "cohort-engine: unknown time zone 'Mars/Olympus'"),
    (["run", "--lake", "L", "--out", "O", "--cutoff", "2025-02-30"],
     "cohort-engine run: argument --cutoff: expected a date YYYY-MM-DD, got '2025-02-30'"),
    (["generate", "--out", "X", "--patients", "0"],
     "cohort-engine generate: argument --patients: expected a positive whole number, got '0'"),
    (["frobnicate"], None),
])
def test_bad_invocations_exit_two_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run(argv, capsys)
    assert code == 2
    assert len(err) == 1
    if message:
        assert err[0].startswith(message)


def test_missing_input_table_is_one_line(tmp_path, capsys):
    src = write_extract(tmp_path / "src", {k: v for k, v in EXTRACT.items() if k != "patients"})
    code, err = run(["run", "--source", str(src), "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "o"),
                     "--stages", "ingest", "--quiet"], capsys)
    assert code == 2
    assert err == [f"cohort-engine: source table 'patients' is missing in {src} "
                   "(expected patients.csv, patients.parquet or a folder patients/)"]


def test_stage_without_its_input_tables(tmp_path, capsys):
    code, err = run(["run", "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "o"), "--stages", "lines",
                     "--quiet"], capsys)
    assert code == 2
    assert err[0].startswith("cohort-engine: lake table bronze/prescriptions is missing under")
