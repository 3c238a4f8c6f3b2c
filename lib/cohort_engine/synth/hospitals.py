"""The hospitals of an extract and how patients and their lines are placed in them.

The hospitals depend on the seed only (their own stream), so every chunk and every table sees the
same ones."""
from __future__ import annotations

import dataclasses

import numpy as np

from . import params as PR
from .draws import categories


@dataclasses.dataclass
class Hospitals:
    province: np.ndarray   # province index
    tier: np.ndarray       # tier index
    oncology: np.ndarray   # bool
    seg_start: np.ndarray  # first hospital of each province (hospitals sorted by province)
    seg_count: np.ndarray
    key: np.ndarray        # province + cumulative pull within province, for sampling


def hospitals(seed: int) -> Hospitals:
    rng = np.random.default_rng([seed, 0, 13])
    weights = np.array([w for _, w in PR.PROVINCES])
    n_prov = len(weights)
    counts = np.maximum(5, np.floor(weights / weights.sum() * PR.N_HOSPITALS)).astype(int)
    while counts.sum() < PR.N_HOSPITALS:
        counts[np.argmax(weights / weights.sum() * PR.N_HOSPITALS - counts)] += 1
    while counts.sum() > PR.N_HOSPITALS:
        counts[np.argmax(counts)] -= 1
    province = np.repeat(np.arange(n_prov), counts)
    tier = categories(rng, PR.N_HOSPITALS, PR.TIER_SHARE)
    p_onc = np.array([PR.ONCOLOGY_SHARE.get(t, 0.03) for t in PR.TIERS])[tier]
    oncology = rng.random(PR.N_HOSPITALS) < p_onc
    pull = np.array(PR.TIER_PULL)[tier] * np.where(oncology, PR.ONCOLOGY_PULL, 1.0)
    seg_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    key = np.empty(PR.N_HOSPITALS)
    for p in range(n_prov):
        s, c = seg_start[p], counts[p]
        cum = np.cumsum(pull[s:s + c])
        key[s:s + c] = p + cum / cum[-1]
    return Hospitals(province, tier, oncology, seg_start, counts, key)


def pick_hospital(rng, hosp: Hospitals, province: np.ndarray) -> np.ndarray:
    u = rng.random(len(province))
    idx = np.searchsorted(hosp.key, province + u * (1 - 1e-12), side="left")
    return np.minimum(idx, PR.N_HOSPITALS - 1)


def line_hospital(rng, hosp, main, province):
    other = pick_hospital(rng, hosp, province)
    return np.where(rng.random(len(main)) < PR.P_LINE_OTHER_HOSPITAL, other, main)
