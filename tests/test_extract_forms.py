"""Extracts as real systems write them: encodings, date forms, Parquet types, a misread extract.

Files are written here the way the systems write them (Python's codecs, pandas'
and pyarrow's defaults). Every expected date is worked by hand in a comment.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from cohort_engine.date_forms import ambiguous_date_text, date_from_text
from cohort_engine.errors import ExtractMisread, ExtractMisreadError, IngestError, UserError
from cohort_engine.extract_files import ExtractSettings, file_encoding, has_quoted_line_break, plan_table
from cohort_engine.ingest import ingest
from cohort_engine.lake import Lake
from cohort_engine.raw_tables import java_charsets, nanos_as_long, read_plan
from cohort_engine.typed_columns import typed_column
from cohort_engine.validation import ReasonCount, misread_message

CUTOFF = dt.date(2025, 6, 30)
ENV = {"COHORT_ENGINE_DELTA_WRITER": "offline"}
D = dt.date(2019, 3, 5)
HEADER = "record_id,patient_id,hospital_id,admin_date,drug_name,drug_code,dose,dose_unit,route"

# A small clean extract: every required table, nothing a check rejects.
BASE = {
    "hospitals": "hospital_id,tier,province,hospital_type\nH1,3A,北京,oncology\nH2,2B,广东,general\n",
    "patients": "patient_id,sex,birth_date,id_hash,province\nP1,F,1970-01-01,h1,北京\nP2,F,1980-05-05,h2,上海\n",
    "deaths": "id_hash,death_date,cause_icd10\nh1,2024-01-01,C50.9\n",
    "diagnoses": "patient_id,hospital_id,diagnosis_date,icd10,stage,diagnosis_text\nP1,H1,2019-01-10,C50.9,IV,乳腺癌\n",
    "biomarkers": "patient_id,test_date,marker,method,result\nP1,2019-01-12,HER2,IHC,3+\n",
}
DRUGS = ["注射用紫杉醇脂质体", "曲妥珠单抗", "帕妥珠单抗", "卡培他滨", "赫赛汀"]


def prescriptions(dates: list[str], extra_header: str = "", extra=lambda i: "") -> str:
    lines = [HEADER + extra_header]
    for i, date in enumerate(dates):
        lines.append(f"R{i + 1},P{1 + i % 2},H1,{date},{DRUGS[i % len(DRUGS)]},,{100 + i},mg,iv{extra(i)}")
    return "\n".join(lines) + "\n"


def write_csv_extract(folder: Path, tables: dict[str, str], encodings: dict[str, str] | None = None) -> Path:
    """Each table as <name>.csv in the Python codec given (default utf-8)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_bytes(text.encode((encodings or {}).get(name, "utf-8")))
    return folder


def committed(lake_root: Path) -> dict[str, int]:
    from deltalake import DeltaTable
    return {f"{p.parent.parent.name}/{p.parent.name}": DeltaTable(str(p.parent)).version()
            for p in sorted(lake_root.glob("*/*/_delta_log"))}


def write_folders(lake_root: Path) -> list[Path]:
    return sorted(lake_root.glob("*/*/w-*"))


# -- encodings ------------------------------------------------------------------------

RX_TEXT = prescriptions(["2019-03-05", "2019-03-06", "2019-03-07"])


@pytest.mark.parametrize("codec, expected", [("utf-8", "utf-8"), ("utf-8-sig", "utf-8"), ("gb18030", "gb18030"),
                                             ("gbk", "gb18030")])
def test_the_bytes_tell_the_encoding(tmp_path, codec, expected):
    path = tmp_path / "prescriptions.csv"
    path.write_bytes(RX_TEXT.encode(codec))
    assert file_encoding(path) == (expected, False)


def test_plain_ascii_is_utf8_and_fits_any(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"hospital_id,tier\nH1,3A\n")
    assert file_encoding(path) == ("utf-8", True)
    assert file_encoding(path, "gb18030") == ("gb18030", True)


def test_the_same_table_in_three_encodings_reads_the_same(spark, tmp_path):
    rows = {}
    for codec in ("utf-8", "utf-8-sig", "gb18030"):
        source = write_csv_extract(tmp_path / codec, {"prescriptions": RX_TEXT}, {"prescriptions": codec})
        plan = plan_table(source, "prescriptions")
        with java_charsets(spark, plan.encoding == "gb18030"):  # Spark 4 reads GB18030 only with it
            raw = read_plan(spark, plan)
            assert raw.columns[:4] == ["record_id", "patient_id", "hospital_id", "admin_date"]  # no BOM in a name
            rows[codec] = sorted(tuple(r) for r in raw.collect())
    assert rows["utf-8"] == rows["utf-8-sig"] == rows["gb18030"]
    assert [r[4] for r in rows["gb18030"]] == ["注射用紫杉醇脂质体", "曲妥珠单抗", "帕妥珠单抗"]


def test_invalid_bytes_stop_the_run_naming_file_and_line(tmp_path):
    # Lines 1-3 GB18030, line 4 holds ff fe, which no GB18030 (nor UTF-8) sequence starts with.
    # As UTF-8 the file fails on line 2: 注射 is d7 a2 c9 e4 in GB18030; d7 a2 happens to be UTF-8 (a
    # Hebrew letter), c9 e4 is not (e4 continues nothing).
    path = tmp_path / "prescriptions.csv"
    path.write_bytes(prescriptions(["2019-03-05", "2019-03-06"]).encode("gb18030")
                     + b"R3,P1,H1,2019-03-07,\xff\xfe,,1,mg,iv\n")
    with pytest.raises(ExtractMisread) as auto:
        file_encoding(path)
    assert str(auto.value) == (f"source file {path} is neither UTF-8 nor GB18030: line 2 is not UTF-8 (bytes c9) "
                               "and line 4 is not GB18030 (bytes ff); re-export it as UTF-8 or GB18030/GBK "
                               "(--encoding)")
    assert isinstance(auto.value, IngestError) and isinstance(auto.value, UserError)
    with pytest.raises(ExtractMisread) as set_by_run:
        file_encoding(path, "gb18030")
    assert str(set_by_run.value) == (f"source file {path} is not GB18030 (the run's --encoding): line 4 holds "
                                     "bytes ff that GB18030 cannot decode")


def test_a_utf8_file_read_as_gb18030_is_refused_not_garbled(tmp_path):
    # 紫 is e7 b4 ab in UTF-8: e7 b4 is a GB18030 pair (a wrong character), ab then ',' (2c) is not.
    path = tmp_path / "p.csv"
    path.write_bytes("drug\n紫,x\n".encode("utf-8"))
    with pytest.raises(ExtractMisread, match=r"line 2 holds bytes ab that GB18030 cannot decode"):
        file_encoding(path, "gb18030")
    assert file_encoding(path, "utf-8") == ("utf-8", False)


def test_a_latin1_byte_mess_stops(tmp_path):
    # UTF-8 on lines 1-2, then Latin-1: ü is fc (no UTF-8 start byte) on line 3; as GB18030 the UTF-8
    # of 紫 (e7 b4 ab, then 87 of 杉's e6 9d 89 ...) fails on line 2 already.
    path = tmp_path / "m.csv"
    path.write_bytes("record_id,drug_name\nR1,紫杉醇\n".encode("utf-8") + "R2,Müller café\n".encode("latin-1"))
    with pytest.raises(ExtractMisread) as err:
        file_encoding(path)
    assert str(err.value) == (f"source file {path} is neither UTF-8 nor GB18030: line 3 is not UTF-8 (bytes fc) "
                              "and line 2 is not GB18030 (bytes 87); re-export it as UTF-8 or GB18030/GBK "
                              "(--encoding)")


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 1 << 20])
def test_chunk_boundaries_do_not_move_the_line(tmp_path, monkeypatch, chunk):
    import cohort_engine.extract_files as extract_files
    monkeypatch.setattr(extract_files, "_CHUNK", chunk)  # small chunks end inside multi-byte characters
    path = tmp_path / "c.csv"
    text = "a,b\n曲妥珠单抗,1\n帕妥珠单抗,2\n"
    path.write_bytes(text.encode("gb18030"))
    assert file_encoding(path) == ("gb18030", False)
    # 滨 (e6 bb a8) cut short on line 4: e6 bb then a line break. As GB18030, the UTF-8 bytes of
    # line 2 pair up wrongly (garbled characters) until one, 97, starts no GB18030 sequence.
    path.write_bytes(text.encode("utf-8") + "卡培他滨\n".encode("utf-8")[:-2] + b"\n")
    with pytest.raises(ExtractMisread) as err:
        file_encoding(path)
    assert str(err.value) == (f"source file {path} is neither UTF-8 nor GB18030: line 4 is not UTF-8 (bytes e6 bb) "
                              "and line 2 is not GB18030 (bytes 97); re-export it as UTF-8 or GB18030/GBK "
                              "(--encoding)")


@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
@pytest.mark.parametrize("text, spans_lines", [
    ('a,b\n1,"x\ny"\n', True),                  # a quoted value over two lines
    ('a,b\n1,"x"\n2,"y"\n', False),
    ('a,b\n1,"say ""x""\n2,y\n', True),         # the escaped quotes leave the value open
    ('a,b\n1,"say ""x"""\n2,y\n', False),
    ('a,b\r\n1,"x,\r\ny"\r\n', True),
    ('a,b\n1,"紫杉醇\n(力扑素)"\n', True),
    ('a,b\n1,"紫杉醇(力扑素)"\n', False),
])
def test_a_record_over_several_lines_is_found(tmp_path, monkeypatch, chunk, text, spans_lines):
    import cohort_engine.extract_files as extract_files
    monkeypatch.setattr(extract_files, "_CHUNK", chunk)  # the count of quotes carries over chunks
    for codec in ("utf-8", "gb18030"):
        path = tmp_path / f"{codec}.csv"
        path.write_bytes(text.encode(codec))
        assert has_quoted_line_break(path) is spans_lines


def test_a_large_csv_file_is_read_by_several_tasks_unless_a_record_spans_lines(spark, tmp_path):
    rows = "".join(f"R{i:06d},P{i % 97:03d},H001,2019-03-05,trastuzumab,440,mg,1\n" for i in range(40_000))
    header = "record_id,patient_id,hospital_id,admin_date,drug_name,dose,dose_unit,cycle\n"
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "prescriptions.csv").write_text(header + rows, encoding="utf-8")
    spanning = tmp_path / "spanning"
    spanning.mkdir()
    (spanning / "prescriptions.csv").write_text(header + rows + 'R999999,P001,H001,2019-03-05,"trastuzumab\n(Herceptin)",'
                                                "440,mg,1\n", encoding="utf-8")
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    # 2,000,075 bytes in splits of 256 KiB (below the bytes per core): ceil(7.63) = 8 tasks
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(256 * 1024))
    try:
        flat_plan, spanning_plan = plan_table(flat, "prescriptions"), plan_table(spanning, "prescriptions")
        assert (flat_plan.multiline, spanning_plan.multiline) == (False, True)
        flat_raw, spanning_raw = read_plan(spark, flat_plan), read_plan(spark, spanning_plan)
        assert flat_raw.rdd.getNumPartitions() == 8
        assert spanning_raw.rdd.getNumPartitions() == 1
        assert flat_raw.count() == 40_000
        assert spanning_raw.where("record_id = 'R999999'").first()["drug_name"] == "trastuzumab\n(Herceptin)"
        assert spanning_raw.count() == 40_001
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)


def test_a_csv_folder_checks_every_part(spark, tmp_path):
    folder = tmp_path / "src" / "prescriptions"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_bytes(prescriptions(["2019-03-05"]).encode("gb18030"))
    (folder / "part-1.csv").write_bytes(prescriptions(["2019-03-06"]).encode("utf-8"))
    with pytest.raises(ExtractMisreadError, match=r"part-1.csv is UTF-8 but .*part-0.csv is GB18030"):
        plan_table(tmp_path / "src", "prescriptions")
    (folder / "part-1.csv").write_bytes(prescriptions(["2019-03-06"]).encode("gb18030"))
    (folder / "_SUCCESS").write_bytes(b"")
    plan = plan_table(tmp_path / "src", "prescriptions")
    assert (plan.fmt, plan.encoding) == ("csv", "gb18030")
    with java_charsets(spark):
        assert sorted(r["drug_name"] for r in read_plan(spark, plan).collect()) == ["注射用紫杉醇脂质体"] * 2


def test_bad_settings_are_one_line():
    with pytest.raises(IngestError, match=r"encoding must be auto, utf-8, gb18030 or gbk, got 'latin-1'"):
        ExtractSettings(encoding="latin-1")
    with pytest.raises(IngestError, match=r"unknown time zone 'Mars/Olympus'"):
        ExtractSettings(timezone="Mars/Olympus")
    with pytest.raises(IngestError, match=r"from 0 to 1, got 10"):
        ExtractSettings(max_rejected_share=10)
    assert ExtractSettings(encoding="GBK").encoding == "gb18030"


# -- dates written as text ---------------------------------------------------------------

DATE_TEXTS = [
    # text, date in Asia/Shanghai, date in UTC, ambiguous
    ("2019-03-05", D, D, False),
    ("2019-03-05 08:30:00", D, D, False),            # no offset: local already, its own date
    ("2019-03-05 08:30", D, D, False),
    ("2019-03-05T08:30:00", D, D, False),
    ("2019-03-05T23:59:59", D, D, False),            # late in the day, still the 5th without an offset
    ("2019-03-05T08:30:00+08:00", D, D, False),      # 00:30 UTC, 08:30 in Shanghai
    ("2019-03-05T08:30:00+0800", D, D, False),
    ("2019-03-04T20:00:00-05:00", D, D, False),      # 01:00 UTC on the 5th, 09:00 in Shanghai
    ("2019-03-05T01:00:00+08:00", D, dt.date(2019, 3, 4), False),  # 17:00 UTC on the 4th
    ("2019-03-04T20:00:00Z", D, dt.date(2019, 3, 4), False),       # 04:00 on the 5th in Shanghai
    ("2019-03-04T17:00:00.250Z", dt.date(2019, 3, 5), dt.date(2019, 3, 4), False),  # 01:00:00.25 in Shanghai
    ("2019-03-04T15:59:59Z", dt.date(2019, 3, 4), dt.date(2019, 3, 4), False),      # 23:59:59 in Shanghai
    ("2019/03/05", D, D, False),
    ("2019/3/5", D, D, False),
    ("2019/03/05 08:30", D, D, False),
    ("2019.03.05", D, D, False),
    ("20190305", D, D, False),
    ("2019年3月5日", D, D, False),
    ("2019年03月05日", D, D, False),
    (" 2019-03-05 ", D, D, False),
    ("05/03/2019", None, None, True),
    ("5/3/2019", None, None, True),
    ("05-03-2019", None, None, True),
    ("05.03.2019", None, None, True),
    ("15/03/2019", None, None, True),               # only day-first makes a date, yet the form is ambiguous
    ("05/03/2019 08:30", None, None, True),
    ("20-20-2020", None, None, False),              # neither reading is a date: unparseable
    ("2019-02-30", None, None, False),
    ("2019-13-01", None, None, False),
    ("2019-03-05 25:00", None, None, False),
    # The two forms cut by position (date_parts' fast path) are checked as the pattern checks them.
    ("2019-02-29", None, None, False),              # not a leap year
    ("2020-02-29", dt.date(2020, 2, 29), dt.date(2020, 2, 29), False),
    ("2019-03-05 24:00:00", None, None, False),
    ("2019-03-05 08:61:00", None, None, False),
    ("2019-03-05 23:59:59", D, D, False),
    ("2019-0a-05", None, None, False),
    ("+019-03-05", None, None, False),              # ten characters, two dashes, not four digits of year
    ("2019-03-05 08:3a:00", None, None, False),
    ("2019-03-05 08.30.00", None, None, False),
    ("2019-03/05", None, None, False),              # two separators
    ("2019-03-05+08:00", None, None, False),        # an offset without a time
    ("05-Mar-2019", None, None, False),
    ("N/A", None, None, False),
    ("未知", None, None, False),
]


@pytest.mark.parametrize("session_zone", ["UTC", "America/Los_Angeles", "Asia/Tokyo"])
def test_every_date_form_of_the_contract(spark, session_zone):
    frame = spark.createDataFrame([(t,) for t, *_ in DATE_TEXTS], "t string")
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", session_zone)  # results must not depend on it
    try:
        got = frame.select("t", date_from_text(F.col("t"), "Asia/Shanghai").alias("sh"),
                           date_from_text(F.col("t"), "UTC").alias("utc"),
                           ambiguous_date_text(F.col("t")).alias("amb")).collect()
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert [(r["t"], r["sh"], r["utc"], r["amb"]) for r in got] == DATE_TEXTS


# -- Parquet as pandas and pyarrow write it --------------------------------------------------

# Two wall-clock moments: 2019-03-04 20:00 and 2019-03-05 01:00.
MOMENTS = pd.to_datetime(["2019-03-04 20:00:00", "2019-03-05 01:00:00"])


def visits_parquet(folder: Path, column) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"patient_id": ["P1", "P2"], "visit_date": column}).to_parquet(folder / "visits.parquet")
    return folder


def arrow_visits(folder: Path, array: pa.Array, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"patient_id": pa.array(["P1", "P2"][:len(array)]), "visit_date": array, **extra}),
                   folder / "visits.parquet")
    return folder


def parquet_dates(spark, folder: Path, timezone: str = "Asia/Shanghai") -> list:
    plan = plan_table(folder, "visits", ExtractSettings(timezone=timezone))
    with nanos_as_long(spark, plan.nanos):
        raw = read_plan(spark, plan)
        return [r[0] for r in raw.orderBy("patient_id").select(typed_column(raw, "visit_date", "date", timezone))
                .collect()]


PARQUET_CASES = {
    # name: (writer, dates dated in Asia/Shanghai, in UTC)
    # pandas naive datetime64[ns]: wall clock, its own date whatever the zone.
    "pandas_naive_ns": (lambda f: visits_parquet(f, MOMENTS), [dt.date(2019, 3, 4), D], [dt.date(2019, 3, 4), D]),
    # datetime64[ns, Asia/Shanghai]: instants 12:00 and 17:00 UTC on the 4th.
    "pandas_shanghai_ns": (lambda f: visits_parquet(f, MOMENTS.tz_localize("Asia/Shanghai")),
                           [dt.date(2019, 3, 4), D], [dt.date(2019, 3, 4), dt.date(2019, 3, 4)]),
    # datetime64[ns, UTC]: 20:00 UTC on the 4th is 04:00 on the 5th in Shanghai.
    "pandas_utc_ns": (lambda f: visits_parquet(f, MOMENTS.tz_localize("UTC")), [D, D], [dt.date(2019, 3, 4), D]),
    "pandas_date_objects": (lambda f: visits_parquet(f, MOMENTS.date), [dt.date(2019, 3, 4), D],
                            [dt.date(2019, 3, 4), D]),
    "pandas_text": (lambda f: visits_parquet(f, ["2019-03-04T20:00:00-05:00", "2019年3月5日"]), [D, D], [D, D]),
    "arrow_ms_naive": (lambda f: arrow_visits(f, pa.array(MOMENTS.to_pydatetime(), pa.timestamp("ms"))),
                       [dt.date(2019, 3, 4), D], [dt.date(2019, 3, 4), D]),
    "arrow_s_naive": (lambda f: arrow_visits(f, pa.array(MOMENTS.to_pydatetime(), pa.timestamp("s"))),
                      [dt.date(2019, 3, 4), D], [dt.date(2019, 3, 4), D]),
    "arrow_us_utc": (lambda f: arrow_visits(f, pa.array(MOMENTS.to_pydatetime(), pa.timestamp("us", tz="UTC"))),
                     [D, D], [dt.date(2019, 3, 4), D]),
    "arrow_ns_new_york": (lambda f: arrow_visits(f, pa.array(MOMENTS.tz_localize("America/New_York"))),
                          # 20:00 EST is 01:00 UTC on the 5th (09:00 Shanghai); 01:00 EST is 06:00 UTC
                          [D, D], [D, D]),
    "arrow_date32": (lambda f: arrow_visits(f, pa.array([dt.date(2019, 3, 4), D], pa.date32())),
                     [dt.date(2019, 3, 4), D], [dt.date(2019, 3, 4), D]),
    "arrow_int64_yyyymmdd": (lambda f: arrow_visits(f, pa.array([20190305, 20190230], pa.int64())),
                             [D, None], [D, None]),
    "arrow_string": (lambda f: arrow_visits(f, pa.array(["2019/3/5", "05/03/2019"], pa.string())),
                     [D, None], [D, None]),
    "arrow_dictionary": (lambda f: arrow_visits(f, pa.array(["2019.03.05", "20190305"]).dictionary_encode()),
                         [D, D], [D, D]),
}


@pytest.mark.parametrize("case", sorted(PARQUET_CASES))
def test_parquet_dates_from_any_common_writer(spark, tmp_path, case):
    write, shanghai, utc = PARQUET_CASES[case]
    folder = write(tmp_path / "src")
    assert parquet_dates(spark, folder) == shanghai
    assert parquet_dates(spark, folder, "UTC") == utc


def test_nanosecond_setting_is_restored(spark, tmp_path):
    visits_parquet(tmp_path / "src", MOMENTS)
    before = spark.conf.get("spark.sql.legacy.parquet.nanosAsLong")
    parquet_dates(spark, tmp_path / "src")
    assert spark.conf.get("spark.sql.legacy.parquet.nanosAsLong") == before == "false"


def test_a_spark_written_folder_with_ntz_and_ltz_timestamps(spark, tmp_path):
    folder = tmp_path / "src" / "visits"
    (spark.createDataFrame([("P1", "2019-03-04 20:00:00")], "patient_id string, t string")
     .select("patient_id", F.to_timestamp_ntz("t").alias("visit_date"), F.to_timestamp_ntz("t").alias("seen_ntz"))
     .write.parquet(str(folder)))
    assert parquet_dates(spark, tmp_path / "src") == [dt.date(2019, 3, 4)]  # wall clock: the 4th


@pytest.mark.parametrize("array, type_name", [
    (pa.array([{"y": 2019, "m": 3, "d": 5}] * 2), "struct<y: int64, m: int64, d: int64>"),
    (pa.array([[2019, 3, 5]] * 2), "list<element: int64>"),  # as the Parquet footer names it
    (pa.array([dt.timedelta(days=17960)] * 2, pa.duration("ns")), "duration[ns]"),
    (pa.array([b"2019-03-05"] * 2, pa.binary()), "binary"),
    (pa.array([20190305] * 2, pa.decimal128(8, 0)), "decimal128(8, 0)"),
    (pa.array([20190305.0] * 2, pa.float64()), "double"),
])
def test_a_date_column_of_an_unreadable_type_is_one_line(tmp_path, array, type_name):
    folder = arrow_visits(tmp_path / "src", array)
    with pytest.raises(IngestError) as err:
        plan_table(folder, "visits")
    assert str(err.value) == (f"source table 'visits' (visits.parquet): column 'visit_date' is {type_name}, "
                              "which the engine cannot read as a date")


def test_a_column_spark_cannot_read_at_all_is_one_line(tmp_path):
    folder = arrow_visits(tmp_path / "src", pa.array([D, D]), seen_at=pa.array([dt.time(8, 30)] * 2, pa.time64("us")))
    with pytest.raises(IngestError) as err:
        plan_table(folder, "visits")
    assert str(err.value) == ("source table 'visits' (visits.parquet): column 'seen_at' is time64[us], a Parquet "
                              "type the engine cannot read (write it as text, or leave it out)")


def test_every_file_of_a_parquet_folder_is_checked(tmp_path):
    folder = tmp_path / "src" / "visits"
    (folder / "year=2019").mkdir(parents=True)
    pq.write_table(pa.table({"patient_id": ["P1"], "visit_date": pa.array([D])}), folder / "part-0.parquet")
    pq.write_table(pa.table({"patient_id": ["P1"], "visit_date": pa.array([{"y": 2019}])}),
                   folder / "year=2019" / "part-1.parquet")
    with pytest.raises(IngestError, match=r"^source table 'visits' \(year=2019/part-1.parquet\): column 'visit_date' "
                                          r"is struct<y: int64>, which the engine cannot read as a date$"):
        plan_table(tmp_path / "src", "visits")
    shutil.rmtree(folder / "year=2019")
    pq.write_table(pa.table({"patient_id": ["P2"], "visit_date": pa.array(["2019-03-05"])}), folder / "part-2.parquet")
    with pytest.raises(IngestError, match=r"^source table 'visits': column 'visit_date' is date32\[day\] in "
                                          r"part-0.parquet but string in part-2.parquet; the files of a table "
                                          r"must agree$"):
        plan_table(tmp_path / "src", "visits")


def test_a_pandas_parquet_extract_ingests_with_exact_dates(spark, tmp_path):
    """The user's case: pandas' default Parquet (nanosecond timestamps) everywhere."""
    src = tmp_path / "src"
    write_csv_extract(src, {k: v for k, v in BASE.items() if k not in ("patients", "deaths", "diagnoses")})
    pd.DataFrame({"patient_id": ["P1", "P2"], "sex": ["F", "F"],
                  "birth_date": pd.to_datetime(["1970-01-01", "1980-05-05"]),  # naive ns
                  "id_hash": ["h1", "h2"], "province": ["北京", "上海"]}).to_parquet(src / "patients.parquet")
    pd.DataFrame({"id_hash": ["h1"], "death_date": [20240101]}).to_parquet(src / "deaths.parquet")  # int YYYYMMDD
    pq.write_table(pa.table({"patient_id": ["P1"], "hospital_id": ["H1"],
                             "diagnosis_date": pa.array([dt.datetime(2019, 1, 10, 23, 0)], pa.timestamp("ms")),
                             "icd10": ["C50.9"]}), src / "diagnoses.parquet")
    (src / "prescriptions").mkdir()
    for part, moments in enumerate((["2019-03-04 17:00:00", "2019-03-04 16:00:00"], ["2019-03-05 23:00:00"])):
        pd.DataFrame({"record_id": [f"R{part}{i}" for i in range(len(moments))], "patient_id": "P1",
                      "hospital_id": "H1",
                      "admin_date": pd.to_datetime(moments).tz_localize("UTC"),  # datetime64[ns, UTC]
                      "drug_name": "曲妥珠单抗", "dose": 440.0, "dose_unit": "mg", "route": "iv",
                      "prescribed_at": pd.to_datetime(moments),
                      }).to_parquet(src / "prescriptions" / f"part-{part}.parquet")
    lake = Lake(tmp_path / "lake", spark, ENV)
    results = {r.table: r for r in ingest(spark, lake, src, CUTOFF, progress=lambda _: None)}
    assert {t: (r.rows_read, r.rows_kept) for t, r in results.items()} == {
        "hospitals": (2, 2), "patients": (2, 2), "deaths": (1, 1), "diagnoses": (1, 1), "biomarkers": (1, 1),
        "prescriptions": (3, 3)}
    assert {r["patient_id"]: r["birth_date"] for r in lake.read("bronze", "patients").collect()} == {
        "P1": dt.date(1970, 1, 1), "P2": dt.date(1980, 5, 5)}
    assert lake.read("bronze", "deaths").collect()[0]["death_date"] == dt.date(2024, 1, 1)
    assert lake.read("bronze", "diagnoses").collect()[0]["diagnosis_date"] == dt.date(2019, 1, 10)  # wall clock
    rx = {r["record_id"]: r for r in lake.read("bronze", "prescriptions").collect()}
    # 17:00 UTC on the 4th is 01:00 on the 5th in Shanghai; 16:00 UTC is 00:00 on the 5th; 23:00 UTC
    # on the 5th is 07:00 on the 6th.
    assert {k: r["admin_date"] for k, r in rx.items()} == {"R00": D, "R01": D, "R10": dt.date(2019, 3, 6)}
    # The extra nanosecond column stays a date-time (wall clock), not a number.
    assert rx["R00"]["prescribed_at"] == dt.datetime(2019, 3, 4, 17, 0)
    assert spark.conf.get("spark.sql.legacy.parquet.nanosAsLong") == "false"


# -- a misread extract stops the run --------------------------------------------------------


def test_misread_share_boundary():
    def summary(bad: int, rows: int = 20, reason="unparseable_date"):
        return [ReasonCount(None, None, rows - bad, None), ReasonCount(reason, "admin_date", bad, "3/5/19")]
    assert misread_message("prescriptions", summary(2), 0.10) is None  # exactly 10 %: not more than
    assert misread_message("prescriptions", summary(1), 0.05) is None
    assert misread_message("prescriptions", summary(3), 0.10) == (
        "prescriptions.admin_date: 15.0% of 20 rows rejected as unparseable_date (e.g. '3/5/19'); the extract "
        "looks misread (threshold 10%, --max-rejected-share)")
    assert misread_message("t", summary(30, 100), 0.3) is None  # 0.3 is not 0.29999…
    # Duplicates count as rows read, never as rejections.
    dup = [ReasonCount(None, None, 5, None), ReasonCount("__exact_duplicate__", None, 15, None)]
    assert misread_message("t", dup, 0.10) is None
    # One reason over two columns counts whole, named by the column that holds most of it.
    split = [ReasonCount(None, None, 17, None), ReasonCount("missing_required", "patient_id", 1, None),
             ReasonCount("missing_required", "drug_name", 2, None)]
    assert misread_message("prescriptions", split, 0.10) == (
        "prescriptions.drug_name: 15.0% of 20 rows rejected as missing_required (e.g. an empty value); the "
        "extract looks misread (threshold 10%, --max-rejected-share)")


@pytest.fixture(scope="module")
def good_run(spark, tmp_path_factory):
    """A run that goes on: in 20 prescriptions, 2 ambiguous dates (exactly 10 %) and one that is no date
    (5 %); dates in many forms; the patients file UTF-8 with a BOM, prescriptions GB18030; the
    prescriptions carry source columns named `reason` and `reason_column`."""
    base = tmp_path_factory.mktemp("good")
    dates = ["2019-03-05", "2019-03-05 08:30:00", "2019/03/05", "2019.3.5", "20190305", "2019年3月5日",
             "2019-03-05T08:30:00+08:00", "2019-03-04T20:00:00-05:00", "2019-03-05T01:00:00+08:00",
             "2019-03-04T16:30:00Z", "2019-03-05 08:30", "2019-03-05T08:30:00", "2019/3/5", "2019-3-5",
             "2019年03月05日 08:30", "2019-03-05",
             "05/03/2019", "15/03/2019",  # R17, R18: ambiguous_date
             "2019-03-31", "三月五日"]  # R20: unparseable_date
    text = prescriptions(dates, ",reason,reason_column", lambda i: f",原因{i + 1},c{i + 1}")
    src = write_csv_extract(base / "src", {**BASE, "prescriptions": text},
                            {"patients": "utf-8-sig", "prescriptions": "gb18030"})
    seen = {}
    lake = Lake(base / "lake", spark, ENV)
    results = {r.table: r for r in ingest(spark, lake, src, CUTOFF, progress=lambda _: None,
                                          check_table=lambda t, kept: seen.setdefault(t, kept.count()))}
    return base, lake, results, seen


def test_shares_up_to_the_threshold_go_on(good_run):
    _, _, results, _ = good_run
    r = results["prescriptions"]
    assert (r.rows_read, r.rows_kept, r.duplicates_removed, r.quarantined) == (
        20, 17, 0, {"ambiguous_date": 2, "unparseable_date": 1})


def test_each_form_gives_its_date(good_run):
    _, lake, _, _ = good_run
    dates = {r["record_id"]: r["admin_date"] for r in lake.read("bronze", "prescriptions").collect()}
    # R9: 01:00+08:00 is 17:00 UTC on the 4th, dated in Shanghai: the 5th. R10: 16:30 UTC is 00:30 on the
    # 5th in Shanghai. R19: the 31st.
    assert dates == {**{f"R{i}": D for i in range(1, 17)}, "R19": dt.date(2019, 3, 31)}


def test_bronze_keeps_source_text_in_every_encoding(good_run):
    _, lake, _, _ = good_run
    names = {r["record_id"]: r["drug_name"] for r in lake.read("bronze", "prescriptions").collect()}
    assert names["R1"] == "注射用紫杉醇脂质体" and names["R5"] == "赫赛汀"
    patients = {r["patient_id"]: r["province"] for r in lake.read("bronze", "patients").collect()}
    assert patients == {"P1": "北京", "P2": "上海"}  # BOM gone, header read
    assert lake.spark.conf.get("spark.sql.legacy.javaCharsets") == "false"  # as it was before the run


def test_a_source_column_named_reason_keeps_its_values(good_run):
    _, lake, _, _ = good_run
    bronze = lake.read("bronze", "prescriptions")
    assert bronze.columns[-2:] == ["reason", "reason_column"]
    assert {r["record_id"]: (r["reason"], r["reason_column"]) for r in bronze.collect()}["R3"] == ("原因3", "c3")
    quarantine = lake.read("quarantine", "prescriptions")
    assert quarantine.columns[:2] == ["reason", "reason_column"]
    assert quarantine.columns[-2:] == ["source_reason", "source_reason_column"]
    rows = {r["record_id"]: r.asDict() for r in quarantine.collect()}
    assert {k: (r["reason"], r["reason_column"], r["admin_date"], r["source_reason"], r["source_reason_column"])
            for k, r in rows.items()} == {
        "R17": ("ambiguous_date", "admin_date", "05/03/2019", "原因17", "c17"),
        "R18": ("ambiguous_date", "admin_date", "15/03/2019", "原因18", "c18"),
        "R20": ("unparseable_date", "admin_date", "三月五日", "原因20", "c20")}


def test_check_table_sees_every_tables_kept_rows(good_run):
    _, _, _, seen = good_run
    assert seen == {"hospitals": 2, "patients": 2, "deaths": 1, "diagnoses": 1, "biomarkers": 1, "prescriptions": 17}


def test_a_misread_column_stops_before_anything_is_committed(spark, tmp_path):
    # 1,204 prescriptions, every date day-month-name: patients and the other tables before it were fine.
    src = write_csv_extract(tmp_path / "src", {**BASE, "prescriptions": prescriptions(["05-Mar-2019"] * 1204)})
    lake = Lake(tmp_path / "lake", spark, ENV)
    with pytest.raises(ExtractMisread) as err:
        ingest(spark, lake, src, CUTOFF, progress=lambda _: None)
    assert str(err.value) == ("prescriptions.admin_date: 100.0% of 1,204 rows rejected as unparseable_date "
                              "(e.g. '05-Mar-2019'); the extract looks misread (threshold 10%, "
                              "--max-rejected-share)")
    assert committed(tmp_path / "lake") == {}  # not even bronze/patients
    assert write_folders(tmp_path / "lake") == []
    assert not lake.in_batch


def test_a_misread_extract_leaves_an_existing_lake_as_it_was(good_run, tmp_path, capsys):
    from cohort_engine.cli import main
    base, _, _, _ = good_run
    lake_root = tmp_path / "lake"
    shutil.copytree(base / "lake", lake_root)
    before = committed(lake_root)
    src = write_csv_extract(tmp_path / "src", {**BASE, "prescriptions": prescriptions(["05/03/2019"] * 20)})
    code = main(["run", "--source", str(src), "--lake", str(lake_root), "--out", str(tmp_path / "out"),
                 "--stages", "ingest", "--quiet"], ENV)
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "cohort-engine: prescriptions.admin_date: 100.0% of 20 rows rejected as ambiguous_date (e.g. '05/03/2019'); "
        "the extract looks misread (threshold 10%, --max-rejected-share)"]
    assert committed(lake_root) == before
    assert len(write_folders(lake_root)) == len(write_folders(base / "lake"))  # the committed ones only


def test_a_failing_check_table_commits_nothing(spark, tmp_path):
    src = write_csv_extract(tmp_path / "src", {**BASE, "prescriptions": prescriptions(["2019-03-05"] * 3)})
    lake = Lake(tmp_path / "lake", spark, ENV)

    def vocabulary_check(table, kept):
        if table == "prescriptions":
            raise ExtractMisread("prescriptions.drug_name: 100.0% of 3 rows match no vocabulary entry")
    with pytest.raises(ExtractMisread, match="match no vocabulary entry"):
        ingest(spark, lake, src, CUTOFF, progress=lambda _: None, check_table=vocabulary_check)
    assert committed(tmp_path / "lake") == {}
    assert write_folders(tmp_path / "lake") == []


def test_an_invalid_file_stops_ingest_before_spark_reads(spark, tmp_path):
    src = write_csv_extract(tmp_path / "src", {**BASE, "prescriptions": prescriptions(["2019-03-05"])})
    # Line 2 is UTF-8 (乳腺癌), line 3 ends in GB18030 (肺转移: b7 ce ...): as UTF-8 the file fails at
    # b7 on line 3; as GB18030 at 8c on line 2 (乳腺癌 is e4 b9 b3 e8 85 ba e7 99 8c: four wrong pairs,
    # then 8c before the line break).
    with open(src / "diagnoses.csv", "ab") as f:
        f.write("P2,H1,2019-02-01,C50.9,,".encode("utf-8") + "肺转移\n".encode("gb18030"))
    lake = Lake(tmp_path / "lake", spark, ENV)
    with pytest.raises(ExtractMisread) as err:
        ingest(spark, lake, src, CUTOFF, progress=lambda _: None)
    assert str(err.value) == (f"source file {src / 'diagnoses.csv'} is neither UTF-8 nor GB18030: line 3 is not "
                              "UTF-8 (bytes b7) and line 2 is not GB18030 (bytes 8c); re-export it as UTF-8 or "
                              "GB18030/GBK (--encoding)")
    assert committed(tmp_path / "lake") == {}
