"""Patient facts (study rules §2): breast cancer, advanced disease, HER2, hormone receptors, sites.

Everything here is a Spark column expression or a DataFrame transformation; the raw
text columns of bronze (icd10, stage, marker, method, result) are read as written.

Design of `silver/patient_facts`: one row per valid patient with the facts that do
not depend on the index date (bc_date, advanced_date, de_novo, death) and, for the
facts that do ("up to index + 30 days": HER2, ER, PR, metastatic sites), the *date
of the first evidence* of each reading. The cohort step compares those dates with
its index date (or any other reference date), so no bronze table is read twice and
a study with another window needs no rebuild of the facts.

Result readings (`parse_her2_expr`, `parse_receptor_expr`) are one of
`positive`, `negative`, `equivocal` (HER2 only: IHC 2+ or "weakly positive" without
an ISH result in the same text) and `unreadable`.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .lake_tables import SILVER_PATIENT_FACTS
from .study_config import StudyConfig

POSITIVE, NEGATIVE, EQUIVOCAL, UNREADABLE = "positive", "negative", "equivocal", "unreadable"
MARKERS = ("HER2", "ER", "PR")
DEFAULT_ICD10_PREFIX = "C50"  # used only when no study is given (lines.py calls advanced_dates bare)

# Full-width ASCII (U+FF01..U+FF5E) and the other look-alikes that pathology and
# coding systems write: ideographic/no-break space, minus signs, small plus/less/greater.
_FROM = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000\u00a0\u2212\ufe62\ufe63\ufe64\ufe65\u3001\u3002\u3010\u3011"
_TO = "".join(chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)) + "  -+-<>,,[]"

# Marker names and method words inside a result ("HER2(3+)", "FISH: 无扩增") would
# otherwise glue their digits to the score.
_RESULT_NOISE = r"her[-\s]?2(/?neu)?|c-?erbb-?2|erbb-?2|ihc|[fdsc]?ish"
# An ER/PR result that repeats its marker name ("ER(-)", "雌激素受体 阳性"): the name is not the reading.
_RECEPTOR_NAME = r"^\s*((er|pr|pgr)(?![a-z])|雌激素受体|孕激素受体|孕酮受体)"
_SEPARATORS = r"[()\[\]{},;:/、。]+"
_WEAK = r"弱阳性|weak(ly)?-?pos(itive)?|弱\+"
# Negation may stand apart from the finding: "未见HER2基因扩增", "no HER2 gene amplification",
# "amplification not detected" (the marker name between them is already reduced to '|').
_ISH_NEGATIVE = (r"(not|non|un|no|without)-?\|?(gene|明显)?\|?amplif|(无|未|不|没有|未见)[^0-9+]{0,8}扩增|扩增阴性"
                 r"|amplif[a-z]*\|?(was|is)?(not|absent|negative|阴性)|扩增\|?[(]?(-|阴性)")
_ISH_POSITIVE = r"amplif|扩增"
# A finding stated as uncertain ("无法判断是否扩增", "扩增待定", "amplification?") is no reading.
_UNCERTAIN = r"无法|不能|不确定|待定|待查|不明确|可疑|是否|\?|uncertain|undetermined|indeterminate|pending"
_POSITIVE_WORD = r"positive|阳性|(^|\|)pos(\||$)"
_NEGATIVE_WORD = r"negative|阴性|(^|\|)neg(\||$)"
_IHC3 = r"(^|[^0-9.])3\+|(^|[^+])\+\+\+($|[^+])"
_IHC2 = r"(^|[^0-9.])2\+|(^|[^+])\+\+($|[^+])"
_IHC1 = r"(^|[^0-9.])1\+|(^|[^+])\+($|[^+])"
_IHC0 = r"(^|[^0-9.+])0\+?($|[^0-9.%+])|^\|*-+\|*$"
_NUMBER = r"[0-9]+(\.[0-9]+)?"


def normalised_text(c: Column) -> Column:
    """Lower case, full-width folded to ASCII, every space removed; '' becomes null."""
    folded = F.translate(F.lower(F.trim(c)), _FROM, _TO)
    return F.nullif(F.regexp_replace(folded, r"\s+", ""), F.lit(""))


def _result_text(result: Column) -> Column:
    """A result string reduced to its reading: marker/method words and brackets become '|'."""
    s = F.translate(F.lower(F.trim(result)), _FROM, _TO)
    s = F.regexp_replace(s, _RESULT_NOISE, "|")
    s = F.regexp_replace(s, r"\s+", "")
    return F.regexp_replace(s, _SEPARATORS, "|")


def _is_ish(method: Column) -> Column:
    return F.coalesce(F.upper(normalised_text(method)).rlike("ISH"), F.lit(False))


def parse_her2_expr(result_col: Column | str, method_col: Column | str | None = None) -> Column:
    """The reading of one HER2 result: positive / negative / equivocal / unreadable.

    Precedence (first match wins), so that one text with two findings reads as its
    most decisive one and the classic traps ('not amplified', '弱阳性') do not read positive:
      1. IHC 3+ (`3+`, `+++`, `(+++)`, a bare `3` when the method is not ISH)   → positive
      2. amplified / 扩增, not negated, not stated as uncertain                 → positive
      3. not amplified / 无扩增 / 未扩增 …, not stated as uncertain               → negative
      4. both a positive and a negative word (positive/阳性 and negative/阴性)  → unreadable
      5. positive / 阳性 / pos                                                  → positive
      6. negative / 阴性 / neg                                                  → negative
      7. IHC 2+ (`2+`, `++`) or weakly positive (弱阳性)                         → equivocal
      8. IHC 1+ (`1+`, `+`) or 0 (`0`, `-`)                                      → negative
      9. anything else, or empty                                               → unreadable
    """
    result = F.col(result_col) if isinstance(result_col, str) else result_col
    method = (F.lit(None).cast("string") if method_col is None
              else F.col(method_col) if isinstance(method_col, str) else method_col)
    return her2_from_text(_result_text(result), ~_is_ish(method))


def her2_from_text(s: Column, not_ish: Column) -> Column:
    """`parse_her2_expr` on a text already reduced by `_result_text` (a column reference
    keeps the plan small: the reduced text is then computed once per row)."""
    bare = F.regexp_replace(s, r"\|", "")
    unweak = F.regexp_replace(s, _WEAK, "|")
    pos_word, neg_word = unweak.rlike(_POSITIVE_WORD), unweak.rlike(_NEGATIVE_WORD)
    ish_negative = s.rlike(_ISH_NEGATIVE)
    ish_stated = s.rlike(_ISH_POSITIVE) & ~s.rlike(_UNCERTAIN)
    return (F.when(bare.isNull() | (bare == ""), F.lit(UNREADABLE))
            .when(s.rlike(_IHC3) | ((bare == "3") & not_ish), F.lit(POSITIVE))
            .when(ish_stated & ~ish_negative, F.lit(POSITIVE))
            .when(ish_stated & ish_negative, F.lit(NEGATIVE))
            .when(pos_word & neg_word, F.lit(UNREADABLE))
            .when(pos_word, F.lit(POSITIVE))
            .when(neg_word, F.lit(NEGATIVE))
            .when(s.rlike(_IHC2) | ((bare == "2") & not_ish) | s.rlike(_WEAK), F.lit(EQUIVOCAL))
            .when(s.rlike(_IHC1) | s.rlike(_IHC0) | (bare.isin("0", "1") & not_ish), F.lit(NEGATIVE))
            .otherwise(F.lit(UNREADABLE)))


def parse_receptor_expr(result_col: Column | str) -> Column:
    """The reading of one ER or PR result: positive / negative / unreadable.

    Positive means 1% of stained nuclei or more (§2: `+` or more, ≥ 1%, positive, 阳性).
    Precedence (first match wins):
      1. weakly positive (弱阳性, weak positive)                      → positive
      2. `<x%` / `≤x%`: x ≤ 1 → negative, larger x → unreadable (could be 1–4%)
      3. percentages `x%` (the largest one of a range such as 1-10%): ≥ 1 → positive, else negative
      4. both a positive and a negative word                          → unreadable
      5. positive / 阳性 / pos → positive; negative / 阴性 / neg → negative
      6. any `+` (`+`, `++`, `(+++)`, `1+`…`3+`)                        → positive
      7. `0`, `-`, `(-)`                                              → negative
      8. anything else, or empty                                      → unreadable
    """
    result = F.col(result_col) if isinstance(result_col, str) else result_col
    return receptor_from_text(_receptor_text(result))


def _receptor_text(result: Column) -> Column:
    return _result_text(F.regexp_replace(F.lower(result), _RECEPTOR_NAME, "|"))


def receptor_from_text(s: Column) -> Column:
    """`parse_receptor_expr` on a text already reduced by `_receptor_text`."""
    bare = F.regexp_replace(s, r"\|", "")
    below = F.regexp_extract(s, r"(<|≤)=?(" + _NUMBER + r")%", 2)
    below_value = F.nullif(below, F.lit("")).try_cast("double")
    percents = F.regexp_extract_all(s, F.lit("(" + _NUMBER + ")%"), 1)
    top_percent = F.array_max(F.transform(percents, lambda x: x.try_cast("double")))
    unweak = F.regexp_replace(s, _WEAK, "|")
    pos_word, neg_word = unweak.rlike(_POSITIVE_WORD), unweak.rlike(_NEGATIVE_WORD)
    return (F.when(bare.isNull() | (bare == ""), F.lit(UNREADABLE))
            .when(s.rlike(_WEAK), F.lit(POSITIVE))
            .when(below_value.isNotNull() & (below_value <= 1), F.lit(NEGATIVE))
            .when(below_value.isNotNull(), F.lit(UNREADABLE))
            .when(top_percent >= 1, F.lit(POSITIVE))
            .when(top_percent.isNotNull(), F.lit(NEGATIVE))
            .when(pos_word & neg_word, F.lit(UNREADABLE))
            .when(pos_word, F.lit(POSITIVE))
            .when(neg_word, F.lit(NEGATIVE))
            .when(s.contains("+"), F.lit(POSITIVE))
            .when(s.rlike(_IHC0), F.lit(NEGATIVE))
            .otherwise(F.lit(UNREADABLE)))


def normalise_marker_expr(marker_col: Column | str) -> Column:
    """`HER2`, `ER`, `PR` from the marker name as written; null for any other marker.

    HER2: HER2, HER-2, Her2, HER2/neu, c-erbB-2, CerbB-2, ERBB2. ER: ER, ESR1, ERα,
    estrogen/oestrogen receptor, 雌激素受体. PR: PR, PgR, progesterone receptor,
    孕激素受体, 孕酮受体. An `IHC`/`FISH` word around the name is ignored.
    """
    marker = F.col(marker_col) if isinstance(marker_col, str) else marker_col
    m = F.regexp_replace(normalised_text(marker), r"[-_()\[\]/.·:,]|ihc|[fdsc]?ish|检测|表达", "")
    er = r"^(?=.)(er|esr1?|erα|era)?(o?estrogenreceptors?|雌激素受体)?(er)?$"
    pr = r"^(?=.)(pr|pgr)?(progesteronereceptors?|孕激素受体|孕酮受体)?(pr|pgr)?$"
    return (F.when(m.rlike(r"her2|erbb2|^neu$"), F.lit("HER2"))
            .when(m.rlike(er), F.lit("ER"))
            .when(m.rlike(pr), F.lit("PR")))


def normalised_icd10(c: Column | str) -> Column:
    """`C50.911`, `c509`, ` C50.9 ` → `C50911`, `C509`, `C509` (upper case, no dot or space)."""
    c = F.col(c) if isinstance(c, str) else c
    return F.regexp_replace(F.upper(F.translate(F.trim(c), _FROM, _TO)), r"[.\s]", "")


def stage_iv_expr(stage_col: Column | str) -> Column:
    """Stage text recorded as IV: beginning with IV/Ⅳ (after an optional 'stage', c/p/yp prefix)
    or a TNM string with M1 (M1, M1a, T2N1M1 …). Null stage → false."""
    c = F.col(stage_col) if isinstance(stage_col, str) else stage_col
    s = F.upper(F.regexp_replace(F.translate(F.trim(c), _FROM, _TO), r"\s+", ""))
    s = F.regexp_replace(s, "[Ⅳⅳ]", "IV")
    return F.coalesce(s.rlike(r"^(STAGE|临床分期|分期|Y?[CP])?:?IV") | s.rlike(r"M1([^0-9]|$)"), F.lit(False))


def _prefixes(study: StudyConfig | None) -> list[str]:
    raw = study.diagnosis_icd10 if study is not None else (DEFAULT_ICD10_PREFIX,)
    return [p.upper().replace(".", "").strip() for p in raw]


def diagnosis_flags(diagnoses: DataFrame, study: StudyConfig | None = None) -> DataFrame:
    """Diagnoses with `icd` (normalised) and the flags of §2: breast, advanced_evidence and sites."""
    icd = normalised_icd10("icd10")
    breast = F.lit(False)
    for prefix in _prefixes(study):
        breast = breast | icd.startswith(prefix)
    distant = icd.startswith("C78") | icd.startswith("C79")
    return diagnoses.select(
        "patient_id", "diagnosis_date",
        breast.alias("is_breast"),
        ((breast & stage_iv_expr("stage")) | distant).alias("is_advanced"),
        icd.startswith("C78").alias("is_visceral"),
        icd.startswith("C793").alias("is_brain"),
        icd.startswith("C795").alias("is_bone"),
        (icd.startswith("C79") & ~icd.startswith("C795")).alias("is_other_distant"),
    )


def _first_date(flag: str, date: str) -> Column:
    return F.min(F.when(F.col(flag), F.col(date)))


def advanced_dates(diagnoses: DataFrame, study: StudyConfig | None = None) -> DataFrame:
    """patient_id string, advanced_date date — only patients with an advanced date (§2)."""
    flags = diagnosis_flags(diagnoses, study).where("is_advanced")
    return flags.groupBy("patient_id").agg(F.min("diagnosis_date").alias("advanced_date"))


def biomarker_reading_expr(marker: Column, result: Column, method: Column) -> Column:
    """positive/negative/equivocal/unreadable for HER2, ER and PR rows; null for other markers."""
    marker_std = normalise_marker_expr(marker)
    return (F.when(marker_std == "HER2", her2_from_text(_result_text(result), ~_is_ish(method)))
            .when(marker_std.isin("ER", "PR"), receptor_from_text(_receptor_text(result))))


def biomarker_readings(biomarkers: DataFrame) -> DataFrame:
    """Bronze biomarkers with `marker_std` (HER2/ER/PR or null) and `reading`."""
    cols = biomarkers.columns
    return biomarkers.select(*cols, normalise_marker_expr("marker").alias("marker_std"),
                             biomarker_reading_expr(F.col("marker"), F.col("result"), F.col("method")).alias("reading"))


def death_dates(patients: DataFrame, deaths: DataFrame, cutoff) -> DataFrame:
    """patient_id, death_date (earliest registration ≤ cut-off), death_dates_recorded (int:
    distinct dates registered for the person, cut-off or not; > 1 is a disagreement).

    Only patients with at least one linked registration appear. Deaths after the cut-off
    are ignored (death_date null when every registration is after it)."""
    linked = (patients.where(F.col("id_hash").isNotNull()).select("patient_id", "id_hash")
              .join(deaths.select("id_hash", "death_date"), "id_hash"))
    return linked.groupBy("patient_id").agg(
        F.min(F.when(F.col("death_date") <= F.lit(cutoff).cast("date"), F.col("death_date"))).alias("death_date"),
        F.countDistinct("death_date").cast("int").alias("death_dates_recorded"))


FACT_COLUMNS = SILVER_PATIENT_FACTS.column_names


def build_patient_facts(bronze: dict[str, DataFrame], study: StudyConfig) -> DataFrame:
    """silver/patient_facts: one row per bronze patient (lake_tables.SILVER_PATIENT_FACTS).

    patient_id, sex string; birth_date, bc_date, advanced_date date; de_novo boolean
    (advanced_date ≤ bc_date + de_novo_days; null without both dates); death_date date
    (earliest registration ≤ cut-off); death_dates_recorded int (0 = no registration);
    and, for the index-relative facts, the first date of each piece of evidence
    (`*_first_date`, date, null = never): HER2 positive/negative/equivocal reading,
    ER and PR positive/negative reading, a visceral (C78), brain (C79.3), bone (C79.5)
    and other distant (C79 except C79.5) metastasis record.
    """
    patients = bronze["patients"].select("patient_id", "sex", "birth_date")
    flags = diagnosis_flags(bronze["diagnoses"], study)
    dx = flags.groupBy("patient_id").agg(
        _first_date("is_breast", "diagnosis_date").alias("bc_date"),
        _first_date("is_advanced", "diagnosis_date").alias("advanced_date"),
        _first_date("is_visceral", "diagnosis_date").alias("visceral_first_date"),
        _first_date("is_brain", "diagnosis_date").alias("brain_first_date"),
        _first_date("is_bone", "diagnosis_date").alias("bone_first_date"),
        _first_date("is_other_distant", "diagnosis_date").alias("other_distant_first_date"),
    )
    readings = biomarker_readings(bronze["biomarkers"]).where(F.col("marker_std").isNotNull())

    def first(marker: str, reading: str) -> Column:
        hit = (F.col("marker_std") == marker) & (F.col("reading") == reading)
        return F.min(F.when(hit, F.col("test_date"))).alias(f"{marker.lower()}_{reading}_first_date")

    bio = readings.groupBy("patient_id").agg(
        first("HER2", POSITIVE), first("HER2", NEGATIVE), first("HER2", EQUIVOCAL),
        first("ER", POSITIVE), first("ER", NEGATIVE), first("PR", POSITIVE), first("PR", NEGATIVE))
    deaths = death_dates(bronze["patients"], bronze["deaths"], study.data_cutoff)
    de_novo = F.when(F.col("bc_date").isNotNull() & F.col("advanced_date").isNotNull(),
                     F.col("advanced_date") <= F.date_add("bc_date", study.facts.de_novo_days))
    facts = (patients.join(dx, "patient_id", "left").join(bio, "patient_id", "left")
             .join(deaths, "patient_id", "left")
             .withColumn("de_novo", de_novo)
             .withColumn("death_dates_recorded", F.coalesce("death_dates_recorded", F.lit(0))))
    return facts.select(*FACT_COLUMNS)


# -- index-relative readings of the facts ------------------------------------------------

def _by(first_date: str, limit: Column) -> Column:
    return F.coalesce(F.col(first_date) <= limit, F.lit(False))


def her2_status_expr(limit: Column) -> Column:
    """positive / negative / unknown from the facts, counting evidence dated ≤ limit.

    Positive: any positive reading. Negative: no positive reading and at least one
    negative reading (IHC 0/1+, ISH negative, negative/阴性) — an IHC 2+ settled by a
    negative ISH is negative. Unknown: only equivocal/unreadable results, or none."""
    return (F.when(_by("her2_positive_first_date", limit), F.lit("positive"))
            .when(_by("her2_negative_first_date", limit), F.lit("negative"))
            .otherwise(F.lit("unknown")))


def her2_conflict_expr(limit: Column) -> Column:
    """Both a positive and a negative HER2 reading dated ≤ limit (a data-quality item)."""
    return _by("her2_positive_first_date", limit) & _by("her2_negative_first_date", limit)


def hr_status_expr(limit: Column) -> Column:
    """positive if ER or PR reads positive; negative if both read negative; else unknown."""
    positive = _by("er_positive_first_date", limit) | _by("pr_positive_first_date", limit)
    negative = _by("er_negative_first_date", limit) & _by("pr_negative_first_date", limit)
    return (F.when(positive, F.lit("positive")).when(negative, F.lit("negative"))
            .otherwise(F.lit("unknown")))


def receptor_status_expr(marker: str, limit: Column) -> Column:
    """ER or PR alone: positive if it reads positive; negative if it reads only negative; else unknown."""
    m = marker.lower()
    return (F.when(_by(f"{m}_positive_first_date", limit), F.lit("positive"))
            .when(_by(f"{m}_negative_first_date", limit), F.lit("negative"))
            .otherwise(F.lit("unknown")))


def marker_status_expr(marker: str, limit: Column) -> Column:
    """The status (positive / negative / unknown) of HER2, ER, PR or HR, counting evidence dated ≤ limit."""
    if marker == "HER2":
        return her2_status_expr(limit)
    if marker == "HR":
        return hr_status_expr(limit)
    if marker in ("ER", "PR"):
        return receptor_status_expr(marker, limit)
    raise ValueError(f"unknown marker {marker!r}")  # pragma: no cover (the study loader checks markers)


def site_exprs(limit: Column) -> dict[str, Column]:
    """visceral, brain_mets, bone_only (booleans) from metastasis records dated ≤ limit."""
    visceral = _by("visceral_first_date", limit)
    bone = _by("bone_first_date", limit)
    other = _by("other_distant_first_date", limit)
    return {"visceral": visceral, "brain_mets": _by("brain_first_date", limit),
            "bone_only": bone & ~visceral & ~other}
