"""Writes input.csv, the frame R's reference outputs (reference.R) were computed on.

300 patients in two arms ("index", "comparator"). Two covariates drive both the arm
(a logistic model) and the outcomes, so the naive and the weighted comparisons differ.
Times are whole days, as the engine's endpoints are, which gives tied event times.
The weights are those a propensity model of the two covariates gives: stabilised ATE
IPTW and ATT odds weights; `matched_set` pairs each index patient with its nearest
comparator on the logit of the score (greedy, without replacement, caliper 0.2 SD),
empty for the unmatched. Run from the repository root with the project's venv:
    python tests/reference/comparison/make_input.py
"""
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

rng = np.random.default_rng(20261201)
n = 300
x1 = rng.normal(size=n)
x2 = rng.binomial(1, 0.4, size=n)
index = rng.binomial(1, 1 / (1 + np.exp(-(-0.2 + 0.7 * x1 + 0.6 * x2))))


def whole_days(hazard_per_day, effect):
    """Event and censoring times in whole days: exponential events, uniform administrative
    censoring, plus 10% lost early."""
    event_time = np.ceil(rng.exponential(1 / (hazard_per_day * np.exp(effect))))
    censor_time = np.ceil(rng.uniform(180, 1500, size=n))
    lost = rng.binomial(1, 0.1, size=n).astype(bool)
    censor_time[lost] = np.ceil(rng.uniform(1, 180, size=lost.sum()))
    return np.minimum(event_time, censor_time).astype(int), (event_time <= censor_time).astype(int)


os_time, os_event = whole_days(np.log(2) / 730, 0.3 * x1 + 0.4 * x2 - 0.35 * index)
pfs_time, pfs_event = whole_days(np.log(2) / 300, 0.3 * x1 + 0.4 * x2 - 0.25 * index)
severe_any = rng.binomial(1, 1 / (1 + np.exp(-(-0.6 + 0.5 * index + 0.3 * x1))))
severe_term = rng.binomial(1, 1 / (1 + np.exp(-(-1.8 + 0.6 * index + 0.3 * x2))))

design = sm.add_constant(np.column_stack([x1, x2]))
ps = sm.Logit(index, design).fit(disp=0).predict(design)
p_index = index.mean()
w_ate = np.where(index == 1, p_index / ps, (1 - p_index) / (1 - ps))
w_att = np.where(index == 1, 1.0, ps / (1 - ps))

logit = np.log(ps / (1 - ps))
caliper = 0.2 * logit.std(ddof=1)
matched_set = np.full(n, "", dtype=object)
available = set(np.flatnonzero(index == 0))
for pair, i in enumerate(np.flatnonzero(index == 1)):
    if not available:
        break
    candidates = np.array(sorted(available))
    nearest = candidates[np.argmin(np.abs(logit[candidates] - logit[i]))]
    if abs(logit[nearest] - logit[i]) <= caliper:
        matched_set[[i, nearest]] = f"m{pair + 1}"
        available.discard(nearest)

out = pd.DataFrame({
    "patient": np.arange(1, n + 1), "arm": np.where(index == 1, "index", "comparator"), "x1": x1, "x2": x2,
    "os_time": os_time, "os_event": os_event, "pfs_time": pfs_time, "pfs_event": pfs_event,
    "severe_any": severe_any, "severe_term": severe_term, "ps": ps, "w_ate": w_ate, "w_att": w_att,
    "matched_set": matched_set,
})
out.to_csv(Path(__file__).with_name("input.csv"), index=False)
