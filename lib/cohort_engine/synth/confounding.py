"""The confounded taxane choice of `generate --confounded-taxane` (docs/generator.md).

HER2+ patients whose first advanced line is an anti-HER2 antibody + a taxane keep the backbone
drawn as without the switch (H, HP or H + pyrotinib); the taxane is then paclitaxel liposome with a
probability that depends on covariates the engine's study variables read (age at index, visceral
metastases, brain metastases, de novo disease, index year), which also drive the outcomes (visceral,
brain and de novo through the survival multipliers of params.SURVIVAL_AFT, age through them and through the
hypersensitivity risk, the year through the backbone). Every patient of that population gets both
potential outcomes from common random numbers: the first-line progression time under each arm
(the same uniform, the liposome's Weibull time scaled so that its hazard is
params.CONFOUNDED_PROGRESSION_HR times the conventional one) and grade ≥ 3 hypersensitivity under
each arm (the same uniform against each arm's risk). Death does not depend on the arm.

Its draws come from a stream of their own, and none is made without the switch.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import params as PR
from . import regimens as RG
from .draws import age_years, sample_rows, weibull_days
from .schedules import FIRST_W, G_HER2, REG_FAM

LIPOSOME_ARM, CONVENTIONAL_ARM = "paclitaxel liposome", "conventional taxane"
N_REGIMENS = len(RG.NAMES)
# per regimen: the counterpart pair it belongs to (index into TAXANE_COUNTERPARTS), else -1
PAIR_OF = np.full(N_REGIMENS, -1)
LIPOSOME_REGIMEN = np.array([RG.INDEX[name] for name in RG.TAXANE_COUNTERPARTS])
COUNTERPART_COLUMNS = np.zeros((len(RG.TAXANE_COUNTERPARTS), N_REGIMENS), dtype=bool)
for _pair, (_liposome, _others) in enumerate(RG.TAXANE_COUNTERPARTS.items()):
    PAIR_OF[RG.INDEX[_liposome]] = _pair
    for _other in _others:
        PAIR_OF[RG.INDEX[_other]] = _pair
        COUNTERPART_COLUMNS[_pair, RG.INDEX[_other]] = True
        # both arms share the survival family, so the arm is the only difference of their hazards
        assert REG_FAM[RG.INDEX[_other]] == REG_FAM[RG.INDEX[_liposome]], (_liposome, _other)
IS_CONVENTIONAL = COUNTERPART_COLUMNS.any(axis=0)
WITHOUT_COUNTERPART = np.array([RG.INDEX[name] for name in RG.WITHOUT_COUNTERPART])


def logistic(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


def liposome_probability(age_at_index, visceral, brain, de_novo, index_year):
    """P(paclitaxel liposome | covariates) of params.CONFOUNDED_TAXANE_LOGIT."""
    c = PR.CONFOUNDED_TAXANE_LOGIT
    logit = (c["intercept"]
             + c["age_per_10_years"] * (np.asarray(age_at_index, dtype=float) - PR.CONFOUNDED_AGE_CENTRE) / 10.0
             + c["visceral"] * np.asarray(visceral, dtype=float)
             + c["brain"] * np.asarray(brain, dtype=float)
             + c["de_novo"] * np.asarray(de_novo, dtype=float)
             + c["index_year"] * (np.asarray(index_year, dtype=float) - PR.CONFOUNDED_YEAR_CENTRE))
    return logistic(logit)


def hypersensitivity_risk(age_at_index, liposome):
    """Risk of grade ≥ 3 hypersensitivity at the first taxane dose, by age and arm."""
    base = PR.CONFOUNDED_HYPERSENSITIVITY_RISK
    logit = (math.log(base / (1.0 - base))
             + math.log(PR.CONFOUNDED_HYPERSENSITIVITY_OR_PER_10_YEARS)
             * (np.asarray(age_at_index, dtype=float) - PR.CONFOUNDED_AGE_CENTRE) / 10.0
             + math.log(PR.CONFOUNDED_HYPERSENSITIVITY_OR_LIPOSOME) * np.asarray(liposome, dtype=float))
    return logistic(logit)


def first_line_weights(group, era, confounded: bool) -> np.ndarray:
    """Regimen weights of each patient's first advanced line; under the switch the HER2 first lines
    without a conventional counterpart get none (one uniform per row is drawn either way)."""
    weights = FIRST_W[group, era]
    if not confounded:
        return weights
    weights = weights.copy()
    her2 = np.flatnonzero(group == G_HER2)
    weights[np.ix_(her2, WITHOUT_COUNTERPART)] = 0.0
    return weights


@dataclasses.dataclass
class TaxaneChoice:
    """Per patient of a chunk; the arrays mean something where `population` is true."""
    population: np.ndarray        # first line antibody + taxane, chosen under the switch
    liposome: np.ndarray          # given paclitaxel liposome
    p_liposome: np.ndarray        # the probability it was chosen with
    age_at_index: np.ndarray
    visceral: np.ndarray
    brain: np.ndarray
    de_novo: np.ndarray
    index_year: np.ndarray
    regimen: np.ndarray           # the first-line regimen given (regimens.NAMES index)
    hypersensitivity_liposome: np.ndarray     # grade ≥ 3 at the first taxane dose, under each arm
    hypersensitivity_conventional: np.ndarray
    pfs_liposome: np.ndarray | None = None    # first-line progression time (days), under each arm
    pfs_conventional: np.ndarray | None = None

    def hypersensitivity(self) -> np.ndarray:
        """The observed outcome: the potential outcome of the arm given."""
        return self.population & np.where(self.liposome, self.hypersensitivity_liposome,
                                          self.hypersensitivity_conventional)


def choose_taxane(rng, candidates, reg1, birth, line_start, visceral, brain, de_novo, index_year,
                  era) -> TaxaneChoice:
    """The taxane of the candidates' first line (`reg1` with the backbone drawn), from `rng`, a stream
    of the switch's own: the arm, the conventional taxane when that arm has several, and the
    uniform of the hypersensitivity outcome."""
    n = len(reg1)
    pair = PAIR_OF[np.maximum(reg1, 0)]
    population = candidates & (reg1 >= 0) & (pair >= 0)
    age = np.where(population, age_years(birth, np.where(population, line_start, birth)), 0)
    p = liposome_probability(age, visceral, brain, de_novo, index_year)
    liposome = population & (rng.random(n) < p)
    # a conventional taxane drawn with its era weights when the backbone came with the liposome (equal
    # weights in an era that gives none of them: docetaxel + H + pyrotinib before 2020)
    columns = COUNTERPART_COLUMNS[np.maximum(pair, 0)]
    counterpart_w = FIRST_W[G_HER2, era] * columns
    counterpart_w = np.where(counterpart_w.sum(axis=1, keepdims=True) > 0, counterpart_w, columns.astype(float))
    conventional = np.where(IS_CONVENTIONAL[np.maximum(reg1, 0)], reg1, sample_rows(rng, counterpart_w))
    u_hypersensitivity = rng.random(n)
    regimen = np.where(population, np.where(liposome, LIPOSOME_REGIMEN[np.maximum(pair, 0)], conventional), reg1)
    return TaxaneChoice(
        population=population, liposome=liposome, p_liposome=p, age_at_index=age,
        visceral=population & visceral, brain=population & brain, de_novo=population & de_novo, index_year=index_year, regimen=regimen,
        hypersensitivity_liposome=population & (u_hypersensitivity < hypersensitivity_risk(age, True)),
        hypersensitivity_conventional=population & (u_hypersensitivity < hypersensitivity_risk(age, False)))


def with_progression(choice: TaxaneChoice, u_pfs, pfs_median, pfs_shape, pfs_conventional) -> np.ndarray:
    """Record both potential first-line progression times (common uniform `u_pfs`: a Weibull hazard
    × HR is its time scale × HR^(−1/shape)) and return the times of the arms given."""
    scale = PR.CONFOUNDED_PROGRESSION_HR ** (-1.0 / pfs_shape)
    choice.pfs_liposome = weibull_days(u_pfs, pfs_median * scale, pfs_shape)
    choice.pfs_conventional = pfs_conventional
    return np.where(choice.population & choice.liposome, choice.pfs_liposome, pfs_conventional)
