"""Paired comparisons over seeds: a t-interval, the t-test's and an exact sign-flip p-value, the smallest effect the
seeds could detect, and a won/lost call only with enough seeds.

Why not the bootstrap the report used before: with 3 seeds its percentile interval is [min, max], so a task with no
true difference was "won" whenever the three signs agreed (a quarter of the time), and pooling loose (task, seed)
pairs ignored that a seed's tasks move together. Here the seed is the unit: per task its paired differences, pooled
the per-seed mean over tasks (tests/bench/test_report_statistics.py checks the error rates by simulation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

LEVEL = 0.95  # two-sided: intervals are 95%, tests at 5%
POWER = 0.8  # the minimum detectable effect is detected this often
MIN_SEEDS_TO_CALL = 5  # fewer paired seeds: no task is called won or lost ("n too small")
EXACT_UP_TO = 16  # the sign-flip p enumerates all 2^n sign patterns up to this many seeds
CALLS = {1: "won", 0: "tied", -1: "lost"}


@dataclass(frozen=True)
class Comparison:
    """Paired differences (a - b) over n seeds, summarised; the interval, p and MDE are None with one seed."""

    n: int
    mean: float
    low: float | None = None
    high: float | None = None
    p: float | None = None  # paired t-test
    p_sign_flip: float | None = None  # exact sign-flip permutation test (None above EXACT_UP_TO seeds)
    mde: float | None = None  # minimum detectable effect at POWER, from the observed sd of the differences

    @property
    def call(self) -> str:
        """won / tied / lost from the t-interval, or "n too small" under MIN_SEEDS_TO_CALL seeds."""
        if self.n < MIN_SEEDS_TO_CALL or self.low is None:
            return "n too small"
        return CALLS[int(calls(np.array(self.n), np.array(self.low), np.array(self.high)))]


def compare(differences: list[float]) -> Comparison:
    values = np.asarray(differences, dtype=float)
    n = len(values)
    if n < 2:
        return Comparison(n, float(values.sum()))  # one seed: its difference, and nothing more
    mean, low, high = t_interval(values)
    sd = float(np.std(values, ddof=1))
    p = float(stats.ttest_1samp(values, 0.0).pvalue) if sd > 0 else 1.0 if mean == 0 else None  # no spread: no t-test
    return Comparison(n, float(mean), float(low), float(high), p, sign_flip_p(values), minimum_detectable_effect(sd, n))


def t_interval(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) of the LEVEL t-interval of the mean, over the last axis (vectorised for simulations)."""
    n = differences.shape[-1]
    mean = differences.mean(axis=-1)
    half = stats.t.ppf(0.5 + LEVEL / 2, n - 1) * differences.std(axis=-1, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def calls(n: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """1 won / -1 lost where the interval lies above / below 0 with at least MIN_SEEDS_TO_CALL seeds, else 0."""
    enough = n >= MIN_SEEDS_TO_CALL
    return np.where(enough & (low > 0), 1, np.where(enough & (high < 0), -1, 0))


def sign_flip_p(differences: np.ndarray) -> float | None:
    """Two-sided exact permutation p of the mean under random signs (no normality assumed); None for many seeds."""
    if len(differences) > EXACT_UP_TO:
        return None
    test = stats.permutation_test((differences,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True)
    return float(test.pvalue)


def minimum_detectable_effect(sd: float, n: int) -> float:
    """The smallest true mean difference a two-sided paired t-test at 1 - LEVEL detects with probability POWER,
    given n seeds and the observed sd of the differences (noncentral t)."""
    return float(sd * _standardised_mde(n))


@lru_cache(maxsize=None)
def _standardised_mde(n: int) -> float:
    df = n - 1
    critical = stats.t.ppf(0.5 + LEVEL / 2, df)

    def shortfall(noncentrality: float) -> float:
        dist = stats.nct(df, noncentrality)
        return dist.sf(critical) + np.nan_to_num(dist.cdf(-critical)) - POWER  # the far tail's NaN is a 0

    return optimize.brentq(shortfall, 0.0, 50.0) / np.sqrt(n)  # power at 50 exceeds 0.99 from one degree of freedom


def seed_means(per_task: dict[str, dict[int, float]]) -> list[float]:
    """Pooled over tasks: per seed present in every task, the mean of that seed's differences over the tasks."""
    seeds = set.intersection(*(set(by_seed) for by_seed in per_task.values())) if per_task else set()
    return [float(np.mean([by_seed[s] for by_seed in per_task.values()])) for s in sorted(seeds)]


@dataclass(frozen=True)
class SpreadRatio:
    """std(a) / std(b) over n paired seeds; its interval needs 3 seeds, the ratio 2 and a spread in b."""

    n: int
    ratio: float | None = None
    low: float | None = None
    high: float | None = None


def std_ratio(a: list[float], b: list[float]) -> SpreadRatio:
    """The ratio of two paired samples' standard deviations with its LEVEL Pitman-Morgan interval.

    Why this interval: a seed pairs the two runs (the same subset and head initialisation), so their spreads are
    correlated and an F interval, which assumes independent samples, is wrong. Pitman-Morgan: var(a) = k var(b)
    exactly when a / sqrt(k) + b and a / sqrt(k) - b are uncorrelated; the k whose correlation a t-test on n - 2
    degrees of freedom does not reject are the interval, between the roots of a quadratic in k.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    if n < 2 or np.var(y) == 0:
        return SpreadRatio(n)
    va, vb = np.var(x, ddof=1), np.var(y, ddof=1)
    if n < 3:
        return SpreadRatio(n, float(np.sqrt(va / vb)))
    t = stats.t.ppf(0.5 + LEVEL / 2, n - 2)
    c = t * t / (n - 2 + t * t)  # the largest squared correlation the test accepts
    middle = va * vb * (1 + c) - 2 * c * np.cov(x, y)[0, 1] ** 2
    half = np.sqrt(max(middle**2 - ((1 - c) * va * vb) ** 2, 0.0))
    scale = (1 - c) * vb * vb
    return SpreadRatio(n, float(np.sqrt(va / vb)), float(np.sqrt((middle - half) / scale)), float(np.sqrt((middle + half) / scale)))
