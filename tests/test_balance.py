"""Covariate balance before and after weighting and matching, worked by hand on eight patients
(the saturated score model of tests/test_propensity.py: e = 3/4 with visceral metastases,
1/4 without; ATE weights 2/3 and 2; pairs p1–p4 and p5–p6)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from test_propensity import ARMS, EIGHT, VARIABLES

from cohort_engine.balance import BALANCE_COLUMNS, balance_table, love_plot_data
from cohort_engine.propensity import patient_weights
from cohort_engine.study_config import ComparisonConfig

# Each arm's spread before weighting: visceral p(1 − p) = 3/16 in both, so the SD is sqrt(3/16);
# age 40, 50, 60, 70 (A) and 45, 55, 65, 75 (B), sample variance 500/3 in both.
LEVEL_SD = math.sqrt(3 / 16)
AGE_SD = math.sqrt(500 / 3)


@pytest.fixture(scope="module")
def eight():
    return patient_weights(EIGHT, VARIABLES, ARMS, ComparisonConfig(treated="A", covariates=("visceral",)))


@pytest.fixture
def balance(eight):
    return balance_table(EIGHT, VARIABLES, ["visceral", "age_at_index"], eight, eight["weight_ate"], 0.1)


def test_balance_rows_by_hand(balance):
    assert list(balance.columns) == BALANCE_COLUMNS
    assert balance[["variable", "characteristic", "level"]].values.tolist() == [
        ["visceral", "visceral", "no"], ["visceral", "visceral", "yes"],
        ["age_at_index", "age at index, years", "mean"]]
    no, yes, age = (row for _, row in balance.iterrows())
    # before: A has 1 of 4 without visceral metastases, B 3 of 4
    assert (no["treated_before"], no["comparator_before"]) == (0.25, 0.75)
    assert no["smd_before"] == pytest.approx(-0.5 / LEVEL_SD) and yes["smd_before"] == pytest.approx(0.5 / LEVEL_SD)
    # weighted, A: 3 × 2/3 with, 1 × 2 without: 2 of 4 each; B: 1 × 2 with, 3 × 2/3 without: the same
    assert (yes["treated_weighted"], yes["comparator_weighted"]) == pytest.approx((0.5, 0.5))
    assert yes["smd_weighted"] == pytest.approx(0, abs=1e-12)
    # matched: p1 (with) and p5 (without) against p4 (with) and p6 (without)
    assert (yes["treated_matched"], yes["comparator_matched"], yes["smd_matched"]) == (0.5, 0.5, 0.0)
    # age: means 55 and 60 before; weighted (2/3 · 150 + 2 · 70) / 4 = 60 and (2 · 45 + 2/3 · 195) / 4 = 55;
    # matched 40, 70 against 45, 55: 55 and 50. The SD stays the unweighted arms' sqrt(500/3).
    assert (age["treated_before"], age["comparator_before"]) == (55, 60)
    assert (age["treated_weighted"], age["comparator_weighted"]) == pytest.approx((60, 55))
    assert (age["treated_matched"], age["comparator_matched"]) == (55, 50)
    assert [age["smd_before"], age["smd_weighted"], age["smd_matched"]] == pytest.approx(
        [-5 / AGE_SD, 5 / AGE_SD, 5 / AGE_SD])
    # |SMD| after weighting above 0.1: the age only (0.387)
    assert balance["imbalanced"].tolist() == [False, False, True]


def test_balance_after_att_weights(eight):
    # ATT: A 1; B p4 (with) 3, p6–p8 (without) 1/3: with visceral 3 of 4 in both arms; B's age
    # (3 · 45 + (55 + 65 + 75) / 3) / 4 = 50 against A's 55.
    b = balance_table(EIGHT, VARIABLES, ["visceral", "age_at_index"], eight, eight["weight_att"], 0.5)
    assert (b.loc[1, "treated_weighted"], b.loc[1, "comparator_weighted"]) == pytest.approx((0.75, 0.75))
    assert (b.loc[2, "treated_weighted"], b.loc[2, "comparator_weighted"]) == pytest.approx((55, 50))
    assert b.loc[2, "smd_weighted"] == pytest.approx(5 / AGE_SD)
    assert not b["imbalanced"].any()  # 0.387 is within 0.5


def test_a_missing_age_has_its_unknown_row(eight):
    # p8's age missing: B's known ages 45, 55, 65 (mean 55, as A's); unknown 0 of 4 in A, 1 of 4 in B,
    # weighted 2/3 of B's 4: 1/6.
    cohort = EIGHT.assign(age_at_index=EIGHT["age_at_index"].where(EIGHT["patient_id"] != "p8"))
    b = balance_table(cohort, VARIABLES, ["age_at_index"], eight, eight["weight_ate"], 0.1)
    assert b["level"].tolist() == ["mean", "unknown"]
    assert b.loc[0, "smd_before"] == 0
    unknown_sd = math.sqrt((0 + 0.25 * 0.75) / 2)
    assert b.loc[1, "smd_before"] == pytest.approx(-0.25 / unknown_sd)
    assert b.loc[1, "comparator_weighted"] == pytest.approx(1 / 6)
    assert b.loc[1, "smd_weighted"] == pytest.approx(-1 / 6 / unknown_sd)


def test_love_plot_data_orders_levels_by_their_smd_before(balance):
    love = love_plot_data(balance)
    assert list(love.columns) == ["variable", "characteristic", "level", "sample", "smd", "abs_smd"]
    # visceral no and yes (|SMD| 1.155, in the table's order), then the age (0.387)
    assert love[["level", "sample"]].values.tolist() == [
        [level, sample] for level in ("no", "yes", "mean") for sample in ("before", "weighted", "matched")]
    assert love["abs_smd"].tolist() == pytest.approx([0.5 / LEVEL_SD, 0, 0, 0.5 / LEVEL_SD, 0, 0,
                                                      5 / AGE_SD, 5 / AGE_SD, 5 / AGE_SD], abs=1e-12)
    assert love.loc[0, "smd"] == pytest.approx(-0.5 / LEVEL_SD)
