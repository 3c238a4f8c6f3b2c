"""The confounded taxane choice of the generator (`--confounded-taxane`): assignment from the
covariates, the observed outcome as the potential outcome of the arm given, the truth files, and
nothing drawn or changed without the switch (docs/generator.md, "Confounded taxane choice").

The chunk simulation is checked directly (the code Spark runs per partition); one small extract is
written with Spark for the truth files.
"""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from cohort_engine.synth import generate_extract
from cohort_engine.synth import truth as TR
from cohort_engine.synth.confounding import hypersensitivity_risk, liposome_probability
from cohort_engine.synth.generate import TRUTH_SCHEMAS
from cohort_engine.synth.outcome_tables import AE_KEYS, adverse_event_rows
from cohort_engine.synth.plan import STREAM_CONFOUNDING, Plan
from cohort_engine.synth.sim import simulate

CUTOFF = dt.date(2025, 6, 30)
PATIENTS, SEED = 6000, 3
TAXANES = {"paclitaxel liposome", "paclitaxel", "docetaxel", "nab-paclitaxel"}


def test_assignment_probability_of_a_covariate_profile():
    # age 75, visceral, no brain metastasis, recurrent, index 2022:
    # logit = 0.3 + 0.6 × (75 − 55)/10 + 1.2 + 0 − 0 − 0.15 × 3 = 2.25, p = 1/(1 + e^−2.25) = 0.904651
    assert liposome_probability(75, True, False, False, 2022) == pytest.approx(0.904651, abs=1e-6)
    # age 45, no visceral, brain metastasis, de novo, index 2016:
    # logit = 0.3 − 0.6 + 0 + 1.0 − 1.0 + 0.45 = 0.15, p = 0.537430
    assert liposome_probability(45, False, True, True, 2016) == pytest.approx(0.537430, abs=1e-6)
    # hypersensitivity: odds 0.06/0.94 at 55 with a conventional taxane; at 45 with the liposome
    # × 2^−1 × 0.35: odds 0.0111702, risk 0.0110468
    assert hypersensitivity_risk(55, False) == pytest.approx(0.06, abs=1e-12)
    assert hypersensitivity_risk(45, True) == pytest.approx(0.0110468, abs=1e-7)


@pytest.fixture(scope="module")
def confounded():
    plan = Plan(PATIENTS, SEED, CUTOFF, clean=True, confounded_taxane=True)
    return [simulate(plan, c) for c in range(plan.n_chunks)]


def test_the_taxane_follows_the_covariates_the_engine_reads(confounded):
    chosen = 0
    for sim in confounded:
        choice = sim.taxane_choice
        tp = TR.patients(sim)
        rows = np.flatnonzero(choice.population & tp["in_taxane_arms"])
        chosen += len(rows)
        # the covariates of the choice are the recorded ones of truth/patients
        assert (choice.age_at_index[rows] == tp["age_at_index"][rows]).all()
        assert (choice.visceral[rows] == tp["visceral"][rows]).all()
        assert (choice.brain[rows] == tp["brain"][rows]).all()
        assert (choice.de_novo[rows] == (sim.de_novo & (sim.adv <= sim.record_end))[rows]).all()
        years = tp["index_date"][rows].astype("datetime64[D]").astype("datetime64[Y]").astype(int) + 1970
        assert (choice.index_year[rows] == years).all()
        assert np.allclose(choice.p_liposome[rows], liposome_probability(
            choice.age_at_index[rows], choice.visceral[rows], choice.brain[rows], choice.de_novo[rows],
            choice.index_year[rows]))
        # the index regimen holds the taxane of the arm and an antibody
        for i in rows:
            regimen = set(tp["index_regimen"][i].split("+"))
            assert ("paclitaxel liposome" in regimen) == choice.liposome[i]
            assert len(regimen & TAXANES) == 1 and regimen & {"trastuzumab", "pertuzumab"}
    assert chosen > 100


def test_observed_outcomes_are_the_potential_outcomes_of_the_arm_given(confounded):
    hypersensitivity = AE_KEYS.index("hypersensitivity")
    for sim in confounded:
        choice = sim.taxane_choice
        tp = TR.patients(sim)
        po = TR.potential_outcomes(sim, tp)
        pat = po["pat"]
        given = np.where(choice.liposome[pat], "liposome", "conventional")
        progression = np.where(given == "liposome", po["progression_liposome"], po["progression_conventional"])
        documented = np.where(given == "liposome", po["pd_documented_liposome"], po["pd_documented_conventional"])
        assert (sim.progression[pat] == progression).all()
        recorded = sim.pd_detect[pat] < TR.NONE_DAY
        # assessed patients' documented progression is the one the schedule gives, when records reach it
        assert (sim.pd_detect[pat][recorded] == documented[recorded]).all()
        reachable = sim.assessed[pat] & (documented <= sim.record_end[pat])
        assert (recorded == reachable).all()
        # the only hypersensitivity records of the population are the planted ones, grade 3, at index
        P, D, K, G = adverse_event_rows(sim)
        rows = (K == hypersensitivity) & choice.population[P]
        expected = np.where(given == "liposome", po["hypersensitivity_g3_liposome"],
                            po["hypersensitivity_g3_conventional"])
        by_patient = dict(zip(P[rows], D[rows]))
        assert len(by_patient) == rows.sum() and (G[rows] == 3).all()
        assert {p for p in pat if p in by_patient} == set(pat[expected])
        assert all(by_patient[p] == tp["index_date"][p] for p in pat[expected])
        # death and the censoring do not depend on the arm
        assert (po["os_days"] == np.minimum(sim.death[pat], np.minimum(sim.plan.cutoff_day, po["index_date"] + 1826))
                - po["index_date"]).all()


def test_without_the_switch_nothing_of_it_is_drawn_and_the_population_is_the_same(monkeypatch):
    streams = []
    original = Plan.rng

    def spy(self, chunk, stream):
        streams.append(stream)
        return original(self, chunk, stream)
    monkeypatch.setattr(Plan, "rng", spy)
    plain = simulate(Plan(1500, 4, CUTOFF, clean=True), 1)
    assert STREAM_CONFOUNDING not in streams and plain.taxane_choice is None
    streams.clear()
    switched = simulate(Plan(1500, 4, CUTOFF, clean=True, confounded_taxane=True), 1)
    assert streams.count(STREAM_CONFOUNDING) == 1
    # everything drawn before the first line's regimen is the same patient for patient
    for name in ("birth", "dx", "her2", "hr", "adv", "de_novo", "death", "assessed", "assess_q"):
        assert (getattr(plain, name) == getattr(switched, name)).all(), name


def test_truth_files_of_a_confounded_extract(spark, tmp_path):
    out = tmp_path / "confounded"
    counts = generate_extract(spark, out, patients=2500, seed=11, fmt="parquet", clean=True, cutoff=CUTOFF,
                              confounded_taxane=True)
    po = pd.read_parquet(out / "truth" / "potential_outcomes")
    assert list(po.columns) == TRUTH_SCHEMAS["potential_outcomes"].names
    assert len(po) == counts["truth/potential_outcomes"] > 20
    assert set(po["arm"]) == {"paclitaxel liposome", "conventional taxane"}
    effects = pd.read_parquet(out / "truth" / "effects")
    assert list(effects.columns) == ["effect", "estimand", "measure", "value", "patients"]
    keys = set(zip(effects["effect"], effects["estimand"], effects["measure"]))
    for estimand in ("ATE", "ATT"):
        assert {("progression", estimand, "hazard_ratio"), ("progression_free", estimand, "hazard_ratio"),
                ("death", estimand, "hazard_ratio"), ("hypersensitivity_g3", estimand, "risk_liposome"),
                ("hypersensitivity_g3", estimand, "risk_conventional"),
                ("hypersensitivity_g3", estimand, "risk_difference"),
                ("hypersensitivity_g3", estimand, "risk_ratio")} <= keys
    ate = effects[effects["estimand"] == "ATE"].set_index(["effect", "measure"])["value"]
    # death does not depend on the arm: both potential outcomes are one, so its hazard ratio is 1
    assert ate[("death", "hazard_ratio")] == pytest.approx(1.0, abs=1e-9)
    assert ate[("hypersensitivity_g3", "risk_liposome")] == pytest.approx(po["hypersensitivity_g3_liposome"].mean())
    att = effects[effects["estimand"] == "ATT"]
    assert (att["patients"] == (po["arm"] == "paclitaxel liposome").sum()).all()
    # the cohort of the truth is the two-arm cohort of truth/patients (patients given either arm)
    tp = pd.read_parquet(out / "truth" / "patients")
    lines = pd.read_parquet(out / "truth" / "lines")
    first = lines[(lines["setting"] == "advanced") & (lines["line_number"] == 1)].set_index("patient_id")
    given = first.loc[po["patient_id"], "regimen"].str.split("+").map(lambda r: "paclitaxel liposome" in r)
    assert (given.to_numpy() == (po["arm"] == "paclitaxel liposome").to_numpy()).all()
    assert set(po["patient_id"]) <= set(tp["patient_id"])
    manifest = json.loads((out / "truth" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["confounded_taxane"]["progression_hr"] == 0.80
    assert manifest["rows"]["truth/effects"] == len(effects)
