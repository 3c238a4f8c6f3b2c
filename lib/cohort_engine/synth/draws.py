"""The simulation's draws: categories, whole days, years, weighted rows, Weibull times and the
stateless hashes that give the same draw wherever it is computed (assessment jitter, habits)."""
from __future__ import annotations

import numpy as np

from . import params as PR

YEAR = 365.25


def categories(rng, n, weights):
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def uniform_int(rng, lo, hi, n):
    """Integers in [lo, hi] inclusive."""
    return rng.integers(lo, hi + 1, size=n)


def calendar_year(days):
    return (np.asarray(days, dtype="int64").astype("datetime64[D]").astype("datetime64[Y]").astype(int)
            + 1970)


def age_years(birth: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Completed years of age on a day (birthday reached or not)."""
    b = birth.astype("datetime64[D]")
    o = on.astype("datetime64[D]")
    by, oy = b.astype("datetime64[Y]"), o.astype("datetime64[Y]")
    years = (oy - by).astype(int)
    # compare (month, day): day-of-year shifts in leap years
    bm = (b.astype("datetime64[M]") - by).astype(int)
    om = (o.astype("datetime64[M]") - oy).astype(int)
    bd = (b - b.astype("datetime64[M]")).astype(int)
    od = (o - o.astype("datetime64[M]")).astype(int)
    not_yet = (om < bm) | ((om == bm) & (od < bd))
    return years - not_yet.astype(int)


def sample_rows(rng, weights):
    """One category per row of a (n, k) weight matrix; -1 where a row is all zero."""
    total = weights.sum(axis=1)
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * total
    pick = (cum < u[:, None]).sum(axis=1)
    pick = np.minimum(pick, weights.shape[1] - 1)
    return np.where(total > 0, pick, -1)


def mix64(*parts):
    """A stateless 64-bit hash of integer arrays (splitmix64 finaliser)."""
    x = np.zeros(np.broadcast(*parts).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for p in parts:
            x = x ^ (np.asarray(p).astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15) + (x << np.uint64(6))
                     + (x >> np.uint64(2)))
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            x = x ^ (x >> np.uint64(31))
    return x


def assessment_jitter(seed, gid, line, k):
    """Days an assessment is early or late (−7..7), the same wherever it is computed."""
    return (mix64(seed, gid, line, k) % np.uint64(2 * PR.ASSESSMENT_JITTER + 1)).astype(np.int64) \
        - PR.ASSESSMENT_JITTER


def weibull_days(u, median_months, shape):
    scale = median_months / np.log(2.0) ** (1.0 / shape)
    months = scale * (-np.log1p(-np.clip(u, 1e-12, 1 - 1e-12))) ** (1.0 / shape)
    return np.maximum(1, np.round(months * PR.MONTH)).astype(np.int64)
