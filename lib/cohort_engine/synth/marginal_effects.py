"""The marginal (population-average) effects of the confounded taxane choice, from both potential
outcomes of every patient of the two-arm cohort (truth/potential_outcomes → truth/effects).

Hazard ratios do not collapse: the conditional hazard ratio planted in params is not the marginal
one, so the marginal hazard ratio is the Cox model fitted to the stacked potential outcomes (each
patient once per arm, the arm as the only covariate, Efron ties), over every patient (ATE) and over
those given paclitaxel liposome (ATT). Risks are the shares of patients with the event under each arm.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from lifelines import CoxPHFitter

from . import params as PR

EFFECTS_COLUMNS = ("effect", "estimand", "measure", "value", "patients")
# effect name: the potential-outcome columns it is read from (docs/generator.md)
TIME_TO_EVENT = {"progression": "ttp", "progression_free": "pfs", "death": "os"}
ARMS = ("liposome", "conventional")


def stacked(frame: pd.DataFrame, endpoint: str) -> pd.DataFrame:
    """Each patient once per arm: days, event, liposome (1 under paclitaxel liposome)."""
    def column(what: str, arm: str) -> np.ndarray:
        # an outcome the arm does not change (death) has one column for both arms
        shared = f"{endpoint}_{what}"
        return frame[shared if shared in frame.columns else f"{shared}_{arm}"].to_numpy()
    parts = [pd.DataFrame({"days": column("days", arm).astype(float), "event": column("event", arm).astype(int),
                           "liposome": liposome})
             for liposome, arm in ((1, "liposome"), (0, "conventional"))]
    return pd.concat(parts, ignore_index=True)


def marginal_hazard_ratio(frame: pd.DataFrame, endpoint: str) -> float:
    data = stacked(frame, endpoint)
    if data["event"].sum() == 0:
        return float("nan")
    fitted = CoxPHFitter().fit(data, duration_col="days", event_col="event")
    return float(np.exp(fitted.params_["liposome"]))


def marginal_effects(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per effect, estimand and measure; `frame` has the columns of truth/potential_outcomes."""
    rows = [("progression", "conditional", "hazard_ratio", PR.CONFOUNDED_PROGRESSION_HR, len(frame)),
            ("hypersensitivity_g3", "conditional", "odds_ratio", PR.CONFOUNDED_HYPERSENSITIVITY_OR_LIPOSOME,
             len(frame))]
    given = frame["arm"] == "paclitaxel liposome"
    for estimand, part in (("ATE", frame), ("ATT", frame[given])):
        n = len(part)
        for effect, endpoint in TIME_TO_EVENT.items():
            rows.append((effect, estimand, "hazard_ratio", marginal_hazard_ratio(part, endpoint), n))
        risk = {arm: float(part[f"hypersensitivity_g3_{arm}"].mean()) if n else float("nan") for arm in ARMS}
        rows += [("hypersensitivity_g3", estimand, "risk_liposome", risk["liposome"], n),
                 ("hypersensitivity_g3", estimand, "risk_conventional", risk["conventional"], n),
                 ("hypersensitivity_g3", estimand, "risk_difference", risk["liposome"] - risk["conventional"], n),
                 ("hypersensitivity_g3", estimand, "risk_ratio",
                  risk["liposome"] / risk["conventional"] if risk["conventional"] > 0 else float("nan"), n)]
    return pd.DataFrame(rows, columns=list(EFFECTS_COLUMNS))


def write_effects(truth_dir: Path) -> int:
    """truth/effects from truth/potential_outcomes: the marginal effects need every chunk's patients
    at once (a Cox fit), and the two-arm cohort is a small share of the patients, so it is read on
    the driver."""
    effects = marginal_effects(pd.read_parquet(truth_dir / "potential_outcomes"))
    folder = truth_dir / "effects"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(effects, preserve_index=False), folder / "part-00000.parquet")
    return len(effects)


def confounding_parameters() -> dict:
    """The switch's parameters as the manifest records them."""
    return {"logit": dict(PR.CONFOUNDED_TAXANE_LOGIT), "age_centre": PR.CONFOUNDED_AGE_CENTRE,
            "year_centre": PR.CONFOUNDED_YEAR_CENTRE, "progression_hr": PR.CONFOUNDED_PROGRESSION_HR,
            "hypersensitivity_risk": PR.CONFOUNDED_HYPERSENSITIVITY_RISK,
            "hypersensitivity_or_per_10_years": PR.CONFOUNDED_HYPERSENSITIVITY_OR_PER_10_YEARS,
            "hypersensitivity_or_liposome": PR.CONFOUNDED_HYPERSENSITIVITY_OR_LIPOSOME}
