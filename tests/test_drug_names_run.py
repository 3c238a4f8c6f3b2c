"""Drug names through a run: a vocabulary that fits too few prescriptions stops it before
anything is committed; an override file maps what the shipped vocabulary lacks; the most
frequent unmatched names reach the lake with their nearest vocabulary entries."""
from __future__ import annotations

import json

from cohort_engine.cli import main

ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}
LIPUSU = "注射用紫杉醇脂质体（力扑素）30mg"
AMOXICLAV = "阿莫西林克拉维酸钾片(0.375g)"  # an antibiotic: no entry of the shipped vocabulary


def extract(folder, names):
    folder.mkdir(parents=True)
    tables = {
        "hospitals": "hospital_id,tier,province,hospital_type\nH1,3A,北京,oncology\n",
        "patients": "patient_id,sex,birth_date,id_hash,province\nP1,F,1970-01-01,h1,北京\n",
        "deaths": "id_hash,death_date,cause_icd10\nh1,2024-01-01,C50.9\n",
        "diagnoses": "patient_id,hospital_id,diagnosis_date,icd10,stage,diagnosis_text\nP1,H1,2020-01-01,C50.9,IV,乳腺癌\n",
        "biomarkers": "patient_id,test_date,marker,method,result\nP1,2020-01-05,HER2,IHC,3+\n",
        "prescriptions": "record_id,patient_id,hospital_id,admin_date,drug_name,drug_code,dose,dose_unit,route\n"
        + "".join(f"R{i},P1,H1,2020-02-{i + 1:02d},{name},,30,mg,iv\n" for i, name in enumerate(names)),
    }
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def run(tmp_path, src, capsys, *extra):
    code = main(["run", "--source", str(src), "--lake", str(tmp_path / "lake"), "--out", str(tmp_path / "out"),
                 "--stages", "ingest,lines", "--quiet", *extra], ENV)
    return code, capsys.readouterr().err.strip().splitlines()


def test_prescriptions_matching_too_little_stop_the_run_and_an_override_maps_them(tmp_path, capsys):
    src = extract(tmp_path / "src", [LIPUSU] * 6 + [AMOXICLAV] * 4)
    code, err = run(tmp_path, src, capsys)
    assert code == 2
    assert err == ["cohort-engine: prescriptions.drug_name: 40.0% of 10 rows match no vocabulary entry "
                   f"(most frequent: '{AMOXICLAV}' (4 rows)); the extract or the vocabulary does not fit "
                   "(threshold 10%, --max-rejected-share): add the names to a vocabulary override "
                   "(--vocabulary-override FILE)"]
    # Nothing of the run is committed, not even the tables ingested before prescriptions.
    lake = tmp_path / "lake"
    assert not any(lake.glob("*/*/_delta_log"))

    override = tmp_path / "site_drugs.csv"
    override.write_text("name,kind,ingredient,drug_class,note\n"
                        "阿莫西林克拉维酸钾,name,amoxicillin clavulanate,supportive,this hospital's antibiotic\n",
                        encoding="utf-8")
    code, err = run(tmp_path, src, capsys, "--vocabulary-override", str(override))
    assert (code, err) == (0, [])
    from deltalake import DeltaTable
    exposures = DeltaTable(str(lake / "silver" / "drug_exposures")).to_pandas()
    assert exposures.groupby("ingredient").size().to_dict() == {"amoxicillin clavulanate": 4,
                                                                 "paclitaxel liposome": 6}
    assert DeltaTable(str(lake / "gold" / "unmatched_drug_names")).to_pandas().empty
    manifest = json.loads((tmp_path / "out" / "run_manifest.json").read_text())
    assert [o["path"] for o in manifest["vocabulary_overrides"]] == [str(override.resolve())]
    assert manifest["extract_settings"] == {"encoding": "auto", "timezone": "Asia/Shanghai",
                                            "max_rejected_share": 0.1}


def test_unmatched_names_reach_the_lake_with_their_nearest_entries(tmp_path, capsys):
    # 2 of 20 rows unmatched: 10 %, not more than the threshold, so the run goes on.
    src = extract(tmp_path / "src", [LIPUSU] * 18 + ["Herceptine 440mg", "Herceptine 440mg"])
    code, err = run(tmp_path, src, capsys)
    assert (code, err) == (0, [])
    from deltalake import DeltaTable
    names = DeltaTable(str(tmp_path / "lake" / "gold" / "unmatched_drug_names")).to_pandas()
    assert names[["rank", "drug_name", "drug_name_normalised", "n_rows"]].values.tolist() == [
        [1, "Herceptine 440mg", "herceptine", 2]]
    # Indel similarity of 'herceptine' and 'herceptin': 1 - 1/19 = 94.7 (vocabulary.nearest_entries).
    assert names["nearest_entries"][0].startswith("herceptin → trastuzumab (94.7)")
