"""Writes cohort.csv: 400 patients of two arms (A treated, B comparator) with the covariates
of a first-line comparison and a confounded choice of arm, drawn from a fixed seed.

Run from this folder: python make_cohort.py. The arm depends on age, hormone receptors,
visceral and brain metastases, earlier anti-HER2 therapy, the hospital's tier, the
province and the index year (the newer treatment spreads over time and through the
larger hospitals); no level is held by one arm only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

rng = np.random.default_rng(20261201)
n = 400

age = np.clip(np.round(rng.normal(54, 11, n)), 24, 86).astype(int)
hr = rng.choice(["positive", "negative", "unknown"], n, p=[0.52, 0.40, 0.08])
de_novo = rng.choice(["true", "false", ""], n, p=[0.38, 0.57, 0.05])
visceral = rng.random(n) < 0.45
brain = rng.random(n) < 0.12
bone_only = ~visceral & (rng.random(n) < 0.25)
prior = (de_novo != "true") & (rng.random(n) < 0.55)
tier = rng.choice(["3A", "3B", "2A", ""], n, p=[0.55, 0.25, 0.15, 0.05])
province = rng.choice(["Beijing", "Shanghai", "Guangdong", "Sichuan", "Henan", "Shaanxi"], n,
                      p=[0.22, 0.2, 0.18, 0.16, 0.14, 0.10])
year = rng.choice(np.arange(2016, 2025), n)

linear = (-0.6 + 0.025 * (age - 54) + 0.35 * (hr == "positive") - 0.3 * visceral + 0.5 * brain
          + 0.4 * prior + 0.6 * (tier == "3A") - 0.4 * (tier == "2A")
          + np.select([province == "Beijing", province == "Shanghai", province == "Henan"], [0.5, 0.3, -0.4], 0)
          + 0.18 * (year - 2020))
arm = np.where(rng.random(n) < 1 / (1 + np.exp(-linear)), "A", "B")

pd.DataFrame({
    "patient_id": [f"p{i:03d}" for i in range(1, n + 1)], "arm": arm, "age_at_index": age, "hr_status": hr,
    "de_novo": de_novo, "visceral": visceral, "brain_mets": brain, "bone_only": bone_only,
    "prior_anti_her2": prior, "hospital_tier": tier, "province": province, "index_year": year,
}).to_csv("cohort.csv", index=False)
