"""Survival statistics against R's survival package (R 4.2.2, survival 3.5-3).

Expected values are copied from shared/reference/survival/*_output.txt (the scripts
beside them ran R on the datasets lifelines ships). Tolerances follow what R printed:
precise_output.txt has 10–11 significant digits, so those values are held to 1e-9
absolute (probabilities, standard errors) or 1e-8 (Cox coefficients, both ≤ 0.6 in
size); ref_output.txt prints 3–7 digits, so those are held to half a unit of the last
printed digit. Medians are event times, compared exactly.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_gbsg2, load_leukemia, load_lung, load_rossi, load_waltons

from cohort_engine import cox
from cohort_engine import survival as sv

Z95 = 1.959963984540054  # qnorm(0.975)


@pytest.fixture(scope="module")
def lung():
    return load_lung()  # R's lung with status recoded 0/1 (165 deaths of 228)


def fit(df, time, event, ci="log-log"):
    return sv.kaplan_meier(df[time], df[event], ci)


# -- Kaplan–Meier on a case worked by hand ------------------------------------------------

# Eight patients: time 1, 3, 3, 4+, 5, 5+, 8, 10+ (+ = censored).
#   t=1: at risk 8, 1 event   S = 7/8                  = 0.875
#   t=3: at risk 7, 2 events  S = 0.875 × 5/7          = 0.625
#   t=4: one censored, S unchanged
#   t=5: at risk 4 (5, 5+, 8, 10+; a censoring at an event time is still at risk), 1 event
#                             S = 0.625 × 3/4          = 0.46875
#   t=8: at risk 2, 1 event   S = 0.46875 × 1/2        = 0.234375
# Greenwood, sum of d/(n(n−d)):
#   t=1: 1/(8·7) = 1/56; t=3: + 2/(7·5) = 2/35 → 21/280 = 0.075; t=5: + 1/(4·3) → 19/120;
#   t=8: + 1/(2·1) → 79/120.
# At t=3: Var S = 0.625² × 0.075 = 0.029296875, se(S) = 0.1711632992.
#   log-log: θ = log(−log S); se(θ) = √0.075 / |ln 0.625| = 0.2738612788 / 0.4700036292
#   = 0.5826790725; limits S^exp(±1.959964 × 0.5826790725) = 0.625^3.1331221413 and
#   0.625^(1/3.1331221413) = 0.2293333224 and 0.8606982769.
# Median: S first below 0.5 at t=5. Its CI: the lower limit at t=1 is
#   0.875^exp(1.959964 × √(1/56)/|ln 0.875|) = 0.875^7.1056 = 0.3870 < 0.5 → 1; the upper
#   limit stays above 0.5 (0.6158 at t=8) → not reached.
HAND = pd.DataFrame({"time": [1, 3, 3, 4, 5, 5, 8, 10], "event": [1, 1, 1, 0, 1, 0, 1, 0]})


def test_hand_worked_product_limit_greenwood_and_log_log_interval():
    f = fit(HAND, "time", "event")
    t = f.table.set_index("time")
    assert t.index.tolist() == [1, 3, 4, 5, 8, 10]
    assert t["n_at_risk"].tolist() == [8, 7, 5, 4, 2, 1]
    assert t["n_events"].tolist() == [1, 2, 0, 1, 1, 0]
    assert t["survival"].tolist() == pytest.approx([0.875, 0.625, 0.625, 0.46875, 0.234375, 0.234375], abs=1e-15)
    assert sv.greenwood([8, 7, 4, 2], [1, 2, 1, 1]) == pytest.approx([1 / 56, 0.075, 19 / 120, 79 / 120], abs=1e-15)
    assert t.loc[3, "std_err"] ** 2 == pytest.approx(0.029296875, abs=1e-15)
    assert t.loc[3, "std_err"] == pytest.approx(0.1711632992, abs=1e-10)
    assert t.loc[3, "ci_low"] == pytest.approx(0.2293333224, abs=1e-10)
    assert t.loc[3, "ci_high"] == pytest.approx(0.8606982769, abs=1e-10)
    theta_se = math.sqrt(0.075) / abs(math.log(0.625))
    assert t.loc[3, "ci_low"] == pytest.approx(0.625 ** math.exp(Z95 * theta_se), abs=1e-14)
    median, low, high = f.median()
    assert (median, low) == (5.0, 1.0) and math.isnan(high)


def test_hand_worked_log_log_interval_agrees_with_lifelines():
    # lifelines computes the same exponential-Greenwood (log-log) interval independently.
    ours = fit(HAND, "time", "event").table.set_index("time")[["ci_low", "ci_high"]]
    theirs = KaplanMeierFitter().fit(HAND["time"], HAND["event"]).confidence_interval_.loc[ours.index]
    assert np.allclose(ours.to_numpy(), theirs.to_numpy(), atol=1e-12)


def test_no_interval_where_r_gives_none():
    # Four events at 1, 2, 3, 4: S reaches 0 at t=4 (Greenwood infinite) → no interval;
    # before the first event S = 1 and log(−log 1) is undefined → no log-log interval.
    f = sv.kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1])
    last = f.table.iloc[-1]
    assert last["survival"] == 0 and np.isnan(last["ci_low"]) and np.isnan(last["ci_high"])
    start = f.at([0.5])
    assert start["survival"].tolist() == [1.0] and np.isnan(start["ci_low"][0])
    assert sv.kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1], "log").at([0.5])[["ci_low", "ci_high"]].iloc[0].tolist() \
        == [1.0, 1.0]


# -- R's midpoint rule for the median --------------------------------------------------------

def test_edge_four_events_median_is_r_midpoint_not_lifelines_first_time():
    # edge_output.txt: events at 1, 2, 3, 4 (conf.type "log"): median 2.5, LCL 1, UCL NA.
    # S = 0.5 exactly on [2, 3): R takes the midpoint, lifelines the first time (2.0).
    f = sv.kaplan_meier([1, 2, 3, 4], [1, 1, 1, 1], "log")
    median, low, high = f.median()
    assert (median, low) == (2.5, 1.0) and math.isnan(high)
    assert KaplanMeierFitter().fit([1, 2, 3, 4], [1, 1, 1, 1]).median_survival_time_ == 2.0


EDGE2 = pd.DataFrame({"time": [1, 2, 2, 3, 4, 5, 6, 6, 7, 8], "status": [1, 1, 0, 1, 0, 1, 1, 0, 1, 0]})


def test_edge_censored_case_matches_r_table_and_median():
    # edge_output.txt, d2 with conf.type "log" (R's default): printed to 7 decimals.
    f = fit(EDGE2, "time", "status", "log")
    events = f.table[f.table["n_events"] > 0]
    assert events["time"].tolist() == [1, 2, 3, 5, 6, 7]
    assert events["n_at_risk"].tolist() == [10, 9, 7, 5, 4, 2]
    assert events["survival"].tolist() == pytest.approx(
        [0.9, 0.8, 0.6857143, 0.5485714, 0.4114286, 0.2057143], abs=5e-8)
    assert events["ci_low"].tolist() == pytest.approx(
        [0.7320116, 0.5868177, 0.4447217, 0.2962557, 0.1782448, 0.0407606], abs=5e-8)
    assert events["ci_high"].tolist() == pytest.approx([1, 1, 1, 1, 0.9496683, 1], abs=5e-8)
    median, low, high = f.median()
    assert (median, low) == (6.0, 3.0) and math.isnan(high)


def test_r_median_rule_flat_at_one_half():
    # A flat exactly at 0.5 from t=2 that drops at t=5: midpoint 3.5. A flat that never
    # drops (censored to the end): R's print.survfit keeps the first time.
    assert sv.r_median_time([1, 2, 3, 5], [0.75, 0.5, 0.5, 0.25]) == 3.5
    assert sv.r_median_time([1, 2, 3], [0.75, 0.5, 0.5]) == 2.0
    assert sv.r_median_time([1, 2], [0.9, 0.6]) != sv.r_median_time([1, 2], [0.9, 0.6])  # NaN: not reached
    # 0.5 + 1e-12 counts as one half (roundoff), 0.5 − 1e-6 is below it.
    assert sv.r_median_time([1, 2, 3], [0.75, 0.5 + 1e-12, 0.2]) == 2.5
    assert sv.r_median_time([1, 2, 3], [0.75, 0.5 - 1e-6, 0.2]) == 2.0


# -- lung (R's lung): precise_output.txt -----------------------------------------------------

LUNG_TIMES = [90, 180, 365, 730]
LUNG_N_RISK = [201, 160, 65, 13]
LUNG_SURV = [0.8815789474, 0.7216706534, 0.4092416245, 0.1156930983]
LUNG_SE = [0.02139821961, 0.02981241947, 0.03582363817, 0.02829819732]
LUNG_CI = {
    "log-log": ([0.83207134221, 0.65830452845, 0.33871426909, 0.06763215149],
                [0.9172136042, 0.7753146907, 0.4783807676, 0.1778251997]),
    "log": ([0.84062118286, 0.66554230713, 0.34472158180, 0.07163182496],
            [0.9245323057, 0.7825325699, 0.4858376035, 0.1868567918]),
    "plain": ([0.83963920761, 0.66323938496, 0.33902858385, 0.06022965077],
              [0.9235186871, 0.7801019219, 0.4794546651, 0.1711565459]),
}
LUNG_MEDIAN = {"log-log": (310, 284, 361), "log": (310, 285, 363), "plain": (310, 284, 361)}


@pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
def test_lung_survival_at_times_matches_r(lung, ci):
    at = fit(lung, "time", "status", ci).at(LUNG_TIMES)
    assert at["n_at_risk"].tolist() == LUNG_N_RISK
    assert at["survival"].tolist() == pytest.approx(LUNG_SURV, abs=1e-9)
    assert at["std_err"].tolist() == pytest.approx(LUNG_SE, abs=1e-9)
    assert at["ci_low"].tolist() == pytest.approx(LUNG_CI[ci][0], abs=1e-9)
    assert at["ci_high"].tolist() == pytest.approx(LUNG_CI[ci][1], abs=1e-9)


@pytest.mark.parametrize("ci", ["log-log", "log", "plain"])
def test_lung_median_and_ci_match_r(lung, ci):
    f = fit(lung, "time", "status", ci)
    assert (f.n, f.events) == (228, 165)
    assert f.median() == LUNG_MEDIAN[ci]


def test_lung_first_event_times_match_r(lung):
    t = fit(lung, "time", "status").table
    t = t[t["n_events"] > 0].head(6)
    assert t["time"].tolist() == [5, 11, 12, 13, 15, 26]
    assert t["n_at_risk"].tolist() == [228, 227, 224, 223, 221, 220]
    assert t["n_events"].tolist() == [1, 3, 1, 2, 1, 1]
    assert t["survival"].tolist() == pytest.approx(
        [0.9956140351, 0.9824561404, 0.9780701754, 0.9692982456, 0.9649122807, 0.9605263158], abs=1e-10)
    assert t["std_err"].tolist() == pytest.approx(
        [0.004376335999, 0.008694642593, 0.009699183217, 0.011424649533, 0.012185800489, 0.012895584799],
        abs=1e-11)


# -- medians by group: ref_output.txt ---------------------------------------------------------

@pytest.mark.parametrize("data, time, event, group, ci, expected", [
    ("lung", "time", "status", "sex", "log-log", {1: (270, 210, 306), 2: (426, 345, 524)}),
    ("lung", "time", "status", "sex", "log", {1: (270, 212, 310), 2: (426, 348, 550)}),
    ("waltons", "T", "E", "group", "log-log", {"control": (58, 56, 60), "miR-137": (26, 19, 29)}),
    ("waltons", "T", "E", "group", "log", {"control": (58, 56, 60), "miR-137": (26, 22, 29)}),
    ("gbsg2", "time", "cens", "horTh", "log", {"no": (1528, 1296, 1814), "yes": (2018, 1918, None)}),
    ("leukemia", "t", "status", "Rx", "log", {0: (23, 16, None), 1: (8, 4, 12)}),
])
def test_medians_by_group_match_r(lung, data, time, event, group, ci, expected):
    df = {"lung": lung, "waltons": load_waltons(), "gbsg2": load_gbsg2(), "leukemia": load_leukemia()}[data]
    for level, want in expected.items():
        got = fit(df[df[group] == level], time, event, ci).median()
        assert [None if math.isnan(v) else v for v in got] == list(want), (data, level)


def test_rossi_median_not_reached_and_rates_match_r():
    # ref_output.txt "rossi KM overall" (conf.type "log"), printed to 3 decimals.
    f = fit(load_rossi(), "week", "arrest", "log")
    assert all(math.isnan(v) for v in f.median())
    at = f.at([10, 20, 30, 40, 52])
    assert at["n_at_risk"].tolist() == [418, 397, 374, 351, 322]
    assert at["survival"].tolist() == pytest.approx([0.965, 0.907, 0.861, 0.803, 0.736], abs=5e-4)
    assert at["ci_low"].tolist() == pytest.approx([0.948, 0.880, 0.829, 0.767, 0.696], abs=5e-4)
    assert at["ci_high"].tolist() == pytest.approx([0.983, 0.935, 0.894, 0.842, 0.779], abs=5e-4)


# -- log-rank and Cox --------------------------------------------------------------------------

def test_logrank_lung_sex_matches_r(lung):
    # survdiff(Surv(time, status) ~ sex): p = 0.00131116452; lifelines cross-check chi2 10.326742.
    test = sv.logrank(lung, "sex", time_col="time", event_col="status")
    assert test.p_value == pytest.approx(0.00131116452, rel=1e-9)
    assert test.chi2 == pytest.approx(10.326742, abs=5e-7)
    assert test.df == 1 and test.note == ""


def test_logrank_rossi_fin_matches_r():
    # survdiff(Surv(week, arrest) ~ fin): (O−E)²/V = 3.84 (printed to 3 significant digits).
    test = sv.logrank(load_rossi(), "fin", time_col="week", event_col="arrest")
    assert test.chi2 == pytest.approx(3.84, abs=5e-3)


def test_cox_lung_age_sex_matches_r(lung):
    est = cox.fit_cox(lung, ["age", "sex"], time_col="time", event_col="status")
    assert est["coef"].tolist() == pytest.approx([0.01704533185, -0.51321851711], abs=1e-8)
    assert est["se"].tolist() == pytest.approx([0.009223273477, 0.167457962356], abs=1e-9)
    # summary(): exp(coef) lower/upper .95 printed to 4 decimals.
    assert est["ci_low"].tolist() == pytest.approx([0.9990, 0.4311], abs=5e-5)
    assert est["ci_high"].tolist() == pytest.approx([1.0357, 0.8311], abs=5e-5)


def test_cox_rossi_matches_r():
    covariates = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    est = cox.fit_cox(load_rossi(), covariates, time_col="week", event_col="arrest")
    assert est["coef"].tolist() == pytest.approx(
        [-0.37942216649, -0.05743774268, 0.31389978784, -0.14979569767, -0.43370387794, -0.08487108250,
         0.09149708099], abs=1e-8)
    assert est["se"].tolist() == pytest.approx(
        [0.19137948071, 0.02199947060, 0.30799277656, 0.21222429625, 0.38186805767, 0.19575667191,
         0.02864854996], abs=1e-9)


def test_cox_factor_coding_gbsg2_matches_r():
    # coxph(Surv(time, cens) ~ horTh + age + tsize + pnodes + progrec + estrec): horTh "no" is
    # R's reference level; coefficients printed to 7 significant digits.
    out = cox.cox_multivariable(load_gbsg2(), ["horTh"], numeric=["age", "tsize", "pnodes", "progrec", "estrec"],
                               time_col="time", event_col="cens").set_index("factor")
    assert out.loc["horTh", "level"].tolist() == ["no", "yes"]
    yes = out[out["level"] == "yes"].iloc[0]
    assert yes["coef"] == pytest.approx(-0.3481282, abs=5e-8)
    assert yes["se"] == pytest.approx(0.1280981, abs=5e-8)
    assert (yes["hr"], yes["ci_low"], yes["ci_high"]) == pytest.approx((0.7060083, 0.5493, 0.9075), abs=5e-5)
    assert (yes["n"], yes["events"]) == (246, 94)
    numeric = out.loc[["age", "tsize", "pnodes", "progrec", "estrec"]]
    assert numeric["coef"].tolist() == pytest.approx(
        [-0.0001119, 0.0080683, 0.0499945, -0.0026798, 0.0001934], abs=5e-8)
    assert numeric["se"].tolist() == pytest.approx([0.0063201, 0.0039180, 0.0074091, 0.0005864, 0.0004573],
                                                   abs=5e-8)


def test_cox_by_level_lung_sex_matches_r(lung):
    # coxph(Surv(time, status) ~ sex): coef −0.5310, se 0.1672, HR 0.588 (0.4237–0.816).
    out = cox.cox_by_level(lung, "sex", time_col="time", event_col="status")
    ref, women = out.iloc[0], out.iloc[1]
    assert (ref["level"], ref["hr"], ref["note"], ref["n"], ref["events"]) == (1, 1.0, "reference", 138, 112)
    assert (women["n"], women["events"]) == (90, 53)
    assert women["coef"] == pytest.approx(-0.5310, abs=5e-5)
    assert women["se"] == pytest.approx(0.1672, abs=5e-5)
    assert (women["hr"], women["ci_low"], women["ci_high"]) == pytest.approx((0.588, 0.4237, 0.816), abs=5e-4)
    assert women["p_value"] == pytest.approx(0.00149, abs=5e-6)


# -- degenerate comparisons --------------------------------------------------------------------

ARMS = pd.DataFrame({
    "time_days": [5, 12, 20, 33, 41, 58, 8, 15, 22, 30, 47, 60, 10, 25, 35, 50],
    "event": [1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0],
    "arm": list("AAAAAABBBBBBCCCC"),  # arm C: four patients, no event
    "age_group": ["<50", "50-64"] * 8,
})


def test_level_without_events_is_nan_with_reason_and_the_others_still_fitted():
    out = cox.cox_by_level(ARMS, "arm").set_index("level")
    assert out.loc["C", "note"] == "no events in this level: hazard ratio not estimable"
    assert np.isnan(out.loc["C", "hr"]) and (out.loc["C", "n"], out.loc["C", "events"]) == (4, 0)
    # B against A is estimated as if C were not there.
    alone = cox.cox_by_level(ARMS[ARMS["arm"] != "C"], "arm").set_index("level")
    assert out.loc["B", "hr"] == pytest.approx(alone.loc["B", "hr"], rel=1e-12)
    assert np.isfinite(out.loc["B", "hr"]) and out.loc["B", "note"] == ""
    assert (out.loc["A", "hr"], out.loc["A", "note"]) == (1.0, "reference")


def test_single_level_and_reference_without_events():
    one = cox.cox_by_level(ARMS.assign(arm="A"), "arm")
    assert one["note"].tolist() == ["only one level"] and one["hr"].isna().all()
    no_ref = cox.cox_by_level(ARMS, "arm", reference="C")
    assert (no_ref["note"] == "no events in the reference level").all() and no_ref["hr"].isna().all()
    assert sv.logrank(ARMS.assign(arm="A"), "arm").note == "fewer than two levels"
    no_events = sv.logrank(ARMS.assign(event=0), "arm")
    assert no_events.note == "no events" and np.isnan(no_events.p_value)


def test_separation_gives_nan_with_reason_not_an_absurd_ratio():
    # Every B patient fails before any A patient: the partial likelihood keeps rising as
    # the B coefficient grows, there is no finite maximum (lifelines would report HR ~3e12).
    df = pd.DataFrame({"time_days": [1, 2, 3, 10, 11, 12], "event": 1, "arm": list("BBBAAA")})
    out = cox.cox_by_level(df, "arm")
    assert out["hr"].isna().all()
    assert (out["note"] == "model not fitted: no finite maximum likelihood (separation or collinearity)").all()


def test_multivariable_leaves_out_patients_of_a_level_without_events():
    out = cox.cox_multivariable(ARMS, ["arm", "age_group"], references={"age_group": "<50"})
    assert out[["factor", "level"]].values.tolist() == [
        ["arm", "A"], ["arm", "B"], ["arm", "C"], ["age_group", "<50"], ["age_group", "50-64"]]
    c = out[out["level"] == "C"].iloc[0]
    assert np.isnan(c["hr"]) and c["note"].startswith("no events in this level")
    # The model is the one fitted on arms A and B only.
    ab = ARMS[ARMS["arm"] != "C"].assign(armB=lambda d: (d["arm"] == "B").astype(float),
                                         old=lambda d: (d["age_group"] == "50-64").astype(float))
    direct = cox.fit_cox(ab, ["armB", "old"])
    assert out[out["level"] == "B"]["coef"].iloc[0] == pytest.approx(direct.loc["armB", "coef"], rel=1e-10)
    assert out[out["level"] == "50-64"]["coef"].iloc[0] == pytest.approx(direct.loc["old", "coef"], rel=1e-10)
    assert out[out["level"] == "50-64"][["n", "events"]].iloc[0].tolist() == [8, 4]


# -- tables per endpoint -------------------------------------------------------------------------

def endpoints_frame(lung):
    os_rows = pd.DataFrame({"patient_id": [f"X{i}" for i in range(len(lung))], "endpoint": "OS",
                            "time_days": lung["time"], "event": lung["status"], "sex": lung["sex"]})
    ttf = HAND.rename(columns={"time": "time_days"}).assign(endpoint="TTF", patient_id="Y", sex=1)
    return pd.concat([ttf, os_rows], ignore_index=True)


def test_km_summary_has_exactly_the_interface_columns(lung):
    out = sv.km_summary(endpoints_frame(lung))
    assert out.columns.tolist() == [
        "endpoint", "n", "events", "median_months", "median_ci_low", "median_ci_high", "ci_method",
        "rate_6m", "rate_6m_ci_low", "rate_6m_ci_high", "rate_12m", "rate_12m_ci_low", "rate_12m_ci_high",
        "rate_24m", "rate_24m_ci_low", "rate_24m_ci_high", "rate_36m", "rate_36m_ci_low", "rate_36m_ci_high",
        "rate_60m", "rate_60m_ci_low", "rate_60m_ci_high"]
    assert out["endpoint"].tolist() == ["OS", "TTF"]  # the study's endpoint order
    os_row = out.iloc[0]
    assert (os_row["n"], os_row["events"], os_row["ci_method"]) == (228, 165, "log-log")
    # 310 days (284–361) in months of 30.4375 days.
    assert (os_row["median_months"], os_row["median_ci_low"], os_row["median_ci_high"]) == pytest.approx(
        (310 / 30.4375, 284 / 30.4375, 361 / 30.4375), abs=1e-12)
    # 12 months = day 365 (floor of 365.25): R's S(365) with its log-log CI.
    assert (os_row["rate_12m"], os_row["rate_12m_ci_low"], os_row["rate_12m_ci_high"]) == pytest.approx(
        (0.4092416245, 0.33871426909, 0.4783807676), abs=1e-9)
    # lung follow-up ends at day 1022 with S > 0: the 36- and 60-month rates are not estimable.
    assert os_row[["rate_36m", "rate_60m"]].isna().all()


def test_km_summary_median_not_reached_is_empty_in_csv(tmp_path):
    df = pd.DataFrame({"endpoint": "OS", "time_days": [100, 200, 1826, 1826, 1826], "event": [1, 0, 0, 0, 0]})
    out = sv.km_summary(df)
    # S stays at 0.8 ≥ 0.5: no median and no upper limit; the lower log-log limit at day 100
    # is already below one half (5 patients), so the lower limit of the median is day 100.
    assert out["median_months"].isna().all() and out["median_ci_high"].isna().all()
    assert out["median_ci_low"].iloc[0] == pytest.approx(100 / 30.4375, abs=1e-12)
    # The 60-month rate is day 1826 (floor 1826.25), inside the 5-year horizon: S = 4/5.
    assert out["rate_60m"].iloc[0] == pytest.approx(0.8, abs=1e-15)
    path = tmp_path / "km.csv"
    out.to_csv(path, index=False)
    line = path.read_text().splitlines()[1].split(",")
    assert (line[3], line[5]) == ("", "") and float(line[4]) == pytest.approx(100 / 30.4375)


def test_km_summary_by_group(lung):
    out = sv.km_summary(endpoints_frame(lung), by="sex")
    assert out.columns[:2].tolist() == ["sex", "endpoint"]
    men = out[(out["sex"] == 1) & (out["endpoint"] == "OS")].iloc[0]
    assert men["median_months"] * 30.4375 == pytest.approx(270, abs=1e-9)
    assert (men["n"], men["events"]) == (138, 112)


def test_risk_table_counts_by_hand():
    # Times 1, 3, 3, 4+, 5, 5+, 8, 10+ days: all 8 at risk at month 0; nobody left at day 182.
    df = HAND.rename(columns={"time": "time_days"}).assign(endpoint="OS")
    out = sv.risk_table(df, every_months=6, horizon_months=12)
    assert out.values.tolist() == [["OS", 0, 0, 8], ["OS", 6, 182, 0], ["OS", 12, 365, 0]]
    df2 = pd.DataFrame({"endpoint": "OS", "time_days": [181, 182, 183, 400], "event": [1, 0, 1, 0]})
    # day 182 = floor(6 × 30.4375): at risk are times ≥ 182 (182, 183, 400); day 365: 400 only.
    assert sv.risk_table(df2, horizon_months=12)["at_risk"].tolist() == [4, 3, 1]


def test_km_curves_start_at_one_and_follow_the_table():
    df = HAND.rename(columns={"time": "time_days"}).assign(endpoint="OS")
    curve = sv.km_curves(df)
    assert curve.columns.tolist() == ["endpoint", "time_days", "time_months", "survival", "ci_low", "ci_high"]
    assert curve["time_days"].tolist() == [0, 1, 3, 4, 5, 8, 10]
    assert curve["survival"].tolist() == pytest.approx([1, 0.875, 0.625, 0.625, 0.46875, 0.234375, 0.234375])
    assert curve["time_months"].iloc[1] == pytest.approx(1 / 30.4375)


def test_subgroup_table_combines_km_cox_and_logrank(lung):
    out = cox.subgroup_table(lung.rename(columns={"time": "time_days", "status": "event"}), "sex")
    assert out["level"].tolist() == [1, 2]
    assert (out["median_months"] * 30.4375).tolist() == pytest.approx([270, 426], abs=1e-9)
    assert out["logrank_p"].tolist() == pytest.approx([0.00131116452] * 2, rel=1e-9)
    assert out["hr"].tolist() == pytest.approx([1.0, 0.588], abs=5e-4)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="not negative"):
        sv.kaplan_meier([1, -2], [1, 1])
    with pytest.raises(ValueError, match="0 \\(censored\\) or 1"):
        sv.kaplan_meier([1, 2], [1, 2])
    with pytest.raises(ValueError, match="ci_method"):
        sv.kaplan_meier([1, 2], [1, 1], "arcsine")
