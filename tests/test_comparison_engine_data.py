"""The comparative study's estimators against R on the engine's own analysis data.

engine_dataset.csv is gold/comparison_dataset of a run of the two-arm study on a 60,000-patient
confounded synthetic extract (its OS and TTP rows; make_engine_dataset.py): 1,570 patients,
886 on the index arm, whose scores, primary weights and matched pairs the engine computed.
engine_reference.R ran R's survival 3.5-3 and MatchIt 4.5.1 on it (tests/reference/comparison,
read without R). Closed forms (curves, restricted means) are held to 1e-9; the Cox fits to
1e-6, relative, as R stops iterating about 1e-9 from the maximum (its default tolerance).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohort_engine import comparison
from cohort_engine import survival as sv
from cohort_engine.propensity import matched_pairs

REFERENCE = Path(__file__).parent / "reference" / "comparison"
INDEX_ARM = "paclitaxel_liposome"
CALIPER_SD = 0.2  # the study's comparison.caliper_sd
SCHEMES = ("naive", "weighted", "matched")
ENDPOINTS = ("OS", "TTP")
CASES = [(s, e) for s in SCHEMES for e in ENDPOINTS]


@pytest.fixture(scope="module")
def dataset():
    return pd.read_csv(REFERENCE / "engine_dataset.csv")


def r_output(name):
    return pd.read_csv(REFERENCE / f"engine_{name}.csv")


def scheme_frame(dataset, scheme, endpoint):
    """The endpoint's rows as the engine analyses them: naive every patient with weight 1,
    weighted with the dataset's (primary) weight, matched the paired patients with weight 1."""
    rows = dataset[dataset["endpoint"] == endpoint]
    if scheme == "weighted":
        return rows
    if scheme == "matched":
        rows = rows[rows["matched_set"].notna()]
    return rows.assign(weight=1.0)


def cluster_of(scheme):
    return "matched_set" if scheme == "matched" else None


def r_rows(output, scheme, endpoint, arm=None):
    r = r_output(output)
    mine = r[(r["scheme"] == scheme) & (r["endpoint"] == endpoint)]
    return mine if arm is None else mine[mine["arm"] == arm]


def test_the_dataset_is_the_runs_two_arms():
    data = pd.read_csv(REFERENCE / "engine_dataset.csv")
    patients = data[data["endpoint"] == "OS"]
    assert patients["patient_id"].tolist() == list(range(1, 1571))  # every patient has OS
    assert patients["arm"].value_counts().to_dict() == {INDEX_ARM: 886, "other_taxane": 684}
    assert len(data[data["endpoint"] == "TTP"]) == 1169
    assert patients["matched_set"].value_counts().eq(2).all() and patients["matched_set"].nunique() == 513
    # The weights are the stabilised ATE weights of the scores: P(index) / e and (1 − P(index)) / (1 − e).
    share = 886 / 1570
    e = patients["propensity_score"]
    ate = np.where(patients["arm"] == INDEX_ARM, share / e, (1 - share) / (1 - e))
    assert np.abs(patients["weight"].to_numpy() - ate).max() < 1e-12


@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_curves_match_r_survfit_every_30_days(dataset, scheme, endpoint):
    curves = comparison.arm_curves(scheme_frame(dataset, scheme, endpoint), INDEX_ARM, cluster_col=cluster_of(scheme))
    assert list(curves) == [INDEX_ARM, "other_taxane"]
    for arm, fit in curves.items():
        r = r_rows("km", scheme, endpoint, arm)
        assert len(r) == 62  # days 0, 30, …, 1800 and 1826: every arm is followed to 1826
        mine = fit.at(r["time"])
        assert mine["n_at_risk"].tolist() == r["n_risk"].tolist()
        for ours, theirs in (("survival", "surv"), ("std_err", "std_err")):
            # summary(fit, times =)'s std.err is of S, as the engine's, whichever variance R chose.
            assert mine[ours].to_numpy() == pytest.approx(r[theirs].to_numpy(), abs=1e-9)
        # Day 0 comes before every arm's first time (day 1 to 11). There summary() fills in the
        # interval (1, 1), where the engine shows none, as it does, and R too, wherever S = 1 at an
        # observed time: log(−log 1) is undefined (tests/test_survival.py).
        assert fit.table["time"].iloc[0] > 0
        start = r["time"].to_numpy() == 0
        assert mine.loc[start, ["ci_low", "ci_high"]].isna().all(axis=None)
        assert (r.loc[start, ["lower", "upper"]] == 1.0).all(axis=None)
        for ours, theirs in (("ci_low", "lower"), ("ci_high", "upper")):
            assert mine[ours].to_numpy()[~start] == pytest.approx(r[theirs].to_numpy()[~start], abs=1e-9, nan_ok=True)


def test_r_chose_greenwood_for_weights_of_one_and_the_jackknife_otherwise():
    # What the curves above were compared with: the weighted scheme's weights are not whole
    # numbers and the matched scheme has clusters, so both used the infinitesimal jackknife.
    logse = r_output("km").groupby("scheme")["logse"].unique()
    assert {s: list(v) for s, v in logse.items()} == {"matched": [False], "naive": [True], "weighted": [False]}


@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_restricted_means_match_r(dataset, scheme, endpoint):
    curves = comparison.arm_curves(scheme_frame(dataset, scheme, endpoint), INDEX_ARM, cluster_col=cluster_of(scheme))
    for arm, fit in curves.items():
        r = r_rows("rmean", scheme, endpoint, arm)
        assert r["tau"].tolist() == [730, 1095]
        for tau, rmean, se in zip(r["tau"], r["rmean"], r["se_rmean"]):
            assert fit.restricted_mean(tau) == pytest.approx((rmean, se), rel=1e-9)


@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_hazard_ratios_match_r_coxph(dataset, scheme, endpoint):
    frame = scheme_frame(dataset, scheme, endpoint)
    robust, note = comparison.hazard_ratio(frame, INDEX_ARM, cluster_col=cluster_of(scheme))
    plain, _ = comparison.hazard_ratio(frame, INDEX_ARM, weight_col=None)
    r = r_rows("cox", scheme, endpoint).iloc[0]
    assert note == ""
    # The coefficient lies near 0 (HR 0.74 to 1.14), so it is held absolutely, the rest relatively.
    assert robust["coef"] == pytest.approx(r["coef"], abs=1e-6)
    assert robust[["se", "hr", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [r["robust_se"], r["hr"], r["lower"], r["upper"]], rel=1e-6)
    assert robust["p_value"] == pytest.approx(r["p"], abs=1e-6)
    assert plain["coef"] == pytest.approx(r["plain_coef"], abs=1e-6)
    assert plain[["se", "hr", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [r["plain_se"], r["plain_hr"], r["plain_lower"], r["plain_upper"]], rel=1e-6)


@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_comparison_rows_are_r_numbers_in_the_engine_units(dataset, scheme, endpoint):
    row = comparison.comparison_row(scheme_frame(dataset, scheme, endpoint), INDEX_ARM,
                                    cluster_col=cluster_of(scheme))
    at_start = r_rows("km", scheme, endpoint).query("time == 0").set_index("arm")["n_risk"]
    assert [row["index_n"], row["comparator_n"]] == [at_start[INDEX_ARM], at_start["other_taxane"]]
    cox = r_rows("cox", scheme, endpoint).iloc[0]
    assert [row["hr"], row["hr_ci_low"], row["hr_ci_high"], row["naive_hr"]] == pytest.approx(
        [cox["hr"], cox["lower"], cox["upper"], cox["plain_hr"]], rel=1e-6)
    means = r_rows("rmean", scheme, endpoint).set_index(["tau", "arm"])
    z = sv.z_quantile(0.05)
    for months, tau in ((24, 730), (36, 1095)):
        index, other = means.loc[(tau, INDEX_ARM)], means.loc[(tau, "other_taxane")]
        difference = index["rmean"] - other["rmean"]
        half = z * math.hypot(index["se_rmean"], other["se_rmean"])
        expected = [v / 30.4375 for v in (index["rmean"], other["rmean"], difference, difference - half,
                                          difference + half)]
        assert [row[f"index_rmst_{months}m"], row[f"comparator_rmst_{months}m"], row[f"rmst_{months}m_difference"],
                row[f"rmst_{months}m_difference_ci_low"], row[f"rmst_{months}m_difference_ci_high"]] == \
            pytest.approx(expected, abs=1e-9)


# -- The matched pairs --------------------------------------------------------------------------

def one_row_per_patient(dataset):
    return dataset[dataset["endpoint"] == "OS"].reset_index(drop=True)


def pair_sets(patient, pair) -> set[frozenset]:
    paired = pd.DataFrame({"patient": patient, "pair": pair}).dropna()
    return {frozenset(group["patient"]) for _, group in paired.groupby("pair")}


def r_pair_sets() -> set[frozenset]:
    r = r_output("matches")
    return {frozenset(p) for p in zip(r["treated_patient"], r["comparator_patient"])}


def test_the_datasets_pairs_are_matchits(dataset):
    # matchit(treated ~ 1, method = "nearest", distance = logit(score), caliper = 0.2,
    # std.caliper = TRUE): 886 treated, 684 comparators, 513 pairs.
    patients = one_row_per_patient(dataset)
    ours = pair_sets(patients["patient_id"], patients["matched_set"])
    assert len(ours) == 513 and ours == r_pair_sets()


def test_matching_the_datasets_logits_gives_matchits_pairs_and_the_datasets_numbers(dataset):
    # From the scores as the lake stores them, in the order the engine matched the patients:
    # the same pairs, numbered 1, 2, … in the treated patients' order as the run numbered them.
    patients = one_row_per_patient(dataset)
    score = patients["propensity_score"]
    pair = matched_pairs(np.log(score / (1 - score)), patients["arm"] == INDEX_ARM, CALIPER_SD)
    assert pair_sets(patients["patient_id"], pair) == r_pair_sets()
    assert pair.astype("Float64").tolist() == patients["matched_set"].astype("Float64").tolist()
