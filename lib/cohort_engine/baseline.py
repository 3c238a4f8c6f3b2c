"""Table 1: the cohort's characteristics at the index date (study rules §8)."""
from __future__ import annotations

import pandas as pd

TABLE1_COLUMNS = ["characteristic", "level", "n", "percent", "median", "q1", "q3"]
AGE_GROUPS = ((0, 50, "<50"), (50, 65, "50-64"), (65, 200, ">=65"))


def age_group(age: float) -> str:
    """<50, 50–64, ≥65 (the subgroup bands of §8)."""
    for low, high, label in AGE_GROUPS:
        if low <= age < high:
            return label
    return "unknown"


def _yes_no(value) -> str:
    if value is None or pd.isna(value):
        return "unknown"
    return "yes" if bool(value) else "no"


def table1(cohort: pd.DataFrame) -> pd.DataFrame:
    n = len(cohort)
    rows: list[dict] = [{"characteristic": "patients", "level": "all", "n": n, "percent": 100.0 if n else None}]
    age = pd.to_numeric(cohort["age_at_index"], errors="coerce").dropna()
    rows.append({"characteristic": "age at index, years", "level": "median (IQR)", "n": int(age.size),
                 "median": float(age.median()) if age.size else None,
                 "q1": float(age.quantile(0.25)) if age.size else None,
                 "q3": float(age.quantile(0.75)) if age.size else None})
    levels = {
        "age group": cohort["age_at_index"].map(age_group),
        "sex": cohort["sex"].fillna("unknown"),
        "hormone receptor status": cohort["hr_status"].fillna("unknown"),
        "advanced disease": cohort["de_novo"].map(lambda v: "unknown" if pd.isna(v)
                                                  else ("de novo" if v else "recurrent")),
        "visceral metastasis": cohort["visceral"].map(_yes_no),
        "brain metastasis": cohort["brain_mets"].map(_yes_no),
        "bone-only metastasis": cohort["bone_only"].map(_yes_no),
        "prior anti-HER2 therapy": cohort["prior_anti_her2"].map(_yes_no),
        "anti-HER2 label": cohort["anti_her2"].fillna("unknown"),
        "hospital tier": cohort["hospital_tier"].fillna("unknown"),
        "region (province)": cohort["province"].fillna("unknown"),
        "index year": cohort["index_year"].astype("Int64").astype(str).replace("<NA>", "unknown"),
    }
    band_order = {label: i for i, (_, _, label) in enumerate(AGE_GROUPS)}
    for characteristic, values in levels.items():
        counts = values.value_counts()
        # age bands young to old ("50-64" sorts before "<50" as text); other levels alphabetically
        order = (lambda v: (band_order.get(v, len(band_order)), str(v))) if characteristic == "age group" else str
        for level in sorted(counts.index, key=order):
            rows.append({"characteristic": characteristic, "level": str(level), "n": int(counts[level]),
                         "percent": 100.0 * counts[level] / n})
    return pd.DataFrame(rows, columns=TABLE1_COLUMNS)
