"""Endpoints (study rules §5): one hand-worked patient per row of the endpoint table and per boundary.

Every patient's dates are written as day offsets from its index date, so each expected
time is read off the scenario: an event or censoring on day n gives time_days = n.
Seed-study parameters: pd_grace_days 14, death_window_days 60, discontinuation_gap_days 120,
horizon 1826. Cut-off 2025-06-30; the usual index date 2024-01-01 is 546 days before it
(366 days of 2024 + 180 days to 30 June 2025).
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from builders import bronze, cohort as cohort_frame, therapy_lines
from cohort_engine import endpoints as ep

CUTOFF = dt.date(2025, 6, 30)
I0 = dt.date(2024, 1, 1)      # cut-off = day 546
I_LONG = dt.date(2018, 1, 1)  # cut-off = day 2737; day 1826 = 2023-01-01


def day(n: int, base: dt.date = I0) -> str:
    return (base + dt.timedelta(days=n)).isoformat()


def scenario(pid, last_admin, *, base=I0, next_line=None, death=None, assessments=(), visits=()):
    """Bronze rows, therapy lines and the cohort row of one patient (days relative to `base`)."""
    out = {
        "patients": [{"patient_id": pid, "sex": "F", "birth_date": "1970-01-01",
                      "id_hash": f"h_{pid}" if death is not None else None}],
        "deaths": [] if death is None else [{"id_hash": f"h_{pid}", "death_date": day(death, base)}],
        "prescriptions": [{"record_id": f"{pid}-{n}", "patient_id": pid, "admin_date": day(n, base),
                           "drug_name": "x"} for n in sorted({0, last_admin} | ({next_line} if next_line else set()))],
        "tumor_assessments": [{"patient_id": pid, "assessment_date": day(n, base), "response": r}
                              for n, r in assessments],
        "visits": [{"patient_id": pid, "visit_date": day(n, base)} for n in visits],
        "lines": [{"patient_id": pid, "setting": "early", "line_number": 1, "start_date": day(-400, base),
                   "last_admin_date": day(-300, base), "regimen": "trastuzumab", "n_admin_days": 5},
                  {"patient_id": pid, "setting": "advanced", "line_number": 1, "start_date": day(0, base),
                   "last_admin_date": day(last_admin, base), "regimen": "paclitaxel liposome+trastuzumab",
                   "n_admin_days": 6}],
        "cohort": [{"patient_id": pid, "index_date": day(0, base), "regimen": "paclitaxel liposome+trastuzumab",
                    "index_last_admin_date": day(last_admin, base)}],
    }
    if next_line is not None:
        out["lines"].append({"patient_id": pid, "setting": "advanced", "line_number": 2,
                             "start_date": day(next_line, base), "last_admin_date": day(next_line, base),
                             "regimen": "capecitabine", "n_admin_days": 1})
    return out


SCENARIOS = [
    # PD on day 14 is baseline (not > 14); SD on day 60 is the last assessment.
    scenario("pd14", 500, assessments=[(14, "PD"), (60, "SD")], visits=[540]),
    # PD on day 15 counts.
    scenario("pd15", 500, assessments=[(15, "PD"), (60, "SD")], visits=[540]),
    # Death 60 days after the last assessment (day 100) is an rwPFS event; 61 days is not.
    scenario("death60", 90, death=160, assessments=[(100, "SD")], visits=[150]),
    scenario("death61", 90, death=161, assessments=[(100, "SD")], visits=[150]),
    # Last administration 120 days before the cut-off (day 426): not discontinued; 121 (day 425): discontinued.
    scenario("gap120", 426, assessments=[(100, "SD")], visits=[540]),
    scenario("gap121", 425, assessments=[(100, "SD")], visits=[540]),
    # A death after the cut-off is ignored; a death on the cut-off (day 546) counts.
    scenario("death_late", 500, death=556, assessments=[(100, "SD")], visits=[540]),
    scenario("death_cutoff", 500, death=546, assessments=[(100, "SD")], visits=[540]),
    # 5-year horizon: death on day 1826 stays an event; on day 1827 it is censored at 1826;
    # follow-up longer than 1826 (last contact day 2000, cut-off day 2737) is cut to 1826.
    scenario("h1826", 100, base=I_LONG, death=1826),
    scenario("h1827", 100, base=I_LONG, death=1827),
    scenario("hlong", 100, base=I_LONG, visits=[2000]),
    # Only a baseline assessment (day 10): rwPFS by the TTNT proxy; TTP censored there (§5: an
    # assessment after the index date exists, so TTP is evaluable).
    scenario("proxy", 180, next_line=200, death=300, assessments=[(10, "SD")], visits=[290]),
    # No assessment at all, alive, no next line: the proxy censored at last contact.
    scenario("proxy_cens", 500, visits=[530]),
    # Only NE after the grace period: still a tumor assessment (§5) → rwPFS from assessments,
    # censored at it; TTP censored at it too.
    scenario("ne_only", 500, assessments=[(60, "NE")], visits=[530]),
    # Same-day ties: next line and death → next_line; PD and death → progression;
    # PD, death and the last administration on one day (TTF) → progression.
    scenario("tie_nl_death", 180, next_line=200, death=200),
    scenario("tie_pd_death", 120, death=120, assessments=[(50, "SD"), (120, "PD")]),
    # Chinese responses; an unreadable one is skipped (and counted); NE after PD changes nothing.
    scenario("chinese", 500, assessments=[(40, "部分缓解"), (80, "疾病进展"), (90, "好转?"), (100, "不可评价")],
             visits=[540]),
    # Records dated after the death are ignored for last contact (and counted).
    scenario("after_death", 250, death=300, assessments=[(100, "SD")], visits=[250, 310]),
    # Dates that give negative times (a death before the index date): no rows, counted.
    scenario("negative", 30, death=-5, visits=[20]),
]

# (time_days, event, event_type, source) per patient and endpoint; no TTP key = no TTP row.
EXPECTED = {
    "pd14": {"OS": (546, 0, "censored", None), "rwPFS": (60, 0, "censored", "assessment"),
             "TTP": (60, 0, "censored", None), "TTF": (540, 0, "censored", None),
             "TTNT": (540, 0, "censored", None)},
    "pd15": {"OS": (546, 0, "censored", None), "rwPFS": (15, 1, "progression", "assessment"),
             "TTP": (15, 1, "progression", None), "TTF": (15, 1, "progression", None),
             "TTNT": (540, 0, "censored", None)},
    # TTF: died → discontinued at the last administration (day 90), before the death.
    "death60": {"OS": (160, 1, "death", None), "rwPFS": (160, 1, "death", "assessment"),
                "TTP": (100, 0, "censored", None), "TTF": (90, 1, "discontinuation", None),
                "TTNT": (160, 1, "death", None)},
    "death61": {"OS": (161, 1, "death", None), "rwPFS": (100, 0, "censored", "assessment"),
                "TTP": (100, 0, "censored", None), "TTF": (90, 1, "discontinuation", None),
                "TTNT": (161, 1, "death", None)},
    "gap120": {"OS": (546, 0, "censored", None), "rwPFS": (100, 0, "censored", "assessment"),
               "TTP": (100, 0, "censored", None), "TTF": (540, 0, "censored", None),
               "TTNT": (540, 0, "censored", None)},
    "gap121": {"OS": (546, 0, "censored", None), "rwPFS": (100, 0, "censored", "assessment"),
               "TTP": (100, 0, "censored", None), "TTF": (425, 1, "discontinuation", None),
               "TTNT": (540, 0, "censored", None)},
    "death_late": {"OS": (546, 0, "censored", None), "rwPFS": (100, 0, "censored", "assessment"),
                   "TTP": (100, 0, "censored", None), "TTF": (540, 0, "censored", None),
                   "TTNT": (540, 0, "censored", None)},
    # death on day 546 is 446 days after the last assessment: not an rwPFS event.
    "death_cutoff": {"OS": (546, 1, "death", None), "rwPFS": (100, 0, "censored", "assessment"),
                     "TTP": (100, 0, "censored", None), "TTF": (500, 1, "discontinuation", None),
                     "TTNT": (546, 1, "death", None)},
    "h1826": {"OS": (1826, 1, "death", None), "rwPFS": (1826, 1, "death", "ttnt_proxy"),
              "TTF": (100, 1, "discontinuation", None), "TTNT": (1826, 1, "death", None)},
    "h1827": {"OS": (1826, 0, "censored", None), "rwPFS": (1826, 0, "censored", "ttnt_proxy"),
              "TTF": (100, 1, "discontinuation", None), "TTNT": (1826, 0, "censored", None)},
    # alive, last administration day 100 ≫ 120 days before the cut-off → discontinued at 100.
    "hlong": {"OS": (1826, 0, "censored", None), "rwPFS": (1826, 0, "censored", "ttnt_proxy"),
              "TTF": (100, 1, "discontinuation", None), "TTNT": (1826, 0, "censored", None)},
    "proxy": {"OS": (300, 1, "death", None), "rwPFS": (200, 1, "next_line", "ttnt_proxy"),
              "TTP": (10, 0, "censored", None),
              "TTF": (180, 1, "discontinuation", None), "TTNT": (200, 1, "next_line", None)},
    "proxy_cens": {"OS": (546, 0, "censored", None), "rwPFS": (530, 0, "censored", "ttnt_proxy"),
                   "TTF": (530, 0, "censored", None), "TTNT": (530, 0, "censored", None)},
    "ne_only": {"OS": (546, 0, "censored", None), "rwPFS": (60, 0, "censored", "assessment"),
                "TTP": (60, 0, "censored", None),
                "TTF": (530, 0, "censored", None), "TTNT": (530, 0, "censored", None)},
    "tie_nl_death": {"OS": (200, 1, "death", None), "rwPFS": (200, 1, "next_line", "ttnt_proxy"),
                     "TTF": (180, 1, "discontinuation", None), "TTNT": (200, 1, "next_line", None)},
    "tie_pd_death": {"OS": (120, 1, "death", None), "rwPFS": (120, 1, "progression", "assessment"),
                     "TTP": (120, 1, "progression", None), "TTF": (120, 1, "progression", None),
                     "TTNT": (120, 1, "death", None)},
    "chinese": {"OS": (546, 0, "censored", None), "rwPFS": (80, 1, "progression", "assessment"),
                "TTP": (80, 1, "progression", None), "TTF": (80, 1, "progression", None),
                "TTNT": (540, 0, "censored", None)},
    # TTF: died → discontinued at day 250 (last administration).
    "after_death": {"OS": (300, 1, "death", None), "rwPFS": (100, 0, "censored", "assessment"),
                    "TTP": (100, 0, "censored", None), "TTF": (250, 1, "discontinuation", None),
                    "TTNT": (300, 1, "death", None)},
    "negative": {},
}


def build(spark, study, lake_contacts: bool = False, broadcast_late: bool = False):
    merged: dict[str, list] = {}
    for s in SCENARIOS:
        for key, rows in s.items():
            merged.setdefault(key, []).extend(rows)
    b = bronze(spark, patients=merged["patients"], deaths=merged["deaths"], prescriptions=merged["prescriptions"],
               tumor_assessments=merged["tumor_assessments"], visits=merged["visits"])
    contacts = ep.lake_last_contacts(b, study, broadcast_late=broadcast_late) if lake_contacts else None
    return ep.build_endpoints(cohort_frame(spark, merged["cohort"]), therapy_lines(spark, merged["lines"]), b, study,
                              contacts)


def as_dict(frame):
    got: dict[str, dict] = {}
    for r in frame.collect():
        got.setdefault(r["patient_id"], {})[r["endpoint"]] = (r["time_days"], r["event"], r["event_type"], r["source"])
    return got


@pytest.fixture(scope="module")
def study(seed_study):
    return dataclasses.replace(seed_study, data_cutoff=CUTOFF)


@pytest.fixture(scope="module")
def run(spark, study):
    endpoints, dq = build(spark, study)
    return as_dict(endpoints), {(r["table"], r["check"], r["reason"]): r["n"] for r in dq.collect()}, endpoints


@pytest.mark.parametrize("pid", list(EXPECTED))
def test_endpoint_scenario(run, pid):
    got, *_ = run
    assert got.get(pid, {}) == EXPECTED[pid]


def test_every_cohort_patient_has_rows_except_negative(run):
    got, *_ = run
    assert sorted(got) == sorted(p for p in EXPECTED if EXPECTED[p])


def test_endpoints_schema(run):
    *_, endpoints = run
    assert [(f.name, f.dataType.simpleString()) for f in endpoints.schema.fields] == [
        ("patient_id", "string"), ("endpoint", "string"), ("time_days", "int"), ("event", "int"),
        ("event_type", "string"), ("source", "string")]


def test_endpoint_data_quality(run):
    _, dq, _ = run
    # "negative": death on day −5 → OS, rwPFS (proxy: death), TTF (death −5 before the
    # discontinuation on day 30) and TTNT negative; TTP not evaluable. "chinese": one
    # unreadable response ('好转?'). Records after death: "after_death" (visit day 310) and
    # "negative" (everything after day −5).
    assert dq[("endpoints", "negative_time", "OS")] == 1
    assert dq[("endpoints", "negative_time", "rwPFS")] == 1
    assert dq[("endpoints", "negative_time", "TTP")] == 0
    assert dq[("endpoints", "negative_time", "TTF")] == 1
    assert dq[("endpoints", "negative_time", "TTNT")] == 1
    assert sum(n for (t, c, _), n in dq.items() if c == "no_time") == 0
    assert dq[("tumor_assessments", "unreadable_response",
               "a response that reads as none of CR/PR/SD/PD/NE")] == 1
    assert dq[("endpoints", "records_after_death", "patients with records dated after their death (ignored)")] == 2
    assert dq[("endpoints", "index_line_missing", "cohort patients without their index line in therapy_lines")] == 0


def test_os_censored_at_last_contact_option(spark, study):
    option = dataclasses.replace(study, endpoints=dataclasses.replace(study.endpoints, os_censoring="last_contact"))
    endpoints, _ = build(spark, option)
    os_rows = {pid: rows["OS"] for pid, rows in as_dict(endpoints.where("endpoint = 'OS'")).items()}
    # Alive patients are censored at their last contact instead of day 546; deaths unchanged.
    assert os_rows == {
        "pd14": (540, 0, "censored", None), "pd15": (540, 0, "censored", None),
        "death60": (160, 1, "death", None), "death61": (161, 1, "death", None),
        "gap120": (540, 0, "censored", None), "gap121": (540, 0, "censored", None),
        "death_late": (540, 0, "censored", None), "death_cutoff": (546, 1, "death", None),
        "h1826": (1826, 1, "death", None), "h1827": (1826, 0, "censored", None),
        # last contact day 2000 > 1826 → cut to the horizon.
        "hlong": (1826, 0, "censored", None),
        "proxy": (300, 1, "death", None), "proxy_cens": (530, 0, "censored", None),
        "ne_only": (530, 0, "censored", None), "tie_nl_death": (200, 1, "death", None),
        "tie_pd_death": (120, 1, "death", None), "chinese": (540, 0, "censored", None),
        "after_death": (300, 1, "death", None),
    }


def test_last_contact_sources(spark, study):
    from builders import bronze as make_bronze, frame
    # One patient per contact table holding the latest date (2025-03-0n); each also has a
    # prescription on 2025-01-01. 'late' has a visit after the cut-off (ignored) and
    # biomarkers/vitals later than its prescription (not contact sources) → 2025-01-01.
    pids = ["v", "p", "l", "t", "g", "a", "late"]
    rx = [{"record_id": f"r{p}", "patient_id": p, "admin_date": "2025-01-01", "drug_name": "x"} for p in pids]
    rx.append({"record_id": "rp2", "patient_id": "p", "admin_date": "2025-03-02", "drug_name": "x"})
    b = make_bronze(
        spark, patients=[{"patient_id": p, "sex": "F", "birth_date": "1970-01-01"} for p in pids],
        prescriptions=rx,
        visits=[{"patient_id": "v", "visit_date": "2025-03-01"}, {"patient_id": "late", "visit_date": "2025-07-01"}],
        labs=[{"patient_id": "l", "collect_date": "2025-03-03", "test": "ANC", "value": 2.0}],
        tumor_assessments=[{"patient_id": "t", "assessment_date": "2025-03-04", "response": "SD"}],
        diagnoses=[{"patient_id": "g", "diagnosis_date": "2025-03-05", "icd10": "C50.9"}],
        adverse_events=[{"patient_id": "a", "onset_date": "2025-03-06", "term": "rash"}],
        biomarkers=[{"patient_id": "late", "test_date": "2025-03-07", "marker": "ER", "result": "90%"}],
        vitals=[{"patient_id": "late", "measure_date": "2025-03-08", "height_cm": 160.0}])
    patients = frame(spark, "patient_id string, death_date date", [{"patient_id": p} for p in pids])
    got = {r["patient_id"]: r["last_contact"].isoformat() for r in ep.last_contacts(b, patients, study).collect()}
    assert got == {"v": "2025-03-01", "p": "2025-03-02", "l": "2025-03-03", "t": "2025-03-04", "g": "2025-03-05",
                   "a": "2025-03-06", "late": "2025-01-01"}


RESPONSE_CASES = [
    ("CR", "CR"), ("cr", "CR"), ("完全缓解", "CR"), ("Complete Response", "CR"),
    ("PR", "PR"), ("部分缓解", "PR"), ("partial response", "PR"), ("ＰＲ", "PR"),
    ("SD", "SD"), ("疾病稳定", "SD"), ("Stable disease", "SD"), (" sd ", "SD"),
    ("PD", "PD"), ("疾病进展", "PD"), ("Progressive Disease", "PD"), ("pd", "PD"), ("进展", "PD"),
    ("NE", "NE"), ("不可评价", "NE"), ("not evaluable", "NE"),
    ("好转?", None), ("", None), ("PD?", None),
]


@pytest.fixture(scope="module")
def responses(spark):
    df = spark.createDataFrame(list(enumerate(t for t, _ in RESPONSE_CASES)), "i int, response string")
    return {r["i"]: r["code"] for r in df.select("i", ep.response_expr("response").alias("code")).collect()}


@pytest.mark.parametrize("i", range(len(RESPONSE_CASES)), ids=[repr(t) for t, _ in RESPONSE_CASES])
def test_response_variants(responses, i):
    assert responses[i] == RESPONSE_CASES[i][1]


@pytest.mark.parametrize("broadcast_late", [False, True])
def test_the_lakes_last_contacts_give_the_same_endpoints(spark, study, run, broadcast_late):
    # silver/last_contacts (built once for the lake's studies) in place of the contact tables,
    # the late patients joined by a shuffle or sent to every task.
    endpoints, dq = build(spark, study, lake_contacts=True, broadcast_late=broadcast_late)
    assert as_dict(endpoints) == run[0]
    assert {(r["table"], r["check"], r["reason"]): r["n"] for r in dq.collect()} == run[1]
    assert len(run[0]) >= 10 and ("endpoints", "records_after_death",
                                  "patients with records dated after their death (ignored)") in run[1]


@pytest.mark.parametrize("broadcast_late", [False, True])
def test_lake_last_contacts_by_hand(spark, study, broadcast_late):
    from builders import bronze as make_bronze
    # a died 2025-02-01: its visits of 02-05 and 02-20 and its lab of 02-05 are after death
    # (3 records on 2 days, ignored), its last contact the lab of 01-20. b is alive: its
    # visit after the cut-off (06-30) is not a contact; last contact the visit of 03-03.
    # c died with no record: no row. d died 2025-04-01 and was last seen that day: not
    # late, no record after death. e died 2025-01-01 and every record of e is after it:
    # no last contact, 2 records after death. x is no patient of the patient table: no row.
    b = make_bronze(
        spark,
        patients=[{"patient_id": p, "sex": "F", "birth_date": "1970-01-01", "id_hash": h}
                  for p, h in (("a", "ha"), ("b", None), ("c", "hc"), ("d", "hd"), ("e", "he"))],
        deaths=[{"id_hash": h, "death_date": d} for h, d in (("ha", "2025-02-01"), ("hc", "2025-03-01"),
                                                              ("hd", "2025-04-01"), ("he", "2025-01-01"))],
        visits=[{"patient_id": "a", "visit_date": d} for d in ("2025-01-10", "2025-02-05", "2025-02-20")]
        + [{"patient_id": "b", "visit_date": d} for d in ("2025-03-03", "2025-07-01")]
        + [{"patient_id": "d", "visit_date": d} for d in ("2025-03-01", "2025-04-01")]
        + [{"patient_id": "e", "visit_date": "2025-01-05"}]
        + [{"patient_id": "x", "visit_date": "2025-01-01"}],
        labs=[{"patient_id": "a", "collect_date": d, "test": "ANC", "value": 2.0} for d in ("2025-01-20", "2025-02-05")]
        + [{"patient_id": "e", "collect_date": "2025-01-05", "test": "ANC", "value": 2.0}],
        prescriptions=[{"record_id": "r1", "patient_id": "b", "admin_date": "2025-01-01", "drug_name": "x"}])
    late = ep.late_patients(ep.latest_records(b, study)).collect()
    assert {r["patient_id"]: r["latest_record"].isoformat() for r in late} == {"a": "2025-02-20", "e": "2025-01-05"}
    got = {r["patient_id"]: (r["last_contact"] and r["last_contact"].isoformat(), r["records_after_death"],
                             r["data_cutoff"].isoformat())
           for r in ep.lake_last_contacts(b, study, broadcast_late=broadcast_late).collect()}
    assert got == {"a": ("2025-01-20", 3, "2025-06-30"), "b": ("2025-03-03", 0, "2025-06-30"),
                   "d": ("2025-04-01", 0, "2025-06-30"), "e": (None, 2, "2025-06-30")}
