"""The report's statistics (mixtune.bench.stats): checked against scipy on small cases, and by simulation under
the null with noise like the committed tables' (paired sd 1-3 points per task, a seed effect shared by the tasks),
so that a task "won" or "lost" and the intervals' coverage are what they claim to be."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mixtune.bench.stats import (
    LEVEL,
    MIN_SEEDS_TO_CALL,
    calls,
    compare,
    minimum_detectable_effect,
    seed_means,
    sign_flip_p,
    std_ratio,
    t_interval,
)

SIMULATIONS = 20_000
TASKS = 6


def null_differences(seeds: int, rng: np.random.Generator) -> np.ndarray:
    """(simulation, task, seed) paired differences with no true difference: each task its own sd in [1, 3], plus a
    seed effect (sd 1) that moves every task of a seed together, as one subset and head init do."""
    task_sd = rng.uniform(1.0, 3.0, size=(SIMULATIONS, TASKS, 1))
    seed_effect = rng.normal(0.0, 1.0, size=(SIMULATIONS, 1, seeds))
    return seed_effect + task_sd * rng.normal(size=(SIMULATIONS, TASKS, seeds))


@pytest.mark.parametrize("seeds", [3, 5])
def test_under_the_null_calls_and_coverage_are_nominal(seeds):
    rng = np.random.default_rng(20240)
    differences = null_differences(seeds, rng)
    for samples in (differences, differences.mean(axis=1)):  # per task, and pooled on the per-seed mean over tasks
        _, low, high = t_interval(samples)
        called = calls(np.full(low.shape, seeds), low, high) != 0
        coverage = np.mean((low <= 0) & (0 <= high))
        assert abs(coverage - LEVEL) < 0.01, coverage
        if seeds < MIN_SEEDS_TO_CALL:
            assert not called.any()  # n too small: never won or lost
        else:
            assert abs(called.mean() - (1 - LEVEL)) < 0.01, called.mean()


def test_the_mde_is_detected_eighty_percent_of_the_time():
    rng = np.random.default_rng(7)
    seeds, sd = 5, 2.0
    effect = minimum_detectable_effect(sd, seeds)
    _, low, high = t_interval(effect + sd * rng.normal(size=(SIMULATIONS, seeds)))
    assert abs(np.mean((low > 0) | (high < 0)) - 0.8) < 0.015


def test_compare_matches_scipy_and_the_exact_sign_flip_count():
    differences = [1.0, 2.0, 3.0, 2.5, 1.5]
    c = compare(differences)
    low, high = stats.t.interval(LEVEL, 4, loc=np.mean(differences), scale=stats.sem(differences))
    assert (c.low, c.high) == pytest.approx((low, high))
    assert c.p == pytest.approx(stats.ttest_1samp(differences, 0.0).pvalue)
    assert c.p_sign_flip == pytest.approx(2 / 32)  # all positive: only the all-plus and all-minus patterns reach it
    assert sign_flip_p(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 / 8)
    assert c.call == "won"


def test_no_interval_from_one_seed_and_no_call_under_five():
    one = compare([1.26])
    assert (one.n, one.mean, one.low, one.high, one.p, one.mde) == (1, 1.26, None, None, None, None)
    assert one.call == "n too small"
    assert compare([5.0, 6.0, 6.0, 7.0]).call == "n too small"  # clear of 0, but 4 seeds
    assert compare([5.0, 6.0, 6.0, 7.0, 5.0]).call == "won" and compare([-5.0, -6.0, -6.0, -7.0, -5.0]).call == "lost"
    assert compare([1.0, -1.0, 0.0, 2.0, -2.0]).call == "tied"


def test_seed_means_pool_over_tasks_on_the_seeds_every_task_has():
    assert seed_means({"rte": {1: 1.0, 2: 3.0}, "sst2": {1: 3.0, 3: 5.0}}) == [2.0]
    assert seed_means({"rte": {1: 1.0, 2: 3.0}, "sst2": {2: 5.0, 1: 3.0}}) == [2.0, 4.0]


@pytest.mark.parametrize(("seeds", "correlation"), [(3, 0.0), (8, 0.5), (8, 0.9)])
def test_the_std_ratio_interval_covers_the_true_ratio_95_percent_of_the_time(seeds, correlation):
    """Paired normal scores, true std ratio 0.5, the pair correlated as seeds make them: the Pitman-Morgan interval
    holds the true ratio about 95% of the time (an F interval, blind to the pairing, would not)."""
    rng = np.random.default_rng(2024)
    covariance = [[0.25, 0.5 * correlation], [0.5 * correlation, 1.0]]
    hits = 0
    draws = 4000
    for _ in range(draws):
        a, b = rng.multivariate_normal([0.0, 0.0], covariance, size=seeds).T
        r = std_ratio(list(a), list(b))
        hits += r.low <= 0.5 <= r.high
    assert hits / draws == pytest.approx(0.95, abs=0.012)


def test_the_std_ratio_needs_two_seeds_and_three_for_an_interval():
    assert std_ratio([1.0], [2.0]).ratio is None
    two = std_ratio([1.0, 3.0], [0.0, 4.0])
    assert two.ratio == pytest.approx(0.5) and two.low is None
    assert std_ratio([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]).ratio is None  # no spread to divide by
    three = std_ratio([1.0, 2.0, 4.0], [0.0, 3.0, 5.0])
    assert three.low < three.ratio < three.high
