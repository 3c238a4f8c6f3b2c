"""The analysis stage end to end on a synthetic cohort drawn with a fixed seed.

The checks are independent of the plumbing: km_summary.csv is compared with
survival.km_summary run here on the same frame; counts below 5 must read "<5"; the
report must be self-contained; the disclosure audit must find nothing; no patient id
may appear in any file.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from cohort_engine import cox, report, survival
from cohort_engine.analysis import AnalysisInputs, run_analysis
from cohort_engine.subgroups import reference_level, subgroup_levels
from cohort_engine.disclosure import audit_output_dir
from cohort_engine.publish import audit
from builders import CLASS_NAMES

PL = "paclitaxel liposome"
REGIMENS = {"H": f"{PL}+trastuzumab", "HP": f"{PL}+pertuzumab+trastuzumab", "I": f"{PL}+inetetumab"}
SECOND_LINES = ["capecitabine+pyrotinib", "trastuzumab emtansine", "trastuzumab deruxtecan", "vinorelbine+trastuzumab"]
HORIZON = 1826
N_PATIENTS = 150


def _ids(n: int) -> list[str]:
    return [f"P{i:07d}" for i in range(1, n + 1)]  # shaped like real ids, so the audit would see a leak


def _cohort(rng, n: int) -> pd.DataFrame:
    ids = _ids(n)
    start = dt.date(2016, 1, 1)
    index = [start + dt.timedelta(days=int(d)) for d in rng.integers(0, 2500, n)]
    label = rng.choice(["H", "HP"], size=n, p=[0.45, 0.55])
    label[:3] = "I"  # a level of three patients: its counts must read "<5"
    age = rng.integers(28, 82, n)
    return pd.DataFrame({
        "patient_id": ids, "index_date": index, "regimen": [REGIMENS[x] for x in label], "anti_her2": label,
        "age_at_index": age.astype("int64"), "sex": "F",
        "hr_status": rng.choice(["positive", "negative", "unknown"], size=n, p=[0.55, 0.38, 0.07]),
        "de_novo": rng.random(n) < 0.4, "visceral": rng.random(n) < 0.55, "brain_mets": rng.random(n) < 0.15,
        "bone_only": rng.random(n) < 0.1, "prior_anti_her2": rng.random(n) < 0.3,
        "hospital_tier": rng.choice(["3A", "3B", "2A"], size=n, p=[0.6, 0.3, 0.1]),
        "province": rng.choice(["北京", "上海", "广东", "四川"], size=n),
        "index_year": np.array([d.year for d in index], dtype="int64"),
        "arm": None, "index_setting": "advanced", "index_line_number": np.int32(1),
    })


def _times(rng, n: int, median_months: float, censor_months: float) -> tuple[np.ndarray, np.ndarray]:
    event_time = rng.exponential(median_months * 30.4375 / np.log(2), n)
    censor_time = rng.uniform(3, censor_months, n) * 30.4375
    time = np.minimum(event_time, censor_time)
    event = (event_time <= censor_time).astype(int)
    event[time > HORIZON] = 0
    return np.minimum(np.floor(time), HORIZON).astype(int), event


def _endpoints(rng, cohort: pd.DataFrame) -> pd.DataFrame:
    ids = cohort["patient_id"].to_numpy()
    n = len(ids)
    parts = []
    # OS: few deaths (median 200 months) → not reached. TTP: exactly 3 events → "<5".
    specs = {"OS": (200.0, "death"), "rwPFS": (11.0, "progression"), "TTP": (13.0, "progression"),
             "TTF": (7.0, "discontinuation"), "TTNT": (14.0, "next_line")}
    for endpoint, (median, kind) in specs.items():
        time, event = _times(rng, n, median, 70)
        keep = np.ones(n, dtype=bool)
        if endpoint == "TTP":
            keep[rng.choice(n, min(15, n // 4), replace=False)] = False  # no assessment: not evaluable
            event = np.zeros(n, dtype=int)
            event[np.flatnonzero(keep)[:3]] = 1
        source = None
        if endpoint == "rwPFS":
            source = np.where(rng.random(n) < 0.8, "assessment", "ttnt_proxy")
        frame = pd.DataFrame({"patient_id": ids, "endpoint": endpoint, "time_days": time.astype("int64"),
                              "event": event.astype("int64"), "event_type": np.where(event == 1, kind, "censored"),
                              "source": source})
        parts.append(frame[keep])
    return pd.concat(parts, ignore_index=True)


def _lines(rng, cohort: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in cohort.itertuples(index=False):
        last = r.index_date + dt.timedelta(days=int(rng.integers(42, 200)))
        rows.append((r.patient_id, "advanced", 1, r.index_date, last, r.regimen, 6))
        if r.prior_anti_her2:
            rows.append((r.patient_id, "early", 1, r.index_date - dt.timedelta(days=900),
                         r.index_date - dt.timedelta(days=700), "docetaxel+trastuzumab", 8))
        if rng.random() < 0.65:
            start2 = last + dt.timedelta(days=int(rng.integers(30, 200)))
            second = SECOND_LINES[int(rng.choice(4, p=[0.5, 0.3, 0.17, 0.03]))]
            rows.append((r.patient_id, "advanced", 2, start2, start2 + dt.timedelta(days=90), second, 5))
            if rng.random() < 0.4:
                start3 = start2 + dt.timedelta(days=200)
                rows.append((r.patient_id, "advanced", 3, start3, start3 + dt.timedelta(days=60), "eribulin", 3))
    return pd.DataFrame(rows, columns=["patient_id", "setting", "line_number", "start_date", "last_admin_date",
                                       "regimen", "n_admin_days"])


def _exposures(lines: pd.DataFrame) -> pd.DataFrame:
    rows = []
    first = lines[(lines["setting"] == "advanced") & (lines["line_number"] == 1)]
    for i, r in enumerate(first.itertuples(index=False)):
        day = r.start_date
        while day <= r.last_admin_date:
            rows.append((r.patient_id, day, PL, 175.0 if i % 2 else 260.0, "mg/m2" if i % 2 else "mg"))
            day += dt.timedelta(days=21)
    return pd.DataFrame(rows, columns=["patient_id", "admin_date", "ingredient", "dose", "dose_unit"])


def _vitals(rng, cohort: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": cohort["patient_id"], "measure_date": cohort["index_date"],
                         "height_cm": rng.normal(160, 6, len(cohort)).round(0),
                         "weight_kg": rng.normal(60, 8, len(cohort)).round(1)})


def _labs(rng, cohort: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    rows = []
    last = lines[(lines["setting"] == "advanced") & (lines["line_number"] == 1)].set_index("patient_id")
    for r in cohort.itertuples(index=False):
        rows.append((r.patient_id, r.index_date - dt.timedelta(days=3), "ANC", 4.0, "10^9/L", 2.0, 7.5))
        rows.append((r.patient_id, r.index_date - dt.timedelta(days=3), "ALT", 25.0, "U/L", 7.0, 40.0))
        on = r.index_date + dt.timedelta(days=10)
        if on <= last.loc[r.patient_id, "last_admin_date"] + dt.timedelta(days=30):
            rows.append((r.patient_id, on, "ANC", float(rng.choice([0.4, 0.8, 1.3, 1.8, 3.0])), "10^9/L", 2.0, 7.5))
            rows.append((r.patient_id, on, "HGB", float(rng.choice([75.0, 95.0, 110.0, 130.0])), "g/L", 115, 150))
    return pd.DataFrame(rows, columns=["patient_id", "collect_date", "test", "value", "unit", "ref_low", "ref_high"])


def _adverse_events(rng, cohort: pd.DataFrame) -> pd.DataFrame:
    terms = ["peripheral neuropathy", "周围神经病变", "过敏反应", "nausea", "脱发", "hiccups of unknown kind"]
    rows = []
    for r in cohort.itertuples(index=False):
        for _ in range(int(rng.integers(0, 3))):
            rows.append((r.patient_id, r.index_date + dt.timedelta(days=int(rng.integers(0, 40))),
                         terms[int(rng.integers(0, len(terms)))], int(rng.integers(1, 4)), False))
    return pd.DataFrame(rows, columns=["patient_id", "onset_date", "term", "grade", "serious"])


def _attrition() -> pd.DataFrame:
    remaining = [6000, 5200, 1400, 900, 260, 200, 197, 152, N_PATIENTS]
    criteria = ["all valid patients", "breast cancer diagnosis", "HER2-positive", "advanced disease",
                "an advanced-setting line containing paclitaxel liposome and an anti-HER2 antibody",
                "that line is advanced line 1", "age >= 18 at index", "index date within the study period",
                "no death recorded before the index date"]
    excluded = [0] + [a - b for a, b in zip(remaining, remaining[1:])]
    return pd.DataFrame({"step": range(1, 10), "criterion": criteria, "n_remaining": remaining,
                         "n_excluded": excluded})


def _data_quality() -> pd.DataFrame:
    rows = [("ingest", "patients", "rows_read", None, 6010), ("ingest", "patients", "rows_kept", None, 6000),
            ("ingest", "patients", "duplicates_removed", None, 7), ("ingest", "patients", "rows_quarantined", None, 3),
            ("ingest", "patients", "quarantined", "invalid_sex", 3),
            ("ingest", "prescriptions", "rows_read", None, 90000),
            ("ingest", "prescriptions", "rows_kept", None, 89000),
            ("ingest", "prescriptions", "duplicates_removed", None, 0),
            ("ingest", "prescriptions", "rows_quarantined", None, 1000),
            ("ingest", "prescriptions", "quarantined", "unparseable_date", 600),
            ("ingest", "prescriptions", "quarantined", "non_positive_dose", 398),
            ("ingest", "prescriptions", "quarantined", "unknown_unit", 2),
            ("lines", "prescriptions", "rows_in", None, 89000), ("lines", "prescriptions", "rows_matched", None, 88500),
            ("lines", "prescriptions", "quarantined", "unmatched_drug_name", 500),
            ("lines", "prescriptions", "unmatched_name", "中药颗粒", 300),
            ("lines", "prescriptions", "unmatched_name", "trial drug 2020-01-05", 150),
            ("lines", "prescriptions", "unmatched_name", "维生素", 48),
            ("lines", "prescriptions", "unmatched_name", "xyz", 2),
            ("cohort", "cohort", "death_before_index", "a death recorded before the index date", 45),
            ("cohort", "biomarkers", "unreadable_result", "a HER2, ER or PR result that cannot be read", 3),
            ("endpoints", "endpoints", "negative_time", "OS", 0)]
    return pd.DataFrame(rows, columns=["stage", "table", "check", "reason", "n"])


def synthetic_inputs(study, *, n: int = N_PATIENTS, seed: int = 20240611, safety_sources: bool = True
                     ) -> AnalysisInputs:
    rng = np.random.default_rng(seed)
    cohort = _cohort(rng, n)
    endpoints = _endpoints(rng, cohort)
    lines = _lines(rng, cohort)
    index_lines = lines[(lines["setting"] == "advanced") & (lines["line_number"] == 1)].set_index("patient_id")
    cohort["index_last_admin_date"] = cohort["patient_id"].map(index_lines["last_admin_date"])  # as gold/cohort has it
    os_last_contact = endpoints[endpoints["endpoint"] == "OS"].assign(
        time_days=lambda f: (f["time_days"] * 0.9).astype("int64"))
    gap60 = endpoints[~endpoints["patient_id"].isin(cohort["patient_id"].iloc[:2])]
    gap60 = gap60.assign(time_days=lambda f: (f["time_days"] * 0.95).astype("int64"))
    return AnalysisInputs(
        study=study, cohort=cohort, endpoints=endpoints, attrition=_attrition(), data_quality=_data_quality(),
        lines=lines, exposures=_exposures(lines), class_names=CLASS_NAMES, vitals=_vitals(rng, cohort),
        labs=_labs(rng, cohort, lines) if safety_sources else None,
        adverse_events=_adverse_events(rng, cohort) if safety_sources else None,
        sensitivity={"OS censored at last contact": os_last_contact, "lines rebuilt with a 60-day gap": gap60,
                     "lines rebuilt with a 180-day gap": endpoints.copy()})


@pytest.fixture(scope="module")
def run(seed_study, tmp_path_factory):
    inputs = synthetic_inputs(seed_study)
    out = tmp_path_factory.mktemp("analysis")
    return inputs, out, run_analysis(inputs, out)


EXPECTED_FILES = ["tables/km_summary.csv", "tables/subgroups.csv", "tables/table1.csv", "tables/safety.csv",
                  "tables/patterns.csv", "tables/sensitivity.csv", "tables/line_pathways.csv", "report.html",
                  "figures/attrition_flow.png", "figures/sequences_sunburst.png", "figures/line_pathways.png",
                  "figures/line_pathways.svg"]


def test_every_file_exists(run):
    _, out, result = run
    endpoints = ["OS", "rwPFS", "TTP", "TTF", "TTNT"]
    # no main-vs-sensitivity figure for TTP: 3 events in every analysis, so no curve may be drawn
    expected = EXPECTED_FILES + [f"figures/{kind}_{e}.png" for e in endpoints for kind in ("km", "forest")]
    expected += [f"figures/km_sensitivity_{e}.png" for e in endpoints if e != "TTP"]
    for name in expected:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        assert result.files[name] == out / name
    assert sorted(result.files) == sorted(expected)
    for name in expected:
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_pathways_sankey_is_in_the_report_and_balances(run):
    # The Sankey draws the shown pathways: its step-1 flows add up to the 150 patients less those
    # pooled, which the patterns table gives; no flow is small, so the CSV shows every count; the
    # inline SVG is the one written under figures/.
    from cohort_engine.pathways import OTHER_PATHWAYS, flows_table, pathway_nodes, pooled_pathways
    from cohort_engine.patterns import PATHWAY_SECTION
    inputs, out, _ = run
    pooled = pooled_pathways(pathway_nodes(inputs.cohort, inputs.lines,
                                           inputs.endpoints[inputs.endpoints["endpoint"] == "OS"]), min_cell=5)
    exact = flows_table(pooled.shown_nodes)
    assert exact.loc[exact["step"] == 1, "n"].sum() == N_PATIENTS - pooled.pooled
    patterns = pd.read_csv(out / "tables/patterns.csv", dtype=str, keep_default_na=False)
    section = patterns[patterns["section"] == PATHWAY_SECTION].set_index("item")["n"]
    assert int(section.get(OTHER_PATHWAYS, "0")) == pooled.pooled
    assert section.astype(int).sum() == N_PATIENTS and (section.astype(int) >= 5).all()
    flows = pd.read_csv(out / "tables/line_pathways.csv", dtype=str, keep_default_na=False)
    assert flows[["step", "source", "target", "n"]].to_numpy().tolist() == exact.astype(str).to_numpy().tolist()
    svg = (out / "figures/line_pathways.svg").read_text(encoding="utf-8")
    assert svg in (out / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def arms_run(seed_study, tmp_path_factory):
    # The seed inputs split into two arms by anti-HER2 label: H (with the three I patients left
    # in no arm) and HP.
    from cohort_engine.regimen_rules import Arm, RegimenRule
    arms = (Arm("h", RegimenRule(all_of=("trastuzumab",)), label="H arm"),
            Arm("hp", RegimenRule(all_of=("pertuzumab",)), label="HP arm"))
    inputs = synthetic_inputs(dataclasses.replace(seed_study, arms=arms))
    inputs.cohort["arm"] = inputs.cohort["anti_her2"].map({"H": "h", "HP": "hp"})
    out = tmp_path_factory.mktemp("arms")
    return inputs, out, run_analysis(inputs, out)


def test_a_study_with_arms_describes_each_arm(arms_run):
    inputs, out, result = arms_run
    for name in ("table1_by_arm", "km_summary_by_arm", "patterns_by_arm"):
        assert f"tables/{name}.csv" in result.files
    km = pd.read_csv(out / "tables/km_summary_by_arm.csv", dtype=str, keep_default_na=False)
    os_rows = km[km["endpoint"] == "OS"].set_index("arm")
    arm_sizes = inputs.cohort["arm"].value_counts()
    assert os_rows.index.tolist() == ["h", "hp"]  # the study's order
    assert [int(os_rows.loc[a, "n"]) for a in ("h", "hp")] == [arm_sizes["h"], arm_sizes["hp"]]
    assert arm_sizes.sum() == N_PATIENTS - 3  # the I patients are in no arm
    table1 = pd.read_csv(out / "tables/table1_by_arm.csv", dtype=str, keep_default_na=False)
    patients = table1[table1["characteristic"] == "patients"].set_index("arm")["n"]
    assert patients.to_dict() == {"all": str(N_PATIENTS), "h": str(arm_sizes["h"]), "hp": str(arm_sizes["hp"])}
    patterns = pd.read_csv(out / "tables/patterns_by_arm.csv", dtype=str, keep_default_na=False)
    assert patterns["arm"].drop_duplicates().tolist() == ["h", "hp"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="arms"' in html and "SMD, hp vs h" in html and "HP arm" in html and "-0.00" not in html
    assert {f"figures/km_{e}_by_arm.png" for e in ("OS", "rwPFS")} <= set(result.files)


@pytest.fixture(scope="module")
def comparison_run(seed_study, tmp_path_factory):
    # The arms above (H, HP; the three I patients in no arm), compared on four covariates.
    from cohort_engine.regimen_rules import Arm, RegimenRule
    from cohort_engine.study_config import ComparisonConfig
    arms = (Arm("h", RegimenRule(all_of=("trastuzumab",)), label="H arm"),
            Arm("hp", RegimenRule(all_of=("pertuzumab",)), label="HP arm"))
    config = ComparisonConfig(treated="hp", covariates=("age_at_index", "hr_status", "de_novo", "visceral"),
                              safety_terms=("Neutrophil count decreased",))
    inputs = synthetic_inputs(dataclasses.replace(seed_study, arms=arms, comparison=config))
    inputs.cohort["arm"] = inputs.cohort["anti_her2"].map({"H": "h", "HP": "hp"})
    out = tmp_path_factory.mktemp("comparison")
    return inputs, out, run_analysis(inputs, out)


def test_a_comparative_study_publishes_its_comparison_and_keeps_its_analysis_data(comparison_run):
    from cohort_engine.comparative import DATASET_COLUMNS, MATCHED, primary_method_name
    from cohort_engine.propensity import patient_weights
    inputs, out, result = comparison_run
    study = inputs.study
    for name in ("balance", "comparison", "safety_comparison", "comparison_weights"):
        assert f"tables/{name}.csv" in result.files
    # gold/comparison_dataset: every patient of the two arms once per endpoint they have.
    dataset = result.comparison_dataset
    assert list(dataset.columns) == DATASET_COLUMNS and (dataset["study"] == study.name).all()
    in_arms = inputs.cohort.loc[inputs.cohort["arm"].notna(), "patient_id"]
    expected = inputs.endpoints[inputs.endpoints["patient_id"].isin(in_arms)]
    assert len(dataset) == len(expected) and dataset["patient_id"].nunique() == N_PATIENTS - 3
    weights = patient_weights(inputs.cohort, study.variables, study.arms, study.comparison)
    by_patient = dataset.drop_duplicates("patient_id").set_index("patient_id")
    ids = inputs.cohort.loc[weights.index, "patient_id"]
    assert np.allclose(by_patient.loc[ids, "weight"].to_numpy(dtype=float), weights["weight_ate"].to_numpy())
    assert np.allclose(by_patient.loc[ids, "propensity_score"].to_numpy(dtype=float), weights["score"].to_numpy())
    assert by_patient["matched_set"].notna().sum() == weights["pair"].notna().sum()
    # comparison.csv: every endpoint under each of the three methods, the primary first.
    table = pd.read_csv(out / "tables/comparison.csv", dtype=str, keep_default_na=False)
    assert table["method"].drop_duplicates().tolist() == [primary_method_name("ATE"), "IPTW, ATT", MATCHED]
    assert set(table["endpoint"]) == set(inputs.endpoints["endpoint"])
    safety = pd.read_csv(out / "tables/safety_comparison.csv", dtype=str, keep_default_na=False)
    assert safety["outcome"].drop_duplicates().tolist() == ["any grade ≥ 3 event", "Neutrophil count decreased"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="comparison"' in html and "E-value of the primary hazard ratio" in html
    assert {"figures/comparison_love_plot.png", "figures/comparison_overlap.png",
            "figures/comparison_km_OS.png"} <= set(result.files)
    assert audit(out, study) == []


def test_arms_too_small_to_compare_are_said_so_not_compared(seed_study, tmp_path):
    # Six patients: three in arm hp, none in h. No model is fitted; the report says why, and the
    # lake's comparison_dataset is empty.
    from cohort_engine.regimen_rules import Arm, RegimenRule
    from cohort_engine.study_config import ComparisonConfig
    arms = (Arm("h", RegimenRule(all_of=("trastuzumab",)), label="H arm"),
            Arm("hp", RegimenRule(all_of=("pertuzumab",)), label="HP arm"))
    study = dataclasses.replace(seed_study, arms=arms, comparison=ComparisonConfig(treated="hp", covariates=("de_novo",)))
    inputs = synthetic_inputs(study, n=6)
    inputs.cohort["arm"] = inputs.cohort["anti_her2"].map({"H": "h", "HP": "hp"})
    assert inputs.cohort["arm"].value_counts().to_dict() == {"hp": 3}
    result = run_analysis(inputs, tmp_path)
    assert result.comparison_dataset is not None and result.comparison_dataset.empty
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "The arms are not compared: H arm and HP arm have fewer than 5 patients." in html
    assert not any(name.startswith("tables/comparison") for name in result.files)


def test_the_balance_table_withholds_a_level_of_few_patients(comparison_run):
    # Each arm's patients of a level are counts: none from 1 to 4 is shown, and the shares and
    # SMDs beside a withheld count are withheld with it.
    _, out, _ = comparison_run
    balance = pd.read_csv(out / "tables/balance.csv", dtype=str, keep_default_na=False)
    for arm in ("treated", "comparator"):
        counts = balance[f"{arm}_n_before"]
        assert not counts.isin(["1", "2", "3", "4"]).any()
        withheld = counts.isin(["<5", "*"])
        assert (balance.loc[withheld, f"{arm}_before"] == "*").all()
        assert (balance.loc[withheld, "smd_before"] == "*").all()
    # Whatever Table 1 by arm withholds of an arm's count, the balance table withholds too: the
    # two tables hold the same counts, so one must not give away what the other hides.
    by_arm = pd.read_csv(out / "tables/table1_by_arm.csv", dtype=str, keep_default_na=False)
    hidden = by_arm[by_arm["n"].isin(["<5", "*"])].set_index(["arm", "characteristic", "level"]).index
    checked = 0
    for row in balance.itertuples(index=False):
        for side, arm in (("treated", "hp"), ("comparator", "h")):
            if (arm, row.characteristic, row.level) in hidden:
                assert getattr(row, f"{side}_n_before") in ("<5", "*")
                checked += 1
    assert checked > 0  # the hr_status "unknown" level is withheld in Table 1 by arm


def test_a_rate_with_fewer_than_five_at_risk_is_withheld():
    # Six patients, no censoring: at 6 months (day 182) five are still at risk (times 200 …
    # 1900), so S = 5/6 stands; at 24 months (day 730) three are (800, 1500, 1900): withheld
    # with its CI, as the curve stops there.
    from cohort_engine.efficacy import without_thin_rates
    endpoints = pd.DataFrame({"endpoint": "OS", "time_days": [100, 200, 400, 800, 1500, 1900], "event": 1})
    summary = survival.km_summary(endpoints, rate_months=(6, 24))
    out = without_thin_rates(summary, endpoints, (6, 24), min_cell=5).iloc[0]
    assert out["rate_6m"] == pytest.approx(5 / 6)
    assert summary.iloc[0]["rate_24m"] == pytest.approx(3 / 6)
    assert np.isnan(out["rate_24m"]) and np.isnan(out["rate_24m_ci_low"]) and np.isnan(out["rate_24m_ci_high"])


def test_km_summary_matches_survival_on_the_same_data(run):
    inputs, out, _ = run
    csv = pd.read_csv(out / "tables/km_summary.csv", dtype=str, keep_default_na=False)
    assert csv.columns.tolist() == [
        "endpoint", "n", "events", "median_months", "median_ci_low", "median_ci_high", "ci_method",
        "rate_6m", "rate_6m_ci_low", "rate_6m_ci_high", "rate_12m", "rate_12m_ci_low", "rate_12m_ci_high",
        "rate_24m", "rate_24m_ci_low", "rate_24m_ci_high", "rate_36m", "rate_36m_ci_low", "rate_36m_ci_high",
        "rate_60m", "rate_60m_ci_low", "rate_60m_ci_high"]
    expected = survival.km_summary(inputs.endpoints, ci_method="log-log")
    assert csv["endpoint"].tolist() == ["OS", "rwPFS", "TTP", "TTF", "TTNT"] == expected["endpoint"].tolist()
    for got, want in zip(csv.itertuples(index=False), expected.itertuples(index=False)):
        assert got.n == str(want.n)  # 150, or 135 for TTP (15 not evaluable)
        assert got.events == (str(want.events) if want.events >= 5 else "<5")
        times = inputs.endpoints.loc[inputs.endpoints["endpoint"] == want.endpoint, "time_days"]
        thin = {f"rate_{m}m": (times >= np.floor(m * 30.4375)).sum() < 5 for m in (12, 60)}
        for col in ("median_months", "median_ci_low", "median_ci_high", "rate_12m", "rate_60m_ci_low"):
            value = getattr(want, col)
            if want.events < 5:
                assert getattr(got, col) == "*"
            elif np.isnan(value) or thin.get(col.replace("_ci_low", ""), False):
                assert getattr(got, col) == ""
            else:
                assert float(getattr(got, col)) == pytest.approx(value)
        assert got.ci_method == "log-log"
    rows = csv.set_index("endpoint")
    # TTP has exactly 3 events among 135 evaluable patients (built so): "<5", and its median and
    # rates are withheld with it (a 6-month rate of 99.3% would say "1 event").
    assert (rows.loc["TTP", "n"], rows.loc["TTP", "events"]) == ("135", "<5")
    assert {rows.loc["TTP", c] for c in csv.columns[3:] if c != "ci_method"} == {"*"}
    # OS (18 deaths, median 200 months by construction) is not reached: empty, not 0, not NaN;
    # rwPFS (11 months) is reached.
    assert int(rows.loc["OS", "events"]) >= 5 and rows.loc["OS", "median_months"] == ""
    assert rows.loc["rwPFS", "median_months"] != ""


def test_subgroups_table(run):
    inputs, out, _ = run
    csv = pd.read_csv(out / "tables/subgroups.csv", dtype=str, keep_default_na=False)
    assert set(csv["factor"]) == set(inputs.study.analysis.subgroups)
    assert set(csv["endpoint"]) == {"OS", "rwPFS", "TTP", "TTF", "TTNT"}
    anti = csv[(csv["endpoint"] == "rwPFS") & (csv["factor"] == "anti_her2")].set_index("level")
    # reference H (trastuzumab alone); I has 3 patients → "<5", and within the partition
    # H + HP + I = 150 the next smallest count is withheld too: with I small and no other level
    # outside the comparison to take instead, that is H (72 < 75), the reference. Its events
    # withheld, no hazard ratio of the factor is shown: each CI carries the reference's events.
    assert set(anti["reference"]) == {"H"} and anti["is_reference"].to_dict() == {"H": "True", "HP": "False",
                                                                                   "I": "False"}
    assert anti.loc["I", "n"] == "<5" and anti.loc["H", ["n", "events"]].tolist() == ["*", "*"]
    assert anti.loc["HP", ["n", "events"]].tolist() == ["75", "62"]
    assert anti.loc["I", "median_months"] == "*"
    assert (anti[["hr", "hr_ci_low", "hr_multivariable"]] == "*").all().all()
    # §8 compares H vs HP: I is shown but not in the log-rank test nor the Cox model.
    assert anti["compared"].to_dict() == {"H": "True", "HP": "True", "I": "False"}
    assert (anti.loc["I", "hr"], anti.loc["I", "logrank_p"], anti.loc["I", "hr_multivariable"]) == ("*", "", "*")
    assert anti.loc["I", "note"] == "not in the comparison (H vs HP)"
    # The exact HR of HP vs H (before the gate) and the log-rank p equal a Cox model and a test
    # run here on H and HP.
    from cohort_engine.subgroups import subgroup_table
    levels = subgroup_levels(inputs.cohort, inputs.study, ["anti_her2"])
    data = inputs.endpoints[inputs.endpoints["endpoint"] == "rwPFS"].merge(levels, on="patient_id")
    data = data[data["anti_her2"].isin(["H", "HP"])]
    by_level = cox.cox_by_level(data, "anti_her2", reference="H").set_index("level")
    exact = subgroup_table(inputs.endpoints[inputs.endpoints["endpoint"] == "rwPFS"], levels,
                           dataclasses.replace(inputs.study, analysis=dataclasses.replace(
                               inputs.study.analysis, subgroups=("anti_her2",)))).set_index("level")
    assert exact.loc["HP", "hr"] == pytest.approx(by_level.loc["HP", "hr"])
    assert float(anti.loc["H", "logrank_p"]) == pytest.approx(survival.logrank(data, "anti_her2").p_value)


def test_sensitivity_table(run):
    inputs, out, _ = run
    csv = pd.read_csv(out / "tables/sensitivity.csv", dtype=str, keep_default_na=False)
    rw = csv[csv["endpoint"] == "rwPFS"].set_index("analysis")
    assert list(rw.index) == ["main analysis", "rwPFS from assessments only", "lines rebuilt with a 60-day gap",
                              "lines rebuilt with a 180-day gap"]
    assessments = inputs.endpoints[(inputs.endpoints["endpoint"] == "rwPFS")
                                   & (inputs.endpoints["source"] == "assessment")]
    assert rw.loc["rwPFS from assessments only", "n"] == str(len(assessments))
    main_events = inputs.endpoints[inputs.endpoints["endpoint"] == "rwPFS"]["event"].sum()
    assert rw.loc["rwPFS from assessments only", "events_main"] == str(main_events)
    # the 60-day-gap cohort lost 2 of 150 patients: 148 would reveal those two, so it is withheld;
    # its median and rates stay (they are the point of the analysis), equal to a fit made here
    gap60 = rw.loc["lines rebuilt with a 60-day gap"]
    assert (gap60["n"], gap60["n_main"], rw.loc["main analysis", "n_main"]) == ("*", "150", "")
    frame = inputs.sensitivity["lines rebuilt with a 60-day gap"]
    fit = survival.km_summary(frame[frame["endpoint"] == "rwPFS"], rate_months=(12,)).iloc[0]
    assert float(gap60["median_months"]) == pytest.approx(fit["median_months"])
    assert float(gap60["rate_12m"]) == pytest.approx(fit["rate_12m"])
    os_rows = csv[csv["endpoint"] == "OS"]["analysis"].tolist()
    assert os_rows == ["main analysis", "OS censored at last contact", "lines rebuilt with a 60-day gap",
                       "lines rebuilt with a 180-day gap"]


def test_report_is_self_contained_and_has_every_section(run):
    _, out, _ = run
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", page, re.IGNORECASE)
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", page)
    assert len(images) == 1 + 1 + 5 + 5 + 4  # flow, sunburst, KM, forest, sensitivity KM (not TTP)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    headings = re.findall(r"<h2 id=\"[^\"]+\">([^<]+)</h2>", page)
    assert headings == ["Data quality", "Attrition", "Table 1: characteristics at the index date",
                        "Patterns of use", "Efficacy", "Subgroups", "Sensitivity analyses", "Safety",
                        "Methods notes"]
    assert "log-log" in page and "not reached" in page
    assert "(withheld: looks like a date or an identifier)" in page  # the unmatched name holding a date


def test_audit_finds_nothing_and_no_patient_id_anywhere(run, seed_study):
    inputs, out, _ = run
    assert audit(out, seed_study) == []
    ids = inputs.cohort["patient_id"].tolist()
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(pid.encode() in data for pid in ids), path.name


def test_small_counts_never_reach_the_files(run, seed_study):
    # an independent look at the CSVs: no cell of a count column holds 1-4
    _, out, _ = run
    assert audit_output_dir(out, min_cell=5, allowed_dates=[seed_study.data_cutoff, seed_study.study_period.start])\
        == []
    table1 = pd.read_csv(out / "tables/table1.csv", dtype=str, keep_default_na=False)
    anti = table1[table1["characteristic"] == "anti-HER2 label"].set_index("level")
    assert anti.loc["I", "n"] == "<5" and anti.loc["I", "percent"] == "*"
    # age bands young to old, not in text order
    assert table1.loc[table1["characteristic"] == "age group", "level"].tolist() == ["<50", "50-64", ">=65"]


def test_safety_table_from_labs_and_records(run):
    inputs, out, result = run
    csv = pd.read_csv(out / "tables/safety.csv", dtype=str, keep_default_na=False)
    assert {"lab", "record"} == set(csv["source"]) and "unmapped term" in set(csv["term"])
    events = result.safety_events
    assert events.columns.tolist() == ["patient_id", "term", "grade", "source", "onset_date"]
    # patients with an ANC in the window and a grade >= 1 value: compare with the CSV (>= 5 here)
    anc = csv[csv["term"] == "Neutrophil count decreased"].iloc[0]
    n_anc = events[(events["term"] == "Neutrophil count decreased")]["patient_id"].nunique()
    assert anc["any_grade_n"] == str(n_anc) and float(anc["any_grade_percent"]) == pytest.approx(100 * n_anc / 150)


def test_safety_not_available_when_sources_absent(seed_study, tmp_path):
    inputs = synthetic_inputs(seed_study, n=60, seed=3, safety_sources=False)
    result = run_analysis(inputs, tmp_path)
    assert result.safety_events.empty
    csv = pd.read_csv(tmp_path / "tables/safety.csv", dtype=str, keep_default_na=False)
    assert csv["term"].tolist() == ["laboratory toxicities", "recorded adverse events"]
    assert (csv["any_grade_n"] == "").all() and csv["note"].str.startswith("not available").all()
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    safety = page[page.index('<h2 id="safety">'):page.index('<h2 id="methods">')]
    assert "Laboratory toxicities: not available" in safety and "Recorded adverse events: not available" in safety
    assert "<table" not in safety  # no table of zeros


def test_an_estimate_with_its_interval_is_kept_on_one_line():
    # A column headed "(95% CI)" is classed "interval", which the page's style keeps unbroken.
    frame = pd.DataFrame({"endpoint": ["OS"], "n": [120], "median, months (95% CI)": ["12.3 (9.8–15.6)"]})
    assert report.html_table(frame) == (
        '<table><thead><tr><th class="text">endpoint</th><th>n</th><th class="text interval">median, months '
        '(95% CI)</th></tr></thead><tbody><tr><td class="text">OS</td><td>120</td><td class="text interval">12.3 '
        '(9.8–15.6)</td></tr></tbody></table>')
    assert "td.interval{white-space:nowrap}" in report.CSS


def test_reference_levels():
    assert reference_level(pd.Series(["HP", "H", "HP"]), "H") == "H"
    # nobody with the preferred reference: the largest level
    assert reference_level(pd.Series(["HP", "I", "HP"]), "H") == "HP"
    assert reference_level(pd.Series(["3B", "3A", "3B", None])) == "3B"


def test_a_subgroup_of_unknown_level_is_shown_and_protected(seed_study):
    # Hospital tier 3A: 7 patients, 5 events; 3B: 6 patients, 6 events; unknown: 3, no event.
    # Worked by hand: the unknown row makes the levels add up to n = 16. Its n (3) reads "<5",
    # and 16 − 7 would give it away, so 3B's n is withheld too. 3A's 5 events among 7 name its
    # 2 censored patients, and the unknown level's 0 among 3 its 3: both withheld; 11 events in
    # all − 6 would then give 3A's 5 back, so 3B's 6 go too.
    from cohort_engine.subgroups import SUBGROUP_GATE, UNKNOWN_LEVEL, subgroup_table
    from cohort_engine.publish import shown
    import dataclasses
    study = dataclasses.replace(seed_study, analysis=dataclasses.replace(seed_study.analysis,
                                                                         subgroups=("hospital_tier",)))
    tiers = ["3A"] * 7 + ["3B"] * 6 + [None] * 3
    events = [1, 1, 1, 1, 1, 0, 0] + [1] * 6 + [0] * 3
    ids = [f"Q{i}" for i in range(16)]
    endpoints = pd.DataFrame({"patient_id": ids, "endpoint": "OS", "time_days": [10 * (i + 1) for i in range(16)],
                              "event": events, "event_type": ["death" if e else "censored" for e in events],
                              "source": None})
    levels = pd.DataFrame({"patient_id": ids, "hospital_tier": tiers})
    exact = subgroup_table(endpoints, levels, study).set_index("level")
    assert list(exact.index) == ["3A", "3B", UNKNOWN_LEVEL]
    assert exact["compared"].tolist() == [True, True, False]
    assert exact["n"].tolist() == [7, 6, 3] and exact["events"].tolist() == [5, 6, 0]
    assert exact.loc[UNKNOWN_LEVEL, "note"] == "value unknown: not in the comparison"
    assert np.isnan(exact.loc[UNKNOWN_LEVEL, "hr"])
    table = shown(exact.reset_index(), SUBGROUP_GATE, study).set_index("level")
    assert table["n"].tolist() == [7, "*", "<5"]
    assert table["events"].tolist() == ["*", "*", "*"]


def _tier_endpoints(events_by_tier):
    """OS of patients whose tiers take turns along the time axis (3A, 2A, 3B, 3A, …: no tier's
    times lie apart, so the Cox model has a finite maximum); {tier: (patients, events)}, the
    first patients of a tier in time having the events."""
    order = ["3A", "2A", "3B"] * 10
    left = {tier: n for tier, (n, _) in events_by_tier.items()}
    tiers = []
    for tier in order:
        if left[tier]:
            tiers.append(tier)
            left[tier] -= 1
    seen = dict.fromkeys(events_by_tier, 0)
    events = []
    for tier in tiers:
        events.append(1 if seen[tier] < events_by_tier[tier][1] else 0)
        seen[tier] += 1
    ids = [f"Q{i}" for i in range(len(tiers))]
    endpoints = pd.DataFrame({"patient_id": ids, "endpoint": "OS", "time_days": [10 * (i + 1) for i in range(len(ids))],
                              "event": events, "event_type": ["death" if e else "censored" for e in events],
                              "source": None})
    return endpoints, pd.DataFrame({"patient_id": ids, "hospital_tier": tiers})


def test_a_hazard_ratio_of_fewer_than_five_events_is_not_shown(seed_study):
    # 3A (reference) 10 patients, 8 events; 2A 8 patients, 6 events; 3B 6 patients, 3 events.
    # 3B's 3 events read "<5", and its CI would give them back (var log HR ≈ 1/3 + 1/8): 3B has
    # no hazard ratio from either model, and says why; 2A's 6 events keep theirs.
    from cohort_engine.subgroups import few_events_note, subgroup_table
    study = dataclasses.replace(seed_study, analysis=dataclasses.replace(
        seed_study.analysis, subgroups=("hospital_tier",), references=(("hospital_tier", "3A"),)))
    exact = subgroup_table(*_tier_endpoints({"3A": (10, 8), "2A": (8, 6), "3B": (6, 3)}), study).set_index("level")
    assert exact["events"].to_dict() == {"3A": 8, "2A": 6, "3B": 3}
    assert exact.loc["3A", "hr"] == 1.0 and exact.loc["3A", "note"] == "reference"
    assert exact.loc["2A", ["hr", "hr_ci_low", "hr_ci_high", "hr_multivariable"]].notna().all()
    assert exact.loc["3B", ["hr", "hr_ci_low", "hr_ci_high", "hr_multivariable", "hr_multivariable_ci_low",
                            "hr_multivariable_ci_high"]].isna().all()
    assert few_events_note(5) == "fewer than 5 events in the level or its reference: no hazard ratio"
    assert exact.loc["3B", ["note", "note_multivariable"]].tolist() == [few_events_note(5)] * 2
    # The reference with 4 events: every ratio would read against those 4, so none is shown.
    exact = subgroup_table(*_tier_endpoints({"3A": (10, 4), "2A": (8, 6), "3B": (6, 5)}), study).set_index("level")
    assert exact.loc["3A", "hr"] == 1.0
    assert exact.loc[["2A", "3B"], ["hr", "hr_multivariable"]].isna().all().all()
    assert exact.loc[["2A", "3B"], "note"].tolist() == [few_events_note(5)] * 2


def test_an_endpoint_s_n_of_a_level_is_withheld_where_few_of_the_level_lack_it(seed_study):
    # Tier 2A has 10 patients in the cohort, 8 of them with the endpoint: 10 − 8 = 2 patients it
    # cannot evaluate, so its n is withheld ("*"); 3A (10 of 10) and 3B (6 of 6) stand.
    from cohort_engine.publish import shown
    from cohort_engine.subgroups import SUBGROUP_GATE, subgroup_table
    study = dataclasses.replace(seed_study, analysis=dataclasses.replace(
        seed_study.analysis, subgroups=("hospital_tier",), references=(("hospital_tier", "3A"),)))
    endpoints, levels = _tier_endpoints({"3A": (10, 8), "2A": (8, 6), "3B": (6, 3)})
    levels = pd.concat([levels, pd.DataFrame({"patient_id": ["X1", "X2"], "hospital_tier": "2A"})], ignore_index=True)
    exact = subgroup_table(endpoints, levels, study).set_index("level")
    assert exact[["n", "level_patients"]].to_dict("list") == {"n": [10, 8, 6], "level_patients": [10, 10, 6]}
    table = shown(exact.reset_index(), SUBGROUP_GATE, study).set_index("level")
    assert table.loc["2A", "n"] == "*" and table.loc["3A", "n"] == 10


def test_proxy_events_are_not_given_away_by_the_assessments_only_analysis(seed_study):
    # Main rwPFS: 20 patients, 16 assessed (10 events) and 4 by the proxy (3 events): 13 events.
    # From assessments only: n 16, events 10. Worked by hand: 20 − 16 = 4 proxy patients and
    # 13 − 10 = 3 proxy events would both be named, so that row's n and events are withheld, and
    # its median and rates with the events; the main row stands (20, 13).
    from cohort_engine.sensitivity import ASSESSMENTS_ONLY, MAIN, sensitivity_gate, sensitivity_table
    from cohort_engine.publish import shown
    events = [1] * 10 + [0] * 6 + [1] * 3 + [0]
    main = pd.DataFrame({"patient_id": [f"Q{i}" for i in range(20)], "endpoint": "rwPFS",
                         "time_days": [30 * (i + 1) for i in range(20)], "event": events,
                         "event_type": ["progression" if e else "censored" for e in events],
                         "source": ["assessment"] * 16 + ["ttnt_proxy"] * 4})
    table = sensitivity_table({MAIN: main, ASSESSMENTS_ONLY: main[main["source"] == "assessment"]}, seed_study)
    assert table[["n", "events"]].values.tolist() == [[20, 13], [16, 10]]
    assert table.loc[1, ["n_main", "events_main"]].tolist() == [20.0, 13.0]
    out = shown(table, sensitivity_gate(table), seed_study).set_index("analysis")
    assert out.loc[MAIN, ["n", "events"]].tolist() == [20, 13]
    assert out.loc[ASSESSMENTS_ONLY, ["n", "events", "median_months", "rate_12m"]].tolist() == ["*", "*", "*", "*"]


def test_patterns_cross_tables_publish_no_small_cell_beyond_the_margins(run):
    # Rows of a "… by anti-HER2 label" table holding a count of 1–4 are pooled until no pooled
    # count is: what is left to read as "<5" is a pooled row that took every row, i.e. the label
    # margins (label I has 3 patients in this cohort, so every table pools all its rows).
    from cohort_engine.disclosure import POOLED
    _, out, _ = run
    csv = pd.read_csv(out / "tables/patterns.csv", dtype=str, keep_default_na=False)
    labels = csv[csv["section"] == "anti-HER2 label"].set_index("item")["n"].to_dict()
    for section in ("index year by anti-HER2 label", "hospital tier by anti-HER2 label",
                    "province by anti-HER2 label"):
        rows = csv[csv["section"] == section]
        split = rows["item"].str.split(" | ", n=1, regex=False)
        small = rows["n"].isin(["<5", "*"])
        assert (split.str[0][small] == POOLED).all(), section
        pooled = rows[split.str[0] == POOLED]
        if len(pooled) and small.any():  # every row pooled: the margins themselves
            assert len(rows) == len(pooled)
            assert dict(zip(split.str[1][split.str[0] == POOLED], pooled["n"])) == labels


def test_the_forest_plot_draws_only_the_hazard_ratios_the_gate_shows():
    # Reference H, HP's ratio withheld by the gate ("*"), 2A's shown: HP gets no marker and reads
    # "HR withheld (*)"; a level outside the comparison gets no row.
    from cohort_engine.report_sections import forest_rows
    shown = pd.DataFrame({"factor": "f", "level": ["H", "HP", "I", "2A"], "reference": "H",
                          "compared": [True, True, False, True], "n": ["*", 75, "<5", 40],
                          "hr": ["*", "*", "*", 1.5], "hr_ci_low": ["*", "*", "*", 1.1],
                          "hr_ci_high": ["*", "*", "*", 2.0]})
    rows = forest_rows(shown, {"f": "factor"})
    assert rows["label"].tolist() == ["factor: H", "factor: HP", "factor: 2A"]
    assert rows["text"].tolist() == ["n *  reference", "n 75  HR withheld (*)", "n 40  HR 1.50 (1.10–2.00)"]
    assert rows["hr"].isna().tolist() == [True, True, False] and rows["ci_low"].isna().tolist() == [True, True, False]
