"""Replays: `run --as-of-manifest` reruns stages on the Delta versions a manifest names.

The end-to-end case runs the pipeline once on a generated extract (the *reference*
run, shared with test_incremental and test_faults, which never modify it), changes
a copy of its lake, and replays: the output tables must come back byte for byte.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from cohort_engine.cli import main
from cohort_engine.errors import LakeError
from cohort_engine.lake import Lake
from cohort_engine.manifest import manifest_versions, pinned_versions

PATIENTS, SEED, CUTOFF = 1500, 3, dt.date(2025, 6, 30)
ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}
GOLD_KEYS = {"therapy_lines": ["patient_id", "setting", "line_number"], "cohort": ["patient_id"],
             "endpoints": ["patient_id", "endpoint"]}

_REFERENCE: dict[str, Path] = {}


def reference_run(spark, tmp_path_factory) -> Path:
    """A generated extract and one uninterrupted run of every stage on it (built once per session).

    <base>/extract, <base>/lake, <base>/out. Tests that change a lake change a copy.
    """
    if "base" not in _REFERENCE:
        from cohort_engine.synth import generate_extract
        base = tmp_path_factory.mktemp("reference")
        generate_extract(spark, base / "extract", patients=PATIENTS, seed=SEED, clean=True, cutoff=CUTOFF,
                         progress=lambda _msg: None)
        code = main(["run", "--source", str(base / "extract"), "--lake", str(base / "lake"),
                     "--out", str(base / "out"), "--quiet"], ENV)
        assert code == 0
        _REFERENCE["base"] = base
    return _REFERENCE["base"]


def gold_frame(lake_root: Path, name: str):
    """A gold table as pandas, rows in key order (a Delta table has no row order)."""
    from deltalake import DeltaTable
    frame = DeltaTable(str(lake_root / "gold" / name)).to_pandas()
    return frame.sort_values(GOLD_KEYS[name]).reset_index(drop=True)


def csv_tables(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "tables").glob("*.csv"))}


def lake_versions(root: Path) -> dict[str, int]:
    from deltalake import DeltaTable
    lake_tables = [p.parent for p in root.glob("*/*/_delta_log")]
    return {f"{t.parent.name}/{t.name}": DeltaTable(str(t)).version() for t in lake_tables}


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory):
    return reference_run(spark, tmp_path_factory)


@pytest.fixture(scope="module")
def changed(spark, reference, tmp_path_factory):
    """A copy of the reference lake, changed after the reference run wrote its manifest."""
    base = tmp_path_factory.mktemp("replay")
    shutil.copytree(reference / "lake", base / "lake")
    lake = Lake(base / "lake", spark, ENV)
    patients = lake.read("bronze", "patients")
    lake.write(patients.where(F.xxhash64("patient_id") % 3 != 0), "bronze", "patients")  # a third fewer
    lake.write(lake.read("bronze", "deaths").limit(0), "bronze", "deaths")  # nobody died
    lake.write(lake.read("gold", "endpoints").withColumn("event", F.lit(0)), "gold", "endpoints")
    return base


@pytest.mark.slow
def test_replay_reproduces_every_table_of_the_manifest(reference, changed, spark):
    manifest_path = reference / "out" / "run_manifest.json"
    before = lake_versions(changed / "lake")
    out = changed / "replayed"
    code = main(["run", "--as-of-manifest", str(manifest_path), "--lake", str(changed / "lake"),
                 "--out", str(out), "--stages", "cohort,endpoints,analysis", "--quiet"], ENV)
    assert code == 0
    expected = csv_tables(reference / "out")
    assert {"km_summary.csv", "attrition.csv", "table1.csv", "data_quality.csv"} <= set(expected)
    replayed = csv_tables(out)
    assert sorted(replayed) == sorted(expected)
    for name, content in expected.items():
        assert replayed[name] == content, name

    # The replay moved nothing in the lake, and its scratch lake is gone.
    assert lake_versions(changed / "lake") == before
    assert not (changed / "lake" / "_replay").exists()

    # It read exactly the versions the original run left the tables at, not the latest.
    original = json.loads(manifest_path.read_text())
    mine = json.loads((out / "run_manifest.json").read_text())
    pins = pinned_versions(original)
    read = manifest_versions(mine, "read")
    assert read and all(read[t] == pins[t] for t in read)
    assert read["bronze/patients"] == pins["bronze/patients"] == before["bronze/patients"] - 1
    assert (mine["mode"], mine["replay_of"]["manifest"]) == ("replay", str(manifest_path.resolve()))
    assert mine["study_hash"] == original["study_hash"] and mine["data_cutoff"] == "2025-06-30"

    # The replay's outputs pass the disclosure audit, its manifest included.
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    from cohort_engine.publish import audit
    run_date = dt.date.fromisoformat(mine["created_utc"][:10])
    assert audit(out, load_study(default_study_path()), run_dates=[run_date]) == []


@pytest.mark.slow
def test_without_the_manifest_the_changed_lake_gives_other_tables(reference, changed):
    # The control: the same stage on the changed lake's latest versions. A third of
    # the patients are gone, so the attrition counts must differ from the reference.
    out = changed / "latest"
    code = main(["run", "--lake", str(changed / "lake"), "--out", str(out), "--stages", "cohort", "--quiet"], ENV)
    assert code == 0
    expected = (reference / "out" / "tables" / "attrition.csv").read_bytes()
    assert (out / "tables" / "attrition.csv").read_bytes() != expected


# -- the pinned lake, on hand-made tables -------------------------------------------

ROWS = [("P1", 1), ("P2", 2), ("P3", 3)]


def test_pinned_lake_reads_the_pinned_version_and_writes_elsewhere(spark, tmp_path):
    lake = Lake(tmp_path / "lake", spark, ENV)
    lake.write(spark.createDataFrame(ROWS, "patient_id string, n int"), "gold", "t")  # version 1: 3 rows
    lake.write(spark.createDataFrame(ROWS[:1], "patient_id string, n int"), "gold", "t")  # version 2: 1 row
    lake.write(spark.createDataFrame(ROWS, "patient_id string, n int"), "gold", "other")

    pinned = Lake(tmp_path / "lake", spark, ENV, pinned_versions={"gold/t": 1}, write_root=tmp_path / "scratch")
    assert pinned.read("gold", "t").count() == 3
    assert len(pinned.read_pandas("gold", "t")) == 3
    assert pinned.version("gold", "t") == 1
    # A table the manifest does not name does not exist for the replay, though it is in the lake.
    assert not pinned.exists("gold", "other")
    with pytest.raises(LakeError, match="gold/other is not among the tables the manifest pins"):
        pinned.read("gold", "other")

    pinned.write(spark.createDataFrame([("P9", 9)], "patient_id string, n int"), "gold", "t")
    assert [tuple(r) for r in pinned.read("gold", "t").collect()] == [("P9", 9)]
    assert Lake(tmp_path / "lake", spark, ENV).version("gold", "t") == 2  # the lake did not move
    assert (tmp_path / "scratch" / "gold" / "t" / "_delta_log").is_dir()
    assert pinned.versions_read == {"gold/t": 1}  # the scratch copy is not a read of the lake


def test_pins_are_the_state_the_run_left(tmp_path):
    # gold/data_quality was read at 4, then written at 5: the replay must see 5.
    manifest = {"delta_versions": {"read": [{"table": "bronze/patients", "version": 1},
                                            {"table": "gold/data_quality", "version": 4}],
                                   "written": [{"table": "gold/data_quality", "version": 5},
                                               {"table": "gold/safety_events", "version": 2}]}}
    assert pinned_versions(manifest) == {"bronze/patients": 1, "gold/data_quality": 5, "gold/safety_events": 2}


# -- refused replays: one line, exit 2, before any work ------------------------------

def _manifest(tmp_path, **changes) -> Path:
    from cohort_engine.conf_folder import default_study_path
    from cohort_engine.config import load_study
    study = load_study(default_study_path())
    manifest = {"engine_version": "0+source", "study": study.to_dict(), "study_hash": study.config_hash(),
                "data_cutoff": study.data_cutoff.isoformat(), "stages": ["ingest", "lines"],
                "delta_versions": {"read": [{"table": "bronze/prescriptions", "version": 1}], "written": []}}
    manifest.update(changes)
    path = tmp_path / "old" / "run_manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    (tmp_path / "lake").mkdir(exist_ok=True)
    return path


@pytest.mark.parametrize("extra, message", [
    (["--cutoff", "2024-12-31"], "cohort-engine: --cutoff 2024-12-31 differs from the data cut-off 2025-06-30 of "),
    (["--study", "conf/studies/docetaxel_hp_first_line.yaml"],
     "cohort-engine: conf/studies/docetaxel_hp_first_line.yaml is not the study "),
    (["--stages", "ingest,lines"], "cohort-engine: stage ingest cannot be replayed"),
    (["--incremental"], "cohort-engine: --as-of-manifest replays a run on the lake as it was"),
])
def test_replay_options_that_contradict_the_manifest(tmp_path, capsys, extra, message, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    path = _manifest(tmp_path)
    code = main(["run", "--as-of-manifest", str(path), "--lake", str(tmp_path / "lake"),
                 "--out", str(tmp_path / "new"), *extra], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(message), err[0]


def test_same_study_file_and_cutoff_are_accepted_as_the_manifests(tmp_path, capsys, monkeypatch):
    # Naming the manifest's own study and cut-off is no contradiction: the replay gets
    # as far as the lake, where the pinned table is missing (an empty lake folder).
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    path = _manifest(tmp_path)
    code = main(["run", "--as-of-manifest", str(path), "--lake", str(tmp_path / "lake"), "--out",
                 str(tmp_path / "new"), "--study", "conf/studies/her2_paclitaxel_liposome.yaml",
                 "--cutoff", "2025-06-30", "--stages", "lines"], ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == (f"cohort-engine: lake table bronze/prescriptions (pinned at version 1) is missing under "
                       f"{(tmp_path / 'lake').resolve()}: replay on the lake the manifest was written for")


def test_tampered_manifest_and_same_out_folder_are_refused(tmp_path, capsys):
    path = _manifest(tmp_path, study_hash="0" * 64)
    code = main(["run", "--as-of-manifest", str(path), "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "n")],
                ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"cohort-engine: {path}: the study it records does not match its study_hash "
                                 "(edited or damaged)"]
    path = _manifest(tmp_path)
    code = main(["run", "--as-of-manifest", str(path), "--lake", str(tmp_path / "lake"), "--out", str(path.parent)],
                ENV)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"cohort-engine: --out {path.parent} holds the manifest being replayed: "
                                 "replay into another folder"]
