"""How the generator writes names and dates: printed drug names, date forms, ambiguous dates,
and the `generate` options on the command line (no Spark)."""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pytest

from cohort_engine.synth import drugs
from cohort_engine.synth import dates as DT
from cohort_engine.synth import params as PR

BRACKETED = re.compile(r"\([^()]*\)|（[^（）]*）|【[^【】]*】|\[[^\[\]]*\]")


# -- printed names --------------------------------------------------------------------------------------

def test_printed_name_gives_these_names_for_a_fixed_seed():
    def six(product):
        rng = np.random.default_rng(2024)
        return [drugs.printed_name(product, rng) for _ in range(6)]
    assert six("paclitaxel liposome") == [
        "注射用紫杉醇脂质体 力扑素", "注射用紫杉醇脂质体【力扑素】 30mg/支", "【力扑素】注射用紫杉醇脂质体",
        "注射用紫杉醇脂质体 30mg/支", "Paclitaxel Liposome for Injection 30mg/支", "注射用紫杉醇脂质体（力扑素） 30mg"]
    assert six("trastuzumab") == [
        "注射用曲妥珠单抗 汉曲优", "注射用曲妥珠单抗【汉曲优】", "（汉曲优）注射用曲妥珠单抗", "注射用曲妥珠单抗 150mg/支",
        "Trastuzumab for Injection 150mg/支", "注射用曲妥珠单抗(汉曲优)"]
    assert six("pyrotinib") == [
        "马来酸吡咯替尼片 艾瑞妮", "马来酸吡咯替尼片【艾瑞妮】 80mg*14片", "【艾瑞妮】马来酸吡咯替尼片",
        "马来酸吡咯替尼片 80mg*14片", "pyrotinib maleate tablets 80mg*14片", "马来酸吡咯替尼片（艾瑞妮） 80mg"]
    assert six(drugs.FIXED_DOSE_HP) == [
        "帕妥珠单抗曲妥珠单抗注射液 Phesgo", "帕妥珠单抗曲妥珠单抗注射液【Phesgo】 600mg/600mg/10ml",
        "【Phesgo】帕妥珠单抗曲妥珠单抗注射液", "帕妥珠单抗曲妥珠单抗注射液 600mg/600mg/10ml",
        "pertuzumab and trastuzumab 600mg/600mg/10ml", "帕妥珠单抗曲妥珠单抗注射液（Phesgo） 1200mg/600mg/15ml"]
    # the vectorised draw of the generator is the same draw
    forms = drugs.printed_forms("trastuzumab")
    many = drugs.printed_indices("trastuzumab", np.random.default_rng(7), 5)
    rng = np.random.default_rng(7)
    assert forms[many[0]] == drugs.printed_name("trastuzumab", rng)


def test_printed_forms_of_the_two_cohort_drugs():
    pl = drugs.printed_forms("paclitaxel liposome")
    tz = drugs.printed_forms("trastuzumab")
    assert len(pl) == 56 and len(tz) == 108
    for name in ("注射用紫杉醇脂质体（力扑素）", "注射用紫杉醇脂质体(力扑素) 30mg", "Paclitaxel Liposome for Injection (Lipusu) 30mg",
                 "【力扑素】注射用紫杉醇脂质体", "注射用紫杉醇脂质体[绿叶制药]", "注射用紫杉醇脂质体(力扑素)(国产)",
                 "力扑素 注射用紫杉醇脂质体", "注射用紫杉醇脂质体 30mg/支", "Lipusu Paclitaxel Liposome for Injection"):
        assert name in pl, name
    for name in ("注射用曲妥珠单抗(赫赛汀) 440mg", "注射用曲妥珠单抗（汉曲优）（复宏汉霖）", "注射用曲妥珠单抗【上海罗氏】",
                 "注射用曲妥珠单抗[进口]", "赫赛汀 注射用曲妥珠单抗", "Trastuzumab for Injection (Herceptin) 150mg/支"):
        assert name in tz, name
    assert "马来酸吡咯替尼片(艾瑞妮) 80mg" in drugs.printed_forms("pyrotinib")


def _brands_in(text: str) -> set[str]:
    return {b for bs in drugs.BRANDS.values() for b in bs if b in text}


@pytest.mark.parametrize("product", drugs.PRODUCTS)
def test_every_printed_form_keeps_its_own_brand_and_brackets_its_maker(product):
    forms = drugs.printed_forms(product)
    _, weights = drugs._printed_table(product)
    assert forms and len(set(forms)) == len(forms) and abs(weights.sum() - 1) < 1e-12 and (weights > 0).all()
    own = set(drugs.BRANDS[product])
    assert own <= set(drugs.NAME_FORMS[product])
    zh = drugs.printed_generic(product, "chinese")
    la = drugs.printed_generic(product, "latin")
    assert zh in drugs.NAME_FORMS[product] or zh == drugs.INGREDIENTS.get(product, (0, 0, zh))[2]
    for form in forms:
        assert _brands_in(form) <= own, form                       # never another drug's brand
        assert zh in form or la in form, form                      # the generic name is always there
        outside = BRACKETED.sub("", form)
        assert not any(m in outside for m in drugs.MAKERS + drugs.ORIGINS), form
        assert form not in drugs.GARBLED_NAMES and form not in drugs.NAME_FORMS[product], form
    if product == drugs.FIXED_DOSE_HP:                             # names the product, not one antibody
        assert all("帕妥珠单抗曲妥珠单抗" in f or "pertuzumab and trastuzumab" in f for f in forms)
    if own:
        assert any(_brands_in(f) for f in forms)


def test_printed_form_shapes_are_all_used():
    forms = drugs.printed_forms("trastuzumab")
    opens = {ch for f in forms for ch in f if ch in "(（【["}
    assert opens == {"(", "（", "【", "["}
    assert any(f.startswith(("(", "（", "【", "[")) for f in forms)          # brand before
    assert any(" " in f and not BRACKETED.search(f) and not any(c.isdigit() for c in f) for f in forms)


# -- dates ------------------------------------------------------------------------------------------------

def test_date_forms_write_the_same_calendar_date():
    iso = pa.array(["2019-03-05", "2020-12-31", "1968-10-01"])
    seconds = np.array([8 * 3600 + 30 * 60, 0, 45296])
    written = {f: DT.format_dates(iso, f, seconds).to_pylist() for f in DT.FORMS}
    assert [w[0] for w in written.values()] == list(DT.FORM_EXAMPLES.values())
    assert written["chinese"][2] == "1968年10月1日" and written["slash_unpadded"][2] == "1968/10/1"
    for f, values in written.items():
        assert list(DT.to_iso(values)) == iso.to_pylist(), f
    days, secs = DT.read_dates(written["iso_offset"])
    assert list(secs) == [30600, 0, 45296]


def test_bad_and_ambiguous_dates_read_as_no_date():
    assert all(d is None for d in DT.to_iso(list(PR.BAD_DATE_TEXT) + ["05/03/2019", "2019-3-5", None]))
    iso = pa.array(["2019-03-05", "2019-03-13", "2019-05-05", "2019-11-02"])
    assert list(DT.ambiguous_candidates(iso)) == [0, 3]       # day <= 12 and day != month
    written = DT.ambiguous_dates(iso.take(pa.array([0, 3])), np.array([True, False]))
    assert written.to_pylist() == ["05/03/2019", "11/02/2019"]
    assert all(re.match(DT.AMBIGUOUS_PATTERN, w) for w in written.to_pylist())


def test_ambiguous_dates_follow_the_source_contract():
    # year last, day-first or month-first, and one reading at least is a date
    assert DT.is_ambiguous_text("05/03/2019") and DT.is_ambiguous_text("31-12-2019")
    assert DT.is_ambiguous_text("5.3.2019") and not DT.is_ambiguous_text("20-20-2020")
    assert not DT.is_ambiguous_text("2019/03/05") and not DT.is_ambiguous_text("N/A")
    # among the unparseable texts of params only 31-12-2019 is such a form (the manifest counts it as
    # ambiguous_date, like the engine)
    assert {t for t in PR.BAD_DATE_TEXT if DT.is_ambiguous_text(t)} == {"31-12-2019"}


def test_write_forms_keeps_nulls_and_draws_the_shares():
    rng = np.random.default_rng(3)
    iso = pa.array(np.arange(15_000, 35_000).astype("datetime64[D]").astype(str).tolist() + [None])
    out = DT.write_forms(iso, rng, PR.DATE_FORMS, midnight=False)
    assert out.null_count == 1 and out[len(out) - 1].as_py() is None
    assert list(DT.to_iso(out)[:-1]) == iso.to_pylist()[:-1]
    kept = np.mean([v == i for v, i in zip(out.to_pylist()[:-1], iso.to_pylist()[:-1])])
    assert abs((1 - kept) - sum(PR.DATE_FORMS.values())) < 0.01
    assert abs(sum(PR.DATE_FORMS.values()) - 0.20) < 1e-9
    assert max(PR.NOISE["ambiguous_date"], PR.NOISE["unparseable_date"]) < 0.01   # far under the 10 % stop


# -- command line -------------------------------------------------------------------------------------------

def test_generate_options_on_the_command_line(tmp_path, capsys):
    from cohort_engine.cli import build_parser, main
    args = build_parser().parse_args(["generate", "--out", str(tmp_path), "--format", "csv", "--encoding", "gb18030"])
    assert (args.encoding, args.parquet_writer, args.format) == ("gb18030", "spark", "csv")
    args = build_parser().parse_args(["generate", "--out", str(tmp_path), "--parquet-writer", "pandas"])
    assert (args.encoding, args.parquet_writer, args.format) == ("utf-8", "pandas", "parquet")
    assert main(["generate", "--out", str(tmp_path), "--encoding", "latin-1"]) == 2
    assert "--encoding" in capsys.readouterr().err
    # options that do not fit the format stop before Spark starts
    assert main(["generate", "--out", str(tmp_path / "x"), "--encoding", "gb18030"]) == 2
    assert "applies to --format csv only" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path / "x"), "--format", "csv", "--parquet-writer", "pandas"]) == 2
    assert "applies to --format parquet only" in capsys.readouterr().err


def test_generate_extract_refuses_options_that_do_not_fit():
    from cohort_engine.synth import generate_extract
    for kwargs in ({"fmt": "parquet", "encoding": "gb18030"}, {"fmt": "csv", "parquet_writer": "pandas"},
                   {"fmt": "csv", "encoding": "latin-1"}, {"fmt": "parquet", "parquet_writer": "polars"}):
        with pytest.raises(ValueError):
            generate_extract(None, "/nonexistent/never-written", 10, 1, **kwargs)
