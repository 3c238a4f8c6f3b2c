"""The propensity score, its weights and its matched pairs: against R's glm and MatchIt on
400 patients (tests/reference/comparison, read without R) and by hand on eight."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cohort_engine.baseline_variables import AgeVariable, HospitalTierVariable, MetastaticSiteVariable
from cohort_engine.conf_folder import default_study_path
from cohort_engine.config import load_study
from cohort_engine.propensity import (PATIENT_COLUMNS, ate_weights, att_weights, covariate_blocks, design_matrix,
                                      effective_sample_size, kept_by_trimming, matched_pairs, patient_weights,
                                      reference_level, treated_and_comparator, weight_summary)
from cohort_engine.regimen_rules import Arm, RegimenRule
from cohort_engine.study_config import ComparisonConfig

from conftest import REPO

REFERENCE = REPO / "tests" / "reference" / "comparison"
ARMS = (Arm("A", RegimenRule()), Arm("B", RegimenRule()))


@pytest.fixture(scope="module")
def arms_study():
    return load_study(default_study_path({}).parent / "her2_taxane_arms_first_line.yaml")


def reference_cohort() -> pd.DataFrame:
    """cohort.csv as gold/cohort holds it: de novo true, false or null."""
    cohort = pd.read_csv(REFERENCE / "cohort.csv", dtype={"patient_id": str, "de_novo": str})
    cohort["de_novo"] = cohort["de_novo"].map({"true": True, "false": False})
    return cohort


@pytest.fixture(scope="module")
def reference(arms_study):
    comparison = ComparisonConfig(treated="A", covariates=arms_study.comparison.covariates)
    cohort = reference_cohort()
    return cohort, patient_weights(cohort, arms_study.variables, ARMS, comparison)


def test_the_scores_are_rs_glm_fitted_values(reference):
    # The shipped arms study's covariates (age, HR, de novo, three sites, earlier anti-HER2,
    # tier, province, index year) on 400 patients, some values missing.
    cohort, patients = reference
    r = pd.read_csv(REFERENCE / "r_scores.csv", dtype={"patient_id": str})
    assert list(patients.columns) == PATIENT_COLUMNS and (patients.index == cohort.index).all()
    assert patients["treated"].sum() == 209 and patients["kept"].all()
    assert np.abs(patients["score"].to_numpy() - r["score"].to_numpy()).max() < 1e-8
    assert np.abs(patients["logit"].to_numpy() - r["logit"].to_numpy()).max() < 1e-8
    assert np.abs(patients["weight_ate"].to_numpy() - r["weight_ate"].to_numpy()).max() < 1e-7
    assert np.abs(patients["weight_att"].to_numpy() - r["weight_att"].to_numpy()).max() < 1e-7


def test_effective_sample_sizes_and_largest_weights_as_r_computes_them(reference):
    _, patients = reference
    ours = weight_summary(patients).set_index(["weights", "arm"])
    r = pd.read_csv(REFERENCE / "r_weights.csv").set_index(["weights", "arm"])
    for key, row in r.iterrows():
        assert ours.loc[key, "effective_sample_size"] == pytest.approx(row["effective_sample_size"], rel=1e-9)
        assert ours.loc[key, "largest_weight"] == pytest.approx(row["largest_weight"], rel=1e-8)
    assert ours.loc[("matched", "A"), "patients"] == ours.loc[("matched", "B"), "patients"] == 129


def pairs_by_id(cohort: pd.DataFrame, patients: pd.DataFrame, pair: pd.Series) -> dict[str, str]:
    """treated patient → its matched comparator patient."""
    paired = cohort.assign(pair=pair, treated=patients["treated"]).dropna(subset=["pair"])
    return {group.loc[group["treated"], "patient_id"].item(): group.loc[~group["treated"], "patient_id"].item()
            for _, group in paired.groupby("pair")}


@pytest.mark.parametrize("caliper_sd, n_pairs", [(0.2, 129), (0.02, 94)])
def test_the_matched_pairs_are_matchits(reference, caliper_sd, n_pairs):
    # matchit(treated ~ 1, method = "nearest", distance = logit, caliper, std.caliper = TRUE):
    # 209 treated, 191 comparators; the caliper leaves some of each unmatched.
    cohort, patients = reference
    r = pd.read_csv(REFERENCE / "r_matches.csv", dtype={"treated_id": str, "comparator_id": str})
    r = r[r["caliper_sd"] == caliper_sd]
    ours = pairs_by_id(cohort, patients, matched_pairs(patients["logit"], patients["treated"], caliper_sd))
    assert len(ours) == n_pairs
    assert ours == dict(zip(r["treated_id"], r["comparator_id"]))
    if caliper_sd == 0.2:  # the default: patient_weights's pairs
        assert pairs_by_id(cohort, patients, patients["pair"]) == ours


# -- Eight patients by hand --------------------------------------------------------------------
# One covariate, visceral: the model is saturated, so a patient's score is the treated share of
# its level: 3 of the 4 with visceral metastases are treated (e = 3/4), 1 of the 4 without
# (e = 1/4). Patient 9 has no arm and is left out.
EIGHT = pd.DataFrame({
    "patient_id": [f"p{i}" for i in range(1, 10)],
    "arm": ["A", "A", "A", "B", "A", "B", "B", "B", None],
    "visceral": [True, True, True, True, False, False, False, False, True],
    "age_at_index": [40, 50, 60, 45, 70, 55, 65, 75, 80],
}, index=range(10, 19))
VARIABLES = (MetastaticSiteVariable(name="visceral", icd10=("C78",)), AgeVariable(name="age_at_index"))


@pytest.fixture(scope="module")
def eight():
    return patient_weights(EIGHT, VARIABLES, ARMS, ComparisonConfig(treated="A", covariates=("visceral",)))


def test_eight_patients_scores_and_weights(eight):
    assert list(eight.index) == list(range(10, 18))
    assert eight["score"].to_numpy() == pytest.approx([0.75] * 4 + [0.25] * 4, abs=1e-10)
    assert eight["logit"].to_numpy() == pytest.approx([math.log(3)] * 4 + [-math.log(3)] * 4, abs=1e-9)
    # ATE, stabilised with P(A) = 4/8: A 0.5/e, B 0.5/(1 − e)
    assert eight["weight_ate"].to_numpy() == pytest.approx([2 / 3, 2 / 3, 2 / 3, 2, 2, 2 / 3, 2 / 3, 2 / 3])
    # ATT: A 1, B e/(1 − e)
    assert eight["weight_att"].to_numpy() == pytest.approx([1, 1, 1, 3, 1, 1 / 3, 1 / 3, 1 / 3])


def test_eight_patients_effective_sample_sizes(eight):
    summary = weight_summary(eight).set_index(["weights", "arm"])
    # ATE, each arm: weights 2/3, 2/3, 2/3, 2: (Σw)² / Σw² = 16 / (16/3) = 3
    assert summary.loc[("ATE", "A"), "effective_sample_size"] == pytest.approx(3)
    assert summary.loc[("ATE", "B"), "effective_sample_size"] == pytest.approx(3)
    assert summary.loc[("ATE", "B"), "largest_weight"] == pytest.approx(2)
    # ATT, B: 3, 1/3, 1/3, 1/3: 16 / (28/3) = 12/7
    assert summary.loc[("ATT", "B"), "effective_sample_size"] == pytest.approx(12 / 7)
    assert summary.loc[("ATT", "B"), "largest_weight"] == pytest.approx(3)
    assert list(summary.loc["matched", "patients"]) == [2, 2]
    assert list(summary.index.get_level_values("arm")[:2]) == ["A", "B"]  # the treated arm first


def test_eight_patients_matching(eight):
    # Logits ±ln 3, SD over the eight ln 3 · sqrt(8/7) = 1.174, caliper 0.2 · 1.174 = 0.235. From
    # the largest logit: p1 takes p4 (its logit), p2 and p3 find none within the caliper (only
    # −ln 3 left), p5 takes p6 (first of the −ln 3 comparators in the frame). Pairs numbered by
    # the treated patients' order.
    assert eight["pair"].tolist() == [1, pd.NA, pd.NA, 1, 2, 2, pd.NA, pd.NA]


def test_a_tie_between_the_two_sides_takes_the_left():
    # t1 (logit 0) has comparators 0.1 below and 0.1 above: MatchIt takes the one below.
    assert matched_pairs(pd.Series([0.1, 0.0, -0.1]), pd.Series([False, True, False]), 2.0).tolist() == [
        pd.NA, 1, 1]


def test_the_largest_logit_is_matched_first():
    # t2 (0.35) chooses before t0 (0.28), though t0 comes first and is nearer c1 (0.3).
    assert matched_pairs(pd.Series([0.28, 0.3, 0.35]), pd.Series([True, False, True]), 10.0).tolist() == [
        pd.NA, 1, 1]


@pytest.mark.parametrize("caliper_sd, pairs", [(0.5, [pd.NA, 1, 1, pd.NA]), (0.3, [pd.NA] * 4)])
def test_the_caliper_is_in_sds_of_every_patients_logit(caliper_sd, pairs):
    # Logits 0, 0.5, 1, 3: sample SD 1.315 over all four, so a caliper of 0.5 SD is 0.658 and
    # holds t2–c1 (0.5 apart) but not t0–c3; 0.3 SD is 0.395 and holds neither.
    logit, treated = pd.Series([0.0, 0.5, 1.0, 3.0]), pd.Series([True, False, True, False])
    assert matched_pairs(logit, treated, caliper_sd).tolist() == pairs


def test_trimming_at_percentiles():
    score = pd.Series([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    # 10th and 90th percentiles by linear interpolation: 0.17 and 0.73
    assert kept_by_trimming(score, (10, 90)).tolist() == [False] + [True] * 6 + [False]
    assert kept_by_trimming(score, None).all()
    assert kept_by_trimming(score, (0, 100)).all()


def test_trimmed_patients_have_no_weight_and_the_share_is_of_those_kept():
    # Two levels, four patients each (as EIGHT), plus a third level with scores near 0: trimming
    # at the 20th percentile leaves out the two lowest scores.
    cohort = pd.DataFrame({"arm": ["A", "A", "B", "B", "A", "B", "B", "B", "B", "B"],
                           "hospital_tier": ["3A", "3A", "3A", "3A", "3B", "3B", "3B", "3B", "2A", "2A"]})
    comparison = ComparisonConfig(treated="A", covariates=("hospital_tier",), trim_percentiles=(20, 100))
    out = patient_weights(cohort, (HospitalTierVariable(name="hospital_tier"),), ARMS, comparison)
    assert out["kept"].tolist() == [True] * 8 + [False] * 2
    assert out["weight_ate"].isna().tolist() == [False] * 8 + [True] * 2
    # kept: 3 A of 8, P(A) = 3/8; 3A: e = 1/2, 3B: e = 1/4
    assert out["weight_ate"][:8].to_numpy() == pytest.approx(
        [0.75, 0.75, 1.25, 1.25, 1.5, 5 / 6, 5 / 6, 5 / 6])


def test_design_matrix_reference_levels_and_a_missing_age():
    cohort = pd.DataFrame({"age_at_index": [50, None, 70, 60],
                           "hospital_tier": ["3B", "3A", None, "3A"]})
    variables = (AgeVariable(name="age_at_index"), HospitalTierVariable(name="hospital_tier"))
    blocks = covariate_blocks(cohort, variables, ["hospital_tier", "age_at_index"])
    assert reference_level(blocks[0][1]) == "3A"  # two patients; 3B and unknown one each
    x = design_matrix(blocks)
    assert list(x.columns) == ["intercept", "hospital_tier: 3B", "hospital_tier: unknown", "age_at_index",
                               "age_at_index: unknown"]
    assert x["age_at_index"].tolist() == [50, 60, 70, 60]  # the missing age: the mean of the known
    assert x["age_at_index: unknown"].tolist() == [0, 1, 0, 0]
    assert x["hospital_tier: unknown"].tolist() == [0, 0, 1, 0]


def test_a_tie_for_the_reference_level_goes_to_table1s_first():
    blocks = covariate_blocks(pd.DataFrame({"visceral": [True, False, None, None, True, False]}),
                              (MetastaticSiteVariable(name="visceral", icd10=("C78",)),), ["visceral"])
    assert reference_level(blocks[0][1]) == "no"


def test_weights_and_effective_sample_size_alone():
    treated = pd.Series([True, True, False])
    score = pd.Series([0.5, 0.8, 0.2])
    assert ate_weights(treated, score).to_numpy() == pytest.approx([4 / 3, 5 / 6, 5 / 12])
    assert att_weights(treated, score).to_numpy() == pytest.approx([1, 1, 0.25])
    assert effective_sample_size(pd.Series([1.0, 1.0, 1.0, 1.0])) == 4
    assert effective_sample_size(pd.Series([], dtype=float)) == 0


def test_the_treated_arm_is_the_configs(arms_study):
    assert arms_study.comparison.treated == "paclitaxel_liposome"
    assert treated_and_comparator(arms_study.arms, arms_study.comparison) == ("paclitaxel_liposome",
                                                                             "other_taxane")
