"""Two-arm comparisons against R (survival 3.5-3, sandwich 3.0-2) and cases worked by hand.

The R outputs in tests/reference/comparison/ hold 17 significant digits (reference.R
computed them on input.csv). Closed forms (curves, restricted means, risks) are held to
1e-9; the Cox and Poisson fits to 1e-7, since R stops iterating about 1e-9 from the
maximum (its default tolerance).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohort_engine import comparison, cox
from cohort_engine import survival as sv
from cohort_engine.publish import shown

REFERENCE = Path(__file__).parent / "reference" / "comparison"
Z95 = 1.959963984540054  # qnorm(0.975)
# Scheme → (weight column of input.csv, None for weight 1; clustered on matched_set).
SCHEMES = {"naive": (None, False), "ate": ("w_ate", False), "att": ("w_att", False), "matched": (None, True)}
ENDPOINTS = {"OS": "os", "rwPFS": "pfs"}


@pytest.fixture(scope="module")
def patients():
    return pd.read_csv(REFERENCE / "input.csv")


def r_output(name):
    return pd.read_csv(REFERENCE / f"{name}.csv")


def scheme_frame(patients, scheme, endpoint=None):
    """The scheme's patients in the engine's layout: arm, weight, matched_set (and time_days, event)."""
    weight_col, clustered = SCHEMES[scheme]
    data = patients[patients["matched_set"].notna()] if clustered else patients
    out = data.assign(weight=data[weight_col] if weight_col else 1.0)
    if endpoint is not None:
        e = ENDPOINTS[endpoint]
        out = out.assign(endpoint=endpoint, time_days=out[f"{e}_time"], event=out[f"{e}_event"])
    return out


CASES = [(s, e) for s in SCHEMES for e in ENDPOINTS]


def cluster_of(scheme):
    return "matched_set" if SCHEMES[scheme][1] else None


def curves_beside_r(patients, scheme, endpoint, output):
    """(arm, the engine's curve, R's rows of `output` for that arm) for each arm of the scheme."""
    curves = comparison.arm_curves(scheme_frame(patients, scheme, endpoint), "index", cluster_col=cluster_of(scheme))
    r = r_output(output)
    for arm, fit in curves.items():
        yield arm, fit, r[(r["scheme"] == scheme) & (r["endpoint"] == endpoint) & (r["arm"] == arm)]


# -- Weighted Kaplan–Meier ------------------------------------------------------------------

def test_hand_worked_weighted_curve_and_infinitesimal_jackknife():
    # Times 1, 2, 3+, 4 with weights 0.5, 1.5, 1, 2 (+ = censored).
    #   t=1: weight at risk 5, events 0.5      S = 0.9
    #   t=2: weight at risk 4.5, events 1.5    S = 0.9 × 3/4.5 = 0.6
    #   t=4: weight at risk 2, events 2        S = 0
    # A weight is not whole, so the variance is the infinitesimal jackknife. Influence on S per
    # patient, U = U·(1 − h) + S(t−)·(weight at risk·h − weighted event)/n:
    #   t=1 (h 0.1, n 5):   U = (−0.45, 0.15, 0.1, 0.2)/5 = (−0.09, 0.03, 0.02, 0.04); ΣU² = 0.011
    #   t=2 (h 1/3, n 4.5): U = (−0.06, 0.02, 0.04/3, 0.08/3) + 0.2·(0, −1, 1/3, 2/3)
    #                        = (−0.06, −0.18, 0.08, 0.16);                        ΣU² = 0.068
    fit = sv.kaplan_meier([1, 2, 3, 4], [1, 1, 0, 1], weight=[0.5, 1.5, 1, 2])
    t = fit.table
    assert t["survival"].tolist() == pytest.approx([0.9, 0.6, 0.6, 0.0], abs=1e-15)
    assert t["weighted_at_risk"].tolist() == pytest.approx([5, 4.5, 3, 2], abs=1e-15)
    assert t["n_at_risk"].tolist() == [4, 3, 2, 1] and t["n_events"].tolist() == [1, 1, 0, 1]
    assert t["std_err"].tolist()[:3] == pytest.approx([math.sqrt(0.011), math.sqrt(0.068), math.sqrt(0.068)], abs=1e-15)
    assert np.isnan(t["std_err"].iloc[3]) and np.isnan(t["ci_low"].iloc[3])  # S = 0: no interval, as R
    # Restricted mean to 3.5: rectangles 1·1 + 1·0.9 + 1·0.6 + 0.5·0.6 = 2.8; the area after t=1 is
    # 1.8, after t=2 0.9, so the variance is 1.8² · 0.5/(5 · 4.5) + 0.9² · 1.5/(4.5 · 3) = 0.072 + 0.09.
    assert fit.restricted_mean(3.5) == pytest.approx((2.8, math.sqrt(0.162)), abs=1e-15)
    # Before the first time the mean is the horizon itself, with no variance.
    assert fit.restricted_mean(0.5) == (0.5, 0.0)


def test_weights_of_one_give_the_unweighted_curve(patients):
    plain = sv.kaplan_meier(patients["os_time"], patients["os_event"]).table
    ones = sv.kaplan_meier(patients["os_time"], patients["os_event"], weight=np.ones(len(patients)),
                           cluster=patients["patient"]).table
    pd.testing.assert_frame_equal(plain, ones, rtol=0, atol=1e-15)


@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_weighted_curves_match_r_survfit(patients, scheme, endpoint):
    for _, fit, mine in curves_beside_r(patients, scheme, endpoint, "km"):
        t = fit.table
        assert t["time"].tolist() == mine["time"].tolist()
        assert t["n_at_risk"].tolist() == mine["n_risk"].tolist()
        assert t["n_events"].tolist() == mine["n_event"].tolist()
        assert t["weighted_at_risk"].to_numpy() == pytest.approx(mine["weighted_n_risk"].to_numpy(), abs=1e-9)
        assert t["survival"].to_numpy() == pytest.approx(mine["surv"].to_numpy(), abs=1e-9)
        se_of_s = np.where(mine["logse"], mine["std_err"] * mine["surv"], mine["std_err"])
        # Where S = 0 the engine shows no standard error (R's jackknife gives 0 there, Greenwood's none).
        alive = mine["surv"].to_numpy() > 0
        assert t["std_err"].to_numpy()[alive] == pytest.approx(se_of_s[alive], abs=1e-9)
        assert t["std_err"][~alive].isna().all()
        assert t["ci_low"].to_numpy() == pytest.approx(mine["lower"].to_numpy(), abs=1e-9, nan_ok=True)
        assert t["ci_high"].to_numpy() == pytest.approx(mine["upper"].to_numpy(), abs=1e-9, nan_ok=True)


def test_weighted_curves_for_the_figure_are_the_arm_curves(patients):
    frame = scheme_frame(patients, "ate", "OS")
    curves = sv.km_curves(frame, by="arm", weight_col="weight")
    for arm, fit in comparison.arm_curves(frame, "index").items():
        mine = curves[curves["arm"] == arm]
        assert mine.iloc[0][["time_days", "survival"]].tolist() == [0.0, 1.0]  # the curve's start
        assert mine["survival"].iloc[1:].tolist() == fit.table["survival"].tolist()
        assert mine["ci_low"].iloc[1:].tolist() == fit.table["ci_low"].tolist()


def test_r_chose_the_jackknife_for_weights_and_clusters_and_greenwood_otherwise():
    # What the curves above were compared with: std.err of S (logse FALSE) unless naive.
    r = r_output("km").groupby("scheme")["logse"].unique()
    assert {s: list(v) for s, v in r.items()} == {"ate": [False], "att": [False], "matched": [False], "naive": [True]}


@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_restricted_means_and_medians_match_r(patients, scheme, endpoint):
    for _, fit, mine in curves_beside_r(patients, scheme, endpoint, "rmean"):
        assert [fit.restricted_mean(tau) for tau in mine["tau"]] == [
            pytest.approx((m, s), abs=1e-9) for m, s in zip(mine["rmean"], mine["se_rmean"])]
        assert fit.median() == tuple(mine[["median", "median_lcl", "median_ucl"]].iloc[0])


def test_the_horizons_are_the_engines_whole_days():
    assert sv.months_to_days(comparison.RMST_MONTHS).tolist() == [730, 1095]  # as reference.R


# -- Cox ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme, endpoint", CASES)
def test_weighted_robust_and_naive_hazard_ratios_match_r_coxph(patients, scheme, endpoint):
    frame = scheme_frame(patients, scheme, endpoint)
    weighted, note = comparison.hazard_ratio(frame, "index", cluster_col=cluster_of(scheme))
    naive, _ = comparison.hazard_ratio(frame, "index", weight_col=None)
    r = r_output("cox").set_index(["scheme", "endpoint"]).loc[(scheme, endpoint)]
    assert note == ""
    assert weighted[["coef", "se", "hr", "ci_low", "ci_high", "p_value"]].tolist() == pytest.approx(
        [r["coef"], r["robust_se"], r["hr"], r["lower"], r["upper"], r["p"]], abs=1e-7)
    assert naive[["coef", "se", "hr", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [r["plain_coef"], r["plain_se"], r["plain_hr"], r["plain_lower"], r["plain_upper"]], abs=1e-7)


def test_efron_score_residuals_add_up_to_zero_at_the_fitted_coefficient(patients):
    # The score residuals are the terms of the score, which is zero at the maximum (the fit stops
    # within about 1e-9 of it; the information here is about 70).
    x = (patients["arm"] == "index").astype(float).to_frame()
    coef = cox.fit_cox(patients.assign(x=x), ["x"], time_col="os_time", event_col="os_event",
                       weight_col="w_ate")["coef"].to_numpy()
    residuals = cox.efron_score_residuals(patients["os_time"], patients["os_event"], x, patients["w_ate"], coef)
    assert float((patients["w_ate"].to_numpy() * residuals[:, 0]).sum()) == pytest.approx(0.0, abs=1e-6)


def test_an_arm_without_events_has_no_hazard_ratio():
    frame = pd.DataFrame({"arm": ["a"] * 3 + ["b"] * 3, "time_days": [5, 8, 9, 4, 6, 7], "event": [1, 1, 0, 0, 0, 0],
                          "weight": [1.0, 0.5, 2.0, 1.0, 1.5, 1.0]})
    estimates, note = comparison.hazard_ratio(frame, "a")
    assert estimates.isna().all() and note == "no events in arm b: hazard ratio not estimable"


def test_a_comparison_needs_the_index_arm_and_one_other():
    frame = pd.DataFrame({"arm": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="index arm 'a' and one other arm"):
        comparison.arm_pair(frame, "a")
    with pytest.raises(ValueError, match="index arm 'z'"):
        comparison.arm_pair(frame[frame["arm"] != "c"], "z")


# -- E-values -------------------------------------------------------------------------------------

# HR 4: √4 = 2 and √(1/4) = 1/2, so RR = (1 − 1/4) / (1 − 1/√2) = 0.75 (2 + √2) = 1.5 + 0.75√2,
# RR − 1 = 0.5 + 0.75√2, RR (RR − 1) = 1.875 + 1.5√2, and E = RR + √(1.875 + 1.5√2) ≈ 4.5597.
RR_OF_HR_4 = 1.5 + 0.75 * math.sqrt(2)
E_OF_HR_4 = RR_OF_HR_4 + math.sqrt(1.875 + 1.5 * math.sqrt(2))


def test_hand_worked_common_outcome_conversion_and_e_value():
    assert comparison.risk_ratio_from_hazard_ratio(4.0) == pytest.approx(RR_OF_HR_4, abs=1e-15)
    assert comparison.risk_ratio_from_hazard_ratio(0.25) == pytest.approx(1 / RR_OF_HR_4, abs=1e-15)
    assert comparison.risk_ratio_from_hazard_ratio(1.0) == 1.0  # (1 − 0.5) / (1 − 0.5)
    assert comparison.e_value_of_risk_ratio(RR_OF_HR_4) == pytest.approx(E_OF_HR_4, abs=1e-14)
    assert comparison.e_value_of_risk_ratio(1.0) == 1.0


def test_e_values_of_the_estimate_and_of_the_limit_nearer_one():
    # An interval holding 1: the interval's E-value is 1.
    assert comparison.e_values(4.0, 0.5, 32.0) == pytest.approx((E_OF_HR_4, 1.0), abs=1e-14)
    # Protective HR 1/16 with interval 1/64 to 1/4: the upper limit, 1/4, is nearer 1 and has the
    # E-value of HR 4. The estimate: √(1/16) = 1/4, √16 = 4, RR = (1 − 2^−1/4) / (1 − 1/16),
    # taken as 1/RR above 1.
    rr = 1 / ((1 - 2 ** -0.25) / (1 - 1 / 16))
    point, limit = comparison.e_values(1 / 16, 1 / 64, 1 / 4)
    assert point == pytest.approx(rr + math.sqrt(rr * (rr - 1)), abs=1e-13)
    assert limit == pytest.approx(E_OF_HR_4, abs=1e-14)
    # Harmful HR with interval 4 to 16: the lower limit is nearer 1.
    assert comparison.e_values(8.0, 4.0, 16.0)[1] == pytest.approx(E_OF_HR_4, abs=1e-14)
    assert all(np.isnan(comparison.e_values(np.nan, np.nan, np.nan)))


# -- The comparison table -----------------------------------------------------------------------

def long_endpoints(patients, scheme):
    return pd.concat([scheme_frame(patients, scheme, e) for e in ("rwPFS", "OS")], ignore_index=True)


def test_comparison_table_rows_are_r_numbers_in_the_engine_units(patients):
    table = comparison.comparison_table(long_endpoints(patients, "ate"), "index", "IPTW (ATE)")
    assert list(table.columns) == comparison.comparison_columns()
    assert table["endpoint"].tolist() == ["OS", "rwPFS"]  # the contract's order
    os_row = table.iloc[0]
    assert os_row[["method", "index_arm", "comparator_arm"]].tolist() == ["IPTW (ATE)", "index", "comparator"]
    # Patients and events, unweighted (input.csv: 149 index patients with 83 deaths, 151 and 72).
    assert os_row[["index_n", "index_events", "comparator_n", "comparator_events"]].tolist() == [149, 83, 151, 72]
    assert table["index_n"].dtype == np.int64
    r = r_output("cox").set_index(["scheme", "endpoint"]).loc[("ate", "OS")]
    assert os_row[["hr", "hr_ci_low", "hr_ci_high", "hr_p_value"]].tolist() == pytest.approx(
        [r["hr"], r["lower"], r["upper"], r["p"]], abs=1e-7)
    assert os_row[["naive_hr", "naive_hr_ci_low", "naive_hr_ci_high"]].tolist() == pytest.approx(
        [r["plain_hr"], r["plain_lower"], r["plain_upper"]], abs=1e-7)
    means = r_output("rmean").set_index(["scheme", "endpoint", "tau", "arm"])
    for months, tau in ((24, 730), (36, 1095)):
        index, other = means.loc[("ate", "OS", tau, "index")], means.loc[("ate", "OS", tau, "comparator")]
        difference = index["rmean"] - other["rmean"]
        half = Z95 * math.hypot(index["se_rmean"], other["se_rmean"])
        assert os_row[[f"index_rmst_{months}m", f"comparator_rmst_{months}m", f"rmst_{months}m_difference",
                       f"rmst_{months}m_difference_ci_low", f"rmst_{months}m_difference_ci_high"]].tolist() == \
            pytest.approx([v / 30.4375 for v in (index["rmean"], other["rmean"], difference, difference - half,
                                                 difference + half)], abs=1e-9)
    assert os_row[["e_value", "e_value_ci"]].tolist() == pytest.approx(
        list(comparison.e_values(r["hr"], r["lower"], r["upper"])), abs=1e-6)
    assert os_row["e_value_ci"] == 1.0 and os_row["note"] == ""  # the interval holds 1


def test_matched_table_clusters_on_the_matched_set(patients):
    table = comparison.comparison_table(long_endpoints(patients, "matched"), "index", "matching",
                                        cluster_col="matched_set").set_index("endpoint")
    r = r_output("cox").set_index(["scheme", "endpoint"])
    for endpoint in ENDPOINTS:
        assert table.loc[endpoint, ["hr_ci_low", "hr_ci_high"]].tolist() == pytest.approx(
            r.loc[("matched", endpoint), ["lower", "upper"]].tolist(), abs=1e-7)
    assert table.loc["OS", "index_n"] == table.loc["OS", "comparator_n"] == 103  # pairs


def test_comparison_gate_withholds_an_arms_statistics_with_its_small_count(seed_study):
    row = {c: 1.0 for c in comparison.comparison_columns()}
    row.update(endpoint="OS", method="IPTW", index_arm="a", comparator_arm="b", note="",
               index_n=40, index_events=3, comparator_n=50, comparator_events=20)
    safe = shown(pd.DataFrame([row, {**row, "endpoint": "rwPFS", "index_events": 12, "comparator_events": 47}]),
                 comparison.comparison_gate(), seed_study)
    first, second = safe.iloc[0], safe.iloc[1]
    assert first["index_events"] == "<5" and first["hr"] == "*" and first["rmst_24m_difference"] == "*"
    assert first["comparator_events"] == 20 and first["index_n"] == 40
    # 47 events among 50: the 3 censored patients would be named, so the events are withheld, and the
    # statistics with them.
    assert second["comparator_events"] == "*" and second["e_value"] == "*" and second["index_events"] == 12


# -- Safety: weighted risks ---------------------------------------------------------------------

def test_hand_worked_weighted_risks_difference_and_ratio():
    # Index: events 1, 0 with weights 1, 3 → risk 1/4; comparator: 1, 1, 0, 0 with weight 1 → 1/2.
    # Influence on the risk, w (y − p) / Σw: index (0.75, −0.75)/4 → Σ² = 0.0703125;
    # comparator ±0.5/4 four times → Σ² = 0.0625. Difference −25 points, variance 0.1328125;
    # log ratio log(1/2), variance 0.0703125 / 0.25² + 0.0625 / 0.5² = 1.125 + 0.25 = 1.375.
    frame = pd.DataFrame({"arm": ["i", "i", "c", "c", "c", "c"], "severe": [1, 0, 1, 1, 0, 0],
                          "weight": [1.0, 3.0, 1.0, 1.0, 1.0, 1.0]})
    row = comparison.risk_comparison(frame, "i")
    assert {k: row[k] for k in ("index_n", "index_events", "comparator_n", "comparator_events")} == {
        "index_n": 2, "index_events": 1, "comparator_n": 4, "comparator_events": 2}
    assert (row["index_risk_percent"], row["comparator_risk_percent"]) == (25.0, 50.0)
    half = 100 * Z95 * math.sqrt(0.1328125)
    assert [row["risk_difference_percent"], row["risk_difference_ci_low"], row["risk_difference_ci_high"]] == \
        pytest.approx([-25.0, -25.0 - half, -25.0 + half], abs=1e-12)
    width = Z95 * math.sqrt(1.375)
    assert [row["risk_ratio"], row["risk_ratio_ci_low"], row["risk_ratio_ci_high"]] == \
        pytest.approx([0.5, 0.5 * math.exp(-width), 0.5 * math.exp(width)], abs=1e-12)
    # Matched pairs: the influences of a pair are added before squaring.
    pairs = frame.assign(matched_set=["p1", "p2", "p1", "p2", "p3", "p3"])
    paired = comparison.risk_comparison(pairs, "i", cluster_col="matched_set")
    # On the difference the comparator's influences change sign: an event −0.125, none +0.125.
    # p1: 0.1875 − 0.125, p2: −0.1875 − 0.125, p3: two comparators without events, 0.125 + 0.125.
    variance = 0.0625 ** 2 + 0.3125 ** 2 + 0.25 ** 2
    assert paired["risk_difference_ci_high"] == pytest.approx(-25.0 + 100 * Z95 * math.sqrt(variance), abs=1e-12)


def test_an_arm_without_events_has_no_risk_ratio():
    frame = pd.DataFrame({"arm": ["i", "i", "c", "c"], "severe": [1, 0, 0, 0], "weight": 1.0})
    row = comparison.risk_comparison(frame, "i")
    assert row["risk_difference_percent"] == 50.0 and np.isnan(row["risk_ratio"])
    assert row["note"] == "no events in arm c: risk ratio not estimable"


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("outcome", ["severe_any", "severe_term"])
def test_weighted_risks_match_r_glm_with_hc0_sandwich(patients, scheme, outcome):
    frame = scheme_frame(patients, scheme)
    row = comparison.risk_comparison(frame, "index", outcome_col=outcome,
                                     cluster_col=cluster_of(scheme))
    r = r_output("safety").set_index(["scheme", "outcome"]).loc[(scheme, outcome)]
    assert [row["index_risk_percent"], row["comparator_risk_percent"]] == pytest.approx(
        [100 * r["risk_index"], 100 * r["risk_comparator"]], abs=1e-9)
    assert [row["risk_difference_percent"], row["risk_difference_ci_low"], row["risk_difference_ci_high"]] == \
        pytest.approx([100 * r["rd"], 100 * (r["rd"] - Z95 * r["rd_se"]), 100 * (r["rd"] + Z95 * r["rd_se"])], abs=1e-9)
    assert [row["risk_ratio"], row["risk_ratio_ci_low"], row["risk_ratio_ci_high"]] == pytest.approx(
        [math.exp(r["log_rr"]), math.exp(r["log_rr"] - Z95 * r["log_rr_se"]),
         math.exp(r["log_rr"] + Z95 * r["log_rr_se"])], abs=1e-7)


def test_severe_event_flags_per_patient_and_outcome():
    patients = pd.DataFrame({"patient_id": ["p1", "p2", "p3"], "arm": ["i", "c", "c"], "weight": 1.0})
    events = pd.DataFrame({"patient_id": ["p1", "p1", "p2", "p3"], "term": ["Anemia", "Nausea", "Anemia", "Nausea"],
                           "grade": pd.array([3, 2, 2, pd.NA], dtype="Int64"), "source": "record"})
    flags = comparison.severe_event_flags(patients, events, ["Anemia", "Nausea"])
    got = flags.pivot(index="patient_id", columns="outcome", values="severe")
    # Only p1's grade 3 anaemia is severe; a grade 2 and a missing grade are not.
    assert got.to_dict() == {comparison.ANY_SEVERE_EVENT: {"p1": 1, "p2": 0, "p3": 0},
                             "Anemia": {"p1": 1, "p2": 0, "p3": 0}, "Nausea": {"p1": 0, "p2": 0, "p3": 0}}
    table = comparison.safety_comparison_table(flags, "i", "naive")
    assert table["outcome"].tolist() == [comparison.ANY_SEVERE_EVENT, "Anemia", "Nausea"]
    assert list(table.columns) == comparison.SAFETY_COMPARISON_COLUMNS


def test_safety_gate_withholds_the_weighted_risks_of_a_small_count(seed_study):
    row = {c: 1.0 for c in comparison.SAFETY_COMPARISON_COLUMNS}
    row.update(outcome="any", method="IPTW", index_arm="a", comparator_arm="b", note="",
               index_n=40, index_events=2, comparator_n=50, comparator_events=20)
    safe = shown(pd.DataFrame([row]), comparison.SAFETY_COMPARISON_GATE, seed_study).iloc[0]
    assert safe["index_events"] == "<5" and safe["index_risk_percent"] == "*" and safe["risk_ratio"] == "*"
    assert safe["comparator_events"] == 20 and safe["comparator_risk_percent"] == 1.0
