"""Supportive care beside the counting drugs: antiemetics, premedication and G-CSF on chemotherapy
days, bone-targeted agents for bone metastases. None of it counts for lines of therapy."""
from __future__ import annotations

import numpy as np

from .draws import mix64, uniform_int
from .drugs import CODE as C
from .drugs import PRODUCTS
from .plan import NONE_DAY
from .schedules import DOSE_LO, IS_CHEMO_DAY, IS_TAXANE


def supportive_care(J, rng, n, bone, adv, last_treat):
    """Antiemetics, premedication and G-CSF on chemotherapy days; bone agents for bone metastases."""
    chemo = (J.ad_line >= 0) & IS_CHEMO_DAY[J.ad_prod]
    key = np.unique(J.ad_pat[chemo].astype(np.int64) * 100_000 + J.ad_date[chemo])
    pat, date = key // 100_000, key % 100_000
    m = len(pat)
    anti = np.array([C["ondansetron"], C["granisetron"], C["palonosetron"]])[
        (mix64(pat, 7) % np.uint64(3)).astype(np.int64)]   # one antiemetic habit per patient
    give = rng.random(m) < 0.8
    J.support_rows.append((pat[give], anti[give], date[give], DOSE_LO[anti[give]]))
    tax = (J.ad_line >= 0) & IS_TAXANE[J.ad_prod]
    p_dex = np.zeros(len(PRODUCTS))
    for name, p in (("docetaxel", 0.9), ("paclitaxel", 0.95), ("paclitaxel liposome", 0.4),
                    ("nab-paclitaxel", 0.1)):
        p_dex[C[name]] = p
    dex = tax & (rng.random(len(tax)) < p_dex[J.ad_prod])
    J.support_rows.append((J.ad_pat[dex], np.full(dex.sum(), C["dexamethasone"]), J.ad_date[dex],
                           np.where(rng.random(dex.sum()) < 0.5, 5.0, 10.0)))
    q3w = tax & ~J.st_weekly_arr[J.ad_stream] & ((mix64(J.ad_pat, 11) % np.uint64(10)) < np.uint64(3))
    J.support_rows.append((J.ad_pat[q3w], np.full(q3w.sum(), C["pegfilgrastim"]),
                           J.ad_date[q3w] + rng.integers(1, 3, q3w.sum()), np.full(q3w.sum(), 6.0)))
    # bone-targeted agents every 4 weeks from the advanced date, for up to two years
    b = np.flatnonzero(bone & (adv < NONE_DAY) & (rng.random(n) < 0.7))
    agent = np.where(rng.random(len(b)) < 0.8, C["zoledronic acid"], C["denosumab"])
    first = adv[b] + uniform_int(rng, 0, 30, len(b))
    count = np.clip((np.minimum(last_treat[b], first + 730) - first) // 28 + 1, 0, 27)
    st = np.repeat(np.arange(len(b)), count)
    k = np.arange(len(st)) - np.repeat(np.cumsum(count) - count, count)
    J.support_rows.append((b[st], agent[st], first[st] + 28 * k, DOSE_LO[agent[st]]))
