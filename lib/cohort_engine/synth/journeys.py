"""The bookkeeping of the treatment journeys: lines and the streams of administrations they hold,
as they are drawn, expanded into administrations (with delays, d1/d8 days and loading doses).
Every administration belongs to exactly one line, so the truth lines are read off this bookkeeping."""
from __future__ import annotations

import numpy as np

from . import params as PR
from .draws import categories
from .plan import NONE_DAY
from .schedules import CYCLE, D1D8, LOAD, REG_FAM


class Journeys:
    """Lines and streams as they are drawn; expanded into administrations by finish()."""

    def __init__(self):
        self._lines = {k: [] for k in ("pat", "setting", "order", "start", "stop", "reg", "fam", "prog",
                                       "detect", "hospital", "responder")}
        self._n_lines = 0
        self._st = {k: [] for k in ("line", "prod", "first", "cycle", "n", "pause_k", "pause", "dose",
                                    "load", "weekly", "end")}
        self.support_rows = []

    # lines
    def add_lines(self, pat, setting, order, start, stop, reg, prog=None, detect=None, hospital=None,
                  responder=None):
        m = len(pat)
        rows = np.arange(self._n_lines, self._n_lines + m)
        self._n_lines += m
        none = np.full(m, NONE_DAY, dtype=np.int64)
        L = self._lines
        L["pat"].append(np.asarray(pat))
        L["setting"].append(np.full(m, setting))
        L["order"].append(np.broadcast_to(np.asarray(order), (m,)).copy())
        L["start"].append(np.asarray(start, dtype=np.int64))
        L["stop"].append(np.asarray(stop, dtype=np.int64))
        reg = np.broadcast_to(np.asarray(reg), (m,)).copy()
        L["reg"].append(reg)
        L["fam"].append(np.where(reg >= 0, REG_FAM[np.maximum(reg, 0)], -1))
        L["prog"].append(none if prog is None else prog)
        L["detect"].append(none if detect is None else detect)
        L["hospital"].append(np.full(m, -1) if hospital is None else hospital)
        L["responder"].append(np.zeros(m, dtype=bool) if responder is None else responder)
        return rows

    def add_stream(self, line_rows, prod, first, n, cycle=None, pause_k=None, pause=None, dose=None,
                   load=False, weekly=None, end=None):
        m = len(line_rows)
        if m == 0:
            return
        prod = np.broadcast_to(np.asarray(prod), (m,)).copy()
        S = self._st
        S["line"].append(np.asarray(line_rows))
        S["prod"].append(prod)
        S["first"].append(np.asarray(first, dtype=np.int64))
        S["cycle"].append(CYCLE[prod] if cycle is None else np.broadcast_to(np.asarray(cycle), (m,)).copy())
        S["n"].append(np.broadcast_to(np.asarray(n), (m,)).astype(np.int64))
        S["pause_k"].append(np.full(m, 10 ** 6) if pause_k is None else np.broadcast_to(pause_k, (m,)).copy())
        S["pause"].append(np.zeros(m, dtype=np.int64) if pause is None else np.asarray(pause))
        S["dose"].append(np.full(m, np.nan) if dose is None else np.asarray(dose, dtype=float))
        S["load"].append(np.broadcast_to(np.asarray(load), (m,)).copy())
        S["weekly"].append(np.zeros(m, dtype=bool) if weekly is None else np.asarray(weekly))
        S["end"].append(np.full(m, NONE_DAY, dtype=np.int64) if end is None else np.asarray(end, dtype=np.int64))

    def _cat_lines(self):
        return {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64)) for k, v in self._lines.items()}

    def ln_setting_arr(self):
        return self._ln["setting"]

    def lines(self):
        L = self._ln
        return {"ln_pat": L["pat"], "ln_setting": L["setting"], "ln_order": L["order"],
                "ln_start": L["start"], "ln_stop": L["stop"], "ln_reg": L["reg"], "ln_fam": L["fam"],
                "ln_prog": L["prog"], "ln_detect": L["detect"], "ln_hospital": L["hospital"],
                "ln_responder": L["responder"]}

    def finish(self, rng, record_end):
        """Expand streams into administrations; doses per administration."""
        self._ln = L = self._cat_lines()
        S = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in self._st.items()}
        n_st = len(S["line"])
        line = S["line"].astype(np.int64)
        pat = L["pat"][line].astype(np.int64)
        limit = np.minimum(np.minimum(L["stop"][line], record_end[pat] + 1), S["end"])
        cycle = S["cycle"].astype(np.int64)
        # open-ended streams: as many cycles as fit before the limit
        n = np.where(S["n"] < 0, np.maximum(0, (limit - S["first"]) // np.maximum(cycle, 1) + 2), S["n"])
        n = np.minimum(n, 400)
        st = np.repeat(np.arange(n_st), n)
        k = np.arange(len(st)) - np.repeat(np.cumsum(n) - n, n)
        delay = np.array([d for d, _ in PR.ADMIN_DELAY])[categories(rng, len(st), [p for _, p in PR.ADMIN_DELAY])]
        delay = np.where(k == 0, 0, delay)
        # weekly schedules tolerate less delay
        delay = np.where(cycle[st] <= 7, np.minimum(delay, 2), delay)
        date = S["first"][st].astype(np.int64) + k * cycle[st] + delay + np.where(
            k >= S["pause_k"][st], S["pause"][st], 0).astype(np.int64)
        prod = S["prod"][st].astype(np.int64)
        # d1/d8 schedules: a second administration 7 days after each cycle start
        d8 = D1D8[prod] & ~S["weekly"][st].astype(bool)
        st = np.concatenate([st, st[d8]])
        k = np.concatenate([k, k[d8]])
        date = np.concatenate([date, date[d8] + 7])
        prod = S["prod"][st].astype(np.int64)
        keep = date < limit[st]
        st, k, date, prod = st[keep], k[keep], date[keep], prod[keep]
        dose_base = S["dose"][st]
        dose = np.where(S["load"][st].astype(bool) & (k == 0) & (LOAD[prod] > 0), LOAD[prod], dose_base)
        self.ad_pat = pat[st]
        self.ad_line = line[st]
        self.ad_prod = prod
        self.ad_date = date
        self.ad_k = k
        self.ad_stream = st
        self.ad_dose = dose
        self.st_weekly_arr = S["weekly"].astype(bool)

    def finish_supportive(self, rng, record_end):
        if not self.support_rows:
            return
        pat = np.concatenate([r[0] for r in self.support_rows])
        prod = np.concatenate([r[1] for r in self.support_rows])
        date = np.concatenate([r[2] for r in self.support_rows])
        dose = np.concatenate([r[3] for r in self.support_rows])
        keep = date <= record_end[pat]
        m = keep.sum()
        self.ad_pat = np.concatenate([self.ad_pat, pat[keep]])
        self.ad_line = np.concatenate([self.ad_line, np.full(m, -1)])
        self.ad_prod = np.concatenate([self.ad_prod, prod[keep]])
        self.ad_date = np.concatenate([self.ad_date, date[keep]])
        self.ad_k = np.concatenate([self.ad_k, np.zeros(m, dtype=np.int64)])
        self.ad_stream = np.concatenate([self.ad_stream, np.full(m, -1)])
        self.ad_dose = np.concatenate([self.ad_dose, dose[keep]])
